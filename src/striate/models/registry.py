"""The model registry: architectures by name, built with their arguments checked at the door.

A family file (``mlp.py``, ``convnet.py``, ``resnet.py``...; timm's layout) defines plain
``nn.Module`` classes and registers a *builder* per named variant, with the input and classes the
architecture is made for (`CIFAR`: 3×32×32 and 10 classes; `IMAGENET`: torchvision's 3×224×224
and 1000)::

    @register("convnet_small", **CIFAR)
    def convnet_small(num_classes: int, in_shape: tuple[int, int, int], channels=(32, 64)):
        \"\"\"One line that `describe` and `striate models` show.\"\"\"
        return ConvNet(in_shape, num_classes, channels=channels)

or, where the builder would only repeat a model class's arguments, registers the class, whose
constructor then declares each option once (`builder_of`; `register_variant` fixes some)::

    convnet = register_variant("convnet", ConvNet, "One line...", **CIFAR)

and ``striate/models/__init__.py`` imports the file so the name exists. A builder takes
``num_classes`` and ``in_shape`` (C, H, W) first, then named options with JSON-friendly defaults;
no ``*args``/``**kwargs``, so `create` can check every option against the signature.

Names are spelled as torchvision spells them, with underscores (``convnet_small``,
``alexnet_2012``, ``resnext50_32x4d``); a hyphen is accepted for an underscore wherever a name is
looked up (``convnet-small``), so model files saved under the old spellings still load.

``create(name, ...)`` builds the model (at its registered input and classes unless told
otherwise), applies the weight initialisation ``init`` and records ``model.spec``: the name,
``num_classes``, ``in_shape``, every option with its default filled in, and the init, all JSON
values, so that ``from_spec(model.spec)`` (and ``striate.load_model``) rebuilds the same
architecture from a ``model.json`` without unpickling anything.

The names live in `MODELS`, a `striate.registry.Registry` (one entry per builder, its summary the
docstring's first line, its default input in the entry's ``in_shape`` and ``num_classes``).
``check_num_classes``, ``check_in_shape`` (both at once: ``check_io``) and ``check_dropout``
validate the arguments every family shares; the others use `striate.checks`.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from striate.checks import (
    did_you_mean,
    fail,
    integer,
    is_int,
    is_number,
    positive_number,
    probability,
)
from striate.errors import ConfigError
from striate.models.init import INIT_SCHEMES, init_weights
from striate.models.weights import apply_weights
from striate.registry import Registry

__all__ = [
    "CIFAR",
    "IMAGENET",
    "MODELS",
    "available",
    "builder",
    "builder_of",
    "canonical_name",
    "create",
    "default_input",
    "describe",
    "from_spec",
    "register",
    "register_variant",
]

Builder = Callable[..., nn.Module]

CIFAR: dict[str, Any] = {"in_shape": (3, 32, 32), "num_classes": 10}
IMAGENET: dict[str, Any] = {"in_shape": (3, 224, 224), "num_classes": 1000}  # torchvision's


def canonical_name(name: str) -> str:
    """The registry's spelling of a model name: torchvision's underscores for hyphens
    ("convnet-small" -> "convnet_small")."""
    return name.replace("-", "_") if isinstance(name, str) else name


MODELS: Registry[Builder] = Registry("model", normalize=canonical_name)
_LEADING = ("num_classes", "in_shape")
_RESERVED = ("name", "init", "init_std")  # arguments of create itself
_SPEC_KEYS = ("name", "num_classes", "in_shape", "kwargs", "init", "init_std")
_REQUIRED = inspect.Parameter.empty  # the "default" of an option without one


def register(
    name: str,
    *,
    in_shape: Sequence[int] = CIFAR["in_shape"],
    num_classes: int = CIFAR["num_classes"],
) -> Callable[[Builder], Builder]:
    """Decorator: make ``fn(num_classes, in_shape, **options) -> nn.Module`` buildable by name.

    `in_shape` and `num_classes` are what `create(name)` builds without them: the input the
    architecture is made for (``**IMAGENET`` for torchvision's ImageNet models).
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise ConfigError(
            f"a model name must be a non-empty string without spaces around it, got {name!r}"
        )
    key = canonical_name(name)
    defaults = check_io(in_shape, num_classes, f"model {key!r}")

    def decorate(fn: Builder) -> Builder:
        if key in MODELS:
            other = MODELS.get(key)
            raise ConfigError(
                f"model {key!r} is already registered (by {other.__module__}."
                f"{other.__qualname__}); choose another name"
            )
        params = list(inspect.signature(fn).parameters.values())
        if tuple(p.name for p in params[:2]) != _LEADING:
            raise ConfigError(
                f"builder {fn.__qualname__} for {key!r} must take (num_classes, in_shape, ...) "
                f"first, got ({', '.join(p.name for p in params[:2])})"
            )
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise ConfigError(
                    f"builder {fn.__qualname__} for {key!r}: every option must be a named "
                    f"argument (no *args, **kwargs or positional-only), so create can check it "
                    f"and the spec can record it; got {p}"
                )
            if p.name in _RESERVED:
                raise ConfigError(
                    f"builder {fn.__qualname__} for {key!r}: {p.name!r} is an argument of "
                    f"create itself; rename the option"
                )
        doc = inspect.getdoc(fn) or ""
        summary = doc.strip().splitlines()[0] if doc.strip() else ""
        MODELS.add(key, fn, summary, in_shape=defaults[0], num_classes=defaults[1])
        return fn

    return decorate


def register_variant(
    name: str,
    builder: Builder | type[nn.Module],
    doc: str,
    *,
    defaults: Mapping[str, Any] = (),
    in_shape: Sequence[int] = CIFAR["in_shape"],
    num_classes: int = CIFAR["num_classes"],
    **fixed: Any,
) -> Builder:
    """Register `name` as `builder` with some options fixed (a family's configuration or depth)
    and others given new `defaults`, so that a family of variants needs one builder; the
    variant's options are the builder's others. `builder` may be a model class (its builder is
    `builder_of` it). `in_shape` and `num_classes` as in `register`. Returns the variant's
    builder."""
    if isinstance(builder, type):
        builder = builder_of(name, builder, doc)
    sig = inspect.signature(builder)
    defaults = dict(defaults)
    unknown = sorted((set(fixed) | set(defaults)) - set(sig.parameters))
    if unknown:
        raise ConfigError(f"variant {name!r}: {builder.__qualname__} has no option {unknown}")
    params = [
        p.replace(default=defaults.get(p.name, p.default))
        for p in sig.parameters.values()
        if p.name not in fixed
    ]
    variant = _derived(
        name, doc, builder.__module__, sig.replace(parameters=params), builder, fixed
    )
    return register(name, in_shape=in_shape, num_classes=num_classes)(variant)


def builder_of(
    name: str, cls: Callable[..., nn.Module], doc: str, *, defaults: Mapping[str, Any] = ()
) -> Builder:
    """The builder ``name(num_classes, in_shape, **options)`` of the model class `cls`: it
    returns ``cls(in_shape=in_shape, num_classes=num_classes, **options)``, and its options are
    the constructor's other arguments with the constructor's defaults (or `defaults`). The class
    declares each option once, so the builder cannot drift from it; pass the result to
    `register` or `register_variant`."""
    sig = inspect.signature(cls)
    if not set(_LEADING) <= set(sig.parameters):
        raise ConfigError(f"builder {name!r}: {cls.__qualname__} must take {_LEADING}")
    defaults = dict(defaults)
    unknown = sorted(set(defaults) - (set(sig.parameters) - set(_LEADING)))
    if unknown:
        raise ConfigError(f"builder {name!r}: {cls.__qualname__} has no option {unknown}")
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    leading = [
        inspect.Parameter("num_classes", kind, annotation="int"),
        inspect.Parameter("in_shape", kind, annotation="tuple[int, int, int]"),
    ]
    options = [
        p.replace(kind=kind, default=defaults.get(p.name, p.default))
        for p in sig.parameters.values()
        if p.name not in _LEADING
    ]
    sig = inspect.Signature(leading + options, return_annotation=cls.__name__)
    return _derived(name, doc, cls.__module__, sig, cls, {})


def available() -> list[str]:
    """The registered model names (torchvision's spelling, with underscores), sorted."""
    return sorted(MODELS.names())


def default_input(name: str) -> tuple[tuple[int, int, int], int]:
    """``(in_shape, num_classes)`` that `create(name)` builds without them: the input the
    architecture is made for (3×224×224 and 1000 classes for torchvision's ImageNet models,
    3×32×32 and 10 for the CIFAR ones)."""
    meta = MODELS.entry(name).meta  # an unknown name: the did-you-mean error
    return meta["in_shape"], meta["num_classes"]


def describe(name: str) -> str:
    """The first line of the builder's docstring: what the model is, in one line."""
    return MODELS.entry(name).summary


def builder(name: str) -> Builder:
    """The builder of `name` (hyphens read as underscores), or a ConfigError that suggests."""
    return MODELS.get(name)


def create(
    name: str,
    num_classes: int | None = None,
    in_shape: Sequence[int] | None = None,
    *,
    init: str = "default",
    init_std: float = 0.01,
    weights: str | os.PathLike | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the registered model ``name`` for ``num_classes`` classes and C×H×W inputs.

    Without them, the model's own (`default_input`: torchvision's 1000 classes and 3×224×224
    for an ImageNet architecture, 10 and 3×32×32 for a CIFAR one). A hyphen in ``name`` is read
    as an underscore. ``kwargs`` are the builder's options (``describe``/the builder's signature
    list them); ``init`` is a weight initialisation of `init_weights` ("default" keeps
    PyTorch's), ``init_std`` the standard deviation of ``init="normal"``. ``weights`` loads
    named weights (``"imagenet"``; `striate.models.weights`) or a weight file, every key checked;
    the model's ``classes``, ``normalization`` and ``crop`` then say what the weights expect. The
    model's ``spec`` attribute records everything `from_spec` needs to build it again.
    """
    fn = builder(name)
    name = canonical_name(name)
    default_shape, default_classes = default_input(name)
    num_classes = default_classes if num_classes is None else num_classes
    in_shape = default_shape if in_shape is None else in_shape
    num_classes = check_num_classes(num_classes, f"model {name!r}")
    in_shape = check_in_shape(in_shape, f"model {name!r}")
    if init not in INIT_SCHEMES:
        raise ConfigError(
            f"model {name!r}: unknown init {init!r}; choose one of {', '.join(INIT_SCHEMES)}"
        )
    init_std = positive_number(f"model {name!r}", "init_std", init_std)
    options = _options(fn)
    unknown = [k for k in kwargs if k not in options]
    if unknown:
        hint = "".join(did_you_mean(k, options) for k in unknown)
        raise ConfigError(
            f"model {name!r} has no option {', '.join(map(repr, unknown))}{hint}; its options "
            f"are {', '.join(options) or 'none'}"
        )
    missing = [k for k, default in options.items() if default is _REQUIRED and k not in kwargs]
    if missing:
        raise ConfigError(f"model {name!r} needs the option(s) {', '.join(missing)}")
    # built from the JSON form, so that from_spec(model.spec) calls the builder identically
    filled = {k: _to_json(kwargs.get(k, default), k, name) for k, default in options.items()}
    model = fn(num_classes, in_shape, **filled)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"the builder of {name!r} returned {type(model).__name__}, not a module")
    init_weights(model, init, std=init_std)
    if init != "default" and callable(getattr(model, "after_init", None)):
        model.after_init()  # what the model sets up over a generic scheme (zero_init_residual)
    model.spec = {
        "name": name,
        "num_classes": num_classes,
        "in_shape": list(in_shape),
        "kwargs": {k: _to_json(v, k, name) for k, v in filled.items()},  # a copy
        "init": init,
        "init_std": init_std,
    }
    if weights is not None:
        apply_weights(model, name, weights)
    return model


def from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild a model from its ``model.spec`` (as read back from JSON): same architecture.

    The weights are freshly initialised; load the state dict to get the trained ones.
    """
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(
            f"a model spec must be a mapping with at least a 'name' (keys: "
            f"{', '.join(_SPEC_KEYS)}), got {type(spec).__name__}"
        )
    unknown = [k for k in spec if k not in _SPEC_KEYS]
    if unknown:
        raise ConfigError(
            f"model spec has unknown key(s) {', '.join(map(repr, unknown))}; valid keys are "
            f"{', '.join(_SPEC_KEYS)}"
        )
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"model spec 'kwargs' must be a mapping, got {type(kwargs).__name__}")
    return create(
        spec["name"],
        spec.get("num_classes"),
        spec.get("in_shape"),
        init=spec.get("init", "default"),
        init_std=spec.get("init_std", 0.01),
        **kwargs,
    )


