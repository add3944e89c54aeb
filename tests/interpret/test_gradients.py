"""Gradient attributions against independent references on tiny float64 networks.

References: central finite differences of the logit (saliency), guided backprop's recursion
written out for a multilayer perceptron, closed forms for a quadratic model (integrated gradients
under every quadrature rule, SmoothGrad with the same seeded noise), and completeness
Σ IG = F(x) − F(b) as the number of steps grows. Tolerances are stated at each assertion.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate.errors import ConfigError, InputError
from striate.interpret.gradients import (
    channel_max,
    guided_backprop,
    integrated_gradients,
    saliency,
    smooth_grad,
)
from striate.models.io import ImageClassifier

D64 = torch.float64


def tiny_cnn(act: type[nn.Module] = nn.ReLU) -> nn.Module:
    """2×6×6 → 3 classes, float64, with batch norm whose statistics matter (so a method that
    forgot eval mode gives another answer)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        act(),
        nn.Conv2d(4, 4, 3, stride=2),
        act(),
        nn.Flatten(),
        nn.Linear(16, 3),
    ).to(D64)
    net[1].running_mean.uniform_(-0.5, 0.5)
    net[1].running_var.uniform_(0.5, 2.0)
    return net


def images(n: int = 2, shape=(2, 6, 6), seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=D64)


def numeric_gradient(model: nn.Module, x: torch.Tensor, t: list[int], h: float = 1e-6):
    """Central differences of logit t[i] of image i with respect to every input value."""
    model.eval()
    grads = []
    for xi, ti in zip(x, t, strict=True):
        flat = xi.flatten()
        step = torch.eye(len(flat), dtype=D64) * h
        with torch.no_grad():
            up = model((flat + step).view(-1, *xi.shape))[:, ti]
            down = model((flat - step).view(-1, *xi.shape))[:, ti]
        grads.append(((up - down) / (2 * h)).view(xi.shape))
    return torch.stack(grads)


class Quadratic(nn.Module):
    """F_k(x) = xᵀ A_k x on the flattened input, A_k symmetric: ∇F_k(x) = 2 A_k x."""

    def __init__(self, d: int, k: int = 3) -> None:
        super().__init__()
        a = torch.randn(k, d, d, generator=torch.Generator().manual_seed(3), dtype=D64)
        self.A = nn.Parameter(a + a.transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(1)
        return torch.einsum("nd,kde,ne->nk", v, self.A, v)

    def grad(self, x: torch.Tensor, t: list[int]) -> torch.Tensor:
        v = x.flatten(1)
        return torch.stack([2 * self.A[k] @ v[i] for i, k in enumerate(t)]).view(x.shape)


def no_hooks(model: nn.Module) -> bool:
    return all(
        not (m._forward_hooks or m._backward_hooks or m._forward_pre_hooks) for m in model.modules()
    )


# --------------------------------------------------------------------------- saliency


def test_saliency_is_the_numeric_gradient_of_the_logit():
    model, x, t = tiny_cnn(), images(), [2, 0]
    model.train()  # the method must evaluate in eval mode and give train mode back
    ours = saliency(model, x, t, abs=False)
    assert model.training and all(m.training for m in model.modules())
    ref = numeric_gradient(model, x, t)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(saliency(model, x, t), ref.abs(), rtol=1e-6, atol=1e-8)
    # the logit's gradient, not the softmax probability's (Simonyan et al.): they differ
    xg = x.clone().requires_grad_(True)
    (prob_grad,) = torch.autograd.grad(model(xg).softmax(1)[[0, 1], t].sum(), xg)
    assert (prob_grad - ours).abs().max() > 1e-3 * ours.abs().max()


def test_saliency_targets_none_name_and_per_row():
    net = tiny_cnn()
    model = ImageClassifier(net, ("cat", "dog", "fox"), (2, 6, 6)).eval()
    x = images(3)
    with torch.no_grad():
        predicted = model(x).argmax(1).tolist()
    torch.testing.assert_close(saliency(model, x), saliency(model, x, predicted))
    by_name = saliency(model, x, "fox", abs=False)
    torch.testing.assert_close(by_name, numeric_gradient(model, x, [2, 2, 2]), atol=1e-8, rtol=1e-6)
    with pytest.raises(ConfigError, match="did you mean 'fox'"):
        saliency(model, x, "fix")


def test_channel_max_is_the_papers_map():
    a = torch.randn(2, 3, 4, 5, dtype=D64)
    ref = torch.from_numpy(abs(a.numpy()).max(axis=1, keepdims=True))
    torch.testing.assert_close(channel_max(a), ref, rtol=0, atol=0)
    with pytest.raises(InputError, match="N×C×H×W"):
        channel_max(a[0])


# --------------------------------------------------------------------------- guided backprop


def mlp(act: type[nn.Module], inplace: bool, scale: float = 1.0) -> nn.Sequential:
    torch.manual_seed(1)
    kw = {"inplace": True} if inplace else {}
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(8, 6), act(**kw), nn.Linear(6, 5), act(**kw), nn.Linear(5, 3)
    ).to(D64)
    with torch.no_grad():
        net[1].weight.mul_(scale)
    return net


