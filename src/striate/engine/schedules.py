"""Learning-rate schedules: an lr multiplier (and, for 1cycle, a momentum) per optimizer step.

A `Schedule` is a pure function of the optimizer step ``t`` (0-based): the lr that step ``t`` uses
is ``base_lr * factor(t)``. `Scheduler` applies one to a torch optimizer with
`torch.optim.lr_scheduler` semantics (call ``scheduler.step()`` after each ``optimizer.step()``),
so per-group learning rates keep their ratios and ``state_dict()`` resumes a run exactly. All
durations inside the classes are in optimizer steps; `make_schedule` takes them in epochs.

Schedules (factory name, then class; ``T`` = total_steps, ``t`` = step):

- ``"constant"``      `Constant()`: 1.
- ``"step"``          `StepDecay(gamma, step_size | milestones)`: ``gamma ** (t // step_size)``,
                      or ``gamma ** (number of milestones <= t)`` (torch's StepLR / MultiStepLR).
- ``"exponential"``   `Exponential(gamma)`: ``gamma ** t`` (CS231n's ``e^{-kt}`` with ``gamma =
                      e^{-k}``).
- ``"inverse-time"``  `InverseTime(k)`: ``1 / (1 + k t)`` (CS231n lecture 7, "1/t decay").
- ``"rsqrt"``         `InverseSqrt(timescale)`: ``1 / sqrt(1 + t / timescale)``.
- ``"cosine"``        `Cosine(T, min_factor)`: ``m + (1 - m)(1 + cos(pi t / T)) / 2``, reaching
                      ``m`` at ``t = T`` (torch's CosineAnnealingLR with ``T_max = T``).
- ``"linear"``        `Linear(T, end_factor)`: ``1 + (end_factor - 1) t / T``, reaching
                      ``end_factor`` at ``t = T`` (torch's LinearLR).
- ``"sgdr"``          `SGDR(T_0, T_mult, min_factor)`: cosine cycles that restart at 1, the i-th
                      ``T_0 * T_mult**i`` steps long (Loshchilov & Hutter 2017, arXiv:1608.03983).
- ``"onecycle"``      `OneCycle(T, ...)`: Smith's 1cycle policy with cyclical momentum
                      (Smith 2018, arXiv:1803.09820; Gugger's post "The 1cycle policy").
- any name with ``warmup=``: `Warmup(inner, warmup_steps)`, a linear ramp before the schedule.

Schedules that end at ``T`` (cosine, linear, onecycle) hold their last value afterwards; the
others keep following their formula.

The module is a family file (as `models/resnet.py` is for ResNets), about 600 lines: nine small
classes, their registry and factory, the torch adapter and the plot, read together.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from striate.checks import is_int, is_number, number, positive_int
from striate.errors import ConfigError
from striate.registry import Registry

__all__ = [
    "SCHEDULES",
    "SGDR",
    "Constant",
    "Cosine",
    "Exponential",
    "InverseSqrt",
    "InverseTime",
    "Linear",
    "OneCycle",
    "Schedule",
    "Scheduler",
    "StepDecay",
    "schedule_for",
    "Warmup",
    "make_schedule",
    "plot_schedule",
]

# --------------------------------------------------------------------------- validation helpers


def _gamma(owner: str, gamma: Any) -> float:
    if not (is_number(gamma) and math.isfinite(gamma)) or not 0 < gamma <= 1:
        raise ConfigError(
            f"{owner}: gamma is the factor the lr is multiplied by and must be in (0, 1], "
            f"got {gamma!r} (for a 10x decay use gamma=0.1)"
        )
    return float(gamma)


def _step(t: Any) -> int:
    if not is_int(t) or t < 0:
        raise ConfigError(f"a schedule step must be a non-negative integer, got {t!r}")
    return int(t)


# --------------------------------------------------------------------------- schedules


class Schedule:
    """Base class: ``factor(t)`` multiplies the base lr at optimizer step t (0-based)."""

    _fields: tuple[str, ...] = ()

    def factor(self, step: int) -> float:
        """The lr multiplier for optimizer step `step`."""
        raise NotImplementedError

    def momentum(self, step: int) -> float | None:
        """The momentum (or Adam's beta1) for step `step`; None leaves the optimizer's alone."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The base lr at every step."""

    def factor(self, step: int) -> float:
        _step(step)
        return 1.0


class StepDecay(Schedule):
    """Multiply by `gamma` every `step_size` steps, or at each of the `milestones` steps."""

    _fields = ("gamma", "step_size", "milestones")

    def __init__(
        self,
        gamma: float = 0.1,
        step_size: int | None = None,
        milestones: Sequence[int] | None = None,
    ) -> None:
        owner = "step decay"
        self.gamma = _gamma(owner, gamma)
        if (step_size is None) == (milestones is None):
            raise ConfigError(
                f"{owner}: give exactly one of step_size= (the decay period) or milestones= "
                f"(the times at which to decay), got step_size={step_size!r}, "
                f"milestones={milestones!r}"
            )
        self.step_size = None if step_size is None else positive_int(owner, "step_size", step_size)
        if milestones is not None:
            ok = (
                isinstance(milestones, Sequence)
                and len(milestones) > 0
                and all(is_int(m) and m >= 1 for m in milestones)
                and all(a < b for a, b in zip(milestones[:-1], milestones[1:], strict=True))
            )
            if not ok:
                raise ConfigError(
                    f"{owner}: milestones must be a non-empty, strictly increasing list of "
                    f"positive steps, got {milestones!r}"
                )
            milestones = tuple(int(m) for m in milestones)
        self.milestones = milestones

    def factor(self, step: int) -> float:
        t = _step(step)
        if self.step_size is not None:
            return self.gamma ** (t // self.step_size)
        return self.gamma ** bisect.bisect_right(self.milestones, t)


class Exponential(Schedule):
    """``gamma ** t``: the lr shrinks by `gamma` every step."""

    _fields = ("gamma",)

    def __init__(self, gamma: float) -> None:
        self.gamma = _gamma("exponential decay", gamma)

    def factor(self, step: int) -> float:
        return self.gamma ** _step(step)


class InverseTime(Schedule):
    """``1 / (1 + k t)`` (the "1/t decay" of CS231n lecture 7)."""

    _fields = ("k",)

    def __init__(self, k: float) -> None:
        self.k = number("inverse-time decay", "k", k, low=0.0, low_open=True)

    def factor(self, step: int) -> float:
        return 1.0 / (1.0 + self.k * _step(step))


class InverseSqrt(Schedule):
    """``1 / sqrt(1 + t / timescale)``: 1 at the start, then ``~ sqrt(timescale / t)``.

    The smooth form (rather than the plateau ``sqrt(timescale / max(t, timescale))``) is chosen so
    that ``Warmup(InverseSqrt(w), w)`` is exactly ``sqrt(w / t)`` after a w-step warm-up: the
    Transformer schedule of Vaswani et al. 2017 (arXiv:1706.03762), up to its constant.
    """

    _fields = ("timescale",)

    def __init__(self, timescale: float) -> None:
        self.timescale = number("rsqrt decay", "timescale", timescale, low=0.0, low_open=True)

    def factor(self, step: int) -> float:
        return 1.0 / math.sqrt(1.0 + _step(step) / self.timescale)


class Cosine(Schedule):
    """Half a cosine from 1 down to `min_factor` at step `total_steps`, then held there."""

    _fields = ("total_steps", "min_factor")

    def __init__(self, total_steps: int, min_factor: float = 0.0) -> None:
        self.total_steps = positive_int("cosine decay", "total_steps", total_steps)
        self.min_factor = number("cosine decay", "min_factor", min_factor, low=0.0, high=1.0)

    def factor(self, step: int) -> float:
        t = min(_step(step), self.total_steps)
        m = self.min_factor
        return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * t / self.total_steps))