# --------------------------------------------------------------------------- internals


def _derived(
    name: str,
    doc: str,
    module: str,
    sig: inspect.Signature,
    target: Callable[..., nn.Module],
    fixed: Mapping[str, Any],
) -> Builder:
    """A builder with signature `sig` that calls ``target(**fixed, **arguments)``, every
    argument by name and with `sig`'s defaults filled in."""

    def built(*args: Any, **kwargs: Any) -> nn.Module:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return target(**fixed, **bound.arguments)

    built.__signature__ = sig  # type: ignore[attr-defined]
    built.__doc__, built.__name__, built.__qualname__ = doc, name, name
    built.__module__ = module
    return built


def _options(fn: Builder) -> dict[str, Any]:
    """The builder's options after (num_classes, in_shape), with their defaults."""
    params = list(inspect.signature(fn).parameters.values())[2:]
    return {p.name: p.default for p in params}


def _to_json(value: Any, arg: str, name: str) -> Any:
    """``value`` as a JSON value (tuples become lists, NumPy scalars Python ones)."""
    if isinstance(value, (list, tuple)):
        return [_to_json(v, arg, name) for v in value]
    if is_int(value):
        return int(value)
    if is_number(value) and math.isfinite(value):
        return float(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    raise ConfigError(
        f"model {name!r}: option {arg}={value!r} is not a JSON value (a number, string, bool, "
        f"None or a list of them), so the model could not be saved and rebuilt; pass it by "
        f"name or number"
    )


# --------------------------------------------------------------------------- argument checks


def check_dropout(value: Any, owner: str) -> float:
    """A dropout probability in [0, 1)."""
    return probability(owner, "dropout", value, high_open=True, hint="0 turns it off")  # type: ignore[return-value]


def check_io(in_shape: Any, num_classes: Any, owner: str) -> tuple[tuple[int, int, int], int]:
    """``(check_in_shape(in_shape), check_num_classes(num_classes))``: what every model checks
    first, its input (C, H, W) and its number of classes."""
    return check_in_shape(in_shape, owner), check_num_classes(num_classes, owner)


def check_num_classes(value: Any, owner: str) -> int:
    """At least two classes."""
    return integer(owner, "num_classes", value, low=2, hint="a classifier needs two classes")  # type: ignore[return-value]


def check_in_shape(value: Any, owner: str) -> tuple[int, int, int]:
    """An input shape (C, H, W) of three positive ints."""
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != 3
        or not all(is_int(v) and v >= 1 for v in value)
    ):
        raise fail(
            owner,
            "in_shape",
            "(channels, height, width), three positive integers such as (3, 32, 32) or "
            "(1, 28, 28), without the batch dimension",
            value,
        )
    return int(value[0]), int(value[1]), int(value[2])
