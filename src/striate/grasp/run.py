"""The three jobs behind `striate grasp generate|train|plan`, each writing one folder.

    generate_job(Path("runs/grasp/data"), scenes=2000, seed=0)
    train_job(Path("runs/grasp/data"), Path("runs/grasp/gqcnn"), epochs=8)
    plan_job(Path("runs/grasp/gqcnn"), Path("runs/grasp/plan"), scenes=200, seed=100)

`generate` writes dataset.safetensors (`GraspDataset`), examples.png and summary.json; `train`
splits the scenes into training and held-out ones, trains the GQ-CNN through the engine's Trainer
(`GraspQuality` task) and writes gqcnn.safetensors, metrics.json (held-out loss, accuracy,
precision, recall, and those of the majority-class classifier) and crops.png; `plan` draws new
scenes and compares planners by the analytic robustness of the grasp each picks: random grasps,
the best of the antipodal candidates by GQ-CNN score, the cross-entropy method, and the oracle
(the best antipodal candidate by true robustness); it writes results.json, results.md and
plans.png.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from striate._atomic import atomic_path, save_figure, write_json
from striate.checks import integer, number, positive_int, positive_number
from striate.device import resolve_device
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, DataError
from striate.grasp.analytic import Gripper, robustness
from striate.grasp.dataset import GraspDataset, make_dataset
from striate.grasp.figures import plot_crops, plot_grasps
from striate.grasp.gqcnn import GQCNN, GraspQuality, TensorBatches, aligned_crops
from striate.grasp.planners import (
    DEPTH_FRACTIONS,
    antipodal_candidates,
    cem_plan,
    random_candidates,
    score,
)
from striate.grasp.scenes import observe, random_scenes
from striate.outputs import check_folder, clear_folder
from striate.progress import phase

DATASET = "dataset.safetensors"
MODEL = "gqcnn.safetensors"


def generate_job(
    out: Path,
    *,
    scenes: int = 2000,
    seed: int = 0,
    pairs: int = 256,
    samples: int = 32,
    threshold: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Make and save a labelled dataset; returns its summary (also summary.json)."""
    check_folder(out, overwrite)
    data = make_dataset(
        scenes, seed=seed, pairs=pairs, samples=samples, threshold=threshold, progress=progress
    )
    clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
    data.save(out / DATASET)
    summary = {
        "scenes": scenes,
        "convex_scenes": int(data.scenes.convex.sum()),
        "grasps": len(data),
        "positives": int(data.labels.sum()),
        "threshold": threshold,
        "seed": seed,
        "pairs": pairs,
        "samples": samples,
    }
    write_json(out / "summary.json", summary)
    shown = min(8, scenes)
    grasps, colors = [], []
    for i in range(shown):
        mine = data.scene == i
        grasps.append(data.grasps[mine][:12])
        colors.append(["lime" if int(v) else "red" for v in data.labels[mine][:12]])
    fig = plot_grasps(data.images[:shown], grasps, colors, width=Gripper().max_width)
    save_figure(fig, out / "examples.png", dpi=60)
    return summary


@dataclass
class TrainSettings:
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    crop: int = 32
    width: int = 16
    test_fraction: float = 0.2
    seed: int = 0
    device: str = "cpu"


def _crops(data: GraspDataset, crop: int) -> torch.Tensor:
    return aligned_crops(data.images, data.grasps[:, :3], crop, index=data.scene)


def split_scenes(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scene ids for training and held-out testing (a seeded permutation)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, round(test_fraction * n)) if n > 1 else 0
    return order[n_test:].sort().values, order[:n_test].sort().values