def guided_reference(net: nn.Sequential, x: torch.Tensor, c: int, upper: float) -> torch.Tensor:
    """Springenberg et al.'s recursion R_l = (f_l > 0)(R_{l+1} > 0) R_{l+1} written out for
    Linear–rect–Linear–rect–Linear, with the rectifier's own derivative (0 < h < upper)."""
    w1, w2, w3 = net[1].weight, net[3].weight, net[5].weight
    v = x.flatten(1)
    h1 = v @ w1.T + net[1].bias
    h2 = h1.clamp(0, upper) @ w2.T + net[3].bias
    on1, on2 = (h1 > 0) & (h1 < upper), (h2 > 0) & (h2 < upper)
    r2 = on2 * w3[c].clamp(min=0)  # gradient into the second rectifier's input, guided
    r1 = on1 * (r2 @ w2).clamp(min=0)
    return (r1 @ w1).view(x.shape)


@pytest.mark.parametrize("inplace", [False, True], ids=["out-of-place", "in-place"])
@pytest.mark.parametrize("act, upper", [(nn.ReLU, float("inf")), (nn.ReLU6, 6.0)])
def test_guided_backprop_follows_the_papers_recursion(act, upper, inplace):
    net = mlp(act, inplace, scale=30.0)  # large pre-activations: some ReLU6 units saturate
    x = images(4, (2, 2, 2), seed=5) - 0.5
    with torch.no_grad():
        h = net[1](net[0](x))
    if act is nn.ReLU6:
        assert (h > 6).any() and (h < 0).any()
    for c in range(3):
        ours = guided_backprop(net, x, c)
        torch.testing.assert_close(ours, guided_reference(net, x, c, upper), rtol=1e-10, atol=0)
    # the guided map is not the plain gradient here
    assert (ours - saliency(net, x, 2, abs=False)).abs().max() > 1e-3
    assert no_hooks(net)


def test_guided_backprop_survives_chained_in_place_ops():
    """An in-place ReLU followed by an in-place op on its output (pytorch-grad-cam's crash)."""

    class AddInPlace(nn.Module):
        def forward(self, x):
            return x.add_(0.25)

    def net(inplace: bool) -> nn.Module:
        torch.manual_seed(2)
        return nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1),
            nn.ReLU(inplace=inplace),
            AddInPlace() if inplace else _Add(),
            nn.ReLU(inplace=inplace),
            nn.Flatten(),
            nn.Linear(3 * 36, 3),
        ).to(D64)

    x = images(2)
    torch.testing.assert_close(guided_backprop(net(True), x, 1), guided_backprop(net(False), x, 1))


class _Add(nn.Module):
    def forward(self, x):
        return x + 0.25


def test_guided_backprop_refuses_a_model_without_rectifier_modules():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(8, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x.flatten(1))))

    x = images(1, (2, 2, 2)).float()
    with pytest.raises(ConfigError, match=r"no rectifier modules \(ReLU, ReLU6\).*F\.relu"):
        guided_backprop(Functional(), x)
    with pytest.raises(ConfigError, match="rectifiers must be a tuple of module classes"):
        guided_backprop(mlp(nn.ReLU, False).float(), x, rectifiers=("relu",))
    # a LeakyReLU network is guided only when asked for
    leaky = mlp(nn.LeakyReLU, False)
    with pytest.raises(ConfigError, match="no rectifier modules"):
        guided_backprop(leaky, x.double())
    assert guided_backprop(leaky, x.double(), rectifiers=(nn.LeakyReLU,)).shape == x.shape


