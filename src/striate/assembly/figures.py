"""Pictures of the kitting world: a disassembly sequence, the networks' heat maps and chosen
action, and Form2Fit's t-SNE view of the descriptors (per-pixel descriptors embedded in 3-D
and shown as RGB; Zakka et al. 2019, Fig. 8)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from striate.assembly.data import Episode, crop
from striate.assembly.networks import rotate
from striate.assembly.policy import Networks, plan
from striate.assembly.sim import Kit, State, heightmap


def plot_episode(episode: Episode) -> Figure:
    """The heightmap before each disassembly step (cup: circle, drop: cross) and at the end."""
    steps = episode.steps
    fig, axes = plt.subplots(1, len(steps) + 1, figsize=(2.6 * (len(steps) + 1), 1.6))
    for i, ax in enumerate(np.atleast_1d(axes)):
        state = steps[i].before if i < len(steps) else steps[-1].after
        ax.imshow(heightmap(episode.kit, state).numpy(), cmap="viridis", vmin=0, vmax=1)
        if i < len(steps):
            s = steps[i]
            ax.plot(s.pick[0] - 0.5, s.pick[1] - 0.5, "o", mfc="none", mec="red", ms=7)
            ax.plot(s.place[0] - 0.5, s.place[1] - 0.5, "x", color="red", ms=7)
            ax.set_title(f"step {i + 1}: {len(s.trials)} trial(s)", fontsize=8)
        else:
            ax.set_title("disassembled", fontsize=8)
        ax.axis("off")
    fig.suptitle("disassembly by trial-and-error suction (reversed: assembly)", fontsize=9)
    return fig


@torch.no_grad()
def plot_heatmaps(nets: Networks, kit: Kit, state: State) -> Figure:
    """Heightmap with the planned pick (circle) and place (cross), the suction map of the
    object half and the place map of the kit half (sigmoid of the logits)."""
    hm = heightmap(kit, state)
    size = kit.size
    device = next(nets.suction.parameters()).device
    pick, place, turn = plan(nets, hm)
    suction = torch.sigmoid(nets.suction(hm[None, None, :, size:].to(device)))[0, 0].cpu()
    placing = torch.sigmoid(nets.place(hm[None, None, :, :size].to(device)))[0, 0].cpu()
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.2), gridspec_kw={"width_ratios": [2, 1, 1]})
    axes[0].imshow(hm.numpy(), cmap="viridis", vmin=0, vmax=1)
    axes[0].plot(pick[0] - 0.5, pick[1] - 0.5, "o", mfc="none", mec="red", ms=8)
    axes[0].plot(place[0] - 0.5, place[1] - 0.5, "x", color="red", ms=8)
    axes[0].set_title(
        f"heightmap: pick, place, turn {360 * turn / nets.rotations:.0f}°", fontsize=8
    )
    axes[1].imshow(placing.numpy(), cmap="inferno", vmin=0, vmax=1)
    axes[1].set_title("place network (kit half)", fontsize=8)
    axes[2].imshow(suction.numpy(), cmap="inferno", vmin=0, vmax=1)
    axes[2].set_title("suction network (object half)", fontsize=8)
    for ax in axes:
        ax.axis("off")
    return fig


@torch.no_grad()
def plot_descriptor_tsne(
    nets: Networks, kit: Kit, state: State, turns: int = 4, points: int = 1000, seed: int = 0
) -> Figure:
    """t-SNE of per-pixel descriptors to RGB: the kit half's descriptors and those of each
    piece's object crop at `turns` evenly spaced turns. scikit-learn's TSNE embeds a seeded
    subsample of `points` foreground pixels in 3-D; every other pixel takes the colour of its
    nearest subsampled descriptor; the background is black."""
    from sklearn.manifold import TSNE  # noqa: PLC0415  (scikit-learn is slow to import)

    hm = heightmap(kit, state)
    size, c = kit.size, nets.crop_size
    device = next(nets.suction.parameters()).device
    kit_half = hm[None, None, :, :size].to(device)
    dk = nets.matching.kit(kit_half)[0].permute(1, 2, 0).cpu()  # S, S, D
    obj = hm[None, None, :, size:]
    centres = [torch.tensor([int(p[1]), int(p[0]) - size]) for p in state.poses if p[0] >= size]
    angles = torch.arange(turns) * (2 * math.pi / turns)
    crops = []
    for centre in centres:
        piece = crop(obj, centre[None], c)
        crops.append(rotate(piece.repeat(turns, 1, 1, 1), angles))
    stack = torch.cat(crops) if crops else torch.zeros(0, 1, c, c)
    do = nets.matching.object(stack.to(device)).permute(0, 2, 3, 1).cpu()  # M, c, c, D
    fg_kit = hm[:, :size] > 0
    fg_obj = stack[:, 0] > 0.25
    pool = torch.cat([dk[fg_kit], do[fg_obj]]).numpy()
    rng = np.random.default_rng(seed)
    sample = pool[rng.choice(len(pool), min(points, len(pool)), replace=False)]
    emb = TSNE(3, perplexity=min(30, len(sample) - 1), random_state=seed, init="pca").fit_transform(
        sample
    )
    emb = (emb - emb.min(0)) / np.ptp(emb, 0).clip(1e-9)

    def colour(desc: torch.Tensor, fg: torch.Tensor) -> np.ndarray:
        near = torch.cdist(desc.reshape(-1, desc.shape[-1]), torch.from_numpy(sample)).argmin(1)
        rgb = emb[near.numpy()].reshape(*desc.shape[:-1], 3)
        return rgb * fg[..., None].numpy()

    cols = 1 + turns
    rows = max(len(centres), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.7 * rows), squeeze=False)
    kit_rgb = colour(dk, fg_kit)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(kit_rgb)
    axes[0, 0].set_title("kit descriptors", fontsize=7)
    for i in range(len(centres)):
        for t in range(turns):
            j = i * turns + t
            axes[i, 1 + t].imshow(colour(do[j], fg_obj[j]))
            axes[i, 1 + t].set_title(f"piece {i + 1}, turn {360 * t / turns:.0f}°", fontsize=7)
    fig.suptitle("t-SNE of pixel descriptors as RGB", fontsize=8)
    return fig