def train_gqcnn(
    data: GraspDataset, settings: TrainSettings = TrainSettings(), progress: bool = False
) -> tuple[GQCNN, dict[str, Any]]:
    """Train a GQ-CNN on the training scenes of `data`; the metrics of the held-out scenes
    (loss, acc, precision, recall) and of the majority-class classifier on them."""
    s = settings
    positive_int("train_gqcnn", "epochs", s.epochs)
    positive_int("train_gqcnn", "batch_size", s.batch_size)
    positive_number("train_gqcnn", "lr", s.lr)
    number("train_gqcnn", "test_fraction", s.test_fraction, low=0.01, high=0.9)
    if len(data.scenes) < 2 or len(data) < 2:
        raise ConfigError(
            f"train_gqcnn: the dataset must hold at least 2 scenes with grasps, got "
            f"{len(data.scenes)} scenes and {len(data)} grasps: generate more --scenes"
        )
    device = resolve_device(s.device)
    train_ids, test_ids = split_scenes(len(data.scenes), s.test_fraction, s.seed)
    train, test = data.subset(train_ids), data.subset(test_ids)
    if len(train) == 0 or len(test) == 0:
        raise ConfigError("train_gqcnn: a split holds no grasps: generate more --scenes")
    torch.manual_seed(s.seed)
    net = GQCNN(crop=s.crop, width=s.width)
    x_train, x_test = _crops(train, s.crop), _crops(test, s.crop)
    net.fit_normalisation(x_train, train.grasps[:, 3])
    loader = TensorBatches(
        x_train, train.grasps[:, 3], train.labels, batch_size=s.batch_size, seed=s.seed,
        device=device,
    )  # fmt: skip
    held_out = TensorBatches(
        x_test, test.grasps[:, 3], test.labels, batch_size=1024, shuffle=False, device=device
    )
    trainer = Trainer(
        epochs=s.epochs, task=GraspQuality(), opt="adam", lr=s.lr, device=device, seed=s.seed,
        progress=progress, tensorboard=False, schedule="cosine",
    )  # fmt: skip
    history = trainer.fit(net, loader, held_out)
    metrics = trainer.evaluate(net, held_out)
    p = float(test.labels.float().mean())
    metrics.update(
        majority_acc=max(p, 1 - p),
        positive_fraction=p,
        train_grasps=len(train),
        test_grasps=len(test),
        train_scenes=len(train_ids),
        test_scenes=len(test_ids),
        final_train_loss=history[-1].get("train_loss", float("nan")) if history else float("nan"),
    )
    return net.cpu().eval(), metrics


def save_gqcnn(net: GQCNN, path: Path, settings: TrainSettings) -> None:
    meta = {"format": "striate-gqcnn/1", "crop": str(net.crop), "width": str(settings.width)}
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous().cpu() for k, v in net.state_dict().items()}, str(tmp), meta)


def load_gqcnn(folder: Path) -> GQCNN:
    path = folder / MODEL if folder.is_dir() else folder
    if not path.is_file():
        raise DataError(
            f"{folder} is not a model made by `striate grasp train` (no {MODEL} there): train one"
            f" with `striate grasp train DATA --out {folder}`"
        )
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        weights = load_file(str(path))
        net = GQCNN(crop=int(meta["crop"]), width=int(meta["width"]))
        net.load_state_dict(weights)
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as e:
        raise DataError(f"{path} is not a striate GQ-CNN: {e}") from e
    return net.eval()


