"""Per-sample losses in the Trainer, for any task that reports them, and SGD-S training.

    table = LossTable(len(train_set))
    recorder = LossRecorder(table, history=True, grad_norms=True)
    Trainer(epochs=5, callbacks=[recorder]).fit(model, BatchLoader(train_set, 64))
    recorder.history          # (epochs, N): each epoch's losses, in dataset order
    recorder.grad_norms       # a LossTable of per-sample gradient norms (torch.func)

    sampler = SGDSSampler(LossTable(len(train_set)), num_samples=len(train_set))
    loader = BatchLoader(train_set, 64, sampler=sampler)
    Trainer(epochs=10, callbacks=[SGDS(sampler)]).fit(model, loader)
    # unbiased: task=ImportanceWeighted(Classification()) with SGDSSampler(..., reweight=True)

A task reports per-sample losses in `Step.losses` (classification, reconstruction, segmentation,
the VAE and PixelCNN do); the Trainer keeps them as `trainer.last_losses`, and the loader says
which samples they belong to (`batch_index`). Nothing here changes the Trainer's loop: recording
is a callback, the sampler is the loader's, and reweighting is a task wrapping a task.

Per-sample gradient norms are those of each sample's own loss with respect to the parameters,
taken before the step as the post does (``torch.autograd.grad`` per loss), computed here in one
vectorised pass with ``torch.func.vmap(grad(...))``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from striate.checks import boolean, positive_int
from striate.engine import distributed
from striate.engine.callbacks import Callback
from striate.engine.sampling import LossTable, SGDSSampler
from striate.engine.task import Batch, Evaluation, Step, Task
from striate.errors import ConfigError

__all__ = ["SGDS", "ImportanceWeighted", "LossRecorder", "per_sample_grad_norms"]


class _Bound(nn.Module):
    """`model` called with the parameters and buffers given (for torch.func)."""

    def __init__(self, model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.model, self.tensors = model, tensors

    def forward(self, *args: Any) -> Any:
        return functional_call(self.model, self.tensors, args)


def per_sample_grad_norms(
    task: Task, model: nn.Module, batch: Batch, *, chunk_size: int | None = None
) -> torch.Tensor:
    """The L2 norm, over all trainable parameters, of the gradient of each sample's own loss
    (the task's `training_step` on that sample alone), as a float32 tensor (N,).

    Dropout draws its own mask per sample. Batch norm in training mode normalises a sample by
    the batch, so a sample has no gradient of its own: put the model in eval mode, or use one
    without batch norm. `chunk_size` bounds how many samples are vectorised at once (memory)."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules()):
        raise ConfigError(
            "per-sample gradient norms: the model has batch norm in training mode, which mixes "
            "the samples of a batch; call model.eval() first or use a model without batch norm"
        )
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise ConfigError("per-sample gradient norms: the model has no trainable parameter")
    fixed = {k: v.detach() for k, v in model.named_buffers()}
    fixed.update({k: v.detach() for k, v in model.named_parameters() if not v.requires_grad})

    def loss_of_one(p: dict[str, torch.Tensor], *sample: torch.Tensor) -> torch.Tensor:
        one = tuple(t.unsqueeze(0) for t in sample)
        return task.training_step(_Bound(model, {**fixed, **p}), one).loss

    dims = (None, *([0] * len(batch)))
    grads = vmap(grad(loss_of_one), in_dims=dims, randomness="different", chunk_size=chunk_size)(
        params, *batch
    )
    squares = sum(g.detach().float().pow(2).flatten(1).sum(1) for g in grads.values())
    return squares.sqrt()


class LossRecorder(Callback):
    """Records every sample's training loss as the Trainer sees it, into `table`.

    - `history`: after each epoch, the table's losses are kept as a row of `history`
      ((epochs, N), dataset order; with uniform sampling each row is that epoch's losses).
    - `grad_norms`: also each sample's gradient norm at the same step (before the update), into
      the LossTable `grad_norms` (one extra vectorised backward per step: slower).

    The training loader must say which samples a batch holds (`batch_index`, as BatchLoader and
    StreamingLoader do) and the task must report per-sample losses (`Step.losses`)."""

    def __init__(
        self,
        table: LossTable,
        *,
        history: bool = False,
        grad_norms: bool = False,
        chunk_size: int | None = None,
    ) -> None:
        if not isinstance(table, LossTable):
            raise ConfigError(
                f"LossRecorder: table must be a LossTable, got {type(table).__name__}"
            )
        self.table = table
        self.keep_history = boolean("LossRecorder", "history", history)
        self.grad_norms = LossTable(len(table)) if grad_norms else None
        self.chunk_size = positive_int("LossRecorder", "chunk_size", chunk_size, allow_none=True)
        self._rows: list[torch.Tensor] = []
        self._norms: torch.Tensor | None = None  # of the step in progress

    @property
    def history(self) -> torch.Tensor:
        """(epochs recorded, N) float64: the losses at the end of each epoch."""
        if not self._rows:
            return torch.empty(0, len(self.table), dtype=torch.float64)
        return torch.stack(self._rows)

    def on_fit_start(self, trainer: Any) -> None:
        loader = trainer.train_loader
        if not hasattr(loader, "batch_index"):
            raise ConfigError(
                f"{type(self).__name__}: the training loader ({type(loader).__name__}) does not "
                f"say which samples each batch holds; use a BatchLoader or StreamingLoader"
            )
        if getattr(loader, "n", len(self.table)) != len(self.table):
            raise ConfigError(
                f"{type(self).__name__}: the loss table has {len(self.table)} samples, the "
                f"training set {loader.n}; make the table with LossTable(len(training set))"
            )
        if trainer.lbfgs:
            raise ConfigError(
                f"{type(self).__name__}: L-BFGS steps on the whole training set at once; "
                f"per-sample losses are recorded with minibatch optimisers"
            )
        if distributed.is_distributed():
            raise ConfigError(
                f"{type(self).__name__} runs on one process for now (each process would see "
                f"only its share of the losses); train without torchrun"
            )

    def on_before_step(self, trainer: Any) -> None:
        if self.grad_norms is None:
            return
        norms = [
            per_sample_grad_norms(trainer.task, trainer.model, b, chunk_size=self.chunk_size)
            for b in trainer.batches
        ]
        self._norms = torch.cat(norms)

    def on_step_end(self, trainer: Any, loss: float) -> None:
        losses = trainer.last_losses
        if losses is None:
            raise ConfigError(
                f"{type(self).__name__}: the {trainer.task.name} task does not report "
                f"per-sample losses (Step.losses); record them with a task that does "
                f"(classification, reconstruction, segmentation, vae, pixelcnn)"
            )
        index = trainer.train_loader.batch_index
        self.table.update(index, losses)
        if self.grad_norms is not None and self._norms is not None:
            self.grad_norms.update(index, self._norms)
            self._norms = None

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if self.keep_history:
            self._rows.append(self.table.losses.double().clone())

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"table": self.table.state_dict(), "history": self.history}
        if self.grad_norms is not None:
            state["grad_norms"] = self.grad_norms.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.table.load_state_dict(state["table"])
        self._rows = list(torch.as_tensor(state["history"]).double().unbind(0))
        if self.grad_norms is not None and "grad_norms" in state:
            self.grad_norms.load_state_dict(state["grad_norms"])


