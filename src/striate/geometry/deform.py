"""Pixel2Mesh in miniature (Wang et al. 2018): deform an icosphere into a target point cloud.

    result = deform_to_target(target_points, steps=200, seed=0)
    result.chamfer[0], result.chamfer[-1]          # the Chamfer distance before and after
    plot_deformation(result)                       # curve + the mesh before and after

A few graph-convolution layers (`GraphConv`) read each vertex's position and predict its offset;
the loss is the Chamfer distance between the deformed vertices and the target cloud, plus
Pixel2Mesh's regularisers (§3.4): the edge-length loss and the Laplacian loss against the
initial sphere. Adam on the network's weights, on one shape (no image: the "encoder" is the
vertex positions themselves). A short loop of its own, as the design says of optimisation that
is not minibatch training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from matplotlib.figure import Figure
from torch import nn

from striate.checks import integer, positive_int, positive_number
from striate.errors import InputError
from striate.geometry.graph import (
    GraphConv,
    edge_length_loss,
    laplacian_loss,
    mesh_adjacency,
    mesh_edges,
    neighbour_sum,
)
from striate.geometry.metrics import chamfer_distance
from striate.geometry.primitives import icosphere
from striate.progress import progress_bar


class MeshDeformer(nn.Module):
    """Graph-conv layers (ReLU between) from vertex positions (V, 3) to offsets (V, 3); the last
    layer starts at zero so the first mesh is the sphere."""

    def __init__(self, hidden: int = 64, layers: int = 4) -> None:
        super().__init__()
        positive_int("MeshDeformer", "hidden", hidden, error=InputError)
        integer("MeshDeformer", "layers", layers, low=2, error=InputError)
        sizes = [3] + [hidden] * (layers - 1) + [3]
        self.convs = nn.ModuleList(GraphConv(a, b) for a, b in zip(sizes, sizes[1:], strict=False))
        for p in self.convs[-1].parameters():
            nn.init.zeros_(p)

    def forward(self, vertices: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        h = vertices
        for i, conv in enumerate(self.convs):
            h = conv(h, adj)
            if i < len(self.convs) - 1:
                h = torch.relu(h)
        return vertices + h


@dataclass
class Deformation:
    """What `deform_to_target` returns: the mesh before and after, the target, and the Chamfer
    distance (squared, both ways) at every step (before the step's update) and after the last."""

    faces: torch.Tensor
    before: torch.Tensor
    after: torch.Tensor
    target: torch.Tensor
    chamfer: list[float] = field(default_factory=list)


def deform_to_target(
    target: torch.Tensor,
    *,
    subdivisions: int = 3,
    radius: float = 0.5,
    steps: int = 200,
    lr: float = 1e-3,
    hidden: int = 64,
    edge_weight: float = 0.1,
    laplacian_weight: float = 0.3,
    seed: int = 0,
    progress: bool = False,
) -> Deformation:
    """Fit an icosphere of `radius` (`subdivisions` times subdivided) to the points `target`
    (M, 3) by training a `MeshDeformer`; see the module docstring."""
    if target.dim() != 2 or target.shape[1] != 3 or len(target) == 0:
        raise InputError(
            f"deform_to_target: target must be points (M, 3), got {tuple(target.shape)}"
        )
    steps = positive_int("deform_to_target", "steps", steps, error=InputError)
    lr = positive_number("deform_to_target", "lr", lr, error=InputError)
    torch.manual_seed(integer("deform_to_target", "seed", seed, error=InputError))
    target = target.float()
    v0, faces = icosphere(subdivisions, radius)
    adj = mesh_adjacency(faces, len(v0))
    edges = mesh_edges(faces)
    degree = neighbour_sum(adj, torch.ones(len(v0), 1)).squeeze(1)
    net = MeshDeformer(hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history: list[float] = []
    with progress_bar("deform", steps, "steps", enabled=progress) as advance:
        for _ in range(steps):
            v = net(v0, adj)
            cd = chamfer_distance(v, target)
            loss = cd + edge_weight * edge_length_loss(v, edges)
            loss = loss + laplacian_weight * laplacian_loss(v, v0, adj, degree)
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(float(cd.detach()))
            advance(1)
    with torch.no_grad():
        after = net(v0, adj)
        history.append(float(chamfer_distance(after, target)))
    return Deformation(faces, v0, after, target, history)


def plot_deformation(result: Deformation) -> Figure:
    """The Chamfer distance over the steps (log scale) and the mesh before and after (matplotlib
    trisurf, the target points faint behind the result)."""
    fig = Figure(figsize=(11, 3.6))
    ax = fig.add_subplot(1, 3, 1)
    ax.semilogy(result.chamfer)
    ax.set_xlabel("step")
    ax.set_ylabel("Chamfer distance (squared)")
    ax.set_title(f"{result.chamfer[0]:.3g} → {result.chamfer[-1]:.3g}")
    ax.grid(True, which="both", alpha=0.3)
    lim = float(torch.cat([result.target, result.after]).abs().max()) * 1.05
    tri = result.faces.numpy()
    for k, (name, v) in enumerate((("before", result.before), ("after", result.after))):
        a3 = fig.add_subplot(1, 3, k + 2, projection="3d")
        p = v.detach().numpy()
        a3.plot_trisurf(
            p[:, 0], p[:, 1], p[:, 2], triangles=tri, cmap="viridis", linewidth=0.1,
            edgecolor="k", alpha=0.9,
        )  # fmt: skip
        t = result.target.numpy()[::4]
        a3.scatter(t[:, 0], t[:, 1], t[:, 2], s=0.5, c="r", alpha=0.3)
        a3.set_xlim(-lim, lim)
        a3.set_ylim(-lim, lim)
        a3.set_zlim(-lim, lim)
        a3.set_box_aspect((1, 1, 1))
        a3.set_title(f"{name} (target points in red)")
        a3.set_axis_off()
    fig.tight_layout()
    return fig
