"""Detection metrics: striate's COCO mAP against pycocotools' COCOeval; NMS and RoIAlign throughput.

    python benchmarks/detection.py --threads 1                 # 5,000 images, 3 rounds
    python benchmarks/detection.py --quick                     # a smoke test (300 images)

mAP: one synthetic detection set, seeded: IMAGES images with 1–8 objects each from CLASSES classes
(sizes from 6 to 300 pixels, so all three area ranges are filled; 5% crowd regions), and DETS
detections per image (jittered copies of the objects, some with the wrong class, some clutter;
scores rounded to 1/64, so there are ties). Both programs get the same boxes:

- striate: ``MeanAveragePrecision().update(preds, targets)`` then ``compute()`` (the update
  includes checking and converting the inputs);
- pycocotools: ``COCOeval(gt, dt, "bbox")`` ``evaluate()``, ``accumulate()``, ``summarize()`` on
  COCO objects built in memory beforehand (``createIndex``, ``loadRes``: not timed).

Each runs ROUNDS times, alternating which goes first; medians. The note gives the largest
|striate − COCOeval| over the 12 summary numbers (and over the whole precision array).

NMS: `nms` on N random boxes (boxes per second). RoIAlign: `roi_align` forward and backward,
512 RoIs on a 4×64×32×32 feature map, 7×7 output, adaptive sampling (RoIs per second). There is no
peer for these here (torchvision cannot be imported), so they are throughputs only.

Every run (not --quick) is appended to benchmarks/results/detection.jsonl, and BENCHMARKS.md's
table between the `detection` markers is rewritten from it (the latest run per device).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import statistics
import time

import numpy as np
import torch

from _common import (
    RESULTS,
    append_record,
    cpu_name,
    print_machine,
    print_table,
    read_record,
    row,
    write_table,
)
from striate.detection.boxes import nms
from striate.detection.mean_ap import MeanAveragePrecision
from striate.detection.roi import roi_align

RECORD = RESULTS / "detection.jsonl"
STATS = (
    *("map", "map_50", "map_75", "map_small", "map_medium", "map_large"),
    *("mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"),
)


def synthetic(images: int, dets: int, classes: int, seed: int = 0):
    """(preds, targets) lists of per-image dicts, as described in the module docstring."""
    g = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(images):
        n = int(g.integers(1, 9))
        size = g.choice([6, 20, 40, 70, 120, 300], size=(n, 2)) * g.uniform(0.7, 1.3, (n, 2))
        xy = g.uniform(0, 400, (n, 2))
        gt = np.concatenate([xy, xy + size], 1)
        labels = g.integers(0, classes, n)
        crowd = g.random(n) < 0.05
        pick = g.integers(0, n, dets)
        spread = g.uniform(0.0, 0.4, (dets, 1))
        jitter = g.normal(0, 1, (dets, 4)) * spread * np.tile(size[pick], 2)
        boxes = gt[pick] + jitter
        clutter = g.random(dets) < 0.3
        boxes[clutter] = np.concatenate([g.uniform(0, 400, (1, 2)), g.uniform(0, 400, (1, 2))], 1)
        boxes[clutter, 2:] += g.uniform(5, 100, (int(clutter.sum()), 2))
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
        det_labels = np.where(g.random(dets) < 0.1, g.integers(0, classes, dets), labels[pick])
        quality = np.where(clutter, 0.2, 1 - spread[:, 0])
        scores = np.round(np.clip(quality + g.normal(0, 0.15, dets), 0, 1) * 64) / 64
        preds.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "scores": torch.tensor(scores, dtype=torch.float32),
                "labels": torch.tensor(det_labels),
            }
        )
        targets.append(
            {
                "boxes": torch.tensor(gt, dtype=torch.float32),
                "labels": torch.tensor(labels),
                "crowd": torch.tensor(crowd),
            }
        )
    return preds, targets


def coco_objects(preds, targets, classes: int):
    """pycocotools' ground truth and result objects for the same boxes (xywh, in float64 from the
    float32 tensors, as striate converts them)."""
    from pycocotools.coco import COCO

    def xywh(b):
        b = b.double()
        return torch.stack((b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), 1).tolist()

    anns = []
    for i, t in enumerate(targets):
        for b, lab, c in zip(
            xywh(t["boxes"]), t["labels"].tolist(), t["crowd"].tolist(), strict=True
        ):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": lab + 1,
                    "bbox": b,
                    "area": b[2] * b[3],
                    "iscrowd": int(c),
                }
            )
    results = [
        {"image_id": i + 1, "category_id": lab + 1, "bbox": b, "score": s}
        for i, p in enumerate(preds)
        for b, s, lab in zip(
            xywh(p["boxes"]), p["scores"].double().tolist(), p["labels"].tolist(), strict=True
        )
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": [{"id": i + 1} for i in range(len(targets))],
            "annotations": anns,
            "categories": [{"id": c + 1} for c in range(classes)],
        }
        gt.createIndex()
        dt = gt.loadRes(results)
    return gt, dt


def run_striate(preds, targets, classes: int):
    metric = MeanAveragePrecision(class_names=[str(c) for c in range(classes)])
    metric.update(preds, targets)
    return metric.compute(), metric


def run_coco(gt, dt):
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def measure_map(images: int, dets: int, classes: int, rounds: int) -> dict:
    preds, targets = synthetic(images, dets, classes)
    gt, dt = coco_objects(preds, targets, classes)
    times: dict[str, list[float]] = {"striate": [], "pycocotools": []}
    for r in range(rounds):
        for name in ("striate", "pycocotools") if r % 2 == 0 else ("pycocotools", "striate"):
            t0 = time.perf_counter()
            if name == "striate":
                ours, metric = run_striate(preds, targets, classes)
            else:
                e = run_coco(gt, dt)
            times[name].append(time.perf_counter() - t0)
    stats_diff = max(abs(ours[k] - e.stats[i]) for i, k in enumerate(STATS))
    prec_diff = float(np.abs(metric._result["_precision"].numpy() - e.eval["precision"]).max())
    return {
        "images": images,
        "dets_per_image": dets,
        "classes": classes,
        "objects": sum(len(t["labels"]) for t in targets),
        "striate_s": statistics.median(times["striate"]),
        "pycocotools_s": statistics.median(times["pycocotools"]),
        "max_abs_diff_stats": stats_diff,
        "max_abs_diff_precision": prec_diff,
        "map": ours["map"],
        "map_50": ours["map_50"],
    }


def measure_ops(nms_boxes: int) -> dict:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(nms_boxes, 2, generator=g) * 500
    boxes = torch.cat((xy, xy + torch.rand(nms_boxes, 2, generator=g) * 80 + 4), 1)
    scores = torch.rand(nms_boxes, generator=g)
    nms(boxes, scores, 0.5)
    t = []
    for _ in range(5):
        t0 = time.perf_counter()
        nms(boxes, scores, 0.5)
        t.append(time.perf_counter() - t0)
    x = torch.randn(4, 64, 32, 32, generator=g, requires_grad=True)
    xy = torch.rand(512, 2, generator=g) * 200
    rois = torch.cat(
        (
            torch.randint(0, 4, (512, 1), generator=g).float(),
            xy,
            xy + torch.rand(512, 2, generator=g) * 100 + 4,
        ),
        1,
    )
    ra = []
    for _ in range(5):
        t0 = time.perf_counter()
        roi_align(x, rois, 7, 1 / 8, -1, True).sum().backward()
        ra.append(time.perf_counter() - t0)
    return {
        "nms_boxes": nms_boxes,
        "nms_s": statistics.median(t),
        "roi_align_rois": 512,
        "roi_align_s": statistics.median(ra),
    }


def rows(e: dict) -> list[dict]:
    size = f"{e['images']} images × {e['dets_per_image']} dets, {e['classes']} classes"
    return [
        row("mAP", "striate", e["striate_s"], "s", size),
        row("mAP", "pycocotools", e["pycocotools_s"], "s", size),
        row("mAP", "pycocotools / striate", e["pycocotools_s"] / e["striate_s"], "×"),
        row(
            "mAP",
            "max |Δ| 12 stats",
            e["max_abs_diff_stats"],
            "abs",
            f"{e['max_abs_diff_stats']:.1e} (whole precision array "
            f"{e['max_abs_diff_precision']:.1e})",
        ),
        row("nms", "striate", e["nms_boxes"] / e["nms_s"], "boxes/s", f"{e['nms_boxes']} boxes"),
        row("roi_align", "striate", e["roi_align_rois"] / e["roi_align_s"], "RoIs/s", "fwd+bwd"),
    ]


def table(entries: list[dict]) -> str:
    latest = {e["device"]: e for e in entries}
    lines = [
        "| device | data | striate | COCOeval | speed-up | max abs diff (12 stats / precision) "
        "| NMS | RoIAlign fwd+bwd | versions | date |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in latest.values():
        lines.append(
            f"| {e['device']} | {e['images']:,} images × {e['dets_per_image']} detections, "
            f"{e['classes']} classes ({e['objects']:,} objects) | {e['striate_s']:.2f} s | "
            f"{e['pycocotools_s']:.2f} s | **{e['pycocotools_s'] / e['striate_s']:.1f}×** | "
            f"{e['max_abs_diff_stats']:.1e} / {e['max_abs_diff_precision']:.1e} | "
            f"{e['nms_boxes'] / e['nms_s']:,.0f} boxes/s ({e['nms_boxes']}) | "
            f"{e['roi_align_rois'] / e['roi_align_s']:,.0f} RoIs/s | torch {e['torch']}, "
            f"pycocotools {e['pycocotools']} | {e['date']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dets", type=int, default=20, help="detections per image")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per program (median)")
    parser.add_argument("--quick", action="store_true", help="a smoke test; records nothing")
    parser.add_argument("--table-only", action="store_true", help="rewrite BENCHMARKS.md's table")
    args = parser.parse_args(argv)
    if args.table_only:
        write_table("detection", table(read_record(RECORD)))
        return
    if args.quick:
        args.images, args.rounds = 300, 1
    torch.set_num_threads(args.threads)
    from importlib.metadata import version

    entry = {
        "device": cpu_name(args.threads),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "pycocotools": version("pycocotools"),
        **measure_map(args.images, args.dets, args.classes, args.rounds),
        **measure_ops(2000),
    }
    print_table(rows(entry))
    if not args.quick:
        append_record(RECORD, [entry])
        write_table("detection", table(read_record(RECORD)))


if __name__ == "__main__":
    print_machine()
    main()
