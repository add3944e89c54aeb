"""Generated digit scenes: against a per-scene loop that composites, masks and boxes each digit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from striate.data import scenes as S
from striate.data.imageset import ImageSet
from striate.errors import ConfigError


@pytest.fixture(scope="module")
def digits(shared_data) -> ImageSet:
    from striate.data import load_dataset

    return load_dataset("mnist", "test", root=shared_data / "mnist", progress=False)[:600]


def smooth_backgrounds(n: int = 40, seed: int = 0, channels: int = 3) -> ImageSet:
    """Random smooth colour images (8×8 noise upscaled): fast stand-ins for CIFAR-10."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, channels, 8, 8, generator=g)
    images = F.interpolate(noise, size=(32, 32), mode="bilinear", align_corners=False)
    return ImageSet(
        (images * 255).round().to(torch.uint8), torch.zeros(n, dtype=torch.int64), ("bg",)
    )


def _cover(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller if smaller > 0 else 0.0


def _tight(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def loop_reference(
    digits, backgrounds, n, seed, size, per_image, digit_size, overlap, thr, vis, min_pixels=10
):
    """The scenes one at a time, each digit pasted with slicing, in plain Python and NumPy.
    Only the random draws (`_draw`) and torch's antialiased resize are shared with the code."""
    c = backgrounds.shape[0]
    g = torch.Generator().manual_seed(seed)
    d = S._draw(n, len(digits), len(backgrounds), c, size, per_image, digit_size, 16, g)
    images, boxes, labels, masks, counts = [], [], [], [], []
    for i in range(n):
        bg = backgrounds.images[d["background"][i]][None].float() / 255
        img = F.interpolate(bg, size=(size, size), mode="bilinear", antialias=True)[0]
        img = img.clamp(0, 1).double().numpy()
        placed, objects = [], []
        for j in range(int(d["count"][i])):
            k = int(d["digit"][i, j])
            s = int(d["side"][i, j])
            src = digits.images[k][None].float() / 255
            alpha = F.interpolate(src, size=(s, s), mode="bilinear", antialias=True)[0, 0]
            alpha = alpha.clamp(0, 1).double().numpy()
            if (alpha > thr).sum() < min_pixels:
                continue
            ink = _tight(alpha > thr)
            for x, y in d["pos"][i, j].tolist():
                cand = [ink[0] + x, ink[1] + y, ink[2] + x, ink[3] + y]
                if all(_cover(cand, b) <= overlap for b in placed):
                    break
            else:
                continue
            placed.append(cand)
            canvas = np.zeros((size, size))
            canvas[y : y + s, x : x + s] = alpha
            lum = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
            under = (canvas * lum).sum() / max(canvas.sum(), 1e-6)
            base = d["colour"][i, j].double().numpy()
            colour = 0.35 * base if under >= 0.5 else 0.65 + 0.35 * base
            img = img * (1 - canvas) + colour[:, None, None] * canvas
            objects.append((canvas > thr, int(digits.labels[k])))
        kept = 0
        for j, (mask, label) in enumerate(objects):
            visible = mask.copy()
            for later, _ in objects[j + 1 :]:
                visible &= ~later
            if visible.sum() >= max(min_pixels, 1) and visible.sum() >= vis * mask.sum():
                masks.append(visible)
                boxes.append(_tight(visible))
                labels.append(label)
                kept += 1
        counts.append(kept)
        images.append(np.clip(np.round(img * 255), 0, 255))
    return np.stack(images), np.array(boxes), np.array(labels), np.stack(masks), counts


@pytest.mark.parametrize("overlap", [0.3, 1.0])
def test_scenes_equal_a_per_scene_loop(digits, overlap, monkeypatch):
    monkeypatch.setattr(S, "_CHUNK", 5)  # several chunks: chunking must not change the scenes
    backgrounds = smooth_backgrounds()
    args = dict(size=48, per_image=(1, 4), digit_size=(10, 30), overlap=overlap)
    ds = S.digit_scenes(digits, backgrounds, 12, seed=3, **args)
    ref = loop_reference(digits, backgrounds, 12, 3, 48, (1, 4), (10, 30), overlap, 0.5, 0.5)
    images, boxes, labels, masks, counts = ref
    assert ds.counts().tolist() == counts
    assert ds.labels.tolist() == labels.tolist()
    assert torch.equal(ds.masks, torch.from_numpy(masks))
    assert torch.equal(ds.boxes, torch.from_numpy(boxes).float())
    assert (ds.images.double() - torch.from_numpy(images)).abs().max() <= 1  # float rounding


def test_boxes_are_the_tight_boxes_of_the_masks(digits):
    ds = S.digit_scenes(digits, smooth_backgrounds(), 30, seed=1)
    assert len(ds.labels) > 30
    for box, mask in zip(ds.boxes, ds.masks, strict=True):
        assert box.tolist() == _tight(mask.numpy())  # x2, y2 exclusive


def test_heavily_overlapping_digits_are_dropped_or_keep_most_of_their_mask(digits):
    ds = S.digit_scenes(digits, smooth_backgrounds(), 40, overlap=1.0, min_visible=0.6, seed=2)
    ref = loop_reference(digits, smooth_backgrounds(), 40, 2, 64, (1, 4), (16, 40), 1.0, 0.5, 0.6)
    assert ds.counts().tolist() == ref[4]
    assert sum(ref[4]) < int(S._draw(40, 600, 40, 3, 64, (1, 4), (16, 40), 16,
                                     torch.Generator().manual_seed(2))["count"].sum())  # fmt: skip


def test_the_same_seed_gives_the_same_scenes(digits):
    bg = smooth_backgrounds()
    a = S.digit_scenes(digits, bg, 10, seed=5)
    b = S.digit_scenes(digits, bg, 10, seed=5)
    c = S.digit_scenes(digits, bg, 10, seed=6)
    for field in ("images", "boxes", "labels", "offsets", "masks"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.images, c.images)


def test_digits_contrast_with_what_they_cover(digits):
    """The colour rule: every visible digit pixel differs in luminance from the background."""
    bg = smooth_backgrounds()
    ds = S.digit_scenes(digits, bg, 20, seed=4, per_image=(1, 1), threshold=0.9)
    g = torch.Generator().manual_seed(4)
    d = S._draw(20, len(digits), len(bg), 3, 64, (1, 1), (16, 40), 16, g)
    under = F.interpolate(
        bg.images[d["background"]].float() / 255, size=(64, 64), mode="bilinear", antialias=True
    )
    lum = S._luminance(ds.images.float() / 255)
    lum_bg = S._luminance(under)
    diff = (lum - lum_bg).abs()[ds.image_of()][ds.masks]
    assert float(diff.min()) > 0.05  # alpha ≥ 0.9 over a smooth background


def test_the_sources_are_the_splits(monkeypatch):
    """Train scenes come from the train splits and test scenes from the test splits."""
    calls = []

    def fake_load(name, split, root=None, **kw):
        calls.append((str(name), split))
        value = 255 if split == "train" else 100
        images = torch.full(
            (20, 1 if str(name) == "mnist" else 3, 28, 28), value, dtype=torch.uint8
        )
        return ImageSet(images, torch.zeros(20, dtype=torch.int64), ("zero",))

    monkeypatch.setattr(S, "load_dataset", fake_load)
    train = S.scenes_from_sources(4, "train", root_cifar="nowhere", per_image=(1, 1))
    test = S.scenes_from_sources(4, "test", root_cifar="nowhere", per_image=(1, 1))
    assert calls == [
        ("mnist", "train"),
        ("cifar10", "train"),
        ("mnist", "test"),
        ("cifar10", "test"),
    ]
    background = ~train.masks.any(0)  # pixels no digit covers
    assert bool((train.images[:, :, background] == 255).all())
    assert bool((test.images[:, :, ~test.masks.any(0)] == 100).all())
    with pytest.raises(ConfigError, match="split must be 'train' or 'test'"):
        S.scenes_from_sources(4, "val")


@pytest.mark.slow  # decodes CIFAR-10's 10,000 test JPEGs (5 s)
def test_real_sources(shared_data):
    ds = S.scenes_from_sources(
        20,
        "test",
        root_mnist=shared_data / "mnist",
        root_cifar=shared_data / "cifar10",
        size=40,
        digit_size=(12, 24),
    )
    assert ds.shape == (3, 40, 40) and ds.classes == tuple("0123456789")
    assert 20 <= len(ds.labels) <= 80 and "cifar10-jpeg.zip [test]" in ds.source


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"n": 0}, "n must be a positive integer"),
        ({"per_image": (0, 2)}, "per_image must be a (min, max) pair"),
        ({"per_image": (3, 2)}, "per_image must be a (min, max) pair"),
        ({"digit_size": (16, 80)}, "with 4 <= min <= max <= 64"),
        ({"overlap": 1.5}, "overlap must be a probability"),
        ({"threshold": 1.0}, "threshold must be a number in [0, 1)"),
        ({"size": 4}, "size must be an integer >= 8"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_clear_error(digits, kw, words):
    args = {"n": 3, **kw}
    with pytest.raises(ConfigError) as e:
        S.digit_scenes(digits, smooth_backgrounds(4), **args)
    assert words in str(e.value)
    with pytest.raises(ConfigError, match="must be ImageSets"):
        S.digit_scenes(digits, torch.zeros(3, 3, 32, 32), 3)


# ---------------------------------------------------------------- the command


@pytest.fixture
def small_cifar(tmp_path):
    """A CIFAR-like image folder with train/ and test/ splits of a few 32×32 PNGs."""
    from PIL import Image

    root = tmp_path / "cifar"
    g = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 4)):
        for c in ("cat", "ship"):
            (root / split / c).mkdir(parents=True)
            for k in range(n // 2):
                pixels = g.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{k}.png")
    return root


def test_the_command_writes_a_coco_layout_that_pycocotools_reads(
    shared_data, small_cifar, tmp_path
):
    import typer
    from pycocotools.coco import COCO
    from typer.testing import CliRunner

    from striate.cli.scenes import scenes
    from striate.data.coco import read_coco
    from striate.outputs import OutputExists

    app = typer.Typer()
    app.command()(scenes)
    out = tmp_path / "scenes"
    mnist = str(shared_data / "mnist")
    args = [str(out), "--train", "6", "--test", "4", "--size", "32", "--digit-size", "8-16",
            "--mnist", mnist, "--cifar", str(small_cifar), "--seed", "2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "train: 6 images" in result.output and "test: 4 images" in result.output
    for split, n, seed in (("train", 6, 2), ("test", 4, 3)):
        json_path = out / "annotations" / f"instances_{split}.json"
        coco = COCO(str(json_path))
        assert len(coco.getImgIds()) == n and len(list((out / split).glob("*.png"))) == n
        want = S.scenes_from_sources(
            n, split, root_mnist=shared_data / "mnist", root_cifar=small_cifar, seed=seed,
            size=32, digit_size=(8, 16),
        )  # fmt: skip
        assert len(coco.getAnnIds()) == len(want.labels)
        got = read_coco(json_path)
        assert torch.equal(got.images, want.images) and torch.equal(got.masks, want.masks)
        assert torch.equal(got.boxes, want.boxes) and torch.equal(got.labels, want.labels)
        ann = coco.loadAnns(coco.getAnnIds())[0]
        assert np.array_equal(coco.annToMask(ann).astype(bool), want.masks[0].numpy())
    before = (out / "annotations" / "instances_test.json").read_bytes()
    again = CliRunner().invoke(app, [*args[:-2], "--seed", "5"])
    assert isinstance(again.exception, OutputExists) and "--overwrite" in str(again.exception)
    assert (out / "annotations" / "instances_test.json").read_bytes() == before
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
    bad = CliRunner().invoke(app, [str(tmp_path / "x"), "--per-image", "one-four"])
    assert isinstance(bad.exception, ConfigError) and "--per-image must be MIN-MAX" in str(
        bad.exception
    )
