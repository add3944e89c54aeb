"""Box-aware augmentation: boxes and masks against loops over images and boxes, pixels against a
bilinear sampler written out in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from striate.data.augment import ColorJitter
from striate.data.box_augment import (
    BoxCompose,
    BoxFlip,
    BoxJitter,
    BoxTargets,
    BoxZoom,
    mask_boxes,
    parse_box_augment,
    repack,
)
from striate.errors import ConfigError, StriateError


def rect_batch(b: int = 6, m: int = 3, h: int = 20, w: int = 24, seed: int = 0):
    """Images and rectangular objects (mask = its box), the last object of some rows padding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g)
    x1 = torch.randint(0, w - 6, (b, m), generator=g)
    y1 = torch.randint(0, h - 6, (b, m), generator=g)
    bw = torch.randint(1, 6, (b, m), generator=g)
    bh = torch.randint(1, 6, (b, m), generator=g)
    boxes = torch.stack([x1, y1, x1 + bw, y1 + bh], -1).float()
    labels = torch.randint(0, 5, (b, m), generator=g)
    labels[::2, -1] = -1
    boxes[labels == -1] = 0
    cols, rows = torch.arange(w), torch.arange(h)
    masks = (
        (cols >= boxes[..., 0, None, None])
        & (cols < boxes[..., 2, None, None])
        & (rows[:, None] >= boxes[..., 1, None, None])
        & (rows[:, None] < boxes[..., 3, None, None])
    )
    return x, BoxTargets(boxes, labels, masks)


def params_of(t, shape, seed):
    return t.get_params(shape, torch.Generator().manual_seed(seed))


def test_flip_moves_boxes_and_masks_as_a_loop_does():
    x, y = rect_batch()
    t = BoxFlip(0.5)
    flip = params_of(t, x.shape, 1)["flip"]
    out, z = t(x, y, torch.Generator().manual_seed(1))
    w = x.shape[-1]
    for i in range(len(x)):
        assert torch.equal(out[i], x[i].flip(-1) if flip[i] else x[i])
        for j in range(y.labels.shape[1]):
            x1, y1, x2, y2 = y.boxes[i, j].tolist()
            want = (
                [w - x2, y1, w - x1, y2] if flip[i] and y.labels[i, j] != -1 else [x1, y1, x2, y2]
            )
            assert z.boxes[i, j].tolist() == want
    assert torch.equal(z.labels, y.labels)
    real = z.labels != -1
    assert torch.equal(mask_boxes(z.masks)[real], z.boxes[real])  # masks moved with the boxes


def bilinear_reference(img: np.ndarray, s: float, tx: float, ty: float, fill: float) -> np.ndarray:
    """Output pixel (r, c) samples the input at ((c + 0.5 − tx)/s − 0.5, (r + 0.5 − ty)/s − 0.5),
    bilinear with zeros outside; the share that came from outside is `fill`."""
    c_, h, w = img.shape
    out = np.zeros_like(img)
    for r in range(h):
        for c in range(w):
            u, v = (c + 0.5 - tx) / s - 0.5, (r + 0.5 - ty) / s - 0.5
            x0, y0 = int(np.floor(u)), int(np.floor(v))
            acc, inside = np.zeros(c_), 0.0
            for yy, wy in ((y0, 1 - (v - y0)), (y0 + 1, v - y0)):
                for xx, wx in ((x0, 1 - (u - x0)), (x0 + 1, u - x0)):
                    if 0 <= yy < h and 0 <= xx < w:
                        acc += wy * wx * img[:, yy, xx]
                        inside += wy * wx
            out[:, r, c] = acc + (1 - inside) * fill
    return out


@pytest.mark.parametrize("scale", [(0.5, 0.9), (1.2, 2.0)])
def test_zoom_samples_the_pixels_as_a_written_out_bilinear(scale):
    x, y = rect_batch(b=3, h=10, w=12)
    t = BoxZoom(scale, fill=0.25)
    p = params_of(t, x.shape, 2)
    out, _ = t(x, y, torch.Generator().manual_seed(2))
    for i in range(len(x)):
        s, (tx, ty) = float(p["scale"][i]), p["shift"][i].tolist()
        ref = bilinear_reference(x[i].double().numpy(), s, tx, ty, 0.25)
        np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-5)


