"""Style-transfer cost: striate's Gatys `stylize` against a plain PyTorch loop; the fast network.

    python benchmarks/synthesis.py --threads 2          # 256 and 512 px, 3 rounds
    python benchmarks/synthesis.py --quick              # a smoke test (64 and 128 px, 2 steps)

Gatys: the same job two ways, content chelsea (skimage) in the style of Starry Night, VGG-16 HED
with average pooling (one `FeatureExtractor`: content relu4_2, style relu1_1–relu5_1), the same
losses and weights (striate's defaults: each layer relative to its target's size, TV per pixel),
L-BFGS (history 50, one iteration per step, clamped to 0–1 after each), STEPS steps from the
content:

- striate: ``striate.synthesis.gatys.stylize(content, style, extractor=..., steps=STEPS)``;
- torch: the loop of the PyTorch tutorial written inline here (`torch_gatys`): targets,
  ``torch.optim.LBFGS``, a closure that sums the three losses.

Every measurement runs in a fresh Python process that loads the network and the images and makes
one untimed forward and backward pass. Time is the wall time of the whole job (targets included)
divided by the steps; memory the peak resident size the job adds (VmHWM reset just before it,
minus VmRSS then), as benchmarks/interpret.py measures it. Each program runs ROUNDS times,
alternating which goes first; medians. The note compares the two results: max |striate − torch|.

Fast: `striate.synthesis.fast.TransformerNet(styles=1)` (Johnson et al.'s network, untrained
weights: the speed is the same) applied to one image of the same size, images per second (median
of 5 timed calls after one untimed), against the seconds one Gatys image takes (300 steps at the
per-step time measured above).

Every run (not --quick) is appended to benchmarks/results/synthesis.jsonl, and BENCHMARKS.md's
table between the `synthesis` markers is rewritten from it (the latest run per device and size).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import (
    RESULTS,
    append_record,
    cpu_name,
    in_fresh_process,
    memory_kb,
    print_machine,
    print_table,
    ratio,
    read_record,
    row,
    shared_data,
    write_table,
)

RECORD = RESULTS / "synthesis.jsonl"
PROGRAMS = ("striate", "torch")
CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
GATYS_IMAGE_STEPS = 300  # one Gatys image: stylize's default steps


# --------------------------------------------------------------------------- the plain loop


def torch_gatys(extractor, content, style, steps, content_weight, style_weight, tv_weight):
    """Gatys style transfer as the PyTorch tutorial writes it, with striate's loss definitions."""
    import torch.nn.functional as F

    def gram(f):
        n, c, h, w = f.shape
        m = f.reshape(n, c, h * w)
        return m @ m.transpose(1, 2) / (c * h * w)

    with torch.no_grad():
        fc, fs = extractor(content), extractor(style)
    content_targets = {layer: fc[layer] for layer in CONTENT_LAYERS}
    grams = {layer: gram(fs[layer]) for layer in STYLE_LAYERS}
    del fc, fs  # keep the targets only
    wc = {
        k: 1 / (len(content_targets) * float(t.square().mean())) for k, t in content_targets.items()
    }
    ws = {k: 1 / (len(grams) * float(g.square().mean())) for k, g in grams.items()}
    h, w = content.shape[-2:]
    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=50)

    def closure():
        opt.zero_grad()
        f = extractor(x)
        c = sum(wc[k] * F.mse_loss(f[k], t) for k, t in content_targets.items())
        s = sum(ws[k] * F.mse_loss(gram(f[k]), g) for k, g in grams.items())
        tv = (x[..., :, 1:] - x[..., :, :-1]).square().sum()
        tv = tv + (x[..., 1:, :] - x[..., :-1, :]).square().sum()
        loss = content_weight * c + style_weight * s + tv_weight * tv / (h * w)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()


# --------------------------------------------------------------------------- one measurement


