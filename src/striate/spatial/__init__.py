"""Spatial transformers (Jaderberg et al. 2015): the affine grid and bilinear sampler written
from the equations, thin-plate-spline and projective transforms, the STN layer, and the distorted
MNIST sets of the paper."""
