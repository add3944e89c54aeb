"""The grasp-quality CNN (GQ-CNN) of Dex-Net 2.0 on grasp-aligned crops, as an engine Task.

    crops = aligned_crops(depth, grasps[:, :3], size=32)   # grasp axis = the middle row
    net = GQCNN()
    Trainer(epochs=5, task=GraspQuality(), opt="adam", lr=1e-3).fit(net, train, val)
    p = net.probability(crops, grasps[:, 3])                # P(robust) per grasp

Mahler et al. 2017, Sec. IV-B: the depth image is "transformed to align the grasp center with
the image center and the grasp axis with the middle row"; the gripper depth z "is fed to a
separate fully connected layer" and joins the image branch before the last layers. Crops are
sampled with `affine_grid`/`grid_sample` for the whole batch at once. The network is a small
version of theirs (conv 5×5, pool, 5×5, pool, 3×3, pool, fc; z → fc 16; joined → fc → 2 logits),
with the input normalisation (image mean/std, z mean/std) fitted on the training set and kept as
buffers.

A batch is `(crops N×1×C×C, z N, labels N)`: labels 1 for robust grasps. The loss is the
cross-entropy of the two logits; evaluation reports loss, accuracy, precision and recall of
"robust" (probability > 0.5).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import positive_int
from striate.engine.task import Batch, Evaluation, Step, Task, stack_stats
from striate.errors import ConfigError, InputError


def crop_transform(
    centres: torch.Tensor, angles: torch.Tensor, image_size: tuple[int, int], size: int
) -> torch.Tensor:
    """The N×2×3 `affine_grid` matrices that sample a size×size crop whose pixel (size//2,
    size//2) sits at the grasp centre (pixel coordinates, pixel (i, j)'s centre at x=j, y=i) and
    whose rows run along the grasp axis (cos θ, sin θ), one crop pixel per image pixel.

    Crop pixel (r, k) lands at centre + (k − size//2)·u + (r − size//2)·v with v = (−sin θ, cos θ);
    affine_grid (align_corners=False) gives crop coordinates u_n = (2k+1)/size − 1, so
    k − size//2 = a·u_n + b with a = size/2, b = size/2 − 1/2 − size//2; the input's normalised
    x is (2x + 1)/W − 1."""
    h, w = image_size
    cos, sin = angles.cos(), angles.sin()
    a = size / 2
    b = size / 2 - 0.5 - size // 2
    # position in pixels: p = c + R [a u_n + b, a v_n + b],  R = [[cos, -sin], [sin, cos]]
    px = torch.stack([cos * a, -sin * a, centres[:, 0] + (cos - sin) * b], -1)
    py = torch.stack([sin * a, cos * a, centres[:, 1] + (sin + cos) * b], -1)
    sx, sy = 2 / w, 2 / h
    row_x = px * sx + torch.stack(
        [torch.zeros_like(cos)] * 2 + [torch.full_like(cos, 1 / w - 1)], -1
    )
    row_y = py * sy + torch.stack(
        [torch.zeros_like(cos)] * 2 + [torch.full_like(cos, 1 / h - 1)], -1
    )
    return torch.stack([row_x, row_y], 1)


def aligned_crops(
    depth: torch.Tensor, grasps: torch.Tensor, size: int = 32, index: torch.Tensor | None = None
) -> torch.Tensor:
    """Grasp-aligned crops N×1×size×size of depth images (M×1×H×W) for grasps N×(≥3) (x, y, θ):
    the grasp centre at pixel (size//2, size//2), the axis along the middle row (bilinear;
    outside the image, the border value). `index` (N) says which image each grasp is in (default:
    image i for grasp i)."""
    positive_int("aligned_crops", "size", size)
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise InputError(f"aligned_crops: depth must be M×1×H×W, got {tuple(depth.shape)}")
    if grasps.dim() != 2 or grasps.shape[1] < 3:
        raise InputError(f"aligned_crops: grasps must be N×3 or N×4, got {tuple(grasps.shape)}")
    images = depth if index is None else depth[index]
    if len(images) != len(grasps):
        raise InputError(
            f"aligned_crops: {len(grasps)} grasps for {len(images)} images (give index=)"
        )
    theta = crop_transform(grasps[:, :2], grasps[:, 2], depth.shape[-2:], size).to(depth.dtype)
    grid = F.affine_grid(theta, [len(grasps), 1, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class GQCNN(nn.Module):
    """A small GQ-CNN: an image branch on the aligned crop and a z branch, joined (see the
    module docstring). `forward(crops, z)` returns N×2 logits (not robust, robust)."""

    def __init__(self, crop: int = 32, width: int = 16, hidden: int = 128) -> None:
        super().__init__()
        positive_int("GQCNN", "crop", crop)
        if crop % 8:
            raise ConfigError(f"GQCNN: crop must be a multiple of 8, got {crop}")
        self.crop = crop
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (crop // 8) ** 2, hidden), nn.ReLU(),
        )  # fmt: skip
        self.depth_branch = nn.Sequential(nn.Linear(1, 16), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(hidden + 16, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.register_buffer("stats", torch.tensor([0.0, 1.0, 0.0, 1.0]))  # im mean, std, z ...

    def fit_normalisation(self, crops: torch.Tensor, z: torch.Tensor) -> GQCNN:
        """Set the input normalisation from training crops and depths (mean and std of each)."""
        s = torch.stack(
            [crops.mean(), crops.std().clamp_min(1e-6), z.mean(), z.std().clamp_min(1e-6)]
        )
        self.stats.copy_(s.to(self.stats))
        return self

    def image_features(self, crops: torch.Tensor) -> torch.Tensor:
        m, s = self.stats[0], self.stats[1]
        return self.features((crops - m) / s)

    def joined(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Logits from image features N×F and depths N."""
        zm, zs = self.stats[2], self.stats[3]
        depth = self.depth_branch(((z.reshape(-1, 1) - zm) / zs).to(features.dtype))
        return self.head(torch.cat([features, depth], 1))

    def forward(self, crops: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.joined(self.image_features(crops), z)

    @torch.no_grad()
    def probability(self, crops: torch.Tensor, z: torch.Tensor, batch: int = 1024) -> torch.Tensor:
        """P(robust) per grasp, in batches, in eval mode (the mode is restored). `z` is N, or
        N×L for L depths per crop (the image branch then runs once per crop): N or N×L."""
        was = self.training
        self.eval()
        zz = z.reshape(len(z), -1)
        try:
            out = []
            for i in range(0, len(crops), batch):
                f = self.image_features(crops[i : i + batch])
                zi = zz[i : i + batch]
                levels = zi.shape[1]
                logits = self.joined(f.repeat_interleave(levels, 0), zi.reshape(-1))
                out.append(logits.float().softmax(1)[:, 1].reshape(-1, levels))
        finally:
            self.train(was)
        p = torch.cat(out) if out else torch.zeros(0, zz.shape[1], device=crops.device)
        return p.reshape(z.shape)


class GraspQuality(Task):
    """Binary grasp robustness: cross-entropy of the GQ-CNN's logits; evaluation reports loss,
    accuracy, precision and recall of the robust class."""

    name = "grasp-quality"
    running_stats = ("loss", "acc", "n")
    metrics = ("loss", "acc", "precision", "recall")
    monitor = "val_acc"

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        crops, z, y = batch[:3]
        logits = model(crops, z).float()
        losses = F.cross_entropy(logits, y, reduction="none")
        loss = losses.mean()
        correct = (logits.detach().argmax(1) == y).sum()
        return Step(loss, stack_stats(loss.detach() * len(y), correct, len(y)), losses)

    def evaluation_stats(self, model: nn.Module, batch: Batch, **options: Any) -> torch.Tensor:
        crops, z, y = batch[:3]
        logits = model(crops, z).float()
        loss = F.cross_entropy(logits, y, reduction="sum")
        pred = logits.argmax(1)
        tp = ((pred == 1) & (y == 1)).sum()
        fp = ((pred == 1) & (y == 0)).sum()
        fn = ((pred == 0) & (y == 1)).sum()
        correct = (pred == y).sum()
        return stack_stats(loss, correct, tp, fp, fn, len(y))

    def summarize(self, sums: torch.Tensor) -> dict[str, float]:
        values = sums.tolist()
        if len(values) == len(self.running_stats):
            return super().summarize(sums)
        loss, correct, tp, fp, fn, n = values
        n = max(n, 1)
        return {
            "loss": loss / n,
            "acc": correct / n,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
        }

    def evaluation(self, **options: Any) -> Evaluation:
        return Evaluation(self, **options)

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        raise ConfigError("GraspQuality: predict with GQCNN.probability(crops, z)")


class TensorBatches:
    """Minibatches of equal-length tensors on a device, reshuffled each epoch from a seed (what
    the Trainer needs of a training loader: a length and batches)."""

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int = 128,
        shuffle: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        positive_int("TensorBatches", "batch_size", batch_size)
        self.tensors = [t.to(device) for t in tensors]
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.device = torch.device(device)
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.tensors[0]) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        n = len(self.tensors[0])
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g).to(self.device)
            self.epoch += 1
        else:
            order = torch.arange(n, device=self.device)
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)
