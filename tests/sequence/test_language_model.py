"""The LanguageModel task: its loss against F.cross_entropy computed apart, the carried state
against one forward over the whole stream, training with the Trainer, and an exact resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from striate.engine import Trainer
from striate.engine.task import TASKS
from striate.errors import ConfigError
from striate.sequence.corpus import load_corpus
from striate.sequence.language_model import LanguageModel
from striate.sequence.lm_zoo import build_language_model
from striate.sequence.rnn_lm import RecurrentLM
from striate.sequence.streams import StreamLoader
from striate.state_file import load_state, save_state
from tests.callbacks import CtrlCAt

QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")


def _model(kind="lstm", seed=0, dropout=0.0, vocab=20):
    torch.manual_seed(seed)
    return RecurrentLM(vocab, kind=kind, embed=8, hidden=12, layers=2, dropout=dropout)


def test_the_loss_is_the_mean_cross_entropy_per_token():
    model, task = _model(), LanguageModel()
    x, y = torch.randint(0, 20, (3, 6)), torch.randint(0, 20, (3, 6))
    step = task.training_step(model, (x, y, torch.tensor(True)))
    logits, _ = model(x)
    expected = F.cross_entropy(logits.reshape(18, 20), y.reshape(18))
    torch.testing.assert_close(step.loss, expected)
    sums = torch.stack([expected.detach() * 18, torch.tensor(18.0)])
    torch.testing.assert_close(step.stats, sums)
    m = task.summarize(step.stats.double())
    assert m["perplexity"] == pytest.approx(math.exp(m["loss"]))
    assert m["bits_per_token"] == pytest.approx(m["loss"] / math.log(2))
    assert TASKS.get("language_model") is LanguageModel


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_carrying_the_state_equals_one_forward_over_the_stream(kind):
    """Two chunks with the state carried == one forward over their concatenation, in training
    (training_step) and in evaluation; the state is reset on an epoch's first chunk."""
    model, task = _model(kind).eval(), LanguageModel()
    tokens = torch.randint(0, 20, (2 * 5 * 2 + 1,), generator=torch.Generator().manual_seed(3))
    loader = StreamLoader(tokens, 2, 5, shuffle=False)
    batches = list(loader)
    assert len(batches) == 2
    x = torch.cat([b[0] for b in batches], 1)
    y = torch.cat([b[1] for b in batches], 1)
    whole, _ = model(x)
    expected = F.cross_entropy(whole[:, 5:].reshape(-1, 20), y[:, 5:].reshape(-1))
    task.training_step(model, batches[0])
    second = task.training_step(model, batches[1])
    torch.testing.assert_close(second.loss, expected)
    again = task.training_step(model, batches[0])  # first=True: from a fresh state
    fresh = F.cross_entropy(whole[:, :5].reshape(-1, 20), y[:, :5].reshape(-1))
    torch.testing.assert_close(again.loss, fresh)

    trainer = Trainer(epochs=1, task=task, **QUIET)
    metrics = trainer.evaluate(model, loader)
    overall = F.cross_entropy(whole.reshape(-1, 20), y.reshape(-1)).item()
    assert metrics["loss"] == pytest.approx(overall, rel=1e-6)
    assert set(metrics) == {"loss", "perplexity", "bits_per_token"}


def test_state_dict_round_trips_through_a_checkpoint(tmp_path):
    model, task = _model(), LanguageModel()
    task.training_step(model, (torch.randint(0, 20, (3, 4)), torch.randint(0, 20, (3, 4)),
                                torch.tensor(True)))  # fmt: skip
    h, c = task.state
    assert h.shape == c.shape == (2, 3, 12) and not h.requires_grad
    loaded = load_state(save_state(tmp_path / "t.safetensors", {"task": task.state_dict()}))
    other = LanguageModel()
    other.load_state_dict(loaded["task"])
    assert all(torch.equal(a, b) for a, b in zip(other.state, task.state, strict=True))


@pytest.fixture(scope="module")
def shakespeare(shared_data):
    c = load_corpus("tinyshakespeare", "char", root=shared_data / "text")
    return c.train[:6000], c.val[:2000], len(c.vocab)


def test_a_tiny_char_lstm_learns_with_the_trainer(shakespeare):
    train, val, v = shakespeare
    model = _model(vocab=v)
    val_loader = StreamLoader(val, 4, 32, shuffle=False)
    trainer = Trainer(steps=40, task=LanguageModel(), opt="adam", lr=1e-2, **QUIET)
    before = trainer.evaluate(model, val_loader)["loss"]
    assert before == pytest.approx(math.log(v), abs=0.1)  # uniform guesses at the start
    trainer.fit(model, StreamLoader(train, 8, 32, seed=0))
    after = trainer.evaluate(model, val_loader)["loss"]
    assert after < before - 0.7, (before, after)


def test_chunks_longer_than_the_context_are_refused():
    model = build_language_model("transformer", 20, context=8, layers=1, heads=2, embed=8)
    loader = StreamLoader(torch.randint(0, 20, (200,)), 2, 16)
    with pytest.raises(ConfigError, match="chunks are 16 tokens long, the model reads at most 8"):
        Trainer(epochs=1, task=LanguageModel(), **QUIET).fit(model, loader)


@pytest.mark.parametrize("stop_at", [7, 9])  # in the middle of epoch 2, and at its end
def test_resume_continues_exactly(shakespeare, tmp_path, stop_at):
    train, val, v = shakespeare

    def run(out, callbacks=(), resume=None):
        model = _model(vocab=v, dropout=0.1)
        trainer = Trainer(epochs=3, task=LanguageModel(), opt="adam", lr=3e-3, out=out,
                          callbacks=callbacks, **QUIET)  # fmt: skip
        loaders = StreamLoader(train[:1500], 4, 40, seed=1), StreamLoader(val[:500], 2, 40)
        trainer.fit(model, *loaders, resume=resume)
        return trainer, model

    full, full_model = run(tmp_path / "full")
    assert full.steps_per_epoch == 9
    stopped, _ = run(tmp_path / "cut", callbacks=[CtrlCAt(stop_at)])
    assert stopped.step == stop_at
    resumed, resumed_model = run(tmp_path / "cut", resume=tmp_path / "cut")
    assert resumed.step == full.step == 27
    for (name, p), q in zip(full_model.named_parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert resumed.steps_log == full.steps_log
