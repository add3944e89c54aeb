"""striate.scratch: a NumPy reference engine — layers with hand-written backward passes, im2col
convolution, losses and finite-difference checks — to see (and test) what autograd does.
Pure NumPy: nothing in this package imports torch."""

from striate.scratch.conv import AvgPool2d, Conv2d, MaxPool2d, col2im, conv_output_size, im2col
from striate.scratch.layers import (
    BatchNorm,
    Dropout,
    Flatten,
    Layer,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from striate.scratch.losses import accuracy, softmax_cross_entropy
from striate.scratch.numeric_gradient import numeric_gradient, relative_error

__all__ = [
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Layer",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "accuracy",
    "col2im",
    "conv_output_size",
    "im2col",
    "numeric_gradient",
    "relative_error",
    "softmax_cross_entropy",
]
