"""The engine's GradientClipping against the formulas: by norm, g ← g·min(1, c/‖g‖₂) with
‖g‖₂ = sqrt(Σ g²) over all parameters together (the slides' snippet, lecture 10 of 002_*.txt,
divides by Σ g² without the square root); by value, min-char-rnn's np.clip(g, −5, 5) per entry."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from striate.data import BatchLoader, load_dataset
from striate.engine import Callback, GradientClipping, Trainer
from striate.sequence.recurrent import Recurrent


def _model_with_grads(*grads: np.ndarray) -> nn.Module:
    model = nn.ParameterList(
        [nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    )
    for p, g in zip(model, grads, strict=True):
        p.grad = torch.from_numpy(g.copy())
    return model


def _clip(model: nn.Module, **limit) -> list[np.ndarray]:
    GradientClipping(**limit).on_before_step(SimpleNamespace(model=model))
    return [p.grad.numpy() for p in model if p.grad is not None]


def _norm_formula(grads, c):
    norm = np.sqrt(sum((g**2).sum() for g in grads))  # one norm over every parameter
    return [g * min(1.0, c / norm) for g in grads]


def _slides_formula(grads, c):
    grad_norm = sum((g * g).sum() for g in grads)  # the slides: np.sum(grad * grad), no sqrt
    return [g * (c / grad_norm) if grad_norm > c else g for g in grads]


def test_clipping_by_norm_is_the_l2_norm_over_all_parameters():
    grads = [np.array([3.0, 0.0]), np.array([[0.0], [4.0]])]  # ‖g‖₂ = 5, Σ g² = 25
    got = _clip(_model_with_grads(*grads), max_norm=2.0)
    for a, b in zip(got, _norm_formula(grads, 2.0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert np.sqrt(sum((g**2).sum() for g in got)) == pytest.approx(2.0, rel=1e-6)
    # not the slides' version (factor c/25, not c/5), nor each parameter clipped on its own
    assert not np.allclose(got[0], _slides_formula(grads, 2.0)[0])
    assert not np.allclose(got[0], grads[0] * min(1.0, 2.0 / 3.0))


def test_a_norm_under_the_limit_is_left_alone():
    """‖g‖₂ = 1.5 < c = 2 < Σ g² = 2.25: the square root decides whether to clip at all."""
    grads = [np.array([0.9]), np.array([1.2])]
    got = _clip(_model_with_grads(*grads), max_norm=2.0)
    for a, b in zip(got, grads, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(_slides_formula(grads, 2.0)[0], grads[0])


def test_clipping_by_value_is_min_char_rnns_clip_to_5():
    rng = np.random.default_rng(0)
    grads = [rng.normal(0, 6, (7, 5)), rng.normal(0, 6, 5)]
    assert any((np.abs(g) > 5).any() for g in grads)
    got = _clip(_model_with_grads(*grads), value=5.0)
    for a, g in zip(got, grads, strict=True):
        np.testing.assert_array_equal(
            a, np.clip(g, -5, 5)
        )  # min-char-rnn: np.clip(d, -5, 5, out=d)


def test_parameters_without_gradients_are_skipped():
    model = _model_with_grads(np.array([30.0, 40.0]))
    model.append(nn.Parameter(torch.ones(3, dtype=torch.float64)))  # no grad (frozen or unused)
    got = _clip(model, max_norm=1.0)
    np.testing.assert_allclose(got[0], [0.6, 0.8])
    assert model[1].grad is None


class _RowLSTM(nn.Module):
    """Reads an 8×8 digit row by row (8 steps of 8 pixels) and classifies the last state."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = Recurrent("lstm", 8, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.flatten(1, 2))  # (B, 1, 8, 8) → (B, 8, 8)
        return self.head(out[:, -1])


@pytest.mark.parametrize("limit", [{"max_norm": 0.05}, {"value": 1e-3}])
def test_the_trainer_steps_with_the_clipped_gradient(limit):
    """One SGD step of a Trainer on a recurrent classifier: w ← w − lr·clip(g), clip by formula."""
    train = load_dataset("digits", "train")[:64]
    torch.manual_seed(0)
    model = _RowLSTM()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    raw = {}

    class Grab(Callback):  # runs before the clipping: the raw gradients
        def on_before_step(self, trainer):
            raw.update(
                {
                    n: p.grad.detach().double().numpy().copy()
                    for n, p in trainer.model.named_parameters()
                }
            )

    lr = 0.5
    Trainer(
        steps=1,
        opt="sgd",
        lr=lr,
        progress=False,
        device="cpu",
        tensorboard=False,
        precision="fp32",
        callbacks=[Grab(), GradientClipping(**limit)],
    ).fit(model, BatchLoader(train, 64, device="cpu", seed=0))
    names = list(raw)
    grads = [raw[n] for n in names]
    if "max_norm" in limit:
        assert np.sqrt(sum((g**2).sum() for g in grads)) > limit["max_norm"]  # it did clip
        want = _norm_formula(grads, limit["max_norm"])
    else:
        assert any((np.abs(g) > limit["value"]).any() for g in grads)
        want = [np.clip(g, -limit["value"], limit["value"]) for g in grads]
    after = dict(model.named_parameters())
    for n, w in zip(names, want, strict=True):
        step = (before[n] - after[n].detach()).double().numpy() / lr
        # rtol: torch divides by ‖g‖ + 1e-6, here ‖g‖ ≈ 0.1; fp32 weights round the step
        np.testing.assert_allclose(step, w, rtol=1e-4, atol=3e-7)
