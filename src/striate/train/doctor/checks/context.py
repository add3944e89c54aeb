"""What every check works on (`Ctx`: the model, data and settings under test, on copies)
and the short training steps, batches and schedule the checks share."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from striate.checks import positive_int
from striate.data import ImageSet
from striate.engine.optim import make_optimizer
from striate.engine.schedules import SCHEDULES, Schedule, Scheduler, schedule_for
from striate.engine.step import optimizer_step
from striate.errors import ConfigError
from striate.train.doctor.report import DoctorReport

DEFAULT_EPOCHS = 30  # TrainConfig's: the run length a schedule assumes when none is given


@dataclass
class Ctx:
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    xv: torch.Tensor | None
    yv: torch.Tensor | None
    num_classes: int
    loss: str
    loss_fn: Callable
    opt: str
    lr: float
    weight_decay: float
    momentum: float | None
    nesterov: bool
    batch_size: int
    schedule: Schedule | None
    schedule_name: str
    seed: int
    device: torch.device
    pretrained: bool
    history: list[dict[str, float]] | None
    budget: dict[str, int]
    report: DoctorReport
    shared: dict[str, Any] = field(default_factory=dict)  # what a group's checks measure once


def as_xy(
    data: Any, what: str, normalize: Any, max_samples: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """Float inputs, int64 labels and the number of classes (ImageSet) of `data`."""
    if isinstance(data, ImageSet):
        if len(data) == 0:
            raise ConfigError(f"doctor: the {what} set is empty ({data.source or 'no source'})")
        ds = data
        if max_samples is not None and len(ds) > max_samples:
            ds = ds.sample(max_samples, seed=seed)
        return normalized_images(ds.images, normalize), ds.labels.clone(), ds.num_classes
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        x, y = data
        if x.ndim < 2 or len(x) == 0:
            raise ConfigError(
                f"doctor: the {what} inputs must be a non-empty batch N×..., got shape "
                f"{tuple(x.shape)}"
            )
        if y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise ConfigError(
                f"doctor: the {what} labels must be a 1-D integer tensor of class indices, got "
                f"{y.dtype} of shape {tuple(y.shape)}"
            )
        if len(x) != len(y):
            raise ConfigError(
                f"doctor: {len(x)} {what} inputs but {len(y)} labels; give one label per input"
            )
        if int(y.min()) < 0:
            raise ConfigError(f"doctor: the {what} labels must be ≥ 0, got {int(y.min())}")
        if not (x.is_floating_point() or x.dtype == torch.uint8):
            raise ConfigError(
                f"doctor: the {what} inputs must be a float (or uint8 image) tensor, got {x.dtype}"
            )
        if max_samples is not None and len(x) > max_samples:
            g = torch.Generator().manual_seed(seed)
            keep = torch.randperm(len(x), generator=g)[:max_samples]
            x, y = x[keep], y[keep]
        if x.dtype == torch.uint8:
            x = normalized_images(x, normalize)
        return x.detach().float(), y.long(), None
    raise ConfigError(
        f"doctor: {what} data must be an ImageSet (striate.data.load_dataset) or an (x, y) pair "
        f"of tensors, got {type(data).__name__}"
    )


def normalized_images(images: torch.Tensor, normalize: Any) -> torch.Tensor:
    if callable(normalize):
        out = normalize(images)
    elif normalize is False or normalize is None:
        out = images.float() / 255
    else:
        raise ConfigError(f"doctor: normalize must be a callable, None or False, got {normalize!r}")
    return out.detach().float()


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, (tuple, list)):  # e.g. GoogLeNet's auxiliary outputs in train mode
        out = out[0]
    if hasattr(out, "logits"):
        out = out.logits
    return out


def dropout_off(model: nn.Module) -> nn.Module:
    """Train mode (batch-norm on batch statistics) with every dropout layer switched off."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd | nn.AlphaDropout):
            m.eval()
    return model


