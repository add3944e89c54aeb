"""Receptive fields with their start: which input pixels a layer's unit sees.

The recurrences of Araujo, Norris & Sim ("Computing receptive fields of convolutional neural
networks", Distill 2019) for size ``r``, jump ``j`` *and start* ``u``: a convolution or pooling of
kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` maps ``(r, j, u)`` to
``(r + (k − 1)·d·j, j·s, u − p·j)``, and unit ``i`` of the output sees input pixels
``u + i·j … u + i·j + r − 1``. `striate.models.summary` records ``r`` and ``j`` but not ``u``, and
padding moves the window without changing its size, so the start is traced here. It is traced
through torch's functions rather than through modules, so residual sums and concatenations (which
are not modules) take the union of their branches' windows, as Araujo et al. define the field of
a multi-path network. A gradient probe (the input pixels with a non-zero gradient of one unit)
would be wrong twice: a ReLU that is off or a max-pool that picks one pixel zeroes gradients
inside the field, so the probe is smaller than the field and depends on the image; and at the
border it cannot see the padded part of the window, so the crop would shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from striate.errors import ConfigError
from striate.interpret.layers import capture, evaluating, find_layer, layer_output, placement
from striate.models.summary import tensors_in

__all__ = ["Field", "receptive_field"]


@dataclass(frozen=True)
class Field:
    """Where the units of a layer look in the input, per axis (y, x): unit ``i`` sees input
    pixels ``start + i·jump`` to ``start + i·jump + size − 1`` (Araujo et al. 2019)."""

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]

    def box(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """k×4 (top, left, bottom, right), bottom/right exclusive, of units at (y, x)."""
        top = torch.floor(self.start[0] + y.double() * self.jump[0]).long()
        left = torch.floor(self.start[1] + x.double() * self.jump[1]).long()
        h, w = (math.ceil(s) for s in self.size)
        return torch.stack([top, left, top + h, left + w], dim=1)


# positional parameters of the functions whose window arithmetic is known
_PARAMS = {
    "conv2d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "max_pool2d": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "max_pool2d_with_indices": ("input", "kernel_size", "stride", "padding", "dilation"),
    "avg_pool2d": ("input", "kernel_size", "stride", "padding", "ceil_mode"),
    "lp_pool2d": ("input", "norm_type", "kernel_size", "stride", "ceil_mode"),
    "pad": ("input", "pad", "mode", "value"),
    "adaptive_avg_pool2d": ("input", "output_size"),
    "adaptive_max_pool2d": ("input", "output_size"),
}


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1])) if v else (1, 1)
    return (int(v), int(v))


class _Tracer(TorchFunctionMode):
    """Follows every torch function of one forward pass and gives each 4-D tensor that depends
    on the input its `Field` (or the name of the function it could not follow)."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.fields: dict[int, tuple[torch.Tensor, Field | str]] = {}
        self.put(x, Field((1.0, 1.0), (1.0, 1.0), (0.0, 0.0)))

    def put(self, t: torch.Tensor, f: Field | str) -> None:
        self.fields[id(t)] = (t, f)  # the tensor is kept, so its id is not reused

    def get(self, t: torch.Tensor) -> Field | str | None:
        entry = self.fields.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in tensors_in((args, kwargs)) if self.get(t) is not None]
        outputs = [t for t in tensors_in(out) if t.dim() == 4]
        if inputs and outputs:
            f = self.rule(getattr(func, "__name__", str(func)), args, kwargs, inputs, outputs[0])
            for t in outputs:
                self.put(t, f)
        return out

    def rule(self, name: str, args, kwargs, inputs, out) -> Field | str:
        known = [self.get(t) for t in inputs]
        unknown = [f for f in known if isinstance(f, str)]
        if unknown:
            return unknown[0]
        name = name.strip("_")
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        f = self.get(first) if first is not None else None
        if name == "getitem" and isinstance(f, Field) and len(args) == 2:
            return _sliced(f, args[1], first.dim()) or name
        if name in _PARAMS and isinstance(f, Field):
            a = dict(zip(_PARAMS[name], args, strict=False)) | kwargs
            x = first
            if name == "pad":
                pad = list(a["pad"]) + [0, 0, 0, 0]
                return Field(
                    f.size,
                    f.jump,
                    (f.start[0] - pad[2] * f.jump[0], f.start[1] - pad[0] * f.jump[1]),
                )
            if name.startswith("adaptive"):
                return _adaptive(f, x.shape[-2:], out.shape[-2:])
            if name == "conv2d":
                k = tuple(a["weight"].shape[-2:])
                d = _pair(a.get("dilation", 1))
                s = _pair(a.get("stride", 1))
                p = a.get("padding", 0)
                if p == "valid":
                    p = (0, 0)
                elif p == "same":  # torch puts the odd pixel of padding after the input
                    p = tuple((di * (ki - 1)) // 2 for di, ki in zip(d, k, strict=True))
                return _window(f, k, s, _pair(p), d)
            k = _pair(a["kernel_size"])
            s = a.get("stride")
            s = k if s is None or (isinstance(s, (list, tuple)) and not s) else _pair(s)
            return _window(f, k, s, _pair(a.get("padding", 0)), _pair(a.get("dilation", 1)))
        size = tuple(out.shape[-2:])
        same = [f for t, f in zip(inputs, known, strict=True) if tuple(t.shape[-2:]) == size]
        if same:  # element-wise, a residual sum, a concatenation; 1×1 gates broadcast: ignored
            return _union(same)
        if size == (1, 1):  # a global reduction: every pixel of every input
            spans = [_adaptive(f, t.shape[-2:], (1, 1)) for t, f in zip(inputs, known, strict=True)]
            return _union(spans)
        return name


def _window(f: Field, k, s, p, d) -> Field:
    """Araujo et al.'s recurrences: (r, j, u) → (r + (k − 1)·d·j, j·s, u − p·j) per axis."""
    return Field(
        tuple(r + (ki - 1) * di * j for r, ki, di, j in zip(f.size, k, d, f.jump, strict=True)),
        tuple(j * si for j, si in zip(f.jump, s, strict=True)),
        tuple(u - pi * j for u, pi, j in zip(f.start, p, f.jump, strict=True)),
    )


def _sliced(f: Field, index: Any, dims: int) -> Field | None:
    """The field after ``x[index]`` (e.g. ResNet's option-A shortcut ``x[:, :, ::2, ::2]``):
    a spatial slice ``a:b:s`` moves the start by a·j and multiplies the jump by s; anything but
    slices and an Ellipsis is not followed (None)."""
    items = list(index) if isinstance(index, tuple) else [index]
    if sum(i is Ellipsis for i in items) > 1 or not all(
        isinstance(i, slice) or i is Ellipsis for i in items
    ):
        return None
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at : at + 1] = [slice(None)] * (dims - len(items) + 1)
    items += [slice(None)] * (dims - len(items))
    start, jump = list(f.start), list(f.jump)
    for axis, sl in enumerate(items[-2:]):
        if not all(isinstance(v, int) or v is None for v in (sl.start, sl.stop, sl.step)):
            return None
        if (sl.start or 0) < 0 or (sl.step or 1) < 1:
            return None
        start[axis] += (sl.start or 0) * jump[axis]
        jump[axis] *= sl.step or 1
    return Field(f.size, tuple(jump), tuple(start))


