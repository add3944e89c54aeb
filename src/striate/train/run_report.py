"""A finished run's plots and report.html, and the facts of where and how it ran."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from striate.engine.run_info import run_facts
from striate.evaluate.confusion import confusion_matrix, plot_confusion
from striate.evaluate.curves import plot_history, plot_steps
from striate.evaluate.report import write_report

if TYPE_CHECKING:
    from striate.engine.trainer import Trainer
    from striate.train.assembly import RunData
    from striate.train.config import TrainConfig


def write_run_report(
    out: Path,
    config: TrainConfig,
    trainer: Trainer,
    data: RunData,
    test_metrics: dict[str, float],
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    worst: int = 16,
) -> Path:
    """Plots (PNG) and report.html for a finished run from the test set's `per_sample` outputs:
    what ran where, curves, confusion, hardest test images, and the Doctor section when
    `striate doctor` saved its results in the folder."""

    probs, labels, losses = outputs
    pred = probs.argmax(1)
    classes = data.test.classes
    cm = confusion_matrix(labels.numpy(), pred.numpy(), len(classes))
    steps = {k: v for k, v in trainer.steps_log.items() if not all(map(_nan, v))}
    for name, fig in (
        ("history.png", plot_history(trainer.history)),
        ("steps.png", plot_steps(steps)),
        ("confusion.png", plot_confusion(cm, classes)),
    ):
        fig.savefig(out / name, dpi=100, bbox_inches="tight")
    order = losses.argsort(descending=True)[:worst]
    final = {f"test_{k}": v for k, v in test_metrics.items()}
    if trainer.history:
        last = trainer.history[-1]
        final.update(
            {k: last[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in last}
        )
    final["epochs"] = trainer.epoch
    final["steps"] = trainer.step
    return write_report(
        out / "report.html",
        title=f"striate train: {config.model} on {config.data}",
        run=run_facts(out, trainer),
        config=config.to_dict(),
        history=trainer.history,
        steps=steps,
        final=final,
        classes=classes,
        confusion=cm,
        doctor=_saved_doctor(out),
        worst={
            "images": data.test.images[order].numpy(),
            "true": labels[order].tolist(),
            "pred": pred[order].tolist(),
            "loss": losses[order].tolist(),
            "prob": probs[order, pred[order]].tolist(),
        },
    )


def _saved_doctor(out: Path) -> dict | None:
    """The results `striate doctor --run RUN --out RUN` saved in the run folder, if any."""
    try:
        saved = json.loads((out / "doctor.json").read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and "checks" in saved else None


def _nan(v: float) -> bool:
    return isinstance(v, float) and math.isnan(v)
