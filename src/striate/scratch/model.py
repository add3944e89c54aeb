"""A network as a list of layers, run forward in order and backward in reverse.

    model = Model([Linear(784, 100), ReLU(), Linear(100, 10)])
    loss = model.loss(x, y)                # forward, softmax cross-entropy, backward: grads set
    for key, param, grad in model.parameters(): ...   # "0.W", "0.b", "2.W", ...
    labels = model.predict(x_test)

A layer is anything with `params` and `grads` (dicts of arrays by the same names), `forward(x,
train)` and `backward(grad)` returning dL/dx, as `striate.scratch.layers.Layer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from striate.checks import positive_int
from striate.scratch.layers import Layer
from striate.scratch.losses import softmax_cross_entropy

__all__ = ["Model"]


class Model:
    """Layers applied in order; parameters named "<layer index>.<parameter name>"."""

    def __init__(self, layers: Iterable[Layer]) -> None:
        self.layers = list(layers)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """The output of the last layer; with `train`, dropout drops and batch norm uses the
        batch's statistics, and every layer keeps what its backward needs."""
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dL/dx from dL/d(output) of the last `forward`; each layer stores its gradients."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def parameters(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(key, parameter, gradient) for every parameter, in layer order."""
        for i, layer in enumerate(self.layers):
            for name, param in layer.params.items():
                yield f"{i}.{name}", param, layer.grads.get(name, np.zeros_like(param))

    def params(self) -> dict[str, np.ndarray]:
        """The parameters by key, as an optimiser's `step` takes them."""
        return {key: param for key, param, _ in self.parameters()}

    def grads(self) -> dict[str, np.ndarray]:
        """The gradients of the last `backward` by the parameters' keys."""
        return {key: grad for key, _, grad in self.parameters()}

    def loss(self, x: np.ndarray, y: np.ndarray, train: bool = True) -> float:
        """The mean softmax cross-entropy of the logits of `x` against labels `y`, after a
        backward pass that leaves every layer's gradients for it."""
        logits = self.forward(x, train)
        loss, dlogits = softmax_cross_entropy(logits, y)
        self.backward(dlogits)
        return float(loss)

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """The highest-scoring class of each sample (test mode), `batch_size` samples at a time."""
        batch_size = positive_int("Model.predict", "batch_size", batch_size)
        chunks = [
            self.forward(x[i : i + batch_size], train=False).argmax(axis=1)
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)

    def accuracy(self, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
        """The share of samples in `x` whose predicted class is `y`."""
        return float(np.mean(self.predict(x, batch_size) == y)) if len(y) else float("nan")
