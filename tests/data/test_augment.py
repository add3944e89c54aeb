"""Batched augmentation against per-sample references written here (loops allowed in tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from striate.data.augment import (
    AlternatingFlip,
    BatchInfo,
    ColorJitter,
    Compose,
    CutMix,
    Cutout,
    Mixup,
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    RandomTranslate,
    augment,
)
from striate.errors import StriateError


def batch(n=16, c=3, h=12, w=10, seed=0):
    """Random images in [0.1, 1] (no exact zeros, no ties) and distinct int labels."""
    gen = torch.Generator().manual_seed(seed)
    x = 0.1 + 0.9 * torch.rand(n, c, h, w, generator=gen)
    return x, torch.arange(n)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def params(t, x, seed=0):
    """The parameters a call with this seed draws (each transform draws them first, from g)."""
    return t.get_params(tuple(x.shape), gen(seed))


# --------------------------------------------------------------------------- flip


def test_flip_matches_torch_flip_on_selected_samples():
    x, y = batch(n=64)
    out, y2 = RandomHorizontalFlip(p=0.5)(x, y, gen(3))
    assert y2 is y
    flipped = []
    for i in range(len(x)):
        if torch.equal(out[i], x[i]):
            flipped.append(False)
        else:
            assert torch.equal(out[i], torch.flip(x[i], dims=[-1]))
            flipped.append(True)
    flipped = torch.tensor(flipped)
    assert 0 < flipped.sum() < len(x)
    assert torch.equal(flipped, params(RandomHorizontalFlip(p=0.5), x, 3)["flip"])


def test_flip_probability_zero_and_one():
    x, y = batch()
    assert torch.equal(RandomHorizontalFlip(p=0.0)(x, y, gen())[0], x)
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x, y, gen())[0], torch.flip(x, dims=[-1]))


def _flipped(out, x):
    """Which samples of `out` are `x` mirrored (each must be one or the other)."""
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert (same ^ mirrored).all()
    return mirrored


def test_alternating_flip_mirrors_each_image_in_exactly_one_of_two_epochs():
    x, y = batch(n=64)
    index = torch.randperm(1000, generator=gen(1))[:64]
    flips = [
        _flipped(AlternatingFlip()(x, y, gen(e), BatchInfo(index, e, seed=5))[0], x)
        for e in range(4)
    ]
    assert 0 < flips[0].sum() < 64
    assert torch.equal(flips[1], ~flips[0]) and torch.equal(flips[3], ~flips[2])
    assert torch.equal(flips[2], flips[0])  # the same half in every even epoch
    # the half is fixed per dataset index, whatever the batch it comes in and its generator
    perm = torch.randperm(64, generator=gen(2))
    again = AlternatingFlip()(x[perm], y[perm], gen(9), BatchInfo(index[perm], 0, seed=5))[0]
    assert torch.equal(_flipped(again, x[perm]), flips[0][perm])


def test_alternating_flip_halves_are_fair_coins_that_change_with_the_seed():
    n = 200_000
    x = torch.zeros(n, 1, 1, 2)
    x[..., 1] = 1
    index = torch.arange(n)
    a = AlternatingFlip()(x, None, gen(), BatchInfo(index, 0, seed=0))[0][:, 0, 0, 0] == 1
    b = AlternatingFlip()(x, None, gen(), BatchInfo(index, 0, seed=1))[0][:, 0, 0, 0] == 1
    sigma = 0.5 / math.sqrt(n)  # a binomial proportion's standard deviation
    assert abs(a.float().mean() - 0.5) < 5 * sigma
    assert abs((a == b).float().mean() - 0.5) < 5 * sigma  # another seed: an independent half
    assert abs((a[1:] == a[:-1]).float().mean() - 0.5) < 5 * sigma  # neighbours independent


def test_alternating_flip_needs_batch_info_and_compose_passes_it():
    x, y = batch(n=8)
    with pytest.raises(StriateError, match="dataset indices and the epoch"):
        AlternatingFlip()(x, y, gen())
    with pytest.raises(StriateError, match="one dataset index per image"):
        AlternatingFlip()(x, y, gen(), BatchInfo(torch.arange(7), 0))
    seen = []

    def plain(x, y, g):  # a plain callable is called without info
        seen.append(len(x))
        return x, y

    info = BatchInfo(torch.arange(8), 3, seed=2)
    out = Compose([plain, AlternatingFlip()])(x, y, gen(), info)[0]
    assert seen == [8]
    assert torch.equal(out, AlternatingFlip()(x, y, gen(), info)[0])
    assert torch.equal(augment(x, y, AlternatingFlip(), seed=4, info=info)[0], out)


# --------------------------------------------------------------------------- crop and translate


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
@pytest.mark.parametrize(("h", "w", "size", "pad"), [(12, 10, (10, 8), 3), (5, 4, (6, 5), 3)])
def test_random_crop_is_a_crop_of_the_padded_image(mode, h, w, size, pad):
    x, y = batch(n=24, h=h, w=w)
    t = RandomCrop(size, padding=pad, padding_mode=mode)
    out, _ = t(x, y, gen(5))
    assert out.shape == (24, 3, *size)
    np_mode = "constant" if mode == "zeros" else "reflect"
    xp = np.pad(x.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=np_mode)
    found = []
    for i in range(len(x)):
        hits = [
            (a, b)
            for a in range(xp.shape[2] - size[0] + 1)
            for b in range(xp.shape[3] - size[1] + 1)
            if np.array_equal(out[i].numpy(), xp[i, :, a : a + size[0], b : b + size[1]])
        ]
        assert len(hits) == 1, f"sample {i} is not exactly one crop of the padded image"
        found.append(hits[0])
    found = torch.tensor(found)
    assert len(set(map(tuple, found.tolist()))) > 5  # offsets differ between samples
    p = params(t, x, 5)
    assert torch.equal(found, torch.stack([p["top"], p["left"]], 1))


def test_random_crop_without_padding_covers_all_offsets():
    x, y = batch(n=400, h=6, w=6)
    p = params(RandomCrop(4, padding=0), x)
    assert set(p["top"].tolist()) == {0, 1, 2} and set(p["left"].tolist()) == {0, 1, 2}


@pytest.mark.parametrize("max_shift", [2, 0.25])
def test_random_translate_shifts_with_zero_fill(max_shift):
    x, y = batch(n=12, h=8, w=12)
    t = RandomTranslate(max_shift)
    out, _ = t(x, y, gen(2))
    p = params(t, x, 2)
    limit_y, limit_x = (2, 2) if max_shift == 2 else (2, 3)
    assert p["dy"].abs().max() <= limit_y and p["dx"].abs().max() <= limit_x
    assert p["dx"].abs().max() == limit_x  # the extreme shift is reachable
    for i in range(len(x)):
        dy, dx = int(p["dy"][i]), int(p["dx"][i])
        ref = torch.zeros_like(x[i])
        for r in range(8):
            for c in range(12):
                if 0 <= r - dy < 8 and 0 <= c - dx < 12:
                    ref[:, r, c] = x[i, :, r - dy, c - dx]
        assert torch.equal(out[i], ref)


# --------------------------------------------------------------------------- cutout


def test_cutout_zeroes_exactly_a_clipped_square():
    x, y = batch(n=64, h=10, w=12)
    size = 5
    t = Cutout(size)
    out, _ = t(x, y, gen(1))
    zero = out == 0
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # same box in every channel
    assert torch.equal(out[~zero], x[~zero])  # the rest is unchanged
    p = params(t, x, 1)
    clipped = 0
    for i in range(len(x)):
        box = zero[i, 0]
        rows, cols = box.any(1), box.any(0)
        assert torch.equal(box, rows[:, None] & cols[None, :])  # a rectangle
        r = rows.nonzero().flatten()
        c = cols.nonzero().flatten()
        # full size unless it touches the border
        assert len(r) == size or (len(r) < size and (r[0] == 0 or r[-1] == 9))
        assert len(c) == size or (len(c) < size and (c[0] == 0 or c[-1] == 11))
        clipped += len(r) < size or len(c) < size
        # and exactly where the drawn centre puts it
        top, left = int(p["cy"][i]) - size // 2, int(p["cx"][i]) - size // 2
        assert r.tolist() == [k for k in range(top, top + size) if 0 <= k < 10]
        assert c.tolist() == [k for k in range(left, left + size) if 0 <= k < 12]
    assert clipped > 0


def test_cutout_probability():
    x, y = batch(n=64)
    assert torch.equal(Cutout(4, p=0.0)(x, y, gen())[0], x)
    out, _ = Cutout(4, p=0.5)(x, y, gen())
    hit = (out == 0).flatten(1).any(1)
    assert 0 < hit.sum() < len(x)


def test_transforms_do_not_modify_their_input():
    x, y = batch()
    before = x.clone()
    for t in (Cutout(4), CutMix(num_classes=16), RandomCrop(8, 2), ColorJitter(0.5, 0.5, 0.5)):
        t(x, y, gen())
    assert torch.equal(x, before)


# --------------------------------------------------------------------------- affine


def test_affine_identity():
    x, y = batch(h=9, w=13)
    out, _ = RandomAffine(degrees=0)(x, y, gen())
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("degrees", "k"), [(90, -1), (-90, 1), (180, 2)])
def test_affine_quarter_turns_match_rot90(degrees, k):
    x, y = batch(h=11, w=11)
    out, _ = RandomAffine(degrees=(degrees, degrees))(x, y, gen())
    torch.testing.assert_close(out, torch.rot90(x, k, dims=(-2, -1)), atol=1e-5, rtol=0)


def _affine_reference(img, p, fill):
    """Explicit formula, float64: output pixel centre → input point → bilinear, `fill` outside."""
    c, h, w = img.shape
    a = math.radians(p["angle"])
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])  # clockwise, y down
    shx = np.array([[1, -math.tan(math.radians(p["shear_x"]))], [0, 1]])
    shy = np.array([[1, 0], [-math.tan(math.radians(p["shear_y"])), 1]])
    lin = p["scale"] * rot @ shy @ shx  # torchvision's _get_inverse_affine_matrix, inverted
    out = np.zeros((c, h, w))
    for r in range(h):
        for col in range(w):
            u = np.array([col + 0.5 - w / 2 - p["tx"], r + 0.5 - h / 2 - p["ty"]])
            sx, sy = np.linalg.solve(lin, u)
            fx, fy = sx + w / 2 - 0.5, sy + h / 2 - 0.5
            x0, y0 = math.floor(fx), math.floor(fy)
            for yy, wy in ((y0, 1 - (fy - y0)), (y0 + 1, fy - y0)):
                for xx, wx in ((x0, 1 - (fx - x0)), (x0 + 1, fx - x0)):
                    inside = 0 <= yy < h and 0 <= xx < w
                    out[:, r, col] += wy * wx * (img[:, yy, xx] if inside else fill)
    return out


@pytest.mark.parametrize("fill", [0.0, 0.5])
def test_affine_matches_explicit_formula(fill):
    x, y = batch(n=4, h=9, w=13)
    t = RandomAffine(
        degrees=30, translate=(0.2, 0.1), scale=(0.8, 1.3), shear=(-10, 10, -5, 5), fill=fill
    )
    out, _ = t(x, y, gen(7))
    p = params(t, x, 7)
    assert p["angle"].abs().min() > 1 and p["tx"].abs().min() > 0.1  # a real warp
    for i in range(len(x)):
        pi = {k: float(v[i]) for k, v in p.items()}
        ref = _affine_reference(x[i].double().numpy(), pi, fill)
        np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-5)


# --------------------------------------------------------------------------- colour


def _jitter_reference(img, b, c, s):
    """torchvision's adjust_brightness / adjust_contrast / adjust_saturation, one image."""
    img = img.double()
    gray = (
        (lambda t: 0.2989 * t[0] + 0.587 * t[1] + 0.114 * t[2])
        if len(img) == 3
        else (lambda t: t[0])
    )
    if b is not None:
        img = (img * b).clamp(0, 1)
    if c is not None:
        img = (c * img + (1 - c) * gray(img).mean()).clamp(0, 1)
    if s is not None and len(img) == 3:
        img = (s * img + (1 - s) * gray(img)).clamp(0, 1)
    return img


