"""Instance masks in COCO's forms: run-length encoding (RLE) and polygons, vectorised.

COCO's RLE (Lin et al. 2014; the `maskApi.c` of the cocoapi) flattens a mask column by column
(Fortran order) and stores the lengths of alternating runs of 0s and 1s, starting with 0s (so a
mask whose first pixel is set starts with a run of length 0). In the JSON the counts are either a
list of integers ("uncompressed", crowd regions in the official files) or a string: each count,
from the fourth on, minus the count two before it, written as 5-bit groups, low first, in
characters 48 + (group | 32 if more follow), the last group's bit 4 being the sign.

Polygons are rasterised exactly as `rleFrPoly` does: vertices scaled by 5 and rounded, the edges
walked one upsampled step at a time, and a pixel column's runs toggled where an edge crosses
the centre of a pixel column. Everything here is one NumPy operation over all masks, polygons
and counts together, and equals `pycocotools.mask` (tested against it); pycocotools is never
imported by striate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from striate.errors import DataError

__all__ = [
    "area",
    "counts_from_string",
    "counts_to_string",
    "decode",
    "encode",
    "polygon_masks",
    "to_bbox",
]

_GROUPS = 13  # 5-bit groups in the longest count: 13 × 5 = 65 bits cover any int64


def _as_numpy_masks(masks) -> np.ndarray:
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise DataError(f"masks must be N×H×W (or H×W), got shape {masks.shape}")
    return masks.astype(bool, copy=False)


def _segments(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ragged rows of `lengths`: each element's row and its position inside its row."""
    row = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return row, np.arange(int(lengths.sum())) - starts[row]


def mask_counts(masks) -> tuple[np.ndarray, np.ndarray]:
    """The RLE counts of N×H×W masks, flat (int64), and how many belong to each mask (N)."""
    m = _as_numpy_masks(masks)
    n, h, w = m.shape
    a = h * w
    # Each mask, column by column, between a 0 before it and the opposite of its last pixel
    # after it: a run ends wherever the value changes, including a 0-length first run of 0s
    # before a first 1, and the last run at the end.
    padded = np.zeros((n, a + 2), dtype=bool)
    padded[:, 1:-1] = m.transpose(0, 2, 1).reshape(n, a)
    padded[:, -1] = ~padded[:, -2] if a else True
    change = np.flatnonzero(padded[:, 1:] != padded[:, :-1])
    rows, ends = np.divmod(change, a + 1)
    lengths = np.bincount(rows, minlength=n)
    starts = np.cumsum(lengths) - lengths
    prev = np.empty_like(ends)
    prev[1:] = ends[:-1]
    prev[starts] = 0
    return ends - prev, lengths


