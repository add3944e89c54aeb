"""The Show-Attend-Tell network and the Captioning task: the attention is a distribution over the
locations, the loss is the paper's (checked by an independent loop) and ignores padding, and the
model learns a handful of scenes by heart."""

import pytest
import torch
import torch.nn.functional as F

from striate.engine.trainer import Trainer
from striate.errors import ConfigError
from striate.sequence.captioning.bleu import corpus_bleu
from striate.sequence.captioning.model import ShowAttendTell, build_captioner
from striate.sequence.captioning.scenes import CaptionLoader, make_scenes
from striate.sequence.captioning.task import Captioning

SMALL = dict(features=32, width=16, embed=16, hidden=48, attention=16)


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(8, seed=11)


def _net(v: int, seed: int = 0, **kw) -> ShowAttendTell:
    torch.manual_seed(seed)
    return ShowAttendTell(v, **{**SMALL, **kw})


def test_attention_is_a_distribution_over_the_locations(scenes):
    net = _net(len(scenes.vocab))
    x = scenes.images.float() / 255
    logits, alphas = net(x, scenes.captions[..., :-1])
    assert logits.shape == (8, 2, 11, len(scenes.vocab)) and alphas.shape == (8, 2, 11, 64)
    assert (alphas >= 0).all() and torch.allclose(alphas.sum(-1), torch.ones(8, 2, 11))
    # the R references share the encoding: the same as captioning each on its own
    single, _ = net(x, scenes.captions[:, 1, :-1])
    assert torch.allclose(single, logits[:, 1], atol=1e-5)
    again = build_captioner(net.spec)
    again.load_state_dict(net.state_dict())
    assert torch.allclose(again(x, scenes.captions[..., :-1])[0], logits)


def test_loss_is_the_papers_and_ignores_padding(scenes):
    """(Σ −log p(y_t) + λ Σ_i (1 − Σ_t α_ti)²) / tokens, by a loop over captions and steps; more
    padding columns change nothing."""
    net = _net(len(scenes.vocab)).eval()
    task = Captioning(regularizer=0.7)
    x = scenes.images.float() / 255
    batch = (x, scenes.captions, scenes.lengths)
    loss = task.training_step(net, batch).loss
    ce, reg, tokens = 0.0, 0.0, 0
    for b in range(8):
        for r in range(2):
            n = int(scenes.lengths[b, r])
            if n == 0:
                continue
            cap = scenes.captions[b, r, :n]
            logits, alphas = net(x[b : b + 1], cap[None, :-1])
            ce += F.cross_entropy(logits[0], cap[1:], reduction="sum").item()
            reg += ((1 - alphas[0].sum(0)) ** 2).sum().item()
            tokens += n - 1
    assert loss.item() == pytest.approx((ce + 0.7 * reg) / tokens, rel=1e-5)
    padded = F.pad(scenes.captions, (0, 3), value=0)
    assert task.training_step(net, (x, padded, scenes.lengths)).loss.item() == pytest.approx(
        loss.item(), rel=1e-6
    )
    stats = task.training_step(net, batch).stats
    assert stats[2].item() == tokens and stats[0].item() == pytest.approx(ce, rel=1e-5)


def test_gradients_reach_the_encoder_and_the_attention(scenes):
    net = _net(len(scenes.vocab))
    task = Captioning()
    task.training_step(net, (scenes.images.float() / 255, scenes.captions, scenes.lengths))[
        0
    ].backward()
    for name in ("encoder.body.0.0.weight", "att_a.weight", "att_w.weight", "f_beta.weight"):
        assert net.get_parameter(name).grad.abs().sum() > 0, name


def test_overfits_a_handful_of_scenes(scenes):
    """Eight scenes (32×32) learnt by heart in 60 steps (fp32): greedy captions match a
    reference."""
    scenes = make_scenes(8, seed=11, size=32)
    net = _net(len(scenes.vocab), hidden=64, image_size=32)
    task = Captioning(regularizer=0.0)
    trainer = Trainer(
        steps=60, task=task, opt="adam", lr=1e-2, precision="fp32", device="cpu", progress=False
    )
    loader = CaptionLoader(scenes, 8, seed=0)
    trainer.fit(net, loader)
    metrics = trainer.evaluate(net, CaptionLoader(scenes, 8, shuffle=False))
    assert metrics["loss"] < 0.2 and metrics["bleu4"] > 0.9, metrics
    out = task.decode(net.eval(), scenes.images.float() / 255)
    hyps = task.words(out.tokens, out.lengths)
    refs = task.references(scenes.captions, scenes.lengths)
    assert corpus_bleu(hyps, refs)["bleu4"] == pytest.approx(metrics["bleu4"])
    assert sum(h in r for h, r in zip(hyps, refs, strict=True)) >= 7


def test_bad_batches_and_options_are_one_line(scenes):
    net = _net(len(scenes.vocab))
    with pytest.raises(ConfigError, match="images, captions, lengths"):
        Captioning().training_step(net, (scenes.images.float(),))
    with pytest.raises(ConfigError, match="lengths"):
        Captioning().training_step(
            net, (scenes.images.float(), scenes.captions, scenes.lengths[:3])
        )
    for bad in (dict(beam=0), dict(regularizer=-1.0), dict(max_length=0)):
        with pytest.raises(ConfigError):
            Captioning(**bad)