@pytest.mark.parametrize("channels", [3, 1])
def test_color_jitter_matches_per_sample_formula(channels):
    x, y = batch(n=16, c=channels)
    t = ColorJitter(brightness=0.9, contrast=(0.3, 1.8), saturation=0.9)
    out, _ = t(x, y, gen(4))
    p = params(t, x, 4)
    assert p["brightness"].min() >= 0.1 and p["brightness"].max() <= 1.9
    assert p["contrast"].min() >= 0.3 and p["contrast"].max() <= 1.8
    assert (out == 1).any()  # the clamp was exercised
    for i in range(len(x)):
        ref = _jitter_reference(
            x[i], float(p["brightness"][i]), float(p["contrast"][i]), float(p["saturation"][i])
        )
        torch.testing.assert_close(out[i].double(), ref, atol=1e-5, rtol=0)


def test_color_jitter_saturation_is_a_no_op_on_grey_images():
    x, y = batch(c=1)
    assert torch.equal(ColorJitter(saturation=0.9)(x, y, gen())[0], x)
    assert torch.equal(ColorJitter()(x, y, gen())[0], x)


# --------------------------------------------------------------------------- mixing


def _lam_from_targets(y, y_mix):
    """λ read off the targets of samples whose partner has another label (labels are distinct)."""
    return y_mix[torch.arange(len(y)), y]


