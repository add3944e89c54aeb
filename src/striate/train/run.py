"""A training run from a TrainConfig: the assembled run (`assembly.prepare`) trained into a run
folder with its report.

The library side of `striate train` and `striate lr-find` (`striate evaluate`: `evaluation.py`,
the report: `run_report.py`):

    result = train_run(TrainConfig(epochs=5))
    result.out / "report.html"

The run folder holds `config.json` (the resolved settings), `metrics.csv`, `steps.csv`,
`checkpoints/`, `model/` (for `load_model`), the plots as PNG and `report.html`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from striate._atomic import save_figure, write_json
from striate.engine import distributed
from striate.engine.run_info import resolved_facts, timestamp
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, StriateError
from striate.evaluate.tta import untrained_views
from striate.models.io import save_model
from striate.outputs import check_folder, clear_folder, default_folder
from striate.train.assembly import RunData, load_run_data, prepare
from striate.train.config import TrainConfig
from striate.train.evaluation import per_sample, score
from striate.train.run_report import write_run_report


@dataclass
class RunResult:
    out: Path
    config: TrainConfig
    history: list[dict[str, float]]
    test: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    stop_reason: str | None = None
    seconds: float = 0.0
    epoch: int = 0  # epochs finished (when interrupted: saved in checkpoints/last.safetensors)
    step: int = 0  # optimiser steps taken
    already_complete: bool = False  # resume found a finished run: nothing was trained
    warnings: list[str] = field(default_factory=list)


def default_out(config: TrainConfig, base: Path = Path("runs/train")) -> Path:
    """runs/train/DATA-MODEL, or -2, -3, ... when that holds an earlier run."""
    return default_folder(base, f"{Path(config.data).stem}-{config.model}")


def resume_point(out: str | Path) -> tuple[int, int] | None:
    """(epoch, step) of the state saved in a run folder's last checkpoint; None without one."""
    try:
        saved = json.loads((Path(out) / "checkpoints" / "last.json").read_text())
        return int(saved["epoch"]), int(saved["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_complete(out: str | Path) -> bool:
    """Whether a run folder holds a finished run (its final model is written at the end)."""
    return (Path(out) / "model" / "model.json").is_file()


def train_run(
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> RunResult:
    """Train as `config` says and write the run folder; `resume` continues a stopped run
    (its folder, with the settings saved in its config.json).

    A run folder that holds results is refused unless `overwrite` (its contents are removed once
    every option has been checked). Every option is checked before the folder is made; a run that
    fails after that (a loss that diverges) leaves `failed.json` with the diagnosis.

    Under `torchrun` every process runs this: each trains on its share of every batch, and only
    process 0 chooses and writes the run folder.
    """

    ctx = distributed.init_from_env(device=config.device)
    try:
        return _train_run(config, resume, overwrite, progress, ctx)
    finally:
        distributed.cleanup()


def _resumed_config(out: Path) -> TrainConfig:
    saved = out / "config.json"
    if not saved.is_file():
        raise ConfigError(f"cannot resume: {out} is not a run folder (no config.json)")
    try:
        settings = json.loads(saved.read_text())
        config = TrainConfig.from_dict(settings["config"])
        threads = settings.get("resolved", {}).get("threads")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"cannot resume: {saved} is damaged ({e})") from e
    if config.threads is None and isinstance(threads, int) and 0 < threads <= (os.cpu_count() or 1):
        # the threads it started with, whatever the load now: the same sums, bit for bit
        config = dataclasses.replace(config, threads=threads)
    if not is_complete(out) and resume_point(out) is None:
        raise ConfigError(f"cannot resume: {out} has no checkpoints/last.safetensors")
    return config


def _claim_out(config: TrainConfig, overwrite: bool, ctx: Any) -> Path:
    """The run folder (process 0 chooses; every process gets it), refused when it holds results
    and `overwrite` is not given."""

    out, error = None, None
    if ctx.is_main:
        out = Path(config.out) if config.out else default_out(config)
        try:
            check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
        except StriateError as e:
            error = e
    out, error = distributed.broadcast_object((out, error))
    if error is not None:
        raise error
    return out


def _train_run(
    config: TrainConfig, resume: str | Path | None, overwrite: bool, progress: bool, ctx: Any
) -> RunResult:

    start = time.perf_counter()
    if resume is not None:
        out = Path(resume)
        config = _resumed_config(out)
        if is_complete(out):
            info = json.loads((out / "model" / "model.json").read_text())
            test = {k.removeprefix("test_"): v for k, v in info.get("metrics", {}).items()}
            return RunResult(out, config, [], test=test, already_complete=True)
    else:
        out = _claim_out(config, overwrite, ctx)
    if not ctx.is_main:
        distributed.barrier()  # process 0 downloads and decodes first; the others read its cache
    data = load_run_data(config)
    if ctx.is_main:
        distributed.barrier()
    device = str(ctx.device) if ctx.distributed else None
    run = prepare(config, out=out, progress=progress, device=device, data=data)
    model, trainer, train, val, test = run.model, run.trainer, run.train, run.val, run.test
    warnings = untrained_views(config.tta, config.augment, data.train.shape)
    if resume is None:
        trainer.check(model, train)  # a bad option fails here, before the folder is made
        if ctx.is_main:
            clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
            _write_config(out, config, trainer, data, model)
    try:
        history = trainer.fit(model, train, val, resume=out if resume is not None else None)
    except Exception as e:
        if ctx.is_main:
            _write_failure(out, trainer, e)
        if isinstance(e, StriateError) and ctx.is_main:
            raise type(e)(f"{e}\n  the diagnosis is saved in {out / 'failed.json'}") from e
        raise
    result = RunResult(
        out,
        config,
        history,
        interrupted=trainer.interrupted,
        stop_reason=trainer.stop_reason,
        epoch=trainer.epoch,
        step=trainer.step,
        warnings=warnings,
    )
    if trainer.interrupted or not ctx.is_main:
        result.seconds = time.perf_counter() - start
        return result
    final = trainer.eval_model
    outputs = per_sample(trainer, final, test)
    result.test = score(trainer, *outputs[:2])

    save_model(
        out / "model",
        final,
        classes=data.train.classes,
        in_shape=data.train.shape,
        normalization=data.normalizer.state_dict(),
        metrics={f"test_{k}": v for k, v in result.test.items()},
    )
    (out / "failed.json").unlink(missing_ok=True)  # a diverged run resumed and finished
    result.seconds = time.perf_counter() - start
    write_run_report(out, config, trainer, data, result.test, outputs)
    return result


def _write_failure(out: Path, trainer: Trainer, error: Exception) -> None:
    """failed.json: why a run stopped with an error, so its folder explains itself."""
    write_json(
        out / "failed.json",
        {
            "error": str(error),
            "kind": type(error).__name__,
            "epoch": trainer.epoch,
            "step": trainer.step,
            "date": timestamp(),
        },
    )


def _write_config(
    out: Path, config: TrainConfig, trainer: Trainer, data: RunData, model: torch.nn.Module
) -> None:
    """config.json: the settings, and what they resolved to on this machine."""
    resolved = resolved_facts(
        trainer,
        model,
        classes=list(data.train.classes),
        in_shape=list(data.train.shape),
        train_images=len(data.train),
        val_images=0 if data.val is None else len(data.val),
        test_images=len(data.test),
    )
    resolved["replaced_head"] = getattr(model, "replaced_head", None)
    resolved["normalization"] = data.normalizer.state_dict()
    write_json(out / "config.json", {"config": config.to_dict(), "resolved": resolved})


def lr_find_run(
    config: TrainConfig,
    *,
    start: float = 1e-8,
    end: float = 10.0,
    num_steps: int = 100,
    out: Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
):
    """The LR finder on the training data of `config`; saves lr_find.png/json in `out` (a folder
    that holds results is refused unless `overwrite`)."""
    if out is not None:
        check_folder(out, overwrite)
    run = prepare(config, progress=False)
    result = run.trainer.lr_find(run.model, run.train, start=start, end=end, num_steps=num_steps)
    if out is not None:
        clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
        save_figure(result.plot(), out / "lr_find.png")
        write_json(out / "lr_find.json", result.to_dict())
    return result