class Linear(Schedule):
    """A straight line from 1 to `end_factor` at step `total_steps`, then held there."""

    _fields = ("total_steps", "end_factor")

    def __init__(self, total_steps: int, end_factor: float = 0.0) -> None:
        self.total_steps = positive_int("linear decay", "total_steps", total_steps)
        self.end_factor = number("linear decay", "end_factor", end_factor, low=0.0)

    def factor(self, step: int) -> float:
        t = min(_step(step), self.total_steps)
        return 1.0 + (self.end_factor - 1.0) * t / self.total_steps


class SGDR(Schedule):
    """Cosine annealing with warm restarts (Loshchilov & Hutter 2017, arXiv:1608.03983, eq. 5).

    ``min_factor + (1 - min_factor)(1 + cos(pi T_cur / T_i)) / 2``, where ``T_cur`` counts the
    steps since the last restart and cycle i lasts ``T_i = T_0 * T_mult**i`` steps; the same
    values as torch's CosineAnnealingWarmRestarts.
    """

    _fields = ("T_0", "T_mult", "min_factor")

    def __init__(self, T_0: int, T_mult: int = 1, min_factor: float = 0.0) -> None:  # noqa: N803
        owner = "sgdr"
        self.T_0 = positive_int(owner, "T_0", T_0)
        if not is_int(T_mult) or T_mult < 1:
            raise ConfigError(
                f"{owner}: T_mult must be a whole number >= 1 (each cycle T_mult times longer "
                f"than the last; the paper uses 1 or 2), got {T_mult!r}"
            )
        self.T_mult = int(T_mult)
        self.min_factor = number(owner, "min_factor", min_factor, low=0.0, high=1.0)

    def factor(self, step: int) -> float:
        t_cur, t_i = _step(step), self.T_0
        if self.T_mult == 1:
            t_cur %= t_i
        else:
            while t_cur >= t_i:  # O(log t) cycles
                t_cur -= t_i
                t_i *= self.T_mult
        m = self.min_factor
        return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * t_cur / t_i))