class SGDS(LossRecorder):
    """SGD-S v1 in the Trainer: records the losses into `sampler.table` as they are seen and
    closes each of the sampler's epochs (dropping the easiest samples after a steady-state one).

    The training loader must draw from `sampler` (``BatchLoader(..., sampler=sampler)``). With
    ``reweight=True`` wrap the task in `ImportanceWeighted` so the loss uses the weights."""

    def __init__(self, sampler: SGDSSampler, *, history: bool = False) -> None:
        if not isinstance(sampler, SGDSSampler):
            raise ConfigError(f"SGDS: sampler must be an SGDSSampler, got {type(sampler).__name__}")
        super().__init__(sampler.table, history=history)
        self.sampler = sampler

    def on_fit_start(self, trainer: Any) -> None:
        super().on_fit_start(trainer)
        if getattr(trainer.train_loader, "sampler", None) is not self.sampler:
            raise ConfigError(
                "SGDS: the training loader does not draw from this sampler; make it with "
                "BatchLoader(data, batch_size, sampler=sampler)"
            )
        if self.sampler.reweight and not isinstance(trainer.task, ImportanceWeighted):
            raise ConfigError(
                "SGDS: the sampler reweights (reweight=True) but the task does not apply the "
                "weights; wrap it: task=ImportanceWeighted(task)"
            )

    def on_epoch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        super().on_epoch_end(trainer, metrics)
        self.sampler.end_epoch()

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self._rows = list(torch.as_tensor(state["history"]).double().unbind(0))