def counts_to_string(counts: np.ndarray, lengths: np.ndarray) -> list[str]:
    """COCO's compressed strings (`rleToString`) of ragged counts (flat, with per-mask lengths)."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if not len(lengths):
        return []
    row, pos = _segments(lengths)
    x = counts.copy()
    later = pos > 2
    x[later] -= counts[np.nonzero(later)[0] - 2]
    # As many 5-bit groups as the largest value needs, its sign bit included.
    n_groups = -(-(int(np.abs(x).max(initial=0)).bit_length() + 1) // 5)
    shifts = 5 * np.arange(n_groups)
    groups = (x[:, None] >> shifts) & 0x1F
    rest = x[:, None] >> (shifts + 5)
    more = np.where(groups & 0x10, rest != -1, rest != 0)
    used = np.arange(n_groups) <= more.sum(1, keepdims=True)  # `more` holds until the last group
    chars = (groups | (more << 5)) + 48
    text = chars[used].astype(np.uint8).tobytes().decode("ascii")
    per_mask = np.bincount(row, weights=used.sum(1), minlength=len(lengths)).astype(np.int64)
    ends = np.cumsum(per_mask)
    return [text[e - k : e] for e, k in zip(ends.tolist(), per_mask.tolist(), strict=True)]


def counts_from_string(strings: Sequence[str | bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The counts of COCO compressed strings (`rleFrString`), flat, with per-string lengths.

    Raises ValueError for a character outside COCO's alphabet or a string cut inside a count.
    """
    try:
        raw = [s.encode("ascii") if isinstance(s, str) else bytes(s) for s in strings]
    except UnicodeEncodeError:
        raise ValueError("RLE counts hold characters outside COCO's alphabet ('0'..'o')") from None
    sizes = np.array([len(s) for s in raw], dtype=np.int64)
    c = np.frombuffer(b"".join(raw), dtype=np.uint8).astype(np.int64) - 48
    if len(c) and (c.min() < 0 or c.max() > 63):
        raise ValueError("RLE counts hold characters outside COCO's alphabet ('0'..'o')")
    last = (c & 0x20) == 0
    string_end = np.cumsum(sizes)[sizes > 0] - 1
    if len(c) and not last[string_end].all():
        raise ValueError("RLE counts end in the middle of a number (truncated)")
    value = np.cumsum(last) - last  # which number each character belongs to
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]])) if len(c) else np.zeros(0, int)
    k = np.arange(len(c)) - starts[value]
    if len(c) and k.max() >= _GROUPS - 1:
        raise ValueError("RLE counts hold a number too large for any image")
    part = (c & 0x1F) << (5 * k)
    part |= np.where(last & ((c & 0x10) != 0), -1 << (5 * (k + 1)), 0)
    x = np.bitwise_or.reduceat(part, starts) if len(c) else np.zeros(0, np.int64)
    lengths = np.bincount(np.repeat(np.arange(len(raw)), sizes)[last], minlength=len(raw))
    return _undelta(x, lengths), lengths


