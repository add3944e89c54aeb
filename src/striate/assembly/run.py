"""Form2Fit end to end: disassembly data → three networks trained through the engine → assembly
success rates on trained kits in new poses and on novel kits, with pictures.

    generate_data("runs/asm-data", kits=8, episodes=12)           # data.safetensors, kits.json
    train_networks("runs/asm-data", out="runs/asm", steps=300)    # nets.safetensors, config.json
    evaluate_run("runs/asm", episodes=40, novel_kits=8)           # metrics.json, figures

Kits are stored as the seeds that make them (`make_kit(seed, size, pieces)`): the training kits
take seeds 1000·seed + i, the novel kits of an evaluation 1000·seed + 500 + i (never trained on).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from striate._atomic import atomic_path, save_figure, write_json
from striate.assembly.data import (
    TensorBatches,
    assembly_datasets,
    crop_side,
    make_episodes,
)
from striate.assembly.figures import plot_descriptor_tsne, plot_episode, plot_heatmaps
from striate.assembly.networks import DenseNet, MatchingNet
from striate.assembly.policy import Networks, start_states, success_rates
from striate.assembly.sim import make_kit
from striate.assembly.tasks import Heatmap, Matching
from striate.checks import integer, positive_int, positive_number
from striate.device import resolve_device
from striate.engine.trainer import Trainer
from striate.errors import DataError
from striate.outputs import check_folder, clear_folder
from striate.progress import progress_bar

MATCHING = ("kit", "crop", "place", "turn", "mask")


def kit_seeds(seed: int, count: int, novel: bool = False) -> list[int]:
    return [1000 * seed + (500 if novel else 0) + i for i in range(count)]


def generate_data(
    out: str | os.PathLike,
    *,
    kits: int = 8,
    episodes: int = 12,
    pieces: int = 3,
    size: int = 48,
    rotations: int = 20,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Disassemble `kits` random kits `episodes` times each (random kit poses) and save the
    reversed sequences as suction, place and matching tensors (`assembly_datasets`)."""
    owner = "generate_data"
    kits = positive_int(owner, "kits", kits)
    episodes = positive_int(owner, "episodes", episodes)
    pieces = integer(owner, "pieces", pieces, low=1, high=4)
    size = integer(owner, "size", size, low=24, high=128)
    rotations = integer(owner, "rotations", rotations, low=2)
    out = Path(out)
    check_folder(out, overwrite)
    seeds = kit_seeds(seed, kits)
    made = [make_kit(s, size, pieces) for s in seeds]
    side = crop_side(made[0])
    with progress_bar("disassembling", kits * episodes, "episodes", progress) as advance:
        eps = make_episodes(made, episodes, seed, rotations, advance)
    sets = assembly_datasets(eps, side)
    clear_folder(out)
    tensors = {"suction_x": sets["suction"][0], "suction_y": sets["suction"][1]}
    tensors |= {"place_x": sets["place"][0], "place_y": sets["place"][1]}
    tensors |= {f"matching_{k}": v for k, v in zip(MATCHING, sets["matching"], strict=True)}
    with atomic_path(out / "data.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    trials = sum(len(s.trials) for e in eps for s in e.steps)
    info = {
        "format": "striate-assembly-data/1",
        "kit_seeds": seeds,
        "size": size,
        "pieces": pieces,
        "rotations": rotations,
        "crop_size": side,
        "seed": seed,
        "episodes": len(eps),
        "assembly_steps": len(sets["place"][0]),
        "suction_trials": trials,
        "suction_success_rate": len(sets["place"][0]) / trials,
    }
    write_json(out / "kits.json", info)
    fig = plot_episode(eps[0])
    save_figure(fig, out / "disassembly.png")
    return info


def read_data(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    folder = Path(folder)
    if not (folder / "kits.json").is_file() or not (folder / "data.safetensors").is_file():
        raise DataError(
            f"{folder} holds no assembly data (kits.json, data.safetensors): make it with "
            f"striate assembly generate --out {folder}"
        )
    info = json.loads((folder / "kits.json").read_text())
    return info, load_file(str(folder / "data.safetensors"))


def build_networks(config: dict[str, Any]) -> Networks:
    width, dim = config["width"], config["dim"]
    return Networks(
        DenseNet(1, width),
        DenseNet(1, width),
        MatchingNet(dim, width),
        config["rotations"],
        config["crop_size"],
    )


def train_networks(
    data: str | os.PathLike,
    *,
    out: str | os.PathLike,
    steps: int = 300,
    matching_steps: int | None = None,
    batch_size: int = 16,
    lr: float = 2e-3,
    width: int = 32,
    dim: int = 16,
    margin: float = 1.0,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the suction, place and matching networks (Adam, `steps` steps each; the matching
    network `matching_steps`, default `steps`) through the engine's Trainer."""
    owner = "train_networks"
    steps = positive_int(owner, "steps", steps)
    matching_steps = positive_int(owner, "matching_steps", matching_steps or steps)
    batch_size = positive_int(owner, "batch_size", batch_size)
    lr = positive_number(owner, "lr", lr)
    info, t = read_data(data)
    out = Path(out)
    check_folder(out, overwrite)
    config = {
        "data": str(data),
        "width": positive_int(owner, "width", width),
        "dim": positive_int(owner, "dim", dim),
        **{k: info[k] for k in ("kit_seeds", "size", "pieces", "rotations", "crop_size")},
        "steps": steps,
        "matching_steps": matching_steps,
        "batch_size": batch_size,
        "lr": lr,
        "margin": margin,
        "seed": seed,
    }
    dev = resolve_device(device)
    torch.manual_seed(seed)
    nets = build_networks(config)
    jobs = [
        ("suction", Heatmap(), nets.suction, (t["suction_x"], t["suction_y"]), steps),
        ("place", Heatmap(), nets.place, (t["place_x"], t["place_y"]), steps),
        (
            "matching",
            Matching(info["rotations"], margin),
            nets.matching,
            tuple(t[f"matching_{k}"] for k in MATCHING),
            matching_steps,
        ),
    ]
    history: dict[str, list] = {}
    clear_folder(out)
    for name, task, model, tensors, n in jobs:
        trainer = Trainer(
            steps=n,
            task=task,
            opt="adam",
            lr=lr,
            schedule="cosine",
            device=dev,
            seed=seed,
            progress=progress,
            precision="fp32",
        )
        loader = TensorBatches(tensors, batch_size, seed=seed, device=dev)
        history[name] = trainer.fit(model, loader)
        model.eval()
    state = {
        f"{name}.{k}": v
        for name, m in zip(
            ("suction", "place", "matching"), (nets.suction, nets.place, nets.matching), strict=True
        )
        for k, v in m.state_dict().items()
    }
    with atomic_path(out / "nets.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    final = {name: h[-1] for name, h in history.items() if h}
    write_json(out / "config.json", config)
    write_json(out / "history.json", history)
    return {"out": str(out), "final": final}


def load_networks(run: str | os.PathLike, device: str = "auto") -> tuple[Networks, dict[str, Any]]:
    run = Path(run)
    if not (run / "config.json").is_file() or not (run / "nets.safetensors").is_file():
        raise DataError(
            f"{run} holds no trained assembly networks (config.json, nets.safetensors): train "
            f"them with striate assembly train DATA --out {run}"
        )
    config = json.loads((run / "config.json").read_text())
    nets = build_networks(config)
    weights = load_file(str(run / "nets.safetensors"))
    dev = resolve_device(device)
    for name in ("suction", "place", "matching"):
        model = getattr(nets, name)
        prefix = f"{name}."
        model.load_state_dict(
            {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        )
        model.to(dev).eval()
    return nets, config


def evaluate_run(
    run: str | os.PathLike,
    *,
    episodes: int = 40,
    novel_kits: int = 8,
    candidates: int = 16,
    seed: int = 1,
    device: str = "auto",
    figures: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Assembly success of the Form2Fit planner and of the baselines on the trained kits at new
    poses and on `novel_kits` kits never seen, `episodes` episodes each; written to
    metrics.json (and heatmaps.png, descriptors_tsne.png) in the run folder."""
    owner = "evaluate_run"
    episodes = positive_int(owner, "episodes", episodes)
    novel_kits = positive_int(owner, "novel_kits", novel_kits)
    candidates = positive_int(owner, "candidates", candidates)
    run = Path(run)
    nets, config = load_networks(run, device)
    size, pieces, rotations = config["size"], config["pieces"], config["rotations"]
    trained = [make_kit(s, size, pieces) for s in config["kit_seeds"]]
    novel = [make_kit(s, size, pieces) for s in kit_seeds(config["seed"] + seed, novel_kits, True)]
    sets = {
        "trained kits, new poses": start_states(trained, episodes, 10_000 + seed, rotations),
        "novel kits": start_states(novel, episodes, 20_000 + seed, rotations),
    }
    policies = ("form2fit", "random-turn", "random")
    results: list[dict[str, Any]] = []
    with progress_bar("assembling", 2 * len(policies) * episodes, "episodes", progress) as advance:
        for name, starts in sets.items():
            for policy in policies:
                rates = success_rates(nets, starts, policy, candidates, seed, advance)
                results.append({"kits": name, "policy": policy, **rates})
    metrics = {"candidates": candidates, "seed": seed, "results": results}
    write_json(run / "metrics.json", metrics)
    if figures:
        kit, state = sets["novel kits"][0]
        save_figure(plot_heatmaps(nets, kit, state), run / "heatmaps.png")
        kit, state = sets["trained kits, new poses"][0]
        save_figure(plot_descriptor_tsne(nets, kit, state, seed=seed), run / "descriptors_tsne.png")
    return metrics


def results_table(metrics: dict[str, Any]) -> str:
    lines = ["kits                      policy        placement  completion  episodes"]
    for r in metrics["results"]:
        lines.append(
            f"{r['kits']:<25} {r['policy']:<13} {r['placement']:>9.3f}  {r['completion']:>10.3f}"
            f"  {r['episodes']:>8}"
        )
    return "\n".join(lines)


__all__ = [
    "evaluate_run",
    "generate_data",
    "load_networks",
    "results_table",
    "train_networks",
]
