"""Mean average precision as the benchmarks define it: COCO (pycocotools' COCOeval, exactly), Pascal
VOC 2007 (11-point) and VOC 2010+ (all points), with torchmetrics' `update`/`compute` shape.

COCO (Lin et al. 2014; cocoeval.py): per image and class, detections sorted by score (ties in input
order) and cut to the largest max-detections; each, in turn, takes the unmatched ground truth of
highest IoU ≥ t (crowd regions, matchable any number of times with IoU = intersection / detection
area, and objects outside the area range only when no regular one qualifies; on equal IoU the later
object); unmatched detections outside the area range are ignored. Precision at the 101 recalls
0:0.01:1 is read off the monotone envelope; AP averages it over IoU 0.50:0.05:0.95, AR takes the
final recall; classes without ground truth are −1 and left out of the means.

VOC (Everingham et al. 2010, the devkit's VOCevaldet.m): per class, all detections by score; each
takes the object of highest IoU in its image and is a true positive when that IoU ≥ 0.5, the object
is not yet taken and not "difficult" (here: crowd; neither true nor false positive then). AP is
the mean of the envelope at recalls 0, 0.1, …, 1 (VOC 2007) or the area under it (VOC 2010+).
Boxes are continuous coordinates, so IoU has no "+1 pixel" (the devkit adds one).

The greedy COCO matching is sequential over the detections of an image (each may take an object
the next one wanted): it runs as one tensor step per detection rank (at most 100), for all images,
classes, area ranges and IoU thresholds at once. Everything else is sorting and cumulative sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from striate.checks import int_sequence, number, one_of
from striate.errors import ConfigError, InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PROTOCOLS = ("coco", "voc2007", "voc2010")
# COCOeval's Params, to the bit: linspace, not arange (whose points are slightly off)
COCO_IOUS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALLS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREAS = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2)}
AREAS["large"] = (96.0**2, 1e5**2)
VOC07_RECALLS = np.arange(0.0, 1.1, 0.1)  # as the Python devkit port (py-faster-rcnn's voc_eval)
EPS = np.spacing(1)


class MeanAveragePrecision:
    """Accumulates detections and ground truth over `update` calls; `compute` gives the metrics.

    `preds`: a list (one per image) of dicts with "boxes" (K×4 xyxy), "scores" (K) and "labels"
    (K int); `targets`: dicts with "boxes", "labels" and optionally "crowd" (bool; VOC's
    "difficult") and "area" (COCO's annotation area, used for the area ranges; default the box
    area). Labels are class indices, below `len(class_names)` when names are given; otherwise the
    classes are the labels seen. `iou_thresholds` default to 0.50:0.05:0.95 (COCO) and 0.5 (VOC);
    `max_detections` (per image and class, COCO only) to 1, 10, 100.
    """

    def __init__(
        self,
        protocol: str = "coco",
        iou_thresholds: Sequence[float] | None = None,
        max_detections: Sequence[int] = (1, 10, 100),
        class_names: Sequence[str] | None = None,
    ) -> None:
        owner = "MeanAveragePrecision"
        self.protocol = one_of(owner, "protocol", protocol, PROTOCOLS)
        if iou_thresholds is None:
            iou_thresholds = COCO_IOUS if protocol == "coco" else np.array([0.5])
        elif isinstance(iou_thresholds, str) or not isinstance(iou_thresholds, Sequence):
            raise ConfigError(
                f"{owner}: iou_thresholds must be a list of numbers in [0, 1], "
                f"got {iou_thresholds!r}"
            )
        else:
            iou_thresholds = np.array(
                [number(owner, "iou_thresholds", t, low=0, high=1) for t in iou_thresholds]
            )
            if len(iou_thresholds) == 0:
                raise ConfigError(f"{owner}: iou_thresholds must not be empty")
        self.iou_thresholds = np.asarray(iou_thresholds, dtype=np.float64)
        self.max_detections = tuple(
            sorted(int_sequence(owner, "max_detections", max_detections, min_len=1))
        )
        if class_names is not None:
            if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
                raise ConfigError(
                    f"{owner}: class_names must be a list of strings, got {class_names!r}"
                )
            class_names = tuple(class_names)
        self.class_names = class_names
        self.reset()

    def reset(self) -> None:
        """Forget everything `update` was given."""
        self._images = 0
        self._dets: list[tuple[torch.Tensor, ...]] = []  # per update: image, xywh, score, label
        self._gts: list[tuple[torch.Tensor, ...]] = []  # image, xywh, label, crowd, area
        self._result: dict[str, Any] | None = None

    def update(self, preds: Sequence[dict], targets: Sequence[dict]) -> None:
        """Add the detections and ground truth of a batch of images."""
        owner = "MeanAveragePrecision.update"
        if not isinstance(preds, Sequence) or not isinstance(targets, Sequence):
            raise InputError(f"{owner}: preds and targets must be lists of dicts, one per image")
        if len(preds) != len(targets):
            raise InputError(
                f"{owner}: {len(preds)} preds but {len(targets)} targets (one each per image)"
            )
        det_keys, gt_keys = ("boxes", "scores", "labels"), ("boxes", "labels")
        dets = [_fields(owner, f"preds[{i}]", p, det_keys) for i, p in enumerate(preds)]
        gts = [_fields(owner, f"targets[{i}]", t, gt_keys) for i, t in enumerate(targets)]
        for i, t in enumerate(targets):
            n = len(gts[i][0])
            crowd = t.get("crowd", t.get("iscrowd"))
            crowd = torch.zeros(n, dtype=torch.bool) if crowd is None else crowd
            area = t.get("area")
            area = torch.full((n,), torch.nan, dtype=torch.float64) if area is None else area
            gts[i] += (
                _tensor(owner, f"targets[{i}]['crowd']", crowd, n).bool(),
                _tensor(owner, f"targets[{i}]['area']", area, n).double(),
            )
        det = self._checked(owner, "preds", dets)
        gt = self._checked(owner, "targets", gts)
        scores = torch.cat([d[1] for d in dets]) if dets else torch.zeros(0)
        if not scores.is_floating_point() or not bool(torch.isfinite(scores).all()):
            i = int(det[0][(~torch.isfinite(scores.double())).nonzero()[0]]) if len(scores) else 0
            raise InputError(f"{owner}: preds[{i}]['scores'] must be finite floats")
        area = torch.cat([g[3] for g in gts]) if gts else torch.zeros(0, dtype=torch.float64)
        area = torch.where(torch.isnan(area), gt[1][:, 2] * gt[1][:, 3], area)
        crowd = torch.cat([g[2] for g in gts]) if gts else torch.zeros(0, dtype=torch.bool)
        self._dets.append((det[0] + self._images, det[1], scores.double(), det[2]))
        self._gts.append((gt[0] + self._images, gt[1], gt[2], crowd, area))
        self._images += len(preds)
        self._result = None

    def _checked(self, owner, where, items) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image index, boxes as float64 x y w h, labels) of a batch's images, checked at once.
        x y w h is COCO's form: IoU is computed from it as COCOeval does."""
        counts = torch.tensor([len(it[0]) for it in items], dtype=torch.long)
        image = torch.repeat_interleave(torch.arange(len(items)), counts)
        if not items:
            return image, torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
        boxes = torch.cat([it[0] for it in items]).double()
        labels = torch.cat([it[2 if where == "preds" else 1] for it in items])
        start = torch.cumsum(counts, 0) - counts

        def at(k: int) -> str:
            i = int(image[k])
            return f"{where}[{i}]", k - int(start[i])

        bad = ~torch.isfinite(boxes).all(1) | (boxes[:, 2] < boxes[:, 0])
        bad |= boxes[:, 3] < boxes[:, 1]
        if bool(bad.any()):
            k = int(bad.nonzero()[0])
            name, j = at(k)
            raise InputError(
                f"{owner}: {name}['boxes'][{j}] = {boxes[k].tolist()} is not finite x1 y1 x2 y2 "
                f"with x2 ≥ x1 and y2 ≥ y1 (convert xywh boxes with box_convert)"
            )
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise InputError(f"{owner}: {where}[…]['labels'] must be integers, got {labels.dtype}")
        labels = labels.long()
        n = len(self.class_names) if self.class_names is not None else None
        bad = (labels < 0) | (labels >= n if n is not None else False)
        if bool(bad.any()):
            k = int(bad.nonzero()[0])
            name, _ = at(k)
            allowed = f"0..{n - 1} (the {n} class_names)" if n is not None else "≥ 0"
            raise InputError(
                f"{owner}: {name}['labels'] must be in {allowed}, got {int(labels[k])}"
            )
        xywh = torch.stack(
            (boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1
        )
        return image, xywh, labels

    # ------------------------------------------------------------------------------ compute

    def compute(self) -> dict[str, Any]:
        """The metrics, as floats: map, map_50, map_75, map_small/medium/large, mar_<m> for each max
        detections, mar_small/medium/large, map_per_class and mar_<max>_per_class (lists, −1 where a
        class has no ground truth) and classes. −1 where undefined (VOC gives the map keys only)."""
        if self._result is None:
            self._result = self._coco() if self.protocol == "coco" else self._voc()
        return {k: v for k, v in self._result.items() if not k.startswith("_")}

    def _flat(self):
        def cat(seq, j, empty):
            return torch.cat([x[j] for x in seq]) if seq else empty

        det_img = cat(self._dets, 0, torch.zeros(0, dtype=torch.long))
        det_box = cat(self._dets, 1, torch.zeros(0, 4, dtype=torch.float64))
        det_score = cat(self._dets, 2, torch.zeros(0, dtype=torch.float64))
        det_lab = cat(self._dets, 3, torch.zeros(0, dtype=torch.long))
        gt_img = cat(self._gts, 0, torch.zeros(0, dtype=torch.long))
        gt_box = cat(self._gts, 1, torch.zeros(0, 4, dtype=torch.float64))
        gt_lab = cat(self._gts, 2, torch.zeros(0, dtype=torch.long))
        gt_crowd = cat(self._gts, 3, torch.zeros(0, dtype=torch.bool))
        gt_area = cat(self._gts, 4, torch.zeros(0, dtype=torch.float64))
        if self.class_names is not None:
            labels = torch.arange(len(self.class_names))
            names = list(self.class_names)
        else:
            labels = torch.unique(torch.cat((det_lab, gt_lab)))
            names = [str(int(c)) for c in labels]
        det_k = torch.searchsorted(labels, det_lab)
        gt_k = torch.searchsorted(labels, gt_lab)
        return (
            self._images,
            names,
            (det_img, det_k, det_score, det_box),
            (gt_img, gt_k, gt_box, gt_crowd, gt_area),
        )

    def _coco(self) -> dict[str, Any]:
        n_img, names, dets, gts = self._flat()
        det_img, det_k, det_score, det_box = dets
        gt_img, gt_k, gt_box, gt_crowd, gt_area = gts
        K, T, A, R = len(names), len(self.iou_thresholds), len(AREAS), len(RECALLS)
        M = len(self.max_detections)
        top = self.max_detections[-1]

        # detections by (image, class), then score (stable: ties in input order), cut to `top`
        order = _stable(-det_score)
        order = order[_stable(det_img[order] * K + det_k[order])]
        group = det_img[order] * K + det_k[order]
        rank = torch.arange(len(order)) - _first_of_run(group)
        order, rank = order[rank < top], rank[rank < top]
        det_img, det_k, det_score, det_box = (
            det_img[order],
            det_k[order],
            det_score[order],
            det_box[order],
        )
        det_group = det_img * K + det_k
        det_area = det_box[:, 2] * det_box[:, 3]

        # ground truth by (image, class), input order kept; the objects each detection can match
        gorder = _stable(gt_img * K + gt_k)
        gt_img, gt_k, gt_box, gt_crowd, gt_area = (
            gt_img[gorder],
            gt_k[gorder],
            gt_box[gorder],
            gt_crowd[gorder],
            gt_area[gorder],
        )
        gt_group = gt_img * K + gt_k
        start = torch.searchsorted(gt_group, det_group)
        count = torch.searchsorted(gt_group, det_group, right=True) - start
        width = int(count.max()) if len(count) else 0
        cols = start[:, None] + torch.arange(width)
        valid = torch.arange(width) < count[:, None]
        cols = torch.where(valid, cols, 0)
        ious = _coco_iou(det_box, gt_box, gt_crowd, cols, valid)  # Ndet × width

        lo = torch.tensor([a[0] for a in AREAS.values()], dtype=torch.float64)
        hi = torch.tensor([a[1] for a in AREAS.values()], dtype=torch.float64)
        gt_ignore = (
            gt_crowd[None] | (gt_area[None] < lo[:, None]) | (gt_area[None] > hi[:, None])
        )  # A×G
        det_outside = (det_area[None] < lo[:, None]) | (det_area[None] > hi[:, None])  # A×D
        thr = torch.as_tensor(np.minimum(self.iou_thresholds, 1 - 1e-10))
        matched, matched_ignored = _greedy_match(rank, ious, cols, valid, gt_crowd, gt_ignore, thr)
        det_ignored = torch.where(matched, matched_ignored, det_outside[:, None])  # A×T×D
        npig = torch.zeros(A, K, dtype=torch.float64)
        npig.index_add_(1, gt_k, (~gt_ignore).double())

        # per class, detections by score over all images (ties: image order, then rank)
        corder = _stable(-det_score)
        corder = corder[_stable(det_k[corder])]
        precision = -torch.ones(T, R, K, A, M, dtype=torch.float64)
        recall = -torch.ones(T, K, A, M, dtype=torch.float64)
        curves = None
        for m, max_det in enumerate(self.max_detections):  # a loop over the (three) cut-offs
            sel = corder[rank[corder] < max_det]
            tp = matched[:, :, sel] & ~det_ignored[:, :, sel]
            fp = ~matched[:, :, sel] & ~det_ignored[:, :, sel]
            q, rc_last, rc, pr, used = _pr(tp, fp, det_k[sel], K, npig)
            has = (npig > 0)[:, None, :]  # A×1×K
            precision[..., m] = torch.where(has[..., None], q, -1.0).permute(1, 3, 2, 0)
            recall[..., m] = torch.where(has, rc_last, -1.0).permute(1, 2, 0)
            if m == M - 1:
                curves = (rc[0], pr[0], used[0])  # area "all"
        return self._summaries(names, precision, recall, curves)

    def _summaries(self, names, precision, recall, curves) -> dict[str, Any]:
        areas = list(AREAS)
        last = len(self.max_detections) - 1

        def mean(s: torch.Tensor) -> float:
            s = s[s > -1]
            return float(s.mean()) if len(s) else -1.0

        def at(iou: float) -> torch.Tensor | None:
            t = np.nonzero(self.iou_thresholds == iou)[0]
            return torch.as_tensor(t) if len(t) else None

        out: dict[str, Any] = {"map": mean(precision[:, :, :, 0, last])}
        for key, iou in (("map_50", 0.5), ("map_75", 0.75)):
            t = at(iou)
            out[key] = mean(precision[t][:, :, :, 0, last]) if t is not None else -1.0
        for a in ("small", "medium", "large"):
            out[f"map_{a}"] = mean(precision[:, :, :, areas.index(a), last])
        for m, max_det in enumerate(self.max_detections):
            out[f"mar_{max_det}"] = mean(recall[:, :, 0, m])
        for a in ("small", "medium", "large"):
            out[f"mar_{a}"] = mean(recall[:, :, areas.index(a), last])
        out["map_per_class"] = [mean(precision[:, :, k, 0, last]) for k in range(len(names))]
        out[f"mar_{self.max_detections[-1]}_per_class"] = [
            mean(recall[:, k, 0, last]) for k in range(len(names))
        ]
        out["classes"] = names
        out["_precision"], out["_recall"], out["_curves"] = precision, recall, curves
        out["_first_ap"] = [mean(precision[:1, :, k, 0, last]) for k in range(len(names))]
        return out

    def _voc(self) -> dict[str, Any]:
        _, names, dets, gts = self._flat()
        det_img, det_k, det_score, det_box = dets
        gt_img, gt_k, gt_box, gt_crowd, _ = gts
        K = len(names)
        # per class, detections by score (ties: image order, then input order)
        order = _stable(-det_score)
        order = order[_stable(det_k[order])]
        det_img, det_k, det_box = det_img[order], det_k[order], det_box[order]
        gorder = _stable(gt_img * K + gt_k)
        gt_img, gt_k, gt_box, gt_crowd = (
            gt_img[gorder],
            gt_k[gorder],
            gt_box[gorder],
            gt_crowd[gorder],
        )
        gt_group, det_group = gt_img * K + gt_k, det_img * K + det_k
        start = torch.searchsorted(gt_group, det_group)
        count = torch.searchsorted(gt_group, det_group, right=True) - start
        width = int(count.max()) if len(count) else 0
        cols = torch.where(
            torch.arange(width) < count[:, None], start[:, None] + torch.arange(width), 0
        )
        valid = torch.arange(width) < count[:, None]
        ious = _coco_iou(det_box, gt_box, torch.zeros_like(gt_crowd), cols, valid)
        ious = torch.where(valid & (ious > 0), ious, -1.0)  # VOCevaldet.m: overlapping only
        best, j = (
            ious.max(1)
            if width
            else (torch.full((len(det_k),), -1.0), torch.zeros(len(det_k), dtype=torch.long))
        )
        # the first maximum (VOCevaldet.m: `if ov > ovmax`)
        j = (ious == best[:, None]).long().argmax(1) if width else j
        target = cols.gather(1, j[:, None])[:, 0] if width else j
        npos = torch.zeros(K, dtype=torch.float64).index_add_(0, gt_k, (~gt_crowd).double())
        thr = torch.as_tensor(self.iou_thresholds)
        hit = best[None] >= thr[:, None]  # T×D
        difficult = gt_crowd[target][None] & hit if len(gt_crowd) else torch.zeros_like(hit)
        claim = hit & ~difficult
        # the first claim on an object is a true positive, later ones duplicates
        position = torch.arange(len(det_k)).expand_as(claim)
        first = torch.full((len(thr), len(gt_k) + 1), len(det_k), dtype=torch.long)
        first.scatter_reduce_(1, torch.where(claim, target, len(gt_k)), position, "amin")
        tp = claim & (first.gather(1, torch.where(claim, target, len(gt_k))) == position)
        fp = ~tp & ~difficult
        _, _, rc, pr, used = _pr(tp[None], fp[None], det_k, K, npos[None])
        rc, pr, n_k = rc[0], pr[0], torch.bincount(det_k, minlength=K)  # T×K×N
        ap = -torch.ones(len(thr), K, dtype=torch.float64)
        for k in torch.nonzero(npos > 0).flatten().tolist():  # a loop over classes and thresholds
            for t in range(len(thr)):
                ap[t, k] = _voc_ap(
                    rc[t, k, : n_k[k]].numpy(), pr[t, k, : n_k[k]].numpy(), self.protocol
                )

        def mean(s):
            s = s[s > -1]
            return float(s.mean()) if len(s) else -1.0

        out: dict[str, Any] = {"map": mean(ap)}
        for key, iou in (("map_50", 0.5), ("map_75", 0.75)):
            t = np.nonzero(self.iou_thresholds == iou)[0]
            out[key] = mean(ap[torch.as_tensor(t)]) if len(t) else -1.0
        out["map_per_class"] = [mean(ap[:, k]) for k in range(K)]
        out["classes"] = names
        out["_curves"] = (rc, pr, used[0])
        out["_first_ap"] = ap[0].tolist()
        return out

    # ------------------------------------------------------------------------------ curves

    def curves(self) -> list[dict[str, Any]]:
        """Per class, the precision–recall curve over its detections ranked by score (at the first
        IoU threshold, all areas, the largest max detections): "class", "recall", "precision"
        (NumPy arrays, one point per detection not ignored; empty for a class without ground
        truth) and "ap" (the class's AP at that threshold)."""
        self.compute()
        assert self._result is not None
        rc, pr, used = self._result["_curves"]
        out = []
        for k, name in enumerate(self._result["classes"]):
            keep = used[0, k]  # ignored detections are no point of the curve
            if self._result["_first_ap"][k] == -1:  # no ground truth: no recall
                keep = torch.zeros_like(keep)
            out.append(
                {
                    "class": name,
                    "recall": rc[0, k][keep].numpy(),
                    "precision": pr[0, k][keep].numpy(),
                    "ap": self._result["_first_ap"][k],
                }
            )
        return out


def plot_pr_curves(metric: MeanAveragePrecision, classes: Sequence[str] | None = None) -> Figure:
    """A figure of the per-class precision–recall curves (raw, and the monotone envelope AP
    integrates, dashed) with each class's AP in the legend."""
    import matplotlib.pyplot as plt

    curves = metric.curves()
    if classes is not None:
        curves = [c for c in curves if c["class"] in set(classes)]
    fig, ax = plt.subplots(figsize=(6, 5))
    for c in curves:
        if not len(c["recall"]):
            continue
        (line,) = ax.plot(
            c["recall"], c["precision"], lw=1, label=f"{c['class']} (AP {c['ap']:.3f})"
        )
        env = np.maximum.accumulate(c["precision"][::-1])[::-1]
        ax.plot(c["recall"], env, lw=1, ls="--", color=line.get_color())
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01))
    ax.set_title(
        f"precision–recall per class ({metric.protocol}, IoU {metric.iou_thresholds[0]:.2f})"
    )
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------- helpers


