"""The cifar_fast net (airbench94): shapes, exact parameter count, airbench's layer details against
a forward pass written out with torch.nn.functional, the 64× bias lr, and patch whitening."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate import models
from striate.errors import ConfigError
from striate.models.fastnet import FastNet, ScaledShiftBatchNorm, whiten_init


def make(**kwargs) -> FastNet:
    torch.manual_seed(0)
    return models.create("cifar_fast", **kwargs)


def correlated_images(n: int = 64, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Smooth, channel-mixed random images: strongly correlated neighbouring pixels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size // 2, size // 2, generator=g)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x + 0.3 * torch.randn(n, 3, size, size, generator=g)
    mix = torch.tensor([[1.0, 0.6, 0.3], [0.2, 1.0, 0.5], [0.4, 0.1, 1.0]])
    return torch.einsum("dc,nchw->ndhw", mix, x) + 0.2


def test_output_shape_and_spatial_sizes():
    m = make()
    x = torch.randn(4, 3, 32, 32)
    assert m(x).shape == (4, 10)
    h = m.activ(m.whiten(x))
    sizes = [tuple(h.shape[1:])]
    for group in m.groups:
        h = group(h)
        sizes.append(tuple(h.shape[1:]))
    # airbench: 24×31×31, then 64×15×15, 256×7×7, 256×3×3 (and its MaxPool2d(3) to 1×1)
    assert sizes == [(24, 31, 31), (64, 15, 15), (256, 7, 7), (256, 3, 3)]
    grey = models.create("cifar_fast", num_classes=3, in_shape=(1, 28, 28), widths=(8, 16, 16))
    assert grey(torch.randn(2, 1, 28, 28)).shape == (2, 3)
    assert grey.whiten.out_channels == 2 * 1 * 2 * 2


def test_exact_parameter_count():
    m = make()
    c, k, widths, classes = 3, 2, (64, 256, 256), 10
    d = 2 * c * k * k  # 24 whitening filters
    whiten = d * c * k * k + d  # weight (frozen) + bias
    convs = sum(9 * a * b + 9 * b * b for a, b in zip((d, *widths[:-1]), widths, strict=True))
    norms = sum(2 * 2 * w for w in widths)  # two BNs per group: frozen scale + shift
    head = widths[-1] * classes  # no bias
    total = whiten + convs + norms + head
    assert total == 1_972_792
    assert sum(p.numel() for p in m.parameters()) == total
    frozen = d * c * k * k + sum(2 * w for w in widths)  # whitening weight, BN scales
    assert sum(p.numel() for p in m.parameters() if not p.requires_grad) == frozen


def test_airbench_layer_details():
    m = make()
    assert not m.whiten.weight.requires_grad and m.whiten.bias.requires_grad
    assert m.whiten.kernel_size == (2, 2) and m.whiten.padding == (0, 0)
    assert torch.count_nonzero(m.whiten.bias) == 0
    norms = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert len(norms) == 6
    for bn in norms:
        assert isinstance(bn, ScaledShiftBatchNorm)
        assert bn.eps == 1e-12 and bn.momentum == pytest.approx(1 - 0.6)
        assert not bn.weight.requires_grad and bn.bias.requires_grad
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    convs = [mod for mod in m.groups.modules() if isinstance(mod, nn.Conv2d)]
    assert len(convs) == 6 and all(c.bias is None and c.padding == (1, 1) for c in convs)
    assert m.head.bias is None and isinstance(m.pool, nn.AdaptiveMaxPool2d)
    assert m.logit_scale == pytest.approx(1 / 9)


def test_convs_start_as_identity_on_their_first_in_channels_filters():
    m = make()
    conv = m.groups[1].conv1  # 64 -> 256
    x = torch.randn(2, 64, 7, 7)
    torch.testing.assert_close(conv(x)[:, :64], x)
    assert conv.weight[64:].abs().sum() > 0  # the rest keep PyTorch's random init


def reference_forward(m: FastNet, x: torch.Tensor) -> torch.Tensor:
    """airbench94's forward in training mode, written with torch.nn.functional."""

    def bn(t, norm):
        mean = t.mean((0, 2, 3), keepdim=True)
        var = t.var((0, 2, 3), unbiased=False, keepdim=True)
        return (t - mean) / torch.sqrt(var + 1e-12) + 8.0 * norm.bias.view(1, -1, 1, 1)

    h = F.gelu(F.conv2d(x, m.whiten.weight, m.whiten.bias))
    for g in m.groups:
        h = F.gelu(bn(F.max_pool2d(F.conv2d(h, g.conv1.weight, padding=1), 2), g.norm1))
        h = F.gelu(bn(F.conv2d(h, g.conv2.weight, padding=1), g.norm2))
    h = F.max_pool2d(h, 3).flatten(1)  # airbench's MaxPool2d(3) on the 3×3 maps
    return (h @ m.head.weight.T) / 9