def test_zoom_moves_clips_and_drops_boxes_as_a_loop_does():
    x, y = rect_batch(b=12, m=4, seed=3)
    y = BoxTargets(y.boxes, y.labels)  # boxes only
    h, w = x.shape[-2:]
    t = BoxZoom((0.6, 2.5), min_visible=0.5)
    p = params_of(t, x.shape, 4)
    _, z = t(x, y, torch.Generator().manual_seed(4))
    for i in range(len(x)):
        s, (tx, ty) = float(p["scale"][i]), p["shift"][i].tolist()
        want_boxes, want_labels = [], []
        for box, label in zip(y.boxes[i].tolist(), y.labels[i].tolist(), strict=True):
            if label == -1:
                continue
            moved = [s * box[0] + tx, s * box[1] + ty, s * box[2] + tx, s * box[3] + ty]
            clip = [min(max(v, 0), lim) for v, lim in zip(moved, (w, h, w, h), strict=True)]
            area = (moved[2] - moved[0]) * (moved[3] - moved[1])
            if (clip[2] - clip[0]) * (clip[3] - clip[1]) >= 0.5 * area:
                want_boxes.append(clip)
                want_labels.append(label)
        k = len(want_labels)
        assert z.labels[i, :k].tolist() == want_labels and bool((z.labels[i, k:] == -1).all())
        np.testing.assert_allclose(z.boxes[i, :k].numpy(), np.array(want_boxes).reshape(k, 4),
                                   rtol=1e-5, atol=1e-4)  # fmt: skip
        assert bool((z.boxes[i, k:] == 0).all())
    assert int((z.labels != -1).sum()) < int((y.labels != -1).sum())  # some were dropped


def test_zoom_keeps_masks_with_the_pixels_and_boxes_tight_around_them():
    x, y = rect_batch(b=10, m=3, h=24, w=24, seed=5)
    ids = torch.where(y.labels == -1, -1, torch.arange(3))  # object j has label j
    y = BoxTargets(y.boxes, ids, y.masks)
    t = BoxZoom((0.7, 1.8))
    _, z = t(x, y, torch.Generator().manual_seed(6))
    # the masks as the channels of an image, zoomed with the same draws as pixels
    zoomed, _ = t(y.masks.float(), BoxTargets(y.boxes, y.labels), torch.Generator().manual_seed(6))
    real = z.labels != -1
    assert 0 < int(real.sum()) < int((y.labels != -1).sum())
    assert torch.equal(mask_boxes(z.masks)[real], z.boxes[real])
    rows, slots = real.nonzero().unbind(1)
    assert torch.equal(z.masks[rows, slots], zoomed[rows, z.labels[rows, slots]] >= 0.5)
    assert not z.masks[~real].any()
    # a kept box lies within a pixel of its box moved as the formula says (s·box + t, clipped)
    p = params_of(t, x.shape, 6)
    moved = y.boxes * p["scale"].float()[:, None, None] + p["shift"].float().repeat(1, 2)[:, None]
    moved = moved.clamp(min=0).clamp(max=24)
    want = moved[rows, z.labels[rows, slots]]
    assert float((want - z.boxes[rows, slots]).abs().max()) <= 1.0


def test_jitter_changes_colours_only():
    x, y = rect_batch()
    out, z = BoxJitter(0.3, 0.3, 0.3)(x, y, torch.Generator().manual_seed(7))
    ref, _ = ColorJitter(0.3, 0.3, 0.3)(x, None, torch.Generator().manual_seed(7))
    assert torch.equal(out, ref) and z is y


def test_compose_and_the_spec_parser():
    t = parse_box_augment("flip:0.3, zoom:0.8-1.2 ,jitter")
    assert isinstance(t, BoxCompose) and len(t) == 3
    assert t[0].p == 0.3 and t[1].scale == (0.8, 1.2) and t[2].brightness == (0.8, 1.2)
    assert parse_box_augment("none") is None and parse_box_augment("") is None
    assert parse_box_augment("scale:0.5-1.5").scale == (0.5, 1.5)
    x, y = rect_batch()
    a = t(x, y, torch.Generator().manual_seed(8))
    g = torch.Generator().manual_seed(8)
    b = t[2](*t[1](*t[0](x, y, g), g), g)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1].boxes, b[1].boxes)
    for spec, words in [
        ("flop", "unknown box augmentation 'flop'"),
        ("zoom:big", "is not LO-HI"),
        ("zoom:2-1", "scale must be a (min, max) pair"),
        ("flip:2", "p must be a probability"),
    ]:
        with pytest.raises(ConfigError, match="box augmentation") as e:
            parse_box_augment(spec)
        assert words in str(e.value)


def test_repack_moves_padding_last_and_keeps_order():
    boxes = torch.arange(24.0).view(2, 3, 4)
    labels = torch.tensor([[1, 2, 3], [4, -1, 5]])
    z = repack(BoxTargets(boxes, labels), torch.tensor([[False, True, True], [True, True, True]]))
    assert z.labels.tolist() == [[2, 3, -1], [4, 5, -1]]
    assert torch.equal(z.boxes[0, :2], boxes[0, 1:]) and torch.equal(z.boxes[1, 1], boxes[1, 2])
    assert bool((z.boxes[:, 2] == 0).all())


def test_bad_batches_are_one_clear_error():
    x, y = rect_batch()
    g = torch.Generator()
    with pytest.raises(StriateError, match="targets must be BoxTargets"):
        BoxFlip()(x, y.labels, g)
    with pytest.raises(StriateError, match="boxes B×M×4"):
        BoxFlip()(x, BoxTargets(y.boxes[:2], y.labels), g)
    with pytest.raises(StriateError, match="masks must be bool"):
        BoxFlip()(x, BoxTargets(y.boxes, y.labels, y.masks.float()), g)
    with pytest.raises(ConfigError, match="every item must be a box transform"):
        BoxCompose([ColorJitter(0.1)])
