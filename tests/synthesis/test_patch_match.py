"""Patch matching against brute-force NumPy searches written from the definitions."""

import numpy as np
import pytest
import torch

from striate.errors import ConfigError, InputError
from striate.synthesis.patch_match import (
    consistent_matches,
    match_patches,
    upsample_mapping,
    used_positions,
)


def brute_match(content, style, patch, mask=None):
    """argmax_q cos(patch_C(p), patch_S(q)), patches zero-padded, by loops."""
    c, h, w = content.shape
    _, hs, ws = style.shape
    r = patch // 2
    cp = np.pad(content, ((0, 0), (r, r), (r, r)))
    sp = np.pad(style, ((0, 0), (r, r), (r, r)))
    out = np.zeros((h, w), dtype=np.int64)
    for y in range(h):
        for x in range(w):
            if mask is not None and not mask[y, x]:
                out[y, x] = min(y, hs - 1) * ws + min(x, ws - 1)
                continue
            a = cp[:, y : y + patch, x : x + patch].ravel()
            best, arg = -np.inf, -1
            for yy in range(hs):
                for xx in range(ws):
                    b = sp[:, yy : yy + patch, xx : xx + patch].ravel()
                    s = a @ b / max(np.linalg.norm(b), 1e-8)
                    if s > best:
                        best, arg = s, yy * ws + xx
            out[y, x] = arg
    return out


def brute_consistent(mapping, feats, window, mask, against="neighbours"):
    """Algorithm 1's spatial consistency by loops: candidates P(p+o) − o, the summed squared
    distance to the neighbours' matched features (or to the other candidates)."""
    h, w = mapping.shape
    _, hs, ws = feats.shape
    r = window // 2
    out = mapping.copy()
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            cands, refs = [], []
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    ny, nx = y + dy, x + dx
                    if not (0 <= ny < h and 0 <= nx < w):
                        continue
                    my, mx = divmod(int(mapping[ny, nx]), ws)
                    refs.append((my, mx))
                    qy, qx = my - dy, mx - dx
                    if 0 <= qy < hs and 0 <= qx < ws:
                        cands.append((qy, qx))
            if against == "candidates":
                refs = cands
            best, arg = np.inf, None
            for qy, qx in cands:
                d = sum(np.sum((feats[:, qy, qx] - feats[:, ry, rx]) ** 2) for ry, rx in refs)
                if d < best:
                    best, arg = d, qy * ws + qx
            out[y, x] = arg
    return out


@pytest.mark.parametrize("patch", [1, 3, 5])
def test_match_equals_brute_force(patch):
    g = torch.Generator().manual_seed(patch)
    content = torch.randn(4, 6, 7, generator=g, dtype=torch.float64)
    style = torch.randn(4, 5, 8, generator=g, dtype=torch.float64)
    got = match_patches(content, style, patch)
    assert got.dtype == torch.long and got.shape == (6, 7)
    np.testing.assert_array_equal(got.numpy(), brute_match(content.numpy(), style.numpy(), patch))


