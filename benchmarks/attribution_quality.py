"""Attribution quality: striate's attribution methods on EfficientNet-Lite0, measured by the
deletion and insertion curves (Petsiuk et al. 2018) and by the model-randomisation check (Adebayo
et al. 2018), with a random map as the floor.

    python benchmarks/attribution_quality.py            # the full run (12 min on 2 busy cores)
    python benchmarks/attribution_quality.py --quick    # 2 images, few steps; records nothing

The network is ImageNet EfficientNet-Lite0 (`striate.models.pretrained`, 0–1 images at 224×224,
the centre crop of its preparation); the target of every method is the class it predicts for the
full image. The photographs: scikit-image's astronaut, chelsea, coffee, rocket and the left view of
stereo_motorcycle, scikit-learn's china.jpg and flower.jpg, and ../shared/data/images/dog.jpg.

- Deletion: the most salient pixels first replaced by black (zeros, RISE's choice), 16 steps;
  insertion: the pixels put into a blurred copy (σ = 5 px, RISE's choice), 16 steps; the area
  under each curve of the target's softmax probability, mean ± standard deviation over the
  images. Lower deletion and higher insertion are better. Maps are ranked by Σ_c |a|
  (`faithfulness.deletion_curve`'s default); Grad-CAM's one-channel map as it is.
- Randomisation (cascading, top down): the Spearman correlation of each method's map with the map
  after the logits (_fc) are re-initialised, then also the head and the upper half of the blocks
  (_conv_head, _blocks.15–8), then the whole network; of the absolute maps (Σ_c |a|) and of the
  signed maps (Σ_c a), mean over the first SANITY_IMAGES images. A map that depends on the
  weights falls towards 0; near 1 the method does not explain the model. The random map draws the
  same noise whatever the model and so shows the failing value, 1.

Every run (not --quick) is appended to benchmarks/results/attribution_quality.jsonl, and the table
in BENCHMARKS.md between the `attribution_quality` markers is rewritten from the latest run.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import platform
import statistics
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from _common import RESULTS, print_machine, read_record, shared_data, write_table
from striate import models
from striate.interpret.cam import grad_cam
from striate.interpret.faithfulness import auc, deletion_curve, insertion_curve
from striate.interpret.gradients import (
    guided_backprop,
    integrated_gradients,
    saliency,
    smooth_grad,
)
from striate.interpret.perturbation import occlusion
from striate.interpret.sanity import randomization_check, randomization_units

# The settings, in one visible place (--quick shrinks them).
STEPS = 16  # deletion / insertion steps
BATCH = 16  # internal_batch_size of every method and curve
IG_STEPS, SG_SAMPLES, SG_NOISE = 32, 16, 0.15
OCCLUSION_PATCH, OCCLUSION_STRIDE, OCCLUSION_FILL = 32, 16, 0.5
SANITY_IMAGES = 4  # the randomisation check runs every method 3 more times: on the first few
SEED = 0

RECORD = RESULTS / "attribution_quality.jsonl"
STAGES = ("logits", "top half", "all")


# --------------------------------------------------------------------------- data and methods


def photographs() -> dict[str, np.ndarray]:
    """The benchmark's photographs as H×W×3 uint8 arrays, by name."""
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_image

    return {
        "astronaut": skimage.data.astronaut(),
        "chelsea": skimage.data.chelsea(),
        "coffee": skimage.data.coffee(),
        "rocket": skimage.data.rocket(),
        "motorcycle": skimage.data.stereo_motorcycle()[0],
        "china": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
        "dog": np.asarray(Image.open(shared_data() / "images" / "dog.jpg").convert("RGB")),
    }


def random_map(model: torch.nn.Module, inputs: torch.Tensor, target=None) -> torch.Tensor:
    """Uniform noise N×1×H×W from a fixed seed: the same map whatever the model."""
    g = torch.Generator().manual_seed(SEED)
    return torch.rand(inputs.shape[0], 1, *inputs.shape[2:], generator=g).to(inputs.device)


def methods(quick: bool) -> dict[str, Callable[..., torch.Tensor]]:
    """Every method bound to its settings, captum-shaped: method(model, inputs, target)."""
    ig_steps, samples = (4, 2) if quick else (IG_STEPS, SG_SAMPLES)
    stride = 2 * OCCLUSION_STRIDE if quick else OCCLUSION_STRIDE
    return {
        "saliency": functools.partial(saliency, abs=False),
        "guided backprop": guided_backprop,
        "Grad-CAM": grad_cam,
        "integrated gradients": functools.partial(
            integrated_gradients, steps=ig_steps, internal_batch_size=BATCH
        ),
        "SmoothGrad": functools.partial(
            smooth_grad,
            method=functools.partial(saliency, abs=False),
            samples=samples,
            noise=SG_NOISE,
            seed=SEED,
            internal_batch_size=BATCH,
        ),
        "occlusion": functools.partial(
            occlusion,
            patch=OCCLUSION_PATCH,
            stride=stride,
            fill=OCCLUSION_FILL,
            internal_batch_size=BATCH,
        ),
        "random map": random_map,
    }


def stages(model: torch.nn.Module) -> dict[str, list[str]]:
    """The cascade's three steps: the logits; then down to the upper half of the units; then the
    rest (`randomization_units` lists them top first)."""
    units = list(randomization_units(model).values())
    half = (len(units) + 1) // 2
    flat = [[name for unit in part for name in unit] for part in (units[1:half], units[half:])]
    return dict(zip(STAGES, [units[0], *flat], strict=True))


