"""The Trainer against a hand-written PyTorch loop, resume against an uninterrupted run, and the
features plugged in as callbacks (checkpoints, early stopping, clipping, EMA, NaN guard, TTA)."""

from __future__ import annotations

import copy
import math
import signal

import pytest
import torch
from torch import nn

from striate import models
from striate.data import BatchLoader, load_dataset
from striate.data.augment import RandomTranslate
from striate.engine import (
    EMA,
    Callback,
    Checkpoint,
    Classification,
    EarlyStopping,
    GradientClipping,
    Lookahead,
    TensorBoard,
    Trainer,
    TrainingDiverged,
)
from striate.errors import ConfigError, StriateError
from striate.outputs import OutputExists
from striate.state_file import load_state
from tests.callbacks import CtrlCAt

# fp32 whatever the CPU: "auto" picks bf16 on CPUs with native bf16, which changes the numbers.
QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")


@pytest.fixture(scope="module")
def digits():
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    return train[:512], test[:256]


def _model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return models.create("mlp", num_classes=10, in_shape=(1, 8, 8), hidden=(32,), dropout=dropout)


def test_the_loop_is_a_plain_pytorch_loop(digits):
    """Same init, data order and constant-lr SGD: the weights equal a hand-written loop's."""
    train, _ = digits
    a, b = _model(), _model()
    loader = BatchLoader(train, 64, device="cpu", seed=3)
    Trainer(epochs=2, opt="sgd", lr=0.05, momentum=0.9, seed=None, **QUIET).fit(a, loader)

    loader = BatchLoader(train, 64, device="cpu", seed=3)
    opt = torch.optim.SGD(b.parameters(), lr=0.05, momentum=0.9)
    for _ in range(2):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(b(x), y).backward()
            opt.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7, msg=name)


def test_training_learns_and_reports_history(digits):
    train, test = digits
    model = _model()
    trainer = Trainer(epochs=8, opt="adam", lr=1e-2, schedule="cosine", **QUIET)
    loader = BatchLoader(train, 32, device="cpu")
    history = trainer.fit(model, loader, BatchLoader(test, 128, shuffle=False, device="cpu"))
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert history[-1]["step"] == 8 * len(loader) == trainer.step
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 3
    assert history[-1]["val_acc"] > 0.85
    # the evaluation agrees with a direct computation
    x = torch.cat([x for x, _ in BatchLoader(test, 128, shuffle=False, device="cpu")])
    logits = model.eval()(x)
    direct = (logits.argmax(1) == test.labels).float().mean().item()
    got = trainer.evaluate(model, BatchLoader(test, 100, shuffle=False, device="cpu"))
    assert got["acc"] == pytest.approx(direct)
    assert got["loss"] == pytest.approx(
        nn.functional.cross_entropy(logits, test.labels).item(), rel=1e-5
    )
    probs = trainer.predict(model, x)
    torch.testing.assert_close(probs, logits.softmax(1))


def test_steps_mode_stops_mid_epoch_and_logs_each_step(digits):
    train, _ = digits
    trainer = Trainer(steps=11, lr=0.01, **QUIET)
    loader = BatchLoader(train, 64, device="cpu")  # 8 batches per epoch
    history = trainer.fit(_model(), loader)
    assert trainer.step == 11 and len(history) == 2 and history[-1]["step"] == 11
    assert trainer.steps_log["step"] == list(range(1, 12))
    assert all(lr == pytest.approx(0.01) for lr in trainer.steps_log["lr"])


