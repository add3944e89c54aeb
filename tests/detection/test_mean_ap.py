"""MeanAveragePrecision against pycocotools' COCOeval (to 1e-6, on random and adversarial cases)
and against loop transcriptions of the VOC devkit."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from striate.detection.mean_ap import MeanAveragePrecision, plot_pr_curves
from striate.errors import ConfigError, InputError

STATS = (
    *("map", "map_50", "map_75", "map_small", "map_medium", "map_large"),
    *("mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"),
)


def random_case(seed: int, images: int = 12, classes: int = 4, grid: bool = True):
    """Detections and ground truth with the awkward cases: ties in scores and in IoU (integer
    coordinates), empty images, images without detections or without objects, crowd regions, a
    class without ground truth, >100 detections in one image, tiny and huge boxes, an "area"
    that is not the box's."""
    g = np.random.default_rng(seed)
    preds, targets = [], []
    for i in range(images):
        n_gt = 0 if i % 5 == 1 else int(g.integers(1, 8))
        size = g.choice([4, 20, 40, 80, 150, 300], size=(n_gt, 2))
        xy = g.integers(0, 200, size=(n_gt, 2))
        gt = np.concatenate([xy, xy + size * g.uniform(0.5, 1.5, size=(n_gt, 2))], 1)
        if grid:
            gt = np.round(gt)
        gt_labels = g.integers(0, classes - 1, size=n_gt)  # the last class has no ground truth
        if n_gt and g.random() < 0.4:  # a near-duplicate object: ties in IoU
            gt = np.concatenate([gt, gt[-1:] + g.integers(-1, 2, size=(1, 4))])
            gt_labels, n_gt = np.append(gt_labels, gt_labels[-1]), n_gt + 1
        if n_gt >= 2 and g.random() < 0.4:  # a crowd region over two objects
            pair = gt[:2]
            gt = np.concatenate(
                [gt, np.concatenate([pair[:, :2].min(0), pair[:, 2:].max(0)])[None]]
            )
            gt_labels, n_gt = np.append(gt_labels, gt_labels[0]), n_gt + 1
        gt[:, 2:] = np.maximum(gt[:, 2:], gt[:, :2])
        crowd = g.random(n_gt) < 0.15
        if n_gt >= 3 and g.random() < 0.5:
            crowd[-1] = True
        area = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
        area = np.where(g.random(n_gt) < 0.2, area * g.uniform(0.3, 1.2, n_gt), area)
        # detections: jittered copies of the objects, exact copies, and clutter
        n_near = 0 if i % 5 == 2 else int(g.integers(0, 3 * n_gt + 1))
        pick = g.integers(0, max(n_gt, 1), size=n_near)
        src = gt[pick] if n_gt else np.zeros((0, 4))
        spread = g.uniform(0.01, 0.3, size=(len(src), 1))
        jitter = g.normal(0, 1, size=src.shape) * spread * np.tile(src[:, 2:] - src[:, :2], 2)
        exact = g.random((len(src), 1)) < 0.2
        near = src + np.where(exact, 0, jitter)
        quality = np.where(exact[:, 0], 1.0, 1 - 2 * spread[:, 0])
        n_far = int(g.integers(0, 4)) if i % 5 != 2 else 0
        far_xy = g.integers(0, 300, size=(n_far, 2))
        far = np.concatenate([far_xy, far_xy + g.integers(1, 120, size=(n_far, 2))], 1)
        near_labels = gt_labels[pick] if n_gt else np.zeros(0, int)
        boxes = np.concatenate([near, far])
        labels = np.concatenate([near_labels, g.integers(0, classes, size=n_far)])
        if i == 3 and n_gt:  # more than 100 detections of one class in one image
            many = np.tile(gt[:1], (130, 1)) + g.integers(-9, 9, (130, 4))
            boxes = np.concatenate([boxes, many])
            labels = np.concatenate([labels, np.full(130, gt_labels[0])])
        boxes = np.round(boxes) if grid else boxes
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
        flip = g.random(len(labels)) < 0.1  # some detections of the wrong class
        labels = np.where(flip, g.integers(0, classes, size=len(labels)), labels)
        quality = np.concatenate([quality, g.random(len(boxes) - len(quality)) * 0.6])
        scores = np.round(np.clip(quality + g.normal(0, 0.2, len(boxes)), 0, 1) * 8) / 8  # ties
        preds.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float64),
                "scores": torch.tensor(scores),
                "labels": torch.tensor(labels, dtype=torch.int64),
            }
        )
        targets.append(
            {
                "boxes": torch.tensor(gt, dtype=torch.float64).reshape(-1, 4),
                "labels": torch.tensor(gt_labels, dtype=torch.int64),
                "crowd": torch.tensor(crowd),
                "area": torch.tensor(area),
            }
        )
    return preds, targets


