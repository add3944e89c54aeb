"""The multi-layer perceptron: fully connected layers on flattened images ("mlp" in the registry).

``MLP([784, 100, 10])`` is the classic MNIST net: 784 pixels → 100 hidden ReLU units → 10 class
scores (logits; the softmax is in the loss). Between hidden layers: [BatchNorm1d] → activation →
[Dropout]; nothing after the last layer. Activations are chosen by name from `ACTIVATIONS`, which
the ConvNet shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from striate.checks import boolean, int_sequence
from striate.errors import ConfigError
from striate.models.registry import CIFAR, check_dropout, register
from striate.registry import Registry

__all__ = ["ACTIVATIONS", "MLP", "make_activation", "mlp"]

ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")
ACTIVATIONS.add("relu", nn.ReLU, "max(0, x)")
ACTIVATIONS.add("leaky_relu", nn.LeakyReLU, "max(0.01·x, x)")
ACTIVATIONS.add("elu", nn.ELU, "x, or exp(x) - 1 below 0")
ACTIVATIONS.add("gelu", nn.GELU, "x·Φ(x), Φ the standard normal CDF")
ACTIVATIONS.add("tanh", nn.Tanh, "tanh(x)")
ACTIVATIONS.add("sigmoid", nn.Sigmoid, "1 / (1 + exp(-x))")


def make_activation(name: str, owner: str = "model") -> nn.Module:
    """A fresh activation module by name (one of `ACTIVATIONS`)."""
    try:
        return ACTIVATIONS.get(name)()
    except ConfigError as e:
        raise ConfigError(f"{owner}: {e}") from None


class MLP(nn.Sequential):
    """Flatten, then Linear layers ``sizes[0] → sizes[1] → ... → sizes[-1]`` (logits last)."""

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        sizes = int_sequence("MLP", "sizes", sizes, min_len=2)
        dropout = check_dropout(dropout, "MLP")
        batchnorm = boolean("MLP", "batchnorm", batchnorm)
        make_activation(activation, "MLP")  # checks the name before anything is built
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:  # hidden layer
                if batchnorm:
                    layers.append(nn.BatchNorm1d(n_out))
                layers.append(make_activation(activation))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        super().__init__(*layers)
        self.sizes = sizes


@register("mlp", **CIFAR)
def mlp(
    num_classes: int,
    in_shape: tuple[int, int, int],
    hidden: Sequence[int] = (100,),
    activation: str = "relu",
    dropout: float = 0.0,
    batchnorm: bool = False,
) -> MLP:
    """Multi-layer perceptron on flattened pixels: C·H·W → hidden... → classes."""
    hidden = int_sequence("model 'mlp'", "hidden", hidden)
    c, h, w = in_shape
    return MLP([c * h * w, *hidden, num_classes], activation, dropout, batchnorm)
