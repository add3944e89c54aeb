"""Evaluation: confusion matrices, training curves, the self-contained HTML run report."""

from striate.evaluate.confusion import (
    confusion_matrix,
    most_confused,
    per_class_accuracy,
    plot_confusion,
)
from striate.evaluate.curves import plot_history, plot_losses, plot_steps, smooth
from striate.evaluate.report import plot_worst, write_report

__all__ = [
    "confusion_matrix",
    "most_confused",
    "per_class_accuracy",
    "plot_confusion",
    "plot_history",
    "plot_losses",
    "plot_steps",
    "plot_worst",
    "smooth",
    "write_report",
]
