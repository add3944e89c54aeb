"""The augmentation spec: every registered augmentation parses with and without a value, the
help is generated from the registry, and unknown names are suggested."""

from __future__ import annotations

import pytest

from striate.data.augment import AlternatingFlip, Cutout, RandomCrop, RandomTranslate, Transform
from striate.data.augment_spec import AUGMENTATIONS, augment_help, parse_augment
from striate.errors import ConfigError
from striate.evaluate.tta import untrained_views


def test_every_registered_augmentation_builds_from_the_spec():
    assert AUGMENTATIONS.names() == [
        *("flip", "altflip", "crop", "translate", "cutout", "affine", "jitter", "pca", "scale"),
        *("progressive", "mixup", "cutmix"),
    ]
    for name in AUGMENTATIONS:
        meta = AUGMENTATIONS.entry(name).meta
        value = meta.get("value")
        if value is None or meta.get("default") is not None:  # progressive needs its value
            assert isinstance(parse_augment(name, (3, 32, 24), 10), Transform), name
        if value is not None:
            assert isinstance(parse_augment(f"{name}:1", (3, 32, 24), 10), Transform), name


def test_defaults_follow_the_image_size():
    assert parse_augment("crop", (3, 32, 24), 10).padding == 3  # min(h, w) // 8
    assert parse_augment("translate", (3, 64, 64), 10).max_shift == 8
    assert parse_augment("cutout", (3, 32, 32), 10).size == 8  # size/4
    assert parse_augment("cutout", (1, 2, 2), 10).size == 1  # at least a pixel
    assert isinstance(parse_augment("crop:2", (3, 8, 8), 10), RandomCrop)
    assert isinstance(parse_augment("translate:2", (3, 8, 8), 10), RandomTranslate)
    assert isinstance(parse_augment("cutout:3", (3, 8, 8), 10), Cutout)
    assert isinstance(parse_augment("altflip", (3, 8, 8), 10), AlternatingFlip)
    with pytest.raises(ConfigError, match="altflip takes no value"):
        parse_augment("altflip:1", (3, 8, 8), 10)


def test_help_is_generated_from_the_registry():
    text = augment_help()
    for name in AUGMENTATIONS:
        assert name in text
    assert "crop[:N]: reflect-pad by N pixels and crop back at random (N=size/8)" in text
    assert "flip[:p]: mirror left-right with probability p (p=0.5)" in text
    assert "altflip: " in text and "altflip[" not in text


def test_unknown_augmentation_lists_the_known_and_suggests():
    with pytest.raises(ConfigError) as e:
        parse_augment("flip,cutuot:4", (3, 32, 32), 10)
    msg = str(e.value)
    assert "unknown augmentation 'cutuot'" in msg and "did you mean 'cutout'" in msg
    assert all(name in msg for name in AUGMENTATIONS)


def test_untrained_views_warns_of_views_training_never_showed():
    assert untrained_views(True, "none", (1, 28, 28)) == [
        "--tta flip: the model was not trained with mirrored images (augment 'none'), so this "
        "view may lower its accuracy"
    ]
    assert untrained_views("flip,translate", "auto", (3, 32, 32)) == []  # auto: flip + crop
    assert untrained_views(False, "none", (1, 28, 28)) == []
    assert untrained_views(True, None, (1, 28, 28)) == []
