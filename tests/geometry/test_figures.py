"""The primitives' picture: one column per shape, four representations, depth as an image."""

import numpy as np
from matplotlib.figure import Figure

from striate.geometry import Camera, render_depth
from striate.geometry.figures import plot_primitives


def test_plot_primitives_small():
    fig = plot_primitives(shapes=("box", "torus"), points=50, voxels=4, size=8)
    assert isinstance(fig, Figure)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2  # the depth maps, misses shown blank (NaN)
    shown = np.asarray(images[1].get_array().filled(np.nan), dtype=float)
    ref = render_depth("torus", Camera(size=(8, 8), fov=45)).numpy()
    assert np.array_equal(np.isnan(shown), ref == 0)
    assert np.allclose(shown[ref > 0], ref[ref > 0])
