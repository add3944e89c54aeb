"""striate.scratch: a NumPy reference engine — layers with hand-written backward passes, im2col
convolution, losses and finite-difference checks — to see (and test) what autograd does; a Model
of layers, the SGD variants, a minibatch Solver, and MNIST as arrays.
Pure NumPy: nothing in this package imports torch."""

from striate.scratch.conv import AvgPool2d, Conv2d, MaxPool2d, col2im, conv_output_size, im2col
from striate.scratch.data import load_mnist_arrays
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
from striate.scratch.model import Model
from striate.scratch.numeric_gradient import numeric_gradient, relative_error
from striate.scratch.optim import SGD, AdaGrad, Adam, Momentum, Nesterov, Optimizer, RMSProp
from striate.scratch.solver import Solver

__all__ = [
    "AdaGrad",
    "Adam",
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Layer",
    "Linear",
    "MaxPool2d",
    "Model",
    "Momentum",
    "Nesterov",
    "Optimizer",
    "RMSProp",
    "ReLU",
    "SGD",
    "Sigmoid",
    "Softmax",
    "Solver",
    "Tanh",
    "accuracy",
    "col2im",
    "conv_output_size",
    "im2col",
    "load_mnist_arrays",
    "numeric_gradient",
    "relative_error",
    "softmax_cross_entropy",
]
