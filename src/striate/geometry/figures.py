"""Pictures of the primitives in every representation: a row per representation (surface
points, mesh, voxel grid, depth map), a column per shape.

    fig = plot_primitives()              # matplotlib Figure; save with striate._atomic.save_figure
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from striate.geometry.depth import Camera, render_depth, render_mesh_depth
from striate.geometry.primitives import SHAPES, mesh, sample_surface, voxel_grid


def plot_primitives(
    shapes: Sequence[str] = SHAPES, points: int = 1000, voxels: int = 12, size: int = 64
) -> Figure:
    """Each shape as a point cloud (coloured by its normal), a triangle mesh, a voxel grid
    (`voxels` cells a side) and a depth map rendered by ray casting (`size`² pixels)."""
    fig = Figure(figsize=(2.6 * len(shapes), 10))
    cam = Camera(size=(size, size), fov=45)
    rows = ("points", "mesh", "voxels", "depth")
    for c, shape in enumerate(shapes):
        p, n = sample_surface(shape, points, seed=0, subdivisions=1)
        v, f = mesh(shape, 1 if shape == "icosphere" else 2)
        for r, what in enumerate(rows):
            k = r * len(shapes) + c + 1
            if what == "depth":
                ax = fig.add_subplot(len(rows), len(shapes), k)
                d = (
                    render_mesh_depth(v, f, cam)
                    if shape == "icosphere"
                    else render_depth(shape, cam)
                )
                shown = d.masked_fill(d == 0, float("nan")).numpy()
                im = ax.imshow(shown, cmap="magma_r")
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
                ax.set_axis_off()
                continue
            ax = fig.add_subplot(len(rows), len(shapes), k, projection="3d")
            if what == "points":
                x = p.numpy()
                ax.scatter(x[:, 0], x[:, 1], x[:, 2], s=1, c=(n.numpy() + 1) / 2)
            elif what == "mesh":
                x = v.numpy()
                ax.plot_trisurf(
                    x[:, 0], x[:, 1], x[:, 2], triangles=f.numpy(), color="lightsteelblue",
                    edgecolor="k", linewidth=0.15,
                )  # fmt: skip
            else:
                ax.voxels(voxel_grid(shape, voxels).numpy(), facecolors="tan", edgecolor="k",
                          linewidth=0.2)  # fmt: skip
            lim = (0, voxels) if what == "voxels" else (-1.2, 1.2)  # voxels: 2.5 units, in cells
            ax.set_xlim(*lim)
            ax.set_ylim(*lim)
            ax.set_zlim(*lim)
            ax.set_box_aspect((1, 1, 1))
            ax.set_axis_off()
            if r == 0:
                ax.set_title(shape)
    for r, what in enumerate(rows):
        fig.text(0.005, 1 - (r + 0.5) / len(rows), what, rotation=90, va="center", fontsize=11)
    fig.tight_layout()
    return fig