class ImportanceWeighted(Task):
    """`task`, with each sample's loss weighted by the training loader's sampler: the batch loss
    is ``mean(w_i · loss_i)`` with ``w = sampler.weights(batch_index)`` (`SGDSSampler` with
    ``reweight=True`` gives ``1 / (N·p_i)``, an unbiased estimate of the uniform mean loss).
    Everything else (metrics, evaluation, prediction, saved state) is `task`'s; the running
    training loss reported stays the unweighted mean."""

    def __init__(self, task: Task) -> None:
        if not isinstance(task, Task) or isinstance(task, ImportanceWeighted):
            raise ConfigError(
                f"ImportanceWeighted wraps a task (e.g. Classification()), got "
                f"{type(task).__name__}"
            )
        self.task = task
        self.name = task.name
        self.running_stats, self.metrics, self.monitor = (
            task.running_stats,
            task.metrics,
            task.monitor,
        )
        self._trainer: Any = None

    def setup(self, model: nn.Module, trainer: Any) -> None:
        sampler = getattr(trainer.train_loader, "sampler", None)
        if not callable(getattr(sampler, "weights", None)):
            raise ConfigError(
                "ImportanceWeighted: the training loader has no sampler with weights(indices); "
                "make it with BatchLoader(data, batch_size, sampler=SGDSSampler(..., "
                "reweight=True))"
            )
        self._trainer = trainer
        self.task.setup(model, trainer)

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        step = self.task.training_step(model, batch)
        if self._trainer is None or not model.training:
            return step
        if step.losses is None:
            self.task.per_sample_loss(model, batch)  # raises the task's own message
        loader = self._trainer.train_loader
        w = loader.sampler.weights(loader.batch_index)
        w = w.to(step.losses.device, step.losses.dtype)
        return Step((w * step.losses).mean(), step.stats, step.losses)

    def __getattr__(self, name: str) -> Any:
        # what the wrapped task has beyond the protocol (Classification's score, topk, …)
        if name == "task":
            raise AttributeError(name)
        return getattr(self.task, name)

    def size(self, batch: Batch) -> int:
        return self.task.size(batch)

    def summarize(self, sums: torch.Tensor) -> dict[str, float]:
        return self.task.summarize(sums)

    def evaluation_stats(self, model: nn.Module, batch: Batch, **options: Any) -> torch.Tensor:
        return self.task.evaluation_stats(model, batch, **options)

    def evaluation(self, **options: Any) -> Evaluation:
        return self.task.evaluation(**options)

    def evaluation_label(self, **options: Any) -> str:
        return self.task.evaluation_label(**options)

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        return self.task.predict(model, x, **options)

    def state_dict(self) -> dict[str, Any]:
        return self.task.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.task.load_state_dict(state)
