"""The normalisation family against the formula and torch's own layers: the axes each one averages
over (Wu and He 2018, eq. 1-2), forward and gradient, and ConvNet's ``norm`` option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from striate import models
from striate.errors import ConfigError
from striate.models.norms import NORMS, make_norm, norm_axes, normalize_reference


def batch(seed: int = 0, shape=(4, 8, 5, 3)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # a different offset and scale per channel, so a wrong axis gives a wrong answer
    c = shape[1]
    scale = torch.linspace(0.5, 3.0, c).view(1, c, 1, 1)
    shift = torch.linspace(-2.0, 4.0, c).view(1, c, 1, 1)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale + shift).requires_grad_()


def numpy_reference(x: np.ndarray, kind: str, groups: int = 4, eps: float = 1e-5) -> np.ndarray:
    """The formula in NumPy, written independently of striate's: loops over the sets S_i."""
    n, c, h, w = x.shape
    out = np.empty_like(x)
    if kind == "batch":
        for j in range(c):
            s = x[:, j]
            out[:, j] = (s - s.mean()) / np.sqrt(s.var() + eps)
    elif kind == "instance":
        for i in range(n):
            for j in range(c):
                s = x[i, j]
                out[i, j] = (s - s.mean()) / np.sqrt(s.var() + eps)
    else:
        g = 1 if kind == "layer" else groups
        per = c // g
        for i in range(n):
            for k in range(g):
                s = x[i, k * per : (k + 1) * per]
                out[i, k * per : (k + 1) * per] = (s - s.mean()) / np.sqrt(s.var() + eps)
    return out


TORCH_LAYERS = {
    "batch": lambda c: nn.BatchNorm2d(c, affine=False),
    "layer": lambda c: nn.LayerNorm([c, 5, 3], elementwise_affine=False),
    "instance": lambda c: nn.InstanceNorm2d(c, affine=False),
    "group": lambda c: nn.GroupNorm(4, c, affine=False),
}


@pytest.mark.parametrize("kind", ["batch", "layer", "instance", "group"])
def test_the_formula_equals_numpy_and_torchs_layer_forward_and_gradient(kind):
    x = batch()
    ref = torch.from_numpy(numpy_reference(x.detach().numpy(), kind))
    ours = normalize_reference(x, kind, groups=4)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)

    layer = TORCH_LAYERS[kind](8).double().train()
    theirs = layer(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    # the gradient of a random linear function of the output, through both
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (g_ours,) = torch.autograd.grad((ours * w).sum(), x)
    (g_theirs,) = torch.autograd.grad((theirs * w).sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("kind", ["batch", "layer", "instance", "group"])
def test_make_norm_builds_a_layer_equal_to_the_formula_with_gamma_and_beta(kind):
    x = batch(2)
    layer = make_norm(kind, 8, groups=4).double().train()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(8, generator=g, dtype=torch.float64) + 0.5)
        layer.bias.copy_(torch.randn(8, generator=g, dtype=torch.float64))
    expected = normalize_reference(x, kind, groups=4) * layer.weight.view(
        1, 8, 1, 1
    ) + layer.bias.view(1, 8, 1, 1)
    out = layer(x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    # gradients of the input and of gamma and beta
    w = torch.randn(x.shape, generator=g, dtype=torch.float64)
    params = [x, layer.weight, layer.bias]
    got = torch.autograd.grad((out * w).sum(), params)
    want = torch.autograd.grad((expected * w).sum(), params)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_gradients_agree_with_finite_differences():
    x = batch(4, (2, 4, 3, 2)).detach().requires_grad_()
    for kind in ("batch", "layer", "instance", "group"):
        assert torch.autograd.gradcheck(lambda t, k=kind: normalize_reference(t, k, 2), (x,))


def test_only_batch_norm_depends_on_the_rest_of_the_batch():
    """The lecture's point: layer/instance/group norm treat each example alone (same at train and
    test time); batch norm's output for one example changes with its batch-mates."""
    x = batch(5).detach()
    for kind in ("batch", "layer", "instance", "group"):
        whole = normalize_reference(x, kind, groups=4)[:1]
        alone = normalize_reference(torch.cat([x[:1], x[1:2] * 3 + 1]), kind, groups=4)[:1]
        same = torch.allclose(whole, alone, atol=1e-9)
        assert same == (kind != "batch"), kind


def test_each_norm_gives_zero_mean_unit_variance_over_its_axes():
    x = batch(6).detach()
    dims = {"N": 0, "C": 1, "H": 2, "W": 3}
    for kind in ("batch", "layer", "instance"):
        y = normalize_reference(x, kind, eps=1e-12)
        axes = tuple(dims[a] for a in norm_axes(kind))
        torch.testing.assert_close(y.mean(axes), torch.zeros_like(y.mean(axes)), atol=1e-9, rtol=0)
        v = y.var(axes, unbiased=False)
        torch.testing.assert_close(v, torch.ones_like(v), atol=1e-8, rtol=0)


def test_make_norm_names_and_errors():
    assert isinstance(make_norm("batch", 16), nn.BatchNorm2d)
    assert isinstance(make_norm("instance", 16), nn.InstanceNorm2d)
    layer = make_norm("layer", 16)
    assert isinstance(layer, nn.GroupNorm) and layer.num_groups == 1
    assert make_norm("group", 16, 4).num_groups == 4
    assert isinstance(make_norm("none", 16), nn.Identity)
    assert set(NORMS) == {"batch", "layer", "instance", "group", "none"}
    with pytest.raises(ConfigError, match="groups must divide"):
        make_norm("group", 12, 8)
    with pytest.raises(ConfigError, match="did you mean 'group'"):
        make_norm("grop", 12)


def test_convnet_norm_option_keeps_the_default_and_builds_each_norm():
    torch.manual_seed(0)
    default = models.create("convnet_small", num_classes=10, in_shape=(3, 16, 16))
    torch.manual_seed(0)
    batchnorm = models.create("convnet_small", num_classes=10, in_shape=(3, 16, 16), norm="batch")
    # the default is unchanged: the same layers, names and weights
    assert default.state_dict().keys() == batchnorm.state_dict().keys()
    for k, v in default.state_dict().items():
        assert torch.equal(v, batchnorm.state_dict()[k])
    expected = {
        "batch": nn.BatchNorm2d,
        "layer": nn.GroupNorm,
        "instance": nn.InstanceNorm2d,
        "group": nn.GroupNorm,
    }
    x = torch.randn(3, 3, 16, 16)
    for kind, cls in expected.items():
        m = models.create("convnet_small", num_classes=10, in_shape=(3, 16, 16), norm=kind)
        norms = [layer for layer in m.features if isinstance(layer, cls)]
        assert len(norms) == 2, kind
        convs = [layer for layer in m.features if isinstance(layer, nn.Conv2d)]
        assert all(c.bias is None for c in convs)
        assert m(x).shape == (3, 10)
    plain = models.create("convnet_small", num_classes=10, in_shape=(3, 16, 16), norm="none")
    assert all(c.bias is not None for c in plain.features if isinstance(c, nn.Conv2d))
    off = models.create("convnet_small", num_classes=10, in_shape=(3, 16, 16), batchnorm=False)
    assert not any(isinstance(c, nn.BatchNorm2d) for c in off.features)
    with pytest.raises(ConfigError, match="groups must divide"):
        models.create(
            "convnet_small", num_classes=10, in_shape=(3, 16, 16), norm="group", norm_groups=5
        )