def worker(job: dict) -> dict:
    """Run one job in this (fresh) process; its time, added peak memory and result file."""
    import warnings

    warnings.filterwarnings("ignore")
    torch.set_num_threads(job["threads"])
    if job["program"] == "fast":
        return _fast(job)
    from striate.synthesis import gatys
    from striate.synthesis.features import vgg_features
    from striate.synthesis.images import photograph, read_image, resize_to

    weights_file = shared_data() / "weights" / "vgg16-hed.safetensors"
    extractor = vgg_features([*CONTENT_LAYERS, *STYLE_LAYERS], weights_file, pooling="avg")
    content = resize_to(photograph("chelsea"), job["size"])
    style = read_image(shared_data() / "images" / "starry_night.jpg")
    style = resize_to(style, max(content.shape[-2:]))  # as stylize's style_scale=1 does
    warm = content.clone().requires_grad_(True)  # warm-up: one forward and backward, untimed
    sum(v.sum() for v in extractor(warm).values()).backward()
    del warm
    weights = (gatys.CONTENT_WEIGHT, gatys.STYLE_WEIGHT, gatys.TV_WEIGHT)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident size (Linux)
    before = memory_kb("VmRSS")
    start, cpu = time.perf_counter(), time.process_time()
    if job["program"] == "striate":
        image = gatys.stylize(
            content, style, extractor=extractor, steps=job["steps"], progress=False,
            content_weight=weights[0], style_weight=weights[1], tv_weight=weights[2],
        ).image  # fmt: skip
    else:
        image = torch_gatys(extractor, content, style, job["steps"], *weights)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = memory_kb("VmHWM")
    torch.save(image, job["out"])
    return {
        "seconds": seconds / job["steps"],
        "cpu": cpu / job["steps"],
        "peak_mb": max(peak - before, 0) / 1024,
    }


def _fast(job: dict) -> dict:
    from striate.synthesis.fast import TransformerNet

    net = TransformerNet(styles=1).eval()
    x = torch.rand(1, 3, *job["shape"], generator=torch.Generator().manual_seed(0))
    times = []
    with torch.no_grad():
        net(x)
        for _ in range(5):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return {"images_per_s": 1 / statistics.median(times)}


# --------------------------------------------------------------------------- the comparison


def fast_available() -> str | None:
    """None if the fast network can be built, else why not."""
    try:
        from striate.synthesis.fast import TransformerNet

        TransformerNet(styles=1)
    except Exception as e:  # noqa: BLE001 (a sibling module still being written)
        return f"{type(e).__name__}: {e}"
    return None


def compare(args: argparse.Namespace) -> list[dict]:
    """Both programs at every size; the fast network at every size."""
    entries = []
    missing = fast_available()
    if missing:
        print(f"fast network skipped: striate.synthesis.fast.TransformerNet unusable ({missing})")
    with tempfile.TemporaryDirectory() as tmp:
        for size, steps in zip(args.sizes, args.steps, strict=True):
            runs: dict[str, list[dict]] = {p: [] for p in PROGRAMS}
            images = {}
            for r in range(args.rounds):
                for program in PROGRAMS[r % 2 :] + PROGRAMS[: r % 2]:  # alternating order
                    job = {
                        "program": program,
                        "size": size,
                        "steps": steps,
                        "threads": args.threads,
                        "out": str(Path(tmp) / f"{program}.pt"),
                    }
                    runs[program].append(in_fresh_process(__file__, job))
                    images[program] = torch.load(job["out"])
                    print(f"  {size} px, {program}: {runs[program][-1]}", file=sys.stderr)
            got = {
                p: {k: statistics.median(m[k] for m in runs[p]) for k in runs[p][0]}
                for p in PROGRAMS
            }
            entry = {
                "date": datetime.date.today().isoformat(),
                "device": cpu_name(args.threads),
                "torch": torch.__version__,
                "size": size,
                "shape": list(images["striate"].shape[-2:]),
                "steps": steps,
                "rounds": args.rounds,
                **{f"{p}_s": got[p]["seconds"] for p in PROGRAMS},
                **{f"{p}_cpu": got[p]["cpu"] for p in PROGRAMS},
                **{f"{p}_mb": got[p]["peak_mb"] for p in PROGRAMS},
                "max_abs_diff": float((images["striate"] - images["torch"]).abs().max()),
            }
            if not missing:
                job = {"program": "fast", "shape": entry["shape"], "threads": args.threads}
                entry["fast_images_per_s"] = in_fresh_process(__file__, job)["images_per_s"]
            entries.append(entry)
    return entries