def _adaptive(f: Field, n_in, n_out) -> Field:
    """PyTorch's adaptive window i is [floor(i·n/o), ceil((i+1)·n/o)): its largest size counts,
    and the stride n/o (exact when o divides n; otherwise a window starts up to a pixel early)."""
    r, j = [], []
    for ri, ji, n, o in zip(f.size, f.jump, n_in, n_out, strict=True):
        k = max(-(-(i + 1) * n // o) - (i * n // o) for i in range(o))
        r.append(ri + (k - 1) * ji)
        j.append(ji * n / o)
    return Field(tuple(r), tuple(j), f.start)


def _union(fields: list[Field]) -> Field:
    if len(fields) == 1:
        return fields[0]
    start = tuple(min(f.start[a] for f in fields) for a in (0, 1))
    end = tuple(max(f.start[a] + f.size[a] for f in fields) for a in (0, 1))
    jump = tuple(max(f.jump[a] for f in fields) for a in (0, 1))
    return Field(tuple(e - s for e, s in zip(end, start, strict=True)), jump, start)


def receptive_field(
    model: nn.Module, layer: str | nn.Module, input_size: tuple[int, int, int]
) -> Field:
    """The receptive field (size, jump, start) of `layer`'s units for inputs of `input_size`
    (C, H, W), traced through one forward pass of a zero image (see the module docstring)."""
    find_layer(model, layer)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    x = torch.zeros((1, *input_size), device=placement(model)[0], dtype=dtype)
    tracer = _Tracer(x)
    with evaluating(model), torch.no_grad(), capture(model, layer) as seen:
        with tracer:
            model(x)
        out = layer_output(seen, layer, "receptive_field")
    f = tracer.get(out) if out.dim() == 4 else None
    if not isinstance(f, Field):
        if isinstance(f, str):
            why = f"it passes through {f!r}, whose window is not known"
        elif out.dim() != 4:
            why = f"its output is {out.dim()}-D, not N×C×H×W"
        else:
            why = "its output was not computed from the input's pixel grid"
        raise ConfigError(
            f"receptive field of layer {layer!r}: {why}; pick a convolution or pooling layer "
            f"before the classifier"
        )
    return f
