"""Weight initialisation: set every Conv/Linear layer of a model by a named scheme.

Too small and a deep net's activations shrink layer after layer toward zero (and so do the
gradients); too large and they explode or saturate (CS231n lecture 6). The schemes, for a layer
with ``fan_in`` inputs per output (``in_channels·kh·kw`` for a convolution) and ``fan_out``
(``out_channels·kh·kw``):

- ``"default"``: leave the layers as PyTorch built them (Kaiming-uniform with ``a=√5``, i.e.
  ``U(±1/√fan_in)``).
- ``"normal"``: "small random numbers", ``W ~ N(0, std²)``, ``std = 0.01`` by default. Fine for
  small nets; through deep ReLU stacks each layer scales the activations by about
  ``std·√(fan_in/2)``, so they vanish.
- ``"xavier"``: Glorot & Bengio 2010, normal form: ``W ~ N(0, gain²·2/(fan_in + fan_out))``
  (the uniform form has the same variance). ``gain`` comes from the activation that follows the
  layer when it is a known one (``torch.nn.init.calculate_gain``: ReLU √2, leaky ReLU
  ``√(2/(1+slope²))``, tanh 5/3, SELU 3/4, sigmoid 1), else 1.
- ``"kaiming"``: He et al. 2015 (arXiv:1502.01852), ``W ~ N(0, 2/fan_in)``: fan-in mode with
  the ReLU gain, which keeps the variance of activations constant through ReLU layers.

Every scheme but ``"default"`` also zeroes the biases and sets normalisation layers (BatchNorm,
GroupNorm, LayerNorm) to weight 1, bias 0. The weights are drawn from torch's global RNG, which
the caller (the Trainer) seeds.
"""

from __future__ import annotations

import torch
from torch import nn

from striate.checks import positive_number
from striate.errors import ConfigError

__all__ = ["INIT_SCHEMES", "init_weights"]

INIT_SCHEMES = ("default", "normal", "xavier", "kaiming")

_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
_ACTIVATIONS = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.SELU,
    nn.Sigmoid,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Softplus,
)


def init_weights(model: nn.Module, scheme: str = "kaiming", std: float = 0.01) -> nn.Module:
    """Initialise ``model``'s Conv/Linear (and norm) layers in place by ``scheme``; return it.

    ``std`` is the standard deviation of the ``"normal"`` scheme. See the module docstring.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"init_weights takes a torch.nn.Module, got {type(model).__name__}")
    if scheme not in INIT_SCHEMES:
        raise ConfigError(
            f"unknown weight initialisation {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}"
        )
    positive_number("init_weights", "std", std)
    if scheme == "default":
        return model
    modules = list(model.modules())  # pre-order: the order of a Sequential stack's forward
    with torch.no_grad():
        for i, m in enumerate(modules):
            if isinstance(m, _WEIGHTED):
                if scheme == "normal":
                    nn.init.normal_(m.weight, 0.0, float(std))
                elif scheme == "xavier":
                    nn.init.xavier_normal_(m.weight, gain=_gain(_next_activation(modules, i)))
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, _NORMS):
                if getattr(m, "weight", None) is not None:
                    nn.init.ones_(m.weight)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
    return model


def _next_activation(modules: list[nn.Module], i: int) -> nn.Module | None:
    """The first activation module after ``modules[i]`` and before the next Conv/Linear.

    Norm, dropout and pooling layers in between are skipped. Activations applied as functions in
    ``forward`` are invisible here, and so give gain 1.
    """
    for m in modules[i + 1 :]:
        if isinstance(m, _WEIGHTED):
            return None
        if isinstance(m, _ACTIVATIONS):
            return m
    return None


def _gain(m: nn.Module | None) -> float:
    """The recommended gain of activation ``m``; 1 when torch gives none (or there is none)."""
    if isinstance(m, nn.ReLU):
        return nn.init.calculate_gain("relu")
    if isinstance(m, nn.LeakyReLU):
        return nn.init.calculate_gain("leaky_relu", m.negative_slope)
    if isinstance(m, nn.Tanh):
        return nn.init.calculate_gain("tanh")
    if isinstance(m, nn.SELU):
        return nn.init.calculate_gain("selu")
    if isinstance(m, nn.Sigmoid):
        return nn.init.calculate_gain("sigmoid")
    return 1.0