def num_examples(data: Any) -> int:
    """The number of examples in `data` (0 when it is not a recognised kind: checked later)."""
    if isinstance(data, ImageSet):
        return len(data)
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], torch.Tensor):
        return len(data[0]) if data[0].ndim else 0
    return 0


def run_schedule(
    schedule: str | Schedule,
    options: Mapping[str, Any] | None,
    total_steps: int | None,
    examples: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
) -> tuple[Schedule | None, str]:
    """The run's schedule (None for a constant lr) and its name, built as the Trainer does."""
    if isinstance(schedule, Schedule):
        if options:
            raise ConfigError("doctor: schedule_options go with a schedule name, not a Schedule")
        return schedule, type(schedule).__name__
    if not isinstance(schedule, str):
        raise ConfigError(
            f"doctor: schedule must be a name ({', '.join(SCHEDULES)}) or a Schedule, "
            f"got {type(schedule).__name__}"
        )
    per_epoch = max(1, math.ceil(examples / batch_size))
    if total_steps is None:
        total_steps = DEFAULT_EPOCHS * per_epoch
    else:
        positive_int("doctor", "total_steps", total_steps)
    built = schedule_for(optimizer, schedule, total_steps, per_epoch, **(options or {}))
    return (None if schedule == "constant" else built), schedule


def ctx_scheduler(ctx: Ctx, optimizer: torch.optim.Optimizer) -> Scheduler | None:
    """The run's schedule on `optimizer` (sets the lr and momentum of step 0 at once)."""
    return None if ctx.schedule is None else Scheduler(optimizer, ctx.schedule)


def lr_range(lrs: Sequence[float]) -> str:
    lo, hi = min(lrs), max(lrs)
    return f"lr {lo:.3g}" if hi <= lo * 1.005 else f"lr {lo:.3g}…{hi:.3g}"


def schedule_label(ctx: Ctx, steps: int) -> str:
    if ctx.schedule is None:
        return f"{steps} steps"
    return f"the first {steps} steps of {ctx.schedule_name}"


def copy_model(ctx: Ctx) -> nn.Module:
    return copy.deepcopy(ctx.model).to(ctx.device)


def optimizer_for(ctx: Ctx, model: nn.Module, weight_decay: float | None = None):
    wd = ctx.weight_decay if weight_decay is None else weight_decay
    return make_optimizer(ctx.opt, model, ctx.lr, wd, ctx.momentum, ctx.nesterov)


def train_step(model: nn.Module, optimizer, loss_fn: Callable, xb, yb) -> float:
    """One optimiser step on (xb, yb) through the engine's step (L-BFGS aware); the loss."""

    def closure():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(logits_of(model, xb), yb)
        loss.backward()
        return loss.detach()

    return optimizer_step(optimizer, closure)


def fixed_batches(ctx: Ctx, steps: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """`steps` minibatches of the training subset, reshuffled every pass (seeded)."""
    g = torch.Generator().manual_seed(ctx.seed + 1)
    n, bs = len(ctx.x), min(ctx.batch_size, len(ctx.x))
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=g).to(ctx.device)
        for start in range(0, n - bs + 1, bs):
            idx = order[start : start + bs]
            yield ctx.x[idx], ctx.y[idx]
            done += 1
            if done >= steps:
                return


def accuracy_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int = 512) -> float:
    with torch.no_grad():
        correct = sum(
            int((logits_of(model, x[i : i + bs]).argmax(1) == y[i : i + bs]).sum())
            for i in range(0, len(x), bs)
        )
    return correct / max(1, len(x))


def expected_loss(ctx: Ctx) -> tuple[float, str]:
    c = ctx.num_classes
    if ctx.loss == "hinge":
        return float(c - 1), f"C - 1 = {c - 1}"
    return math.log(c), f"ln {c} = {math.log(c):.3f}"


def probe_batch(ctx: Ctx) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(len(ctx.x), 256)
    return ctx.x[:n], ctx.y[:n]
