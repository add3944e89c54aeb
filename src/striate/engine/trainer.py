"""The Trainer: one fixed training loop; every feature plugs in as a callback.

    trainer = Trainer(epochs=10, opt="sgd", lr=0.1, schedule="onecycle", out="runs/x")
    trainer.fit(model, train_loader, val_loader)      # resume="runs/x" continues a stopped run
    trainer.evaluate(model, test_loader)              # {"loss", "acc", "top5"}
    trainer.predict(model, test_loader)               # class probabilities, N×C

A step: forward under autocast → loss → backward (scaled for fp16) → non-finite loss check →
`on_before_step` (clipping) → optimiser step → schedule step. Epochs end with validation and
`on_epoch_end` (logging, checkpoints, early stopping). Ctrl-C finishes the running step, saves
`last.safetensors` and returns; resuming from it continues exactly as the uninterrupted run would
(same weights, data order and augmentation).

Under torchrun (see `striate.engine.distributed`) `fit` trains data-parallel: the model is wrapped
in DistributedDataParallel (`model` stays the plain module, so saved weights have their own
names), each process takes its share of every global batch, the step loss and the epoch metrics
are reduced across processes, `main_only` callbacks (printing, logging, checkpoints) run in
process 0 alone, and the processes agree after every step whether to stop (Ctrl-C, a non-finite
loss, `should_stop`), so none is left waiting. Every process resumes from the same checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from striate.device import resolve_device
from striate.engine import distributed
from striate.engine.callbacks import (
    EMA,
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    GradientClipping,
    Lookahead,
    ProgressBar,
    TensorBoard,
)
from striate.engine.losses import make_loss
from striate.engine.metrics import MetricTracker
from striate.engine.optim import make_optimizer
from striate.engine.precision import resolve_channels_last, resolve_precision
from striate.engine.schedules import Scheduler, schedule_for
from striate.errors import ConfigError, StriateError
from striate.evaluate.tta import parse_tta, tta_log_probs
from striate.state_file import load_state

Batch = tuple[torch.Tensor, torch.Tensor]


class TrainingDiverged(StriateError):
    """The loss became NaN or infinite; the message carries the diagnosis."""


class Trainer:
    """Trains a classifier with the practice of the reference lectures; see the module docstring.

    Give `epochs` or `steps` (optimiser steps). `opt`, `schedule` and `loss` are names
    (see OPTIMIZERS, SCHEDULES, LOSSES); `schedule_options` go to `make_schedule` (durations in
    epochs). `out` is the run folder for metrics, checkpoints and plots (None: write nothing).
    `param_groups` (torch optimiser groups of the model's parameters, with their own "lr" if
    wanted) replace the default groups: all parameters, biases and norm layers without decay.
    """

    def __init__(
        self,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        opt: str = "sgd",
        lr: float = 0.01,
        weight_decay: float = 0.0,
        momentum: float | None = None,
        nesterov: bool = False,
        schedule: str = "constant",
        schedule_options: dict[str, Any] | None = None,
        loss: str = "cross_entropy",
        label_smoothing: float = 0.0,
        precision: str = "auto",
        channels_last: bool | str = "auto",
        device: str | torch.device = "auto",
        seed: int | None = 0,
        clip_grad_norm: float | None = None,
        clip_grad_value: float | None = None,
        ema: float | None = None,
        lookahead: float | None = None,
        early_stopping: int | None = None,
        monitor: str = "val_acc",
        tta: bool | str = False,
        topk: Sequence[int] = (1, 5),
        out: str | Path | None = None,
        progress: bool = True,
        tensorboard: bool | str = "auto",
        callbacks: Iterable[Callback] = (),
        param_groups: list[dict[str, Any]] | None = None,
    ) -> None:
        if (epochs is None) == (steps is None):
            raise ConfigError("give the length of training as exactly one of epochs or steps")
        for name, v in (("epochs", epochs), ("steps", steps)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"learning rate must be a positive number, got {lr!r}")
        self.epochs_arg, self.steps_arg = epochs, steps
        self.param_groups = param_groups  # e.g. discriminative lrs; default: the whole model
        self.opt, self.lr_arg, self.weight_decay = opt, float(lr), float(weight_decay)
        self.momentum, self.nesterov = momentum, nesterov
        self.schedule, self.schedule_options = schedule, dict(schedule_options or {})
        self.loss_fn = make_loss(loss, label_smoothing=label_smoothing)
        self.loss_name = loss
        self.precision_arg, self.channels_last_arg = precision, channels_last
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        parse_tta(tta)  # a bad spec fails here, not after training
        self.seed, self.tta, self.topk = seed, tta, tuple(topk)
        self.monitor = monitor
        self.out = Path(out) if out is not None else None

        self.show_progress, self._fitting = progress, False
        self.callbacks: list[Callback] = []
        if progress:
            self.callbacks.append(ProgressBar())
        if clip_grad_norm is not None or clip_grad_value is not None:
            self.callbacks.append(GradientClipping(clip_grad_norm, clip_grad_value))
        if ema is not None:
            self.callbacks.append(EMA(ema))
        if lookahead is not None:
            self.callbacks.append(Lookahead(lookahead))
        if self.out is not None:
            self.callbacks += [CSVLogger(), Checkpoint(monitor)]
            if tensorboard is True or (tensorboard == "auto" and TensorBoard.available()):
                self.callbacks.append(TensorBoard())
        if early_stopping is not None:
            self.callbacks.append(EarlyStopping(monitor, patience=early_stopping))
        self.callbacks += list(callbacks)
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
        self._running = torch.zeros(3, device=self.device)  # loss·n, correct, n this epoch
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
        loss_n, correct, n = self._running.tolist()
        return {"loss": loss_n / max(n, 1), "acc": correct / max(n, 1)}

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
            )
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
            self._restore(resume)
        if parallel:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)

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
        lengths = torch.tensor([self.steps_per_epoch, -self.steps_per_epoch], device=self.device)
        longest, shortest = distributed.all_reduce_max(lengths).tolist()
        if longest != -shortest:
            raise ConfigError(
                f"the processes' training loaders have {-shortest} to {longest} batches per "
                f"epoch: every process must take the same number of steps (give each the same "
                f"data and batch size, and a loader that shares each batch among them)"
            )

    # ------------------------------------------------------------------ checkpoint state

    def training_state(self) -> dict[str, Any]:
        """Everything `fit(resume=...)` needs to continue exactly (saved by `Checkpoint`)."""
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        running, ranks = self._running, {}
        if self._ranks is not None:  # under DDP: every process's generators and running sums
            rng.update({k: v for k, v in self._ranks.items() if k != "running_ranks"})
            ranks = {"running_ranks": self._ranks["running_ranks"]}
            running = ranks["running_ranks"].sum(0)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "loader": self.train_loader.state_dict()
            if hasattr(self.train_loader, "state_dict")
            else None,
            "rng": rng,
            "trainer": {
                "epoch": self.epoch,
                "step": self.step,
                "history": self.history,
                "steps_log": self.steps_log,
                "running": running,
                **ranks,
                "total_steps": self.total_steps,
            },
            "callbacks": {
                f"{i}:{type(cb).__name__}": cb.state_dict() for i, cb in enumerate(self.callbacks)
            },
        }

    def _restore(self, resume: str | Path) -> None:
        path = Path(resume)
        if path.is_dir():
            path = (
                path / "checkpoints" / "last.safetensors"
                if (path / "checkpoints").is_dir()
                else path / "last.safetensors"
            )
        state = load_state(path)
        t = state["trainer"]
        if t["total_steps"] != self.total_steps:
            raise ConfigError(
                f"{path} belongs to a run of {t['total_steps']} steps, this one has "
                f"{self.total_steps}: resume with the same epochs, batch size and data"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ConfigError(
                f"{path} does not fit this model or optimiser ({e}); resume with the same "
                f"model and optimiser options as the run that wrote it"
            ) from e
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        if state["loader"] is not None and hasattr(self.train_loader, "load_state_dict"):
            self.train_loader.load_state_dict(state["loader"])
            self._skip = int(state["loader"].get("batch", 0))
        self._restore_rng(state["rng"])
        self.epoch, self.step = int(t["epoch"]), int(t["step"])
        self.history, self.steps_log = list(t["history"]), dict(t["steps_log"])
        self._running = t["running"].to(self.device)
        if distributed.is_distributed():
            mine = t.get("running_ranks")
            if mine is not None and len(mine) == self.world_size:
                self._running = mine[self.rank].to(self.device)
            elif not self.is_main:
                self._running.zero_()  # process 0 carries the sum of all
        saved = state["callbacks"]
        for i, cb in enumerate(self.callbacks):
            key = f"{i}:{type(cb).__name__}"
            if key in saved:
                cb.load_state_dict(saved[key])

    def _restore_rng(self, rng: dict[str, torch.Tensor]) -> None:
        rank, parallel = self.rank, distributed.is_distributed()
        mine = parallel and len(rng.get("torch_ranks", ())) == self.world_size
        # a row of a stacked state must be copied out: set_rng_state ignores a view's offset
        torch.set_rng_state(rng["torch_ranks"][rank].clone() if mine else rng["torch"])
        if self.device.type == "cuda":
            if mine and "cuda_ranks" in rng:
                torch.cuda.set_rng_state(rng["cuda_ranks"][rank].clone(), self.device)
            elif "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        if parallel and not mine and rank > 0:
            # a checkpoint of another number of processes: same data, fresh dropout draws
            torch.manual_seed(int(torch.randint(0, 2**62, (1,))) + rank)

    def _gather_ranks(self) -> None:
        """Every process's generator states and running sums, for the checkpoint process 0
        writes next: resuming gives each process its own back, so it continues exactly."""
        self._ranks = {
            "torch_ranks": distributed.all_gather(torch.get_rng_state()),
            "running_ranks": distributed.all_gather(self._running),
        }
        if self.device.type == "cuda":
            cuda = torch.cuda.get_rng_state(self.device)
            self._ranks["cuda_ranks"] = distributed.all_gather(cuda)

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
        self._setup(model, train, resume)
        self._fitting = True
        try:
            self._call("on_fit_start")
            try:
                with self._graceful_interrupt():
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
                                self._gather_ranks()
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

    def _epoch(self) -> bool:
        """Train one epoch (or what is left of it); False when Ctrl-C cut it short."""
        left = self.total_steps - self.step
        todo = self.steps_in_epoch()
        done = 0
        for x, y in self.train_loader:
            lr, momentum = self.lr, self.momentum_now  # what this step uses
            loss = self._train_step(x, y)
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

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.ddp is not None:
            return self._parallel_step(x, y)
        with self.precision.autocast():
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
        value = self._optimise(loss)
        self.scheduler.step()
        labels = y.argmax(1) if y.dim() == 2 else y
        self.last_batch_size = n = len(labels)
        self._running[0] += loss.detach().float() * n
        self._running[1] += (logits.detach().argmax(1) == labels).sum()
        self._running[2] += n
        return value

    def _parallel_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """A step on this process's share of the global batch, through the DDP wrapper.

        DDP averages the processes' gradients; weighting each process's mean loss by its share
        of the batch, n_r·W/n, makes that average the gradient of the global batch's mean loss
        when a short last batch is split unevenly (the weight is 1 for every other batch)."""
        labels = y.argmax(1) if y.dim() == 2 else y
        n = len(labels)
        total = getattr(self.train_loader, "global_size", 0) or n * self.world_size
        with self.precision.autocast():
            logits = self.ddp(x)
            loss = self.loss_fn(logits, y)
        weight = n * self.world_size / total
        value = self._optimise(loss, n=n, weight=weight)
        self.scheduler.step()
        self.last_batch_size = total
        self._running[0] += loss.detach().float() * n
        self._running[1] += (logits.detach().argmax(1) == labels).sum()
        self._running[2] += n
        return value

    def _optimise(
        self, loss: torch.Tensor, diverged: str = "raise", n: int = 0, weight: float = 1.0
    ) -> float:
        """Backward, the non-finite check, `on_before_step` hooks and the optimiser step.

        A non-finite loss raises TrainingDiverged, or with `diverged="return"` skips the step
        and returns it (the LR finder ends its sweep on it). Under DDP the returned loss is the
        mean over all processes' `n` samples, so all of them see the same value and agree."""
        self.optimizer.zero_grad(set_to_none=True)
        scaled = loss if weight == 1.0 else loss * weight
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            scaled.backward()
        if self.ddp is not None:
            sums = torch.tensor(
                [float(loss.detach()) * n, n], dtype=torch.float64, device=self.device
            )
            loss_n, count = distributed.all_reduce_sum(sums).tolist()
            value = loss_n / count
        else:
            value = float(loss.detach())
        if not math.isfinite(value):
            if diverged == "return":
                return value
            raise TrainingDiverged(self._diagnose(value))
        self._call("on_before_step")
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return value

    def _lbfgs_epoch(self) -> bool:
        """One full-batch L-BFGS step: the closure sums the loss over every training batch."""
        loader, n_total = self.train_loader, None

        def closure() -> torch.Tensor:
            nonlocal n_total
            self.optimizer.zero_grad(set_to_none=True)
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(self.epoch)  # the same batches at every evaluation
            total, n = torch.zeros((), device=self.device), 0
            stats = torch.zeros(3, device=self.device)
            batches = list(loader)
            n_total = sum(len(y) for _, y in batches)
            for x, y in batches:
                with self.precision.autocast():
                    logits = self.model(x)
                    loss = self.loss_fn(logits, y) * (len(y) / n_total)
                loss.backward()
                total = total + loss.detach()
                n += len(y)
                labels = y.argmax(1) if y.dim() == 2 else y
                stats[0] += loss.detach().float() * n_total
                stats[1] += (logits.detach().argmax(1) == labels).sum()
                stats[2] += len(y)
            self._running = stats
            return total

        lr = self.lr
        loss = self.optimizer.step(closure)
        value = float(loss)
        if not math.isfinite(value):
            raise TrainingDiverged(self._diagnose(value))
        self.step += 1
        self.last_batch_size = n_total or 0
        self._log_step(value, lr, None)
        self._call("on_step_end", value)
        return True

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
        train = self.running_metrics()
        metrics: dict[str, float] = {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": train["loss"],
            "train_acc": train["acc"],
        }
        if val is not None:
            metrics.update({f"val_{k}": v for k, v in self.evaluate(self.eval_model, val).items()})
        metrics["lr"] = self.lr
        metrics["time"] = seconds
        self.history.append(metrics)
        self._running = torch.zeros(3, device=self.device)
        if self.ddp is not None:
            self._gather_ranks()
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

    @contextlib.contextmanager
    def _graceful_interrupt(self) -> Iterator[None]:
        """The first Ctrl-C stops after the running step (then the checkpoint is saved); a
        second one interrupts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):  # noqa: ARG001
            if self.interrupted or self._ctrl_c:
                raise KeyboardInterrupt
            if self.ddp is not None:
                self._ctrl_c = True  # stop after the step on which all processes agree
            else:
                self.interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _diagnose(self, value: float) -> str:
        """Why the loss became non-finite, as far as the gradients and weights show it."""
        grads, weights = [], []
        for name, p in self.model.named_parameters():
            weights.append((name, float(p.detach().float().norm())))
            if p.grad is not None:
                grads.append((name, float(p.grad.detach().float().norm())))
        lines = [
            f"the loss became {value} at step {self.step + 1} (epoch {self.epoch + 1}) "
            f"with lr {self.lr:.3g}"
        ]
        for what, norms in (("gradient", grads), ("weight", weights)):
            bad = [n for n, v in norms if not math.isfinite(v)]
            good = sorted(((n, v) for n, v in norms if math.isfinite(v)), key=lambda t: -t[1])
            parts = []
            if bad:
                more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
                parts.append(f"non-finite {what}s in {', '.join(bad[:5])}{more}")
            if good:
                parts.append(
                    f"largest {what} norms: " + ", ".join(f"{n} {v:.3g}" for n, v in good[:3])
                )
            if parts:
                lines.append("; ".join(parts))
        finite = [v for v in self.steps_log["loss"] if math.isfinite(v)]
        if finite:
            lines.append(f"last finite losses: {', '.join(f'{v:.4g}' for v in finite[-5:])}")
        if self.out is not None and (self.out / "checkpoints" / "last.safetensors").is_file():
            lines.append(f"last good checkpoint: {self.out / 'checkpoints' / 'last.safetensors'}")
        advice = "lower the learning rate (try `striate lr-find`) or clip gradients (--clip-grad)"
        if self.precision.name != "fp32":
            advice += f", or train in fp32 (this run used {self.precision.name})"
        lines.append(f"advice: {advice}")
        return "\n  ".join(lines)

    # ------------------------------------------------------------------ evaluation

    def _outputs(
        self, model: nn.Module, data: Iterable[Batch], tta: bool | str | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(log-probabilities or logits, targets) per batch, computed in fp32; TTA averages the
        probabilities of fixed views of each image (`striate.evaluate.tta`)."""
        views = parse_tta(self.tta if tta is None else tta)
        model.eval()
        with torch.no_grad():
            for x, y in self._with_progress(data, len(views)):
                x = x.to(self.device)
                if self.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                # fp32 whatever the training precision: reported numbers must not depend on
                # whether the CPU has native bf16 (see striate.engine.precision)
                out = tta_log_probs(model, x, views, logits=self.loss_name in ("hinge", "svm"))
                yield out, y.to(self.device)

    def _with_progress(self, data: Iterable[Batch], views: int) -> Iterator[Batch]:
        """The batches, with a progress bar when this trainer shows progress and is not fitting
        (validation runs inside the epoch's bar)."""
        shown = self.show_progress and not self._fitting and self.is_main
        if not shown or not hasattr(data, "__len__"):
            yield from data
            return
        from striate.progress import progress_bar

        label = "evaluating" + (f" ({views} views per image)" if views > 1 else "")
        with progress_bar(label, len(data), "batches") as advance:
            for batch in data:
                yield batch
                advance(1)

    def evaluate(
        self, model: nn.Module, data: Iterable[Batch], *, tta: bool | str | None = None
    ) -> dict[str, float]:
        """Loss, accuracy and top-k accuracy of `model` on `data` (flip TTA when asked).

        Under torchrun, with a loader that shares its batches among the processes, every
        process must call it: the sums are reduced, and all get the metrics of the whole set."""
        self._prepare_eval(model)
        tracker: MetricTracker | None = None
        for out, y in self._outputs(model, data, tta):
            if tracker is None:
                tracker = MetricTracker(out.shape[1], self.topk)
            tracker.update(out, y, self.loss_fn(out, y))
        if tracker is None:
            raise ConfigError("the evaluation data yields no batches")
        if getattr(data, "world_size", 1) > 1 and distributed.is_distributed():
            distributed.all_reduce_tracker(tracker)
        return tracker.compute()

    def predict(
        self,
        model: nn.Module,
        data: Iterable[Batch] | torch.Tensor,
        *,
        tta: bool | str | None = None,
    ) -> torch.Tensor:
        """Class probabilities (N×C float32, on the CPU) for a loader or a batch of images
        (under torchrun, of this process's share of a loader that shares its batches)."""
        self._prepare_eval(model)
        if isinstance(data, torch.Tensor):
            data = [(data, torch.zeros(len(data), dtype=torch.int64))]
        probs = []
        for out, _ in self._outputs(model, data, tta):
            probs.append(out.softmax(1).cpu())
        return torch.cat(probs)

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
        """Sweep the lr geometrically from `start` to `end` with this trainer's optimiser, loss
        and precision; model and optimiser are restored afterwards. Returns an LRFinderResult."""
        from striate.engine.lr_finder import lr_find

        self._setup(model, train, None, parallel=False)  # each process sweeps on its own

        def step(batch: Batch) -> float:
            x, y = batch
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            self.model.train()
            with self.precision.autocast():
                loss = self.loss_fn(self.model(x), y)
            return self._optimise(loss, diverged="return")

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