def test_mixup_targets_and_pixels_agree():
    x, y = batch(n=16)
    out, ym = Mixup(alpha=1.0, num_classes=20)(x, y, gen(2))
    assert ym.shape == (16, 20) and ym.dtype == x.dtype
    torch.testing.assert_close(ym.sum(1), torch.ones(16))
    lam = _lam_from_targets(y, ym)
    # one λ per batch; a sample paired with itself keeps weight 1
    lam, fixed = float(lam.min()), lam == 1
    assert 0 < lam < 1
    torch.testing.assert_close(ym[torch.arange(16), y][~fixed], torch.full(((~fixed).sum(),), lam))
    # the partner of sample i is the label carrying weight 1 - λ
    partner = (ym - lam * F.one_hot(y, 20)).argmax(1)
    torch.testing.assert_close(out, lam * x + (1 - lam) * x[partner])
    assert sorted(partner.tolist()) == list(range(16))  # a permutation


def test_mixup_mixes_soft_targets_as_they_are():
    x, _ = batch(n=8)
    soft = torch.softmax(torch.randn(8, 5, generator=gen(1)), 1)
    t = Mixup(alpha=0.4, num_classes=5)
    _, ym = t(x, soft, gen(3))
    p = params(t, x, 3)
    lam = float(p["lam"])
    torch.testing.assert_close(ym, lam * soft + (1 - lam) * soft[p["perm"]])
    torch.testing.assert_close(ym.sum(1), torch.ones(8))