def _tensor(owner: str, where: str, v, n: int) -> torch.Tensor:
    t = v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
    t = t.detach().cpu()
    t = t.reshape(-1) if t.ndim == 0 and n == 1 else t
    if t.shape != (n,):
        raise InputError(
            f"{owner}: {where} must have one value per box ({n}), got shape {tuple(t.shape)}"
        )
    return t


def _fields(owner: str, where: str, d, keys: tuple[str, ...]) -> list[torch.Tensor]:
    """The tensors `keys` of one image's dict (CPU; boxes K×4, the others one value per box)."""
    if not isinstance(d, dict) or any(k not in d for k in keys):
        missing = [k for k in keys if not isinstance(d, dict) or k not in d]
        raise InputError(
            f"{owner}: {where} has no {', '.join(map(repr, missing))} (each must be a dict "
            f"with {', '.join(keys)})"
        )
    boxes = d["boxes"]
    if not isinstance(boxes, torch.Tensor):
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float64)).reshape(-1, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(
            f"{owner}: {where}['boxes'] must be K×4 (x1 y1 x2 y2), got shape {tuple(boxes.shape)}"
        )
    boxes = boxes.detach().cpu()
    return [boxes] + [_tensor(owner, f"{where}[{k!r}]", d[k], len(boxes)) for k in keys[1:]]


def _stable(key: torch.Tensor) -> torch.Tensor:
    return torch.sort(key, stable=True).indices


def _first_of_run(sorted_keys: torch.Tensor) -> torch.Tensor:
    """For each position of a sorted key tensor, the index where its run of equal keys starts."""
    if len(sorted_keys) == 0:
        return sorted_keys
    new = torch.ones_like(sorted_keys, dtype=torch.bool)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    idx = torch.where(new, torch.arange(len(sorted_keys)), 0)
    return torch.cummax(idx, 0).values


def _coco_iou(det, gt, crowd, cols, valid) -> torch.Tensor:
    """maskApi.c's bbIou on x y w h boxes, in its order of operations (so equal to the bit):
    IoU of each detection with the objects `cols` of its group; crowd objects: intersection over
    the detection's area."""
    if cols.shape[1] == 0:
        return torch.zeros(cols.shape, dtype=torch.float64)
    g = gt[cols]  # D×W×4
    d = det[:, None, :]
    w = torch.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - torch.maximum(
        d[..., 0], g[..., 0]
    )
    h = torch.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - torch.maximum(
        d[..., 1], g[..., 1]
    )
    inter = w * h
    da, ga = d[..., 2] * d[..., 3], g[..., 2] * g[..., 3]
    union = torch.where(crowd[cols], da, da + ga - inter)
    ok = valid & (w > 0) & (h > 0)
    return torch.where(ok, inter / torch.where(ok, union, 1.0), 0.0)


def _greedy_match(rank, ious, cols, valid, crowd, ignore, thr):
    """COCOeval.evaluateImg's matching for all images, classes, areas (A) and thresholds (T) at
    once: one step per detection rank. Returns matched (A×T×D) and whether the object matched is
    ignored (A×T×D)."""
    A, T, D = ignore.shape[0], len(thr), len(rank)
    matched = torch.zeros(A, T, D, dtype=torch.bool)
    matched_ignored = torch.zeros(A, T, D, dtype=torch.bool)
    taken = torch.zeros(A, T, ignore.shape[1], dtype=torch.bool)
    if D == 0 or cols.shape[1] == 0:
        return matched, matched_ignored
    has_gt = (valid & (ious >= thr.min())).any(1)  # the others match nothing
    slot = torch.arange(1, cols.shape[1] + 1)
    for r in range(int(rank.max()) + 1):  # sequential: a detection may take the next one's object
        idx = torch.nonzero((rank == r) & has_gt).flatten()
        if len(idx) == 0:
            continue
        c, ok_col, iou = cols[idx], valid[idx], ious[idx]  # n×W
        ig = ignore[:, c][:, None]  # A×1×n×W
        free = ok_col & ~(taken[:, :, c] & ~crowd[c])  # A×T×n×W
        ok = free & (iou >= thr[:, None, None])
        chosen = torch.full(ok.shape[:-1], -1, dtype=torch.long)
        for tier in (ok & ig, ok & ~ig):  # regular objects first: they override ignored ones
            best = torch.where(tier, iou, -1.0).amax(-1, keepdim=True)
            last = ((tier & (iou == best)).long() * slot).amax(-1) - 1  # ties: the later object
            chosen = torch.where(last >= 0, last, chosen)
        hit = chosen >= 0
        gt_index = (
            c[None, None].expand(A, T, -1, -1).gather(-1, chosen.clamp(min=0)[..., None])[..., 0]
        )
        a, t, j = torch.nonzero(hit, as_tuple=True)
        taken[a, t, gt_index[a, t, j]] = True
        matched[:, :, idx] = hit
        matched_ignored[:, :, idx] = hit & ignore.gather(1, gt_index.flatten(1)).view_as(gt_index)
    return matched, matched_ignored


def _pr(tp, fp, det_k, K, npig):
    """COCOeval.accumulate for all areas and thresholds at once. tp, fp: A×T×N with N detections
    ordered by class, then score; npig: A×K objects not ignored. Returns the interpolated
    precision (A×T×K×R), the final recall (A×T×K), the raw recall and precision, padded to the
    longest class (A×T×K×Nmax), and where they are true or false positives (A×T×K×Nmax)."""
    A, T, N = tp.shape
    counts = torch.bincount(det_k, minlength=K)
    nmax = max(int(counts.max()) if N else 0, 1)
    start = torch.cumsum(counts, 0) - counts
    pos = torch.arange(N) - start[det_k]
    flat = det_k * nmax + pos
    tps = torch.zeros(A, T, K * nmax, dtype=torch.float64).index_copy_(2, flat, tp.double())
    fps = torch.zeros(A, T, K * nmax, dtype=torch.float64).index_copy_(2, flat, fp.double())
    tps, fps = tps.view(A, T, K, nmax), fps.view(A, T, K, nmax)
    tp_sum, fp_sum = tps.cumsum(-1), fps.cumsum(-1)
    rc = tp_sum / npig[:, None, :, None]
    pr = tp_sum / (fp_sum + tp_sum + EPS)
    env = torch.flip(torch.cummax(torch.flip(pr, (-1,)), -1).values, (-1,))
    thresholds = torch.as_tensor(RECALLS).expand(A, T, K, -1).contiguous()
    inds = torch.searchsorted(rc.contiguous(), thresholds, side="left")
    q = torch.where(inds < counts[:, None], env.gather(-1, inds.clamp(max=nmax - 1)), 0.0)
    last = (counts - 1).clamp(min=0)
    rc_last = torch.where(counts > 0, rc[..., torch.arange(K), last], 0.0)
    return q, rc_last, rc, pr, (tps + fps) > 0


def _voc_ap(rec: np.ndarray, prec: np.ndarray, protocol: str) -> float:
    """VOC AP of one class: 11-point (2007) or the area under the monotone envelope (2010+)."""
    if protocol == "voc2007":
        return float(
            np.mean([prec[rec >= t].max() if (rec >= t).any() else 0.0 for t in VOC07_RECALLS])
        )
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
