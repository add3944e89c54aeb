"""Features of a training run as callbacks on the Trainer's one fixed loop.

A callback overrides the hooks it needs; the Trainer calls them in list order:

    on_fit_start → [on_epoch_start → (on_before_step → on_step_end)×steps → on_epoch_end]×epochs
    → on_fit_end          (on_interrupt when Ctrl-C stops the run after a finished step)

`state_dict`/`load_state_dict` let a callback's state travel in the checkpoint, so resuming
continues it too. Callbacks read the trainer's state: `model`, `optimizer`, `step`, `epoch`,
`history`, `lr`, `momentum`, `out`; they may set `should_stop`.

Under torchrun (several processes), a callback with `main_only = True` (those that print or write
files: ProgressBar, CSVLogger, TensorBoard, Checkpoint) runs in process 0 alone; the others run
in every process and see the same state there (the step loss and epoch metrics are reduced across
processes), so what they decide, such as early stopping, agrees.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.progress import TextColumn
from torch import nn

from striate._atomic import atomic_write, write_json
from striate.errors import ConfigError
from striate.progress import bar_progress
from striate.state_file import save_state, save_weights

if TYPE_CHECKING:
    from striate.engine.trainer import Trainer


class Callback:
    """Base class: every hook does nothing."""

    main_only = False  # True: under torchrun, only process 0 runs it

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer) -> None: ...
    def on_before_step(self, trainer: Trainer) -> None: ...  # gradients ready, unscaled
    def on_step_end(self, trainer: Trainer, loss: float) -> None: ...
    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_interrupt(self, trainer: Trainer) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...
    def on_exception(self, trainer: Trainer, error: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _fmt(metrics: dict[str, float], keys: Iterable[str]) -> str:
    parts = []
    for k in keys:
        v = metrics.get(k)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        parts.append(f"{k} {v:.2%}" if _is_fraction(k) else f"{k} {v:.4g}")
    return "  ".join(parts)


def _is_fraction(name: str) -> bool:
    """Accuracies (acc, top5, …) are shown as percentages."""
    last = name.rsplit("_", 1)[-1]
    return last == "acc" or (last.startswith("top") and last[3:].isdigit())


class ProgressBar(Callback):
    """A live bar per epoch with the running loss, accuracy, lr and speed; one summary line after.

    Values are read from the device at most every `refresh` seconds, so the bar costs no
    synchronisation on most steps. When stderr is not a terminal (a log file, CI) only the line
    per epoch is printed.
    """

    main_only = True

    def __init__(self, refresh: float = 0.2) -> None:
        self.refresh = refresh

    def on_fit_start(self, trainer: Trainer) -> None:
        self.console = Console(stderr=True, soft_wrap=True)
        self.progress = bar_progress(
            self.console,
            TextColumn("{task.fields[stats]}"),
            transient=True,
            auto_refresh=False,  # redrawn from on_step_end, at most every `refresh` seconds
        )
        self.live = self.console.is_terminal  # elsewhere (a log file, CI): a line per epoch
        if self.live:
            self.progress.start()
        self.task = None

    def on_epoch_start(self, trainer: Trainer) -> None:
        if not self.live:
            return
        total = trainer.steps_in_epoch()
        label = f"epoch {trainer.epoch + 1}/{trainer.epochs}"
        self.task = self.progress.add_task(label, total=total, stats="")
        self._last = self._start = time.perf_counter()
        self._images = 0

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        if self.task is None:
            return
        self._images += trainer.last_batch_size
        now = time.perf_counter()
        if now - self._last < self.refresh:
            self.progress.advance(self.task)
            return
        self._last = now
        running = trainer.running_metrics()
        speed = self._images / max(now - self._start, 1e-9)
        stats = f"{_fmt(running, running)}  lr {trainer.lr:.2e}  {speed:,.0f} img/s"
        self.progress.update(self.task, advance=1, stats=stats)
        self.progress.refresh()

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        keys = [k for k in metrics if k.startswith(("train_", "val_"))]
        self.console.print(
            f"epoch {trainer.epoch}/{trainer.epochs}  {_fmt(metrics, keys)}  "
            f"lr {trainer.lr:.2e}  {metrics.get('time', 0):.1f}s"
        )

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.live:
            self.progress.stop()

    on_interrupt = on_fit_end

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self.on_fit_end(trainer)


class CSVLogger(Callback):
    """`metrics.csv` (one row per epoch) and `steps.csv` (lr, momentum, loss per step) in the run
    folder, rewritten atomically at each epoch end so a resumed run continues the same files."""

    main_only = True

    def write(self, trainer: Trainer) -> None:
        if trainer.out is not None:
            write_csv(trainer.out / "metrics.csv", trainer.history)
            write_csv(trainer.out / "steps.csv", rows_of(trainer.steps_log))

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.write(trainer)

    def on_interrupt(self, trainer: Trainer) -> None:
        self.write(trainer)

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self.write(trainer)


def rows_of(columns: dict[str, list]) -> list[dict[str, Any]]:
    keys = list(columns)
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(path, "w") as f:
        f.write(buffer.getvalue())


class TensorBoard(Callback):
    """Scalars per epoch and lr/loss per step for TensorBoard (needs the `tensorboard` package)."""

    main_only = True

    def __init__(self, log_dir: str | Path | None = None) -> None:
        self.log_dir = log_dir

    @staticmethod
    def available() -> bool:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            return False
        return True

    def _writer(self, log_dir: Path) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError(
                "TensorBoard logging needs the tensorboard package: pip install tensorboard"
            ) from e
        return SummaryWriter(str(log_dir))

    def on_fit_start(self, trainer: Trainer) -> None:
        log_dir = self.log_dir or (trainer.out / "tensorboard" if trainer.out else None)
        if log_dir is None:
            raise ConfigError("TensorBoard needs a log_dir or a run folder (Trainer(out=...))")
        self.writer = self._writer(Path(log_dir))

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        self.writer.add_scalar("step/loss", loss, trainer.step)
        self.writer.add_scalar("step/lr", trainer.lr, trainer.step)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            if k not in ("epoch", "step") and isinstance(v, float) and not math.isnan(v):
                self.writer.add_scalar(f"epoch/{k}", v, trainer.epoch)
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        self.writer.close()

    on_interrupt = on_fit_end

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self.writer.close()


class Checkpoint(Callback):
    """`last.safetensors` (the whole training state, for --resume) after every epoch and on
    Ctrl-C; `best.safetensors` (the evaluated weights) when `monitor` improves. Each comes with a
    JSON file saying what it holds. Writes are atomic; a run that diverges keeps the last good one.
    """

    main_only = True

    def __init__(self, monitor: str = "val_acc", mode: str = "auto") -> None:
        self.monitor, self.mode = monitor, _mode(monitor, mode)
        self.best: float | None = None

    def _dir(self, trainer: Trainer) -> Path | None:
        return None if trainer.out is None else trainer.out / "checkpoints"

    def save_last(self, trainer: Trainer) -> None:

        folder = self._dir(trainer)
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        save_state(folder / "last.safetensors", trainer.training_state())
        write_json(folder / "last.json", {"epoch": trainer.epoch, "step": trainer.step})

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        folder = self._dir(trainer)
        if folder is None:
            return
        value = metrics.get(self.monitor, metrics.get("train_" + self.monitor.removeprefix("val_")))
        if value is not None and not math.isnan(value) and _better(value, self.best, self.mode):
            self.best = float(value)
            folder.mkdir(parents=True, exist_ok=True)
            save_weights(folder / "best.safetensors", trainer.eval_model.state_dict())
            info = {"epoch": trainer.epoch, "step": trainer.step, self.monitor: self.best}
            write_json(folder / "best.json", info)
        self.save_last(trainer)  # after `best`, so the saved state knows the best so far

    def on_interrupt(self, trainer: Trainer) -> None:
        self.save_last(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    def __init__(
        self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, mode="auto"
    ) -> None:
        if not isinstance(patience, int) or patience < 1:
            raise ConfigError(
                f"early stopping patience must be a positive integer, got {patience!r}"
            )
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = _mode(monitor, mode)
        self.best: float | None = None
        self.bad_epochs = 0

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            raise ConfigError(
                f"early stopping watches '{self.monitor}', which this run does not report "
                f"(it reports {', '.join(sorted(metrics))}); give validation data or another "
                f"monitor"
            )
        value = metrics[self.monitor]
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                trainer.should_stop = True
                trainer.stop_reason = (
                    f"early stopping: {self.monitor} has not improved for {self.patience} epochs "
                    f"(best {self.best:.4g})"
                )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state["best"], int(state["bad_epochs"])


class GradientClipping(Callback):
    """Clip the gradients before each step: by total norm (`max_norm`) or elementwise (`value`)."""

    def __init__(self, max_norm: float | None = None, value: float | None = None) -> None:
        if (max_norm is None) == (value is None):
            raise ConfigError("gradient clipping takes exactly one of max_norm or value")
        limit = max_norm if max_norm is not None else value
        if not (isinstance(limit, (int, float)) and limit > 0 and math.isfinite(limit)):
            raise ConfigError(f"gradient clipping limit must be a positive number, got {limit!r}")
        self.max_norm, self.value = max_norm, value

    def on_before_step(self, trainer: Trainer) -> None:
        params = [p for p in trainer.model.parameters() if p.grad is not None]
        if self.max_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.max_norm, foreach=True)
        else:
            torch.nn.utils.clip_grad_value_(params, self.value, foreach=True)


class GradientNormLogger(Callback):
    """The global L2 norm of the gradients at every step, before any clipping, as the
    `grad_norm` column of steps.csv: a norm that grows by orders of magnitude warns of divergence
    before the loss does (steps without one, such as L-BFGS's, log NaN)."""

    def on_fit_start(self, trainer: Trainer) -> None:
        logged = len(trainer.steps_log["step"])  # a resumed run: earlier steps, if not logged
        trainer.steps_log.setdefault("grad_norm", [math.nan] * logged)
        self.norm = math.nan

    def on_before_step(self, trainer: Trainer) -> None:
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        self.norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        trainer.steps_log["grad_norm"].append(self.norm)
        self.norm = math.nan


class EMA(Callback):
    """Polyak/exponential moving average of the weights (Polyak & Juditsky 1992); evaluation,
    the best checkpoint and the saved model use the averaged weights.

    The effective decay min(decay, (1 + t) / (10 + t)) lets the average forget the random
    initialisation quickly in the first steps. `decay=None` is Polyak & Juditsky's uniform
    average instead: the mean of the weights after each averaged step. Averaging begins at step
    `start` (until then the average follows the weights). Buffers (batch-norm statistics) are
    copied.
    Under torchrun each process averages the underlying module's weights, which are the same in
    every process after each step.
    """

    def __init__(self, decay: float | None = 0.999, every: int = 1, start: int = 0) -> None:
        if decay is not None and not 0.0 < decay < 1.0:
            raise ConfigError(
                f"EMA decay must lie in (0, 1), or be None for the uniform average, got {decay!r}"
            )
        if not isinstance(every, int) or every < 1:
            raise ConfigError(f"EMA every must be a positive integer, got {every!r}")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ConfigError(f"EMA start must be a step number >= 0, got {start!r}")
        self.decay, self.every, self.start = decay, every, start
        self.module: nn.Module | None = None
        self.updates = 0
        self._pending: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.module is None:
            self.module = copy.deepcopy(trainer.model).eval().requires_grad_(False)
        if self._pending is not None:  # resuming: the average so far, from the checkpoint
            self.module.load_state_dict(self._pending)
            self._pending = None

    @torch.no_grad()
    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        if trainer.step < self.start:
            weight = 1.0  # not averaging yet: follow the weights
        elif trainer.step % self.every:
            return
        else:
            self.updates += 1
            t = self.updates
            weight = 1.0 / t if self.decay is None else 1.0 - min(self.decay, (1 + t) / (10 + t))
        model_params = [p.detach() for p in trainer.model.parameters()]
        torch._foreach_lerp_(list(self.module.parameters()), model_params, weight)
        for b_ema, b in zip(self.module.buffers(), trainer.model.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self._pending = state["weights"]


class Lookahead(Callback):
    """Lookahead (Zhang et al. 2019, arXiv:1907.08610) with airbench's schedule (Jordan 2024,
    arXiv:2404.00498): every ``every`` steps the slow weights move towards the trained ("fast")
    weights, ``slow ← d·slow + (1-d)·fast``, and training goes on from them, ``fast ← slow``.

    The decay grows over the run, ``d = decay^every · (t/T)^power`` at step t of T (airbench:
    0.95, 5 steps, power 3), so it barely acts early and averages strongly near the end; after
    the last step the model takes the slow weights. Batch-norm running statistics are averaged
    with the weights. ``power=0`` gives plain Lookahead with ``α = 1 - decay^every``.
    """

    def __init__(self, decay: float = 0.95, every: int = 5, power: float = 3.0) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"lookahead decay must lie in (0, 1), got {decay!r}")
        if not isinstance(every, int) or every < 1:
            raise ConfigError(f"lookahead every must be a positive integer, got {every!r}")
        if not isinstance(power, (int, float)) or not power >= 0:
            raise ConfigError(f"lookahead power must be a number >= 0, got {power!r}")
        self.decay, self.every, self.power = decay, every, float(power)
        self.slow: list[torch.Tensor] | None = None
        self._pending: list[torch.Tensor] | None = None

    @staticmethod
    def _tensors(model: nn.Module) -> list[torch.Tensor]:
        return [t for t in model.state_dict().values() if t.is_floating_point()]

    def on_fit_start(self, trainer: Trainer) -> None:
        if self._pending is not None:  # resuming: the slow weights from the checkpoint
            fast = self._tensors(trainer.model)
            self.slow = [p.to(f.device, f.dtype) for p, f in zip(self._pending, fast, strict=True)]
            self._pending = None

    def on_epoch_start(self, trainer: Trainer) -> None:
        # here rather than at fit start, so that the weights other callbacks set then are taken
        if self.slow is None:
            self.slow = [t.detach().clone() for t in self._tensors(trainer.model)]

    @torch.no_grad()
    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        last = trainer.step >= trainer.total_steps
        if trainer.step % self.every and not last:
            return
        fast = self._tensors(trainer.model)
        if last:
            decay = 1.0
        else:
            decay = self.decay**self.every * (trainer.step / trainer.total_steps) ** self.power
        torch._foreach_lerp_(self.slow, fast, 1.0 - decay)
        torch._foreach_copy_(fast, self.slow)

    def state_dict(self) -> dict[str, Any]:
        if self.slow is None:  # stopped before the first epoch began
            return {}
        return {"slow": {str(i): t for i, t in enumerate(self.slow)}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        slow = state.get("slow")
        self._pending = None if slow is None else [slow[k] for k in sorted(slow, key=int)]


def _mode(monitor: str, mode: str) -> str:
    if mode == "auto":
        return "min" if monitor.endswith("loss") else "max"
    if mode not in ("min", "max"):
        raise ConfigError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


def _better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)
