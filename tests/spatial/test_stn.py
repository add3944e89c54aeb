"""The STN layer: the identity at initialisation (also after a zoo weight initialisation), in
front of any classifier, and learning a known transformation in a few steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from striate import models
from striate.errors import ConfigError
from striate.models import stn as stn_models  # noqa: F401  (registers mnist_cnn, st_cnn)
from striate.spatial.stn import STN, SpatialTransformer


@pytest.mark.parametrize("transform", ["affine", "projective", "tps"])
@pytest.mark.parametrize("localization", ["cnn", "mlp"])
def test_the_initial_transformer_returns_its_input(transform, localization):
    torch.manual_seed(0)
    st = SpatialTransformer((2, 12, 10), transform, localization=localization)
    x = torch.rand(3, 2, 12, 10)
    torch.testing.assert_close(st(x), x, rtol=0, atol=1e-5)


def test_a_smaller_output_is_bilinear_resizing_at_first():
    st = SpatialTransformer((1, 16, 16), output_size=(8, 8))
    x = torch.rand(2, 1, 16, 16)
    expected = F.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(st(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("init", ["default", "kaiming", "normal"])
def test_st_cnn_starts_at_the_identity_whatever_the_init(init):
    model = models.create("st_cnn", in_shape=(1, 28, 28), init=init)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(model.warp(x), x, rtol=0, atol=1e-5)
    assert model(x).shape == (2, 10)
    big = models.create("st_cnn", in_shape=(1, 60, 60))
    assert big.warp(torch.rand(2, 1, 60, 60)).shape == (2, 1, 28, 28)
    assert models.create("mnist_cnn", in_shape=(1, 42, 42))(torch.rand(2, 1, 42, 42)).shape == (
        2,
        10,
    )


def test_an_stn_goes_in_front_of_a_zoo_classifier():
    classifier = models.create("convnet_small", num_classes=4, in_shape=(3, 8, 8))
    model = STN(classifier, in_shape=(3, 20, 20), transform="tps", output_size=(8, 8))
    x = torch.rand(5, 3, 20, 20)
    assert model(x).shape == (5, 4)
    assert model.warp(x).shape == (5, 3, 8, 8)


def test_it_learns_a_known_translation_in_a_few_steps():
    """Targets are the inputs moved by a fixed (0.3, -0.2): the regression layer's bias must
    become that translation (its weights start at zero and stay small)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = F.avg_pool2d(torch.rand(32, 1, 16, 16, generator=g), 3, 1, 1)
    theta = torch.tensor([[1.0, 0.0, 0.3], [0.0, 1.0, -0.2]]).expand(32, 2, 3)
    target = F.grid_sample(x, F.affine_grid(theta, x.shape, False), align_corners=False)
    st = SpatialTransformer((1, 16, 16), localization="mlp", hidden=16)
    opt = torch.optim.Adam(st.parameters(), lr=0.01)
    first = None
    for _ in range(50):
        loss = F.mse_loss(st(x), target)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
    torch.testing.assert_close(st.params(x).mean(0), theta[0].reshape(6), atol=0.03, rtol=0)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="transform must be one of affine, projective, tps"):
        SpatialTransformer((1, 8, 8), "afine")
    with pytest.raises(ConfigError, match="output_size"):
        SpatialTransformer((1, 8, 8), output_size=(8,))
    with pytest.raises(ConfigError, match="too small"):
        models.create("mnist_cnn", in_shape=(1, 16, 16))


def test_the_grid_stays_float32_under_bf16_autocast():
    model = models.create("st_cnn", in_shape=(1, 28, 28))
    x = torch.rand(2, 1, 28, 28)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        warped = model.warp(x)
    torch.testing.assert_close(warped, x, rtol=0, atol=1e-5)


def test_from_spec_rebuilds_st_cnn():
    model = models.create("st_cnn", in_shape=(1, 42, 42), transform="projective")
    with torch.no_grad():
        model.transformer.regression.bias.add_(0.05)  # away from the identity
    again = models.from_spec(model.spec)
    again.load_state_dict(model.state_dict())
    x = torch.rand(2, 1, 42, 42)
    torch.testing.assert_close(again(x), model(x))