def _undelta(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Undo `counts[i] -= counts[i - 2]` (i ≥ 3): a running sum along each string's odd
    positions (from 1) and its even positions (from 2)."""
    row, pos = _segments(lengths)
    chain = np.where(pos == 0, 0, np.where(pos % 2 == 1, 1, 2))
    order = np.lexsort((pos, chain, row))
    sums = np.cumsum(x[order])
    key = row[order] * 3 + chain[order]
    first = np.concatenate([[True], key[1:] != key[:-1]]) if len(key) else key.astype(bool)
    before = np.repeat((sums - x[order])[first], np.diff(np.append(np.flatnonzero(first), len(x))))
    out = np.empty_like(x)
    out[order] = sums - before
    return out


def _counts_to_masks(counts: np.ndarray, lengths: np.ndarray, h: int, w: int) -> np.ndarray:
    """N×H×W masks from ragged counts that each sum to H·W (checked by the caller)."""
    _, pos = _segments(lengths)
    flat = np.repeat((pos % 2).astype(bool), counts)
    return flat.reshape(len(lengths), w, h).transpose(0, 2, 1)


def encode(masks) -> list[dict]:
    """COCO RLEs (`{"size": [h, w], "counts": str}`) of N×H×W (or H×W) masks, as
    `pycocotools.mask.encode` gives them (with `str` counts, which JSON can hold)."""
    m = _as_numpy_masks(masks)
    _, h, w = m.shape
    strings = counts_to_string(*mask_counts(m))
    return [{"size": [h, w], "counts": s} for s in strings]


def rle_counts(rles: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Flat counts and lengths of RLEs with string (compressed) or list (uncompressed) counts.

    Raises ValueError for counts that are neither, negative, or that do not cover size[0]×size[1].
    """
    compressed = np.array([isinstance(r["counts"], (str, bytes)) for r in rles], dtype=bool)
    lengths = np.zeros(len(rles), dtype=np.int64)
    parts: list[np.ndarray] = []
    packed, plain = np.flatnonzero(compressed), np.flatnonzero(~compressed)
    if len(packed):
        c, n = counts_from_string([rles[k]["counts"] for k in packed])
        parts.append(c)
        lengths[compressed] = n
    if len(plain):
        lists = [rles[k]["counts"] for k in plain]
        if not all(isinstance(v, list) for v in lists):
            raise ValueError("RLE counts must be a string or a list of integers")
        lengths[~compressed] = [len(v) for v in lists]
        try:
            flat = np.array([x for v in lists for x in v], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("uncompressed RLE counts must be integers") from None
        if not (np.isfinite(flat).all() and (flat == np.round(flat)).all()):
            raise ValueError("uncompressed RLE counts must be integers")
        parts.append(flat.astype(np.int64))
    # Put the two kinds back in the RLEs' order.
    order = np.concatenate([packed, plain])
    counts = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    row, _ = _segments(lengths[order])
    counts = counts[np.argsort(order[row], kind="stable")]
    if len(counts) and counts.min() < 0:
        raise ValueError("RLE counts must not be negative")
    sizes = np.array([r["size"] for r in rles], dtype=np.int64).reshape(-1, 2)
    total = np.bincount(
        np.repeat(np.arange(len(rles)), lengths), weights=counts, minlength=len(rles)
    )
    bad = np.flatnonzero(total != sizes[:, 0] * sizes[:, 1])
    if len(bad):
        k = int(bad[0])
        raise ValueError(
            f"RLE counts sum to {int(total[k])} pixels, not size {sizes[k].tolist()}'s "
            f"{int(sizes[k].prod())}"
        )
    return counts, lengths


def decode(rles: Sequence[dict]) -> np.ndarray:
    """N×H×W bool masks of RLEs of one size (`pycocotools.mask.decode`, with masks first),
    compressed or uncompressed."""
    if not len(rles):
        return np.zeros((0, 0, 0), dtype=bool)
    sizes = {tuple(r["size"]) for r in rles}
    if len(sizes) != 1:
        raise ValueError(f"RLEs of one size needed to stack them, got sizes {sorted(sizes)}")
    h, w = sizes.pop()
    return _counts_to_masks(*rle_counts(rles), int(h), int(w))


def area(masks) -> np.ndarray:
    """Pixels set in each mask (N, int64), as `pycocotools.mask.area`. Masks or RLEs."""
    if isinstance(masks, (list, tuple)) and (not masks or isinstance(masks[0], dict)):
        counts, lengths = rle_counts(masks)
        row, pos = _segments(lengths)
        return np.bincount(
            row[pos % 2 == 1], weights=counts[pos % 2 == 1], minlength=len(masks)
        ).astype(np.int64)
    m = _as_numpy_masks(masks)
    return m.reshape(len(m), -1).sum(1).astype(np.int64)


def to_bbox(masks) -> np.ndarray:
    """Each mask's tight box [x, y, width, height] in pixels (N×4 float64; zeros for an empty
    mask), as `pycocotools.mask.toBbox`. Masks or RLEs."""
    if isinstance(masks, (list, tuple)) and (not masks or isinstance(masks[0], dict)):
        masks = decode(masks) if masks else np.zeros((0, 0, 0), bool)
    m = _as_numpy_masks(masks)
    n, h, w = m.shape
    cols, rows = m.any(1), m.any(2)
    x0, x1 = cols.argmax(1), w - 1 - cols[:, ::-1].argmax(1)
    y0, y1 = rows.argmax(1), h - 1 - rows[:, ::-1].argmax(1)
    box = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], 1).astype(np.float64)
    box[~cols.any(1)] = 0
    return box


