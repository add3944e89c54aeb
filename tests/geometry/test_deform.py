"""The icosphere deformed to a cuboid's point cloud: the Chamfer distance falls by a large factor,
measured independently with scipy's cKDTree."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from scipy.spatial import cKDTree

from striate.errors import InputError
from striate.geometry import deform_to_target, plot_deformation, sample_surface


def squared_chamfer_ckdtree(a, b):
    a, b = a.double().numpy(), b.double().numpy()
    d_ab, _ = cKDTree(b).query(a)
    d_ba, _ = cKDTree(a).query(b)
    return float(np.mean(d_ab**2) + np.mean(d_ba**2))


def test_deformation_converges():
    target, _ = sample_surface("box", 1000, seed=1, half=(0.9, 0.6, 0.4))
    result = deform_to_target(target, subdivisions=2, steps=60, seed=0)
    assert len(result.chamfer) == 61
    before = squared_chamfer_ckdtree(result.before, target)
    after = squared_chamfer_ckdtree(result.after, target)
    assert result.chamfer[0] == pytest.approx(before, rel=1e-4)
    assert result.chamfer[-1] == pytest.approx(after, rel=1e-4)
    assert after < before / 10
    fig = plot_deformation(result)
    assert isinstance(fig, Figure) and len(fig.axes) == 3


def test_bad_target():
    with pytest.raises(InputError, match="target must be points"):
        deform_to_target(torch.zeros(10, 2))