def coco_eval(preds, targets, classes: int, iou_thresholds=None, max_detections=None):
    """pycocotools' COCOeval on the same data (COCO objects built in memory)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        b = b.double()
        return torch.stack((b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), 1).tolist()

    images = [{"id": i + 1} for i in range(len(targets))]
    categories = [{"id": c + 1, "name": str(c)} for c in range(classes)]
    anns = []
    for i, t in enumerate(targets):
        boxes = xywh(t["boxes"])
        crowd = t.get("crowd", torch.zeros(len(boxes), dtype=torch.bool))
        area = t.get("area")
        for j, b in enumerate(boxes):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(t["labels"][j]) + 1,
                    "bbox": b,
                    "area": float(area[j]) if area is not None else b[2] * b[3],
                    "iscrowd": int(crowd[j]),
                }
            )
    results = [
        {"image_id": i + 1, "category_id": int(lab) + 1, "bbox": b, "score": float(s)}
        for i, p in enumerate(preds)
        for b, s, lab in zip(xywh(p["boxes"]), p["scores"], p["labels"], strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": categories}
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:
            dt = COCO()
            dt.dataset = {"images": images, "annotations": [], "categories": categories}
            dt.createIndex()
        e = COCOeval(gt, dt, "bbox")
        if iou_thresholds is not None:
            e.params.iouThrs = np.array(iou_thresholds)
        if max_detections is not None:
            e.params.maxDets = list(max_detections)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def striate_map(preds, targets, classes: int, **kw) -> MeanAveragePrecision:
    metric = MeanAveragePrecision(class_names=[str(c) for c in range(classes)], **kw)
    half = len(preds) // 2  # two updates, as batches would come
    metric.update(preds[:half], targets[:half])
    metric.update(preds[half:], targets[half:])
    return metric


def assert_parity(preds, targets, classes: int):
    e = coco_eval(preds, targets, classes)
    metric = striate_map(preds, targets, classes)
    got = metric.compute()
    ours = np.array([got[k] for k in STATS])
    np.testing.assert_allclose(ours, e.stats, rtol=0, atol=1e-6)
    result = metric._result
    np.testing.assert_allclose(result["_precision"].numpy(), e.eval["precision"], atol=1e-12)
    np.testing.assert_allclose(result["_recall"].numpy(), e.eval["recall"], atol=1e-12)
    per_class = e.eval["precision"][:, :, :, 0, -1]
    for k in range(classes):
        s = per_class[:, :, k]
        want = s[s > -1].mean() if (s > -1).any() else -1
        assert got["map_per_class"][k] == pytest.approx(want, abs=1e-9)
    return got


@pytest.mark.parametrize("seed", range(6))
def test_equals_cocoeval_on_adversarial_cases(seed):
    preds, targets = random_case(seed, grid=seed % 2 == 0)
    got = assert_parity(preds, targets, classes=4)
    assert got["map_per_class"][3] == -1  # the class with detections but no ground truth


def test_equals_cocoeval_with_other_thresholds_and_cutoffs():
    preds, targets = random_case(10)
    kw = {"iou_thresholds": [0.3, 0.5, 0.9, 1.0], "max_detections": (2, 5, 50)}
    e = coco_eval(preds, targets, 4, kw["iou_thresholds"], kw["max_detections"])
    metric = striate_map(preds, targets, 4, **kw)
    metric.compute()
    np.testing.assert_allclose(
        metric._result["_precision"].numpy(), e.eval["precision"], atol=1e-12
    )
    np.testing.assert_allclose(metric._result["_recall"].numpy(), e.eval["recall"], atol=1e-12)
    got = metric.compute()
    assert got["map_50"] == pytest.approx(e.stats[1], abs=1e-6)
    assert got["map_75"] == -1 and got["mar_5"] == pytest.approx(e.stats[7], abs=1e-6)


def test_edge_cases_equal_cocoeval():
    box = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    no_dets = {**empty, "scores": torch.zeros(0)}
    one = {"boxes": box, "labels": torch.tensor([0]), "scores": torch.tensor([0.9])}
    gt = {"boxes": box, "labels": torch.tensor([0])}
    crowd = {"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0]]), "labels": torch.tensor([0])}
    crowd["crowd"] = torch.tensor([True])
    cases = [
        ([no_dets, no_dets], [gt, empty]),  # no detections at all
        ([one, one], [empty, gt]),  # a false positive on an empty image
        ([one], [crowd]),  # only a crowd region: no class with ground truth
        ([one, no_dets], [gt, gt]),
    ]
    for preds, targets in cases:
        assert_parity(preds, targets, classes=2)
    # equal IoU with two objects: the later one is taken, which leaves the first for the next
    # detection; a regular object wins over a crowd region that contains the detection
    a, b = [0.0, 0.0, 10.0, 20.0], [0.0, -10.0, 10.0, 10.0]
    tie_gt = {"boxes": torch.tensor([a, b, [-5.0, -15.0, 40.0, 40.0]]), "labels": torch.zeros(3)}
    tie_gt["labels"], tie_gt["crowd"] = tie_gt["labels"].long(), torch.tensor([False, False, True])
    tie = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], a]), "labels": torch.tensor([0, 0])}
    tie["scores"] = torch.tensor([0.9, 0.8])
    got = assert_parity([tie], [tie_gt], classes=1)
    assert got["map_50"] == pytest.approx(1.0)
    # perfect detections: 1 everywhere
    got = MeanAveragePrecision()
    got.update([one], [gt])
    assert got.compute()["map"] == pytest.approx(1.0) and got.compute()["map_large"] == -1


@pytest.mark.slow
def test_randomised_parity_sweep():
    for seed in range(100, 160):
        g = np.random.default_rng(seed)
        preds, targets = random_case(seed, images=int(g.integers(1, 60)), grid=seed % 3 != 0)
        assert_parity(preds, targets, classes=4)


# ------------------------------------------------------------------------------------------ VOC


def voc_loop(preds, targets, classes, thr, protocol):
    """VOCevaldet.m and VOCap.m (the Python port's 11-point arange), one detection at a time."""
    aps = []
    for c in range(classes):
        gt = {
            i: (
                t["boxes"][t["labels"] == c].double().tolist(),
                t["crowd"][t["labels"] == c].tolist(),
            )
            for i, t in enumerate(targets)
        }
        npos = sum(not d for _, diff in gt.values() for d in diff)
        dets = [
            (float(s), i, b)
            for i, p in enumerate(preds)
            for b, s, lab in zip(
                p["boxes"].double().tolist(), p["scores"], p["labels"], strict=True
            )
            if lab == c
        ]
        order = sorted(range(len(dets)), key=lambda k: -dets[k][0])  # stable
        taken = {i: [False] * len(v[0]) for i, v in gt.items()}
        tp, fp = [], []
        for k in order:
            _, i, (x1, y1, x2, y2) = dets[k]
            ovmax, jmax = -np.inf, -1
            for j, (gx1, gy1, gx2, gy2) in enumerate(gt[i][0]):
                iw, ih = min(x2, gx2) - max(x1, gx1), min(y2, gy2) - max(y1, gy1)
                if iw > 0 and ih > 0:
                    ua = (x2 - x1) * (y2 - y1) + (gx2 - gx1) * (gy2 - gy1) - iw * ih
                    if iw * ih / ua > ovmax:
                        ovmax, jmax = iw * ih / ua, j
            t = f = 0
            if ovmax >= thr:
                if not gt[i][1][jmax]:
                    if not taken[i][jmax]:
                        t, taken[i][jmax] = 1, True
                    else:
                        f = 1
            else:
                f = 1
            tp.append(t)
            fp.append(f)
        if npos == 0:
            aps.append(-1.0)
            continue
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if protocol == "voc2007":
            ap = 0.0
            for t in np.arange(0.0, 1.1, 0.1):
                ap += (np.max(prec[rec >= t]) if np.sum(rec >= t) else 0.0) / 11
        else:
            mrec = np.concatenate(([0.0], rec, [1.0]))
            mpre = np.concatenate(([0.0], prec, [0.0]))
            for i in range(len(mpre) - 1, 0, -1):
                mpre[i - 1] = max(mpre[i - 1], mpre[i])
            i = np.where(mrec[1:] != mrec[:-1])[0]
            ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
        aps.append(float(ap))
    return aps


@pytest.mark.parametrize("protocol", ["voc2007", "voc2010"])
def test_voc_equals_the_devkit(protocol):
    for seed in range(3):
        preds, targets = random_case(seed + 20, grid=seed != 1)
        for thr in (0.5, 0.7):
            want = voc_loop(preds, targets, 4, thr, protocol)
            metric = striate_map(preds, targets, 4, protocol=protocol, iou_thresholds=[thr])
            got = metric.compute()
            np.testing.assert_allclose(got["map_per_class"], want, atol=1e-9)
            assert got["map"] == pytest.approx(np.mean([a for a in want if a > -1]))


def test_curves_and_figure():
    preds, targets = random_case(3)
    metric = striate_map(preds, targets, 4)
    curves = metric.curves()
    assert [c["class"] for c in curves] == ["0", "1", "2", "3"]
    e = coco_eval(preds, targets, 4)
    for k, c in enumerate(curves):
        assert len(c["recall"]) == len(c["precision"])
        assert np.all(np.diff(c["recall"]) >= 0)
        s = e.eval["precision"][0, :, k, 0, -1]  # AP at IoU 0.5, as COCOeval has it
        assert c["ap"] == pytest.approx(s.mean() if (s > -1).all() else -1, abs=1e-9)
    assert len(curves[3]["recall"]) == 0  # no ground truth: no curve
    assert metric.compute()["mar_100_per_class"][3] == -1
    fig = plot_pr_curves(metric)
    assert len(fig.axes) == 1
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_bad_input_is_one_line():
    m = MeanAveragePrecision(class_names=["a", "b"])
    gt = {"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]]), "labels": torch.tensor([1])}
    ok = {**gt, "scores": torch.tensor([0.5])}
    with pytest.raises(InputError, match=r"preds\[0\] has no 'scores'"):
        m.update([gt], [gt])
    with pytest.raises(InputError, match=r"has x2 ≥ x1|x2 ≥ x1 and y2 ≥ y1"):
        m.update([{**ok, "boxes": torch.tensor([[5.0, 0.0, 1.0, 5.0]])}], [gt])
    with pytest.raises(InputError, match=r"labels'\] must be in 0..1 \(the 2 class_names\), got 2"):
        m.update([ok], [{**gt, "labels": torch.tensor([2])}])
    with pytest.raises(InputError, match="must be K×4"):
        m.update([{**ok, "boxes": torch.zeros(1, 5)}], [gt])
    with pytest.raises(InputError, match=r"one value per box \(1\)"):
        m.update([{**ok, "scores": torch.tensor([0.5, 0.2])}], [gt])
    with pytest.raises(InputError, match="1 preds but 2 targets"):
        m.update([ok], [gt, gt])
    with pytest.raises(ConfigError, match="protocol must be one of coco, voc2007, voc2010"):
        MeanAveragePrecision(protocol="voc")
    with pytest.raises(ConfigError, match="iou_thresholds must be a number in"):
        MeanAveragePrecision(iou_thresholds=[0.5, 1.5])
