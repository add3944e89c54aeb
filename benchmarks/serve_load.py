"""A bounded load test of `striate serve` on 127.0.0.1: N concurrent clients (asyncio + httpx,
one keep-alive connection each) post an image to /predict for a fixed time; requests per second,
p50 and p99 latency, and failed requests (any answer but 200 with the predictions), with batching
off (--max-batch 1) and on (--max-batch 32, --batch-wait-ms 5).

    python benchmarks/serve_load.py                    # ~2 min: 2 models × 2 × 3 client counts
    python benchmarks/serve_load.py --seconds 20 --clients 1,8,32,64
    python benchmarks/serve_load.py --quick            # a smoke test; records nothing

Models: an MLP trained for 200 steps on the bundled 8×8 digits (a network whose forward pass
costs next to nothing, so the HTTP path is what is measured; the image a 8×8 PNG) and
EfficientNet-Lite0 with its ImageNet weights (--pretrained; a 320×240 JPEG, resized and
cropped to 224×224 by the server). The server is `striate serve` in its own process; the clients
share the machine with it, as they do in any test on one machine. Appends to
results/serve.jsonl and rewrites the table in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

RECORD = Path(__file__).resolve().parent / "results" / "serve.jsonl"
SETTINGS = {"off": ["--max-batch", "1"], "on": ["--max-batch", "32", "--batch-wait-ms", "5"]}


async def load(url: str, body: bytes, kind: str, clients: int, seconds: float,
               warmup: float = 1.0) -> dict:  # fmt: skip
    """`clients` clients posting `body` to url/predict back to back for `seconds` (after
    `warmup` seconds not counted): requests, failures, requests per second, p50/p99 latency."""
    latencies: list[float] = []
    failures: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one_client(until: float, counted: bool) -> None:
            while time.perf_counter() < until:
                start = time.perf_counter()
                try:
                    r = await client.post("/predict", files={"file": ("image", body, kind)})
                    ok = r.status_code == 200 and len(r.json()["predictions"]) > 0
                    why = "" if ok else f"{r.status_code}: {r.text[:200]}"
                except (httpx.HTTPError, ValueError, KeyError) as e:
                    why = f"{type(e).__name__}: {e}"
                if counted:
                    (failures.append(why) if why else latencies.append(time.perf_counter() - start))

        t = time.perf_counter()
        await asyncio.gather(*[one_client(t + warmup, False) for _ in range(clients)])
        t = time.perf_counter()
        await asyncio.gather(*[one_client(t + seconds, True) for _ in range(clients)])
        elapsed = time.perf_counter() - t
    ms = sorted(1000 * x for x in latencies)
    quantile = (
        (lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]) if ms else (lambda q: float("nan"))
    )
    return {"clients": clients, "seconds": round(elapsed, 3), "requests": len(ms),
            "failed": len(failures), "first_failure": failures[0] if failures else None,
            "rps": len(ms) / elapsed, "p50_ms": quantile(0.50), "p99_ms": quantile(0.99),
            "mean_ms": statistics.fmean(ms) if ms else float("nan")}  # fmt: skip


class Server:
    """`striate serve ARGS --port 0` in its own process; `url` once it listens."""

    def __init__(self, args: list[str]) -> None:
        code = "import sys; from striate.cli.main import main; sys.exit(main())"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", *args, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        line = self.proc.stdout.readline()
        if " at http://" not in line:
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split(" at ", 1)[1].split("/ ", 1)[0]
        for _ in range(300):
            try:
                httpx.get(self.url + "/healthz", timeout=5)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the server does not answer /healthz")

    def batches(self) -> dict:
        return httpx.get(self.url + "/healthz", timeout=10).json()["batching"]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


def digits_run(folder: Path, steps: int = 200) -> Path:
    """An MLP trained on the bundled digits, saved as a run's model: the folder."""
    import torch

    from striate import Trainer, load_dataset, models
    from striate.data import BatchLoader
    from striate.models.io import save_model

    train = load_dataset("digits", "train", progress=False)
    torch.manual_seed(0)
    net = models.create("mlp", num_classes=10, in_shape=(1, 8, 8), hidden=(32,))
    Trainer(steps=steps, lr=0.1, momentum=0.9, progress=False, device="cpu", tensorboard=False,
            precision="fp32").fit(net, BatchLoader(train, 64, device="cpu", seed=0))  # fmt: skip
    save_model(folder / "model", net, classes=train.classes, in_shape=train.shape)
    return folder


