"""The Task protocol: what is specific to a problem, so that the Trainer's loop is not.

A task turns a batch into a loss (with its batch size and the sums behind its running metrics),
scores an evaluation, and names its metrics. The Trainer owns everything else: device, precision,
the optimiser step, schedules, distributed reduction, checkpoints, resume, progress.

    class Regression(Task):
        running_stats = ("loss", "n")
        def training_step(self, model, batch):
            x, y = batch
            loss = F.mse_loss(model(x), y)
            return Step(loss, stack_stats(loss.detach() * len(x), len(x)))

A task that needs its own optimisation (a GAN's alternating updates) overrides `train_step`,
which by default is the Trainer's one closure step; its extra state goes in `state_dict`.
Tasks are registered by name in `TASKS` (`Classification`, `Reconstruction`, …).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from striate.engine import distributed
from striate.errors import ConfigError
from striate.registry import Registry

if TYPE_CHECKING:
    from striate.engine.trainer import Trainer

Batch = tuple[torch.Tensor, ...]


class Step(NamedTuple):
    """A batch's training loss (the mean the backward pass sees) and the sums behind the running
    metrics, in the order of the task's `running_stats` (detached, on the device).

    `losses`, when the task can tell them, are the per-sample losses (N,), not detached, whose
    mean is `loss` for a task whose loss is a mean over samples: what loss-based sampling
    records and reweights (`striate.engine.loss_sampling`)."""

    loss: torch.Tensor
    stats: torch.Tensor
    losses: torch.Tensor | None = None


def stack_stats(*values: torch.Tensor | float) -> torch.Tensor:
    """A 1-D float32 tensor of sums, on the device of the first tensor among `values`."""
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), None)
    return torch.stack(
        [torch.as_tensor(v, dtype=torch.float32, device=device).reshape(()) for v in values]
    )


class Evaluation:
    """An evaluation in progress: `update` per batch, `reduce` across processes, `compute`.

    The default sums the task's `evaluation_stats` and turns them into metrics with
    `summarize`; tasks with richer scores (top-k, per class, mAP) bring their own."""

    def __init__(self, task: Task, **options: Any) -> None:
        self.task, self.options = task, options
        self.sums: torch.Tensor | None = None

    @torch.no_grad()
    def update(self, model: nn.Module, batch: Batch) -> None:
        stats = self.task.evaluation_stats(model, batch, **self.options)
        self.sums = stats.double() if self.sums is None else self.sums + stats.double()

    def reduce(self) -> None:
        if self.sums is not None and distributed.is_distributed():
            distributed.all_reduce_sum(self.sums)

    def compute(self) -> dict[str, float]:
        if self.sums is None:
            return {}
        return self.task.summarize(self.sums)


class Task:
    """The protocol, with defaults for a task whose running metrics are the mean loss.

    `running_stats` names the sums `training_step` returns (the last is the sample count);
    `monitor` is the metric `Checkpoint` keeps the best weights of; `metrics` names what
    `evaluate` reports (the progress bar and report show these, nothing else)."""

    name = "task"
    running_stats: tuple[str, ...] = ("loss", "n")
    metrics: tuple[str, ...] = ("loss",)
    monitor = "val_loss"

    def size(self, batch: Batch) -> int:
        """Samples in a batch (weights a process's share under DDP, a batch under L-BFGS)."""
        return len(batch[0])

    def setup(self, model: nn.Module, trainer: Trainer) -> None:
        """Get ready to train `model`: raise a ConfigError when it cannot do this task, make the
        task's own optimisers. Called when training starts, before a checkpoint is restored."""

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        raise NotImplementedError

    def per_sample_loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Each sample's loss (N,), through `training_step` (so, in training mode, with the
        same loss as training); a task whose Step has no `losses` cannot tell them."""
        losses = self.training_step(model, batch).losses
        if losses is None:
            raise ConfigError(
                f"the {self.name} task does not report per-sample losses (its training_step "
                f"returns Step(loss, stats) without losses), so its samples cannot be weighed "
                f"by loss; use a task that does (classification, reconstruction, segmentation, "
                f"vae, pixelcnn)"
            )
        return losses

    def train_step(self, trainer: Trainer, batch: Batch) -> float:
        """One optimisation step on `batch`; the Trainer's closure step unless the task owns its
        optimisation."""
        return trainer.closure_step([batch])

    def summarize(self, sums: torch.Tensor) -> dict[str, float]:
        """Metrics from summed `running_stats` (training) or `evaluation_stats` (evaluation)."""
        values = sums.tolist()
        n = max(values[-1], 1)
        return {name: v / n for name, v in zip(self.running_stats[:-1], values, strict=False)}

    def evaluation_stats(self, model: nn.Module, batch: Batch, **options: Any) -> torch.Tensor:
        """The sums of one evaluation batch (by default those of `training_step`, in fp32)."""
        return self.training_step(model, batch).stats

    def evaluation(self, **options: Any) -> Evaluation:
        return Evaluation(self, **options)

    def evaluation_label(self, **options: Any) -> str:
        """What the progress bar calls an evaluation with these options."""
        return "evaluating"

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        """What the model predicts for a batch of inputs (probabilities, an image, …)."""
        return model(x).float()

    def state_dict(self) -> dict[str, Any]:
        """State the task keeps between steps (its own optimisers), saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


TASKS: Registry[type[Task]] = Registry("task")
