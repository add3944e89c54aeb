"""The facts of a run folder: where and how it ran (device, precision, sizes, time, versions),
for every task's report."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from striate import __version__
from striate.evaluate.report import write_report

if TYPE_CHECKING:
    from striate.engine.trainer import Trainer


def resolved_facts(trainer: Trainer, model: torch.nn.Module, **sizes: Any) -> dict[str, Any]:
    """What a run's settings resolved to on this machine, for config.json's "resolved" (read
    back by `run_facts`): device, precision, processes, torch's CPU threads, parameters, versions,
    the start time, and `sizes` (train_images=…, …)."""
    params = list(model.parameters())
    return {
        "device": str(trainer.device),
        "precision": trainer.precision.name,
        "processes": trainer.world_size,
        "threads": torch.get_num_threads(),
        **sizes,
        "parameters": sum(p.numel() for p in params),
        "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
        "striate_version": striate_version(),
        "torch_version": torch.__version__,
        "started": timestamp(),
    }


def run_facts(out: Path, trainer: Trainer) -> dict[str, Any]:
    """What a run resolved to and where it ran, for the report: device, precision, processes,
    parameters, data sizes, training time, dates and versions (from config.json)."""
    try:
        resolved = json.loads((out / "config.json").read_text()).get("resolved", {})
    except (OSError, ValueError):
        resolved = {}
    facts = {
        "device": resolved.get("device", str(trainer.device)),
        "precision": resolved.get("precision", trainer.precision.name),
        "processes": resolved.get("processes", trainer.world_size),
        "CPU threads": resolved.get("threads"),
        "parameters": resolved.get("parameters"),
        "trainable parameters": resolved.get("trainable_parameters"),
        "training images": resolved.get("train_images"),
        "validation images": resolved.get("val_images"),
        "test images": resolved.get("test_images"),
        "training time": _duration(sum(h.get("time", 0.0) for h in trainer.history)),
        "started": resolved.get("started"),
        "finished": timestamp(),
        "striate": resolved.get("striate_version", striate_version()),
        "torch": resolved.get("torch_version", torch.__version__),
    }
    return {k: f"{v:,}" if isinstance(v, int) else v for k, v in facts.items() if v is not None}


def write_task_report(
    out: Path,
    trainer: Trainer,
    *,
    title: str,
    config: dict[str, Any],
    final: dict[str, float],
    sections: list[tuple[str, str]],
) -> Path:
    """`out/report.html` of a task without class scores (detection, segmentation,
    reconstruction): the run's facts, settings, curves, `final` numbers and the task's figure
    `sections` (heading, `figure_html`)."""
    return write_report(
        out / "report.html",
        title=title,
        run=run_facts(out, trainer),
        config=config,
        history=trainer.history,
        steps=trainer.steps_log,
        final={**final, "epochs": trainer.epoch, "steps": trainer.step},
        classes=[],
        confusion=None,
        metrics=trainer.task.metrics,
        extra_sections=sections,
    )


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min" if hours else f"{m} min {s:02d} s" if m else f"{s} s"


def timestamp() -> str:
    """Now, in local time with its offset, to the second (ISO 8601)."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def striate_version() -> str:
    return __version__
