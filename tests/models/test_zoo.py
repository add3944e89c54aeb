"""Every model of the zoo builds with `create(name)` alone and runs at the input it is made for:
torchvision's 3×224×224 and 1000 classes for the ImageNet architectures, 3×32×32 and 10 for the
CIFAR ones."""

from __future__ import annotations

import pytest
import torch

from striate import models

IMAGENET = ((3, 224, 224), 1000)
CIFAR = ((3, 32, 32), 10)

# What each family is made for, written out here rather than read back from the registry.
EXPECTED_INPUT = {
    **{n: IMAGENET for n in ("alexnet", "googlenet", "squeezenet1_0", "squeezenet1_1")},
    "efficientnet_lite0": IMAGENET,
    **{f"densenet{d}": IMAGENET for d in (121, 161, 169, 201)},
    **{f"resnet{d}": IMAGENET for d in (18, 34, 50, 101, 152)},
    **{n: IMAGENET for n in ("resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2")},
    **{f"vgg{d}{bn}": IMAGENET for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    "alexnet_2012": ((3, 227, 227), 1000),  # the 2012 paper's 227×227 crops
    "lenet5": ((1, 32, 32), 10),  # LeCun et al. 1998: 32×32 grey
    **{n: CIFAR for n in ("mlp", "convnet", "convnet_small", "cifar_fast", "cifar_resnet")},
    **{f"resnet{d}": CIFAR for d in (20, 32, 44, 56, 110)},
    **{f"preact_resnet{d}": CIFAR for d in (18, 20, 110)},
    **{n: CIFAR for n in ("wide_resnet", "wrn_16_4", "wrn_28_10")},
    "mnist_cnn": ((1, 28, 28), 10),  # Jaderberg et al. 2015's MNIST baseline
    "nin": ((3, 32, 32), 10),  # Lin et al. 2014: the CIFAR-10 model
    "st_cnn": ((1, 28, 28), 10),
}
# Networks of other tasks register themselves when their package is imported; their outputs are
# not class scores (tests/detection, tests/segmentation check them).
OTHER_TASKS = {"grid_detector", "faster_rcnn_small", "fcn", "deconvnet", "unet"}

# Over a second each on two CPU cores (hundreds of MB of weights, or 224×224 convolutions):
# checked on the meta device (shapes only) in the fast suite, computed in the slow one.
HEAVY = {
    *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
    "alexnet_2012",
    "densenet161",
    "densenet201",
    "resnet101",
    "resnet152",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet",
    "wrn_28_10",
}


def test_every_registered_model_has_its_expected_input():
    classifiers = [n for n in models.available() if n not in OTHER_TASKS]
    assert sorted(EXPECTED_INPUT) == classifiers  # a new model is added here too
    for name, expected in EXPECTED_INPUT.items():
        assert models.default_input(name) == expected, name


def _forward(name: str, device: str) -> None:
    shape, classes = EXPECTED_INPUT[name]
    with torch.device(device):
        model = models.create(name).eval()  # no other argument
        with torch.no_grad():
            out = model(torch.zeros(1, *shape))
    assert out.shape == (1, classes)
    assert model.spec["in_shape"] == list(shape) and model.spec["num_classes"] == classes
    if device == "cpu":
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(EXPECTED_INPUT))
def test_create_with_only_a_name_builds_and_runs(name):
    _forward(name, "meta" if name in HEAVY else "cpu")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HEAVY))
def test_create_with_only_a_name_computes_for_the_large_models(name):
    _forward(name, "cpu")


def test_alexnet_is_torchvision_s_at_its_defaults():
    # torchvision.models.alexnet(): 61,100,840 parameters for 1000 classes at 224×224
    for model in (models.create("alexnet"), models.create("alexnet", num_classes=1000)):
        assert sum(p.numel() for p in model.parameters()) == 61_100_840