def test_cutmix_pixel_fraction_equals_one_minus_lambda():
    x, y = batch(n=8, h=16, w=12)
    clipped = 0
    for seed in range(12):
        t = CutMix(alpha=1.0, num_classes=8)
        out, ym = t(x, y, gen(seed))
        torch.testing.assert_close(ym.sum(1), torch.ones(8))
        lam = _lam_from_targets(y, ym)
        for i in range(len(x)):
            changed = (out[i] != x[i]).any(0)
            if not changed.any():
                continue
            # every changed pixel comes from one partner, whose label weighs 1 - λ
            partner = int((ym[i] - lam[i] * F.one_hot(y[i], 8)).argmax())
            assert partner != i
            assert torch.equal(out[i][:, changed], x[partner][:, changed])
            assert torch.equal(out[i][:, ~changed], x[i][:, ~changed])
            frac = changed.double().mean().item()
            assert frac == pytest.approx(1 - float(lam[i]), abs=1e-6)
            assert float(ym[i, partner]) == pytest.approx(frac, abs=1e-6)
            rows, cols = changed.any(1), changed.any(0)
            assert torch.equal(changed, rows[:, None] & cols[None, :])  # a box
            clipped += bool(rows[0] or rows[-1] or cols[0] or cols[-1])
    assert clipped > 0


# --------------------------------------------------------------------------- seeding, compose


def _everything(num_classes=16):
    return Compose(
        [
            RandomCrop(12, padding=2, padding_mode="reflect"),
            RandomHorizontalFlip(),
            RandomTranslate(2),
            RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5),
            ColorJitter(0.3, 0.3, 0.3),
            Cutout(4),
            Mixup(alpha=0.5, num_classes=num_classes),
            CutMix(alpha=1.0, num_classes=num_classes),
        ]
    )


