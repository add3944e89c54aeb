"""Ensembles against hand-computed averages of softmaxes, snapshots against torch's own SGDR
restarts and an uninterrupted run, and Polyak's uniform average against the mean of the iterates."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from striate import models
from striate.data import BatchLoader, load_dataset
from striate.engine import EMA, Callback, Trainer
from striate.engine.schedules import make_schedule
from striate.errors import ConfigError
from striate.models.io import ImageClassifier, load_model, save_model
from striate.train import (
    Ensemble,
    Snapshots,
    TrainConfig,
    evaluate_ensemble,
    load_snapshots,
    snapshot_paths,
)
from striate.train.snapshots import cycle_ends
from tests.callbacks import CtrlCAt

QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")


@pytest.fixture(scope="module")
def digits():
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    return train[:512], test[:256]


def _model(seed=0):
    torch.manual_seed(seed)
    return models.create("mlp", num_classes=10, in_shape=(1, 8, 8), hidden=(16,))


def _linear(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 5))


# --------------------------------------------------------------------------- Ensemble


def test_ensemble_is_the_log_of_the_mean_of_the_softmaxes():
    nets = [_linear(s) for s in range(3)]
    x = torch.randn(7, 3, 2, 2)
    p = [torch.softmax(n(x), 1) for n in nets]
    out = Ensemble(nets)(x)
    torch.testing.assert_close(out, torch.log((p[0] + p[1] + p[2]) / 3))
    torch.testing.assert_close(out.exp().sum(1), torch.ones(7))
    weighted = Ensemble(nets, weights=[1.0, 3.0, 0.0])(x)
    torch.testing.assert_close(weighted, torch.log(0.25 * p[0] + 0.75 * p[1]))
    # cross-entropy on the output is the ensemble's negative log-likelihood
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    nll = -torch.log(((p[0] + p[1] + p[2]) / 3)[torch.arange(7), y]).mean()
    torch.testing.assert_close(nn.functional.cross_entropy(out, y), nll)


def test_an_ensemble_of_one_is_that_members_log_softmax():
    net = _linear(0)
    x = torch.randn(5, 3, 2, 2)
    torch.testing.assert_close(Ensemble([net])(x), torch.log_softmax(net(x), 1))


@pytest.mark.parametrize(
    ("models_", "weights", "match"),
    [
        ([], None, "at least one"),
        (["x"], None, "torch modules"),
        ([nn.Identity()], [1.0, 2.0], "one weight per member"),
        ([nn.Identity(), nn.Identity()], [-1.0, 2.0], "non-negative"),
        ([nn.Identity(), nn.Identity()], [0.0, 0.0], "not all zero"),
    ],
)
def test_bad_ensembles_say_what_is_wrong(models_, weights, match):
    with pytest.raises(ConfigError, match=match):
        Ensemble(models_, weights)


# --------------------------------------------------------------------------- evaluation


def test_evaluate_ensemble_agrees_with_the_trainer_on_each_member_and_the_ensemble(digits):
    train, test = digits
    nets = []
    for seed in range(3):
        net = _model(seed)
        Trainer(epochs=2, lr=0.1, momentum=0.9, seed=seed, **QUIET).fit(
            net, BatchLoader(train, 64, device="cpu", seed=seed)
        )
        nets.append(net)
    loader = BatchLoader(test, 100, shuffle=False, device="cpu")
    result = evaluate_ensemble(nets, loader, names=["a", "b", "c"], device="cpu")
    trainer = Trainer(epochs=1, **QUIET)
    for net, got in zip(nets, result.members, strict=True):
        want = trainer.evaluate(net, loader)
        for k in ("acc", "top5", "loss"):
            assert got[k] == pytest.approx(want[k], rel=1e-5), k
    want = trainer.evaluate(Ensemble(nets), loader)
    for k in ("acc", "top5", "loss"):
        assert result.ensemble[k] == pytest.approx(want[k], rel=1e-5), k
    # by hand: the argmax of the summed probabilities
    x = torch.cat([x for x, _ in loader])
    with torch.no_grad():
        probs = sum(n.eval()(x).softmax(1) for n in nets)
    assert result.ensemble["acc"] == pytest.approx((probs.argmax(1) == test.labels).double().mean())
    assert result.prefixes[0] == pytest.approx(result.members[0])
    assert result.prefixes[-1] == result.ensemble
    assert result.images == len(test) and result.names == ["a", "b", "c"]
    assert result.weights == pytest.approx([1 / 3] * 3)
    d = result.to_dict()
    assert d["best_member"] == result.names[result.best_member]
    assert d["gain_over_best_member"] == pytest.approx(
        result.ensemble["acc"] - max(m["acc"] for m in result.members)
    )
    assert [r["k"] for r in d["first_k"]] == [1, 2, 3]
    json.dumps(d)  # plain numbers and strings


def test_members_keep_their_own_normalisation(digits, tmp_path):
    """Two saved models with other statistics: the ensemble on raw images is the mean of what
    each model's predict_proba gives."""
    _, test = digits
    paths = []
    for seed, (mean, std) in enumerate([(0.1, 0.2), (0.5, 0.3)]):
        save_model(
            tmp_path / f"m{seed}",
            _model(seed),
            classes=test.classes,
            in_shape=test.shape,
            normalization={"mean": [mean], "std": [std]},
        )
        paths.append(tmp_path / f"m{seed}")
    result = evaluate_ensemble(paths, test, device="cpu")
    loaded = [load_model(p) for p in paths]
    probs = (loaded[0].predict_proba(test.images) + loaded[1].predict_proba(test.images)) / 2
    acc = (probs.argmax(1) == test.labels).double().mean().item()
    assert result.ensemble["acc"] == pytest.approx(acc)
    nll = -probs[torch.arange(len(test)), test.labels].log().mean().item()
    assert result.ensemble["loss"] == pytest.approx(nll, rel=1e-5)
    assert result.names == [str(p) for p in paths]
    torch.testing.assert_close(Ensemble(loaded).predict_proba(test.images), probs)


