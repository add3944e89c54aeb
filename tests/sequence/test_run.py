"""The language-model job on the first 20,000 characters of tiny-shakespeare: the run folder and
its model loaded back (same logits), eval.json against one forward over each stream, nanoGPT's
schedule against its get_lr written out, an exact resume after Ctrl-C, the samples, a transformer
run, the neural cache against a plain forward, and bad inputs one line each."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from striate.engine.callbacks import GradientClipping
from striate.errors import ConfigError, DataError, InputError, StriateError
from striate.sequence.corpus import Vocabulary
from striate.sequence.run import (
    TextConfig,
    evaluate_language_model,
    load_language_model,
    train_language_model,
)
from striate.sequence.sampling import sample
from tests.callbacks import CtrlCAt

TINY = dict(embed=16, hidden=32, layers=1, batch_size=16, length=32, steps=24, warmup=4)
TINY.update(lr=1e-2, min_lr=1e-3, precision="fp32", device="cpu", progress=False)


@pytest.fixture(scope="module")
def text(shared_data, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "shakespeare.txt"
    path.write_text((shared_data / "text" / "tinyshakespeare.txt").read_text()[:20_000])
    return path


@pytest.fixture(scope="module")
def trained(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lstm"
    return train_language_model(text, out=out, **TINY), out


def test_the_run_folder_holds_a_model_that_loads_back_to_the_same_logits(trained):
    result, out = trained
    for name in ("config.json", "metrics.csv", "eval.json", "samples.txt", "report.html"):
        assert (out / name).stat().st_size > 100, name
    assert (out / "checkpoints" / "last.safetensors").is_file()
    info = json.loads((out / "model" / "model.json").read_text())
    assert info["format"] == "striate-model/1" and info["task"] == "language_model"
    assert info["architecture"]["name"] == "recurrent_lm" and "90%" in info["split_rule"]
    lm = load_language_model(out)
    assert lm.vocab == result.vocab and lm.config == TextConfig(corpus=lm.config.corpus, **{
        k: v for k, v in TINY.items() if k != "progress"})  # fmt: skip
    x = lm.vocab.encode("First Citizen:\nBefore we proceed")[None]
    with torch.no_grad():
        torch.testing.assert_close(lm.model(x)[0], result.model.eval()(x)[0], rtol=0, atol=0)
    html = (out / "report.html").read_text()
    assert "Samples" in html and "val_perplexity" in html


def _stream_loss(model, tokens: torch.Tensor, rows: int) -> float:
    """The mean loss over `rows` contiguous rows of a stream in one forward each (no chunks)."""
    n = (len(tokens) - 1) // rows
    x, y = tokens[: rows * n].view(rows, n), tokens[1 : rows * n + 1].view(rows, n)
    with torch.no_grad():
        logits, _ = model.eval()(x)
    return float(F.cross_entropy(logits.flatten(0, 1), y.flatten()))


def test_eval_json_is_the_loss_of_one_forward_over_each_stream(trained, text):
    """The chunks of `length` with the state carried score what one forward over each of the
    batch_size rows scores; perplexity and bits per character follow from the loss."""
    result, out = trained
    summary = json.loads((out / "eval.json").read_text())
    text_ids = result.vocab.encode(text.read_text())
    a, b = int(len(text_ids) * 0.9), int(len(text_ids) * 0.95)
    for split, tokens in (("val", text_ids[a:b]), ("test", text_ids[b:])):
        m = summary[split]
        assert m["loss"] == pytest.approx(_stream_loss(result.model, tokens, 16), rel=1e-5)
        assert m["perplexity"] == pytest.approx(math.exp(m["loss"]))
        assert m["bits_per_token"] == pytest.approx(m["loss"] / math.log(2))
    assert summary["steps"] == 24 and summary["tokens"]["val"] == b - a
    again = evaluate_language_model(out, "val", device="cpu", progress=False)
    assert again == pytest.approx(summary["val"])
    # it learned: better than the unigram distribution of the training characters
    counts = torch.bincount(text_ids[:a], minlength=len(result.vocab)).double() + 1
    unigram = -float((counts / counts.sum()).log()[text_ids[a + 1 : b]].mean())
    assert summary["val"]["loss"] < unigram


def test_the_schedule_optimiser_and_clipping_are_nanogpt_s(trained):
    """The lr of every step against nanoGPT's get_lr (train.py) written out, AdamW's betas and
    decay groups, and clipping at norm 1.0."""
    result, _ = trained
    lr, min_lr, warmup, decay_iters = 1e-2, 1e-3, 4, 24

    def get_lr(it):
        if it < warmup:
            return lr * (it + 1) / (warmup + 1)
        ratio = (it - warmup) / (decay_iters - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)

    assert result.trainer.steps_log["lr"] == pytest.approx([get_lr(i) for i in range(24)])
    groups = result.trainer.optimizer.param_groups
    assert all(g["betas"] == (0.9, 0.99) for g in groups)
    decayed = {id(p) for g in groups if g["weight_decay"] == 0.1 for p in g["params"]}
    model = result.model
    assert id(model.embedding.weight) in decayed and id(model.decoder.weight) in decayed
    assert id(model.decoder.bias) not in decayed
    clips = [cb for cb in result.trainer.callbacks if isinstance(cb, GradientClipping)]
    assert [cb.max_norm for cb in clips] == [1.0]


def test_resume_after_ctrl_c_gives_the_uninterrupted_run(trained, text, tmp_path):
    """Cut in the middle of the epoch (the LSTM's carried state must come back too), resumed
    from the run folder's settings: the same weights, history and scores."""
    full, _ = trained
    cut = train_language_model(text, out=tmp_path / "cut", callbacks=[CtrlCAt(10)], **TINY)
    assert cut.trainer.interrupted and cut.trainer.step == 10 and not cut.test
    with pytest.raises(InputError, match="stopped before the end"):
        load_language_model(tmp_path / "cut")
    resumed = train_language_model(out=tmp_path / "cut", resume=True, progress=False)
    assert resumed.trainer.step == 24
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    untimed = [
        [{k: v for k, v in row.items() if k != "time"} for row in run.trainer.history]
        for run in (full, resumed)
    ]
    assert untimed[0] == untimed[1]
    assert resumed.val == full.val and resumed.samples == full.samples


def test_the_samples_are_the_sampler_s(trained):
    result, out = trained
    written = (out / "samples.txt").read_text()
    for t in (0.5, 0.8, 1.0):
        expected = sample(result.model, result.vocab, "", 500, temperature=t, seed=0)
        assert result.samples[t] == expected
        assert f"--- temperature {t} ---\n{expected}\n" in written


def test_a_transformer_run_and_the_cache(text, tmp_path):
    """A tiny causal transformer trains, loads back and samples; the cache's plain perplexity is
    one forward per window of `context` tokens, and with λ = 0 in the grid the chosen mixture
    is no worse than the model alone on validation."""
    settings = {**TINY, "steps": 8, "warmup": 0, "layers": 1, "heads": 2, "embed": 16}
    result = train_language_model(text, model="transformer", out=tmp_path / "t", **settings)
    lm = load_language_model(tmp_path / "t")
    assert lm.model.spec["name"] == "transformer_lm" and lm.model.context == 32
    x = lm.vocab.encode("First Citizen:")[None]
    with torch.no_grad():
        torch.testing.assert_close(lm.model(x)[0], result.model.eval()(x)[0], rtol=0, atol=0)
    assert lm.sample("First", 20, temperature=0).startswith("First")
    grid = {"thetas": [0.0, 0.5], "lams": [0.0, 0.2], "windows": [40]}
    m = evaluate_language_model(tmp_path / "t", "test", cache=grid, device="cpu", progress=False)
    ids = lm.vocab.encode(text.read_text())
    test = ids[int(len(ids) * 0.95) :]
    with torch.no_grad():
        losses = []
        for start in range(0, len(test) - 1, 32):
            chunk = test[start : min(start + 33, len(test))]
            logits, _ = lm.model(chunk[None, :-1])
            losses.append(F.cross_entropy(logits[0], chunk[1:], reduction="none"))
    assert m["plain_perplexity"] == pytest.approx(math.exp(float(torch.cat(losses).mean())))
    assert m["cache_window"] == 40 and m["cache_theta"] in (0.0, 0.5)
    assert m["cache_lambda"] in (0.0, 0.2) and m["cache_perplexity"] > 1
    val = evaluate_language_model(tmp_path / "t", "val", device="cpu", progress=False)
    assert m["cache_val_perplexity"] <= val["perplexity"] * 1.05


def _one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert "\n" not in message and message
    return message


def test_bad_inputs_are_one_line(trained, text, tmp_path):
    empty, binary = tmp_path / "empty.txt", tmp_path / "binary.txt"
    empty.write_text("  \n")
    binary.write_bytes(b"abc\x00\x01\x02" * 100)
    with pytest.raises(DataError) as e:
        train_language_model(empty, out=tmp_path / "r", **TINY)
    assert "empty" in _one_line(e)
    with pytest.raises(DataError) as e:
        train_language_model(binary, out=tmp_path / "r", **TINY)
    assert "binary" in _one_line(e)
    with pytest.raises(DataError) as e:
        train_language_model(text, out=tmp_path / "r", **{**TINY, "length": 5000})
    assert "too few" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        train_language_model(text, out=tmp_path / "r", **{**TINY, "model": "lstn"})
    assert "did you mean 'lstm'" in _one_line(e)
    with pytest.raises(ConfigError, match="unknown setting"):
        train_language_model(text, out=tmp_path / "r", colour="red")
    assert not (tmp_path / "r").exists()  # nothing made for a refused run
    _, out = trained
    with pytest.raises(ConfigError, match="already holds results"):
        train_language_model(text, out=out, **TINY)

    with pytest.raises(InputError) as e:
        load_language_model(tmp_path / "nowhere")
    assert "no run folder" in _one_line(e)
    other = tmp_path / "classifier" / "model"
    other.mkdir(parents=True)
    spec = {"name": "convnet_small", "num_classes": 10, "in_shape": [3, 32, 32]}
    info = {"format": "striate-model/1", "architecture": spec}
    (other / "model.json").write_text(json.dumps(info))
    with pytest.raises(InputError) as e:
        load_language_model(other.parent)
    assert "is not a language model run" in _one_line(e)
    (other / "model.json").write_text("{not json")
    with pytest.raises(InputError) as e:
        load_language_model(other.parent)
    assert "damaged" in _one_line(e)
    info = json.loads((out / "model" / "model.json").read_text())
    info["architecture"]["arguments"]["hidden"] = 7
    (other / "model.json").write_text(json.dumps(info))
    weights = (out / "model" / "weights.safetensors").read_bytes()
    (other / "weights.safetensors").write_bytes(weights)
    with pytest.raises(StriateError) as e:
        load_language_model(other.parent)
    assert "does not hold a readable language model" in _one_line(e)


def test_a_word_level_run_counts_words(tmp_path):
    """Words: the vocabulary of the training words with <unk>, epochs instead of steps."""
    path = tmp_path / "words.txt"
    words = "the lord said unto moses , go thou and say unto the people .\n"
    path.write_text(words * 120)
    settings = {**TINY, "batch_size": 2, "length": 8, "warmup": 0}
    del settings["steps"]
    result = train_language_model(path, level="word", epochs=1, **settings)
    assert result.vocab.level == "word" and "<unk>" in result.vocab.tokens
    n_train = int(len(words.split()) * 120 * 0.9)
    row = (n_train - 1 - 7) // 2
    assert result.trainer.step == row // 8  # one epoch of whole chunks
    assert isinstance(Vocabulary.from_json(result.vocab.to_json()), Vocabulary)
    assert len(result.samples[1.0].split()) == 100