class OneCycle(Schedule):
    """Smith's 1cycle policy (Smith 2018, arXiv:1803.09820), as factors of lr_max.

    Three linear phases: from ``1/div`` up to 1 (momentum ``max_momentum -> min_momentum``), back
    down to ``1/div`` (momentum back up), then annihilation to ``1/final_div`` at the last step
    ``total_steps - 1`` (momentum held at ``max_momentum``). The peak is at step
    ``pct_start*T - 1`` and the fall ends at ``(pct_start + pct_down)*T - 2``: torch's
    ``OneCycleLR(three_phase=True, anneal_strategy="linear")`` convention, so with ``pct_start ==
    pct_down`` the two agree step for step (torch's ``final_div_factor`` is ``final_div / div``).

    Defaults from Gugger's post "The 1cycle policy", which follows Smith: the lr rises tenfold
    (``div=10``: 0.08 -> 0.8 in the post's first run) over 45% of training (epochs 0-22.5 of 50
    in its second), falls back over as long, and is then annihilated to one hundredth of the start
    (``final_div = 100 * div = 1000``; Smith: "several orders of magnitude less than the initial
    learning rate"); momentum 0.95 -> 0.85 and back. torch's defaults differ (``div_factor=25``,
    ``final_div_factor=1e4``, two phases). Set both momenta to None to leave momentum alone.
    """

    _fields = (
        "total_steps",
        "div",
        "final_div",
        "pct_start",
        "pct_down",
        "max_momentum",
        "min_momentum",
    )

    def __init__(
        self,
        total_steps: int,
        div: float = 10.0,
        final_div: float = 1000.0,
        pct_start: float = 0.45,
        pct_down: float = 0.45,
        max_momentum: float | None = 0.95,
        min_momentum: float | None = 0.85,
    ) -> None:
        owner = "onecycle"
        self.total_steps = positive_int(owner, "total_steps", total_steps)
        self.div = number(owner, "div", div, low=1.0)
        self.final_div = number(owner, "final_div", final_div, low=self.div)
        self.pct_start = number(owner, "pct_start", pct_start, low=0.0, high=1.0, low_open=True)
        self.pct_down = number(owner, "pct_down", pct_down, low=0.0, high=1.0, low_open=True)
        if self.pct_start + self.pct_down > 1:
            raise ConfigError(
                f"{owner}: pct_start + pct_down must be at most 1 (the rest is the annihilation "
                f"phase), got {pct_start!r} + {pct_down!r}"
            )
        self._peak = self.pct_start * self.total_steps - 1
        self._low = (self.pct_start + self.pct_down) * self.total_steps - 2
        if self._peak < 1 or self._low - self._peak < 1:
            raise ConfigError(
                f"{owner}: {self.total_steps} steps are too few for phases of {pct_start:g} and "
                f"{pct_down:g} of them (each needs at least two steps); train for more steps "
                f"or use a simpler schedule"
            )
        if (max_momentum is None) != (min_momentum is None):
            raise ConfigError(
                f"{owner}: give both max_momentum and min_momentum, or set both to None to "
                f"leave momentum alone; got {max_momentum!r} and {min_momentum!r}"
            )
        if max_momentum is not None:
            max_momentum = number(owner, "max_momentum", max_momentum, low=0.0, high=1.0)
            min_momentum = number(owner, "min_momentum", min_momentum, low=0.0, high=max_momentum)
        self.max_momentum, self.min_momentum = max_momentum, min_momentum

    def _phase(self, t: int) -> tuple[int, float]:
        """(phase 0/1/2, fraction of it done); phase 3 is after the last step."""
        last = self.total_steps - 1
        if t <= self._peak:
            return 0, t / self._peak
        if t <= self._low:
            return 1, (t - self._peak) / (self._low - self._peak)
        if t < last:
            return 2, (t - self._low) / (last - self._low)
        return 3, 1.0

    def factor(self, step: int) -> float:
        phase, p = self._phase(_step(step))
        lo = 1.0 / self.div
        if phase == 0:
            return lo + (1.0 - lo) * p
        if phase == 1:
            return 1.0 + (lo - 1.0) * p
        end = 1.0 / self.final_div
        return lo + (end - lo) * p

    def momentum(self, step: int) -> float | None:
        if self.max_momentum is None:
            return None
        phase, p = self._phase(_step(step))
        hi, lo = self.max_momentum, self.min_momentum
        if phase == 0:
            return hi + (lo - hi) * p
        if phase == 1:
            return lo + (hi - lo) * p
        return hi