def test_evaluate_ensemble_refuses_what_does_not_fit(digits, tmp_path):
    _, test = digits
    net = _model()
    save_model(tmp_path / "a", net, classes=test.classes, in_shape=test.shape)
    save_model(tmp_path / "b", net, classes=list("abcdefghij"), in_shape=test.shape)
    save_model(tmp_path / "c", net, classes=test.classes, in_shape=(1, 16, 4))
    with pytest.raises(ConfigError, match="at least one member"):
        evaluate_ensemble([], test)
    with pytest.raises(ConfigError, match="not a striate model"):
        evaluate_ensemble([tmp_path], test)
    with pytest.raises(ConfigError, match="different classes"):
        evaluate_ensemble([tmp_path / "a", tmp_path / "b"], test)
    with pytest.raises(ConfigError, match="different inputs"):
        evaluate_ensemble([tmp_path / "a", tmp_path / "c"], test)
    with pytest.raises(ConfigError, match="the data has classes"):
        evaluate_ensemble([tmp_path / "b"], test)
    with pytest.raises(ConfigError, match="normalisation"):
        evaluate_ensemble([net], test)
    five = models.create("mlp", num_classes=5, in_shape=(1, 8, 8), hidden=(16,))
    loader = BatchLoader(test, 64, shuffle=False, device="cpu")
    with pytest.raises(ConfigError, match="different numbers of classes"):
        evaluate_ensemble([net, five], loader, device="cpu")
    weighted = evaluate_ensemble([net, _model(1)], loader, weights=[0, 1], device="cpu")
    assert math.isnan(weighted.prefixes[0]["acc"])
    assert weighted.ensemble == pytest.approx(weighted.members[1])
    shuffled = BatchLoader(test, 64, shuffle=True, device="cpu")
    with pytest.raises(ConfigError, match="shuffle=False"):
        evaluate_ensemble([net, net], shuffled, device="cpu")


# --------------------------------------------------------------------------- snapshots