@pytest.mark.parametrize("stop_at", [13, 16])  # in the middle of epoch 2, and at its end
def test_resume_continues_exactly_as_the_uninterrupted_run(digits, tmp_path, stop_at, cpu_bf16):
    """Exact in bf16 too (precision "auto" on a CPU with native bf16)."""
    train, test = digits

    def run(out, callbacks=(), resume=None):
        model = _model(dropout=0.2)  # dropout draws from torch's global generator
        loader = BatchLoader(train, 64, device="cpu", seed=7, augment=RandomTranslate(1))
        trainer = Trainer(
            epochs=3,
            opt="sgd",
            lr=0.1,
            momentum=0.9,
            nesterov=True,
            weight_decay=1e-3,
            schedule="onecycle",
            out=out,
            callbacks=[EMA(0.9), Lookahead(0.9), *callbacks],
            **{**QUIET, "precision": "auto"},
        )
        trainer.fit(
            model, loader, BatchLoader(test, 128, shuffle=False, device="cpu"), resume=resume
        )
        return trainer, model

    full, full_model = run(tmp_path / "full")
    stopped, _ = run(tmp_path / "cut", callbacks=[CtrlCAt(stop_at)])
    assert stopped.interrupted and stopped.step == stop_at
    state = load_state(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    assert state["trainer"]["step"] == stop_at
    resumed, resumed_model = run(tmp_path / "cut", resume=tmp_path / "cut")
    assert resumed.step == full.step == 24
    for (name, p), q in zip(full_model.named_parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert torch.equal(
        torch.cat([p.flatten() for p in full.eval_model.parameters()]),
        torch.cat([p.flatten() for p in resumed.eval_model.parameters()]),
    )
    assert resumed.steps_log == full.steps_log
    for h_full, h_res in zip(full.history, resumed.history, strict=True):
        for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert h_full[k] == pytest.approx(h_res[k], rel=1e-6), k
    metrics = (tmp_path / "cut" / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 3


def test_a_non_finite_loss_stops_with_a_diagnosis_and_keeps_the_last_good_checkpoint(
    digits, tmp_path
):
    train, _ = digits
    loader = BatchLoader(train, 64, device="cpu")
    trainer = Trainer(epochs=1, lr=0.01, out=tmp_path, **QUIET)
    model = _model()
    trainer.fit(model, loader)
    good = load_state(tmp_path / "checkpoints" / "last.safetensors")

    class Poison(Callback):  # weights of ±inf from step 3 on
        def on_step_end(self, trainer, loss):
            if trainer.step == 3:
                with torch.no_grad():
                    next(trainer.model.parameters()).mul_(float("inf"))

    bad = Trainer(epochs=2, lr=0.01, out=tmp_path, overwrite=True, callbacks=[Poison()], **QUIET)
    with pytest.raises(TrainingDiverged) as e:
        bad.fit(model, loader)
    message = str(e.value)
    assert "step" in message and "lr 0.01" in message and "non-finite gradients in" in message
    assert "largest gradient norms: \n" not in message and not message.startswith("\n")
    assert "last good checkpoint" in message and "lower the learning rate" in message
    kept = load_state(tmp_path / "checkpoints" / "last.safetensors")
    assert kept["trainer"]["step"] == good["trainer"]["step"]
    for k, v in good["model"].items():
        assert torch.equal(v, kept["model"][k])


def test_a_run_folder_with_results_is_refused_unless_resumed_or_overwritten(digits, tmp_path):
    train, _ = digits
    loader = BatchLoader(train, 64, device="cpu")
    (tmp_path / "config.json").write_text("{}")  # what a command writes before fitting is fine
    Trainer(epochs=2, out=tmp_path, callbacks=[CtrlCAt(3)], **QUIET).fit(_model(), loader)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(OutputExists, match="checkpoints.*resume=.*overwrite=True"):
        Trainer(epochs=2, out=tmp_path, **QUIET).fit(_model(), loader)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    for name in ("metrics.csv", "steps.csv"):  # any one of them is an earlier run
        kept = tmp_path / "kept"
        kept.mkdir(exist_ok=True)
        (kept / name).write_text("epoch\n1\n")
        with pytest.raises(OutputExists, match=name):
            Trainer(epochs=1, out=kept, **QUIET).fit(_model(), loader)
        (kept / name).unlink()
    again = Trainer(epochs=2, out=tmp_path, **QUIET)
    again.fit(_model(), loader, resume=tmp_path)
    assert again.epoch == 2
    replaced = Trainer(epochs=1, out=tmp_path, overwrite=True, **QUIET)
    replaced.fit(_model(), loader)
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 1 + 1


def test_a_too_large_learning_rate_diverges(digits):
    train, _ = digits
    with pytest.raises(TrainingDiverged, match="advice"):
        Trainer(epochs=5, lr=1e30, **QUIET).fit(_model(), BatchLoader(train, 64, device="cpu"))


def test_checkpoint_best_tracks_the_monitor_and_early_stopping_stops(digits, tmp_path):
    train, test = digits
    val = BatchLoader(test, 128, shuffle=False, device="cpu")
    stop = EarlyStopping("val_loss", patience=2)
    trainer = Trainer(epochs=40, opt="adam", lr=0.05, out=tmp_path, callbacks=[stop], **QUIET)
    history = trainer.fit(_model(), BatchLoader(train, 16, device="cpu"), val)
    assert trainer.should_stop and len(history) < 40 and "early stopping" in trainer.stop_reason
    losses = [h["val_loss"] for h in history]
    best = min(losses)
    assert losses[-1] > best and all(v > best for v in losses[-2:])
    ckpt = next(cb for cb in trainer.callbacks if isinstance(cb, Checkpoint))
    best_acc = max(h["val_acc"] for h in history)
    assert ckpt.best == pytest.approx(best_acc)
    import json

    info = json.loads((tmp_path / "checkpoints" / "best.json").read_text())
    assert info["epoch"] == 1 + [h["val_acc"] for h in history].index(best_acc)


def test_gradient_clipping_bounds_the_norm_and_the_values(digits):
    train, _ = digits
    seen = []

    class Watch(Callback):
        def on_before_step(self, trainer):
            grads = [p.grad for p in trainer.model.parameters()]
            seen.append(
                (
                    torch.cat([g.flatten() for g in grads]).norm().item(),
                    max(g.abs().max().item() for g in grads),
                )
            )

    loader = BatchLoader(train, 64, device="cpu")
    Trainer(steps=4, lr=0.1, callbacks=[GradientClipping(max_norm=0.05), Watch()], **QUIET).fit(
        _model(), loader
    )
    assert all(norm <= 0.05 * (1 + 1e-5) for norm, _ in seen)
    seen.clear()
    Trainer(steps=4, lr=0.1, callbacks=[GradientClipping(value=1e-3), Watch()], **QUIET).fit(
        _model(), loader
    )
    assert all(v <= 1e-3 * (1 + 1e-6) for _, v in seen)
    with pytest.raises(ConfigError):
        GradientClipping()
    with pytest.raises(ConfigError):
        GradientClipping(max_norm=-1)


def test_ema_is_the_bias_corrected_exponential_average_of_the_weights(digits):
    train, _ = digits
    snapshots = []

    class Record(Callback):
        def on_step_end(self, trainer, loss):
            snapshots.append([p.detach().clone() for p in trainer.model.parameters()])

    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    ema = EMA(0.5)
    Trainer(steps=5, lr=0.1, callbacks=[Record(), ema], **QUIET).fit(
        model, BatchLoader(train, 64, device="cpu")
    )
    expected = start
    for t, weights in enumerate(snapshots, start=1):
        d = min(0.5, (1 + t) / (10 + t))
        expected = [d * e + (1 - d) * w for e, w in zip(expected, weights, strict=True)]
    for e, p in zip(expected, ema.module.parameters(), strict=True):
        torch.testing.assert_close(p, e)


@pytest.mark.parametrize("every, power", [(1, 0.0), (3, 3.0)])
def test_lookahead_pulls_the_weights_to_their_slow_average_on_schedule(digits, every, power):
    train, _ = digits
    steps, decay = 8, 0.8
    fast, after = [], []

    class Record(Callback):
        def __init__(self, into):
            self.into = into

        def on_step_end(self, trainer, loss):
            self.into.append([p.detach().clone() for p in trainer.model.parameters()])

    model = _model()
    slow = [p.detach().clone() for p in model.parameters()]
    callbacks = [Record(fast), Lookahead(decay, every=every, power=power), Record(after)]
    Trainer(steps=steps, lr=0.1, callbacks=callbacks, **QUIET).fit(
        model, BatchLoader(train, 64, device="cpu")
    )
    updates = 0
    for t, (w, out) in enumerate(zip(fast, after, strict=True), start=1):
        if t % every and t < steps:
            expected = w  # no lookahead step: the optimiser's weights stand
        else:
            d = 1.0 if t == steps else decay**every * (t / steps) ** power
            slow = [d * s + (1 - d) * f for s, f in zip(slow, w, strict=True)]
            expected, updates = slow, updates + 1
        for e, p in zip(expected, out, strict=True):
            torch.testing.assert_close(p, e)
    assert updates == (steps if every == 1 else steps // every + 1)
    for s, p in zip(slow, model.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), s)  # the run ends on the slow weights


def test_translate_tta_averages_six_views_with_airbench_weights(digits, cpu_bf16):
    _, test = digits
    model = _model().eval()
    trainer = Trainer(epochs=1, **{**QUIET, "precision": "auto"})  # TTA runs in fp32 either way
    assert trainer.precision.name == ("bf16" if cpu_bf16 else "fp32")
    x = test.images[:50].float() / 255
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    down_right, up_left = padded[..., :8, :8], padded[..., 2:, 2:]
    assert torch.equal(down_right[..., 1:, 1:], x[..., :-1, :-1])
    assert torch.equal(up_left[..., :-1, :-1], x[..., 1:, 1:])
    views = [x, x.flip(-1), down_right, down_right.flip(-1), up_left, up_left.flip(-1)]
    weights = [1 / 4, 1 / 4, 1 / 8, 1 / 8, 1 / 8, 1 / 8]
    expected = sum(w * model(v).softmax(1) for w, v in zip(weights, views, strict=True))
    torch.testing.assert_close(trainer.predict(model, x, tta="flip,translate"), expected)
    only_shift = (2 * model(x).softmax(1) + sum(model(v).softmax(1) for v in views[2::2])) / 4
    torch.testing.assert_close(trainer.predict(model, x, tta="translate:1"), only_shift)


@pytest.mark.parametrize("spec", ["flip,flip", "translate:0", "translate:x", "rotate", 3])
def test_a_bad_tta_spec_is_refused_before_training(spec):
    with pytest.raises(ConfigError, match="tta"):
        Trainer(epochs=1, task=Classification(tta=spec), **QUIET)


def test_flip_tta_averages_the_probabilities_of_the_image_and_its_mirror(digits, cpu_bf16):
    _, test = digits
    model = _model().eval()
    trainer = Trainer(epochs=1, **{**QUIET, "precision": "auto"})
    x = test.images[:50].float() / 255
    expected = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
    torch.testing.assert_close(trainer.predict(model, x, tta=True), expected)
    plain = trainer.predict(model, x, tta=False)
    assert not torch.allclose(plain, expected)


def test_evaluation_and_prediction_run_in_fp32_whatever_the_training_precision(digits):
    """Reported numbers must not depend on whether the CPU has native bf16: a bf16 trainer
    evaluates exactly as an fp32 one, and as the plain fp32 forward pass."""
    train, test = digits
    model = _model()
    Trainer(epochs=1, **{**QUIET, "precision": "bf16"}).fit(
        model, BatchLoader(train, 64, device="cpu")
    )
    loader = BatchLoader(test, 128, shuffle=False, device="cpu")
    bf16 = Trainer(epochs=1, **{**QUIET, "precision": "bf16"})
    fp32 = Trainer(epochs=1, **QUIET)
    assert bf16.evaluate(model, loader) == fp32.evaluate(model, loader)
    probs = bf16.predict(model, loader)
    assert probs.dtype == torch.float32 and torch.equal(probs, fp32.predict(model, loader))
    with torch.no_grad():
        expected = model.eval()(test.images.float() / 255).softmax(1)
    torch.testing.assert_close(probs, expected)


def test_label_smoothing_hinge_and_adam_variants_train(digits):
    train, _ = digits
    loader = BatchLoader(train, 64, device="cpu")
    for kw in (
        dict(task=Classification(label_smoothing=0.1)),
        dict(task=Classification("hinge")),
        dict(opt="adamw", lr=1e-3),
        dict(opt="rmsprop", lr=1e-3),
        dict(opt="adagrad", lr=0.05),
        dict(opt="adagrad", lr=0.05, schedule="onecycle"),  # no momentum to cycle
    ):
        trainer = Trainer(epochs=3, **{"lr": 0.05, **kw}, **QUIET)
        history = trainer.fit(_model(), loader)
        assert history[-1]["train_loss"] < history[0]["train_loss"], kw


def test_lbfgs_runs_full_batch_steps(digits):
    train, _ = digits
    torch.manual_seed(0)
    model = models.create("mlp", num_classes=10, in_shape=(1, 8, 8), hidden=())
    loader = BatchLoader(train, 128, device="cpu")
    trainer = Trainer(epochs=5, opt="lbfgs", lr=1.0, **QUIET)
    history = trainer.fit(model, loader)
    assert trainer.step == 5
    # the recorded loss is the full-batch loss of the weights before the last step
    x = torch.cat([x for x, _ in BatchLoader(train, 512, shuffle=False, device="cpu")])
    final = nn.functional.cross_entropy(model(x), train.labels).item()
    assert final < history[0]["train_loss"] < 2.3
    with pytest.raises(ConfigError, match="augmentation"):
        Trainer(epochs=1, opt="lbfgs", **QUIET).fit(
            model, BatchLoader(train, 128, device="cpu", augment=RandomTranslate(1))
        )


def test_precision_and_memory_format(digits):
    train, test = digits
    conv = models.create("convnet-small", num_classes=10, in_shape=(1, 8, 8))
    trainer = Trainer(epochs=1, channels_last=True, **{**QUIET, "precision": "bf16"})
    trainer.fit(conv, BatchLoader(train, 64, device="cpu"))
    assert trainer.precision.dtype == torch.bfloat16
    assert conv.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ConfigError, match="fp16"):
        Trainer(epochs=1, **{**QUIET, "precision": "fp16"})
    with pytest.raises(ConfigError, match="unknown precision"):
        Trainer(epochs=1, **{**QUIET, "precision": "fp8"})
    fp32 = Trainer(epochs=1, **QUIET)
    assert fp32.precision.dtype is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(opt="sgdd"), "sgd"),
        (dict(schedule="cosin"), "cosine"),
        (dict(lr=-0.1), "learning rate"),
        (dict(lr=float("nan")), "learning rate"),
        (dict(epochs=0), "epochs"),
        (dict(epochs=2, steps=3), "exactly one"),
        (dict(task="l2"), "Task"),
    ],
)
def test_bad_settings_say_what_is_wrong(digits, kwargs, match):
    train, _ = digits
    kwargs = {"epochs": 1, **kwargs}
    with pytest.raises(ConfigError, match="cross_entropy"):
        Classification("l2")
    if kwargs.get("steps"):
        kwargs.pop("epochs", None) if kwargs.get("epochs") is None else None
    with pytest.raises(ConfigError, match=match):
        Trainer(**kwargs, **QUIET).fit(_model(), BatchLoader(train, 64, device="cpu"))


