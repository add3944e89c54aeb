"""Spatial transformers (Jaderberg et al. 2015): the affine grid and bilinear sampler written
from the equations, thin-plate-spline and projective transforms, the STN layer, and the distorted
MNIST sets of the paper (R, RTS, P, E, cluttered)."""

from striate.spatial.cluttered import cluttered
from striate.spatial.distorted import elastic, projective, rotated, rotated_translated_scaled
from striate.spatial.grid import affine_grid, projective_grid
from striate.spatial.sampler import grid_sample
from striate.spatial.stn import STN, SpatialTransformer
from striate.spatial.tps import TPSGrid
from striate.spatial.variants import VARIANTS, distorted_set

__all__ = [
    "STN",
    "VARIANTS",
    "SpatialTransformer",
    "TPSGrid",
    "affine_grid",
    "cluttered",
    "distorted_set",
    "elastic",
    "grid_sample",
    "projective",
    "projective_grid",
    "rotated",
    "rotated_translated_scaled",
]
