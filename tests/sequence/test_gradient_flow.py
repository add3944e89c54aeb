"""The exploding/vanishing demonstration against exact formulas: on W_hh = σ·Q (Q orthogonal) a
linear RNN's ‖∂L/∂h_{T−k}‖ is σ^k; tanh stays under it; the norms against a hand-written
backward recursion."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from striate.errors import ConfigError
from striate.sequence.gradient_flow import gradient_flow_figure, gradient_norms, recurrent_matrices


def test_matrices_have_the_asked_largest_singular_value():
    for matrix in ("orthogonal", "gaussian"):
        w = recurrent_matrices([0.5, 1.0, 2.0], 8, matrix=matrix, seed=3)
        s = torch.linalg.svdvals(w)  # (3, 8), descending
        torch.testing.assert_close(s[:, 0], torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
        if matrix == "orthogonal":  # every singular value equal
            torch.testing.assert_close(s[:, -1], s[:, 0])
        else:
            assert (s[:, -1] < 0.5 * s[:, 0]).all()


def test_linear_rnn_norms_are_sigma_to_the_steps_back():
    r = gradient_norms((0.5, 0.9, 1.0, 1.2), nonlinearity="linear", steps=30, hidden=12, batch=4)
    k = torch.arange(30, dtype=torch.float64)
    want = torch.tensor([0.5, 0.9, 1.0, 1.2], dtype=torch.float64)[:, None] ** k
    torch.testing.assert_close(r["norm"], want, rtol=1e-9, atol=0)
    torch.testing.assert_close(r["bound"], want)
    ratio = r["norm"][:, 1:] / r["norm"][:, :-1]  # geometric: decays below 1, grows above
    assert (ratio[0] < 1).all() and (ratio[1] < 1).all() and (ratio[3] > 1).all()
    assert r["norm"][0, -1] < 1e-8 and r["norm"][3, -1] > 100


@pytest.mark.parametrize(
    "nonlinearity,matrix", [("tanh", "orthogonal"), ("tanh", "gaussian"), ("linear", "gaussian")]
)
def test_tanh_and_gaussian_matrices_stay_under_the_bound(nonlinearity, matrix):
    """‖J‖ ≤ γ σ_max with γ = max tanh' = 1: the bound σ^k holds step by step."""
    r = gradient_norms(
        (0.7, 1.0, 1.5), nonlinearity=nonlinearity, matrix=matrix, steps=20, hidden=10, batch=4
    )
    assert (r["norm"] <= r["bound"] * (1 + 1e-9)).all()
    assert (r["norm"][:, -1] < r["bound"][:, -1]).all()  # strictly: saturation, spread


def test_norms_equal_a_hand_written_backward_recursion():
    """Through tanh: g_{t−1} = W_hhᵀ (g_t ⊙ (1 − h_t²)), from g_T = v, on the same draws."""
    sig, T, H, D, B = (0.8, 1.3), 12, 6, 3, 5
    r = gradient_norms(sig, nonlinearity="tanh", steps=T, hidden=H, inputs=D, batch=B, seed=4)
    w = recurrent_matrices(sig, H, seed=4)
    g = torch.Generator().manual_seed(5)  # the draws of gradient_norms, in its order
    w_ih = torch.randn(H, D, generator=g, dtype=torch.float64) / D**0.5
    x = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    v = torch.randn(B, H, generator=g, dtype=torch.float64)
    v = v / v.norm(dim=-1, keepdim=True)
    for s in range(len(sig)):
        h, hs = torch.zeros(B, H, dtype=torch.float64), []
        for t in range(T):
            h = torch.tanh(x[t] @ w_ih.T + h @ w[s].T)
            hs.append(h)
        grad, norms = v, []
        for t in reversed(range(T)):
            norms.append(grad.norm(dim=-1).mean())
            grad = (grad * (1 - hs[t] ** 2)) @ w[s]
        torch.testing.assert_close(r["norm"][s], torch.stack(norms), rtol=1e-10, atol=1e-300)


def test_figure_has_a_line_per_sigma_and_a_panel_per_nonlinearity():
    fig = gradient_flow_figure((0.5, 1.5), steps=10, hidden=8, batch=2)
    assert isinstance(fig, Figure)
    linear, tanh = fig.axes
    assert linear.get_yscale() == "log"
    assert len(linear.get_lines()) == 4 and len(tanh.get_lines()) == 2  # σ^k dotted beside


def test_bad_settings_say_so():
    with pytest.raises(ConfigError, match="did you mean 'linear'"):
        gradient_norms(nonlinearity="lineer")
    with pytest.raises(ConfigError, match="sigma"):
        gradient_norms((1.0, -1.0))
    with pytest.raises(ConfigError, match="at least one"):
        gradient_norms(())