def test_same_seed_same_output_different_seed_different_output():
    x, y = batch(h=12, w=12)
    t = _everything()
    a = augment(x, y, t, seed=1)
    b = augment(x, y, t, seed=1)
    c = augment(x, y, t, seed=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_compose_applies_in_order():
    x, y = batch(h=12, w=12)
    t1, t2 = Cutout(6), RandomCrop(12, padding=3)
    out, _ = Compose([t1, t2])(x, y, gen(9))
    g = gen(9)
    ref, _ = t2(*t1(x, y, g), g)
    assert torch.equal(out, ref)
    g = gen(9)
    swapped, _ = t1(*t2(x, y, g), g)
    assert not torch.equal(out, swapped)


def test_repr_is_readable():
    assert repr(RandomCrop(32, padding=4, padding_mode="reflect")) == (
        "RandomCrop(size=(32, 32), padding=4, padding_mode='reflect')"
    )
    assert repr(Compose([RandomHorizontalFlip(), Cutout(8)])) == (
        "Compose([\n    RandomHorizontalFlip(p=0.5),\n    Cutout(size=8, p=1.0),\n])"
    )
    assert repr(Mixup(alpha=0.2, num_classes=10)) == "Mixup(alpha=0.2, num_classes=10)"


# --------------------------------------------------------------------------- CPU and CUDA agree


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_give_the_same_result():
    x, y = batch(n=32, h=16, w=16)
    soft = torch.softmax(torch.randn(32, 32, generator=gen(1)), 1)
    for t in [*_everything(32).transforms, _everything(32)]:
        for targets in (y, soft):
            a = augment(x, targets, t, seed=3)
            b = augment(x.cuda(), targets.cuda(), t, seed=3)
            torch.testing.assert_close(b[0].cpu(), a[0], atol=1e-4, rtol=0, msg=repr(t))
            torch.testing.assert_close(b[1].cpu(), a[1], atol=1e-6, rtol=0, msg=repr(t))


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RandomHorizontalFlip(p=1.5), "probability"),
        (lambda: RandomHorizontalFlip(p="0.5"), "probability"),
        (lambda: RandomCrop(32, padding=-1), "non-negative"),
        (lambda: RandomCrop(0), "positive"),
        (lambda: RandomCrop((32, 32, 3)), "size"),
        (lambda: RandomCrop(32, padding_mode="edge"), "padding_mode"),
        (lambda: RandomTranslate(-1), "max_shift"),
        (lambda: RandomTranslate(1.5), "max_shift"),
        (lambda: Cutout(0), "positive"),
        (lambda: Cutout(4, p=-0.1), "probability"),
        (lambda: RandomAffine(-5), "non-negative"),
        (lambda: RandomAffine((10, -10)), "min <= max"),
        (lambda: RandomAffine(10, translate=(0.5,)), "translate"),
        (lambda: RandomAffine(10, scale=(0, 1)), "scale"),
        (lambda: RandomAffine(10, shear=95), "shear"),
        (lambda: RandomAffine(10, fill="black"), "fill"),
        (lambda: ColorJitter(brightness=-0.1), "brightness"),
        (lambda: ColorJitter(contrast=(1.2, 0.8)), "contrast"),
        (lambda: Mixup(alpha=0, num_classes=10), "alpha"),
        (lambda: Mixup(num_classes=0), "num_classes"),
        (lambda: CutMix(alpha=-1, num_classes=10), "alpha"),
        (lambda: Compose([RandomHorizontalFlip(), "flip"]), "transform"),
    ],
)
def test_bad_constructor_arguments_raise(make, match):
    with pytest.raises(StriateError, match=match):
        make()


@pytest.mark.parametrize(
    ("t", "x", "y", "g", "match"),
    [
        (RandomHorizontalFlip(), torch.zeros(2, 3, 8, 8, dtype=torch.uint8), None, gen(), "float"),
        (RandomHorizontalFlip(), torch.zeros(3, 8, 8), None, gen(), "N×C×H×W"),
        (RandomHorizontalFlip(), torch.zeros(2, 3, 8, 8), torch.zeros(2), gen(), "int64"),
        (RandomHorizontalFlip(), torch.zeros(2, 3, 8, 8), torch.zeros(3).long(), gen(), "2 images"),
        (RandomHorizontalFlip(), torch.zeros(2, 3, 8, 8), None, 0, "Generator"),
        (RandomCrop(40, padding=2), torch.zeros(2, 3, 32, 32), None, gen(), "larger than"),
        (RandomCrop(8, 8, "reflect"), torch.zeros(2, 3, 8, 8), None, gen(), "reflect"),
        (ColorJitter(0.5), torch.zeros(2, 2, 8, 8), None, gen(), "channels"),
        (Mixup(num_classes=4), torch.zeros(2, 3, 8, 8), None, gen(), "targets"),
        (Mixup(num_classes=4), torch.zeros(2, 3, 8, 8), torch.tensor([0, 4]), gen(), "range"),
        (CutMix(num_classes=4), torch.zeros(2, 3, 8, 8), torch.zeros(2, 5), gen(), "columns"),
        (Compose([Cutout(2)]), torch.zeros(2, 3, 8, 8), None, None, "Generator"),
    ],
)
def test_bad_inputs_raise(t, x, y, g, match):
    with pytest.raises(StriateError, match=match):
        t(x, y, g)


def test_augment_rejects_a_non_int_seed():
    x, y = batch()
    with pytest.raises(StriateError, match="seed"):
        augment(x, y, Cutout(2), seed="0")
