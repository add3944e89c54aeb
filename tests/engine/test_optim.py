"""Optimisers against hand-written update rules; weight decay kept off norm layers and biases."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from striate.engine.optim import OPTIMIZERS, discriminative_groups, make_optimizer, param_groups
from striate.errors import ConfigError


class Net(nn.Module):
    """conv+bn+linear, plus a frozen layer, other norm layers and a bare 1-D parameter."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.inorm = nn.InstanceNorm2d(4, affine=True)
        self.frozen = nn.Conv2d(4, 4, 1)
        self.frozen.requires_grad_(False)
        self.ln = nn.LayerNorm(4)
        self.ln2d = nn.LayerNorm((2, 2))  # 2-D weight: exempt as a norm layer, not as 1-D
        self.fc = nn.Linear(4, 3)
        self.scale = nn.Parameter(torch.ones(3))
        self.fc_nobias = nn.Linear(3, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.frozen(self.inorm(self.gn(self.bn(self.conv(x)))))
        x = self.ln(x.mean((2, 3)))
        return self.fc_nobias(self.fc(x) * self.scale)


def _ids(group):
    return {id(p) for p in group["params"]}


def _expected(net):
    decay = {id(p) for p in (net.conv.weight, net.fc.weight, net.fc_nobias.weight)}
    no_decay = {
        id(p)
        for p in (
            net.conv.bias,
            net.bn.weight,
            net.bn.bias,
            net.gn.weight,
            net.gn.bias,
            net.inorm.weight,
            net.inorm.bias,
            net.ln.weight,
            net.ln.bias,
            net.fc.bias,
            net.scale,
            net.ln2d.weight,
            net.ln2d.bias,
        )
    }
    return decay, no_decay


# ----------------------------------------------------------------------------- param_groups


def test_param_groups_membership():
    net = Net()
    groups = param_groups(net, 5e-4)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    decay, no_decay = _expected(net)
    assert _ids(groups[0]) == decay
    assert _ids(groups[1]) == no_decay
    frozen = {id(p) for p in net.frozen.parameters()}
    assert not frozen & (_ids(groups[0]) | _ids(groups[1]))
    n_trainable = sum(1 for p in net.parameters() if p.requires_grad)
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == n_trainable


def test_param_groups_drops_empty_groups_and_shared_params():
    assert [g["name"] for g in param_groups(nn.BatchNorm1d(3), 0.1)] == ["no_decay"]
    assert [g["name"] for g in param_groups(nn.Linear(2, 2, bias=False), 0.1)] == ["decay"]
    assert param_groups(nn.ReLU(), 0.1) == []
    lin = nn.Linear(3, 3)
    shared = nn.Sequential(lin, nn.ReLU(), lin)
    groups = param_groups(shared, 0.1)
    assert [len(g["params"]) for g in groups] == [1, 1]


def test_param_groups_honours_no_weight_decay():
    class WithToken(nn.Module):
        def __init__(self):
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
            self.pos = nn.Parameter(torch.zeros(1, 4, 8))
            self.proj = nn.Linear(8, 8)

        def no_weight_decay(self):
            return {"cls_token"}

    m = WithToken()
    decay, no_decay = param_groups(m, 0.05)
    assert _ids(decay) == {id(m.pos), id(m.proj.weight)}
    assert _ids(no_decay) == {id(m.cls_token), id(m.proj.bias)}


# ---------------------------------------------------------------------- weight decay applied


def _zero_grad_step(opt, net):
    for p in net.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    opt.step()


@pytest.mark.parametrize("name", ["sgd", "nesterov", "adamw"])
def test_weight_decay_shrinks_only_decayed_params(name):
    # with zero gradients the only force is the decay: p ← p·(1 - lr·λ) for SGD's first step
    # (v = λp), p·(1 - lr·λ·(1 + μ)) for Nesterov's (it steps by λp + μv), and p·(1 - lr·λ)
    # for AdamW's decoupled decay (its Adam step is 0); exempt ones stay put
    net = Net()
    lr, wd = 0.1, 0.05
    shrink = 1 - lr * wd * (1 + 0.9 if name == "nesterov" else 1)
    before = {id(p): p.detach().clone() for p in net.parameters()}
    opt = make_optimizer(name, net, lr=lr, weight_decay=wd)
    _zero_grad_step(opt, net)
    decay, no_decay = _expected(net)
    for p in net.parameters():
        if id(p) in decay:
            torch.testing.assert_close(p.detach(), before[id(p)] * shrink)
            assert not torch.equal(p.detach(), before[id(p)])
        else:  # exempt or frozen
            torch.testing.assert_close(p.detach(), before[id(p)], rtol=0, atol=0)


def test_adam_weight_decay_is_coupled_l2():
    # Adam adds λp to the gradient; at step 1 m̂ = g and v̂ = g², so p ← p - lr·g/(|g| + ε)
    net = Net()
    lr, wd, eps = 0.01, 0.1, 1e-8
    before = {id(p): p.detach().clone() for p in net.parameters()}
    opt = make_optimizer("adam", net, lr=lr, weight_decay=wd, eps=eps)
    _zero_grad_step(opt, net)
    decay, _ = _expected(net)
    for p in net.parameters():
        p0 = before[id(p)]
        if id(p) in decay:
            g = wd * p0
            torch.testing.assert_close(p.detach(), p0 - lr * g / (g.abs() + eps))
        else:
            assert torch.equal(p.detach(), p0)


def test_exempt_false_decays_everything():
    net = Net()
    opt = make_optimizer("sgd", net, lr=0.1, weight_decay=0.05, momentum=0.0, exempt=False)
    assert len(opt.param_groups) == 1
    bias0 = net.bn.bias.detach().clone() + 1.0
    with torch.no_grad():
        net.bn.bias.copy_(bias0)
    _zero_grad_step(opt, net)
    torch.testing.assert_close(net.bn.bias.detach(), bias0 * (1 - 0.1 * 0.05))


# ------------------------------------------------------------------------- names and settings


def test_each_name_builds_the_right_optimizer():
    net = Net()
    cases = {
        "sgd": (torch.optim.SGD, {"momentum": 0.8, "nesterov": False, "weight_decay": 1e-3}),
        "nesterov": (torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),
        "adagrad": (torch.optim.Adagrad, {"eps": 1e-6}),
        "rmsprop": (torch.optim.RMSprop, {"momentum": 0.8, "eps": 1e-6, "alpha": 0.99}),
        "adam": (torch.optim.Adam, {"betas": (0.8, 0.99), "eps": 1e-6}),
        "adamw": (torch.optim.AdamW, {"betas": (0.8, 0.99), "eps": 1e-6}),
    }
    assert set(cases) | {"lbfgs", "muon"} == set(OPTIMIZERS)  # muon: tests/engine/test_muon.py
    for name, (cls, settings) in cases.items():
        opt = make_optimizer(
            name.upper(),
            net,
            lr=0.02,
            weight_decay=1e-3,
            momentum=0.8,
            betas=(0.8, 0.99),
            eps=1e-6,
        )
        assert type(opt) is cls, name
        decay, no_decay = opt.param_groups
        assert decay["lr"] == 0.02 and decay["name"] == "decay"
        assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
        for key, value in settings.items():
            if key != "weight_decay":
                assert decay[key] == value, (name, key)
    assert type(make_optimizer("adamw", net, lr=1e-3)) is torch.optim.AdamW
    # eps=None keeps each optimiser's own default
    assert make_optimizer("adam", net, lr=1e-3).param_groups[0]["eps"] == 1e-8
    assert make_optimizer("adagrad", net, lr=1e-3).param_groups[0]["eps"] == 1e-10


def test_plain_parameters_and_groups_are_used_as_given():
    net = Net()
    params = (p for p in net.fc.parameters())  # a generator
    opt = make_optimizer("sgd", params, lr=0.1, weight_decay=0.01)
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 2
    assert opt.param_groups[0]["weight_decay"] == 0.01
    groups = [
        {"params": net.conv.parameters(), "lr": 0.5},
        {"params": net.fc.weight},
    ]
    opt = make_optimizer("sgd", groups, lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    assert [len(g["params"]) for g in opt.param_groups] == [2, 1]


def _quadratic(p):
    # f(p) = ½·Σ a·p² + b·p: a gradient a·p + b that changes from step to step
    a = torch.tensor([1.0, 3.0, 0.5])
    b = torch.tensor([0.3, -1.0, 2.0])
    return 0.5 * (a * p * p).sum() + (b * p).sum(), a * p.detach() + b


@pytest.mark.parametrize("name", ["sgd", "nesterov"])
def test_momentum_matches_lecture_update_rule(name):
    lr, rho = 0.1, 0.9
    p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = make_optimizer(name, [p], lr=lr, momentum=rho)
    x = p.detach().clone()  # the lectures' variables (CS231n lecture 7), velocity from 0
    v = torch.zeros(3)
    for _ in range(3):
        opt.zero_grad()
        loss, _ = _quadratic(p)
        loss.backward()
        _, dx = _quadratic(x)
        if name == "sgd":  # v ← ρv - α∇f(x); x ← x + v
            v = rho * v - lr * dx
            x = x + v
        else:  # x̃ ← x̃ - ρ·v_old + (1 + ρ)·v, with v ← ρv - α∇f(x̃)
            old_v = v
            v = rho * v - lr * dx
            x = x - rho * old_v + (1 + rho) * v
        opt.step()
        torch.testing.assert_close(p.detach(), x)
    assert not torch.allclose(p.detach(), torch.tensor([1.0, -2.0, 0.5]))


def test_sgd_and_nesterov_differ():
    out = []
    for name in ("sgd", "nesterov"):
        p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
        opt = make_optimizer(name, [p], lr=0.1)
        for _ in range(2):
            opt.zero_grad()
            _quadratic(p)[0].backward()
            opt.step()
        out.append(p.detach())
    assert not torch.allclose(*out)


def test_lbfgs_solves_least_squares():
    g = torch.Generator().manual_seed(0)
    A, y = torch.randn(20, 4, generator=g), torch.randn(20, generator=g)
    lin = nn.Linear(4, 1, bias=False)
    opt = make_optimizer("lbfgs", lin, lr=1.0)
    assert type(opt) is torch.optim.LBFGS

    def closure():
        opt.zero_grad()
        loss = ((lin(A).squeeze(1) - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    ref = torch.linalg.lstsq(A, y[:, None]).solution.squeeze(1)
    torch.testing.assert_close(lin.weight.detach().squeeze(0), ref, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- discriminative


def test_discriminative_groups_lrs_and_split():
    net = Net()
    parts = [nn.ModuleList([net.conv, net.bn]), net.ln, net.fc]
    groups = discriminative_groups(parts, lr=0.09, factor=3, weight_decay=0.01)
    got = [(g["name"], g["lr"], g["weight_decay"]) for g in groups]
    assert [name for name, *_ in got] == [
        "group0/decay",
        "group0/no_decay",
        "group1/no_decay",
        "group2/decay",
        "group2/no_decay",
    ]
    lrs = {name.split("/")[0]: lr for name, lr, _ in got}
    assert lrs == pytest.approx({"group0": 0.01, "group1": 0.03, "group2": 0.09})
    assert all(wd == (0.01 if name.endswith("/decay") else 0.0) for name, _, wd in got)
    assert _ids(groups[0]) == {id(net.conv.weight)}
    assert _ids(groups[1]) == {id(net.conv.bias), id(net.bn.weight), id(net.bn.bias)}
    explicit = discriminative_groups(parts, lr=[1e-4, 2e-4, 3e-3])
    assert [g["lr"] for g in explicit] == [1e-4, 1e-4, 2e-4, 3e-3, 3e-3]


def test_discriminative_groups_step_uses_each_lr():
    net = Net()
    groups = discriminative_groups([net.conv, net.fc], lr=0.5, factor=10)
    opt = make_optimizer("sgd", groups, lr=123.0, momentum=0.0)  # groups' lrs win
    w_conv, w_fc = net.conv.weight.detach().clone(), net.fc.weight.detach().clone()
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    torch.testing.assert_close(net.conv.weight.detach(), w_conv - 0.05)
    torch.testing.assert_close(net.fc.weight.detach(), w_fc - 0.5)
    assert net.ln.weight.grad is not None and torch.equal(net.ln.weight, torch.ones(4))


# ------------------------------------------------------------------------------------ errors


def test_unknown_optimizer_lists_names():
    with pytest.raises(ConfigError, match="sgd, nesterov, adagrad, rmsprop, adam, adamw, lbfgs"):
        make_optimizer("lion", Net(), lr=0.1)


@pytest.mark.parametrize("lr", [0, -0.1, math.inf, math.nan, "0.1", None, True])
def test_bad_lr(lr):
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        make_optimizer("sgd", Net(), lr=lr)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight_decay": -1e-4}, "weight_decay must be a non-negative number"),
        ({"weight_decay": math.nan}, "weight_decay must be"),
        ({"momentum": 1.0}, r"momentum must be a number in \[0, 1\)"),
        ({"momentum": -0.1}, "momentum must be"),
        ({"betas": (0.9, 1.0)}, r"betas must be two numbers in \[0, 1\)"),
        ({"betas": (0.9,)}, "betas must be"),
        ({"betas": (-0.1, 0.999)}, "betas must be"),
        ({"eps": 0.0}, "eps must be a positive number"),
        ({"nesterov": True, "momentum": 0.0}, "needs momentum > 0"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_optimizer("sgd", Net(), lr=0.1, **kwargs)


def test_other_errors():
    net = Net()
    with pytest.raises(ConfigError, match="needs momentum > 0"):
        make_optimizer("nesterov", net, lr=0.1, momentum=0.0)
    with pytest.raises(ConfigError, match="nesterov applies to SGD only"):
        make_optimizer("adam", net, lr=0.1, nesterov=True)
    with pytest.raises(ConfigError, match="add an L2 term to the loss"):
        make_optimizer("lbfgs", net, lr=1.0, weight_decay=1e-4)
    with pytest.raises(ConfigError, match="single parameter group"):
        make_optimizer("lbfgs", param_groups(net, 0.0), lr=1.0)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        make_optimizer("sgd", net.frozen, lr=0.1)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        make_optimizer("adam", [], lr=0.1)
    with pytest.raises(ConfigError, match="pass a model"):
        make_optimizer("sgd", 3, lr=0.1)
    with pytest.raises(ConfigError, match="needs an nn.Module"):
        param_groups([net.fc.weight], 0.1)
    with pytest.raises(ConfigError, match="weight_decay must be"):
        param_groups(net, -1.0)


def test_discriminative_errors():
    net = Net()
    with pytest.raises(ConfigError, match="3 learning rates for 2 module groups"):
        discriminative_groups([net.conv, net.fc], lr=[0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="factor must be a number ≥ 1"):
        discriminative_groups([net.conv, net.fc], lr=0.1, factor=0.5)
    with pytest.raises(ConfigError, match="lr must be"):
        discriminative_groups([net.conv, net.fc], lr=[0.1, -0.2])
    with pytest.raises(ConfigError, match="list of nn.Modules"):
        discriminative_groups(net, lr=0.1)
    with pytest.raises(ConfigError, match="empty"):
        discriminative_groups([], lr=0.1)
    with pytest.raises(ConfigError, match="shares parameters"):
        discriminative_groups([net, net.fc], lr=0.1)


def test_momentum_defaults_per_optimiser_and_sets_adams_beta1():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert make_optimizer("sgd", p, lr=0.1).param_groups[0]["momentum"] == 0.9
    assert make_optimizer("rmsprop", p, lr=0.1).param_groups[0]["momentum"] == 0.0
    assert make_optimizer("adam", p, lr=0.1).param_groups[0]["betas"] == (0.9, 0.999)
    assert make_optimizer("adamw", p, lr=0.1, momentum=0.8).param_groups[0]["betas"] == (0.8, 0.999)