def _restarts_of_torch(total, t_0, t_mult):
    """The steps after which torch's CosineAnnealingWarmRestarts restarts (its lr jumps up)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=t_0, T_mult=t_mult)
    lrs = []
    for _ in range(total + 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return [t for t in range(1, total + 1) if lrs[t] > lrs[t - 1]]


@pytest.mark.parametrize(("t_0", "t_mult", "total"), [(16, 1, 48), (8, 2, 60), (5, 3, 70)])
def test_cycle_ends_are_where_torch_restarts(t_0, t_mult, total):
    schedule = make_schedule("sgdr", total, 1, T_0=t_0, T_mult=t_mult)
    trainer = SimpleNamespace(
        total_steps=total, steps_per_epoch=1, scheduler=SimpleNamespace(schedule=schedule)
    )
    ends = cycle_ends(trainer)
    assert ends == _restarts_of_torch(total, t_0, t_mult)
    # with a warmup the cycles start after it
    warm = make_schedule("sgdr", total + 4, 1, T_0=t_0, T_mult=t_mult, warmup=4)
    trainer.scheduler.schedule, trainer.total_steps = warm, total + 4
    assert cycle_ends(trainer) == [4 + e for e in ends]


class _Record(Callback):
    """The weights after each step."""

    def __init__(self):
        self.weights = {}

    def on_step_end(self, trainer, loss):
        self.weights[trainer.step] = {
            k: v.detach().clone() for k, v in trainer.model.state_dict().items()
        }


def _sgdr_run(digits, out, callbacks=(), resume=None):
    train, test = digits
    trainer = Trainer(
        epochs=6,
        lr=0.1,
        momentum=0.9,
        schedule="sgdr",
        schedule_options={"T_0": 2},  # 2 epochs of 8 steps: cycles end at steps 16, 32, 48
        out=out,
        callbacks=[*callbacks, Snapshots()],
        **QUIET,
    )
    loader = BatchLoader(train, 64, device="cpu", seed=1)
    val = BatchLoader(test, 128, shuffle=False, device="cpu")
    model = _model()
    trainer.fit(model, loader, val, resume=resume)
    return trainer


def test_snapshots_are_the_weights_at_the_end_of_each_sgdr_cycle(digits, tmp_path):
    record = _Record()
    trainer = _sgdr_run(digits, tmp_path, [record])
    paths = snapshot_paths(tmp_path)
    assert [p.name for p in paths] == ["snapshot-1", "snapshot-2", "snapshot-3"]
    assert snapshot_paths(tmp_path / "snapshots") == paths
    for k, (path, step) in enumerate(zip(paths, (16, 32, 48), strict=True), start=1):
        model = load_model(path)
        for name, value in model.net.state_dict().items():
            assert torch.equal(value, record.weights[step][name]), (path, name)
        info = json.loads((path / "model.json").read_text())
        m = info["metrics"]
        assert (m["snapshot"], m["step"], m["epoch"]) == (k, step, step / 8)
        assert m["lr"] == pytest.approx(trainer.steps_log["lr"][step - 1])
        assert m["lr"] < 0.01  # the bottom of the cosine cycle
        assert m["val_acc"] == pytest.approx(trainer.history[2 * k - 1]["val_acc"])
        assert info["classes"] == list(digits[0].classes) and info["in_shape"] == [1, 8, 8]
        assert info["normalization"] is None  # the loader normalised nothing
    assert len(load_snapshots(tmp_path)) == 3


@pytest.mark.parametrize("stop_at", [16, 21])  # at a cycle end, and inside the next cycle
def test_snapshots_survive_resume(digits, tmp_path, stop_at):
    _sgdr_run(digits, tmp_path / "full")
    cut = _sgdr_run(digits, tmp_path / "cut", [CtrlCAt(stop_at)])
    assert cut.interrupted and cut.step == stop_at
    assert [p.name for p in snapshot_paths(tmp_path / "cut")] == ["snapshot-1"]
    resumed = _sgdr_run(digits, tmp_path / "cut", resume=tmp_path / "cut")
    assert resumed.step == 48
    full, again = snapshot_paths(tmp_path / "full"), snapshot_paths(tmp_path / "cut")
    assert [p.name for p in again] == [p.name for p in full]
    for a, b in zip(full, again, strict=True):
        wa, wb = load_model(a).net.state_dict(), load_model(b).net.state_dict()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), a.name
        ma = json.loads((a / "model.json").read_text())["metrics"]
        mb = json.loads((b / "model.json").read_text())["metrics"]
        assert ma == pytest.approx(mb, rel=1e-6)


def test_snapshots_every_n_epochs_and_mid_epoch_cycle_ends(digits, tmp_path):
    train, _ = digits
    loader = BatchLoader(train, 64, device="cpu")  # 8 steps per epoch
    Trainer(epochs=5, lr=0.05, out=tmp_path / "a", callbacks=[Snapshots(every=2)], **QUIET).fit(
        _model(), loader
    )
    steps = [
        json.loads((p / "model.json").read_text())["metrics"]["step"]
        for p in snapshot_paths(tmp_path / "a")
    ]
    assert steps == [16, 32]
    # a cycle of 1.5 epochs ends inside an epoch: saved there, without validation metrics
    Trainer(
        epochs=3,
        lr=0.05,
        schedule="sgdr",
        schedule_options={"T_0": 1.5},
        out=tmp_path / "b",
        callbacks=[Snapshots()],
        **QUIET,
    ).fit(_model(), loader)
    metrics = [
        json.loads((p / "model.json").read_text())["metrics"]
        for p in snapshot_paths(tmp_path / "b")
    ]
    assert [m["step"] for m in metrics] == [12, 24]
    assert "train_acc" not in metrics[0] and "train_acc" in metrics[1]


def test_snapshots_say_what_is_wrong(digits, tmp_path):
    train, _ = digits
    loader = BatchLoader(train, 64, device="cpu")

    def fit(callback, out=tmp_path, **kwargs):
        kwargs = {"epochs": 2, "lr": 0.05, **kwargs}
        Trainer(out=out, callbacks=[callback], **kwargs, **QUIET).fit(_model(), loader)

    with pytest.raises(ConfigError, match="schedule 'sgdr'"):
        fit(Snapshots(), schedule="cosine")
    with pytest.raises(ConfigError, match="run folder"):
        fit(Snapshots(every=1), out=None)
    with pytest.raises(ConfigError, match="after the run's last"):
        fit(Snapshots(), schedule="sgdr", schedule_options={"T_0": 3})
    with pytest.raises(ConfigError, match="the run ends first"):
        fit(Snapshots(every=3))
    with pytest.raises(ConfigError, match="positive number of epochs"):
        Snapshots(every=0)
    with pytest.raises(ConfigError, match="no snapshots"):
        snapshot_paths(tmp_path / "nothing")


def test_train_config_validates_snapshots():
    assert TrainConfig(schedule="sgdr", snapshots=True).snapshots is True
    assert TrainConfig(snapshots=3).snapshots == 3
    with pytest.raises(ConfigError, match="schedule 'sgdr'"):
        TrainConfig(schedule="cosine", snapshots=True)
    for bad in (0, -2, "yes", 1.5):
        with pytest.raises(ConfigError, match="snapshots must be"):
            TrainConfig(snapshots=bad)


# --------------------------------------------------------------------------- Polyak averaging


def test_polyak_is_the_uniform_mean_of_the_iterates_from_start(digits):
    train, _ = digits
    record = _Record()
    polyak = EMA(None, start=5)
    Trainer(steps=12, lr=0.1, momentum=0.9, callbacks=[record, polyak], **QUIET).fit(
        _model(), BatchLoader(train, 64, device="cpu")
    )
    for name, value in polyak.module.state_dict().items():
        if name.endswith(("weight", "bias")):
            mean = sum(record.weights[t][name] for t in range(5, 13)) / 8
            torch.testing.assert_close(value, mean, msg=name)
    assert polyak.updates == 8
    with pytest.raises(ConfigError, match="start"):
        EMA(None, start=-1)
    with pytest.raises(ConfigError, match="None for the uniform"):
        EMA(1.5)
    assert math.isclose(EMA(0.9).decay, 0.9)  # the exponential average is unchanged


def test_unsaved_image_classifiers_are_members_too(digits, tmp_path):
    _, test = digits
    a = ImageClassifier(_model(0), test.classes, test.shape)
    b = ImageClassifier(_model(1), test.classes, test.shape)
    result = evaluate_ensemble([a, b], test, device="cpu")
    assert result.names == ["member 1", "member 2"]
    assert 0.0 <= result.ensemble["acc"] <= 1.0
