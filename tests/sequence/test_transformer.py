"""TransformerLM: nanoGPT's parameter count and initialisation, a nanoGPT forward written out from
the same weights, causality, the language-model protocol, saving, and learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from striate.errors import ConfigError, InputError
from striate.sequence.transformer import TransformerLM


def _nanogpt_forward(model: TransformerLM, idx: torch.Tensor) -> torch.Tensor:
    """nanoGPT's GPT.forward (model.py) written out on the state dict: wte + wpe, then per block
    x += c_proj(attn(ln_1(x))), x += c_proj(gelu(c_fc(ln_2(x)))); ln_f; logits = x·wteᵀ."""
    sd = model.state_dict()
    heads = model.spec["arguments"]["heads"]
    b, t = idx.shape
    x = sd["token_embedding.weight"][idx] + sd["positions.weight"][:t]
    e = x.shape[-1]

    def ln(x, name):
        return F.layer_norm(x, (e,), sd[f"{name}.weight"], sd.get(f"{name}.bias"))

    def lin(x, name):
        return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))

    for i in range(model.layers):
        p = f"blocks.{i}"
        qkv = F.linear(ln(x, f"{p}.norm1"), sd[f"{p}.self_attn.in_proj_weight"])
        if f"{p}.self_attn.in_proj_bias" in sd:
            qkv = qkv + sd[f"{p}.self_attn.in_proj_bias"]
        q, k, v = (z.view(b, t, heads, e // heads).transpose(1, 2) for z in qkv.split(e, dim=2))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(torch.ones(t, t).tril() == 0, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, e)
        x = x + lin(y, f"{p}.self_attn.out_proj")
        x = x + lin(F.gelu(lin(ln(x, f"{p}.norm2"), f"{p}.linear1")), f"{p}.linear2")
    return F.linear(ln(x, "norm"), sd["token_embedding.weight"])


def test_nanogpt_cpu_config_has_nanogpts_parameter_count():
    """nanoGPT's shakespeare-char CPU run (n_layer=4, n_head=4, n_embd=128, block_size=64,
    vocab 65, bias=False) prints "number of parameters: 0.80M" (without wpe)."""
    model = TransformerLM(65, context=64, layers=4, heads=4, embed=128, bias=False)
    v, c, n, e = 65, 64, 4, 128
    per_layer = e + 3 * e * e + e * e + e + 4 * e * e + 4 * e * e  # ln_1, c_attn, c_proj, ln_2, mlp
    formula = v * e + c * e + n * per_layer + e  # wte (tied head), wpe, blocks, ln_f
    total = sum(p.numel() for p in model.parameters())
    assert total == formula
    without_positions = total - model.positions.weight.numel()
    assert f"{without_positions / 1e6:.2f}M" == "0.80M"
    with_bias = TransformerLM(65, bias=True)
    extra = n * (3 * e + e + 4 * e + e + 2 * e) + e  # biases of c_attn, c_proj, c_fc, c_proj, lns
    assert sum(p.numel() for p in with_bias.parameters()) == formula + extra


def test_initialisation_follows_gpt2():
    torch.manual_seed(0)
    model = TransformerLM(65, layers=4, embed=128)
    block = model.blocks[1]
    for w in (block.linear1.weight, block.self_attn.in_proj_weight, model.token_embedding.weight):
        assert w.std().item() == pytest.approx(0.02, rel=0.05)
    for w in (block.linear2.weight, block.self_attn.out_proj.weight):
        assert w.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.05)
    assert (block.linear1.bias == 0).all() and (block.self_attn.in_proj_bias == 0).all()
    assert (block.norm1.weight == 1).all()


@pytest.mark.parametrize("bias", [True, False])
def test_forward_equals_nanogpts_forward_on_the_same_weights(bias):
    torch.manual_seed(1)
    model = TransformerLM(11, context=8, layers=2, heads=2, embed=16, bias=bias).eval()
    with torch.no_grad():  # make norms and biases count
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_()
    idx = torch.randint(0, 11, (3, 8))
    logits, state = model(idx)
    assert state is None and logits.shape == (3, 8, 11)
    with torch.no_grad():
        torch.testing.assert_close(logits, _nanogpt_forward(model, idx))
        torch.testing.assert_close(model(idx[:, :5])[0], _nanogpt_forward(model, idx[:, :5]))
        h, none = model.features(idx)
        assert none is None and h.shape == (3, 8, 16)
        torch.testing.assert_close(model.head(h), logits)


def test_logits_do_not_depend_on_later_tokens():
    torch.manual_seed(2)
    model = TransformerLM(20, context=10, layers=2, heads=2, embed=16).eval()
    idx = torch.randint(0, 20, (2, 10))
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 20
    with torch.no_grad():
        a, b = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :6], b[:, :6], rtol=0, atol=0)
    assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-4


def test_tied_and_untied_heads_and_the_spec_rebuilds_the_model(tmp_path):
    torch.manual_seed(3)
    tied = TransformerLM(13, context=6, layers=1, heads=2, embed=8)
    assert tied.lm_head is None and "lm_head.weight" not in tied.state_dict()
    # one tensor per name: safetensors refuses tensors that share memory
    save_file(tied.state_dict(), str(tmp_path / "w.safetensors"))
    rebuilt = TransformerLM(**tied.spec["arguments"])
    rebuilt.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    idx = torch.randint(0, 13, (2, 6))
    torch.testing.assert_close(rebuilt(idx)[0], tied(idx)[0], rtol=0, atol=0)
    assert tied.spec["name"] == "transformer_lm" and tied.vocab_size == 13 and tied.context == 6
    untied = TransformerLM(13, context=6, layers=1, heads=2, embed=8, tied=False)
    assert untied.lm_head.weight.shape == (13, 8)
    assert untied.lm_head.weight.data_ptr() != untied.token_embedding.weight.data_ptr()


def test_bad_inputs_raise_one_line_errors():
    model = TransformerLM(10, context=4, layers=1, heads=2, embed=8)
    with pytest.raises(InputError, match="context is 4; crop it to its last 4 tokens"):
        model(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(InputError, match=r"\(batch, length\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(InputError, match="divisible by heads"):
        TransformerLM(10, embed=10, heads=4)
    with pytest.raises(ConfigError, match="context must be a positive integer"):
        TransformerLM(10, context=0)


def test_learns_a_periodic_sequence():
    """Next-character prediction of "abcde" repeated is deterministic given one token: a few
    AdamW steps take the loss from ln 5 to near zero."""
    torch.manual_seed(4)
    model = TransformerLM(5, context=8, layers=1, heads=2, embed=16)
    stream = torch.arange(200) % 5
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    starts = torch.randint(0, len(stream) - 9, (60, 16))
    losses = []
    for s in starts:
        x = torch.stack([stream[i : i + 8] for i in s])
        y = torch.stack([stream[i + 1 : i + 9] for i in s])
        logits, _ = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.2  # about ln 5 = 1.61 at the start
    assert max(losses[-5:]) < 0.05


@pytest.mark.slow
def test_learns_more_than_character_frequencies_on_tinyshakespeare(shared_data):
    """nanoGPT's CPU configuration, 300 AdamW steps of nanoGPT's loop (random windows of the 90%
    training split): the validation loss falls below the unigram entropy of the training text,
    which no model of character frequencies alone can beat (about 3.3 nats)."""
    from striate.sequence.corpus import load_corpus

    corpus = load_corpus("tinyshakespeare", "char", root=shared_data / "text")
    v = len(corpus.vocab)
    freq = torch.bincount(corpus.train, minlength=v).double() / len(corpus.train)
    unigram = -(freq[freq > 0] * freq[freq > 0].log()).sum().item()
    torch.manual_seed(0)
    model = TransformerLM(v, context=64, layers=4, heads=4, embed=128, bias=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    g = torch.Generator().manual_seed(0)

    def batch(split):
        ix = torch.randint(len(split) - 65, (12,), generator=g)
        return (torch.stack([split[i : i + 64] for i in ix]),
                torch.stack([split[i + 1 : i + 65] for i in ix]))  # fmt: skip

    for _ in range(300):
        x, y = batch(corpus.train)
        loss = F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val = [F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten()) for x, y in
               (batch(corpus.val) for _ in range(20))]  # fmt: skip
    val_loss = torch.stack(val).mean().item()
    assert 3.0 < unigram < 3.6
    assert val_loss < unigram - 0.5, (val_loss, unigram)
