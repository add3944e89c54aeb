"""A finished run's plots and report.html, and the facts of where and how it ran."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from striate._atomic import save_figure
from striate.engine.run_info import run_facts
from striate.evaluate.confusion import confusion_matrix, plot_confusion
from striate.evaluate.curves import plot_history, plot_steps
from striate.evaluate.report import figure_html, write_report
from striate.interpret.explanations import explanations_figure, usable_methods
from striate.models.io import load_model

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
    explained: int = 6,
) -> Path:
    """Plots (PNG) and report.html for a finished run from the test set's `per_sample` outputs:
    what ran where, curves, confusion, hardest test images and where the network looked in
    them, and the Doctor section when `striate doctor` saved its results in the folder."""

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
        save_figure(fig, out / name)
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
        extra_sections=_explanations(out, data, order[:explained], pred, labels),
        worst={
            "images": data.test.images[order].numpy(),
            "true": labels[order].tolist(),
            "pred": pred[order].tolist(),
            "loss": losses[order].tolist(),
            "prob": probs[order, pred[order]].tolist(),
        },
    )


def _explanations(
    out: Path, data: RunData, order: torch.Tensor, pred: torch.Tensor, labels: torch.Tensor
) -> list[tuple[str, str]]:
    """Saliency and Grad-CAM of the predicted class on the highest-loss test images (`order`), as
    the saved model sees them (explanations.png and a report section)."""
    model = load_model(out / "model")
    classes = data.test.classes
    titles = [f"{classes[labels[i]]} → {classes[pred[i]]}" for i in order.tolist()]
    methods = usable_methods(model, ("saliency", "grad-cam"))
    fig = explanations_figure(
        model, model.prepare(data.test.images[order]), pred[order], methods=methods, titles=titles
    )
    about = (
        "<p>The highest-loss test images (true → predicted) and what the predicted class's score "
        "rests on: saliency is |∂score/∂pixel|, its maximum over the colour channels (Simonyan "
        "et al. 2014)"
        + ("; Grad-CAM weighs the last convolution's maps by their mean gradient (Selvaraju et "
           "al. 2017)" if "grad-cam" in methods else "")
        + ". <code>striate explain METHOD RUN IMAGE</code> draws them for any image.</p>"
    )  # fmt: skip
    image = figure_html(fig, "saliency and Grad-CAM maps", save=out / "explanations.png")
    return [("Where the network looked", about + image)]


def _saved_doctor(out: Path) -> dict | None:
    """The results `striate doctor --run RUN --out RUN` saved in the run folder, if any."""
    try:
        saved = json.loads((out / "doctor.json").read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and "checks" in saved else None


def _nan(v: float) -> bool:
    return isinstance(v, float) and math.isnan(v)
