"""Semantic segmentation: FCN, DeconvNet and U-Net, transposed convolution and unpooling, mIoU
and pixel accuracy, and the Segmentation task. Importing it registers the networks in the model
zoo (`fcn`, `deconvnet`, `unet`); the job (training runs, run folders, figures) is
`striate.segmentation.run`."""

from striate.segmentation.fcn import FCN, DeconvNet
from striate.segmentation.metrics import ConfusionMatrix, confusion_matrix, iou_per_class, scores
from striate.segmentation.task import Segmentation
from striate.segmentation.unet import UNet
from striate.segmentation.upsampling import (
    BedOfNailsUnpool,
    MaxUnpool,
    NearestUnpool,
    conv_matrix,
    transposed_conv,
)

__all__ = [
    "FCN",
    "BedOfNailsUnpool",
    "ConfusionMatrix",
    "DeconvNet",
    "MaxUnpool",
    "NearestUnpool",
    "Segmentation",
    "UNet",
    "confusion_matrix",
    "conv_matrix",
    "iou_per_class",
    "scores",
    "transposed_conv",
]