def polygon_masks(
    polygons: Sequence[Sequence[float]],
    height: int,
    width: int,
    owner: Sequence[int] | np.ndarray | None = None,
    n: int | None = None,
) -> np.ndarray:
    """Rasterise COCO polygons ([x1, y1, x2, y2, …] in pixels) as `rleFrPoly` does (one or two
    points enclose nothing, or next to nothing: a line drawn there and back).

    Without `owner`: one H×W mask per polygon (`pycocotools.mask.frPyObjects(polys, h, w)`
    decoded). With `owner` (one index per polygon, < n): n masks, mask j the union of the
    polygons owned by j (an annotation's parts, as `annToMask` merges them).
    """
    h, w = int(height), int(width)
    sizes = np.array([len(p) for p in polygons], dtype=np.int64)
    if len(sizes) and (sizes.min() < 2 or (sizes % 2).any()):
        raise ValueError("a polygon needs x, y pairs: an even number of coordinates, at least 2")
    xy = np.array([v for p in polygons for v in p], dtype=np.float64).reshape(-1, 2)
    toggles, which = _polygon_toggles(xy, sizes // 2, h, w)
    # Each boundary point toggles its column from there down (a column-major flat index), so
    # the toggles are run ends: an even number at one place cancel (rleFrPoly merges them so),
    # h·w ends every mask.
    a = h * w
    places, times = np.unique(which * (a + 1) + toggles, return_counts=True)
    places = places[(times % 2 == 1) & (places % (a + 1) < a)]
    ends = np.sort(np.concatenate([places, np.arange(len(polygons)) * (a + 1) + a]))
    poly, end = np.divmod(ends, a + 1)
    lengths = np.bincount(poly, minlength=len(polygons))
    prev = np.empty_like(end)
    prev[1:] = end[:-1]
    prev[np.cumsum(lengths) - lengths] = 0
    made = _counts_to_masks(end - prev, lengths, h, w)
    if owner is None:
        return made
    owner = np.asarray(owner, dtype=np.int64)
    n = len(polygons) if n is None else int(n)
    out = np.zeros((n, h, w), dtype=bool)
    order = np.argsort(owner, kind="stable")
    first = np.flatnonzero(np.concatenate([[True], np.diff(owner[order]) != 0]))
    if len(order):
        out[owner[order][first]] = np.logical_or.reduceat(made[order], first, axis=0)
    return out


def _polygon_toggles(
    xy: np.ndarray, vertices: np.ndarray, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """`rleFrPoly`'s y-boundary points of polygons (flat xy, vertex counts): their column-major
    pixel indices and polygons. C's (int) casts truncate toward zero: np.trunc."""
    scale = 5.0
    poly, pos = _segments(vertices)
    x = np.trunc(scale * xy[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(scale * xy[:, 1] + 0.5).astype(np.int64)
    nxt = np.arange(len(x)) + 1
    starts = np.cumsum(vertices) - vertices
    nxt[pos == vertices[poly] - 1] = starts[poly[pos == vertices[poly] - 1]]
    xs, xe, ys, ye = x, x[nxt], y, y[nxt]
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    wide = dx >= dy
    flip = (wide & (xs > xe)) | (~wide & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(wide, (ye - ys) / dx, (xe - xs) / dy)
    s = np.nan_to_num(s)  # a repeated vertex (dx = dy = 0): its one point's v is never used
    steps = np.maximum(dx, dy)
    # Along each edge one coordinate steps by 1 (x if the edge is wide), the other is rounded.
    step_base, round_base = np.where(wide, xs, ys), np.where(wide, ys, xs).astype(np.float64)
    edge, d = _segments(steps + 1)
    t = np.where(flip, steps, 0)[edge] + np.where(flip, -1, 1)[edge] * d
    stepped = t + step_base[edge]
    rounded = np.trunc(round_base[edge] + s[edge] * t + 0.5).astype(np.int64)
    wide_at = wide[edge]
    u = np.where(wide_at, stepped, rounded)
    v = np.where(wide_at, rounded, stepped)
    point_poly = poly[edge]
    # Where consecutive points (of one polygon) change column: a boundary point.
    j = np.flatnonzero((u[1:] != u[:-1]) & (point_poly[1:] == point_poly[:-1])) + 1
    xd = np.where(u[j] < u[j - 1], u[j], u[j] - 1).astype(np.float64)
    xd = (xd + 0.5) / scale - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    yd = np.minimum(v[j], v[j - 1]).astype(np.float64)
    yd = np.ceil(np.clip((yd + 0.5) / scale - 0.5, 0, h))
    index = xd[keep].astype(np.int64) * h + yd[keep].astype(np.int64)
    return index, point_poly[j][keep]
