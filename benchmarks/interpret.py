"""Attribution cost: striate.interpret against captum on EfficientNet-Lite0 (ImageNet, 224×224).

    python benchmarks/interpret.py                        # 1 image, internal batches 16 and 64
    python benchmarks/interpret.py --images 2 --threads 2
    python benchmarks/interpret.py --quick                # a smoke test (IG 8 steps, big patch)

Two jobs, each run by both libraries with the same settings and the same internal batch size
(captum's ``internal_batch_size`` for integrated gradients; for occlusion its
``perturbations_per_eval`` = batch // images, so that a forward pass holds as many copies):

- integrated gradients, 50 Gauss–Legendre steps from a black baseline, predicted class;
- occlusion with a PATCH×PATCH black patch moved by STRIDE (captum's ``Occlusion`` with
  ``sliding_window_shapes=(3, PATCH, PATCH)``, ``strides=(3, STRIDE, STRIDE)``).

Every measurement runs in a fresh Python process that loads the model, prepares the photographs
(skimage's coffee, chelsea, astronaut, …) and makes one untimed forward and backward pass. Then:
time is the wall time of the one attribution call (and its CPU time, all threads, which moves
less when other work shares the machine); memory is the peak resident set size the call
adds: Linux's peak (VmHWM) is reset just before the call (``/proc/self/clear_refs``) and read
after it, minus the resident size just before. That counts every allocation the process touches,
torch's CPU tensors included (Python's tracemalloc does not see them), and nothing from loading.
glibc may keep freed memory, so memory is a measure of one call in a fresh process, not of a
long-running one. Each library is measured ROUNDS times (default 3), alternating which goes
first; the table shows medians. The last column compares the two attributions:
max |striate − captum| / max |captum|.

Every run (not --quick) is appended to benchmarks/results/interpret.jsonl, and the table in
BENCHMARKS.md between the `interpret` markers is rewritten from the record: the latest run of each
device, job and batch size.
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
    write_table,
)

RECORD = RESULTS / "interpret.jsonl"
PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "cat")
LIBRARIES = ("striate", "captum")


# --------------------------------------------------------------------------- one measurement


def _attribute(job: dict, model, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The job's attribution by the job's library."""
    batch, n = job["batch"], x.shape[0]
    if job["library"] == "striate":
        from striate.interpret.gradients import integrated_gradients
        from striate.interpret.perturbation import occlusion

        if job["method"] == "ig":
            return integrated_gradients(model, x, t, steps=job["steps"], internal_batch_size=batch)
        return occlusion(
            model, x, t, patch=job["patch"], stride=job["stride"], internal_batch_size=batch
        )
    from captum.attr import IntegratedGradients, Occlusion

    if job["method"] == "ig":
        return IntegratedGradients(model).attribute(
            x, 0.0, target=t, n_steps=job["steps"], internal_batch_size=batch
        )
    p, s = job["patch"], job["stride"]
    return Occlusion(model).attribute(
        x,
        sliding_window_shapes=(3, p, p),
        strides=(3, s, s),
        baselines=0.0,
        target=t,
        perturbations_per_eval=max(1, batch // n),
    )


def worker(job: dict) -> dict:
    """Run one job in this (fresh) process; its time, added peak memory and result file."""
    import warnings

    import skimage.data

    from striate.models import pretrained

    warnings.filterwarnings("ignore")
    torch.set_num_threads(job["threads"])
    model = pretrained("efficientnet_lite0")
    x = model.prepare([getattr(skimage.data, p)() for p in PHOTOS[: job["images"]]])
    with torch.no_grad():
        t = model(x).argmax(1)
    warm = x.clone().requires_grad_(True)  # warm-up: one forward and backward pass, untimed
    model(warm).max(1).values.sum().backward()
    model.zero_grad(set_to_none=True)
    del warm
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident size (Linux)
    before = memory_kb("VmRSS")
    start, cpu = time.perf_counter(), time.process_time()
    attribution = _attribute(job, model, x, t)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = memory_kb("VmHWM")
    torch.save(attribution.detach().float(), job["out"])
    return {"seconds": seconds, "cpu": cpu, "peak_mb": max(peak - before, 0) / 1024}


# --------------------------------------------------------------------------- the comparison


def compare(args: argparse.Namespace) -> list[dict]:
    """Every job by both libraries; one entry per job and batch size."""
    import captum

    jobs = [{"method": "ig", "steps": args.steps}]
    jobs.append({"method": "occlusion", "patch": args.patch, "stride": args.stride})
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in jobs:
            for batch in args.batch_sizes:
                runs: dict[str, list[dict]] = {lib: [] for lib in LIBRARIES}
                results = {}
                for r in range(args.rounds):
                    for library in LIBRARIES[r % 2 :] + LIBRARIES[: r % 2]:  # alternating order
                        job = {
                            **spec,
                            "library": library,
                            "batch": batch,
                            "images": args.images,
                            "threads": args.threads,
                            "out": str(Path(tmp) / f"{library}.pt"),
                        }
                        runs[library].append(in_fresh_process(__file__, job))
                        results[library] = torch.load(job["out"])
                        done = f"  {_job_name(spec)}, batch {batch}, {library}: {runs[library][-1]}"
                        print(done, file=sys.stderr)
                got = {
                    lib: {k: statistics.median(m[k] for m in runs[lib]) for k in runs[lib][0]}
                    for lib in LIBRARIES
                }
                ref = results["captum"]
                agree = float((results["striate"] - ref).abs().max() / ref.abs().max())
                entries.append(
                    {
                        "date": datetime.date.today().isoformat(),
                        "device": cpu_name(args.threads),
                        "torch": torch.__version__,
                        "captum": captum.__version__,
                        "job": _job_name(spec),
                        "images": args.images,
                        "batch": batch,
                        **{f"{lib}_s": got[lib]["seconds"] for lib in LIBRARIES},
                        **{f"{lib}_cpu": got[lib]["cpu"] for lib in LIBRARIES},
                        **{f"{lib}_mb": got[lib]["peak_mb"] for lib in LIBRARIES},
                        "max_rel_diff": agree,
                        "rounds": args.rounds,
                    }
                )
    return entries


def _job_name(spec: dict) -> str:
    if spec["method"] == "ig":
        return f"integrated gradients, {spec['steps']} steps"
    return f"occlusion, patch {spec['patch']}, stride {spec['stride']}"


def rows(entries: list[dict]) -> list[dict]:
    """The printed table: times, memory and their ratios striate / captum."""
    out = []
    for e in entries:
        section = f"{e['job']}, {e['images']} image(s), batch {e['batch']}"
        note = f"max |striate − captum| / max |captum| = {e['max_rel_diff']:.1e}"
        out += [
            row(section, "striate: time", e["striate_s"], "s"),
            row(section, "captum: time", e["captum_s"], "s"),
            row(section, "striate / captum: time", e["striate_s"] / e["captum_s"], "×", note),
            row(section, "striate: CPU time", e["striate_cpu"], "s"),
            row(section, "captum: CPU time", e["captum_cpu"], "s"),
            row(section, "striate / captum: CPU time", e["striate_cpu"] / e["captum_cpu"], "×"),
            row(section, "striate: peak memory added", e["striate_mb"], "MB"),
            row(section, "captum: peak memory added", e["captum_mb"], "MB"),
            row(section, "striate / captum: memory", ratio(e["striate_mb"], e["captum_mb"]), "×"),
        ]
    return out


# --------------------------------------------------------------------------- the record


def table(entries: list[dict]) -> str:
    """The markdown table of the record: the latest run of each device, job, images and batch."""
    latest: dict[tuple, dict] = {}
    for e in entries:
        latest[(e["device"], e["job"], e["images"], e["batch"])] = e
    lines = [
        "| device | job | images | batch | striate | captum | time ratio | CPU time ratio | "
        "striate peak | captum peak | memory ratio | max rel. diff | versions | date |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
        "| --- |",
    ]
    for key in sorted(latest):
        e = latest[key]
        lines.append(
            f"| {e['device']} | {e['job']} | {e['images']} | {e['batch']} | "
            f"{e['striate_s']:.2f} s | {e['captum_s']:.2f} s | "
            f"**{e['striate_s'] / e['captum_s']:.2f}×** | "
            f"{e['striate_cpu'] / e['captum_cpu']:.2f}× | "
            f"{e['striate_mb']:.0f} MB | {e['captum_mb']:.0f} MB | "
            f"**{ratio(e['striate_mb'], e['captum_mb']):.2f}×** | {e['max_rel_diff']:.1e} | "
            f"torch {e['torch']}, captum {e['captum']} | {e['date']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1, help=f"photographs, 1–{len(PHOTOS)}")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch threads in every measurement (default: torch's own choice)",
    )
    parser.add_argument("--batch-sizes", default="16,64", help="internal batch sizes")
    parser.add_argument("--steps", type=int, default=50, help="integrated gradients' steps")
    parser.add_argument("--patch", type=int, default=32, help="occlusion's patch side")
    parser.add_argument("--stride", type=int, default=16, help="occlusion's stride")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per library (median)")
    parser.add_argument("--quick", action="store_true", help="a smoke test; records nothing")
    parser.add_argument(
        "--record", type=Path, default=RECORD, help="the JSON-lines file runs are appended to"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if not 1 <= args.images <= len(PHOTOS):
        parser.error(f"--images must be 1–{len(PHOTOS)}, got {args.images}")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.quick:
        args.steps, args.patch, args.stride, args.batch_sizes, args.rounds = 8, 112, 56, [8], 1
    torch.set_num_threads(args.threads)
    entries = compare(args)
    print_table(rows(entries))
    if not args.quick:
        append_record(args.record, entries)
        if args.record == RECORD:
            write_table("interpret", table(read_record(RECORD)))


if __name__ == "__main__":
    print_machine()
    main()