# --------------------------------------------------------------------------- integrated gradients

# Σ_k w_k α_k of each rule with n points; Σ_k w_k is 1 for all of them
MEAN_ALPHA = {
    "gausslegendre": lambda n: 0.5,
    "riemann_trapezoid": lambda n: 0.5,
    "riemann_middle": lambda n: 0.5,
    "riemann_left": lambda n: (n - 1) / (2 * n),
    "riemann_right": lambda n: (n + 1) / (2 * n),
}


@pytest.mark.parametrize("method", list(MEAN_ALPHA))
def test_integrated_gradients_closed_form_on_a_quadratic(method):
    """F(x) = xᵀAx: the integrand 2A(b + αd) is linear in α, so the rule gives
    d ⊙ 2A(b + d Σw_kα_k) exactly; the exact integral (Σw_kα_k = 1/2) is d ⊙ A(x + b)."""
    x, b = images(2, (2, 3, 3), seed=1), images(1, (2, 3, 3), seed=2)
    model, t, steps = Quadratic(18), [1, 2], 5
    ours = integrated_gradients(model, x, t, baselines=b, steps=steps, method=method)
    d = x - b
    ref = d * model.grad(b.expand_as(x) + MEAN_ALPHA[method](steps) * d, t)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", list(MEAN_ALPHA))
def test_integrated_gradients_completeness_delta_shrinks_with_steps(method):
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(18, 12), nn.Tanh(), nn.Linear(12, 3), nn.Tanh()
    ).to(D64)
    with torch.no_grad():
        model[1].weight.mul_(3)
    x, t = images(2, (2, 3, 3), seed=6), [0, 2]
    with torch.no_grad():
        gap = model(x)[[0, 1], t] - model(torch.full_like(x, 0.2))[[0, 1], t]
    deltas = []
    for steps in (4, 16, 64):
        attr, delta = integrated_gradients(
            model, x, t, baselines=0.2, steps=steps, method=method, return_delta=True
        )
        # the delta is what the definition says, computed here from F itself
        torch.testing.assert_close(delta, attr.flatten(1).sum(1) - gap, rtol=0, atol=1e-12)
        deltas.append(delta.abs().max().item())
    if method == "gausslegendre":  # exact to rounding from 16 points on this network
        assert deltas[1] < deltas[0] and deltas[2] < 1e-12, deltas
        return
    assert deltas[2] < deltas[1] < deltas[0], deltas
    order = 1 if method in ("riemann_left", "riemann_right") else 2  # error O(1/n^order)
    assert deltas[2] < deltas[0] * 16.0**-order * 4, deltas  # within 4× of the rate


def test_integrated_gradients_batches_and_baselines_change_nothing():
    model, x, t = tiny_cnn(), images(3), [0, 1, 2]
    one = integrated_gradients(model, x, t, steps=7, internal_batch_size=1)
    many = integrated_gradients(model, x, t, steps=7, internal_batch_size=1000)
    torch.testing.assert_close(one, many, rtol=1e-12, atol=1e-14)
    per_channel = torch.tensor([0.2, 0.7], dtype=D64).view(1, 2, 1, 1)
    a = integrated_gradients(model, x, t, steps=7, baselines=per_channel)
    b = integrated_gradients(model, x, t, steps=7, baselines=per_channel.expand_as(x).clone())
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    scalar = integrated_gradients(model, x, t, steps=7, baselines=0.2)
    full = integrated_gradients(model, x, t, steps=7, baselines=torch.full_like(x, 0.2))
    torch.testing.assert_close(scalar, full, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- SmoothGrad


def smooth_reference(model, x, t, samples, noise, seed, attribution):
    """The mean over samples of attribution(x + σ·ε_s), ε_s drawn N×C×H×W per sample from
    torch.Generator().manual_seed(seed), σ = noise · (max − min) of each image."""
    g = torch.Generator().manual_seed(seed)
    sigma = noise * (x.amax((1, 2, 3)) - x.amin((1, 2, 3))).view(-1, 1, 1, 1)
    total = torch.zeros_like(x)
    for _ in range(samples):
        total += attribution(x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype))
    return total / samples


