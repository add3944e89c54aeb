"""Data-pipeline benchmarks: striate against the usual per-image way, measured in one run.

    python benchmarks/data.py                      # every section
    python benchmarks/data.py --sections augment   # some sections
    python benchmarks/data.py --quick              # fewer images, a smoke test
    python benchmarks/data.py --threads 1          # fix torch's thread count

Each section is a function ``(quick: bool) -> list[Row]`` registered in SECTIONS; main() runs the
chosen ones and prints one table. Absolute numbers vary between machines; compare the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from striate.data.augment import Compose, Cutout, RandomCrop, RandomHorizontalFlip


@dataclass
class Row:
    section: str
    program: str
    value: float
    unit: str
    note: str = ""


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls after one warm-up call, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --------------------------------------------------------------------------- augment


def bench_augment(quick: bool) -> list[Row]:
    """Flip + random crop (padding 4, reflect) + cutout 8 on uint8 3×32×32 images, batch 512.

    striate: uint8 batch → float / 255 → batched transforms (one tensor op each).
    per-image: PIL flip, NumPy reflect pad + crop, NumPy cutout, then stack to a float batch
    (what a torchvision-style Dataset + DataLoader does in its workers, here in one process).
    """
    total, batch, repeats = (4096, 512, 1) if quick else (20_000, 512, 3)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (total, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (total,), generator=gen)
    hwc = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())  # how per-image sets store it

    pipeline = Compose(
        [RandomHorizontalFlip(), RandomCrop(32, padding=4, padding_mode="reflect"), Cutout(8)]
    )

    def striate_run() -> None:
        g = torch.Generator().manual_seed(1)
        for s in range(0, total, batch):
            x = images[s : s + batch].float().div_(255)
            pipeline(x, labels[s : s + batch], g)

    def per_image_run() -> None:
        rng = np.random.default_rng(1)
        for s in range(0, total, batch):
            out = []
            for a in hwc[s : s + batch]:
                img = Image.fromarray(a)
                if rng.random() < 0.5:
                    img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                a = np.pad(np.asarray(img), ((4, 4), (4, 4), (0, 0)), mode="reflect")
                i, j = rng.integers(0, 9, size=2)
                a = a[i : i + 32, j : j + 32].astype(np.float32) / 255
                cy, cx = rng.integers(0, 32, size=2)
                a[max(cy - 4, 0) : cy + 4, max(cx - 4, 0) : cx + 4] = 0
                out.append(a)
            torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)

    t_striate = _median_time(striate_run, repeats)
    t_per_image = _median_time(per_image_run, repeats)
    ips_striate, ips_per_image = total / t_striate, total / t_per_image
    note = f"{total} images, batch {batch}, {torch.get_num_threads()} torch threads"
    return [
        Row("augment", "striate batched (CPU)", ips_striate, "images/s", note),
        Row("augment", "per-image PIL/NumPy", ips_per_image, "images/s", note),
        Row("augment", "ratio striate / per-image", ips_striate / ips_per_image, "×"),
    ]


SECTIONS: dict[str, Callable[[bool], list[Row]]] = {
    "augment": bench_augment,
}


def _print_table(rows: list[Row]) -> None:
    header = ("section", "program", "value", "unit", "note")
    cells = [header] + [
        (
            r.section,
            r.program,
            f"{r.value:,.1f}" if r.unit != "×" else f"{r.value:.2f}",
            r.unit,
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for k, c in enumerate(cells):
        print(
            "  ".join(
                v.ljust(w) if i != 2 else v.rjust(w)
                for i, (v, w) in enumerate(zip(c, widths, strict=True))
            ).rstrip()
        )
        if k == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {', '.join(SECTIONS)})",
    )
    parser.add_argument("--quick", action="store_true", help="fewer images: a smoke test")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own choice)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    rows: list[Row] = []
    for name in names:
        rows += SECTIONS[name](args.quick)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load}")
    _print_table(rows)


if __name__ == "__main__":
    main()