class Warmup(Schedule):
    """A linear ramp over `warmup_steps` steps, then `inner` shifted to start after it.

    Step t < w uses ``inner.factor(0) * (t + 1) / (w + 1)`` (never 0, rising evenly to where the
    inner schedule starts); step t >= w uses ``inner.factor(t - w)``. Momentum during the ramp is
    the inner schedule's first.
    """

    _fields = ("inner", "warmup_steps")

    def __init__(self, inner: Schedule, warmup_steps: int) -> None:
        if not isinstance(inner, Schedule):
            raise ConfigError(f"Warmup wraps a Schedule, got {type(inner).__name__}")
        self.inner = inner
        self.warmup_steps = positive_int("warmup", "warmup_steps", warmup_steps)

    def factor(self, step: int) -> float:
        t, w = _step(step), self.warmup_steps
        if t < w:
            return self.inner.factor(0) * (t + 1) / (w + 1)
        return self.inner.factor(t - w)

    def momentum(self, step: int) -> float | None:
        return self.inner.momentum(max(_step(step) - self.warmup_steps, 0))


# --------------------------------------------------------------------------- torch scheduler


def _momentum_key(group: dict) -> str | None:
    if "betas" in group:
        return "betas"
    if "momentum" in group:
        return "momentum"
    return None