def test_match_mask_and_chunks():
    g = torch.Generator().manual_seed(1)
    content = torch.randn(3, 7, 6, generator=g, dtype=torch.float64)
    style = torch.randn(3, 7, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(7, 6, generator=g) > 0.5
    got = match_patches(content, style, 3, mask=mask, chunk=4)
    want = brute_match(content.numpy(), style.numpy(), 3, mask.numpy())
    np.testing.assert_array_equal(got.numpy(), want)


def test_match_identity_when_content_is_style():
    style = torch.randn(8, 9, 10, generator=torch.Generator().manual_seed(2))
    got = match_patches(style.clone(), style, 3)
    np.testing.assert_array_equal(got.numpy(), np.arange(90).reshape(9, 10))


@pytest.mark.parametrize("against", ["neighbours", "candidates"])
def test_consistent_matches_equal_brute_force(against):
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(5, 7, 8, generator=g, dtype=torch.float64)
    mapping = torch.randint(0, 7 * 8, (6, 7), generator=g)
    mask = torch.rand(6, 7, generator=g) > 0.3
    got = consistent_matches(mapping, feats, 5, mask=mask, against=against)
    want = brute_consistent(mapping.numpy(), feats.numpy(), 5, mask.numpy(), against)
    np.testing.assert_array_equal(got.numpy(), want)
    assert torch.equal(got[~mask], mapping[~mask])


def test_consistent_matches_guide_and_fixed_points():
    g = torch.Generator().manual_seed(4)
    style = torch.randn(6, 8, 8, generator=g, dtype=torch.float64)
    guide = torch.rand(3, 8, 8, generator=g, dtype=torch.float64)
    mapping = torch.randint(0, 64, (8, 8), generator=g)
    mask = torch.ones(8, 8, dtype=torch.bool)
    got = consistent_matches(mapping, style, 3, mask=mask, guide=guide)
    np.testing.assert_array_equal(
        got.numpy(), brute_consistent(mapping.numpy(), guide.numpy(), 3, mask.numpy())
    )
    # a translation of the style map is already consistent: every candidate is the same
    shift = (torch.arange(64).reshape(8, 8) + 1).clamp(max=63)
    identity = torch.arange(64).reshape(8, 8)
    assert torch.equal(consistent_matches(identity, style, 5), identity)
    assert consistent_matches(shift, style, 5).shape == (8, 8)


def test_used_positions_counts_each_once():
    mapping = torch.tensor([[0, 0, 5], [5, 7, 0]])
    used = used_positions(mapping, (3, 3))
    assert used.dtype == torch.bool and int(used.sum()) == 3
    assert used.reshape(-1)[[0, 5, 7]].all()
    mask = torch.tensor([[1, 0, 0], [0, 1, 0]])
    assert used_positions(mapping, (3, 3), mask=mask).reshape(-1).nonzero().ravel().tolist() == [
        0,
        7,
    ]
    ring = used_positions(torch.tensor([[4]]), (3, 3), ring=1)
    assert bool(ring.all())


def test_upsample_mapping_matches_the_authors_formula():
    g = torch.Generator().manual_seed(5)
    mapping = torch.randint(0, 4 * 5, (4, 5), generator=g)
    got = upsample_mapping(mapping, (4, 5), (8, 10), (8, 10))
    want = np.zeros((8, 10), dtype=np.int64)
    for y in range(8):
        for x in range(10):
            cy, cx = min(int((y + 0.5) / 2), 3), min(int((x + 0.5) / 2), 4)
            my, mx = divmod(int(mapping[cy, cx]), 5)
            qy = min(max(int(np.floor(y + (my - cy) * 2 + 0.5)), 0), 7)
            qx = min(max(int(np.floor(x + (mx - cx) * 2 + 0.5)), 0), 9)
            want[y, x] = qy * 10 + qx
    np.testing.assert_array_equal(got.numpy(), want)
    identity = torch.arange(20).reshape(4, 5)
    up = upsample_mapping(identity, (4, 5), (9, 11), (9, 11))
    np.testing.assert_array_equal(up.numpy(), np.arange(99).reshape(9, 11))


def test_bad_input_one_line_each():
    f = torch.randn(3, 4, 4)
    with pytest.raises(InputError, match="channels"):
        match_patches(f, torch.randn(2, 4, 4))
    with pytest.raises(ConfigError, match="odd"):
        match_patches(f, f, 2)
    with pytest.raises(InputError, match="C×H×W"):
        match_patches(torch.randn(4, 4), f)
    with pytest.raises(InputError, match="mask"):
        match_patches(f, f, mask=torch.ones(3, 3))
    with pytest.raises(InputError, match="outside the style map"):
        consistent_matches(torch.full((4, 4), 16), f)
    with pytest.raises(ConfigError, match="against"):
        consistent_matches(torch.zeros(4, 4, dtype=torch.long), f, against="others")
