"""Evaluation: metrics, confusion matrices, reports."""

from striate.evaluate.confusion import confusion_matrix, plot_confusion

__all__ = ["confusion_matrix", "plot_confusion"]