def test_smooth_grad_is_the_mean_over_the_seeded_noise():
    model, t = Quadratic(18), [0, 2]
    x = images(2, (2, 3, 3), seed=7)
    x[1] *= 10  # another range: another σ
    ours = smooth_grad(model, x, t, samples=9, noise=0.1, seed=3)
    ref = smooth_reference(model, x, t, 9, 0.1, 3, lambda v: model.grad(v, t).abs())
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    sq = smooth_grad(model, x, t, samples=9, noise=0.1, seed=3, squared=True)
    ref = smooth_reference(model, x, t, 9, 0.1, 3, lambda v: model.grad(v, t) ** 2)
    torch.testing.assert_close(sq, ref, rtol=1e-10, atol=1e-12)
    # any gradient method: integrated gradients from 0 is x ⊙ A x on this model
    ig = functools.partial(integrated_gradients, steps=2)
    ours = smooth_grad(model, x, t, method=ig, samples=4, noise=0.2, seed=1)
    ref = smooth_reference(model, x, t, 4, 0.2, 1, lambda v: v * model.grad(v, t) / 2)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


def test_smooth_grad_is_reproducible_and_independent_of_the_batching():
    model, x = tiny_cnn(), images(3)
    runs = [smooth_grad(model, x, 1, samples=5, seed=2, internal_batch_size=b) for b in (1, 4, 99)]
    for r in runs[1:]:
        torch.testing.assert_close(r, runs[0], rtol=1e-12, atol=1e-14)
    assert (smooth_grad(model, x, 1, samples=5, seed=3) - runs[0]).abs().max() > 1e-3
    # no noise: the plain saliency map
    torch.testing.assert_close(
        smooth_grad(model, x, 1, samples=2, noise=0.0), saliency(model, x, 1), rtol=1e-12, atol=0
    )


# --------------------------------------------------------------------------- bad input


def test_one_clear_error_for_each_mistake():
    model, x = tiny_cnn(), images(2)
    with pytest.raises(ConfigError, match=r"target class 3 is out of range: the model has 3"):
        saliency(model, x, 3)
    with pytest.raises(ConfigError, match="out of range"):
        integrated_gradients(model, x, [0, 7])
    with pytest.raises(ConfigError, match="integrated_gradients: steps must be a positive integer"):
        integrated_gradients(model, x, 0, steps=0)
    with pytest.raises(ConfigError, match="steps must be at least 2 for the trapezoid rule"):
        integrated_gradients(model, x, 0, steps=1, method="riemann_trapezoid")
    with pytest.raises(ConfigError, match="did you mean 'riemann_left'"):
        integrated_gradients(model, x, 0, method="riemann_lef")
    with pytest.raises(ConfigError, match="internal_batch_size must be a positive integer"):
        integrated_gradients(model, x, 0, internal_batch_size=0)
    with pytest.raises(InputError, match=r"baselines must be .* broadcastable .* \(2, 2, 6, 6\)"):
        integrated_gradients(model, x, 0, baselines=torch.zeros(3, 6, 6, dtype=D64))
    with pytest.raises(ConfigError, match="smooth_grad: samples must be a positive integer"):
        smooth_grad(model, x, 0, samples=0)
    with pytest.raises(ConfigError, match="smooth_grad: noise must be a non-negative number"):
        smooth_grad(model, x, 0, noise=-0.1)
    with pytest.raises(InputError, match=r"add the batch dimension with x\[None\]"):
        saliency(model, x[0])
    with pytest.raises(InputError, match="must be a float tensor"):
        saliency(model, (x * 255).to(torch.uint8))
    with pytest.raises(InputError, match="must be a float tensor.*got ndarray"):
        guided_backprop(model, x.numpy())


@pytest.mark.parametrize(
    "method",
    [
        saliency,
        guided_backprop,
        functools.partial(integrated_gradients, steps=3, return_delta=True),
        functools.partial(smooth_grad, samples=2),
    ],
    ids=["saliency", "guided_backprop", "integrated_gradients", "smooth_grad"],
)
def test_methods_leave_the_model_as_they_found_it(method):
    model, x = tiny_cnn(), images(2)
    model.train()
    model[1].eval()  # a mixed state is given back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method(model, x, 0)
    assert model.training and not model[1].training and model[3].training
    assert no_hooks(model)
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():  # batch norm statistics untouched
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
