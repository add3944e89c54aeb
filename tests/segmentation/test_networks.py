"""The segmentation networks: registered (rebuilt from their spec), logits at the input's size
for any size, the FCN's fixed bilinear upsampling, and each memorises a few images."""

import pytest
import torch
import torch.nn.functional as F

from striate import models
from striate.errors import ConfigError
from striate.segmentation import unet  # noqa: F401  (registers "unet")
from striate.segmentation.fcn import FCN, DeconvNet

SMALL = {
    "unet": {"base": 8, "depth": 2},
    "fcn": {"channels": [8, 16, 32], "skips": 2},
    "deconvnet": {"channels": [8, 16], "unpool": "max"},
}


@pytest.mark.parametrize("name", ["unet", "fcn", "deconvnet"])
def test_the_registered_networks_give_logits_at_the_input_size(name):
    model = models.create(name)  # the scenes' defaults: 3×64×64, 11 classes
    assert model.spec["num_classes"] == 11 and model.spec["in_shape"] == [3, 64, 64]
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 11, 64, 64)
        assert model(torch.rand(1, 3, 37, 50)).shape == (1, 11, 37, 50)  # padded, cropped
    rebuilt = models.from_spec(model.spec)
    assert type(rebuilt) is type(model)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("skips", [0, 1, 2])
def test_fcn_skips_and_its_final_upsampling(skips):
    model = FCN(5, (3, 32, 32), channels=(8, 16, 32), skips=skips).eval()
    assert model.final_factor == 2 ** (3 - skips)
    assert "final_up" not in model.state_dict()  # fixed bilinear: not a weight
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 5, 32, 32)
    # at initialisation the skip scores are zero (Long et al. §4.2): the output is the coarse
    # scores through the learned ×2 upsamplings, then the fixed bilinear one
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        pooled, _, _ = model.encoder(x)
        up = model.score(model.head(pooled[-1]))
        for layer in model.ups:
            up = layer(up)
        f = model.final_factor
        if f > 1:
            up = F.conv_transpose2d(up, model.final_up, stride=f, padding=f // 2)
        torch.testing.assert_close(model(x), up)


def test_bad_options_are_one_line():
    with pytest.raises(ConfigError, match="skips must be"):
        FCN(11, (3, 64, 64), channels=(8, 16), skips=2)
    with pytest.raises(ConfigError, match="did you mean 'max'"):
        DeconvNet(unpool="maxx")
    with pytest.raises(ConfigError, match="has no option 'width'"):
        models.create("unet", width=3)


def _scenes(n=4, size=16, classes=4, seed=0):
    """Coloured squares on noise: each class its own colour, class maps to memorise."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.rand(classes, 3, generator=g)
    y = torch.zeros(n, size, size, dtype=torch.int64)
    for i in range(n):  # a loop over 4 test images and 3 squares each
        for _ in range(3):
            x0, y0 = torch.randint(0, size - 6, (2,), generator=g).tolist()
            y[i, y0 : y0 + 6, x0 : x0 + 6] = int(torch.randint(1, classes, (1,), generator=g))
    x = colours[y].permute(0, 3, 1, 2) + 0.1 * torch.randn(n, 3, size, size, generator=g)
    return x, y


@pytest.mark.parametrize("name", ["unet", "fcn", "deconvnet"])
def test_each_network_memorises_a_few_images(name):
    torch.manual_seed(0)
    x, y = _scenes(n=2)
    model = models.create(name, num_classes=4, in_shape=(3, 16, 16), **SMALL[name])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(50):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean()
    assert acc > 0.95, (name, float(acc), float(loss))


def test_unet_coarse_scores_add_the_bottleneck_s_scores_bilinearly_upsampled():
    torch.manual_seed(0)
    plain = models.create("unet", 5, (3, 32, 32), base=4, depth=2).eval()
    coarse = models.create("unet", 5, (3, 32, 32), base=4, depth=2, coarse_scores=True).eval()
    coarse.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        skips = []
        h = x
        for block in coarse.down:
            h = block(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        bottom = coarse.coarse(coarse.bottom(h))
        # away from the border the fixed kernel is bilinear interpolation (align_corners=False)
        extra = F.interpolate(bottom, scale_factor=4, mode="bilinear", align_corners=False)
        diff = coarse(x) - plain(x)
    torch.testing.assert_close(diff[..., 4:-4, 4:-4], extra[..., 4:-4, 4:-4])
    assert "coarse_up" not in coarse.state_dict()
