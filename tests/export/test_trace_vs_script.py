"""Lecture 8's static-vs-dynamic examples: tracing records the path one input took, scripting
keeps the Python control flow; `export` warns when a trace froze such a decision."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from striate.errors import StriateWarning
from striate.export import ParityError, export_model
from striate.export.torchscript import trace
from striate.models.io import ImageClassifier


class Conditional(nn.Module):
    """y = w1·x if z > 0 else w2·x (the lecture's conditional)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(4, 5, generator=g))
        self.w2 = nn.Parameter(torch.randn(4, 5, generator=g))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if bool(z > 0):
            return x.mm(self.w1)
        return x.mm(self.w2)


class Loop(nn.Module):
    """y_t = (y_{t-1} + x_t)·w over the T rows of x (the lecture's loop)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.y0 = nn.Parameter(torch.randn(4, generator=g))
        self.w = nn.Parameter(torch.randn(4, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.y0
        for t in range(x.shape[0]):
            y = (y + x[t]) * self.w
        return y


def test_tracing_bakes_in_the_branch_scripting_keeps_it():
    m, x = Conditional(), torch.randn(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(m, (x, torch.tensor(10.0)))
    scripted = torch.jit.script(m)
    z = torch.tensor(-1.0)
    assert torch.allclose(traced(x, z), x.mm(m.w1))  # the z > 0 path, whatever z is
    assert torch.allclose(scripted(x, z), x.mm(m.w2))
    assert torch.allclose(scripted(x, z), m(x, z))


def test_tracing_unrolls_the_loop_scripting_keeps_it():
    m = Loop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(m, torch.randn(3, 4))
    scripted = torch.jit.script(m)
    x = torch.randn(5, 4)
    want = m(x)
    assert torch.allclose(scripted(x), want)
    # the trace runs T=3 steps on rows 0..2 whatever T is
    assert torch.allclose(traced(x), m(x[:3]))
    assert not torch.allclose(traced(x), want)


class Branchy(nn.Module):
    """An image net with a data-dependent branch: brighter batches take another path."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 10), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.a(x) if x.mean() > 0.3 else self.b(x)


def test_trace_warns_when_python_decides_on_tensor_values():
    with pytest.warns(StriateWarning, match="may not trace faithfully"):
        trace(Branchy(), torch.rand(2, 1, 8, 8))


def test_export_of_an_untraceable_model_fails_scripting_works(tmp_path, digits_images):
    torch.manual_seed(0)
    clf = ImageClassifier(Branchy(), [str(i) for i in range(10)], (1, 8, 8)).eval()
    dark = digits_images * 0.1  # mean below 0.3: the example takes the b path...
    bright = torch.cat([dark, 1 - digits_images * 0.1])  # ...the bright half takes a
    with pytest.warns(StriateWarning), pytest.raises(ParityError, match="torchscript export"):
        export_model(clf, tmp_path / "m.pt", "torchscript", images=bright)
    assert not (tmp_path / "m.pt").exists()
    report = export_model(clf, tmp_path / "m.pt", "torchscript", method="script", images=bright)
    assert report.parity.max_abs_diff < 1e-5