def image_file(kind: str) -> tuple[bytes, str]:
    """The image posted: an 8×8 digit PNG, or a 320×240 colour JPEG."""
    from PIL import Image

    from striate import load_dataset

    buffer = io.BytesIO()
    if kind == "digit":
        digit = load_dataset("digits", "test", progress=False).images[0, 0].numpy()
        Image.fromarray(digit).save(buffer, format="PNG")
        return buffer.getvalue(), "image/png"
    y, x = np.mgrid[0:240, 0:320]
    rgb = np.stack([x * 255 // 319, y * 255 // 239, (x + y) % 256], axis=2).astype(np.uint8)
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), "image/jpeg"


def table(entries: list[dict]) -> str:
    lines = [
        "| model | clients | batching off: req/s | p50 ms | p99 ms | batching on: req/s | p50 ms "
        "| p99 ms | images per batch | failed |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    by = {(e["model"], e["clients"], e["batching"]): e for e in entries}
    for model, clients in dict.fromkeys((e["model"], e["clients"]) for e in entries):
        off, on = by.get((model, clients, "off")), by.get((model, clients, "on"))
        cells = [model, str(clients)]
        for e in (off, on):
            cells += ["–"] * 3 if e is None else [f"{e['rps']:.0f}", f"{e['p50_ms']:.1f}",
                                                  f"{e['p99_ms']:.1f}"]  # fmt: skip
        cells.append(f"{on['images_per_batch']:.1f}" if on else "–")
        cells.append(str(sum(e["failed"] for e in (off, on) if e)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--models", default="digits-mlp,efficientnet_lite0")
    parser.add_argument("--quick", action="store_true", help="1 s per setting; records nothing")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    clients = [int(c) for c in args.clients.split(",")]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import append_record, cpu_name, print_machine, write_table

    print_machine()

    date = datetime.datetime.now().isoformat(timespec="seconds")
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            if model == "digits-mlp":
                source, (body, kind) = [str(digits_run(Path(tmp)))], image_file("digit")
            else:
                source, (body, kind) = ["--pretrained", model], image_file("photo")
            for batching, options in SETTINGS.items():
                server = Server(source + options)
                try:
                    for n in clients:
                        before = server.batches()
                        result = asyncio.run(load(server.url, body, kind, n, seconds))
                        after = server.batches()
                        images = after["images"] - before["images"]
                        batches = max(1, after["batches"] - before["batches"])
                        entry = {"date": date, "device": cpu_name(os.cpu_count() or 1),
                                 "model": model, "batching": batching, "options": options,
                                 **result, "images_per_batch": images / batches,
                                 "load_average": os.getloadavg()[0]}  # fmt: skip
                        entries.append(entry)
                        print(f"{model:18} batching {batching:3} {n:3} clients: "
                              f"{result['rps']:7.1f} req/s  p50 {result['p50_ms']:7.1f} ms  "
                              f"p99 {result['p99_ms']:7.1f} ms  {images / batches:5.1f} per batch"
                              f"  failed {result['failed']}", flush=True)  # fmt: skip
                finally:
                    server.close()
    failed = sum(e["failed"] for e in entries)
    print(table(entries))
    if failed:
        example = next(e["first_failure"] for e in entries if e["failed"])
        print(f"{failed} requests failed, e.g. {example}")
    if not args.quick:
        append_record(RECORD, entries)
        write_table("serve_load", table(entries))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
