"""Muon: Newton–Schulz against the SVD, its update against the rule written out, its SGD part
against torch's SGD, the parameter split, exact resume, and the errors."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate.engine import make_optimizer
from striate.engine.muon import NS_COEFFICIENTS, Muon, orthogonalize
from striate.engine.optim import muon_groups
from striate.errors import ConfigError
from striate.models.fastnet import FastNet


def scalar_newton_schulz(s: torch.Tensor, steps: int) -> torch.Tensor:
    """The same iteration on singular values alone: s ← a·s + b·s³ + c·s⁵ from s/‖s‖₂."""
    a, b, c = NS_COEFFICIENTS
    s = s / s.norm()  # ‖M‖_F is the 2-norm of the singular values
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return s


@pytest.mark.parametrize("shape", [(12, 40), (40, 12), (16, 16)])
@pytest.mark.parametrize("steps", [1, 3, 5])
def test_orthogonalize_is_the_polynomial_of_the_singular_values(shape, steps):
    g = torch.Generator().manual_seed(0)
    m = torch.randn(*shape, generator=g, dtype=torch.float64)
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    expected = u @ torch.diag(scalar_newton_schulz(s, steps)) @ vh
    got = orthogonalize(m, steps)
    assert got.dtype == torch.float64 and got.shape == m.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-5)


def test_five_steps_bring_a_gradients_singular_values_near_one():
    g = torch.Generator().manual_seed(1)
    m = torch.randn(64, 200, generator=g)  # singular values 0.05-0.2 of its Frobenius norm
    for x in (m, m.T):
        s = torch.linalg.svdvals(orthogonalize(x, 5))
        assert s.min() > 0.6 and s.max() < 1.25, (s.min(), s.max())  # Jordan: about 0.7-1.2
    # a singular value far below the norm grows about a = 3.4 times per step only
    tiny = torch.diag(torch.tensor([1.0, 1e-4]))
    assert orthogonalize(tiny, 5)[1, 1] == pytest.approx(1e-4 * 3.4445**5, rel=0.01)


def test_orthogonalize_in_bf16_is_the_fp32_result_rounded_along_the_way():
    # bf16 keeps 8 bits of mantissa: each step's products are rounded to about 0.4 %
    g = torch.Generator().manual_seed(2)
    m = torch.randn(64, 576, generator=g)  # cifar_fast's first 3×3 filter bank
    exact = orthogonalize(m, 3)
    got = orthogonalize(m, 3, dtype=torch.bfloat16)
    assert got.dtype == torch.float32
    assert not torch.equal(got, exact)
    assert (got - exact).norm() / exact.norm() < 0.02
    assert (torch.linalg.svdvals(got) - torch.linalg.svdvals(exact)).abs().max() < 0.03


def test_orthogonalize_needs_a_matrix():
    with pytest.raises(ConfigError, match="needs a matrix"):
        orthogonalize(torch.ones(2, 3, 4))


def reference_muon_step(w, buf, grad, lr, mu, steps):
    """airbench94_muon's Muon step on one filter bank, written out (with Nesterov and the
    renormalisation), in float64 with its own Newton-Schulz."""
    a, b, c = NS_COEFFICIENTS
    buf = mu * buf + grad
    m = (grad + mu * buf).reshape(len(grad), -1).double()
    x = m / m.norm()
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    w = w * (len(w) ** 0.5 / w.norm())
    return w - lr * x.reshape(w.shape).to(w.dtype), buf


def test_the_muon_step_is_airbench94_muons_rule():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(8, 4, 3, 3))
    opt = Muon([w], lr=0.24, momentum=0.6, ns_steps=3, normalize=True, ns_precision="fp32")
    ref_w, ref_buf = w.detach().clone(), torch.zeros_like(w)
    for _ in range(3):
        grad = torch.randn_like(w)
        w.grad = grad.clone()
        opt.step()
        ref_w, ref_buf = reference_muon_step(ref_w, ref_buf, grad, 0.24, 0.6, 3)
        torch.testing.assert_close(w.detach(), ref_w, rtol=1e-5, atol=1e-5)
    assert opt.state[w]["momentum_buffer"].shape == w.shape


def test_ns_precision_bf16_orthogonalizes_in_bf16():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(6, 10))
    start = w.detach().clone()
    grad = torch.randn(6, 10)
    w.grad = grad
    Muon([w], lr=0.1, momentum=0.5, nesterov=False, ns_precision="bf16").step()
    expected = start - 0.1 * orthogonalize(grad, dtype=torch.bfloat16)
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-7)
    in_fp32 = start - 0.1 * orthogonalize(grad)
    assert (w.detach() - in_fp32).abs().max() > 1e-5


@pytest.mark.parametrize(("native", "resolved"), [("1", "bf16"), ("0", "fp32")])
def test_ns_precision_auto_is_bf16_where_the_cpu_computes_it_natively(
    monkeypatch, native, resolved
):
    monkeypatch.setenv("STRIATE_CPU_BF16", native)
    opt = Muon([nn.Parameter(torch.randn(4, 6))])
    assert opt.param_groups[0]["ns_precision"] == resolved  # saved so, and resumed so
    assert (
        Muon([nn.Parameter(torch.randn(4, 6))], ns_precision="fp32").param_groups[0]["ns_precision"]
        == "fp32"
    )


def test_ns_precision_of_a_group_added_later_or_saved_before_the_setting(monkeypatch):
    monkeypatch.setenv("STRIATE_CPU_BF16", "1")
    torch.manual_seed(0)
    w, v = nn.Parameter(torch.randn(4, 6)), nn.Parameter(torch.randn(3, 5))
    opt = Muon([w])
    opt.add_param_group({"params": [v]})
    v.grad = torch.randn(3, 5)
    opt.step()
    assert opt.param_groups[1]["ns_precision"] == "bf16"
    state = opt.state_dict()
    for g in state["param_groups"]:
        del g["ns_precision"]  # a checkpoint from before the setting: its runs were fp32
    old = Muon([w])
    old.add_param_group({"params": [v]})
    old.load_state_dict(state)
    w.grad = torch.randn(4, 6)
    before = w.detach().clone()
    old.step()
    m = w.grad + 0.95 * w.grad  # Nesterov on a fresh buffer
    torch.testing.assert_close(w.detach(), before - 0.02 * orthogonalize(m), rtol=0, atol=1e-6)
    in_bf16 = before - 0.02 * orthogonalize(m, dtype=torch.bfloat16)
    assert (w.detach() - in_bf16).abs().max() > 1e-5
    assert old.param_groups[0]["ns_precision"] == "fp32"


def test_aux_weight_decay_decays_every_sgd_group_biases_and_norms_too():
    net = FastNet((3, 32, 32), 10, widths=(8, 16, 16))
    groups = muon_groups(net, 1e-3)
    assert {g["name"]: g["weight_decay"] for g in groups}["no_decay"] == 0.0
    opt = Muon(groups, lr=0.24, aux_weight_decay=4e-5)
    by_name = {g["name"]: g["weight_decay"] for g in opt.param_groups}
    assert by_name == {"muon": 1e-3, "decay": 4e-5, "no_decay": 4e-5}  # Muon keeps its own
    # a decayed bias takes torch's SGD step with the same decay
    b = nn.Parameter(torch.randn(5))
    ref = nn.Parameter(b.detach().clone())
    mine = Muon(
        [{"params": [b], "muon": False}], aux_lr=0.1, aux_momentum=0.9, aux_weight_decay=0.01
    )
    torchs = torch.optim.SGD([ref], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    for _ in range(3):
        grad = torch.randn(5)
        b.grad, ref.grad = grad.clone(), grad.clone()
        mine.step()
        torchs.step()
    torch.testing.assert_close(b.detach(), ref.detach())


def test_decoupled_weight_decay_and_plain_momentum():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(6, 10))
    start = w.detach().clone()
    opt = Muon([w], lr=0.1, momentum=0.5, nesterov=False, weight_decay=0.2, ns_precision="fp32")
    g1, g2 = torch.randn(6, 10), torch.randn(6, 10)
    for g in (g1, g2):
        w.grad = g
        opt.step()
    buf2 = 0.5 * g1 + g2
    after1 = start * (1 - 0.02) - 0.1 * orthogonalize(g1)
    expected = after1 * (1 - 0.02) - 0.1 * orthogonalize(buf2)
    torch.testing.assert_close(w.detach(), expected)


def test_the_other_groups_take_torchs_sgd_steps():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    net[0].weight.requires_grad_(False)  # the hidden weight Muon would take: both runs alike
    ref = copy.deepcopy(net)
    groups = muon_groups(net, weight_decay=0.01)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    opt = Muon(groups, lr=0.05, momentum=0.9, aux_lr=0.3, aux_momentum=0.85)
    # torch's SGD on the same split: the head decayed, biases not
    ref_opt = torch.optim.SGD(
        [
            {"params": [ref[2].weight], "weight_decay": 0.01},
            {"params": [ref[0].bias, ref[2].bias], "weight_decay": 0.0},
        ],
        lr=0.3,
        momentum=0.85,
        nesterov=True,
    )
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    for _ in range(3):
        for model, o in ((net, opt), (ref, ref_opt)):
            o.zero_grad()
            F.cross_entropy(model(x), y).backward()
            o.step()
    for name in ("2.weight", "0.bias", "2.bias"):
        torch.testing.assert_close(net.state_dict()[name], ref.state_dict()[name])


def test_muon_groups_split_hidden_weights_from_the_rest():
    net = FastNet((3, 32, 32), 10, widths=(8, 16, 16))
    groups = {g["name"]: g for g in muon_groups(net, 1e-3)}
    hidden = {id(p) for p in groups["muon"]["params"]}
    convs = [m.weight for m in net.groups.modules() if isinstance(m, nn.Conv2d)]
    assert hidden == {id(p) for p in convs}  # the six 3×3 filter banks
    assert groups["muon"]["muon"] and not groups["decay"]["muon"]
    assert [p.shape for p in groups["decay"]["params"]] == [net.head.weight.shape]
    assert id(net.whiten.weight) not in {id(p) for g in groups.values() for p in g["params"]}
    assert all(p.ndim == 1 for p in groups["no_decay"]["params"])

    class Lm(nn.Module):  # embeddings and the output layer (here a conv) stay with SGD
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.hidden = nn.Linear(4, 4)
            self.out = nn.Conv1d(4, 10, 1)

    lm = Lm()
    hidden = muon_groups(lm, 0.0)[0]
    assert hidden["muon"] and [id(p) for p in hidden["params"]] == [id(lm.hidden.weight)]


def test_make_optimizer_builds_muon_with_its_options():
    net = FastNet((3, 32, 32), 10, widths=(8, 16, 16))
    opt = make_optimizer(
        "muon", net, 0.24, 1e-4, 0.6, options={"aux_lr": 10.0, "ns_steps": 3, "normalize": True}
    )
    assert isinstance(opt, Muon)
    muon, *others = opt.param_groups
    assert (muon["lr"], muon["momentum"], muon["ns_steps"], muon["normalize"]) == (
        0.24,
        0.6,
        3,
        True,
    )
    assert all(g["lr"] == 10.0 and g["momentum"] == 0.9 and not g["muon"] for g in others)
    assert make_optimizer("muon", net, 0.02).param_groups[0]["momentum"] == 0.95
    with pytest.raises(ConfigError, match=r"'muon' has no option betas2; its options are: aux_lr"):
        make_optimizer("muon", net, 0.02, options={"betas2": 0.9})
    with pytest.raises(ConfigError, match="'sgd' has no option aux_lr; it takes none"):
        make_optimizer("sgd", net, 0.02, options={"aux_lr": 0.9})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0}, "lr"),
        ({"aux_lr": -1}, "aux_lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"aux_momentum": 0.0}, "Nesterov momentum needs"),
        ({"ns_steps": 0}, "ns_steps"),
        ({"normalize": "yes"}, "normalize must be true or false"),
        ({"ns_precision": "fp16"}, "ns_precision must be one of auto, fp32, bf16"),
        ({"aux_weight_decay": -1e-4}, "aux_weight_decay"),
    ],
)
def test_muon_rejects_bad_settings(kwargs, match):
    w = nn.Parameter(torch.randn(3, 3))
    with pytest.raises(ConfigError, match=match):
        Muon([w], **kwargs)


def test_a_vector_in_a_muon_group_or_a_model_is_refused():
    with pytest.raises(ConfigError, match="fewer than two dimensions"):
        Muon([nn.Parameter(torch.ones(3))])
    with pytest.raises(ConfigError, match="not a model: pass muon_groups"):
        Muon(nn.Linear(2, 2))


def test_a_resumed_muon_continues_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.Flatten(), nn.Linear(6 * 4 * 4, 2))
    x, y = torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 1, 0])

    def steps(model, opt, n):
        for _ in range(n):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

    opt = Muon(muon_groups(net, 1e-3), lr=0.05, aux_lr=0.1, normalize=True)
    steps(net, opt, 2)
    resumed = copy.deepcopy(net)
    opt2 = Muon(muon_groups(resumed, 1e-3), lr=0.05, aux_lr=0.1, normalize=True)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    steps(net, opt, 2)
    steps(resumed, opt2, 2)
    for a, b in zip(net.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
