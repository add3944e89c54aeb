"""Efros & Leung sampling against a brute-force NumPy search, a periodic source, and its checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from striate.errors import ConfigError, InputError
from striate.synthesis.efros_leung import SourceWindows, _grow, efros_leung
from striate.synthesis.images import photograph


@pytest.fixture(scope="module")
def brick() -> torch.Tensor:
    """A 16×16 colour patch of skimage's brick (grey repeated) tinted so channels differ."""
    x = photograph("brick")[..., 200:232:2, 100:132:2]
    return x * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)


def brute_force(source: np.ndarray, patch: np.ndarray, known: np.ndarray, window: int):
    """d for every window of `source` (C×H×W) by a loop: Σ G·M·(W − S)² / (C·Σ G·M),
    G the Gaussian of σ = window/6.4; and the windows' centre pixels."""
    t = np.arange(window) - (window - 1) / 2
    g1 = np.exp(-0.5 * (t / (window / 6.4)) ** 2)
    g = np.outer(g1, g1) * known
    c, h, w = source.shape
    d, centres = [], []
    for y in range(h - window + 1):
        for x in range(w - window + 1):
            s = source[:, y : y + window, x : x + window]
            d.append((g * (patch - s) ** 2).sum() / (c * g.sum()))
            centres.append(s[:, window // 2, window // 2])
    return np.array(d), np.array(centres)


def test_distances_equal_a_brute_force_search(brick):
    window, rng = 5, np.random.default_rng(0)
    windows = SourceWindows(brick, window)
    patches = rng.random((4, 3, window, window))
    known = rng.random((4, window, window)) < 0.5
    known[:, 0, 0] = True
    d = windows.distances(
        torch.from_numpy(patches).reshape(4, 3, -1), torch.from_numpy(known).reshape(4, -1)
    )
    source = brick[0].double().numpy()
    for i in range(4):
        expected, _ = brute_force(source, patches[i], known[i], window)
        np.testing.assert_allclose(d[i].numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batches", [1, 4])
def test_a_step_copies_a_candidate_of_the_brute_force_search(brick, batches):
    window, eps = 5, 0.1
    args = (brick, 14, window, eps, 0.3, 3, False)
    before, known_before = _grow(*args, batches=batches - 1)
    after, known_after = _grow(*args, batches=batches)
    new = known_after & ~known_before
    assert new.sum() > 0
    assert torch.equal(after[0][:, known_before], before[0][:, known_before])
    r = window // 2
    canvas = np.pad(before[0].double().numpy(), ((0, 0), (r, r), (r, r)))
    mask = np.pad(known_before.numpy(), r)
    source = brick[0].double().numpy()
    for y, x in torch.nonzero(new).tolist():
        patch = canvas[:, y : y + window, x : x + window]
        d, centres = brute_force(source, patch, mask[y : y + window, x : x + window], window)
        candidates = centres[d <= d.min() * (1 + eps) + 1e-9]
        value = after[0, :, y, x].double().numpy()
        assert np.abs(candidates - value).max(1).min() < 1e-6, (y, x)


def test_the_texture_is_filled_with_source_pixels(brick):
    out = efros_leung(brick, (13, 17), window=5, progress=False)
    assert out.shape == (1, 3, 13, 17) and out.dtype == brick.dtype
    pixels = brick[0].reshape(3, 1, -1)
    difference = (out[0].reshape(3, -1, 1) - pixels).abs().amax(0)
    assert torch.equal(difference.min(1).values, torch.zeros(13 * 17))


def test_a_periodic_source_is_continued_periodically():
    y, x = np.mgrid[:20, :20]
    phase = (x + 2 * y) % 5  # diagonal stripes: periods (0, 5) and (1, −2)
    colours = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float32)
    source = torch.from_numpy(colours[phase]).permute(2, 0, 1)[None]
    out = efros_leung(source, 24, window=5, seed=1, progress=False)[0]
    assert torch.equal(out[:, :, 5:], out[:, :, :-5])
    assert torch.equal(out[:, 1:, :-2], out[:, :-1, 2:])
    assert len(torch.unique(out.reshape(3, -1), dim=1).T) == 5


def test_the_same_seed_gives_the_same_texture(brick):
    a = efros_leung(brick, 12, window=5, seed=7, progress=False)
    b = efros_leung(brick, 12, window=5, seed=7, progress=False)
    c = efros_leung(brick, 12, window=5, seed=8, progress=False)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(window=4), ConfigError, "window must be odd"),
        (dict(window=1), ConfigError, "window must be an integer >= 3"),
        (dict(window=17), InputError, "smaller than the window"),
        (dict(size=0), ConfigError, "size must be a positive integer"),
        (dict(size=(4, -1)), ConfigError, "size must be a positive integer"),
        (dict(epsilon=-0.1), ConfigError, "epsilon must be"),
        (dict(source=torch.zeros(2, 3, 16, 16)), InputError, "one float image"),
        (dict(source=torch.full((3, 16, 16), float("nan"))), InputError, "NaN"),
    ],
)
def test_bad_input_is_one_clear_error(brick, kwargs, error, words):
    args = dict(source=brick, size=8) | kwargs
    with pytest.raises(error, match=words):
        efros_leung(args.pop("source"), args.pop("size"), progress=False, **args)
