"""Form2Fit's losses as engine Tasks (Zakka et al. 2019, §IV).

- `Heatmap` (suction and place networks): per-pixel binary cross-entropy over the labelled
  pixels of a label map (1 positive, 0 negative, 255 ignored), positives weighted by
  #negatives/#positives of the batch so both classes count equally (a handful of positives
  against thousands of negatives otherwise teaches "never").
- `Matching` (the two-stream descriptor network): the pixel-correspondence contrastive loss of
  dense object nets (Schmidt et al. 2017) over discretised rotations, as Form2Fit trains it: the
  object crop is turned by every one of the R rotations; a match is an object pixel of the
  piece in the crop at the right turn and the kit pixel it lands on (place pixel + offset),
  whose descriptors are pulled together (squared distance); non-matches are pushed apart to a
  hinge `margin`: the same object pixels against random kit pixels elsewhere (more than 2 px
  from the match), and the cup's (centre) pixel at every wrong turn against the place pixel.

      L = mean_matches ‖d_o − d_k‖² + mean_nonmatches max(0, m − ‖d_o − d_k‖)²   (each set)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.assembly.data import IGNORE
from striate.assembly.networks import rotate, rotated_stack, rotation_angles
from striate.checks import positive_int, positive_number
from striate.engine.task import TASKS, Batch, Step, Task, stack_stats


def heatmap_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """The class-balanced BCE of logits (N, 1, H, W) against labels (N, H, W); with the number
    of labelled pixels and of those classified right (logit > 0 ⇔ positive)."""
    logits = logits.float().squeeze(1)
    counted = labels != IGNORE
    target = (labels == 1).float()
    pos = (target * counted).sum()
    neg = counted.sum() - pos
    weight = torch.where(target > 0, neg / pos.clamp_min(1), torch.ones_like(target)) * counted
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = (bce * weight).sum() / weight.sum().clamp_min(1e-12)
    right = (((logits > 0).float() == target) & counted).sum()
    return loss, right, counted.sum()


class Heatmap(Task):
    """Per-pixel success heat maps (suction or place); batches are (heightmaps, label maps)."""

    name = "heatmap"
    running_stats = ("loss", "acc", "n")
    metrics = ("loss", "acc")
    monitor = "val_loss"

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        x, y = batch[:2]
        loss, right, n = heatmap_loss(model(x), y)
        return Step(loss, stack_stats(loss.detach() * n, right, n))

    def summarize(self, sums: torch.Tensor) -> dict[str, float]:
        loss, right, n = sums.tolist()
        return {"loss": loss / max(n, 1), "acc": right / max(n, 1)}


def contrastive_loss(
    a: torch.Tensor, b: torch.Tensor, match: torch.Tensor, margin: float
) -> torch.Tensor:
    """Pixel-correspondence contrastive loss of descriptor pairs a, b (M, D): the mean squared
    distance over matching pairs plus the mean squared hinge max(0, margin − distance) over
    non-matching ones (a term with no pairs is 0)."""
    d = (a - b).pow(2).sum(-1).clamp_min(1e-12).sqrt()
    m = match.float()
    pull = (d.pow(2) * m).sum() / m.sum().clamp_min(1)
    push = (F.relu(margin - d).pow(2) * (1 - m)).sum() / (1 - m).sum().clamp_min(1)
    return pull + push


def gather_pixels(maps: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Descriptors (N, M, D) of maps (N, D, H, W) at pixel indices rows, cols (N, M)."""
    n = torch.arange(len(maps), device=maps.device)[:, None]
    return maps.permute(0, 2, 3, 1)[n, rows, cols]


class Matching(Task):
    """The descriptor network's task; batches are (kit halves N×1×S×S, object crops N×1×C×C,
    place pixels N×2, turn bins N, piece masks N×1×C×C) (`assembly_datasets()["matching"]`).
    `rot_acc` is how often the right turn has the nearest centre descriptor."""

    name = "matching"
    running_stats = ("loss", "rot_acc", "n")
    metrics = ("loss", "rot_acc")
    monitor = "val_loss"

    def __init__(self, rotations: int = 20, margin: float = 1.0, samples: int = 64) -> None:
        self.rotations = positive_int("Matching", "rotations", rotations)
        self.margin = positive_number("Matching", "margin", margin)
        self.samples = positive_int("Matching", "samples", samples)

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        kit, crops, place, turn, mask = batch[:5]
        n, r, side, s = len(kit), self.rotations, crops.shape[-1], kit.shape[-1]
        c = side // 2
        dk = model.kit(kit).float()  # N, D, S, S
        do = model.object(rotated_stack(crops, r)).float()  # N·R, D, C, C
        do = do.reshape(n, r, *do.shape[1:])
        right = do[torch.arange(n, device=do.device), turn]  # N, D, C, C
        angles = rotation_angles(r, kit.device)[turn]
        turned = rotate(mask.float(), angles)[:, 0] > 0.5  # the piece at the right turn
        g = torch.multinomial(turned.flatten(1).float() + 1e-6, self.samples, replacement=True)
        ur, uc = g // side, g % side
        vr = (place[:, :1] + ur - c).clamp(0, s - 1)
        vc = (place[:, 1:] + uc - c).clamp(0, s - 1)
        d_obj = gather_pixels(right, ur, uc)
        d_kit = gather_pixels(dk, vr, vc)
        # spatial non-matches: the same object pixels against random kit pixels > 2 px away
        wr = torch.randint(0, s, vr.shape, device=kit.device)
        wc = torch.randint(0, s, vc.shape, device=kit.device)
        far = ((wr - vr).pow(2) + (wc - vc).pow(2)) > 4
        d_far = gather_pixels(dk, wr, wc)
        # rotational non-matches: the cup's pixel at every turn against the place pixel
        centre = do[:, :, :, c, c]  # N, R, D
        d_place = gather_pixels(dk, place[:, :1], place[:, 1:])  # N, 1, D
        wrong = torch.ones(n, r, dtype=torch.bool, device=kit.device)
        wrong[torch.arange(n, device=kit.device), turn] = False
        a = torch.cat([d_obj.flatten(0, 1), d_obj.flatten(0, 1), centre.flatten(0, 1)])
        b = torch.cat(
            [d_kit.flatten(0, 1), d_far.flatten(0, 1), d_place.expand(-1, r, -1).flatten(0, 1)]
        )
        match = torch.cat(
            [torch.ones_like(far.flatten()), torch.zeros_like(far.flatten()), ~wrong.flatten()]
        )
        keep = torch.cat([torch.ones_like(far.flatten()), far.flatten(), wrong.flatten()])
        loss = contrastive_loss(a[keep], b[keep], match[keep], self.margin)
        with torch.no_grad():
            dist = (centre - d_place).norm(dim=-1)  # N, R
            rot_right = (dist.argmin(1) == turn).sum()
        return Step(loss, stack_stats(loss.detach() * n, rot_right, n))

    def summarize(self, sums: torch.Tensor) -> dict[str, float]:
        loss, right, n = sums.tolist()
        return {"loss": loss / max(n, 1), "rot_acc": right / max(n, 1)}

    def evaluation_stats(self, model: nn.Module, batch: Batch, **options: Any) -> torch.Tensor:
        return self.training_step(model, batch).stats


TASKS.add("assembly-heatmap", Heatmap)
TASKS.add("assembly-matching", Matching)
