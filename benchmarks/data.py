"""Data-pipeline benchmarks: striate against the usual per-image way, measured in one run.

    python benchmarks/data.py                      # every section
    python benchmarks/data.py --sections augment   # some sections
    python benchmarks/data.py --quick              # fewer images, a smoke test
    python benchmarks/data.py --threads 1          # fix torch's thread count

Each section is a function ``(quick: bool) -> list[dict]`` registered in SECTIONS; main() runs the
chosen ones and prints one table. Absolute numbers vary between machines; compare the ratio.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import zipfile
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from _common import RESULTS, median_time, print_machine, row, run_sections, shared_data
from striate.data.augment import Compose, Cutout, RandomCrop, RandomHorizontalFlip
from striate.data.folder import load_folder

# --------------------------------------------------------------------------- augment


def bench_augment(quick: bool) -> list[dict]:
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

    t_striate = median_time(striate_run, repeats)
    t_per_image = median_time(per_image_run, repeats)
    ips_striate, ips_per_image = total / t_striate, total / t_per_image
    note = f"{total} images, batch {batch}, {torch.get_num_threads()} torch threads"
    return [
        row("augment", "striate batched (CPU)", ips_striate, "images/s", note),
        row("augment", "per-image PIL/NumPy", ips_per_image, "images/s", note),
        row("augment", "ratio striate / per-image", ips_striate / ips_per_image, "×"),
    ]


# --------------------------------------------------------------------------- decode


def bench_decode(quick: bool) -> list[dict]:
    """CIFAR-10 (JPEG copy) from the zip in ../shared/data: striate's first decode (worker
    processes, into the cache), its cached load, and a plain one-process PIL loop over the zip
    members (what an ImageFolder-style dataset does on every run).
    """
    zip_path = shared_data() / "cifar10" / "cifar10-jpeg.zip"
    if not zip_path.is_file():
        raise SystemExit(f"{zip_path} not found: set STRIATE_SHARED_DATA")
    split = "test" if quick else "train"

    def pil_loop() -> None:
        with zipfile.ZipFile(zip_path) as zf:
            names = [n for n in zf.namelist() if n.startswith(f"{split}/") and n.endswith(".jpg")]
            out = np.empty((len(names), 32, 32, 3), dtype=np.uint8)
            for i, n in enumerate(names):
                with Image.open(io.BytesIO(zf.read(n))) as im:
                    out[i] = np.asarray(im.convert("RGB"))

    with tempfile.TemporaryDirectory() as cache:
        os.environ["STRIATE_CACHE"] = cache
        t0 = time.perf_counter()
        ds = load_folder(zip_path, split, progress=False)
        t_first = time.perf_counter() - t0
        t_cached = median_time(lambda: load_folder(zip_path, split, progress=False), 3)
    t0 = time.perf_counter()
    pil_loop()
    t_pil = time.perf_counter() - t0
    note = f"{len(ds):,} images ({split}), {os.cpu_count()} cores"
    return [
        row("decode", "striate first decode (workers)", t_first, "s", note),
        row("decode", "striate cached load", t_cached, "s", note),
        row("decode", "one-process PIL loop over the zip", t_pil, "s", note),
        row("decode", "ratio PIL loop / striate first decode", t_pil / t_first, "×"),
        row("decode", "ratio PIL loop / striate cached load", t_pil / t_cached, "×"),
    ]


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {
    "decode": bench_decode,
    "augment": bench_augment,
}


def main(argv: list[str] | None = None) -> None:
    run_sections(__doc__, SECTIONS, argv, record=RESULTS / "data.jsonl")


if __name__ == "__main__":
    print_machine()
    main()