class Scheduler(LRScheduler):
    """Applies a `Schedule` to an optimizer: ``lr = group's initial_lr * schedule.factor(step)``.

    Each param group keeps its own base lr (``initial_lr``), so discriminative learning rates keep
    their ratios. When the schedule sets a momentum it goes to the group's ``momentum`` (SGD,
    RMSprop) or ``betas[0]`` (Adam, AdamW). ``state_dict()`` holds plain numbers only (it loads
    with ``torch.load(weights_only=True)``); the schedule itself is rebuilt by the caller.
    """

    def __init__(self, optimizer: Optimizer, schedule: Schedule) -> None:
        if not isinstance(optimizer, Optimizer):
            raise ConfigError(f"Scheduler needs a torch Optimizer, got {type(optimizer).__name__}")
        if not isinstance(schedule, Schedule):
            raise ConfigError(
                f"Scheduler needs a striate Schedule (see make_schedule), got "
                f"{type(schedule).__name__}"
            )
        if schedule.momentum(0) is not None:
            for i, group in enumerate(optimizer.param_groups):
                if _momentum_key(group) is None:
                    raise ConfigError(
                        f"{schedule!r} sets the momentum, but param group {i} of "
                        f"{type(optimizer).__name__} has no 'momentum' or 'betas'; use SGD, "
                        f"RMSprop or Adam(W), or turn the momentum schedule off "
                        f"(OneCycle(..., max_momentum=None, min_momentum=None))"
                    )
        self.schedule = schedule
        super().__init__(optimizer)

    def get_lr(self) -> list[float | torch.Tensor]:
        """The lr of each param group at step ``last_epoch``."""
        f = self.schedule.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]

    def step(self, epoch: int | None = None) -> None:
        """Advance one optimizer step (call after ``optimizer.step()``)."""
        super().step(epoch)
        self._set_momentum()

    def _set_momentum(self) -> None:
        m = self.schedule.momentum(self.last_epoch)
        if m is None:
            return
        for group in self.optimizer.param_groups:
            if _momentum_key(group) == "betas":
                group["betas"] = (m, *group["betas"][1:])
            else:
                group["momentum"] = m

    def state_dict(self) -> dict[str, Any]:
        """The step count and base lrs (not the optimizer, not the schedule)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "schedule")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume at the saved step; the optimizer's lr and momentum are set for it too."""
        state = {k: v for k, v in state_dict.items() if k not in ("optimizer", "schedule")}
        self.__dict__.update(state)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(float(lr))
            else:
                group["lr"] = lr
        self._last_lr = [
            g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
            for g in self.optimizer.param_groups
        ]
        self._set_momentum()


# --------------------------------------------------------------------------- factory

# each with the options it accepts, those given in epochs (rounded to steps), those it needs, and
# whether it is told the run's length (to end there)
SCHEDULES: Registry[type[Schedule]] = Registry("schedule")
SCHEDULES.add("constant", Constant)
SCHEDULES.add(
    "step",
    StepDecay,
    accepts=("gamma", "step_size", "milestones"),
    in_epochs=("step_size", "milestones"),
)
SCHEDULES.add("exponential", Exponential, accepts=("gamma",), needs=("gamma",))
SCHEDULES.add("inverse-time", InverseTime, accepts=("k",), needs=("k",))
SCHEDULES.add(
    "rsqrt", InverseSqrt, accepts=("timescale",), in_epochs=("timescale",), needs=("timescale",)
)
SCHEDULES.add("cosine", Cosine, accepts=("min_factor",), takes_total=True)
SCHEDULES.add("linear", Linear, accepts=("end_factor",), takes_total=True)
SCHEDULES.add(
    "sgdr", SGDR, accepts=("T_0", "T_mult", "min_factor"), in_epochs=("T_0",), needs=("T_0",)
)
SCHEDULES.add(
    "onecycle",
    OneCycle,
    accepts=("div", "final_div", "pct_start", "pct_down", "max_momentum", "min_momentum"),
    takes_total=True,
)


def _to_steps(name: str, epochs: Any, steps_per_epoch: int) -> int:
    """A duration in epochs (float allowed) as a whole, positive number of optimizer steps."""
    if not (is_number(epochs) and math.isfinite(epochs)) or epochs <= 0:
        raise ConfigError(f"{name} is a duration in epochs and must be positive, got {epochs!r}")
    steps = math.floor(epochs * steps_per_epoch + 0.5)
    if steps < 1:
        raise ConfigError(
            f"{name}={epochs!r} epochs is less than one step at {steps_per_epoch} steps per "
            f"epoch; give at least {0.5 / steps_per_epoch:.3g} epochs"
        )
    return steps


