"""A Dex-Net-style dataset: noisy depth images of random scenes, grasp candidates, robustness
labels (Mahler et al. 2017, Sec. V: sample scenes, sample antipodal grasps, label them with the
analytic robustness, render depth with observation noise).

    data = make_dataset(2000, seed=0)          # GraspDataset
    data.save("grasps.safetensors"); GraspDataset.load("grasps.safetensors")

Candidates per scene are `pairs` antipodal pairs sampled from the observed depth edges (the
valid ones) plus `random_grasps` random foreground grasps, each at a random depth fraction in
[−0.2, 1.1] between the observed top and table (so some are too shallow or hit the table). Their
robustness is the Monte-Carlo probability of success (`striate.grasp.analytic.robustness`); the
label is robustness > `threshold` (0.5 here: the grasp succeeds more often than not; the paper
thresholds its robust epsilon metric instead, and the blog post on it describes "force closure
probability"). Labels are balanced-ish: negatives are subsampled to at most `negatives_per_positive`
times the positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from striate._atomic import atomic_path
from striate.checks import integer, number, positive_int, positive_number
from striate.errors import DataError
from striate.grasp.analytic import Gripper, Uncertainty, robustness
from striate.grasp.planners import antipodal_candidates, random_candidates
from striate.grasp.scenes import Scenes, observe, random_scenes
from striate.progress import progress_bar


@dataclass
class GraspDataset:
    """Scenes (`scenes.depth` is the noise-free image), their observed depth `images`
    (N×1×H×W), and labelled grasps: `grasps` G×4, `scene` G (index into the scenes),
    `robustness` G and `labels` G (int64, 1 = robust)."""

    scenes: Scenes
    images: torch.Tensor
    grasps: torch.Tensor
    scene: torch.Tensor
    robustness: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.grasps)

    def subset(self, scene_ids: torch.Tensor) -> GraspDataset:
        """The scenes `scene_ids` (renumbered 0..) and their grasps."""
        keep = torch.isin(self.scene, scene_ids)
        remap = torch.full((len(self.scenes),), -1, dtype=torch.long)
        remap[scene_ids] = torch.arange(len(scene_ids))
        return GraspDataset(
            self.scenes[scene_ids], self.images[scene_ids], self.grasps[keep],
            remap[self.scene[keep]], self.robustness[keep], self.labels[keep],
        )  # fmt: skip

    def save(self, path: str | Path) -> None:
        s = self.scenes
        tensors = {
            "vertices": s.vertices, "heights": s.heights, "convex": s.convex.to(torch.uint8),
            "clean": s.depth, "images": self.images, "grasps": self.grasps, "scene": self.scene,
            "robustness": self.robustness, "labels": self.labels,
        }  # fmt: skip
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                      metadata={"format": "striate-grasps/1"})  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> GraspDataset:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path} is not a file: make one with `striate grasp generate`")
        try:
            t = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise DataError(f"{path} is not a grasp dataset (safetensors): {e}") from e
        need = {"vertices", "heights", "convex", "clean", "images", "grasps", "scene",
                "robustness", "labels"}  # fmt: skip
        if not need <= set(t):
            raise DataError(f"{path} lacks {sorted(need - set(t))}: not a striate grasp dataset")
        scenes = Scenes(t["vertices"], t["heights"], t["convex"].bool(), t["clean"])
        return cls(scenes, t["images"], t["grasps"], t["scene"], t["robustness"], t["labels"])


def label_candidates(
    scenes: Scenes,
    images: torch.Tensor,
    *,
    pairs: int = 256,
    random_grasps: int = 16,
    samples: int = 32,
    seed: int = 0,
    gripper: Gripper = Gripper(),
    uncertainty: Uncertainty = Uncertainty(),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidates of a batch of scenes and their robustness: grasps G×4, scene index G,
    robustness G (see the module docstring)."""
    n = len(scenes)
    g = torch.Generator().manual_seed(seed)
    frac = -0.2 + 1.3 * torch.rand(n, pairs, generator=g)
    cand, valid = antipodal_candidates(images, pairs, seed=seed, gripper=gripper, fraction=frac)
    frac_r = -0.2 + 1.3 * torch.rand(n, random_grasps, generator=g)
    rand = random_candidates(images, random_grasps, seed=seed + 1, fraction=frac_r)
    ids = torch.arange(n)
    grasps = torch.cat([cand[valid], rand.reshape(-1, 4)])
    scene = torch.cat([ids[:, None].expand(n, pairs)[valid], ids.repeat_interleave(random_grasps)])
    r = robustness(
        scenes.vertices[scene], scenes.heights[scene], grasps, samples=samples, seed=seed + 2,
        uncertainty=uncertainty, gripper=gripper,
    )  # fmt: skip
    return grasps, scene, r


def make_dataset(
    n_scenes: int,
    *,
    seed: int = 0,
    pairs: int = 256,
    random_grasps: int = 16,
    samples: int = 32,
    threshold: float = 0.5,
    negatives_per_positive: float = 1.0,
    chunk: int = 250,
    progress: bool = False,
) -> GraspDataset:
    """`n_scenes` seeded scenes with noisy images and labelled, balanced-ish candidates."""
    positive_int("make_dataset", "n_scenes", n_scenes)
    integer("make_dataset", "pairs", pairs, low=1)
    integer("make_dataset", "random_grasps", random_grasps, low=0)
    positive_int("make_dataset", "samples", samples)
    number("make_dataset", "threshold", threshold, low=0, high=1)
    positive_number("make_dataset", "negatives_per_positive", negatives_per_positive)
    scenes = random_scenes(n_scenes, seed=seed)
    images = observe(scenes.depth, seed=seed + 1)
    parts = []
    with progress_bar("labelling grasps", n_scenes, "scenes", enabled=progress) as advance:
        for start in range(0, n_scenes, chunk):  # chunks of scenes bound the memory
            part = slice(start, start + chunk)
            grasps, scene, r = label_candidates(
                scenes[part], images[part], pairs=pairs, random_grasps=random_grasps,
                samples=samples, seed=seed * 7919 + start,
            )  # fmt: skip
            parts.append((grasps, scene + start, r))
            advance(min(chunk, n_scenes - start))
    grasps = torch.cat([p[0] for p in parts])
    scene = torch.cat([p[1] for p in parts])
    r = torch.cat([p[2] for p in parts])
    labels = (r > threshold).long()
    pos = labels.nonzero().squeeze(1)
    neg = (labels == 0).nonzero().squeeze(1)
    keep_neg = max(int(negatives_per_positive * len(pos)), min(len(neg), 1))
    g = torch.Generator().manual_seed(seed + 3)
    neg = neg[torch.randperm(len(neg), generator=g)[:keep_neg]]
    keep = torch.cat([pos, neg]).sort().values
    return GraspDataset(scenes, images, grasps[keep], scene[keep], r[keep], labels[keep])
