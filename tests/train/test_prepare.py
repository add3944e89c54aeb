"""The one run assembly (`prepare`) and the callbacks built from a config: every entry point
(train, lr-find, search trials, doctor, benchmarks) gets the same run, and each feature of the
config is one callback."""

import numpy as np
import pytest

from striate.engine import EMA, EarlyStopping, GradientClipping, GradientNormLogger, Lookahead
from striate.errors import ConfigError
from striate.train.assembly import config_callbacks, make_task, prepare
from striate.train.config import TrainConfig
from striate.train.recipes import PatchWhitening, recipe_config
from striate.train.run import lr_find_run
from striate.train.snapshots import Snapshots
from tests.train.test_recipes import cifar_like


@pytest.fixture(scope="module")
def cifar_npz(tmp_path_factory):
    """A CIFAR-shaped dataset file (train and test parts) that load_dataset reads."""
    path = tmp_path_factory.mktemp("data") / "cifar-like.npz"
    train, test = cifar_like(128), cifar_like(64, seed=1)
    np.savez(
        path,
        x_train=train.images.numpy(),
        y_train=train.labels.numpy(),
        x_test=test.images.numpy(),
        y_test=test.labels.numpy(),
    )
    return str(path)


def _fast(data, **overrides):
    return recipe_config(
        "cifar10-fast",
        data=data,
        epochs=4,  # 32 steps: enough for the recipe's three-phase schedule
        batch_size=16,
        val_size=0.0,
        model_options={"widths": [4, 4, 4]},
        device="cpu",
        precision="fp32",
        **overrides,
    )


def test_lr_find_trains_the_model_as_designed_with_its_callbacks(cifar_npz, monkeypatch):
    """cifar_fast's whitening is set from the training images when its training starts: the LR
    finder's sweep must start it too (before `prepare`, lr_find_run left it out)."""
    started = []
    original = PatchWhitening.on_fit_start
    monkeypatch.setattr(
        PatchWhitening, "on_fit_start", lambda self, t: (started.append(t), original(self, t))
    )
    lr_find_run(_fast(cifar_npz), num_steps=5, progress=False)
    assert len(started) == 1


def test_prepare_assembles_what_train_run_trains(cifar_npz):
    run = prepare(_fast(cifar_npz), progress=False)
    kinds = [type(cb) for cb in run.trainer.callbacks]
    assert Lookahead in kinds and PatchWhitening in kinds  # the recipe's and the model's
    assert kinds.index(Lookahead) < kinds.index(PatchWhitening)
    assert run.train.normalize is run.data.normalizer and run.val is None
    assert run.trainer.task.tta == "flip,translate" and run.trainer.task.label_smoothing == 0.2
    x, _ = next(iter(run.train))
    assert x.shape == (16, 3, 32, 32)


def test_each_feature_of_the_config_is_one_callback():
    base = TrainConfig()
    assert config_callbacks(base, make_task(base), None) == []
    config = TrainConfig(
        log_grad_norm=True,
        clip_grad=1.0,
        ema=0.99,
        lookahead=0.9,
        early_stopping=3,
        snapshots=2,
        seed=0,
    )
    made = config_callbacks(config, make_task(config), out="runs/x")
    assert [type(cb) for cb in made] == [
        GradientNormLogger,  # before clipping, so it logs the norm clipping sees
        GradientClipping,
        EMA,
        Lookahead,
        EarlyStopping,
        Snapshots,
    ]
    _, clip, ema, look, stop, snaps = made
    assert clip.max_norm == 1.0 and ema.decay == 0.99 and look.decay == 0.9
    assert stop.monitor == "val_acc" and stop.patience == 3 and snaps.every == 2
    # snapshots are files: without a run folder there is nothing to take them in
    assert Snapshots not in [type(cb) for cb in config_callbacks(config, make_task(config), None)]


def test_threads_sets_torchs_cpu_threads_and_refuses_nonsense():
    import torch

    before = torch.get_num_threads()
    try:
        prepare(TrainConfig(data="digits", model="mlp", epochs=1, threads=1), progress=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        TrainConfig(threads=0)


def test_a_cpu_run_that_sets_no_threads_leaves_the_busy_cores_out(cifar_npz, monkeypatch):
    """With another process busy on one of two cores: one thread and a warning; with
    --threads 2: two, as asked, and no warning."""
    import warnings

    import torch

    import striate.threads

    before = torch.get_num_threads()
    monkeypatch.setattr(striate.threads, "_lowered", None)
    monkeypatch.setattr(striate.threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(striate.threads, "others_running", lambda: 1)
    try:
        torch.set_num_threads(2)
        with pytest.warns(UserWarning, match="training with 1 torch thread, not 2"):
            prepare(_fast(cifar_npz), progress=False)
        assert torch.get_num_threads() == 1
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            prepare(_fast(cifar_npz, threads=2), progress=False)
        assert torch.get_num_threads() == 2
        assert not [w for w in seen if "torch thread" in str(w.message)]
    finally:
        torch.set_num_threads(before)