def rows(entries: list[dict]) -> list[dict]:
    """The printed table: per-step times, memory, ratios; the fast network against Gatys."""
    out = []
    for e in entries:
        h, w = e["shape"]
        section = f"Gatys {h}×{w}, L-BFGS, {e['steps']} steps"
        note = f"max |striate − torch| = {e['max_abs_diff']:.1e}"
        out += [
            row(section, "striate: time per step", e["striate_s"], "s"),
            row(section, "torch loop: time per step", e["torch_s"], "s"),
            row(section, "striate / torch: time", e["striate_s"] / e["torch_s"], "×", note),
            row(section, "striate / torch: CPU time", e["striate_cpu"] / e["torch_cpu"], "×"),
            row(section, "striate: peak memory added", e["striate_mb"], "MB"),
            row(section, "torch loop: peak memory added", e["torch_mb"], "MB"),
            row(section, "striate / torch: memory", ratio(e["striate_mb"], e["torch_mb"]), "×"),
        ]
        if "fast_images_per_s" in e:
            gatys_s = GATYS_IMAGE_STEPS * e["striate_s"]
            out += [
                row(section, "fast network: images per second", e["fast_images_per_s"], "img/s"),
                row(section, f"Gatys: seconds per image ({GATYS_IMAGE_STEPS} steps)", gatys_s, "s"),
                row(section, "fast network / Gatys: speed", gatys_s * e["fast_images_per_s"], "×"),
            ]
    return out


# --------------------------------------------------------------------------- the record


def table(entries: list[dict]) -> str:
    """The markdown table of the record: the latest run of each device and size."""
    latest: dict[tuple, dict] = {}
    for e in entries:
        latest[(e["device"], e["size"])] = e
    lines = [
        "| device | image | striate per step | torch loop per step | time ratio | CPU time ratio "
        "| striate peak | torch peak | memory ratio | fast network | Gatys image (300 steps) "
        "| versions | date |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for key in sorted(latest):
        e = latest[key]
        h, w = e["shape"]
        fast = f"{e['fast_images_per_s']:.1f} img/s" if "fast_images_per_s" in e else "—"
        lines.append(
            f"| {e['device']} | {h}×{w}, {e['steps']} steps | {e['striate_s']:.3f} s | "
            f"{e['torch_s']:.3f} s | **{e['striate_s'] / e['torch_s']:.2f}×** | "
            f"{e['striate_cpu'] / e['torch_cpu']:.2f}× | {e['striate_mb']:.0f} MB | "
            f"{e['torch_mb']:.0f} MB | **{ratio(e['striate_mb'], e['torch_mb']):.2f}×** | "
            f"{fast} | {GATYS_IMAGE_STEPS * e['striate_s']:.0f} s | torch {e['torch']} | "
            f"{e['date']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch threads in every measurement (default: torch's own choice)",
    )
    parser.add_argument("--sizes", default="256,512", help="longer sides of the content")
    parser.add_argument("--steps", default="10,5", help="L-BFGS steps at each size")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per program (median)")
    parser.add_argument("--quick", action="store_true", help="a smoke test; records nothing")
    parser.add_argument(
        "--record", type=Path, default=RECORD, help="the JSON-lines file runs are appended to"
    )
    parser.add_argument(
        "--table-only", action="store_true", help="rewrite BENCHMARKS.md's table from the record"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.table_only:
        write_table("synthesis", table(read_record(args.record)))
        return
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.steps = [int(s) for s in args.steps.split(",")]
    if len(args.steps) == 1:
        args.steps *= len(args.sizes)
    if len(args.steps) != len(args.sizes):
        parser.error("--steps: one number, or one per size")
    if args.quick:
        args.sizes, args.steps, args.rounds = [64, 128], [2, 2], 1
    torch.set_num_threads(args.threads)
    entries = compare(args)
    print_table(rows(entries))
    if not args.quick:
        append_record(args.record, entries)
        if args.record == RECORD:
            write_table("synthesis", table(read_record(RECORD)))


if __name__ == "__main__":
    print_machine()
    main()
