"""The NumPy reference engine (striate.scratch) against a naive loop and against torch.

    OMP_NUM_THREADS=1 python benchmarks/scratch.py            # both sections (~3 min, 2 cores)
    OMP_NUM_THREADS=1 python benchmarks/scratch.py --quick    # tiny sizes, 1 epoch: records nothing

conv: one convolution layer (3x3, stride 1, padding 1) on the same float32 arrays, forward and
forward + backward: scratch's im2col `Conv2d` against a naive convolution that loops in Python over
the output positions (one small tensordot per position; at the small size only) and against
`torch.nn.functional.conv2d` (backward through autograd). Median wall time of REPEATS runs, the
ratios, and the largest difference of the outputs and gradients from torch's.

mnist: the reference post's network (Gugger, "A Neural Net In PyTorch"): 784-100-10 ReLU, plain SGD
lr 0.01, batch 64, 10 epochs, constant lr, inputs scaled to 0-1 and normalised with MNIST's mean and
std, seeds 0, 1, 2. The NumPy engine runs the recipe of `striate scratch train`'s defaults (torch's
default initialisation, U(±1/sqrt(fan_in)), drawn by NumPy); torch runs striate's twin as
benchmarks/train_mnist_mlp.py's `reference` section does (its `mlp` and `train_once`). Test
accuracy on the 10,000 test images and training time.

One thread for both (torch.set_num_threads(1); set OMP_NUM_THREADS=1 for NumPy's BLAS). Each run is
appended to results/scratch.jsonl and the table in BENCHMARKS.md is rewritten from this run.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time

import numpy as np
import torch

from _common import (
    RESULTS,
    append_record,
    cpu_name,
    median_time,
    print_machine,
    shared_data,
    write_table,
)
from striate.scratch import SGD, Conv2d, Linear, Model, ReLU, Solver, load_mnist_arrays

RECORD = RESULTS / "scratch.jsonl"
REPEATS = 7
SEEDS = (0, 1, 2)
EPOCHS, BATCH, LR = 10, 64, 0.01
TWIN = {"normalised": 96.16, "pixels / 255 only": 92.97}  # BENCHMARKS.md, train_mnist_mlp.py
# (N, C_in, C_out, H=W, naive?)
SIZES = [(8, 3, 8, 16, True), (64, 16, 32, 32, False)]
QUICK_SIZES = [(2, 3, 4, 8, True)]


def maxdiff(a: np.ndarray, b: np.ndarray) -> float:
    """The largest |a - b| relative to the largest |b|."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def naive_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    """Cross-correlation looping over the output positions (stride 1)."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    o, _, kh, kw = w.shape
    oh, ow = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    out = np.empty((x.shape[0], o, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = np.tensordot(
                xp[:, :, i : i + kh, j : j + kw], w, ([1, 2, 3], [1, 2, 3])
            )
    return out + b[:, None, None]


def naive_backward(x: np.ndarray, w: np.ndarray, grad: np.ndarray, pad: int):
    """(dx, dW, db) of `naive_forward`, looping over the output positions."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    _, _, kh, kw = w.shape
    for i in range(grad.shape[2]):
        for j in range(grad.shape[3]):
            g = grad[:, :, i, j]  # (N, O)
            dw += np.tensordot(g, xp[:, :, i : i + kh, j : j + kw], ([0], [0]))
            dxp[:, :, i : i + kh, j : j + kw] += np.tensordot(g, w, ([1], [0]))
    dx = dxp[:, :, pad : xp.shape[2] - pad, pad : xp.shape[3] - pad]
    return dx, dw, grad.sum(axis=(0, 2, 3))


def conv_case(n: int, c: int, o: int, hw: int, with_naive: bool, repeats: int) -> dict:
    """Times and differences from torch of one convolution size."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    grad = rng.standard_normal((n, o, hw, hw)).astype(np.float32)
    layer = Conv2d(c, o, 3, padding=1, rng=0, init="torch")
    w, b = layer.params["W"], layer.params["b"]
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    gt = torch.tensor(grad)

    def torch_fwd():
        with torch.no_grad():
            return torch.nn.functional.conv2d(xt, wt, bt, padding=1)

    def torch_fwd_bwd():
        for t in (xt, wt, bt):
            t.grad = None
        torch.nn.functional.conv2d(xt, wt, bt, padding=1).backward(gt)

    def scratch_fwd_bwd():
        layer.forward(x)
        return layer.backward(grad)

    # agreement with torch
    out_t = torch_fwd().numpy()
    torch_fwd_bwd()
    out_s = layer.forward(x)
    dx_s = layer.backward(grad)
    diff = {
        "scratch_out": maxdiff(out_s, out_t),
        "scratch_dx": maxdiff(dx_s, xt.grad.numpy()),
        "scratch_dW": maxdiff(layer.grads["W"], wt.grad.numpy()),
        "scratch_db": maxdiff(layer.grads["b"], bt.grad.numpy()),
    }
    times = {
        "scratch_fwd": median_time(lambda: layer.forward(x), repeats),
        "scratch_fwd_bwd": median_time(scratch_fwd_bwd, repeats),
        "torch_fwd": median_time(torch_fwd, repeats),
        "torch_fwd_bwd": median_time(torch_fwd_bwd, repeats),
    }
    if with_naive:
        out_n = naive_forward(x, w, b, 1)
        dx_n, dw_n, db_n = naive_backward(x, w, grad, 1)
        diff |= {
            "naive_out": maxdiff(out_n, out_t),
            "naive_dx": maxdiff(dx_n, xt.grad.numpy()),
            "naive_dW": maxdiff(dw_n, wt.grad.numpy()),
            "naive_db": maxdiff(db_n, bt.grad.numpy()),
        }
        times["naive_fwd"] = median_time(lambda: naive_forward(x, w, b, 1), repeats)
        times["naive_fwd_bwd"] = median_time(
            lambda: (naive_forward(x, w, b, 1), naive_backward(x, w, grad, 1)), repeats
        )
    size = f"N={n}, C={c}->{o}, {hw}x{hw}, 3x3 pad 1"
    print(f"conv {size}: " + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in times.items()))
    print(f"conv {size}: max |difference| from torch / max |torch| " + ", ".join(
        f"{k} {v:.1e}" for k, v in diff.items()))  # fmt: skip
    return {"section": "conv", "size": size, "repeats": repeats,
            "seconds": times, "max_rel_diff_from_torch": diff}  # fmt: skip


def bench_conv(quick: bool) -> list[dict]:
    repeats = 2 if quick else REPEATS
    return [conv_case(*size, repeats) for size in (QUICK_SIZES if quick else SIZES)]


def numpy_run(seed: int, normalize: bool, quick: bool) -> tuple[float, float, float]:
    """(test accuracy %, training seconds, last epoch's mean loss) of the NumPy engine with
    `striate scratch train`'s recipe."""
    train_limit, test_limit = (2_000, 1_000) if quick else (None, None)
    x, y = load_mnist_arrays(shared_data(), "train", limit=train_limit, normalize=normalize)
    x_test, y_test = load_mnist_arrays(shared_data(), "test", limit=test_limit, normalize=normalize)
    rng = np.random.default_rng(seed)
    model = Model([Linear(784, 100, rng, init="torch"), ReLU(), Linear(100, 10, rng, init="torch")])
    solver = Solver(model, SGD(LR), batch_size=BATCH, epochs=1 if quick else EPOCHS, seed=seed,
                    verbose=False)  # fmt: skip
    t0 = time.perf_counter()
    history = solver.fit(x, y)
    seconds = time.perf_counter() - t0
    return 100 * model.accuracy(x_test, y_test), seconds, history[-1]["loss"]


def torch_run(seed: int, normalize: bool, quick: bool) -> tuple[float, float]:
    """(test accuracy %, training seconds) of striate's torch twin, as train_mnist_mlp.py's
    `reference` section runs it (its `mnist`, `mlp` and `train_once`)."""
    from striate.data import Normalizer
    from train_mnist_mlp import mlp, mnist, train_once

    train, test = mnist(quick)
    norm = Normalizer().fit(train) if normalize else None
    _, metrics, seconds = train_once(
        mlp(seed), train, test, norm, epochs=1 if quick else EPOCHS, seed=seed
    )
    return 100 * metrics["acc"], seconds


def bench_mnist(quick: bool) -> list[dict]:
    rows = []
    for normalize in (True, False):
        inputs = "normalised" if normalize else "pixels / 255 only"
        for seed in SEEDS[:1] if quick else SEEDS:
            acc_np, sec_np, loss_np = numpy_run(seed, normalize, quick)
            print(f"mnist {inputs} seed {seed}: numpy {acc_np:.2f} % ({sec_np:.1f} s, last epoch "
                  f"loss {loss_np:.4f})", flush=True)  # fmt: skip
            acc_t, sec_t = torch_run(seed, normalize, quick)
            print(f"mnist {inputs} seed {seed}: torch {acc_t:.2f} % ({sec_t:.1f} s)", flush=True)
            rows.append({"section": "mnist", "inputs": inputs, "seed": seed,
                         "epochs": 1 if quick else EPOCHS, "numpy_acc": acc_np,
                         "numpy_seconds": sec_np, "numpy_last_epoch_loss": loss_np,
                         "torch_acc": acc_t, "torch_seconds": sec_t})  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| convolution (float32, one thread) | pass | naive loop | scratch im2col | torch "
        "| naive / im2col | im2col / torch | max diff from torch, relative (im2col) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in (r for r in rows if r["section"] == "conv"):
        s, d = r["seconds"], r["max_rel_diff_from_torch"]
        for key, name, dkey in (
            ("fwd", "forward", "scratch_out"),
            ("fwd_bwd", "forward + backward", "scratch_dx"),
        ):
            naive = s.get(f"naive_{key}")
            lines.append(
                f"| {r['size']} | {name} | "
                + (f"{1e3 * naive:.2f} ms" if naive else "")
                + f" | {1e3 * s[f'scratch_{key}']:.2f} ms | {1e3 * s[f'torch_{key}']:.2f} ms | "
                + (f"{naive / s[f'scratch_{key}']:.1f}×" if naive else "")
                + f" | {s[f'scratch_{key}'] / s[f'torch_{key}']:.2f}× | "
                + (f"{d[dkey]:.1e}" if key == "fwd" else
                   f"dx {d['scratch_dx']:.1e}, dW {d['scratch_dW']:.1e}") + " |"
            )  # fmt: skip
    mnist = [r for r in rows if r["section"] == "mnist"]
    if mnist:
        lines += [
            "",
            "| MNIST 784-100-10 ReLU, SGD lr 0.01, batch 64 | inputs | NumPy engine | torch twin "
            "| NumPy − torch | NumPy time | torch time |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for inputs in dict.fromkeys(r["inputs"] for r in mnist):
            runs = [r for r in mnist if r["inputs"] == inputs]
            m = {k: statistics.fmean(r[k] for r in runs)
                 for k in ("numpy_acc", "torch_acc", "numpy_seconds", "torch_seconds")}  # fmt: skip
            for label, r, bold in [(f"seed {r['seed']}", r, "") for r in runs] + [
                (f"mean of {len(runs)} seeds", m, "**")
            ]:
                lines.append(
                    f"| {label}, {runs[0]['epochs']} epochs | {inputs} | "
                    f"{bold}{r['numpy_acc']:.2f} %{bold} | {bold}{r['torch_acc']:.2f} %{bold} | "
                    f"{r['numpy_acc'] - r['torch_acc']:+.2f} | {r['numpy_seconds']:.1f} s | "
                    f"{r['torch_seconds']:.1f} s |"
                )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sections", nargs="+", default=["conv", "mnist"], choices=["conv", "mnist"])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 epoch, 1 seed: no record")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    if "conv" in args.sections:
        rows += bench_conv(args.quick)
    if "mnist" in args.sections:
        rows += bench_mnist(args.quick)
    text = table(rows)
    print(text)
    if args.quick:
        return
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    meta = {"date": now, "device": cpu_name(1), "numpy": np.__version__, "torch": torch.__version__}
    append_record(RECORD, [meta | r for r in rows])
    write_table("scratch", text)


if __name__ == "__main__":
    print_machine()
    main()
