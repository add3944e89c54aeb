"""The scratch optimisers against torch.optim on the same parameters and gradients, and the
variants torch lacks (ε inside the square root, an lr changed mid-run) against their formulas."""

import numpy as np
import pytest
import torch

from striate.errors import ConfigError, InputError
from striate.scratch.optim import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSProp

STEPS = 6
SHAPES = {"0.W": (5, 3), "0.b": (3,)}


def draws(seed=0):
    """Initial parameters and a gradient per step, float64."""
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(STEPS)]
    return params, grads


def run_scratch(opt, params, grads):
    params = {k: v.copy() for k, v in params.items()}
    for g in grads:
        opt.step(params, g)
    return params


def run_torch(make, params, grads):
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = make(list(tensors.values()))
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        opt.step()
    return {k: t.detach().numpy() for k, t in tensors.items()}


CASES = {
    "sgd": (lambda: SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd-decay": (
        lambda: SGD(0.1, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01),
    ),
    "momentum": (lambda: Momentum(0.1, 0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    "nesterov": (
        lambda: Nesterov(0.1, 0.9),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    ),
    "adagrad": (lambda: AdaGrad(0.1), lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-10)),
    "rmsprop": (
        lambda: RMSProp(0.01, rho=0.9),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8),
    ),
    "adam": (lambda: Adam(1e-2), lambda p: torch.optim.Adam(p, lr=1e-2)),
    "adam-decay": (
        lambda: Adam(1e-2, betas=(0.8, 0.99), weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch(name):
    ours, theirs = CASES[name]
    params, grads = draws()
    got, want = run_scratch(ours(), params, grads), run_torch(theirs, params, grads)
    for k in SHAPES:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12)
        assert not np.allclose(got[k], params[k])  # the parameters did move


def test_updates_in_place_and_keeps_float32():
    params, grads = draws()
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    before = p32["0.W"]
    Adam(1e-2).step(p32, {k: v.astype(np.float32) for k, v in grads[0].items()})
    assert p32["0.W"] is before and before.dtype == np.float32


def post_adam(params, grads, lr, b1, b2, eps):
    """The reference post's Adam, ε inside the square root."""
    p = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    n = {k: np.zeros_like(v) for k, v in p.items()}
    for t, g in enumerate(grads, start=1):
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            n[k] = b2 * n[k] + (1 - b2) * g[k] ** 2
            m_hat, n_hat = m[k] / (1 - b1**t), n[k] / (1 - b2**t)
            p[k] = p[k] - lr * m_hat / np.sqrt(n_hat + eps)
    return p


def test_eps_inside_sqrt_follows_the_post():
    params, grads = draws(1)
    eps = 1e-2  # large, so that where ε goes matters
    got = run_scratch(Adam(0.1, eps=eps, eps_inside_sqrt=True), params, grads)
    want = post_adam(params, grads, 0.1, 0.9, 0.999, eps)
    outside = run_scratch(Adam(0.1, eps=eps), params, grads)
    for k in SHAPES:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12)
        assert not np.allclose(outside[k], want[k])

    n = {k: np.zeros_like(v) for k, v in params.items()}
    rms, ada = ({k: v.copy() for k, v in params.items()} for _ in range(2))
    s = {k: np.zeros_like(v) for k, v in params.items()}
    for g in grads:
        for k in params:
            n[k] = 0.9 * n[k] + 0.1 * g[k] ** 2
            rms[k] = rms[k] - 0.01 * g[k] / np.sqrt(n[k] + eps)
            s[k] = s[k] + g[k] ** 2
            ada[k] = ada[k] - 0.01 * g[k] / np.sqrt(s[k] + eps)
    got_rms = run_scratch(RMSProp(0.01, rho=0.9, eps=eps, eps_inside_sqrt=True), params, grads)
    got_ada = run_scratch(AdaGrad(0.01, eps=eps, eps_inside_sqrt=True), params, grads)
    for k in SHAPES:
        np.testing.assert_allclose(got_rms[k], rms[k], rtol=1e-12)
        np.testing.assert_allclose(got_ada[k], ada[k], rtol=1e-12)


def test_velocity_keeps_the_lr_of_past_steps():
    """After an lr change, momentum follows v = μv - lr·g (the post's form), not torch's."""
    params, grads = draws(2)
    opt = Momentum(0.1, 0.5)
    p = {k: v.copy() for k, v in params.items()}
    want = {k: v.copy() for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    for i, g in enumerate(grads):
        lr = 0.1 if i < 3 else 0.01
        opt.lr = lr
        opt.step(p, g)
        for k in want:
            v[k] = 0.5 * v[k] - lr * g[k]
            want[k] = want[k] + v[k]
    for k in SHAPES:
        np.testing.assert_allclose(p[k], want[k], rtol=1e-12)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="lr"):
        SGD(-1)
    with pytest.raises(ConfigError, match="momentum"):
        Momentum(0.1, momentum=1.5)
    with pytest.raises(ConfigError, match="eps"):
        Adam(eps=0)
    params, grads = draws()
    with pytest.raises(InputError, match="0.W"):
        SGD(0.1).step(params, {"0.W": np.zeros(3), "0.b": grads[0]["0.b"]})
