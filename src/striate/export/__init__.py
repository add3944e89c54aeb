"""Shipping a trained classifier: TorchScript (trace or script), torch.export (.pt2) and ONNX,
each checked against eager PyTorch on real images before it is written, each carrying its class
names, normalisation and input size, each loadable without pickle.

    report = export_model(load_model("runs/digits"), "digits.onnx", "onnx")
    model = load_exported("digits.onnx")   # model(x) -> logits; model.metadata["classes"]
"""

from striate.export.checked import ExportReport, export_model
from striate.export.formats import FORMATS, SUFFIXES, ExportedModel, load_exported
from striate.export.parity import BATCH_SIZES, TOLERANCE, Parity, ParityError
from striate.export.samples import sample_images

__all__ = [
    "BATCH_SIZES",
    "FORMATS",
    "SUFFIXES",
    "TOLERANCE",
    "ExportReport",
    "ExportedModel",
    "Parity",
    "ParityError",
    "export_model",
    "load_exported",
    "sample_images",
]