def test_a_damaged_or_mismatched_checkpoint_is_refused(digits, tmp_path):
    train, _ = digits
    loader = BatchLoader(train, 64, device="cpu")
    Trainer(epochs=1, out=tmp_path, **QUIET).fit(_model(), loader)
    ckpt = tmp_path / "checkpoints" / "last.safetensors"
    with pytest.raises(ConfigError, match="steps"):
        Trainer(epochs=3, **QUIET).fit(_model(), loader, resume=ckpt)
    other = models.create("mlp", num_classes=10, in_shape=(1, 8, 8), hidden=(16,))
    with pytest.raises(ConfigError, match="does not fit"):
        Trainer(epochs=1, **QUIET).fit(other, loader, resume=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(StriateError, match="damaged"):
        Trainer(epochs=1, **QUIET).fit(_model(), loader, resume=ckpt)


def test_tensorboard_logs_scalars(digits, tmp_path, monkeypatch):
    train, _ = digits
    calls = []

    class FakeWriter:
        def add_scalar(self, tag, value, step):
            calls.append((tag, step))

        def flush(self):
            pass

        def close(self):
            calls.append(("closed", None))

    monkeypatch.setattr(TensorBoard, "_writer", lambda self, log_dir: FakeWriter())
    Trainer(epochs=2, out=tmp_path, tensorboard=True, progress=False, device="cpu").fit(
        _model(), BatchLoader(train, 128, device="cpu")
    )
    tags = {t for t, _ in calls}
    assert {"step/loss", "step/lr", "epoch/train_loss", "closed"} <= tags
    assert ("epoch/train_acc", 2) in calls


def test_the_progress_bar_and_csv_files(digits, tmp_path, capsys):
    train, test = digits
    Trainer(epochs=2, out=tmp_path, progress=True, device="cpu", tensorboard=False).fit(
        _model(), BatchLoader(train, 64, device="cpu"), BatchLoader(test, 128, device="cpu")
    )
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "val_acc" in err
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[:6] == [
        "epoch",
        "step",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
    ]
    steps = (tmp_path / "steps.csv").read_text().splitlines()
    assert len(steps) == 1 + 2 * 8 and steps[0] == "step,lr,momentum,loss"
    assert all(math.isfinite(float(r.split(",")[-1])) for r in steps[1:])


def test_lr_find_restores_the_model(digits):
    train, _ = digits
    model = _model()
    before = copy.deepcopy(model.state_dict())
    result = Trainer(epochs=1, opt="sgd", **QUIET).lr_find(
        model, BatchLoader(train, 32, device="cpu"), start=1e-5, end=100, num_steps=60
    )
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert result.suggestion is not None and 1e-5 < result.suggestion < result.lrs[-1]
    assert result.stop_reason in ("diverged", "non-finite", "num_steps")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16", "fp32"])
def test_cuda_mixed_precision_trains_and_resumes(digits, tmp_path, precision, monkeypatch):
    train, test = digits
    # cuDNN's default algorithms may sum in any order; 6 epochs amplify that past any tolerance
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)

    def run(out, callbacks=(), resume=None):
        torch.manual_seed(0)
        model = models.create("convnet-small", num_classes=10, in_shape=(1, 8, 8))
        loader = BatchLoader(train, 64, device="cuda", seed=1, augment=RandomTranslate(1))
        trainer = Trainer(
            epochs=6,
            lr=0.1,
            schedule="onecycle",
            precision=precision,
            device="cuda",
            progress=False,
            tensorboard=False,
            out=out,
            callbacks=callbacks,
        )
        trainer.fit(model, loader, BatchLoader(test, 128, device="cuda"), resume=resume)
        return trainer, model

    full, model = run(tmp_path / "full")
    assert next(model.parameters()).is_cuda
    assert full.precision.name == {"auto": "bf16"}.get(precision, precision)
    assert (full.scaler is not None) == (precision == "fp16")
    assert full.history[-1]["val_acc"] > 0.85
    stopped, _ = run(tmp_path / "cut", callbacks=[CtrlCAt(20)])
    assert stopped.interrupted
    resumed, resumed_model = run(tmp_path / "cut", resume=tmp_path / "cut")
    assert resumed.step == full.step
    for p, q in zip(model.parameters(), resumed_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-4, rtol=1e-3)