# --------------------------------------------------------------------------- the run


def run(quick: bool, threads: int | None) -> dict:
    """Every method's maps, curves and randomisation check; the record of the run."""
    start = time.perf_counter()
    classifier = models.pretrained("efficientnet_lite0").eval()
    classifier = classifier.to(memory_format=torch.channels_last)
    images = photographs()
    if quick:
        images = dict(list(images.items())[:2])
    steps = 4 if quick else STEPS
    n_sanity = 1 if quick else SANITY_IMAGES
    x = classifier.prepare(list(images.values()))
    with torch.no_grad():
        probs = classifier(x).softmax(1)
    p, t = probs.max(1)
    predicted = [
        f"{name}: {classifier.classes[k]} ({q:.2f})"
        for name, k, q in zip(images, t.tolist(), p.tolist(), strict=True)
    ]
    print("predicted:", "; ".join(predicted), flush=True)
    cascade = stages(classifier)
    results = {}
    for name, method in methods(quick).items():
        t0 = time.perf_counter()
        maps = method(classifier, x, t)
        seconds = time.perf_counter() - t0
        options = dict(steps=steps, internal_batch_size=BATCH)
        deletion = auc(*deletion_curve(classifier, x, maps, t, baseline="zeros", **options))
        insertion = auc(*insertion_curve(classifier, x, maps, t, baseline="blur", **options))
        check = randomization_check(
            classifier,
            x[:n_sanity],
            method,
            t[:n_sanity],
            layers=cascade,
            cascade=True,
            seed=SEED,
            attributions=maps[:n_sanity],
        )
        results[name] = {
            "seconds": seconds,
            "deletion": deletion.tolist(),
            "insertion": insertion.tolist(),
            "spearman_abs": [r.spearman_abs.tolist() for r in check],
            "spearman_signed": [r.spearman_signed.tolist() for r in check],
        }
        print(
            f"{name}: maps {seconds:.1f} s, deletion {deletion.mean():.3f}, insertion "
            f"{insertion.mean():.3f}, Spearman |map| "
            + " / ".join(f"{_nanmean(r.spearman_abs.tolist()):.3f}" for r in check)
            + f" ({time.perf_counter() - t0:.0f} s with the curves and the check)",
            flush=True,
        )
    return {
        "date": datetime.date.today().isoformat(),
        "device": device_name(),
        "torch": torch.__version__,
        "threads": threads or torch.get_num_threads(),
        "seconds": time.perf_counter() - start,
        "images": predicted,
        "sanity_images": n_sanity,
        "settings": {
            "steps": steps,
            "batch": BATCH,
            "ig_steps": IG_STEPS,
            "sg_samples": SG_SAMPLES,
            "sg_noise": SG_NOISE,
            "occlusion": [OCCLUSION_PATCH, OCCLUSION_STRIDE, OCCLUSION_FILL],
            "stages": {k: v for k, v in cascade.items()},
        },
        "methods": results,
    }


def device_name() -> str:
    """The CPU's model name and torch's thread count (or the GPU's name)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor() or "CPU",
    )
    return f"{model}, {torch.get_num_threads()} threads"


# --------------------------------------------------------------------------- the table


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.mean(finite) if finite else math.nan


def _spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def table(entry: dict) -> str:
    """The markdown table of one recorded run, with a line saying when and where it ran."""
    lines = [
        "| method | deletion AUC ↓ | insertion AUC ↑ | Spearman, absolute maps: logits / top "
        "half / all | Spearman, signed maps: logits / top half / all | maps (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    constant: dict[str, int] = {}  # maps left constant by a randomisation, per method
    for name, r in entry["methods"].items():
        cells = []
        for key in ("spearman_abs", "spearman_signed"):
            stage = [_nanmean(v) for v in r[key]]
            if key == "spearman_abs" and any(math.isnan(v) for v in sum(r[key], [])):
                constant[name] = sum(math.isnan(v) for v in sum(r[key], []))
            cells.append(" / ".join("n/a" if math.isnan(v) else f"{v:.2f}" for v in stage))
        lines.append(
            f"| {name} | {_spread(r['deletion'])} | {_spread(r['insertion'])} | {cells[0]} | "
            f"{cells[1]} | {r['seconds']:.1f} |"
        )
    n = len(entry["images"])
    device = entry.get("device", entry.get("machine"))  # older records: "machine"
    note = (
        f"{entry['date']}, {device}, torch {entry['torch']}; {n} images "
        f"(the network's class: {'; '.join(entry['images'])}); randomisation on the first "
        f"{entry['sanity_images']}; the whole run took {entry['seconds'] / 60:.1f} min. "
        f'"maps (s)" is the time to compute the {n} images\' maps once.'
    )
    if constant:
        counts = ", ".join(f"{k} {v}" for k, v in constant.items())
        why = (
            "; Grad-CAM's ReLU leaves nothing where no location favours the class"
            if "Grad-CAM" in constant
            else ""
        )
        note += (
            f" Randomised maps that were constant ({counts}{why}) have no rank correlation and "
            f"are left out of the mean."
        )
    return "\n".join(lines) + "\n\n" + textwrap.fill(note, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test; records nothing")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--record", type=Path, default=RECORD, help="the JSON-lines file the run is appended to"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    entry = run(args.quick, args.threads)
    print()
    print(table(entry))
    if not args.quick:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        with args.record.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        write_table("attribution_quality", table(read_record(args.record)[-1]))


if __name__ == "__main__":
    print_machine()
    main()