def test_forward_matches_airbench_written_out():
    m = make()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, ScaledShiftBatchNorm):
                mod.bias.normal_(0.0, 0.05)  # shifts of ~±0.4: no dead channel
        m.whiten.bias.normal_(0.0, 0.5)
    x = torch.randn(8, 3, 32, 32)
    torch.testing.assert_close(m.train()(x), reference_forward(m, x), rtol=1e-4, atol=1e-5)
    cl = m(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, reference_forward(m, x), rtol=1e-3, atol=1e-4)


def test_running_statistics_use_momentum_0_4():
    bn = make().groups[0].norm2
    x = torch.randn(16, 64, 5, 5) * 3 + 1
    bn.train()(x)
    torch.testing.assert_close(bn.running_mean, 0.4 * x.mean((0, 2, 3)))
    var = x.var((0, 2, 3), unbiased=True)
    torch.testing.assert_close(bn.running_var, 0.6 * torch.ones(64) + 0.4 * var)
    assert int(bn.num_batches_tracked) == 1
    y = bn.eval()(x)  # evaluation uses the running statistics
    expected = (x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
        bn.running_var.view(1, -1, 1, 1) + 1e-12
    )
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_bias_scale_trains_the_shifts_at_64x_the_lr_under_nesterov_sgd():
    """airbench: a separate optimiser group for BN shifts with lr × 64. Here: scale 8, one lr."""
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 10, (16,))

    def effective_shifts(model: FastNet, scale: float) -> torch.Tensor:
        return torch.cat([scale * bn.bias for bn in model.modules() if hasattr(bn, "bias_scale")])

    lr = 0.05
    scaled = make(widths=(8, 16, 16))
    plain = make(widths=(8, 16, 16), bn_bias_scale=1.0)
    with torch.no_grad():
        for a, b in zip(scaled.parameters(), plain.parameters(), strict=True):
            b.copy_(a)
    shifts = [p for n, p in plain.named_parameters() if "norm" in n and p.requires_grad]
    ids = {id(p) for p in shifts}
    others = [p for p in plain.parameters() if p.requires_grad and id(p) not in ids]
    opt_plain = torch.optim.SGD(
        [{"params": shifts, "lr": 64 * lr}, {"params": others, "lr": lr}],
        momentum=0.85,
        nesterov=True,
    )
    trainable = [p for p in scaled.parameters() if p.requires_grad]
    opt_scaled = torch.optim.SGD(trainable, lr=lr, momentum=0.85, nesterov=True)
    for _ in range(3):
        for model, opt in ((scaled, opt_scaled), (plain, opt_plain)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    moved = effective_shifts(plain, 1.0)
    assert moved.abs().max() > 1e-3
    torch.testing.assert_close(effective_shifts(scaled, 8.0), moved, rtol=1e-4, atol=1e-6)


def patch_matrix(x: torch.Tensor, k: int) -> np.ndarray:
    """Every k×k patch as a row ordered (channel, dy, dx), by slicing (independent of unfold)."""
    n, c, h, w = x.shape
    cols = [
        x[:, ch, dy : h - k + 1 + dy, dx : w - k + 1 + dx]
        for ch in range(c)
        for dy in range(k)
        for dx in range(k)
    ]
    return torch.stack(cols, -1).reshape(-1, c * k * k).double().numpy()


def test_whitening_makes_the_first_layer_outputs_white():
    m = make()
    x = correlated_images()
    whiten_init(m, x, eps=1e-9)
    z = m.whiten(x)  # the bias is zeroed
    first = z[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    second_moment = first.T @ first / len(first)
    torch.testing.assert_close(second_moment, torch.eye(12, dtype=torch.float64), atol=2e-4, rtol=0)
    torch.testing.assert_close(z[:, 12:], -z[:, :12])
    # before, the patch coordinates are far from white
    p = patch_matrix(x, 2)
    raw = p.T @ p / len(p)
    assert np.abs(raw - np.eye(12)).max() > 0.5


def test_whitening_with_eps_gives_lambda_over_lambda_plus_eps():
    m = make()
    x = correlated_images(seed=1)
    eps = 0.05
    whiten_init(m, x, eps=eps)
    p = patch_matrix(x, 2)
    lam = np.linalg.eigvalsh(p.T @ p / len(p))[::-1]  # descending, as the filters are ordered
    z = m.whiten(x)[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    second_moment = (z.T @ z / len(z)).detach().numpy()
    np.testing.assert_allclose(second_moment, np.diag(lam / (lam + eps)), atol=1e-4)
    # the filters are unit eigenvectors scaled by 1/sqrt(λ + eps)
    w = m.whiten.weight[:12].reshape(12, -1).double().detach().numpy()
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1 / np.sqrt(lam + eps), rtol=1e-5)


def test_whiten_init_accepts_the_layer_and_zeroes_the_bias():
    m = make()
    with torch.no_grad():
        m.whiten.bias.fill_(1.0)
    out = whiten_init(m.whiten, correlated_images(16))
    assert out is m.whiten and torch.count_nonzero(m.whiten.bias) == 0


@pytest.mark.parametrize(
    ("target", "images", "kwargs", "match"),
    [
        ("linear", torch.randn(4, 3, 8, 8), {}, "FastNet"),
        ("net", torch.randn(4, 1, 8, 8), {}, r"N×3×H×W"),
        ("net", torch.randn(3, 8, 8), {}, r"N×3×H×W"),
        ("net", torch.zeros(4, 3, 8, 8, dtype=torch.uint8), {}, "normalise"),
        ("net", torch.randn(4, 3, 8, 8), {"eps": 0.0}, "eps"),
        ("net", torch.randn(4, 3, 8, 8), {"eps": -1e-3}, "eps"),
        ("net", torch.randn(1, 3, 3, 3), {}, "more images"),
        ("net", torch.randn(2, 3, 1, 1), {}, "smaller"),
        ("net", torch.full((4, 3, 8, 8), float("nan")), {}, "NaN"),
        ("conv", torch.randn(4, 3, 8, 8), {}, "2·C·k·k"),
    ],
)
def test_whiten_init_rejects_bad_input(target, images, kwargs, match):
    m = make()
    obj = {"linear": nn.Linear(3, 3), "net": m, "conv": nn.Conv2d(3, 12, 2)}[target]
    with pytest.raises(ConfigError, match=match):
        whiten_init(obj, images, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"widths": (64, 128, 256, 256, 512)}, "at least 33×33"),
        ({"widths": (64, -1)}, "widths"),
        ({"widths": ()}, "widths"),
        ({"bn_momentum": 0.0}, "bn_momentum"),
        ({"bn_momentum": 1.5}, "bn_momentum"),
        ({"bn_eps": -1.0}, "bn_eps"),
        ({"bn_bias_scale": 0}, "bn_bias_scale"),
        ({"logit_scale": float("inf")}, "logit_scale"),
        ({"whiten_kernel": 0}, "whiten_kernel"),
        ({"width": (8, 8, 8)}, "did you mean 'widths'"),
        ({"in_shape": (1, 8, 8)}, "at least 9×9"),
    ],
)
def test_bad_options_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        models.create("cifar_fast", **kwargs)


def test_spec_round_trip_through_json():
    m = make(widths=(8, 16, 32), bn_bias_scale=4.0)
    spec = json.loads(json.dumps(m.spec))
    again = models.from_spec(spec)
    assert spec["kwargs"]["widths"] == [8, 16, 32]
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in m.state_dict().items()
    }
    again.load_state_dict(m.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(again.eval()(x), m.eval()(x))
    assert "cifar_fast" in models.available()
    assert "airbench94" in models.describe("cifar_fast")