def test_lr_find_ends_its_sweep_on_a_non_finite_loss(digits):
    train, _ = digits
    result = Trainer(epochs=1, **QUIET).lr_find(
        _model(),
        BatchLoader(train, 32, device="cpu"),
        start=1e-3,
        end=1e38,
        num_steps=80,
        diverge=1e300,
    )
    assert result.stop_reason == "non-finite" and result.stop_lr is not None


def test_a_loader_on_another_device_is_refused_before_training():
    class OnCuda(list):
        device = torch.device("cuda", 0)

    loader = OnCuda([(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))])
    with pytest.raises(ConfigError, match="batches on cuda:0 but the trainer trains on cpu"):
        Trainer(epochs=1, **QUIET).check(torch.nn.Linear(4, 2), loader)


def test_evaluating_in_the_middle_of_an_epoch_leaves_the_model_training(digits):
    train, test = digits

    class EvaluateAt(Callback):
        modes: list[bool] = []

        def on_step_end(self, trainer, loss):
            if trainer.step == 2:
                trainer.evaluate(trainer.model, BatchLoader(test, 256, device="cpu"))
                self.modes.append(trainer.model.training)

    trainer = Trainer(epochs=1, callbacks=[EvaluateAt()], **QUIET)
    model = _model()
    trainer.fit(model, BatchLoader(train, 64, device="cpu"))
    assert EvaluateAt.modes == [True]
    model.eval()
    trainer.evaluate(model, BatchLoader(test, 256, device="cpu"))
    assert not model.training


def test_sigterm_stops_after_the_step_and_saves_like_ctrl_c(digits, tmp_path):
    """What a cloud sends before preempting a spot machine."""
    train, _ = digits
    trainer = Trainer(epochs=2, out=tmp_path, callbacks=[CtrlCAt(5, signal.SIGTERM)], **QUIET)
    trainer.fit(_model(), BatchLoader(train, 64, device="cpu"))
    assert trainer.interrupted and trainer.step == 5
    assert load_state(tmp_path / "checkpoints" / "last.safetensors")["trainer"]["step"] == 5