def train_job(
    data_folder: Path,
    out: Path,
    settings: TrainSettings = TrainSettings(),
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    path = data_folder / DATASET if data_folder.is_dir() else data_folder
    data = GraspDataset.load(path)
    check_folder(out, overwrite)
    net, metrics = train_gqcnn(data, settings, progress=progress)
    clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
    save_gqcnn(net, out / MODEL, settings)
    write_json(out / "metrics.json", {"settings": asdict(settings), "data": str(path), **metrics})
    g = torch.Generator().manual_seed(settings.seed)
    pos, neg = data.labels.nonzero().squeeze(1), (data.labels == 0).nonzero().squeeze(1)
    pick = torch.cat([pos[torch.randperm(len(pos), generator=g)[:8]],
                      neg[torch.randperm(len(neg), generator=g)[:8]]])  # fmt: skip
    crops = aligned_crops(data.images, data.grasps[pick, :3], settings.crop, index=data.scene[pick])
    save_figure(plot_crops(crops, data.labels[pick]), out / "crops.png", dpi=60)
    return metrics


def plan_scenes(
    net: GQCNN,
    n_scenes: int,
    *,
    seed: int = 100,
    candidates: int = 100,
    cem_iterations: int = 3,
    samples: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Plan on `n_scenes` new scenes with each planner; the mean analytic robustness of the
    chosen grasps (scored with a fresh Monte-Carlo seed, so the oracle's pick is not scored with
    the draws it was picked by) and the fraction above 0.5. Random grasps are centred on pixels
    at least 12 mm above the observed table (the noise field alone rarely reaches that). Also
    returns what the figure needs."""
    positive_int("plan_scenes", "n_scenes", n_scenes)
    positive_int("plan_scenes", "candidates", candidates)
    integer("plan_scenes", "cem_iterations", cem_iterations, low=0)
    scenes = random_scenes(n_scenes, seed=seed)
    images = observe(scenes.depth, seed=seed + 1)
    n = n_scenes
    ids = torch.arange(n)

    def rob(grasps: torch.Tensor, s: int) -> torch.Tensor:  # grasps N×M×4 → N×M
        m = grasps.shape[1]
        idx = ids.repeat_interleave(m)
        return robustness(scenes.vertices[idx], scenes.heights[idx], grasps.reshape(-1, 4),
                          samples=samples, seed=s).reshape(n, m)  # fmt: skip

    chosen: dict[str, torch.Tensor] = {}
    with phase("planning", enabled=progress):
        rand = random_candidates(images, 1, seed=seed + 2, margin=0.012)
        chosen["random"] = rand[:, 0]
        pairs, valid = antipodal_candidates(images, candidates * 4, seed=seed + 3)
        order = (
            valid.float()
            + torch.rand(valid.shape, generator=torch.Generator().manual_seed(seed)) * 0.5
        )
        top = order.topk(candidates, dim=1)
        cand = pairs.gather(1, top.indices[..., None].expand(-1, -1, 4))
        ok = top.values >= 1  # N×M: a valid antipodal pair
        fallback = random_candidates(images, candidates, seed=seed + 4)
        cand = torch.where(ok[..., None], cand, fallback)
        q, graded = score(net, images, cand)
        chosen["antipodal + GQ-CNN"] = graded[ids, q.argmax(1)]
        first = ok.float().argmax(1)  # the first valid antipodal pair (or a random grasp)
        chosen["antipodal (first, no GQ-CNN)"] = cand[ids, first]
        best, _ = cem_plan(net, images, samples=candidates, iterations=cem_iterations,
                           seed=seed + 5)  # fmt: skip
        chosen["CEM + GQ-CNN"] = best
        # the oracle: every antipodal candidate at every depth fraction, by true robustness
        f = torch.tensor(DEPTH_FRACTIONS)
        levels = []
        from striate.grasp.planners import grasp_depths

        for frac in f:
            z = grasp_depths(images, cand[..., :2], frac.expand(n, candidates))
            levels.append(torch.cat([cand[..., :3], z[..., None]], -1))
        every = torch.cat(levels, 1)
        r_every = rob(every, seed + 6)
        chosen["oracle (true robustness)"] = every[ids, r_every.argmax(1)]
    results = {}
    for name, g in chosen.items():
        r = rob(g[:, None], seed + 7)[:, 0]
        results[name] = {
            "success": float(r.mean()),
            "robust_fraction": float((r > 0.5).float().mean()),
        }
    return {"results": results, "scenes": scenes, "images": images, "candidates": cand,
            "scores": q, "chosen": chosen}  # fmt: skip


def results_table(results: dict[str, dict[str, float]]) -> str:
    lines = [
        "| planner | mean robustness of the chosen grasp | chosen grasps with robustness > 0.5 |",
        "|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['success']:.3f} | {r['robust_fraction']:.3f} |")
    return "\n".join(lines) + "\n"


def plan_job(
    model: Path,
    out: Path,
    *,
    scenes: int = 200,
    seed: int = 100,
    candidates: int = 100,
    cem_iterations: int = 3,
    samples: int = 64,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    net = load_gqcnn(model)
    check_folder(out, overwrite)
    plan = plan_scenes(net, scenes, seed=seed, candidates=candidates, cem_iterations=cem_iterations,
                       samples=samples, progress=progress)  # fmt: skip
    clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
    settings = {
        "scenes": scenes, "seed": seed, "candidates": candidates,
        "cem_iterations": cem_iterations, "samples": samples, "model": str(model),
    }  # fmt: skip
    write_json(out / "results.json", {"settings": settings, "results": plan["results"]})
    with atomic_path(out / "results.md") as tmp:
        Path(tmp).write_text(results_table(plan["results"]))
    shown = min(8, scenes)
    grasps, colors, titles = [], [], []
    names = {"random": "red", "CEM + GQ-CNN": "lime", "oracle (true robustness)": "white"}
    for i in range(shown):
        top = plan["scores"][i].topk(min(5, plan["candidates"].shape[1])).indices
        g = [plan["candidates"][i, top]] + [plan["chosen"][k][i : i + 1] for k in names]
        grasps.append(torch.cat(g))
        colors.append(["orange"] * len(top) + list(names.values()))
        titles.append(f"scene {i}")
    fig = plot_grasps(plan["images"][:shown], grasps, colors, titles, width=Gripper().max_width)
    fig.suptitle("orange: top GQ-CNN candidates; green: CEM; red: random; white: oracle",
                 fontsize=8, y=1.02)  # fmt: skip
    save_figure(fig, out / "plans.png", dpi=60)
    return plan["results"]


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
