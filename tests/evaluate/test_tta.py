"""Test-time views: the lectures' multi-scale ten crops against crops cut by hand from images
resized with torch's interpolate, their weights, and the spec's errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate.errors import ConfigError
from striate.evaluate.tta import parse_tta, tta_log_probs, untrained_views


def test_ten_crops_per_scale_cut_by_hand():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    views = parse_tta("tencrop:32/40")
    assert len(views) == 20 and sum(w for w, _ in views) == pytest.approx(1.0)
    out = [view(x) for _, view in views]
    assert all(o.shape == x.shape for o in out)
    # scale 32: the five crops are the image, the last five of each half its mirror
    for i in range(5):
        assert torch.equal(out[i], x) and torch.equal(out[10 + i], x.flip(-1))
    big = F.interpolate(x, (40, 40), mode="bilinear", align_corners=False)
    by_hand = [big[..., :32, :32], big[..., :32, 8:], big[..., 8:, :32], big[..., 8:, 8:]]
    by_hand.append(big[..., 4:36, 4:36])
    for i, crop in enumerate(by_hand):
        torch.testing.assert_close(out[5 + i], crop)
        torch.testing.assert_close(out[15 + i], crop.flip(-1))


def test_default_scale_and_rectangles():
    x = torch.rand(1, 3, 24, 40)
    views = parse_tta("tencrop")
    assert len(views) == 10
    corner = views[0][1](x)  # top-left crop of the image resized to short side 27
    big = F.interpolate(x, (27, 45), mode="bilinear", align_corners=False)
    torch.testing.assert_close(corner, big[..., :24, :40])


def test_ten_crop_probabilities_are_the_mean_over_views():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.rand(3, 3, 16, 16)
    views = parse_tta("tencrop:18")
    expect = torch.stack([model(v(x)).softmax(1) for _, v in views]).mean(0).log()
    torch.testing.assert_close(tta_log_probs(model, x, views), expect)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tencrop:abc", "distinct image sizes"),
        ("tencrop:40/40", "distinct image sizes"),
        ("tencrop:0", "distinct image sizes"),
        ("tencrop:+x", "paddings at the same scale"),
        ("flip,tencrop", "tencrop"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_tta(spec)


def test_a_scale_below_the_image_is_refused():
    view = parse_tta("tencrop:16")[0][1]
    with pytest.raises(ConfigError, match="at least their short side, 32"):
        view(torch.zeros(1, 3, 32, 32))


def test_warns_when_training_never_shifted_or_mirrored():
    assert untrained_views("tencrop:36", "flip,crop:4", (3, 32, 32)) == []
    warnings = untrained_views("tencrop:36", "none", (3, 32, 32))
    assert len(warnings) == 2 and "mirrored" in warnings[0] and "rescaled" in warnings[1]


def test_same_scale_ten_crops_are_shifts_of_the_reflected_image():
    x = torch.rand(2, 3, 12, 10)
    views = parse_tta("tencrop:+2")
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    corners = [padded[..., :12, :10], padded[..., :12, 4:], padded[..., 4:, :10]]
    corners += [padded[..., 4:, 4:], x]
    for i, crop in enumerate(corners):
        assert torch.equal(views[i][1](x), crop)
        assert torch.equal(views[5 + i][1](x), crop.flip(-1))
    assert len(parse_tta("tencrop:+2/14")) == 20
    with pytest.raises(ConfigError, match="larger than 12"):
        parse_tta("tencrop:+12")[0][1](x)
