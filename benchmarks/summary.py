"""One table of every peer comparison, from the latest record of each benchmark.

    python benchmarks/summary.py        # reads benchmarks/results/*.jsonl, runs nothing

Each benchmark that has a peer gets one small extractor in EXTRACTORS: it reads the JSON-lines
record its script appends (the latest run of each case, as the script's own table does) and
returns the headline ratio its BENCHMARKS.md section reports, as striate / peer with what it
measures and which way is better. A benchmark whose script records nothing, or that has not run
yet, gets a row saying so. The table is printed and written to BENCHMARKS.md between the
``summary`` markers. Only JSON is read: nothing here imports torch-heavy striate modules.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable

from _airbench_record import recorded_pairs
from _common import RESULTS, read_record, write_table

Row = tuple[str, str, str, list[dict]]  # what is compared, peer, ratio, the entries it comes from


def latest(entries: Iterable[dict], *keys: str) -> dict[tuple, dict]:
    """The last entry of each combination of `keys` (records are appended oldest first)."""
    return {tuple(e.get(k) for k in keys): e for e in entries}


def x(v: float) -> str:
    return f"{v:.3f}×" if v < 10 else f"{v:.1f}×"


def median(values: Iterable[float | None]) -> float:
    return statistics.median(float("inf") if v is None else v for v in values)


def knn(entries: list[dict]) -> list[Row]:
    last = {e["program"].split(" (")[0]: e for e in entries}  # rows of the latest run win
    fast = next(e for e in reversed(entries) if e["program"].startswith("ratio striate / fastest"))
    rows = [("exact 1-NN, full CIFAR-10 (50,000 × 10,000 × 3,072)",
             f"faiss IndexFlatL2 at its best ({fast['program'].split('(')[-1].rstrip(')')})",
             f"time {x(fast['value'])} (lower is better)", [fast])]  # fmt: skip
    if (sk := last.get("ratio sklearn / striate")) is not None:
        rows.append(("exact 1-NN, full CIFAR-10", "scikit-learn KNeighborsClassifier (brute)",
                     f"time {x(1 / sk['value'])} (lower is better)", [sk]))  # fmt: skip
    return rows


def _last_run(entries: list[dict], section: str) -> dict[str, dict]:
    """The rows of a section from its latest dated run, by program (records of run_sections)."""
    rows = [e for e in entries if e.get("section") == section]
    if not rows:
        return {}
    date = rows[-1].get("date")
    return {e["program"]: e for e in rows if e.get("date") == date}


def data(entries: list[dict]) -> list[Row]:
    rows = []
    decode = _last_run(entries, "decode")
    first = decode.get("ratio PIL loop / striate first decode")
    cached = decode.get("ratio PIL loop / striate cached load")
    if first and cached:
        rows.append(("CIFAR-10 JPEG decode (50,000 images)", "one-process PIL loop over the zip",
                     f"time {x(1 / first['value'])} first load, {x(1 / cached['value'])} cached "
                     "(lower is better)", [first, cached]))  # fmt: skip
    if aug := _last_run(entries, "augment").get("ratio striate / per-image"):
        rows.append(("flip + crop + cutout, uint8 32×32 batches", "per-image PIL/NumPy",
                     f"throughput {x(aug['value'])} (higher is better)", [aug]))  # fmt: skip
    return rows


def nca(entries: list[dict]) -> list[Row]:
    fit = _last_run(entries, "nca").get("ratio sklearn / striate fit time")
    if fit is None:
        return []
    return [("NCA fit, 5,000 MNIST images", "scikit-learn NeighborhoodComponentsAnalysis",
             f"time {x(1 / fit['value'])} (lower is better)", [fit])]  # fmt: skip


def linear(entries: list[dict]) -> list[Row]:
    run = _last_run(entries, "linear")
    pairs = (("svm: LinearSVC / striate fit time", "linear SVM fit", "scikit-learn LinearSVC"),
             ("softmax: LogisticRegression / striate fit time", "softmax fit",
              "scikit-learn LogisticRegression"))  # fmt: skip
    return [
        (
            f"{what}, CIFAR-10 pixels",
            peer,
            f"time {x(1 / run[key]['value'])} (lower is better)",
            [run[key]],
        )  # fmt: skip
        for key, what, peer in pairs
        if key in run
    ]


def trainer_overhead(entries: list[dict]) -> list[Row]:
    run = _last_run(entries, "overhead")
    rows = []
    loop = "hand-written PyTorch loop"
    for k, peer in (("striate Trainer", loop), ("Lightning Trainer", f"{loop} (Lightning: scale)")):
        if (e := run.get(f"{k} / loop: fit")) is not None:
            rows.append((f"{k} fit, convnet_small on MNIST", peer,
                         f"time {x(e['value'])} (lower is better)", [e]))  # fmt: skip
    return rows


def geometry(entries: list[dict]) -> list[Row]:
    last = entries[-1]["date"]
    es = sorted((e for e in entries if e["date"] == last), key=lambda e: e["points"])
    rows = []
    for pair in dict.fromkeys(e.get("pair", "torus–cylinder") for e in es):
        mine = [e for e in es if e.get("pair", "torus–cylinder") == pair]
        ratios = ", ".join(f"{x(e['striate_over_scipy'])} ({e['points']:,} points)" for e in mine)
        rows.append((f"Chamfer distance, {pair} (exact: grid or brute force, differentiable)",
                     "scipy cKDTree build + query", f"time {ratios} (lower is better)",
                     mine))  # fmt: skip
    return rows


def interpret(entries: list[dict]) -> list[Row]:
    cases = latest(entries, "job", "batch")
    rows = []
    for job in dict.fromkeys(k[0] for k in cases):
        es = [e for k, e in sorted(cases.items()) if k[0] == job]
        ratios = ", ".join(f"{x(e['striate_s'] / e['captum_s'])} (batch {e['batch']})" for e in es)
        rows.append((f"{job}, EfficientNet-Lite0", f"captum {es[0]['captum']}",
                     f"time {ratios} (lower is better)", es))  # fmt: skip
    return rows


def synthesis(entries: list[dict]) -> list[Row]:
    es = [e for _, e in sorted(latest(entries, "size").items())]
    ratios = ", ".join(f"{x(e['striate_s'] / e['torch_s'])} ({e['size']} px)" for e in es)
    return [("Gatys style transfer, time per L-BFGS step", "the hand-written PyTorch Gatys loop",
             f"time {ratios} (lower is better)", es)]  # fmt: skip


def detection(entries: list[dict]) -> list[Row]:
    e = entries[-1]
    return [(f"COCO mAP, {e['images']:,} images × {e['dets_per_image']} detections",
             f"pycocotools {e['pycocotools']} COCOeval",
             f"time {x(e['striate_s'] / e['pycocotools_s'])} (lower is better; "
             f"max abs diff {e['max_abs_diff_stats']:.0e})", [e])]  # fmt: skip


def sequence(entries: list[dict]) -> list[Row]:
    e = entries[-1]
    return [
        (f"char transformer training, nanoGPT CPU config, {e['steps']} steps",
         "hand-written nanoGPT loop", f"time {x(e['lm_striate_s'] / e['lm_loop_s'])} "
         "(lower is better)", [e]),
        ("LSTM forward + backward", "torch.nn.LSTM",
         f"time {x(e['lstm_auto_s'] / e['lstm_torch_s'])} (auto), "
         f"{x(e['lstm_equations_s'] / e['lstm_torch_s'])} (equations) (lower is better)", [e]),
    ]  # fmt: skip


def char_lm(entries: list[dict]) -> list[Row]:
    m = latest(entries, "model")
    es = [m[(k,)] for k in ("transformer", "transformer-blocks") if (k,) in m]
    what = {"transformer": "contiguous streams", "transformer-blocks": "nanoGPT's get_batch"}
    ratios = ", ".join(
        f"{x(e['val_loss'] / e['nanogpt_val_loss'])} ({what[e['model']]})" for e in es
    )
    return [(f"char transformer on tiny-shakespeare, nanoGPT CPU config, {es[0]['steps']:,} steps",
             f"nanoGPT's published val loss {es[0]['nanogpt_val_loss']} (its README; not run here)",
             f"validation loss {ratios} (lower is better)", es)]  # fmt: skip


def rl(entries: list[dict]) -> list[Row]:
    runs = latest(entries, "algo", "library", "seed")
    rows = []
    for algo in sorted({k[0] for k in runs}):

        def mean(lib: str, f: Callable[[dict], float], algo: str = algo) -> float:
            return statistics.mean(f(e) for k, e in runs.items() if k[:2] == (algo, lib))

        def r(f: Callable[[dict], float]) -> str:
            return x(mean("striate", f) / mean("stable-baselines3", f))

        es = [e for k, e in runs.items() if k[0] == algo]
        solved = all(e["steps"] is not None for e in es)
        to_475 = (f"; steps to 475 {r(lambda e: e['steps'])}, time to 475 "
                  f"{r(lambda e: e['seconds'])}" if solved else "")  # fmt: skip
        per_step = r(lambda e: e["seconds"] / e["last_steps"])
        rows.append((f"{algo.upper()} on CartPole-v1, {len({k[2] for k in runs})} seeds",
                     "Stable-Baselines3", f"time per step {per_step}{to_475} (lower is better)",
                     es))  # fmt: skip
    return rows


def export(entries: list[dict]) -> list[Row]:
    es = list(latest(entries, "model").values())
    rows = []
    for rt in ("onnxruntime", "torchscript"):
        lat = [e[rt]["latency_vs_eager"] for e in es]
        thr = [e[rt]["throughput_vs_eager"] for e in es]
        name = "TorchScript" if rt == "torchscript" else "onnxruntime"
        rows.append((f"striate export to {name}, {len(es)} models",
                     f"eager PyTorch ({es[0]['threads']} threads)",
                     f"speed at batch 1 {x(min(lat))}–{x(max(lat))}, throughput at batch 64 "
                     f"{x(min(thr))}–{x(max(thr))} (higher is better)", es))  # fmt: skip
    return rows


def scratch(entries: list[dict]) -> list[Row]:
    conv = list(latest((e for e in entries if e["section"] == "conv"), "size").values())
    s = [e["seconds"] for e in conv]
    r = [d[f"scratch_{p}"] / d[f"torch_{p}"] for d in s for p in ("fwd", "fwd_bwd")]
    rows = [("3×3 convolution, NumPy im2col", "torch.nn.functional.conv2d",
             f"time {x(min(r))}–{x(max(r))} over {len(conv)} sizes, fwd and fwd+bwd "
             "(lower is better)", conv)]  # fmt: skip
    mnist = latest((e for e in entries if e["section"] == "mnist"), "inputs", "seed")
    for inputs in dict.fromkeys(k[0] for k in mnist):
        es = [e for k, e in mnist.items() if k[0] == inputs]

        def m(key: str, es: list[dict] = es) -> float:
            return statistics.mean(e[key] for e in es)

        rows.append((f"MNIST 784-100-10 MLP, {es[0]['epochs']} epochs, {inputs}, NumPy engine",
                     "its torch twin (Trainer)",
                     f"test accuracy {m('numpy_acc'):.2f} vs {m('torch_acc'):.2f} % "
                     f"({m('numpy_acc') - m('torch_acc'):+.2f} points, higher is better); "
                     f"time {x(m('numpy_seconds') / m('torch_seconds'))}", es))  # fmt: skip
    return rows


def sgds(entries: list[dict]) -> list[Row]:
    runs = latest((e for e in entries if not e.get("quick")), "dataset", "arm", "seed")
    rows = []
    for ds in dict.fromkeys(k[0] for k in runs):

        def med(arm: str, key: str, ds: str = ds) -> float:
            return median(e[key] if e["reached"] else None
                          for k, e in runs.items() if k[:2] == (ds, arm))  # fmt: skip

        parts = []
        for arm in ("sgds", "sgds-unbiased"):
            steps, secs = (med(arm, k) / med("uniform", k) for k in ("steps", "seconds"))
            parts.append(f"{arm}: steps {x(steps)}, time {x(secs)}")
        es = [e for k, e in runs.items() if k[0] == ds]
        rows.append(
            (
                f"{ds}: steps and time to {100 * es[0]['target']:g} % test accuracy",
                "uniform sampling",
                "; ".join(parts) + " (medians; lower is better)",
                es,
            )
        )
    return rows


def serve_load(entries: list[dict]) -> list[Row]:
    runs = latest(entries, "model", "clients", "batching")
    rows = []
    for model in dict.fromkeys(k[0] for k in runs):
        clients = sorted({k[1] for k in runs if k[0] == model})
        ratios = ", ".join(
            f"{x(runs[model, c, 'on']['rps'] / runs[model, c, 'off']['rps'])} ({c})"
            for c in clients
        )
        rows.append((f"`striate serve` {model}, requests/s at 1–32 clients",
                     "no peer: the same server with batching off",
                     f"throughput on/off {ratios} (higher is better)",
                     [e for k, e in runs.items() if k[0] == model]))  # fmt: skip
    return rows


def seeds_(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def airbench(entries: list[dict]) -> list[Row]:
    """Per device, threads and budget, each seed's latest pair (seeds run by separate invocations
    combine, as in the benchmark's own table): the full budget by training time and time to the
    target; a shortened one (make bench on a CPU) by time per step only."""

    def mean(es: list[dict], key: str) -> float | None:
        vs = [e[key] for e in es]
        return None if not vs or None in vs else statistics.mean(vs)

    rows = []
    for (*_, port, program), seeds in recorded_pairs(entries).items():
        a, s = ([seeds[k][i] for k in sorted(seeds)] for i in (0, 1))
        runs = a + s
        where = runs[0]["device"] if runs[0]["device"].startswith("NVIDIA") else "CPU"
        peer = f"{port}, same {'GPU' if where != 'CPU' else 'CPU'}"
        recipe = f"`--recipe {program.removeprefix('striate ')}`"
        if short := runs[0].get("budget"):
            rows.append((f"CIFAR-10 training {recipe}, {short}, {seeds_(len(s))}", peer,
                         f"time per step {x(mean(s, 'per_step') / mean(a, 'per_step'))} "
                         "(lower is better)", runs))  # fmt: skip
            continue
        to = [mean(s, "time_to_target"), mean(a, "time_to_target")]
        target = f"time to {100 * runs[0]['target']:g} % " + (
            x(to[0] / to[1]) if None not in to else "— (not every seed reached it)"
        )
        rows.append((f"CIFAR-10 training {recipe} on {where}, {seeds_(len(s))}; test accuracy "
                     f"with TTA {100 * mean(s, 'acc'):.2f} vs {100 * mean(a, 'acc'):.2f} %", peer,
                     f"training time {x(mean(s, 'seconds') / mean(a, 'seconds'))}, {target} "
                     "(lower is better)", runs))  # fmt: skip
    return rows


# script: (record file or None when the script records nothing, extractor, what is compared,
# peer), in the order `make bench` runs them; the last two fill the row when there is no record.
Extractor = Callable[[list[dict]], list[Row]]
EXTRACTORS: dict[str, tuple[str | None, Extractor | None, str, str]] = {
    "data.py": ("data.jsonl", data, "CIFAR-10 JPEG decode; batched augmentation",
                "one-process PIL loop; per-image PIL/NumPy"),
    "_classic_knn.py (classic.py knn)": ("classic_knn.jsonl", knn, "exact 1-NN, full CIFAR-10",
                                  "faiss IndexFlatL2 at its best; scikit-learn"),
    "classic.py --sections nca": ("classic.jsonl", nca, "NCA fit, 5,000 MNIST images",
                                  "scikit-learn NeighborhoodComponentsAnalysis"),
    "classic.py --sections linear": ("classic.jsonl", linear,
                                     "linear SVM and softmax on CIFAR-10 pixels",
                                     "scikit-learn LinearSVC, LogisticRegression"),
    "trainer_overhead.py": ("trainer_overhead.jsonl", trainer_overhead,
                            "Trainer fit, convnet_small on MNIST",
                            "hand-written PyTorch loop; PyTorch Lightning"),
    "cifar10_vs_airbench.py": ("cifar10_vs_airbench.jsonl", airbench,
                               "CIFAR-10 `--recipe cifar10-fast`, `cifar10-muon`",
                               "port of airbench94 (or airbench94_muon)"),
    "geometry.py": ("geometry.jsonl", geometry, "Chamfer distance", "scipy cKDTree"),
    "interpret.py": ("interpret.jsonl", interpret, "integrated gradients, occlusion", "captum"),
    "synthesis.py": ("synthesis.jsonl", synthesis, "Gatys style transfer", "PyTorch Gatys loop"),
    "detection.py": ("detection.jsonl", detection, "COCO mAP", "pycocotools"),
    "sequence.py": ("sequence.jsonl", sequence, "char transformer, LSTM",
                    "hand-written nanoGPT loop, torch.nn.LSTM"),
    "char_lm.py": ("char_lm.jsonl", char_lm, "char transformer", "nanoGPT (published)"),
    "rl.py": ("rl.jsonl", rl, "PPO, DQN, A2C on CartPole-v1", "Stable-Baselines3"),
    "export.py": ("export.jsonl", export, "TorchScript, onnxruntime", "eager PyTorch"),
    "scratch.py": ("scratch.jsonl", scratch, "NumPy engine", "torch"),
    "sgds.py": ("sgds.jsonl", sgds, "SGD-S sampling", "uniform sampling"),
    "serve_load.py": ("serve.jsonl", serve_load, "`striate serve`", "no peer: batching off"),
}  # fmt: skip


def machine(entries: list[dict]) -> str:
    """CPU, native bf16 and threads from the `machine` dict of newer records; else the `device`
    (or string `machine`) older records carry."""
    seen = []
    for e in entries:
        m = e.get("machine")
        if isinstance(m, dict):
            bf16 = "yes" if m.get("native_bf16") else "no"
            if m.get("bf16_forced_by"):
                bf16 += f" ({m['bf16_forced_by']})"
            text = f"{m.get('cpu')}, native bf16 {bf16}, {m.get('threads')} threads"
            if str(e.get("device", "")).startswith(("NVIDIA", "cuda")) and m.get("gpus"):
                text = f"{', '.join(m['gpus'])} (host {text})"
        else:
            text = m or e.get("device") or "?"
        if text not in seen:
            seen.append(text)
    return "; ".join(seen)


def table() -> str:
    lines = ["| benchmark | what is compared | peer | ratio striate / peer | machine | date |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for script, (record, extract, what, peer) in EXTRACTORS.items():
        entries = read_record(RESULTS / record) if record and (RESULTS / record).exists() else []
        rows = extract(entries) if extract and entries else []
        if not rows:
            status = (
                "no record (the script only prints its table; see its section)"
                if record is None
                else "not run yet"
                if script.startswith("cifar10_vs_airbench")
                else "no record"
            )
            lines.append(f"| `{script}` | {what} | {peer} | {status} | | |")
        for what, peer, ratio, used in rows:
            date = max(str(e.get("date", ""))[:10] for e in used)
            lines.append(f"| `{script}` | {what} | {peer} | {ratio} | {machine(used)} | {date} |")
    return "\n".join(lines)


def main() -> None:
    text = table()
    print(text)
    write_table("summary", text)


if __name__ == "__main__":
    main()
