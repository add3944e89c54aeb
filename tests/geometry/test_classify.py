"""PointNet on the primitives: the data (rotations, labels), the symmetry of the network, and
training through the engine to far above chance on a tiny budget."""

import pytest
import torch

from striate.errors import InputError
from striate.geometry import CLASSES, PointNet, primitive_clouds, random_rotations, train_pointnet


def test_rotations_are_rotations():
    r = random_rotations(500, torch.Generator().manual_seed(0))
    eye = torch.eye(3).expand(500, 3, 3)
    assert torch.allclose(r @ r.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(500), atol=1e-5)
    # uniform on SO(3): the rotated x axis is uniform on the sphere, mean ~0
    assert float((r[:, :, 0].mean(0)).abs().max()) < 0.1


def test_primitive_clouds():
    x, y = primitive_clouds(6, points=32, seed=0, noise=0.0, scale=(1.0, 1.0))
    assert x.shape == (30, 32, 3) and torch.equal(y, torch.arange(5).repeat_interleave(6))
    r = x.norm(dim=-1)
    assert torch.allclose(r[y == CLASSES.index("sphere")], torch.ones(6, 32), atol=1e-5)
    ico = r[y == CLASSES.index("icosahedron")]
    assert float(ico.max()) <= 1 + 1e-5 and float(ico.min()) > 0.79
    again, _ = primitive_clouds(6, points=32, seed=0, noise=0.0, scale=(1.0, 1.0))
    assert torch.equal(x, again)
    with pytest.raises(InputError, match="per_class"):
        primitive_clouds(0)


def test_pointnet_is_order_invariant():
    torch.manual_seed(0)
    net = PointNet().eval()
    x = torch.randn(4, 50, 3)
    perm = torch.randperm(50)
    assert torch.allclose(net(x), net(x[:, perm]), atol=1e-6)
    assert net(x).shape == (4, len(CLASSES))
    with pytest.raises(InputError, match="point clouds"):
        net(torch.randn(4, 3, 50))


def test_pointnet_beats_chance_on_a_tiny_budget():
    result = train_pointnet(
        train_per_class=100, test_per_class=40, points=64, steps=100, batch_size=32, lr=3e-3
    )
    assert result.history and result.history[-1]["step"] == 100
    assert result.accuracy > 0.5  # chance is 0.2


@pytest.mark.slow
def test_pointnet_full_budget():
    result = train_pointnet(
        train_per_class=200, test_per_class=100, points=128, steps=1500, lr=3e-3
    )
    assert result.accuracy > 0.85
