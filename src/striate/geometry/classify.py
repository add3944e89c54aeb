"""Point-cloud classification of the primitives with a small PointNet (Qi et al. 2017, §4.2: a
shared per-point MLP, then a symmetric function — max pooling — over the points, then an MLP
on the pooled feature), trained by striate's engine (`Trainer` with the `Classification` task).

    clouds, labels = primitive_clouds(200, points=128, seed=0)    # randomly rotated/scaled/noisy
    result = train_pointnet(train_per_class=200, steps=300, seed=0)
    result.accuracy                                                # held-out accuracy

The classes are `CLASSES`: sphere, box (random half-extents 0.5–1), cylinder, torus and the
icosahedron (the icosphere before any subdivision: 20 flat faces where the sphere is round).
Each cloud is a uniform surface sample, scaled by a random factor, rotated by a uniformly random
rotation, and jittered with Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from striate.checks import integer, number, positive_int
from striate.engine import Classification, Trainer
from striate.errors import InputError
from striate.geometry.primitives import icosphere, sample_mesh, sample_surface

CLASSES = ("sphere", "box", "cylinder", "torus", "icosahedron")


def random_rotations(n: int, g: torch.Generator) -> torch.Tensor:
    """`n` rotation matrices (n, 3, 3) uniform on SO(3): the Q of a Gaussian matrix's QR with
    R's diagonal made positive (Mezzadri 2007), its sign flipped where det = −1."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=g))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    det = torch.linalg.det(q)
    return q * det.sign()[:, None, None]


def primitive_clouds(
    per_class: int,
    points: int = 128,
    seed: int = 0,
    *,
    noise: float = 0.02,
    scale: tuple[float, float] = (0.6, 1.4),
) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` clouds of each class in `CLASSES`: (N, points, 3) float32 and labels (N,)
    int64, in class order. The cuboids' surface density is the cube's, stretched (near uniform)."""
    per_class = positive_int("primitive_clouds", "per_class", per_class, error=InputError)
    points = positive_int("primitive_clouds", "points", points, error=InputError)
    noise = number("primitive_clouds", "noise", noise, low=0, error=InputError)
    g = torch.Generator().manual_seed(integer("primitive_clouds", "seed", seed, error=InputError))
    ico_v, ico_f = icosphere(0)
    clouds = []
    for name in CLASSES:  # i.i.d. surface samples of a class, cut into clouds
        s = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        if name == "icosahedron":
            p, _ = sample_mesh(ico_v, ico_f, per_class * points, seed=s)
        else:
            p, _ = sample_surface(name, per_class * points, seed=s)
        p = p.view(per_class, points, 3)
        if name == "box":  # a cuboid: the cube stretched per axis (half-extents 0.5–1)
            p = p * (0.5 + 0.5 * torch.rand(per_class, 1, 3, generator=g))
        clouds.append(p)
    x = torch.cat(clouds)
    n = len(x)
    lo, hi = scale
    x = x * (lo + (hi - lo) * torch.rand(n, 1, 1, generator=g))
    x = x @ random_rotations(n, g).transpose(1, 2)
    x = x + noise * torch.randn(x.shape, generator=g)
    y = torch.arange(len(CLASSES)).repeat_interleave(per_class)
    return x, y


class PointNet(nn.Module):
    """The vanilla PointNet classifier (no T-nets): a per-point MLP 3→widths (linear layers on
    every point alike — the paper's 1×1 convolutions — with batch norm over all points), max over
    points, then an MLP to class scores. Input (B, N, 3)."""

    def __init__(
        self,
        num_classes: int = len(CLASSES),
        widths: tuple[int, ...] = (32, 64, 128),
        hidden: int = 64,
    ) -> None:
        super().__init__()
        positive_int("PointNet", "num_classes", num_classes, error=InputError)
        layers: list[nn.Module] = []
        c = 3
        for w in widths:
            layers += [nn.Linear(c, w), nn.BatchNorm1d(w), nn.ReLU()]
            c = w
        self.point_mlp = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != 3:
            raise InputError(
                f"PointNet: input must be point clouds (B, N, 3), got {tuple(x.shape)}"
            )
        b, n, _ = x.shape
        h = self.point_mlp(x.reshape(b * n, 3)).view(b, n, -1)  # the same MLP at every point
        return self.head(h.amax(1))  # max pool: invariant to the points' order


class CloudLoader:
    """Batches of (clouds, labels) on a device, reshuffled every epoch from `seed` (the last
    partial batch dropped when `shuffle`, so batch norm never sees a batch of one)."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size = positive_int("CloudLoader", "batch_size", batch_size, error=InputError)
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.shuffle else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.x)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g).to(self.x.device)
            self.epoch += 1
        else:
            order = torch.arange(n, device=self.x.device)
        for k in range(len(self)):
            i = order[k * self.batch_size : (k + 1) * self.batch_size]
            yield self.x[i], self.y[i]


@dataclass
class PointNetResult:
    """The trained model, its held-out accuracy and loss, and the Trainer's history."""

    model: PointNet
    accuracy: float
    loss: float
    history: list[dict[str, float]] = field(default_factory=list)


def train_pointnet(
    *,
    train_per_class: int = 200,
    test_per_class: int = 100,
    points: int = 128,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> PointNetResult:
    """Generate train and held-out clouds (different seeds), train a `PointNet` with Adam for
    `steps` optimiser steps through the engine's `Trainer` and `Classification` task, and score
    it on the held-out clouds."""
    seed = integer("train_pointnet", "seed", seed, error=InputError)
    x, y = primitive_clouds(train_per_class, points, seed=2 * seed)
    xt, yt = primitive_clouds(test_per_class, points, seed=2 * seed + 1)
    torch.manual_seed(seed)
    model = PointNet()
    trainer = Trainer(
        steps=steps, task=Classification(topk=(1,)), opt="adam", lr=lr, device=device,
        precision="fp32", seed=seed, progress=progress, tensorboard=False,
    )  # fmt: skip
    train = CloudLoader(x, y, batch_size, shuffle=True, seed=seed, device=trainer.device)
    test = CloudLoader(xt, yt, 256, shuffle=False, device=trainer.device)
    history = trainer.fit(model, train)
    scores = trainer.evaluate(model, test)
    return PointNetResult(model, scores["acc"], scores["loss"], history)
