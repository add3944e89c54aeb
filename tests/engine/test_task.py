"""The Task protocol: a task other than classification, one that owns its optimisation, and
GoogLeNet's auxiliary heads, all through the same `fit`, checked against independent
computations (the loss written out, torch's own optimiser, googlenet_loss)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate.engine import TASKS, Classification, Step, Task, Trainer, optimizer_step
from striate.engine.task import stack_stats
from striate.errors import ConfigError
from striate.models.googlenet import GoogLeNet, googlenet_loss
from tests.callbacks import CtrlCAt

QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")


def _regression_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * torch.randn(n, generator=g)
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, n, 32)]


class Regression(Task):
    """Mean squared error of a scalar output: the smallest task there is."""

    name = "regression"
    running_stats = ("loss", "n")
    metrics = ("loss",)

    def training_step(self, model, batch):
        x, y = batch
        loss = F.mse_loss(model(x).squeeze(1), y)
        return Step(loss, stack_stats(loss.detach() * len(x), len(x)))


def test_a_new_task_trains_through_the_same_loop_as_plain_torch():
    """Trainer(task=Regression()) takes exactly the steps of a hand-written SGD loop."""
    data = _regression_data()
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    reference = copy.deepcopy(model)
    trainer = Trainer(epochs=3, task=Regression(), opt="sgd", lr=0.05, momentum=0.0, **QUIET)
    history = trainer.fit(model, data, data)
    opt = torch.optim.SGD(reference.parameters(), lr=0.05)
    for _ in range(3):
        for x, y in data:
            opt.zero_grad()
            F.mse_loss(reference(x).squeeze(1), y).backward()
            opt.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert set(history[-1]) >= {"train_loss", "val_loss"} and "train_acc" not in history[-1]
    x = torch.cat([x for x, _ in data])
    y = torch.cat([y for _, y in data])
    with torch.no_grad():
        expected = F.mse_loss(model(x).squeeze(1), y).item()
    assert trainer.evaluate(model, data)["loss"] == pytest.approx(expected, rel=1e-6)


class TwoPlayers(Task):
    """A task that owns its optimisation, as a GAN does: the Trainer's optimiser trains
    `model.first`, the task's own trains `model.second`, on alternate steps."""

    name = "two_players"
    running_stats = ("loss", "n")

    def setup(self, model, trainer):
        self.second = torch.optim.SGD(model.second.parameters(), lr=0.02, momentum=0.9)
        self.turn = 0

    def training_step(self, model, batch):
        x, y = batch
        loss = F.mse_loss(model(x).squeeze(1), y)
        return Step(loss, stack_stats(loss.detach() * len(x), len(x)))

    def train_step(self, trainer, batch):
        self.turn += 1
        if self.turn % 2:
            return trainer.closure_step([batch])

        def closure():
            self.second.zero_grad(set_to_none=True)
            loss = self.training_step(trainer.model, batch).loss
            loss.backward()
            return loss

        return optimizer_step(self.second, closure)

    def state_dict(self):
        return {"second": self.second.state_dict(), "turn": self.turn}

    def load_state_dict(self, state):
        self.second.load_state_dict(state["second"])
        self.turn = state["turn"]


class _Players(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(5, 8)
        self.second = nn.Linear(8, 1)

    def forward(self, x):
        return self.second(torch.tanh(self.first(x)))


def test_a_task_with_its_own_optimiser_alternates_and_resumes_exactly(tmp_path):
    data = _regression_data(128)

    def run(out, callbacks=(), resume=None):
        torch.manual_seed(0)
        model = _Players()
        groups = [{"params": list(model.first.parameters())}]
        trainer = Trainer(
            epochs=4,
            task=TwoPlayers(),
            opt="sgd",
            lr=0.05,
            param_groups=groups,
            out=out,
            callbacks=callbacks,
            **QUIET,
        )
        start = {k: v.clone() for k, v in model.state_dict().items()}
        trainer.fit(model, data, resume=resume)
        return trainer, model, start

    full, model, start = run(tmp_path / "full")
    for part in ("first.weight", "second.weight"):  # both players moved
        assert not torch.equal(model.state_dict()[part], start[part])
    assert full.task.turn == 16 and full.history[-1]["train_loss"] < full.history[0]["train_loss"]
    # at an epoch's end: a plain list of batches has no position to resume inside an epoch
    cut, _, _ = run(tmp_path / "cut", callbacks=[CtrlCAt(8)])
    assert cut.interrupted and cut.task.turn == 8
    resumed, resumed_model, _ = run(tmp_path / "cut", resume=tmp_path / "cut")
    assert resumed.task.turn == 16
    for k, v in model.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k


def test_googlenet_trains_with_its_auxiliary_losses_through_fit():
    """Training adds 0.3 × each auxiliary head's loss (Szegedy et al. 2014 §5); evaluation
    scores the main head alone."""
    torch.manual_seed(0)
    model = GoogLeNet((3, 32, 32), num_classes=4, aux_logits=True, stem="cifar")
    reference = copy.deepcopy(model)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    trainer = Trainer(epochs=1, opt="sgd", lr=1e-3, seed=5, **QUIET)
    trainer.fit(model, [(x, y)])
    torch.manual_seed(5)  # the Trainer seeds the dropout draws with its seed
    reference.train()
    outputs = reference.forward_with_aux(x)
    expected = googlenet_loss(outputs, y)
    assert trainer.steps_log["loss"][0] == pytest.approx(expected.item(), rel=1e-5)
    assert expected.item() > F.cross_entropy(outputs.logits, y).item() * 1.1  # heads count
    with torch.no_grad():
        plain = F.cross_entropy(model.eval()(x), y).item()
    assert trainer.evaluate(model, [(x, y)])["loss"] == pytest.approx(plain, rel=1e-5)


def test_tasks_are_registered_and_checked():
    assert "classification" in TASKS.names()
    assert isinstance(TASKS.get("classification")(), Classification)
    with pytest.raises(ConfigError, match="did you mean 'classification'"):
        TASKS.get("clasification")
    with pytest.raises(ConfigError, match="task must be a striate.engine.Task"):
        Trainer(epochs=1, task="classification", **QUIET)
    with pytest.raises(ConfigError, match="aux_weight"):
        Classification(aux_weight=-1)
