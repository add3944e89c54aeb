"""Graph convolution on a mesh (lecture 11, "Graph Convolution"; Wang et al. 2018, Pixel2Mesh,
eq. 1): f'_i = W0 f_i + Σ_{j ∈ N(i)} W1 f_j, the neighbours N(i) being the vertices that share an
edge of a face with i. The neighbour sum is one sparse matrix product with the mesh's adjacency.

    adj = mesh_adjacency(faces, len(vertices))    # (V, V) sparse, symmetric, ones on edges
    conv = GraphConv(3, 64)
    h = conv(vertices, adj)                       # (V, 64); (B, V, C) inputs work too
"""

from __future__ import annotations

import torch
from torch import nn

from striate.checks import positive_int
from striate.errors import InputError


def mesh_edges(faces: torch.Tensor) -> torch.Tensor:
    """The undirected edges (E, 2) int64 of a triangle mesh, each once with i < j."""
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise InputError(f"mesh_edges: faces must be (F, 3), got {tuple(faces.shape)}")
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).long()
    return torch.unique(e.sort(dim=1).values, dim=0)


def mesh_adjacency(faces: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """The symmetric 0/1 adjacency (V, V) of a mesh as a coalesced sparse COO float32 tensor."""
    v = positive_int("mesh_adjacency", "num_vertices", num_vertices, error=InputError)
    e = mesh_edges(faces)
    if len(e) and int(e.max()) >= v:
        raise InputError(f"mesh_adjacency: faces index vertex {int(e.max())} of {v} vertices")
    idx = torch.cat([e, e.flip(1)]).T
    vals = torch.ones(idx.shape[1], dtype=torch.float32, device=faces.device)
    return torch.sparse_coo_tensor(idx, vals, (v, v), check_invariants=True).coalesce()


def neighbour_sum(adj: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Σ_{j ∈ N(i)} f_j for features (V, C) or (B, V, C): one sparse product."""
    if f.dim() == 2:
        return torch.sparse.mm(adj, f)
    b, v, c = f.shape
    out = torch.sparse.mm(adj, f.transpose(0, 1).reshape(v, b * c))
    return out.view(v, b, c).transpose(0, 1)


class GraphConv(nn.Module):
    """f'_i = W0 f_i + b + Σ_{j ∈ N(i)} W1 f_j (Pixel2Mesh eq. 1, with W0's bias)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        positive_int("GraphConv", "in_features", in_features, error=InputError)
        positive_int("GraphConv", "out_features", out_features, error=InputError)
        self.w0 = nn.Linear(in_features, out_features)
        self.w1 = nn.Linear(in_features, out_features, bias=False)

    def forward(self, f: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        # W1 first: the sparse product then runs on out_features columns, as often fewer
        return self.w0(f) + neighbour_sum(adj, self.w1(f))


def edge_length_loss(vertices: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Mean squared edge length (Pixel2Mesh §3.4, "edge length loss"): keeps vertices from
    flying off and the mesh from folding."""
    d = vertices[..., edges[:, 0], :] - vertices[..., edges[:, 1], :]
    return (d * d).sum(-1).mean()


def laplacian_loss(
    vertices: torch.Tensor, rest: torch.Tensor, adj: torch.Tensor, degree: torch.Tensor
) -> torch.Tensor:
    """Mean squared change of the uniform Laplacian coordinates δ_i = v_i − mean_{j∈N(i)} v_j from
    the rest mesh to the deformed one (Pixel2Mesh §3.4, "Laplacian regularization"): neighbours
    move together."""

    def delta(v):
        return v - neighbour_sum(adj, v) / degree.unsqueeze(-1)

    d = delta(vertices) - delta(rest)
    return (d * d).sum(-1).mean()
