"""Per-sample losses in the Trainer and SGD-S training, against independent references: each
task's per-sample losses against torch's reductions, per-sample gradient norms against a
`torch.autograd.grad` loop (the post's method), recorded losses against a forward pass of the
unchanged model, the draws against the sampler, exact resume after Ctrl-C."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate import models
from striate.data import BatchLoader, ImageSet, load_dataset
from striate.engine import Callback, Classification, Trainer
from striate.engine import distributed as dist_helpers
from striate.engine.loss_sampling import (
    SGDS,
    ImportanceWeighted,
    LossRecorder,
    per_sample_grad_norms,
)
from striate.engine.sampling import LossTable, SGDSSampler
from striate.errors import ConfigError
from striate.generative.reconstruction import Reconstruction
from striate.segmentation.task import Segmentation
from striate.train.assembly import prepare
from striate.train.config import TrainConfig
from tests.callbacks import CtrlCAt


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return load_dataset("digits", "train")[:320]


def mlp(data: ImageSet, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.create("mlp", num_classes=10, in_shape=data.shape)


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# per-sample losses of the tasks


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_classification_losses_are_torch_per_sample_cross_entropy(smoothing):
    torch.manual_seed(0)
    model = nn.Linear(6, 4)
    x, y = torch.randn(9, 6), torch.randint(0, 4, (9,))
    step = Classification(label_smoothing=smoothing).training_step(model, (x, y))
    expected = F.cross_entropy(model(x), y, reduction="none", label_smoothing=smoothing)
    torch.testing.assert_close(step.losses, expected)
    torch.testing.assert_close(step.loss, expected.mean())
    soft = torch.softmax(torch.randn(9, 4), 1)
    step = Classification().training_step(model, (x, soft))
    torch.testing.assert_close(step.losses, F.cross_entropy(model(x), soft, reduction="none"))


def test_hinge_losses_sum_the_margins_per_sample():
    torch.manual_seed(0)
    s, y = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    step = Classification(loss="hinge").training_step(nn.Identity(), (s, y))
    expected = torch.stack(
        [
            sum((s[i, j] - s[i, y[i]] + 1).clamp(min=0) for j in range(3) if j != y[i])
            for i in range(5)
        ]
    )
    torch.testing.assert_close(step.losses, expected)


def test_reconstruction_losses_are_per_image_means():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 5, 5)
    model = nn.Conv2d(1, 1, 3, padding=1)
    for loss in ("bce", "mse"):
        step = Reconstruction(loss).training_step(model, (x,))
        out = model(x)
        if loss == "bce":
            per_pixel = F.binary_cross_entropy_with_logits(out, x, reduction="none")
        else:
            per_pixel = F.mse_loss(out.sigmoid(), x, reduction="none")
        torch.testing.assert_close(step.losses, per_pixel.mean((1, 2, 3)))
        torch.testing.assert_close(step.loss, step.losses.mean())


def test_segmentation_keeps_torch_loss_and_gives_each_image_its_own():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6, 6)
    y = torch.randint(0, 4, (3, 6, 6))
    y[0, :2] = 255
    y[2] = 255  # an image with every pixel ignored
    w = [1.0, 2.0, 0.5, 1.5]
    task = Segmentation(class_weights=w)
    step = task.training_step(nn.Identity(), (logits, y))
    wt = torch.tensor(w)
    torch.testing.assert_close(step.loss, F.cross_entropy(logits, y, weight=wt, ignore_index=255))
    for i in range(2):
        own = F.cross_entropy(logits[i : i + 1], y[i : i + 1], weight=wt, ignore_index=255)
        torch.testing.assert_close(step.losses[i], own)
    assert step.losses[2].item() == 0.0


def test_a_task_without_per_sample_losses_says_so():
    class Mean(Classification):
        name = "mean-only"

        def training_step(self, model, batch):
            step = super().training_step(model, batch)
            return step._replace(losses=None)

    with pytest.raises(ConfigError, match="mean-only task does not report per-sample losses"):
        Mean().per_sample_loss(nn.Linear(3, 2), (torch.randn(2, 3), torch.tensor([0, 1])))


# per-sample gradient norms


def autograd_norms(task, model, x, y):
    """The post's `gradient_norm`: one autograd.grad per sample's loss."""
    norms = []
    for i in range(len(x)):
        loss = task.training_step(model, (x[i : i + 1], y[i : i + 1])).loss
        grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
        norms.append(torch.sqrt(sum(g.pow(2).sum() for g in grads)))
    return torch.stack(norms)


def test_grad_norms_match_an_autograd_loop_per_sample():
    torch.manual_seed(0)
    model = models.create("mnist_cnn", num_classes=10, in_shape=(1, 28, 28))
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    task = Classification()
    got = per_sample_grad_norms(task, model, (x, y), chunk_size=4)
    torch.testing.assert_close(got, autograd_norms(task, model, x, y), rtol=1e-4, atol=1e-6)


def test_grad_norms_refuse_batch_norm_in_training_mode_and_use_frozen_parts():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    task = Classification()
    with pytest.raises(ConfigError, match="batch norm in training mode"):
        per_sample_grad_norms(task, model, (x, y))
    model.eval()
    model[0].weight.requires_grad_(False)  # frozen: not part of the norm
    got = per_sample_grad_norms(task, model, (x, y))
    torch.testing.assert_close(got, autograd_norms(task, model, x, y), rtol=1e-4, atol=1e-6)


# the loader's sampler and batch_index


class ListSampler:
    def __init__(self, order):
        self.order, self.epochs = list(order), []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __iter__(self):
        return iter(self.order)

    def __len__(self):
        return len(self.order)


def test_loader_draws_from_the_sampler_and_says_which_samples(digits):
    order = [5, 5, 0, 319, 17, 3, 3]
    loader = BatchLoader(digits, 3, sampler=ListSampler(order), device="cpu")
    assert len(loader) == 3
    seen = []
    for x, y in loader:
        index = loader.batch_index
        assert torch.equal(y, digits.labels[index])
        assert torch.equal(x, digits.images[index].float() / 255)
        seen += index.tolist()
    assert seen == order


def test_loader_refuses_bad_samplers(digits):
    with pytest.raises(ConfigError, match="set_epoch"):
        BatchLoader(digits, 4, sampler=[1, 2, 3])
    with pytest.raises(ConfigError, match="leave shuffle=True"):
        BatchLoader(digits, 4, sampler=ListSampler([1]), shuffle=False)
    loader = BatchLoader(digits, 4, sampler=ListSampler([1, 320]), device="cpu")
    with pytest.raises(ConfigError, match="index 320 for a dataset of 320"):
        next(iter(loader))
    with pytest.raises(ConfigError, match="no index"):
        next(iter(BatchLoader(digits, 4, sampler=ListSampler([]), device="cpu")))


# recording during training


def test_recorded_losses_and_grad_norms_are_those_of_the_model_seen(digits):
    """With a vanishing lr the model does not change: every recorded loss must be the loss of
    the (fixed) model on that sample, whatever the shuffled order."""
    model = mlp(digits)
    recorder = LossRecorder(LossTable(len(digits)), history=True, grad_norms=True)
    trainer = Trainer(device="cpu", epochs=2, lr=1e-30, progress=False, callbacks=[recorder])
    trainer.fit(model, BatchLoader(digits, 64, seed=3, device="cpu"))
    x, y = digits.images.float() / 255, digits.labels
    expected = F.cross_entropy(model(x), y, reduction="none").double()
    assert recorder.history.shape == (2, len(digits))
    torch.testing.assert_close(recorder.history[0], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(recorder.history[1], expected, rtol=1e-5, atol=1e-6)
    assert bool(recorder.grad_norms.seen.all())
    some = torch.tensor([0, 7, 100, 319])
    reference = autograd_norms(Classification(), model, x[some], y[some]).double()
    torch.testing.assert_close(recorder.grad_norms.losses[some], reference, rtol=1e-4, atol=1e-6)


def test_recorder_needs_losses_a_matching_table_and_one_process(digits, monkeypatch):
    class NoLosses(Classification):
        def training_step(self, model, batch):
            return super().training_step(model, batch)._replace(losses=None)

    loader = BatchLoader(digits, 64, device="cpu")
    trainer = Trainer(
        device="cpu",
        epochs=1,
        task=NoLosses(),
        progress=False,
        callbacks=[LossRecorder(LossTable(320))],
    )
    with pytest.raises(ConfigError, match="does not report per-sample losses"):
        trainer.fit(mlp(digits), loader)
    trainer = Trainer(
        device="cpu", epochs=1, progress=False, callbacks=[LossRecorder(LossTable(10))]
    )
    with pytest.raises(ConfigError, match="table has 10 samples, the training set 320"):
        trainer.fit(mlp(digits), loader)
    monkeypatch.setattr(dist_helpers, "is_distributed", lambda: True)
    recorder = LossRecorder(LossTable(320))
    with pytest.raises(ConfigError, match="one process"):
        recorder.on_fit_start(SimpleNamespace(train_loader=loader, lbfgs=False))


# SGD-S in the Trainer


class Draws(Callback):
    """Keeps the indices of every batch, per epoch."""

    def __init__(self):
        self.per_epoch: list[list[int]] = [[]]

    def on_fit_start(self, trainer): ...

    def on_step_end(self, trainer, loss):
        self.per_epoch[-1] += trainer.train_loader.batch_index.tolist()

    def on_epoch_end(self, trainer, metrics):
        self.per_epoch.append([])


def test_sgds_trains_on_the_sampler_draws_and_drops_the_easiest(digits):
    sampler = SGDSSampler(LossTable(len(digits)), num_samples=len(digits), seed=4)
    draws = Draws()
    trainer = Trainer(
        device="cpu", epochs=3, lr=0.05, progress=False, callbacks=[SGDS(sampler), draws]
    )
    trainer.fit(mlp(digits), BatchLoader(digits, 64, sampler=sampler, device="cpu"))
    first, second, third = draws.per_epoch[:3]
    assert sorted(first) == list(range(len(digits)))  # the transient epoch: a permutation
    assert len(second) == len(third) == len(digits)  # with replacement
    assert len(set(second)) < len(digits)
    # after the two steady-state epochs: 320 → 291 → 264 active (10 % out, 1 % back)
    assert int(sampler.active.sum()) == 264
    assert sampler.epoch == 3
    # the third epoch drew from the active set of its start: never a sample dropped after two
    dropped_at_two = set(range(len(digits))) - set(third)
    assert len(dropped_at_two) >= 320 - 291


def test_sgds_checks_its_loader_and_the_weighting(digits):
    sampler = SGDSSampler(LossTable(len(digits)))
    plain = BatchLoader(digits, 64, device="cpu")
    with pytest.raises(ConfigError, match="does not draw from this sampler"):
        Trainer(device="cpu", epochs=1, progress=False, callbacks=[SGDS(sampler)]).fit(
            mlp(digits), plain
        )
    unbiased = SGDSSampler(LossTable(len(digits)), reweight=True)
    loader = BatchLoader(digits, 64, sampler=unbiased, device="cpu")
    with pytest.raises(ConfigError, match="ImportanceWeighted"):
        Trainer(device="cpu", epochs=1, progress=False, callbacks=[SGDS(unbiased)]).fit(
            mlp(digits), loader
        )
    with pytest.raises(ConfigError, match="no sampler with weights"):
        Trainer(
            device="cpu", epochs=1, progress=False, task=ImportanceWeighted(Classification())
        ).fit(mlp(digits), plain)


def test_importance_weighted_loss_is_the_weighted_mean_of_the_task_losses(digits):
    table = LossTable(len(digits))
    table.update(torch.arange(len(digits)), torch.rand(len(digits), dtype=torch.float64) + 0.1)
    sampler = SGDSSampler(table, transient_epochs=0, reweight=True)
    loader = BatchLoader(digits, 16, sampler=sampler, device="cpu")
    model = mlp(digits)
    task = ImportanceWeighted(Classification())
    task.setup(model, SimpleNamespace(train_loader=loader))
    batch = next(iter(loader))
    step = task.training_step(model, batch)
    plain = Classification().training_step(model, batch)
    w = 1.0 / (len(digits) * sampler.probabilities()[loader.batch_index])
    torch.testing.assert_close(step.loss, (w.float() * plain.losses).mean())
    torch.testing.assert_close(step.stats, plain.stats)  # reported: the unweighted loss
    model.eval()  # evaluation is the task's own
    torch.testing.assert_close(task.training_step(model, batch).loss, plain.loss)
    assert task.metrics == ("loss", "acc", "top5") and task.monitor == "val_acc"
    assert task.topk == (1, 5)  # the wrapped task's own attributes


def test_sgds_resumes_exactly_after_ctrl_c_in_a_steady_epoch(tmp_path, digits):
    def run(out, callbacks=(), resume=None):
        sampler = SGDSSampler(LossTable(len(digits)), num_samples=len(digits), reweight=True)
        model = mlp(digits)
        trainer = Trainer(
            device="cpu",
            epochs=3,
            lr=0.05,
            out=out,
            progress=False,
            tensorboard=False,
            task=ImportanceWeighted(Classification()),
            callbacks=[SGDS(sampler, history=True), *callbacks],
        )
        trainer.fit(model, BatchLoader(digits, 64, sampler=sampler, device="cpu"), resume=resume)
        return model, sampler, trainer

    whole, whole_sampler, _ = run(tmp_path / "whole")
    run(tmp_path / "cut", callbacks=[CtrlCAt(8)])  # epoch 2 of 3 (5 batches each)
    resumed, sampler, trainer = run(tmp_path / "cut", resume=tmp_path / "cut")
    for a, b in zip(weights(whole), weights(resumed), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(sampler.active, whole_sampler.active)
    assert torch.equal(sampler.table.losses, whole_sampler.table.losses)
    assert trainer.callbacks[-1].history.shape == (3, len(digits))


def test_train_config_sampling_builds_the_sampler_and_refuses_bad_values(digits):
    with pytest.raises(ConfigError, match="sampling must be one of uniform, sgds"):
        TrainConfig(sampling="loss")
    with pytest.raises(ConfigError, match="sgds_drop"):
        TrainConfig(sampling="sgds", sgds_drop=1.0)
    with pytest.raises(ConfigError, match="sgds_transient"):
        TrainConfig(sampling="sgds", sgds_transient=-1)
    config = TrainConfig(
        data="digits", model="mlp", epochs=2, sampling="sgds-unbiased", sgds_transient=0
    )
    prep = prepare(config, progress=False, device="cpu")
    sampler = prep.train.sampler
    assert isinstance(sampler, SGDSSampler) and sampler.reweight and sampler.transient_epochs == 0
    assert isinstance(prep.trainer.task, ImportanceWeighted)
    assert any(isinstance(cb, SGDS) and cb.sampler is sampler for cb in prep.trainer.callbacks)
    prep.trainer.fit(prep.model, prep.train, prep.val)
    assert int(sampler.active.sum()) < len(prep.data.train)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sgds_with_grad_norms_trains_on_cuda(digits):
    sampler = SGDSSampler(LossTable(len(digits)), num_samples=len(digits), reweight=True)
    recorder = LossRecorder(LossTable(len(digits)), grad_norms=True)
    model = mlp(digits)
    trainer = Trainer(
        device="cuda",
        epochs=3,
        lr=0.05,
        progress=False,
        task=ImportanceWeighted(Classification()),
        callbacks=[SGDS(sampler), recorder],
    )
    trainer.fit(model, BatchLoader(digits, 64, sampler=sampler, device="cuda"))
    assert int(sampler.active.sum()) == 264
    assert bool(recorder.grad_norms.seen.any()) and recorder.table.losses.device.type == "cpu"
    x, y = digits.images[:5].float().cuda() / 255, digits.labels[:5].cuda()
    got = per_sample_grad_norms(Classification(), model, (x, y))
    torch.testing.assert_close(
        got, autograd_norms(Classification(), model, x, y), rtol=1e-4, atol=1e-5
    )
