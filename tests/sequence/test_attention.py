"""Attention against the paper's formula written out, torch's fused kernel, torch's
MultiheadAttention and TransformerEncoderLayer with the same weights, and finite differences."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate.errors import ConfigError, InputError
from striate.sequence.attention import (
    LearnedPositions,
    MultiHeadAttention,
    SinusoidalPositions,
    TransformerBlock,
    causal_mask,
    scaled_dot_product_attention,
)


def _by_hand(q, k, v, allowed=None):
    """softmax(q·k/√d) weights and Σ_j a_ij v_j, one query and one key at a time (3-D inputs)."""
    b, nq, d = q.shape
    nk = k.shape[1]
    out = torch.zeros(b, nq, v.shape[-1], dtype=q.dtype)
    weights = torch.zeros(b, nq, nk, dtype=q.dtype)
    for n in range(b):
        for i in range(nq):
            keep = [j for j in range(nk) if allowed is None or allowed[i][j]]
            e = [float(q[n, i] @ k[n, j]) / math.sqrt(d) for j in keep]
            top = max(e)
            z = sum(math.exp(x - top) for x in e)
            for j, x in zip(keep, e, strict=True):
                weights[n, i, j] = math.exp(x - top) / z
                out[n, i] += weights[n, i, j] * v[n, j]
    return out, weights


def test_attention_equals_the_formula_and_torchs_kernel():
    g = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(2, n, d, generator=g, dtype=torch.float64) for n, d in ((3, 4), (5, 4), (5, 6))
    )
    out, w = scaled_dot_product_attention(q, k, v)
    ref_out, ref_w = _by_hand(q, k, v)
    torch.testing.assert_close(w, ref_w)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, dtype=torch.float64))
    fused, none = scaled_dot_product_attention(q, k, v, need_weights=False)
    assert none is None
    torch.testing.assert_close(fused, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(fused, out)


def test_causal_and_explicit_masks_match_the_formula():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    tri = [[j <= i for j in range(4)] for i in range(4)]
    ref_out, ref_w = _by_hand(q, k, v, tri)
    for kwargs in ({"causal": True}, {"mask": causal_mask(4)}):
        for need in (True, False):
            out, w = scaled_dot_product_attention(q, k, v, need_weights=need, **kwargs)
            torch.testing.assert_close(out, ref_out)
            if need:
                torch.testing.assert_close(w, ref_w)
    # a float mask is added to the scores; with causal on top both apply
    band = torch.tensor([[j >= i - 1 for j in range(4)] for i in range(4)])
    additive = torch.zeros(4, 4, dtype=torch.float64).masked_fill(~band, float("-inf"))
    both = [[tri[i][j] and bool(band[i, j]) for j in range(4)] for i in range(4)]
    ref_out, ref_w = _by_hand(q, k, v, both)
    for need in (True, False):
        out, _ = scaled_dot_product_attention(
            q, k, v, mask=additive, causal=True, need_weights=need
        )
        torch.testing.assert_close(out, ref_out)


def test_causal_mask_shape_and_top_left_alignment():
    m = causal_mask(3, 5)
    assert m.dtype == torch.bool and m.shape == (3, 5)
    assert m.tolist() == [[j <= i for j in range(5)] for i in range(3)]


def test_causal_outputs_do_not_see_the_future():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, causal=True).eval()
    block = TransformerBlock(8, 2, causal=True).eval()
    x = torch.randn(2, 7, 8)
    later = x.clone()
    later[:, 4:] = torch.randn(2, 3, 8)  # change positions 4, 5, 6
    for f in (lambda t: mha(t, need_weights=True)[0], lambda t: mha(t)[0], block):
        a, b = f(x), f(later)
        torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=0)
        assert (a[:, 4:] - b[:, 4:]).abs().max() > 1e-3  # the later outputs do change
    _, w = mha(x, need_weights=True, average_weights=False)
    assert (w.triu(1) == 0).all()


@pytest.mark.parametrize("bias", [True, False])
def test_multi_head_equals_torchs_module(bias):
    torch.manual_seed(2)
    ours = MultiHeadAttention(12, 3, bias=bias).eval()
    if bias:  # torch starts biases at zero; make them count
        with torch.no_grad():
            ours.in_proj_bias.normal_()
            ours.out_proj.bias.normal_()
    theirs = ours.to_torch().eval()
    assert isinstance(theirs, nn.MultiheadAttention) and theirs.batch_first
    x = torch.randn(2, 5, 12)
    memory = torch.randn(2, 7, 12)
    cases = [(x, x, x), (x, memory, memory)]
    for query, key, value in cases:
        for average in (True, False):
            out, w = ours(query, key, value, need_weights=True, average_weights=average)
            ref, ref_w = theirs(query, key, value, need_weights=True, average_attn_weights=average)
            torch.testing.assert_close(out, ref)
            torch.testing.assert_close(w, ref_w)
        fused, none = ours(query, key, value)
        assert none is None
        torch.testing.assert_close(fused, ref)
    # masks: ours True = attend, torch's True = blocked
    allowed = torch.rand(5, 7, generator=torch.Generator().manual_seed(3)) > 0.3
    allowed[:, 0] = True
    out, w = ours(x, memory, memory, mask=allowed, need_weights=True)
    ref, ref_w = theirs(x, memory, memory, attn_mask=~allowed)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w, ref_w)
    back = MultiHeadAttention.from_torch(theirs)
    for name, t in ours.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], t, rtol=0, atol=0)


def test_multi_head_dropout_drops_attention_weights_in_training_only():
    torch.manual_seed(4)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(1, 6, 8)
    mha.eval()
    _, clean = mha(x, need_weights=True, average_weights=False)
    mha.train()
    _, dropped = mha(x, need_weights=True, average_weights=False)
    kept = dropped != 0
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(dropped[kept], 2 * clean[kept])  # 1 / (1 - p) for the kept ones


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_equals_torchs_encoder_layer_with_a_causal_mask(norm_first):
    torch.manual_seed(5)
    ours = TransformerBlock(16, 4, norm_first=norm_first, causal=True).eval()
    with torch.no_grad():  # non-trivial norms and biases
        for p in ours.parameters():
            if p.dim() == 1:
                p.normal_()
    theirs = ours.to_torch().eval()
    x = torch.randn(3, 6, 16)
    ref = theirs(x, src_mask=~causal_mask(6), is_causal=True)
    torch.testing.assert_close(ours(x), ref)
    # the same through torch's own layer built independently and loaded by from_torch
    layer = nn.TransformerEncoderLayer(
        16, 4, 64, 0.0, activation="gelu", batch_first=True, norm_first=norm_first, bias=False
    ).eval()
    back = TransformerBlock.from_torch(layer, causal=True).eval()
    assert back.norm_first == norm_first and back.linear1.bias is None
    ref = layer(x, src_mask=~causal_mask(6), is_causal=True)
    torch.testing.assert_close(back(x), ref)


def test_block_from_torch_refuses_relu():
    with pytest.raises(InputError, match="gelu"):
        TransformerBlock.from_torch(nn.TransformerEncoderLayer(8, 2, 32, batch_first=True))


def test_sinusoidal_encodings_follow_the_paper():
    pe = SinusoidalPositions(6)
    x = torch.zeros(1, 50, 6)
    table = pe(x)[0]
    for pos in (0, 1, 7, 49):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    odd = SinusoidalPositions(5).encoding(torch.tensor([3]))[0]  # the last dimension is a sine
    assert odd[4].item() == pytest.approx(math.sin(3 / 10000 ** (4 / 5)), abs=1e-6)
    assert list(pe.parameters()) == []


def test_learned_positions_add_one_vector_per_position_and_refuse_long_inputs():
    lp = LearnedPositions(4, 3)
    x = torch.randn(2, 3, 3)
    torch.testing.assert_close(lp(x), x + lp.weight[:3])
    with pytest.raises(InputError, match="crop the input"):
        lp(torch.zeros(1, 5, 3))


def test_gradients_pass_finite_differences():
    g = torch.Generator().manual_seed(6)
    q, k, v = (
        torch.randn(2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)
    )
    mask = torch.tensor([[True, False, True], [True, True, False], [False, True, True]])
    for kwargs in ({}, {"causal": True}, {"mask": mask}):

        def f(q, k, v, kwargs=kwargs):
            out, w = scaled_dot_product_attention(q, k, v, **kwargs)
            return out, w

        assert torch.autograd.gradcheck(f, (q, k, v))
    torch.manual_seed(7)
    mha = MultiHeadAttention(4, 2, causal=True).double()
    x = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: mha(t, need_weights=True)[0], (x,))


def test_bad_arguments_raise_one_line_errors():
    with pytest.raises(InputError, match="divisible by heads"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ConfigError, match="dropout"):
        MultiHeadAttention(8, 2, dropout=1.0)
    with pytest.raises(InputError, match="agree in d_k"):
        scaled_dot_product_attention(
            torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)
        )
    with pytest.raises(InputError, match=r"\(batch, length, 8\)"):
        MultiHeadAttention(8, 2)(torch.zeros(2, 8))
