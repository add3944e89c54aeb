"""The attribution methods by name, for commands and reports: ``ATTRIBUTIONS.get("grad-cam")``.

Each entry is the captum-shaped function; its keyword options (``steps``, ``layer``, ``patch``…)
are read from its signature, so a command passes only what the method takes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch

from striate.errors import ConfigError
from striate.interpret.cam import grad_cam
from striate.interpret.gradients import guided_backprop, integrated_gradients, saliency, smooth_grad
from striate.interpret.perturbation import occlusion
from striate.registry import Registry

__all__ = ["ATTRIBUTIONS", "attribute", "options_of"]

ATTRIBUTIONS: Registry[Callable[..., torch.Tensor]] = Registry(
    "attribution method", normalize=lambda name: name.replace("_", "-")
)
ATTRIBUTIONS.add("saliency", saliency, "gradient of the class score (Simonyan et al. 2014)")
ATTRIBUTIONS.add(
    "guided-backprop", guided_backprop, "positive gradients through rectifiers (Springenberg 2015)"
)
ATTRIBUTIONS.add("grad-cam", grad_cam, "class-weighted maps of a convolution (Selvaraju 2017)")
ATTRIBUTIONS.add(
    "integrated-gradients",
    integrated_gradients,
    "gradients along a path from a baseline (Sundararajan 2017)",
)
ATTRIBUTIONS.add("smooth-grad", smooth_grad, "gradients averaged over noisy copies (Smilkov 2017)")
ATTRIBUTIONS.add("occlusion", occlusion, "score drop under a sliding patch (Zeiler & Fergus 2014)")


def options_of(name: str) -> list[str]:
    """The keyword options method `name` takes."""
    params = inspect.signature(ATTRIBUTIONS.get(name)).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def attribute(
    name: str, model: torch.nn.Module, inputs: torch.Tensor, target: Any = None,
    options: Mapping[str, Any] | None = None,
) -> torch.Tensor:  # fmt: skip
    """Method `name`'s attributions; an option the method does not take is an error saying
    which methods take it."""
    method = ATTRIBUTIONS.get(name)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    known = options_of(name)
    for key in options:
        if key not in known:
            takers = [n for n in ATTRIBUTIONS.names() if key in options_of(n)]
            raise ConfigError(
                f"{name} has no option {key!r}; it is an option of {', '.join(takers) or 'none'}"
            )
    return method(model, inputs, target, **options)
