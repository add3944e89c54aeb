"""Model summaries: per-layer output shapes, parameters, multiply-adds, memory, receptive field.

``summary(model, (3, 224, 224))`` runs one forward pass of a zero batch (``torch.no_grad``, eval
mode, every module's mode restored afterwards) with hooks on the leaf modules (and on any module
that holds parameters of its own) and records, per call, what the CS231n lecture tables list for
AlexNet and VGG-16 (lectures 5 and 9): the output shape, the parameters, the multiply-adds, the
memory of the output and the receptive field. It plays the part of Keras' ``model.summary()`` and
torchinfo; the printed table is ``str(summary(...))``.

Conventions (everything is for the whole batch of ``batch_size``; the default 1 gives per-image
numbers):

- **Parameters** of a row are the module's own (not its children's), counted at its first call
  only, so a module called twice is not counted twice; the totals are those of
  ``model.parameters()`` (shared parameters once).
- **MACs** (multiply-accumulates; FLOPs = 2 × MACs): a convolution computes
  ``out_elements · (C_in / groups) · k_h · k_w`` (a transposed one ``in_elements · (C_out /
  groups) · k_h · k_w``), a Linear ``out_elements · in_features``; bias additions are not
  counted. A normalisation layer (BatchNorm, GroupNorm, LayerNorm, InstanceNorm) counts one MAC
  per output element, the affine ``a·x + b`` it reduces to in eval mode (its statistics are not
  counted). Activations, pooling, dropout and reshapes count 0: they multiply nothing. Leaf
  modules with parameters but no rule here (RNNs, attention) count 0 and are named in
  ``Summary.uncounted``; arithmetic outside modules (a residual ``+``, ``torch.cat``, a
  functional ``F.relu``) is not seen at all. torch's ``FlopCounterMode`` counts the same
  convolution and matrix-product FLOPs (and leaves out the normalisation layers).
- **Memory** of a row: the output's elements × the bytes of its dtype (4 for float32). The total
  ``activation_bytes`` counts the input and every output that takes new memory: an output that
  is (a view of) a tensor already counted — an in-place ReLU, a Flatten, an Identity, eval-mode
  Dropout — is shown but not added again. For a VGG-16 with torchvision's in-place ReLUs this is
  the lecture's convention (the INPUT row and every CONV, POOL and FC output, the ReLUs not
  counted), plus the 7×7 adaptive average pool torchvision adds before the classifier. The
  lecture's rows add up to 15.2M values (61 MB at 4 bytes), not the "24M ≈ 96 MB" its last line
  states; counting out-of-place ReLU outputs as well would give 28.8M (115 MB).
- **Receptive field** (Araujo, Norris & Sim, "Computing receptive fields of convolutional neural
  networks", Distill 2019): per spatial axis, the size ``r`` of the input window that one output
  value depends on, and the jump ``j``, the input distance between neighbouring outputs. The
  input starts at ``r = j = 1``; a convolution or pooling of kernel ``k``, stride ``s`` and
  dilation ``d`` gives ``r_out = r_in + (k - 1)·d·j_in`` and ``j_out = j_in·s`` (padding moves
  the window, not its size), so L stacked 3×3/1 convolutions see ``1 + 2L`` pixels. Adaptive
  pooling uses its largest window and stride ``in/out``; a transposed convolution divides the
  jump by its stride first; upsampling divides it by its scale. A Linear layer on a flattened
  (2-D) input sees the whole input: ``r = inf``, printed ``all`` (on N×L×D tokens it mixes
  channels only and keeps the field). The field is tracked per tensor; a module's input that no
  hooked module produced (the result of a residual ``+`` or of ``torch.cat``) gets the largest
  field seen so far, which for residual and inception blocks is the largest over their
  branches, as Araujo et al. take it for multi-path networks.

``device="meta"`` (a model built under ``with torch.device("meta")``) gives every number without
allocating the parameters or computing a value: `striate models` uses it.

About 600 lines: the hooks, the per-layer arithmetic (multiply-adds, memory, receptive field)
and the table are one computation; splitting them would pass its state between modules.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from striate.checks import is_int, positive_int
from striate.device import parse_device
from striate.errors import ConfigError

__all__ = ["LayerSummary", "Summary", "human_bytes", "human_count", "parameter_count", "summary"]

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.LPPool1d, nn.LPPool2d)
_ADAPTIVE_POOLS = (
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
_NORMS = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*d, InstanceNorm*d, SyncBatchNorm
    nn.GroupNorm,
    nn.LayerNorm,
)
_FREE = (nn.Embedding, nn.EmbeddingBag)  # parameters, but a lookup multiplies nothing


@dataclass(frozen=True)
class LayerSummary:
    """One call of a hooked module: what it output, what it holds and costs, what it sees."""

    name: str  # the module's name in model.named_modules() ("" for the model itself)
    type: str  # its class name
    output_shape: tuple  # (N, C, H, W)...; a tuple of shapes for several output tensors
    params: int  # own parameters, counted at the module's first call only
    trainable: int  # of which requires_grad
    macs: int  # multiply-accumulates of this call (see the module docstring)
    memory: int  # bytes of the output tensor(s)
    new_memory: bool  # False when the output is (a view of) a tensor already counted
    receptive_field: tuple[float, ...] | None  # per spatial axis; inf = all; None = untracked
    jump: tuple[float, ...] | None  # per spatial axis


@dataclass
class Summary:
    """The rows of `summary` and their totals; ``str()`` is the table, `to_dict` the JSON form."""

    rows: list[LayerSummary]
    input_shape: tuple[int, ...]  # with the batch dimension
    input_bytes: int
    params: int
    trainable_params: int
    param_bytes: int
    macs: int
    activation_bytes: int  # input + outputs taking new memory (see the module docstring)
    uncounted: tuple[str, ...] = field(default=())  # leaf types with parameters but no MAC rule

    @property
    def flops(self) -> int:
        """Floating-point operations, 2 per multiply-accumulate."""
        return 2 * self.macs

    @property
    def batch_size(self) -> int:
        """The batch size of the forward pass the numbers are for."""
        return self.input_shape[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: tuples become lists, an infinite receptive field None."""
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["output_shape"] = _listify(r.output_shape)
            d["receptive_field"] = _json_field(r.receptive_field)
            d["jump"] = _json_field(r.jump)
            rows.append(d)
        return {
            "input_shape": list(self.input_shape),
            "batch_size": self.batch_size,
            "input_bytes": self.input_bytes,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "param_bytes": self.param_bytes,
            "macs": self.macs,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "uncounted": list(self.uncounted),
            "rows": rows,
        }

    def table(self) -> list[list[str]]:
        """The table's header and rows as strings (the input first), for printing elsewhere."""
        head = ["layer", "type", "output shape", "params", "MACs", "memory", "RF", "jump"]
        spatial = "1" if len(self.input_shape) > 2 else ""  # the input sees one pixel
        body = [["input", "", _shape(self.input_shape), "", "", human_bytes(self.input_bytes)]]
        body[0] += [spatial, spatial]
        for r in self.rows:
            memory = human_bytes(r.memory) + ("" if r.new_memory else "*")
            body.append(
                [
                    r.name or "(model)",
                    r.type,
                    _shape(r.output_shape),
                    f"{r.params:,}" if r.params else "",
                    human_count(r.macs) if r.macs else "",
                    memory,
                    _show_field(r.receptive_field),
                    _show_field(r.jump),
                ]
            )
        return [head, *body]

    def totals(self) -> list[tuple[str, str]]:
        """The lines under the table: (what, value)."""
        lines = [
            ("total params", f"{self.params:,}"),
            ("trainable params", f"{self.trainable_params:,}"),
            ("non-trainable params", f"{self.params - self.trainable_params:,}"),
            ("params size", human_bytes(self.param_bytes)),
            ("MACs", f"{human_count(self.macs)} (FLOPs = 2 x MACs = {human_count(self.flops)})"),
            ("forward activations", f"{human_bytes(self.activation_bytes)} (input included)"),
            ("batch size", str(self.batch_size)),
        ]
        if self.uncounted:
            lines.append(("MACs not counted for", ", ".join(self.uncounted)))
        return lines

    def __str__(self) -> str:
        table = self.table()
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        right = {3, 4, 5}  # numbers align right

        def line(row: list[str]) -> str:
            cells = [
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            return "  ".join(cells).rstrip()

        rule = "=" * len(line(table[0]))
        out = [line(table[0]), rule, *(line(r) for r in table[1:]), rule]
        out += [f"{what}: {value}" for what, value in self.totals()]
        out.append("* the output reuses memory already counted (in place or a view)")
        return "\n".join(out)


def parameter_count(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameters of ``model``, shared ones once; no forward pass needed."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"parameter_count needs a torch.nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def summary(
    model: nn.Module,
    input_size: Sequence[int] | None = None,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> Summary:
    """Per-layer shapes, parameters, MACs, memory and receptive fields of one forward pass.

    ``input_size`` is one input's shape without the batch dimension, (C, H, W) for images; left
    out, it is ``model.spec["in_shape"]`` of a model built by `striate.models.create`. ``dtype``
    is the input's (default: that of the model's first floating parameter, else float32).
    ``device="meta"`` computes shapes without computing values: fast for large inputs.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"summary needs a torch.nn.Module, got {type(model).__name__}")
    shape = _check_input_size(model, input_size)
    batch_size = positive_int("summary", "batch_size", batch_size)
    dev = _check_device(model, device)
    if dtype is None:
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError(
            f"summary: dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}"
        )
    x = torch.zeros((batch_size, *shape), dtype=dtype, device=dev)
    return _Recorder(model, x).run()


# --------------------------------------------------------------------------- the forward pass


class _Recorder:
    """Hooks that fill the rows during one forward pass, and the per-tensor receptive fields."""

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        self.model, self.x = model, x
        self.names: dict[nn.Module, str] = {}
        for name, m in model.named_modules():
            self.names.setdefault(m, name)
        self.rows: list[LayerSummary] = []
        self.counted: set[nn.Module] = set()  # modules whose parameters are in a row already
        self.uncounted: dict[str, None] = {}
        self.stack: list[nn.Module] = []  # modules entered and not left: the failing one on top
        self.failure: Exception | None = None
        # id(tensor) -> (weak reference, field); the weak reference guards against id reuse
        self.tensors: dict[int, tuple[weakref.ref, _Field | None]] = {}
        axes = x.dim() - 2
        self.start = _Field((1.0,) * axes, (1.0,) * axes) if axes >= 1 else None
        self.largest = self.start

    def run(self) -> Summary:
        modes = {m: m.training for m in self.model.modules()}
        handles = []
        try:
            for m in self.model.modules():
                handles.append(m.register_forward_pre_hook(self._enter))
                if self._hooked(m):
                    handles.append(m.register_forward_hook(self._record))
                else:
                    handles.append(m.register_forward_hook(self._leave))
            self.model.eval()
            self._remember(self.x, self.start)
            with torch.no_grad():
                try:
                    self.model(self.x)
                except (RuntimeError, ValueError, IndexError, TypeError) as e:
                    if isinstance(e, ConfigError) or e is self.failure:
                        raise
                    raise self._explain(e) from e
        finally:
            for h in handles:
                h.remove()
            for m, mode in modes.items():
                m.train(mode)
        params, trainable = parameter_count(self.model)
        return Summary(
            rows=self.rows,
            input_shape=tuple(self.x.shape),
            input_bytes=self.x.numel() * self.x.element_size(),
            params=params,
            trainable_params=trainable,
            param_bytes=sum(p.numel() * p.element_size() for p in self.model.parameters()),
            macs=sum(r.macs for r in self.rows),
            activation_bytes=self.x.numel() * self.x.element_size()
            + sum(r.memory for r in self.rows if r.new_memory),
            uncounted=tuple(self.uncounted),
        )

    @staticmethod
    def _hooked(m: nn.Module) -> bool:
        has_own = next(m.parameters(recurse=False), None) is not None
        return has_own or next(m.children(), None) is None

    def _enter(self, module: nn.Module, args: tuple) -> None:
        self.stack.append(module)

    def _leave(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.stack and self.stack[-1] is module:
            self.stack.pop()

    def _record(self, module: nn.Module, args: tuple, output: Any) -> None:
        try:
            self._add_row(module, args, output)
        except Exception as e:
            self.failure = e  # a fault of this module, not of the user's input: not explained
            raise

    def _add_row(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._leave(module, args, output)
        inputs = tensors_in(args)
        outputs = tensors_in(output)
        own = [] if module in self.counted else list(module.parameters(recurse=False))
        self.counted.add(module)
        is_leaf = next(module.children(), None) is None
        macs = _macs(module, inputs, outputs)
        if macs is None:
            macs = 0
            if is_leaf and own:
                self.uncounted[type(module).__name__] = None
        new = [t for t in outputs if not self._seen(t, inputs)]
        field_in = self._field_of(inputs)
        field_out = _field_after(module, field_in, inputs, outputs)
        for t in outputs:
            self._remember(t, field_out)
        shapes = tuple(tuple(t.shape) for t in outputs)
        self.rows.append(
            LayerSummary(
                name=self.names.get(module, ""),
                type=type(module).__name__,
                output_shape=shapes[0] if len(shapes) == 1 else shapes,
                params=sum(p.numel() for p in own),
                trainable=sum(p.numel() for p in own if p.requires_grad),
                macs=int(macs),
                memory=sum(t.numel() * t.element_size() for t in outputs),
                new_memory=bool(new) or not outputs,
                receptive_field=None if field_out is None else _ints(field_out.r),
                jump=None if field_out is None else _ints(field_out.j),
            )
        )

    def _seen(self, t: torch.Tensor, inputs: list[torch.Tensor]) -> bool:
        """Whether ``t`` is, or views, a tensor already counted (an input or an earlier output)."""
        root = t._base if t._base is not None else t
        entry = self.tensors.get(id(root))
        if entry is not None and entry[0]() is root:
            return True
        if t.device.type == "meta":
            return False
        ptr = t.untyped_storage().data_ptr()
        return any(i.device == t.device and i.untyped_storage().data_ptr() == ptr for i in inputs)

    def _remember(self, t: torch.Tensor, fld: _Field | None) -> None:
        self.tensors[id(t)] = (weakref.ref(t), fld)
        if fld is not None and (self.largest is None or fld.key() > self.largest.key()):
            self.largest = fld

    def _field_of(self, inputs: list[torch.Tensor]) -> _Field | None:
        """The largest field among the inputs; one no module produced gets the largest so far."""
        fields = []
        for t in inputs:
            entry = self.tensors.get(id(t))
            if entry is not None and entry[0]() is t:
                fields.append(entry[1])
            else:
                fields.append(self.largest)
        known = [f for f in fields if f is not None]
        return max(known, key=_Field.key) if known else None

    def _explain(self, e: Exception) -> ConfigError:
        where = ""
        if self.stack:
            m = self.stack[-1]
            where = f" in layer {self.names.get(m, '') or '(model)'!r} ({type(m).__name__})"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        shape = "x".join(map(str, self.x.shape[1:]))
        small = ("too small", "can't be greater", "cannot be greater", "Output size is")
        if any(s in msg for s in small):
            hint = (
                "the input is too small for this model: use a larger input_size (ImageNet-style "
                "models expect about 3x224x224), or build the model with stem='cifar' for "
                "32x32 images"
            )
        else:
            hint = (
                "check that input_size (C, H, W) is the shape the model was built for "
                "(model.spec['in_shape'] for a model made by striate.models.create)"
            )
        return ConfigError(f"summary: a {shape} input failed{where}: {msg}; {hint}")


# --------------------------------------------------------------------------- per-layer rules


@dataclass(frozen=True)
class _Field:
    """Receptive field size ``r`` and jump ``j`` per spatial axis."""

    r: tuple[float, ...]
    j: tuple[float, ...]

    def key(self) -> tuple[float, float]:
        return (max(self.r), max(self.j))


def _macs(m: nn.Module, inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> int | None:
    """Multiply-accumulates of one call; None for a parametrised module without a rule."""
    if not outputs:
        return 0
    out = outputs[0]
    if isinstance(m, _TRANSPOSED):
        if not inputs:
            return 0
        return inputs[0].numel() * (m.out_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, _CONVS):
        return out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    if isinstance(m, nn.Bilinear):  # y_k = x1ᵀ (A_k x2): in1·in2 + in1 per output value
        return out.numel() * (m.in1_features * m.in2_features + m.in1_features)
    if isinstance(m, _NORMS):
        return out.numel()
    if isinstance(m, _FREE):
        return 0
    if next(m.parameters(recurse=False), None) is not None:
        return None
    return 0


def _field_after(
    m: nn.Module, fld: _Field | None, inputs: list[torch.Tensor], outputs: list[torch.Tensor]
) -> _Field | None:
    """The receptive field of ``m``'s output given its input's (see the module docstring)."""
    if fld is None or not inputs or not outputs:
        return fld
    axes = len(fld.r)
    x, y = inputs[0], outputs[0]
    spatial = x.dim() == axes + 2 and y.dim() == axes + 2
    if isinstance(m, nn.Linear | nn.Bilinear):
        # on a flattened input every output mixes every position; on (N, L, D) only channels
        return _Field((math.inf,) * axes, (math.inf,) * axes) if x.dim() == 2 else fld
    if not spatial:
        return fld
    if isinstance(m, _CONVS + _MAX_POOLS + _AVG_POOLS):
        k = _tuple(m.kernel_size, axes)
        s = _tuple(m.stride if m.stride is not None else m.kernel_size, axes)
        d = _tuple(getattr(m, "dilation", 1), axes)
        j = tuple(ji * si for ji, si in zip(fld.j, s, strict=True))
        return _Field(_grow(fld.r, k, d, fld.j), j)
    if isinstance(m, _TRANSPOSED):
        k, s, d = (_tuple(v, axes) for v in (m.kernel_size, m.stride, m.dilation))
        j = tuple(ji / si for ji, si in zip(fld.j, s, strict=True))
        return _Field(_grow(fld.r, k, d, j), j)
    if isinstance(m, _ADAPTIVE_POOLS):
        r, j = [], []
        for ri, ji, n, o in zip(fld.r, fld.j, x.shape[2:], y.shape[2:], strict=True):
            # PyTorch's window i is [floor(i·n/o), ceil((i+1)·n/o)): the largest one counts
            k = max(-(-(i + 1) * n // o) - (i * n // o) for i in range(o))
            r.append(ri + (k - 1) * ji)
            j.append(ji * n / o)
        return _Field(tuple(r), tuple(j))
    if isinstance(m, nn.PixelUnshuffle):  # an f×f block per output: a conv with k = s = f
        f = (m.downscale_factor,) * axes
        j = tuple(ji * fi for ji, fi in zip(fld.j, f, strict=True))
        return _Field(_grow(fld.r, f, (1,) * axes, fld.j), j)
    if isinstance(m, nn.Upsample | nn.PixelShuffle):
        j = tuple(ji * n / o for ji, n, o in zip(fld.j, x.shape[2:], y.shape[2:], strict=True))
        return _Field(fld.r, j)
    return fld


# --------------------------------------------------------------------------- helpers


def _grow(r: tuple, k: tuple, d: tuple, j: tuple) -> tuple[float, ...]:
    """``r + (k - 1)·d·j`` per axis."""
    return tuple(ri + (ki - 1) * di * ji for ri, ki, di, ji in zip(r, k, d, j, strict=True))


def _check_input_size(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, ...]:
    if input_size is None:
        spec = getattr(model, "spec", None)
        if isinstance(spec, dict) and "in_shape" in spec:
            input_size = spec["in_shape"]
        else:
            raise ConfigError(
                "summary: pass input_size, one input's shape without the batch dimension, such "
                "as (3, 32, 32); only a model made by striate.models.create knows its own"
            )
    if (
        isinstance(input_size, (str, bytes))
        or not isinstance(input_size, Sequence)
        or not input_size
        or not all(is_int(v) and v >= 1 for v in input_size)
    ):
        raise ConfigError(
            f"summary: input_size must be one input's shape without the batch dimension, "
            f"positive ints such as (3, 224, 224) or (1, 28, 28); got {input_size!r}"
        )
    return tuple(int(v) for v in input_size)


def _check_device(model: nn.Module, device: str | torch.device) -> torch.device:
    usable = "'cpu', 'cuda', 'cuda:N' or 'meta'"
    dev = parse_device(device, usable, owner="summary", error=ConfigError)
    on = {t.device for t in (*model.parameters(), *model.buffers())}
    if on and not all(_same_device(d, dev) for d in on):
        where = ", ".join(sorted(map(str, on)))
        raise ConfigError(
            f"summary: the model is on {where} but device={str(dev)!r}; pass device="
            f"{str(next(iter(on)))!r} or move the model with model.to({str(dev)!r})"
        )
    return dev


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in a module's arguments or output (tuples, lists, dicts), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    return []


def _tuple(v: int | Sequence[int], n: int) -> tuple[int, ...]:
    if isinstance(v, (list, tuple)):
        return tuple(v) if len(v) == n else (v[0],) * n
    return (v,) * n


def _ints(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(int(v) if math.isfinite(v) and v == int(v) else v for v in values)


def _json_field(values: tuple[float, ...] | None) -> list | None:
    if values is None or any(math.isinf(v) for v in values):
        return None
    return list(values)


def _listify(shape: tuple) -> list:
    return [_listify(s) if isinstance(s, tuple) else s for s in shape]


def _shape(shape: tuple) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape(s) for s in shape)
    return "x".join(map(str, shape))


def _show_field(values: tuple[float, ...] | None) -> str:
    if values is None:
        return ""
    if any(math.isinf(v) for v in values):
        return "all"
    shown = [str(v) if isinstance(v, int) else f"{v:.3g}" for v in values]
    return shown[0] if len(set(shown)) == 1 else "x".join(shown)


def human_count(n: float) -> str:
    """A count with an SI suffix: 1234567 -> '1.23M'."""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{int(n)}"


def human_bytes(n: float) -> str:
    """Bytes in decimal units, as the lectures count (24M values x 4 bytes = 96 MB)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"
