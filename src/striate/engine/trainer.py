"""The Trainer: one fixed training loop for every task; every feature plugs in as a callback.

    trainer = Trainer(epochs=10, opt="sgd", lr=0.1, schedule="onecycle", out="runs/x")
    trainer.fit(model, train_loader, val_loader)      # resume="runs/x" continues a stopped run
    trainer.evaluate(model, test_loader)              # {"loss", "acc", "top5"}
    trainer.predict(model, test_loader)               # class probabilities, N×C

What a batch's loss is, and which metrics exist, is the `task`'s (`striate.engine.task`; the
default is `Classification()`). A step is one closure (`closure_step`), shared by the SGD family,
L-BFGS (whose closure covers the whole training set) and the LR finder: forward under autocast →
the task's loss → backward (scaled for fp16) → non-finite loss check → `on_before_step`
(clipping) → optimiser step; then the schedule steps. Epochs end with validation and
`on_epoch_end` (logging, checkpoints, early stopping). Ctrl-C finishes the running step, saves
`last.safetensors` and returns; resuming from it continues exactly as the uninterrupted run would
(same weights, data order and augmentation).

Under torchrun (see `striate.engine.distributed`) `fit` trains data-parallel: the model is wrapped
in DistributedDataParallel (`model` stays the plain module, so saved weights have their own
names), each process takes its share of every global batch, the step loss and the epoch metrics
are reduced across processes, `main_only` callbacks (printing, logging, checkpoints) run in
process 0 alone, and the processes agree after every step whether to stop (Ctrl-C, a non-finite
loss, `should_stop`), so none is left waiting. Every process resumes from the same checkpoint.

This module is longer than most (about 600 lines) because it is the one loop, read in one place:
set-up, the step, the epoch, interruption and evaluation. What can be read apart lives apart:
the saved state (`training_state`), the divergence diagnosis (`divergence`), the arithmetic of
data parallelism (`distributed`), the step itself (`step`), and everything task-specific (`task`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from striate import allocator
from striate.checks import positive_int
from striate.device import resolve_device
from striate.engine import distributed, training_state
from striate.engine.callbacks import EMA, Callback, Checkpoint, CSVLogger, ProgressBar, TensorBoard
from striate.engine.classification import Classification
from striate.engine.divergence import TrainingDiverged, diagnose
from striate.engine.lr_finder import lr_find
from striate.engine.optim import make_optimizer
from striate.engine.precision import resolve_channels_last, resolve_precision
from striate.engine.schedules import Scheduler, schedule_for
from striate.engine.step import optimizer_step
from striate.engine.task import Task
from striate.errors import ConfigError
from striate.interrupt import stop_on_ctrl_c
from striate.outputs import OutputExists
from striate.progress import progress_bar

Batch = tuple[torch.Tensor, ...]
RESULTS = ("metrics.csv", "steps.csv", "checkpoints")  # what a run writes into `out`


class Trainer:
    """Trains a model on a task with the practice of the reference lectures; see the module
    docstring.

    Give `epochs` or `steps` (optimiser steps). `task` says what a batch's loss is and what is
    measured (default `Classification()`). `opt` and `schedule` are names (see OPTIMIZERS,
    SCHEDULES) or, for `opt`, a torch optimiser; `opt_options` are the named optimiser's own
    settings (`make_optimizer`'s options) and `schedule_options` go to `make_schedule`
    (durations in epochs). `out` is the run folder for metrics, checkpoints and plots (None: write
    nothing); `fit` refuses one that holds an earlier run's metrics or checkpoints unless it
    resumes that run or `overwrite` is given (then they are replaced as the new run writes them).
    Features are `callbacks` (clipping, EMA, early stopping, …;
    `striate.train.assembly.config_callbacks` builds them from a config). `param_groups` (torch
    optimiser groups of the model's parameters, with their own "lr" if wanted) replace the
    default groups: all parameters, biases and norm layers without decay.
    """

    def __init__(
        self,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        task: Task | None = None,
        opt: str | torch.optim.Optimizer = "sgd",
        lr: float = 0.01,
        weight_decay: float = 0.0,
        momentum: float | None = None,
        nesterov: bool = False,
        opt_options: dict[str, Any] | None = None,
        schedule: str = "constant",
        schedule_options: dict[str, Any] | None = None,
        precision: str = "auto",
        channels_last: bool | str = "auto",
        device: str | torch.device = "auto",
        seed: int | None = 0,
        out: str | Path | None = None,
        overwrite: bool = False,
        progress: bool = True,
        tensorboard: bool | str = "auto",
        callbacks: Iterable[Callback] = (),
        param_groups: list[dict[str, Any]] | None = None,
    ) -> None:
        if (epochs is None) == (steps is None):
            raise ConfigError(
                "Trainer: give the length of training as exactly one of epochs or steps"
            )
        positive_int("Trainer", "epochs", epochs, allow_none=True)
        positive_int("Trainer", "steps", steps, allow_none=True)
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"Trainer: learning rate must be a positive number, got {lr!r}")
        if task is not None and not isinstance(task, Task):
            raise ConfigError(
                f"Trainer: task must be a striate.engine.Task (e.g. Classification()), got "
                f"{type(task).__name__}"
            )
        self.task = task if task is not None else Classification()
        self.epochs_arg, self.steps_arg = epochs, steps
        self.param_groups = param_groups  # e.g. discriminative lrs; default: the whole model
        self.opt, self.lr_arg, self.weight_decay = opt, float(lr), float(weight_decay)
        self.momentum, self.nesterov = momentum, nesterov
        self.opt_options = dict(opt_options or {})
        self.schedule, self.schedule_options = schedule, dict(schedule_options or {})
        self.precision_arg, self.channels_last_arg = precision, channels_last
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.seed = seed
        self.out = Path(out) if out is not None else None
        self.overwrite = overwrite

        self.show_progress, self._fitting = progress, False
        given = list(callbacks)
        own: list[Callback] = [ProgressBar()] if progress else []
        if self.out is not None:
            if not any(isinstance(cb, CSVLogger) for cb in given):
                own.append(CSVLogger())
            if not any(isinstance(cb, Checkpoint) for cb in given):
                own.append(Checkpoint(self.task.monitor))
            if tensorboard is True or (tensorboard == "auto" and TensorBoard.available()):
                own.append(TensorBoard())
        self.callbacks: list[Callback] = own + given
        self._reset()

    # ------------------------------------------------------------------ state seen by callbacks

    def _reset(self) -> None:
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Scheduler | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.train_loader: Any = None
        self.epoch = 0  # epochs finished
        self.step = 0  # optimiser steps taken
        self.history: list[dict[str, float]] = []
        self.steps_log: dict[str, list[float]] = {"step": [], "lr": [], "momentum": [], "loss": []}
        self.should_stop = False
        self.stop_reason: str | None = None
        self.interrupted = False
        self.last_batch_size = 0
        self.batches: Sequence[Batch] = ()  # the batches of the step in progress (or the last)
        self._step_losses: list[torch.Tensor] | None = None  # each batch's Step.losses
        self._running = self._zero_running()  # the sums of the task's running_stats this epoch
        self.ddp: nn.Module | None = None  # the DistributedDataParallel wrapper while fitting
        self._ctrl_c = False  # Ctrl-C seen here, acted on once all processes agree
        self._ranks: dict[str, torch.Tensor] | None = None  # gathered for the next checkpoint

    @property
    def rank(self) -> int:
        """This process's rank under torchrun (0 in a single process)."""
        return distributed.rank()

    @property
    def world_size(self) -> int:
        return distributed.world_size()

    @property
    def is_main(self) -> bool:
        """Whether this process prints and writes files (process 0, or the only one)."""
        return distributed.is_main()

    @property
    def last_losses(self) -> torch.Tensor | None:
        """The per-sample losses of the last step (float32, detached, in batch order), when the
        task reports them (Step.losses); joined only when a callback asks."""
        parts = self._step_losses
        if not parts or len(parts) != len(self.batches):
            return None
        return torch.cat(parts).float()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"]) if self.optimizer else self.lr_arg

    @property
    def momentum_now(self) -> float | None:
        group = self.optimizer.param_groups[0] if self.optimizer else {}
        if "betas" in group:
            return float(group["betas"][0])
        return float(group["momentum"]) if "momentum" in group else None

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and saved: the EMA average when there is one."""
        for cb in self.callbacks:
            if isinstance(cb, EMA) and cb.module is not None:
                return cb.module
        return self.model

    def steps_in_epoch(self) -> int:
        left = self.total_steps - self.step
        return min(len(self.train_loader) - self._skip, left)

    def running_metrics(self) -> dict[str, float]:
        """This epoch's running training metrics so far (the task's, e.g. loss and acc)."""
        return self.task.summarize(self._running)

    def _zero_running(self) -> torch.Tensor:
        return torch.zeros(len(self.task.running_stats), device=self.device)

    # ------------------------------------------------------------------ setup

    def _setup(
        self, model: nn.Module, train: Any, resume: str | Path | None, parallel: bool = True
    ) -> None:
        self._reset()
        parallel = parallel and distributed.is_distributed()
        if self.seed is not None:
            # under torchrun each process draws its own dropout masks
            torch.manual_seed(self.seed + (self.rank if parallel else 0))
        try:
            self.steps_per_epoch = len(train)
        except TypeError as e:
            raise ConfigError("the training loader must have a length (batches per epoch)") from e
        shared = getattr(train, "world_size", None)
        if shared is not None and shared != self.world_size:
            running = f"{self.world_size} {'is' if self.world_size == 1 else 'are'} running"
            raise ConfigError(
                f"the training loader shares its batches among {shared} processes but "
                f"{running}: launch with torchrun and call init_from_env() first, or make the "
                f"loader with world_size={self.world_size} (the default is the process group's)"
            )
        if parallel:
            self._check_parallel(train)
        loader_device = getattr(train, "device", None)
        if isinstance(loader_device, torch.device) and loader_device.type != self.device.type:
            raise ConfigError(
                f"the training loader makes its batches on {loader_device} but the trainer "
                f"trains on {self.device}: give both the same device (e.g. device='auto' to both)"
            )
        if self.steps_per_epoch == 0:
            raise ConfigError("the training loader yields no batches")
        self.train_loader = train
        if self.steps_arg is not None:
            self.total_steps = self.steps_arg
            self.epochs = -(-self.steps_arg // self.steps_per_epoch)
        else:
            self.epochs = self.epochs_arg
            self.total_steps = self.epochs_arg * self.steps_per_epoch
        self.channels_last = resolve_channels_last(self.channels_last_arg, model)
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=memory)
        if isinstance(self.opt, torch.optim.Optimizer):
            self.optimizer = self.opt
        else:
            self.optimizer = make_optimizer(
                self.opt,
                self.model if self.param_groups is None else self.param_groups,
                self.lr_arg,
                weight_decay=self.weight_decay,
                momentum=self.momentum,
                nesterov=self.nesterov,
                options=self.opt_options,
            )
        self.task.setup(self.model, self)
        self.lbfgs = isinstance(self.optimizer, torch.optim.LBFGS)
        if self.lbfgs and parallel:
            raise ConfigError(
                "L-BFGS takes full-batch steps on one process: run it without torchrun"
            )
        if self.lbfgs:
            if getattr(train, "augment", None) is not None:
                raise ConfigError(
                    "L-BFGS runs full-batch on a fixed objective: turn augmentation off"
                )
            if self.schedule != "constant":
                raise ConfigError("L-BFGS chooses its own step sizes: use schedule 'constant'")
            self.total_steps = self.epochs  # one full-batch step per epoch
        schedule = schedule_for(
            self.optimizer,
            self.schedule,
            self.total_steps,
            self.steps_per_epoch,
            **self.schedule_options,
        )
        self.scheduler = Scheduler(self.optimizer, schedule)
        self.scaler = self.precision.scaler()
        self._skip = 0
        if resume is not None:
            training_state.restore(self, resume)
        if parallel:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)

    def _check_out(self, resume: str | Path | None) -> None:
        """Refuse to write over an earlier run's results (process 0 looks; all raise alike)."""
        error = None
        if self.is_main and self.out is not None and resume is None and not self.overwrite:
            found = [n for n in RESULTS if (self.out / n).exists()]
            if found:
                error = OutputExists(
                    f"{self.out} already holds a run's results ({', '.join(found)}): fit(..., "
                    f"resume={str(self.out)!r}) continues that run, Trainer(overwrite=True) "
                    f"replaces them; or give another out"
                )
        error = distributed.broadcast_object(error)
        if error is not None:
            raise error

    def check(self, model: nn.Module, train: Any) -> None:
        """Raise the ConfigError that `fit` would raise at its start for this model and loader
        (optimiser and schedule names and arguments, a loader without batches, L-BFGS's
        constraints), before a run folder is made; the model keeps its weights."""
        self._setup(model, train, None, parallel=False)
        self._reset()

    def _check_parallel(self, train: Any) -> None:
        """What data-parallel training needs of the device and the training loader."""
        rank = self.rank
        if self.device.type == "cuda":
            if self.device.index is None:
                self.device = torch.device("cuda", torch.cuda.current_device())
                self._running = self._running.to(self.device)
            if torch.distributed.get_backend() == "nccl" and self.device.index != (
                torch.cuda.current_device()
            ):
                raise ConfigError(
                    f"process {rank} trains on {self.device} but its GPU is "
                    f"cuda:{torch.cuda.current_device()}: pass device='auto' (or the device "
                    f"from init_from_env()) under torchrun"
                )
        distributed.check_same_length(self.steps_per_epoch, self.device)

    # ------------------------------------------------------------------ checkpoint state

    def training_state(self) -> dict[str, Any]:
        """Everything `fit(resume=...)` needs to continue exactly (saved by `Checkpoint`)."""
        return training_state.capture(self)

    # ------------------------------------------------------------------ the loop

    def fit(
        self,
        model: nn.Module,
        train: Iterable[Batch],
        val: Iterable[Batch] | None = None,
        *,
        resume: str | Path | None = None,
    ) -> list[dict[str, float]]:
        """Train `model` on `train`, validating on `val` after each epoch; returns the history."""
        self._check_out(resume)
        self._setup(model, train, resume)
        memory = contextlib.ExitStack()  # on a CPU each step's buffers reused, not faulted in again
        memory.enter_context(allocator.reusing_freed_memory(self.device.type == "cpu"))
        self._fitting = True
        try:
            self._call("on_fit_start")
            try:
                with stop_on_ctrl_c(self._on_ctrl_c):
                    while self.step < self.total_steps and not self.should_stop:
                        start = time.perf_counter()
                        self.model.train()  # before the hook, so callbacks may freeze parts
                        self._call("on_epoch_start")
                        complete = self._lbfgs_epoch() if self.lbfgs else self._epoch()
                        if complete:
                            self._end_epoch(val, time.perf_counter() - start)
                        if self.interrupted:
                            self.stop_reason = "interrupted"
                            if self.ddp is not None:
                                training_state.gather_ranks(self)
                            self._call("on_interrupt")
                            self._ranks = None
                            distributed.barrier()  # process 0 has saved the checkpoint
                            return self.history
            except BaseException as e:
                for cb in self._callbacks():
                    cb.on_exception(self, e)
                raise
            self._call("on_fit_end")
            distributed.barrier()  # process 0 has written its files
            return self.history
        finally:
            self.ddp = None  # the wrapper's hooks go with it; `model` is the plain module
            self._fitting = False
            memory.close()

    def _epoch(self) -> bool:
        """Train one epoch (or what is left of it); False when Ctrl-C cut it short."""
        left = self.total_steps - self.step
        todo = self.steps_in_epoch()
        done = 0
        for batch in self.train_loader:
            lr, momentum = self.lr, self.momentum_now  # what this step uses
            loss = self.task.train_step(self, batch)
            self.scheduler.step()
            self.step += 1
            self._log_step(loss, lr, momentum)
            self._call("on_step_end", loss)
            if self.ddp is not None:
                self._agree()
            done += 1
            if self.interrupted or self.should_stop or done >= left:
                break
        self._skip = 0
        return done >= todo or not self.interrupted

    def _lbfgs_epoch(self) -> bool:
        """One full-batch L-BFGS step: the closure covers every training batch."""
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(self.epoch)  # the same batches at every evaluation
        lr = self.lr
        value = self.closure_step(list(self.train_loader))
        self.step += 1
        self._log_step(value, lr, None)
        self._call("on_step_end", value)
        return True

    def closure_step(self, batches: Sequence[Batch], *, diverged: str = "raise") -> float:
        """One optimiser step on the mean loss of `batches` (one minibatch; for L-BFGS the whole
        training set), through one closure; returns the loss.

        A non-finite loss raises TrainingDiverged, or with `diverged="return"` skips the step
        and returns it (the LR finder ends its sweep on it). Under DDP each process's loss is
        weighted by its share of the global batch (`distributed.batch_share`), and the loss
        returned is the mean over all processes' samples, so all of them agree."""
        model = self.ddp if self.ddp is not None else self.model
        sizes = [self.task.size(b) for b in batches]
        n = sum(sizes)
        share, total = (1.0, n)
        if self.ddp is not None:
            share, total = distributed.batch_share(n, self.train_loader)
        sums: dict[str, torch.Tensor] = {}
        self.batches = batches

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            mean, stats, losses = torch.zeros((), device=self.device), None, []
            self._step_losses = losses
            for batch, size in zip(batches, sizes, strict=True):
                with self.precision.autocast():
                    step = self.task.training_step(model, self._memory_format(batch))
                part = step.loss if size == n else step.loss * (size / n)
                scaled = part if share == 1.0 else part * share
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
                mean = mean + part.detach().float()
                stats = step.stats if stats is None else stats + step.stats
                if step.losses is not None:
                    losses.append(step.losses.detach())
            sums["stats"] = stats
            return mean

        def value(loss: torch.Tensor) -> float:
            if self.ddp is None:
                return float(loss)
            return distributed.mean_over_processes(float(loss), n, self.device)

        result = optimizer_step(
            self.optimizer,
            closure,
            value=value,
            before_step=lambda: self._call("on_before_step"),
            scaler=self.scaler,
        )
        if not math.isfinite(result):
            if diverged == "return":
                return result
            raise TrainingDiverged(diagnose(self, result))
        self._running += sums["stats"].to(self._running.device)
        self.last_batch_size = total
        return result

    def _memory_format(self, batch: Batch) -> Batch:
        x = batch[0]
        if self.channels_last and x.dim() == 4:
            return (x.contiguous(memory_format=torch.channels_last), *batch[1:])
        return batch

    def _log_step(self, loss: float, lr: float, momentum: float | None) -> None:
        log = self.steps_log
        log["step"].append(self.step)
        log["lr"].append(lr)
        log["momentum"].append(float("nan") if momentum is None else momentum)
        log["loss"].append(loss)

    def _end_epoch(self, val: Iterable[Batch] | None, seconds: float) -> None:
        self.epoch += 1
        if self.ddp is not None:
            distributed.all_reduce_sum(self._running)
            # each process's batch-norm statistics saw its own batches: evaluate process 0's
            distributed.broadcast_buffers(self.model)
            if self.eval_model is not self.model:
                distributed.broadcast_buffers(self.eval_model)
        metrics: dict[str, float] = {"epoch": self.epoch, "step": self.step}
        metrics.update({f"train_{k}": v for k, v in self.running_metrics().items()})
        if val is not None:
            metrics.update({f"val_{k}": v for k, v in self.evaluate(self.eval_model, val).items()})
        metrics["lr"] = self.lr
        metrics["time"] = seconds
        self.history.append(metrics)
        self._running = self._zero_running()
        if self.ddp is not None:
            training_state.gather_ranks(self)
        self._call("on_epoch_end", metrics)
        self._ranks = None
        if self.ddp is not None:
            self._agree()

    def _callbacks(self) -> list[Callback]:
        """The callbacks this process runs: under torchrun, `main_only` ones in process 0."""
        if self.is_main:
            return self.callbacks
        return [cb for cb in self.callbacks if not cb.main_only]

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self._callbacks():
            getattr(cb, hook)(self, *args)

    def _agree(self) -> None:
        """Stop every process when one saw Ctrl-C or set `should_stop` (no process may be left
        waiting for the others in the next step's collectives)."""
        flags = torch.tensor([self._ctrl_c, self.should_stop], device=self.device)
        ctrl_c, stop = distributed.all_reduce_max(flags.float()).tolist()
        if ctrl_c:
            self.interrupted = True
        if stop and not self.should_stop:
            self.should_stop = True
            self.stop_reason = self.stop_reason or "stopped by another process"

    def _on_ctrl_c(self) -> None:
        """The first Ctrl-C stops after the running step (then the checkpoint is saved)."""
        if self.ddp is not None:
            self._ctrl_c = True  # stop after the step on which all processes agree
        else:
            self.interrupted = True

    # ------------------------------------------------------------------ evaluation

    def eval_batches(
        self, model: nn.Module, data: Iterable[Batch], label: str = "evaluating"
    ) -> Iterator[Batch]:
        """`data`'s batches on this trainer's device and memory format, with `model` in eval
        mode (its mode before is restored after) and gradients off, and a progress bar when this
        trainer shows progress and is not fitting (validation runs inside the epoch's bar).
        Evaluation is fp32 whatever the training precision: reported numbers must not depend on
        whether the CPU has native bf16 (see striate.engine.precision)."""
        self._prepare_eval(model)
        was_training = model.training  # a callback may evaluate in the middle of an epoch
        model.eval()
        shown = self.show_progress and not self._fitting and self.is_main
        try:
            with torch.no_grad():
                if not shown or not hasattr(data, "__len__"):
                    for batch in data:
                        yield self._on_device(batch)
                    return
                with progress_bar(label, len(data), "batches") as advance:
                    for batch in data:
                        yield self._on_device(batch)
                        advance(1)
        finally:
            model.train(was_training)

    def _on_device(self, batch: Batch) -> Batch:
        return self._memory_format(tuple(t.to(self.device) for t in batch))

    def evaluate(self, model: nn.Module, data: Iterable[Batch], **options: Any) -> dict[str, float]:
        """The task's metrics of `model` on `data` (for classification: loss, accuracy and top-k
        accuracy; `tta=` overrides the task's test-time augmentation).

        Under torchrun, with a loader that shares its batches among the processes, every
        process must call it: the sums are reduced, and all get the metrics of the whole set."""
        evaluation = self.task.evaluation(**options)
        label = self.task.evaluation_label(**options)
        seen = False
        for batch in self.eval_batches(model, data, label):
            evaluation.update(model, batch)
            seen = True
        if not seen:
            raise ConfigError("the evaluation data yields no batches")
        if getattr(data, "world_size", 1) > 1 and distributed.is_distributed():
            evaluation.reduce()
        return evaluation.compute()

    def predict(
        self, model: nn.Module, data: Iterable[Batch] | torch.Tensor, **options: Any
    ) -> torch.Tensor:
        """The task's predictions (for classification: class probabilities, N×C float32) for a
        loader or a batch of inputs, on the CPU (under torchrun, of this process's share of a
        loader that shares its batches)."""
        if isinstance(data, torch.Tensor):
            data = [(data,)]
        outputs = [
            self.task.predict(model, batch[0], **options).float().cpu()
            for batch in self.eval_batches(model, data, self.task.evaluation_label(**options))
        ]
        return torch.cat(outputs)

    def _prepare_eval(self, model: nn.Module) -> None:
        if not hasattr(self, "channels_last"):
            self.channels_last = resolve_channels_last(self.channels_last_arg, model)
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        model.to(self.device, memory_format=memory)

    # ------------------------------------------------------------------ LR finder

    def lr_find(
        self,
        model: nn.Module,
        train: Iterable[Batch],
        *,
        start: float = 1e-8,
        end: float = 10.0,
        num_steps: int = 100,
        beta: float = 0.98,
        diverge: float = 4.0,
    ):
        """Sweep the lr geometrically from `start` to `end` with this trainer's task, optimiser
        and precision, through the same step as training; the callbacks that shape training (not
        those that report it: `main_only` ones) start as in `fit`, so a model trains as designed
        (cifar_fast's whitening). Model and optimiser are restored afterwards. Returns an
        LRFinderResult."""

        self._setup(model, train, None, parallel=False)  # each process sweeps on its own
        for cb in self.callbacks:
            if not cb.main_only:
                cb.on_fit_start(self)

        def step(batch: Batch) -> float:
            self.model.train()
            return self.closure_step([batch], diverged="return")

        return lr_find(
            self.model,
            self.optimizer,
            train,
            step,
            start=start,
            end=end,
            num_steps=num_steps,
            beta=beta,
            diverge=diverge,
        )
