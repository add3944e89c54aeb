"""Gram matrices and the perceptual losses (striate.synthesis.losses).

References: Gram matrices written as explicit sums over positions, Gatys et al.'s layer loss
E_l = 1/(4 N² M²) Σ (G − A)² with unnormalised Grams, eigenvalues (positive semi-definite), and
torch.autograd.gradcheck (central differences in float64).
"""

from __future__ import annotations

import pytest
import torch

from striate.errors import ConfigError, InputError
from striate.synthesis import blend_grams, content_loss, gram_matrix, style_loss

G = torch.Generator().manual_seed(0)


def feats(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=G, dtype=dtype)


def test_gram_is_the_sum_over_positions_with_each_normalisation():
    f = feats(2, 3, 4, 5, dtype=torch.float64)
    by_hand = torch.zeros(2, 3, 3, dtype=torch.float64)
    for n in range(2):
        for i in range(4):
            for j in range(5):
                v = f[n, :, i, j]
                by_hand[n] += torch.outer(v, v)
    torch.testing.assert_close(gram_matrix(f, "none"), by_hand)
    torch.testing.assert_close(gram_matrix(f, "positions"), by_hand / 20)
    torch.testing.assert_close(gram_matrix(f), by_hand / 60)


def test_gram_is_symmetric_psd_and_blind_to_where_features_are():
    f = feats(1, 8, 6, 7, dtype=torch.float64)
    g = gram_matrix(f)[0]
    torch.testing.assert_close(g, g.T)
    assert torch.linalg.eigvalsh(g).min() > -1e-12
    perm = torch.randperm(42, generator=G)
    shuffled = f.flatten(2)[:, :, perm].reshape(f.shape)
    torch.testing.assert_close(gram_matrix(shuffled), gram_matrix(f))


def test_gatys_layer_loss_is_a_quarter_of_the_mse_of_position_averaged_grams():
    x, a = feats(1, 5, 4, 6, dtype=torch.float64), feats(1, 5, 4, 6, dtype=torch.float64)
    n, m = 5, 24
    gatys = ((gram_matrix(x, "none") - gram_matrix(a, "none")) ** 2).sum() / (4 * n**2 * m**2)
    ours = style_loss({"l": x}, {"l": gram_matrix(a, "positions")}, normalize="positions")
    torch.testing.assert_close(ours / 4, gatys)


def test_losses_vanish_at_their_targets_and_blend_as_weighted_means():
    f = {"a": feats(1, 4, 5, 5), "b": feats(1, 6, 3, 3)}
    targets = {k: gram_matrix(v) for k, v in f.items()}
    assert style_loss(f, targets) == 0
    assert content_loss(f["a"], f["a"].clone()) == 0
    other = {k: gram_matrix(feats(*v.shape)) for k, v in f.items()}
    only_first = blend_grams([targets, other], [1, 0])
    for k in targets:
        torch.testing.assert_close(only_first[k], targets[k])
        torch.testing.assert_close(
            blend_grams([targets, other], [1, 3])[k], 0.25 * targets[k] + 0.75 * other[k]
        )
    weighted = style_loss(f, other, {"a": 2.0, "b": 0.0})
    torch.testing.assert_close(weighted, 2 * ((gram_matrix(f["a"]) - other["a"]) ** 2).mean())


def test_gradients_match_finite_differences():
    x = feats(1, 3, 4, 4, dtype=torch.float64).requires_grad_(True)
    a = gram_matrix(feats(1, 3, 4, 4, dtype=torch.float64))
    c = feats(1, 3, 4, 4, dtype=torch.float64)
    for norm in ("size", "positions", "none"):
        assert torch.autograd.gradcheck(lambda t, n=norm: gram_matrix(t, n), (x,))
    assert torch.autograd.gradcheck(lambda t: style_loss({"l": t}, {"l": a}), (x,))
    assert torch.autograd.gradcheck(lambda t: content_loss(t, c), (x,))


def test_bad_input_is_one_line():
    with pytest.raises(InputError, match="N×C×H×W"):
        gram_matrix(torch.rand(3, 4, 4))
    with pytest.raises(ConfigError, match="normalize"):
        gram_matrix(torch.rand(1, 3, 4, 4), "mean")
    with pytest.raises(ConfigError, match="style weights"):
        blend_grams([{"l": torch.eye(2)}], [1, 2])
    with pytest.raises(ConfigError, match="style weights"):
        blend_grams([{"l": torch.eye(2)}, {"l": torch.eye(2)}], [0, 0])