def make_schedule(
    name: str, total_steps: int, steps_per_epoch: int = 1, **options: Any
) -> Schedule:
    """Build a schedule by name (see `SCHEDULES`) for a run of `total_steps` optimizer steps.

    Durations are given in epochs (floats allowed) and rounded to the nearest step with
    `steps_per_epoch`: ``step_size``, ``milestones`` (each), ``T_0`` (sgdr), ``timescale`` (rsqrt)
    and ``warmup``. Everything else is taken as is; in particular exponential's ``gamma`` and
    inverse-time's ``k`` are per optimizer step. ``warmup=`` (any schedule; 0, the default, for
    none) ramps up linearly over that many epochs and the schedule runs in the steps left, so
    cosine, linear and onecycle still end at `total_steps`.
    """
    entry = SCHEDULES.entry(name)
    if not is_int(total_steps) or total_steps < 1:
        raise ConfigError(f"total_steps must be a positive whole number, got {total_steps!r}")
    if not is_int(steps_per_epoch) or steps_per_epoch < 1:
        raise ConfigError(
            f"steps_per_epoch must be a positive whole number (batches per epoch), got "
            f"{steps_per_epoch!r}"
        )
    allowed, in_epochs = entry.meta.get("accepts", ()), entry.meta.get("in_epochs", ())
    unknown = sorted(set(options) - set(allowed) - {"warmup"})
    if unknown:
        valid = ", ".join((*allowed, "warmup")) if allowed else "warmup"
        raise ConfigError(
            f"schedule {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are: {valid}"
        )
    missing = [o for o in entry.meta.get("needs", ()) if o not in options]
    if missing:
        raise ConfigError(f"schedule {name!r} needs {', '.join(o + '=' for o in missing)}")

    warmup = options.pop("warmup", 0)
    warmup_steps = 0
    if warmup is not None and not (is_number(warmup) and warmup == 0):
        warmup_steps = _to_steps("warmup", warmup, steps_per_epoch)
        if warmup_steps >= total_steps:
            raise ConfigError(
                f"warmup of {warmup!r} epochs ({warmup_steps} steps) leaves nothing of the "
                f"{total_steps}-step run; use a shorter warmup"
            )
    kwargs = dict(options)
    for key in in_epochs:
        if key not in kwargs or kwargs[key] is None:
            continue
        value = kwargs[key]
        if key == "milestones":
            if isinstance(value, str) or not isinstance(value, Sequence) or not value:
                raise ConfigError(f"milestones must be a non-empty list of epochs, got {value!r}")
            steps = [_to_steps("milestones", v, steps_per_epoch) for v in value]
            if any(a >= b for a, b in zip(steps[:-1], steps[1:], strict=True)):
                raise ConfigError(
                    f"milestones {list(value)!r} epochs become steps {steps} at "
                    f"{steps_per_epoch} steps per epoch; they must be strictly increasing"
                )
            kwargs[key] = steps
        else:
            kwargs[key] = _to_steps(key, value, steps_per_epoch)
    if entry.meta.get("takes_total"):
        kwargs["total_steps"] = total_steps - warmup_steps
    schedule = entry.obj(**kwargs)
    return Warmup(schedule, warmup_steps) if warmup_steps else schedule


# --------------------------------------------------------------------------- plot


def plot_schedule(schedule: Schedule, total_steps: int, base_lr: float = 1.0) -> Figure:
    """The lr (and the momentum, when the schedule sets it) against the optimizer step."""
    if not isinstance(schedule, Schedule):
        raise ConfigError(f"plot_schedule needs a Schedule, got {type(schedule).__name__}")
    total_steps = positive_int("plot_schedule", "total_steps", total_steps)
    base_lr = number("plot_schedule", "base_lr", base_lr, low=0.0, low_open=True)
    steps = range(total_steps)
    lrs = [base_lr * schedule.factor(t) for t in steps]
    moms = [schedule.momentum(t) for t in steps]
    has_momentum = any(m is not None for m in moms)

    fig = Figure(figsize=(6.4, 5.6 if has_momentum else 3.6), layout="constrained")
    axes = fig.subplots(2 if has_momentum else 1, 1, sharex=True, squeeze=False)[:, 0]
    axes[0].plot(steps, lrs, color="C0")
    axes[0].set_ylabel("learning rate")
    axes[0].set_title(repr(schedule), fontsize=8)
    if has_momentum:
        axes[1].plot(steps, [float("nan") if m is None else m for m in moms], color="C1")
        axes[1].set_ylabel("momentum")
    axes[-1].set_xlabel("optimizer step")
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def schedule_for(
    optimizer: torch.optim.Optimizer,
    name: str,
    total_steps: int,
    steps_per_epoch: int = 1,
    **options: Any,
) -> Schedule:
    """`make_schedule` for `optimizer`: onecycle cycles the lr alone when the optimiser has no
    momentum to cycle (Adagrad)."""
    group = optimizer.param_groups[0]
    if name == "onecycle" and "momentum" not in group and "betas" not in group:
        options.setdefault("max_momentum", None)
        options.setdefault("min_momentum", None)
    return make_schedule(name, total_steps, steps_per_epoch, **options)
