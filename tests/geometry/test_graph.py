"""Graph convolution against the dense formula written out with loops, and its gradient."""

import pytest
import torch

from striate.errors import InputError
from striate.geometry import GraphConv, icosphere, mesh, mesh_adjacency, mesh_edges


def neighbours_by_loops(faces, num_vertices):
    """N(i) from the faces, one triangle at a time."""
    nbrs = [set() for _ in range(num_vertices)]
    for a, b, c in faces.tolist():
        for i, j in ((a, b), (b, c), (c, a)):
            nbrs[i].add(j)
            nbrs[j].add(i)
    return nbrs


def test_adjacency_matches_faces():
    v, f = icosphere(2)
    adj = mesh_adjacency(f, len(v))
    dense = adj.to_dense()
    nbrs = neighbours_by_loops(f, len(v))
    ref = torch.zeros(len(v), len(v))
    for i, js in enumerate(nbrs):
        ref[i, list(js)] = 1
    assert torch.equal(dense, ref) and torch.equal(dense, dense.T)
    degree = dense.sum(1)
    assert int((degree == 5).sum()) == 12 and int((degree == 6).sum()) == len(v) - 12
    assert len(mesh_edges(f)) == 30 * 4**2


def dense_formula(conv, f, nbrs):
    """f'_i = W0 f_i + b + Σ_{j ∈ N(i)} W1 f_j, vertex by vertex."""
    w0, b, w1 = conv.w0.weight, conv.w0.bias, conv.w1.weight
    rows = []
    for i, js in enumerate(nbrs):
        out = w0 @ f[i] + b
        for j in sorted(js):
            out = out + w1 @ f[j]
        rows.append(out)
    return torch.stack(rows)


@pytest.mark.parametrize("shape", ["icosphere", "torus"])
def test_graph_conv_forward_and_gradient(shape):
    v, f = mesh(shape, 1)
    torch.manual_seed(0)
    conv = GraphConv(3, 5).double()
    feats = torch.randn(len(v), 3, dtype=torch.float64, requires_grad=True)
    adj = mesh_adjacency(f, len(v)).double()
    nbrs = neighbours_by_loops(f, len(v))
    out = conv(feats, adj)
    ref = dense_formula(conv, feats, nbrs)
    assert torch.allclose(out, ref, atol=1e-12)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), [feats, *conv.parameters()])
    ref_grads = torch.autograd.grad((ref * g).sum(), [feats, *conv.parameters()])
    for a, b in zip(grads, ref_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_graph_conv_batched_and_gradcheck():
    v, f = icosphere(1)
    adj = mesh_adjacency(f, len(v)).double()
    conv = GraphConv(3, 4).double()
    x = torch.randn(2, len(v), 3, dtype=torch.float64)
    out = conv(x, adj)
    assert torch.allclose(out[1], conv(x[1], adj))
    small = x[0].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: conv(t, adj), (small,))


def test_bad_arguments():
    with pytest.raises(InputError, match="faces must be"):
        mesh_edges(torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(InputError, match="index vertex"):
        mesh_adjacency(torch.tensor([[0, 1, 5]]), 3)
