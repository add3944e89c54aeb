"""Feature inversion and total variation (striate.interpret.inversion).

References: R_V^β written with explicit loops, torch.autograd.gradcheck (central differences in
float64), and the relative feature loss ‖Φ(x) − Φ₀‖² / ‖Φ₀‖² recomputed with a forward hook.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from striate import models
from striate.errors import ConfigError, InputError
from striate.interpret.inversion import invert_features, total_variation


def tv_loops(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Mahendran & Vedaldi's R_V^β of each image, summed over channels, a term per pixel; a
    difference past the last row or column is zero (the edge pixel repeated)."""
    n, c, h, w = x.shape
    out = torch.zeros(n, dtype=x.dtype)
    for b, k, i, j in itertools.product(range(n), range(c), range(h), range(w)):
        across = x[b, k, i, j + 1] - x[b, k, i, j] if j + 1 < w else 0.0
        down = x[b, k, i + 1, j] - x[b, k, i, j] if i + 1 < h else 0.0
        out[b] += (across**2 + down**2) ** (beta / 2)
    return out


@pytest.mark.parametrize("beta", [2.0, 1.0, 1.5, 3.0])
def test_total_variation_is_the_formula(beta):
    x = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(total_variation(x, beta), tv_loops(x, beta), rtol=1e-12, atol=0)
    torch.testing.assert_close(total_variation(x[1], beta), tv_loops(x[1:], beta)[0])


def test_total_variation_of_a_ramp():
    """A ramp rising by 1 per column: each pixel but the last column's has a difference of 1."""
    x = torch.arange(5.0).expand(1, 1, 3, 5)
    assert total_variation(x).item() == 12 and total_variation(x, 1).item() == 12
    assert total_variation(torch.ones(1, 1, 3, 3)).item() == 0


@pytest.mark.parametrize("beta", [2.0, 1.5, 1.0])
def test_total_variation_gradient_matches_finite_differences(beta):
    x = torch.rand(1, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: total_variation(t, beta), (x,), eps=1e-6, atol=1e-7)


def test_total_variation_gradient_is_zero_on_a_flat_image():
    """β < 2 has a kink where both differences vanish: the gradient there is 0, not NaN."""
    x = torch.full((1, 1, 3, 3), 0.5, requires_grad=True)
    (g,) = torch.autograd.grad(total_variation(x, 1.0).sum(), x)
    assert torch.equal(g, torch.zeros_like(g))


# --- inversion -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return models.create("convnet_small", num_classes=10, in_shape=(3, 32, 32)).eval()


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    data = pytest.importorskip("skimage.data")
    cat = torch.from_numpy(data.chelsea()[::8, ::8][:32, :32].copy())
    return cat.permute(2, 0, 1)[None].float() / 255


def relative_loss(model: nn.Module, layer: str, x: torch.Tensor, x0: torch.Tensor) -> float:
    seen = []
    hook = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(x)
        model(x0)
    hook.remove()
    return ((seen[0] - seen[1]).square().sum() / seen[1].square().sum()).item()


@pytest.mark.parametrize(
    ("layer", "optimizer", "steps", "factor"),
    [
        ("features.2", "adam", 40, 100),  # measured: 200×, 50×, 1600×, 30×
        ("features.6", "adam", 40, 10),
        ("features.2", "lbfgs", 15, 100),
        ("features.6", "lbfgs", 15, 10),
    ],
)
def test_inversion_reduces_the_feature_loss(net, photo, layer, optimizer, steps, factor):
    init = 0.5 + 0.01 * torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    x = invert_features(
        net,
        photo,
        layer,
        steps=steps,
        optimizer=optimizer,
        init=init,
        pixel_range=(0, 1),
        progress=False,
    )
    before = relative_loss(net, layer, init, photo)
    after = relative_loss(net, layer, x, photo)
    assert after * factor < before, (before, after)
    assert x.shape == photo.shape and x.min() >= 0 and x.max() <= 1
    if layer == "features.2":  # an early layer keeps the picture: the pixels come back
        assert (x - photo).abs().mean() < 0.25 * (init - photo).abs().mean()


def test_total_variation_weight_smooths_the_reconstruction(net, photo):
    kw = {"steps": 40, "pixel_range": (0, 1), "progress": False}
    rough = invert_features(net, photo, "features.6", tv_weight=0, **kw)
    smooth = invert_features(net, photo, "features.6", tv_weight=5.0, **kw)
    assert total_variation(smooth).item() < 0.5 * total_variation(rough).item()


def test_inversion_is_seeded_and_leaves_the_model_alone(photo):
    torch.manual_seed(0)
    model = models.create("convnet_small", num_classes=10, in_shape=(3, 32, 32)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kw = {"steps": 3, "progress": False}
    a = invert_features(model, photo, "features.4", seed=1, **kw)
    assert torch.equal(a, invert_features(model, photo, "features.4", seed=1, **kw))
    assert not torch.equal(a, invert_features(model, photo, "features.4", seed=2, **kw))
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x: invert_features(m, x, "feature.2"), "did you mean 'features.2'"),
        (lambda m, x: invert_features(m, x, "features.2", steps=0), "steps must be a positive"),
        (lambda m, x: invert_features(m, x, "features.2", optimizer="lbgfs"), "did you mean"),
        (lambda m, x: invert_features(m, x, "features.2", beta=0), "beta must be a positive"),
        (lambda m, x: invert_features(m, x, "features.2", init=x[..., :8]), "init must have"),
        (lambda m, x: invert_features(m, x[0], "features.2"), "N×C×H×W"),
        (lambda m, x: total_variation(x[0, 0]), "N×C×H×W or C×H×W"),
        (lambda m, x: total_variation(x, beta=-1), "beta must be a positive"),
    ],
)
def test_mistakes_are_one_clear_line(net, photo, call, message):
    with pytest.raises((ConfigError, InputError)) as e:
        call(net, photo)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
