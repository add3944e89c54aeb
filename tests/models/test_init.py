"""Weight initialisation: empirical weight statistics against the formulas, and what they do."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from striate.errors import ConfigError
from striate.models import MLP, ConvNet, init_weights

TOL = 0.03  # relative; the sampling error of a std from n draws is ~1/sqrt(2n), here < 0.3%


def rel_err(t: torch.Tensor, std: float) -> float:
    return abs(t.std().item() - std) / std


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_normal_uses_the_given_std_and_zero_biases():
    lin = nn.Linear(1000, 300)
    init_weights(lin, "normal")
    assert rel_err(lin.weight, 0.01) < TOL and abs(lin.weight.mean().item()) < 1e-4
    assert torch.all(lin.bias == 0)
    init_weights(lin, "normal", std=0.2)
    assert rel_err(lin.weight, 0.2) < TOL


def test_kaiming_std_is_sqrt_2_over_fan_in():
    lin = nn.Linear(1000, 300)
    conv = nn.Conv2d(64, 128, 3)
    init_weights(nn.Sequential(lin, conv), "kaiming")
    assert rel_err(lin.weight, math.sqrt(2 / 1000)) < TOL
    assert rel_err(conv.weight, math.sqrt(2 / (64 * 3 * 3))) < TOL
    assert torch.all(lin.bias == 0) and torch.all(conv.bias == 0)


def test_xavier_std_is_sqrt_2_over_fan_in_plus_fan_out_times_the_next_gain():
    head = nn.Linear(800, 400)
    body = nn.Linear(400, 600)
    conv = nn.Conv2d(32, 64, 3)
    model = nn.Sequential(
        conv,
        nn.BatchNorm2d(64),
        nn.Tanh(),
        nn.Flatten(),  # gain 5/3, BN skipped
        head,
        nn.Dropout(0.5),
        nn.ReLU(),  # gain √2, dropout skipped
        body,  # last layer: gain 1
    )
    init_weights(model, "xavier")
    assert rel_err(conv.weight, 5 / 3 * math.sqrt(2 / (32 * 9 + 64 * 9))) < TOL
    assert rel_err(head.weight, math.sqrt(2) * math.sqrt(2 / (800 + 400))) < TOL
    assert rel_err(body.weight, math.sqrt(2 / (400 + 600))) < TOL


def test_xavier_gain_of_leaky_relu_and_of_unknown_activations():
    a, b = nn.Linear(600, 600), nn.Linear(600, 600)
    init_weights(nn.Sequential(a, nn.LeakyReLU(0.2), b, nn.GELU()), "xavier")
    assert rel_err(a.weight, math.sqrt(2 / (1 + 0.2**2)) * math.sqrt(2 / 1200)) < TOL
    assert rel_err(b.weight, math.sqrt(2 / 1200)) < TOL  # GELU: torch has no gain, so 1


def test_norm_layers_reset_and_default_leaves_everything():
    net = ConvNet((3, 16, 16), 10, channels=(8,), fc=(16,))
    bn = net.features[1]
    with torch.no_grad():
        bn.weight.uniform_(2, 3)
        bn.bias.uniform_(2, 3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert init_weights(net, "default") is net
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert init_weights(net, "xavier") is net
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert all(torch.all(m.bias == 0) for m in net.modules() if isinstance(m, nn.Linear))


def activation_stds(scheme: str, **kw) -> list[float]:
    """Std of the ReLU outputs of a 10-layer, 500-unit MLP on unit-Gaussian input (lecture 6)."""
    net = init_weights(MLP([500] * 11, activation="relu"), scheme, **kw)
    stds: list[float] = []
    for m in net:
        if isinstance(m, nn.ReLU):
            m.register_forward_hook(lambda _m, _i, out: stds.append(out.std().item()))
    with torch.no_grad():
        net(torch.randn(1000, 500))
    return stds


def test_kaiming_keeps_relu_activations_alive_and_small_normal_makes_them_vanish():
    kaiming = activation_stds("kaiming")
    assert len(kaiming) == 9
    assert 0.3 < kaiming[-1] / kaiming[0] < 3
    small = activation_stds("normal", std=0.01)
    # each layer scales by about 0.01·√(500/2) ≈ 0.16: eight layers ≈ 4e-7
    assert small[-1] / small[0] < 1e-4
    xavier = activation_stds("xavier")  # with the ReLU gain: the same as Kaiming here
    assert 0.3 < xavier[-1] / xavier[0] < 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("he",), "unknown weight initialisation 'he'; choose one of default, normal, xavier"),
        (("normal", 0.0), "std must be a positive number"),
        (("normal", -0.01), "std must be a positive number"),
        (("normal", float("nan")), "std must be a positive number"),
    ],
)
def test_bad_arguments(args, needle):
    with pytest.raises(ConfigError, match=needle):
        init_weights(nn.Linear(2, 2), *args)
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        init_weights("model")
