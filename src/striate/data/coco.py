"""COCO instances JSON (Lin et al. 2014, "Microsoft COCO: Common Objects in Context"), read into a
DetectionSet and written from one.

The format: ``{"images": [{"id", "file_name", "height", "width"}], "annotations": [{"id",
"image_id", "category_id", "bbox": [x, y, width, height], "area", "iscrowd", "segmentation"}],
"categories": [{"id", "name"}]}``. Boxes are in pixels with the image's top-left corner at 0, 0
(the DetectionSet's convention, so x2 = x + width). A segmentation is a list of polygons or an RLE
(see `striate.data.masks`; one difference from pycocotools: it reads an annotation whose first
polygon has 4 numbers as a box [x, y, w, h], striate as the 2-point polygon it is). Category
ids become labels 0..K−1 in increasing id order; the set keeps the ids in its `category_ids` field
(subsets keep them) so that `write_coco` writes them back.

The JSON is read with the standard parser (no code, no references), refused above
`MAX_JSON_BYTES`, and checked field by field; every problem is one `DataError` line naming the
file, the entry and what to do. Reading a file builds its Python objects one per entry, so the
checks below walk those lists once; the boxes, masks and images are then whole-array operations.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from striate import __version__
from striate._atomic import atomic_path, atomic_write
from striate.checks import one_of
from striate.data import masks as rle
from striate.data.annotated_images import read_images, refuse_existing
from striate.data.detectionset import DetectionSet
from striate.data.folder import parse_size
from striate.errors import DataError, StriateWarning
from striate.outputs import OutputExists
from striate.progress import progress_bar

__all__ = ["MAX_JSON_BYTES", "read_coco", "write_coco"]

MAX_JSON_BYTES = 1 << 30  # COCO 2017's largest file (train instances) is 448 MB
IMAGE_FORMATS = ("png", "jpg")
_MASK_PIXELS = 1 << 26  # mask pixels made at once: bounds memory for large images
_MISSING = object()


def read_coco(
    annotations: str | Path,
    images: str | Path | None = None,
    *,
    size: int | Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    clip: bool = False,
    masks: bool | None = None,
) -> DetectionSet:
    """Read a COCO instances file and its images into a DetectionSet.

    `images` is the folder holding the `file_name`s; by default, for ``…/annotations/
    instances_NAME.json`` the folder ``…/NAME`` beside ``annotations`` when it exists (COCO's
    layout), else the JSON's own folder. All images must end up one size: `size` ((h, w) or an
    int) resizes images, boxes and masks. `classes` fixes the label order by category name
    (every category must be in it). `clip` clips boxes to their images instead of refusing them.
    `masks`: read the segmentations (None: when every annotation has one). An empty annotation
    list is a set of images with no objects. Images keep the file's order, objects the order of
    the annotations within each image.
    """
    path = Path(annotations)
    target = parse_size(size)
    doc = _load_json(path)
    imgs, anns, cats = _sections(path, doc)
    image_ids, files, heights, widths = _images(path, imgs)
    category_ids, names = _categories(path, cats)
    folder = _image_folder(path, images)

    ann_ids, img_of, cat_of, bbox, crowd = _annotations(path, anns, image_ids, category_ids)
    labels, classes = _labels(path, cat_of, category_ids, names, classes)
    order = np.argsort(img_of, kind="stable")  # objects grouped by image, file order inside
    boxes = _boxes(path, bbox, img_of, ann_ids, files, heights, widths, clip)
    counts = np.bincount(img_of, minlength=len(image_ids))

    shape = _common_size(path, heights, widths, target)
    with_masks = _want_masks(path, anns, ann_ids, masks)
    mask_tensor = None
    if with_masks:
        made = _masks(path, [anns[k] for k in order], ann_ids[order], img_of[order], heights,
                      widths, shape)  # fmt: skip
        mask_tensor = torch.from_numpy(made)
    scale = np.array([shape[1], shape[0], shape[1], shape[0]], np.float64)
    original = np.stack([widths, heights, widths, heights], 1)[img_of[order]]
    boxes = boxes[order] * scale / original
    pixels = read_images(path, folder, files, heights, widths, target)
    ids = tuple(int(category_ids[names.index(c)]) if c in names else None for c in classes)
    ds = DetectionSet(
        pixels,
        torch.from_numpy(boxes.astype(np.float32)),
        torch.from_numpy(labels[order]),
        torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)),
        classes,
        mask_tensor,
        torch.from_numpy(crowd[order]),
        torch.from_numpy(image_ids),
        str(path),
        ids,
    )
    return ds


def write_coco(
    ds: DetectionSet,
    annotations: str | Path,
    images: str | Path,
    *,
    overwrite: bool = False,
    image_format: str = "png",
    category_ids: Sequence[int] | None = None,
) -> Path:
    """Write `ds` as a COCO instances file and one image file per image, named by image id
    (``000000000042.png``, as COCO names them), into the folder `images`.

    Boxes become [x, y, width, height]; `area` is the mask's pixel count when the set has masks,
    else the box's area; masks are written as RLEs with compressed string counts. Category ids
    are `category_ids`, else the set's own (`read_coco` keeps them), else 1..K. Existing files
    are refused unless `overwrite`; every file is written atomically, the JSON last. PNG keeps the
    pixels exactly, JPEG (quality 95) does not. Returns the JSON's path.
    """
    fmt = one_of("write_coco", "image_format", image_format, IMAGE_FORMATS)
    json_path, folder = Path(annotations), Path(images)
    ids = ds.image_ids.tolist()
    if len(set(ids)) != len(ids):
        raise DataError(
            f"write_coco: the set's image ids repeat ({len(ids) - len(set(ids))} duplicates): "
            f"COCO needs one id per image (give the set image_ids 1..N)"
        )
    cat_ids = _category_ids_to_write(ds, category_ids)
    names = [f"{i:012d}.{fmt}" for i in ids]
    if folder.exists() and not folder.is_dir():
        raise OutputExists(f"write_coco: {folder} is a file, not a folder: choose another folder")
    targets = [json_path, *(folder / n for n in names)]
    if json_path.is_dir():
        raise OutputExists(f"write_coco: {json_path} is a folder: give the JSON file's path")
    if not overwrite:
        refuse_existing("write_coco", targets)
    c, h, w = ds.shape
    if c not in (1, 3):
        raise DataError(f"write_coco: images with {c} channels cannot be saved: 1 or 3 needed")

    boxes = ds.boxes.double().numpy()
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    if ds.masks is not None:
        area = rle.area(ds.masks).astype(np.float64)
        segmentation = rle.encode(ds.masks)
    else:
        area = xywh[:, 2] * xywh[:, 3]
        segmentation = None
    image_of = ds.image_ids[ds.image_of()].tolist()
    labels = ds.labels.tolist()
    crowd = ds.crowd.long().tolist()
    anns = []
    for k, (img, lab, box, a, cr) in enumerate(
        zip(image_of, labels, xywh.tolist(), area.tolist(), crowd, strict=True)
    ):
        ann = {
            "id": k + 1,
            "image_id": img,
            "category_id": cat_ids[lab],
            "bbox": box,
            "area": a,
            "iscrowd": cr,
        }
        if segmentation is not None:
            ann["segmentation"] = segmentation[k]
        anns.append(ann)
    doc = {
        "info": {
            "description": ds.source or "a striate DetectionSet",
            "version": f"striate {__version__}",
        },
        "licenses": [],
        "images": [
            {"id": i, "file_name": n, "height": h, "width": w}
            for i, n in zip(ids, names, strict=True)
        ],
        "annotations": anns,
        "categories": [
            {"id": i, "name": n, "supercategory": ""}
            for i, n in zip(cat_ids, ds.classes, strict=True)
        ],
    }
    pixels = ds.images.permute(0, 2, 3, 1).cpu().numpy()
    folder.mkdir(parents=True, exist_ok=True)
    with progress_bar("writing images", len(names), "images", enabled=len(names) >= 500) as adv:
        for name, arr in zip(names, pixels, strict=True):
            img = Image.fromarray(arr[:, :, 0] if c == 1 else arr)
            with atomic_path(folder / name) as tmp:
                if fmt == "png":
                    img.save(tmp, format="PNG")
                else:
                    img.save(tmp, format="JPEG", quality=95)
            adv(1)
    with atomic_write(json_path, "w") as f:
        json.dump(doc, f, allow_nan=False, separators=(",", ":"))
    return json_path


# ---- reading: the file and its three lists ---------------------------------------------------

_IMAGE_HINT = "the annotations belong to another file, or images are missing from this one"


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: no such COCO annotation file")
    n = path.stat().st_size
    if n > MAX_JSON_BYTES:
        raise DataError(
            f"{path}: {n:,} bytes is more than the {MAX_JSON_BYTES:,} a COCO file may have "
            f"here (striate.data.coco.MAX_JSON_BYTES): split it, or raise the limit"
        )
    try:
        return json.loads(path.read_bytes(), parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}): "
            f"the file is truncated or damaged; write or download it again"
        ) from None
    except (ValueError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise DataError(f"{path}: not a usable JSON file ({why})") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"it holds {name}, which is not JSON and no COCO value")


def _sections(path: Path, doc: Any) -> tuple[list, list, list]:
    keys = sorted(doc) if isinstance(doc, dict) else []
    out = []
    for key in ("images", "annotations", "categories"):
        value = doc.get(key, _MISSING) if isinstance(doc, dict) else _MISSING
        if not isinstance(value, list):
            what = f"keys {keys}" if isinstance(doc, dict) else f"a JSON {type(doc).__name__}"
            if isinstance(doc, list):
                what += ", as a results file of detections does"
            raise DataError(
                f"{path}: not a COCO instances file (no '{key}' list; it holds {what}): "
                f"COCO detection files have 'images', 'annotations' and 'categories' lists"
            )
        bad = next((k for k, v in enumerate(value) if not isinstance(v, dict)), None)
        if bad is not None:
            raise DataError(f"{path}: {key}[{bad}] is not a JSON object: {_short(value[bad])}")
        out.append(value)
    return out[0], out[1], out[2]


def _is_id(v: Any) -> bool:
    return type(v) is int and -(2**63) <= v < 2**63


def _is_size(v: Any) -> bool:
    return type(v) is int and 0 < v < 2**31


def _is_bbox(v: Any) -> bool:
    return (
        type(v) is list
        and len(v) == 4
        and all(type(x) in (int, float) and math.isfinite(x) for x in v)
    )


def _is_flag(v: Any) -> bool:
    return v in (0, 1) and type(v) in (int, bool)


def _is_name(v: Any) -> bool:
    return type(v) is str and v != ""


def _short(v: Any, n: int = 60) -> str:
    text = json.dumps(v)
    return text if len(text) <= n else text[: n - 1] + "…"


def _values(
    path: Path,
    rows: list[dict],
    what: str,
    key: str,
    ok: Callable[[Any], bool],
    expect: str,
    *,
    default: Any = _MISSING,
    ids: np.ndarray | None = None,
) -> list:
    """`key` of every row, each checked by `ok` (the first failure raises, naming the row)."""
    values = [r.get(key, default) for r in rows]
    bad = next((k for k, v in enumerate(values) if v is _MISSING or not ok(v)), None)
    if bad is not None:
        which = f"{what} {bad}" + (f" (id {int(ids[bad])})" if ids is not None else "")
        got = f"no '{key}'" if values[bad] is _MISSING else f"{key} {_short(values[bad])}"
        raise DataError(f"{path}: {which} has {got}: {key} must be {expect}")
    return values


def _annotations(
    path: Path, anns: list[dict], image_ids: np.ndarray, category_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each annotation's id, image (index), category (index), bbox (xywh) and crowd flag."""
    ann_ids = np.array(_values(path, anns, "annotation", "id", _is_id, "an integer"), np.int64)
    _unique(path, "annotation", ann_ids)
    img_of = _lookup(path, anns, ann_ids, "image_id", image_ids, "'images'", hint=_IMAGE_HINT)
    cat_of = _lookup(path, anns, ann_ids, "category_id", category_ids, "'categories'",
                     hint="add the category or remove its annotations")  # fmt: skip
    expect = "[x, y, width, height] in pixels"
    bbox = _values(path, anns, "annotation", "bbox", _is_bbox, expect, ids=ann_ids)
    crowd = _values(path, anns, "annotation", "iscrowd", _is_flag, "0 or 1", default=0,
                    ids=ann_ids)  # fmt: skip
    return (
        ann_ids,
        img_of,
        cat_of,
        np.array(bbox, dtype=np.float64).reshape(-1, 4),
        np.array(crowd, dtype=bool),
    )


def _unique(path: Path, what: str, ids: np.ndarray, plural: str = "") -> None:
    u, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    if len(u) != len(ids):
        dup = int(np.flatnonzero(counts > 1)[0])
        first, second = np.flatnonzero(inverse == dup)[:2].tolist()
        raise DataError(
            f"{path}: {plural or what + 's'} {first} and {second} share id {int(u[dup])}: "
            f"{what} ids must be unique (renumber them)"
        )


def _images(path: Path, imgs: list[dict]) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    ids = np.array(_values(path, imgs, "image", "id", _is_id, "an integer"), np.int64)
    _unique(path, "image", ids)
    files = _values(path, imgs, "image", "file_name", _is_name, "a file name", ids=ids)
    h = _values(path, imgs, "image", "height", _is_size, "a positive integer", ids=ids)
    w = _values(path, imgs, "image", "width", _is_size, "a positive integer", ids=ids)
    bad = next((k for k, f in enumerate(files) if not _is_relative(f)), None)
    if bad is not None:
        raise DataError(
            f"{path}: image {bad} (id {int(ids[bad])}) has file_name {files[bad]!r}, which "
            f"leaves the image folder: file names must be relative, without '..'"
        )
    return ids, files, np.array(h, np.int64), np.array(w, np.int64)


def _is_relative(name: str) -> bool:
    p = Path(name)
    return not p.is_absolute() and ".." not in p.parts and "\\" not in name and "\0" not in name


def _categories(path: Path, cats: list[dict]) -> tuple[np.ndarray, list[str]]:
    ids = np.array(_values(path, cats, "category", "id", _is_id, "an integer"), np.int64)
    _unique(path, "category", ids, "categories")
    names = _values(path, cats, "category", "name", _is_name, "a non-empty string", ids=ids)
    if len(set(names)) != len(names):
        seen: dict[str, int] = {}
        for k, n in enumerate(names):  # only to name the pair in the message
            if n in seen:
                raise DataError(
                    f"{path}: categories {seen[n]} and {k} are both named {n!r}: category "
                    f"names must be unique (they become the class names)"
                )
            seen[n] = k
    if not cats:
        raise DataError(f"{path}: the file has no categories: a COCO file lists its classes")
    order = np.argsort(ids, kind="stable")
    return ids[order], [names[k] for k in order]


def _lookup(
    path: Path,
    anns: list[dict],
    ann_ids: np.ndarray,
    key: str,
    known: np.ndarray,
    where: str,
    *,
    hint: str,
) -> np.ndarray:
    """The position in `known` of each annotation's `key` (an id)."""
    values = np.array(
        _values(path, anns, "annotation", key, _is_id, "an integer", ids=ann_ids), np.int64
    )
    order = np.argsort(known, kind="stable")
    pos = np.searchsorted(known, values, sorter=order).clip(0, max(len(known) - 1, 0))
    found = known[order][pos] == values if len(known) else np.zeros(len(values), dtype=bool)
    if not found.all():
        k = int(np.flatnonzero(~found)[0])
        n = int((~found).sum())
        raise DataError(
            f"{path}: annotation {k} (id {int(ann_ids[k])}) has {key} {int(values[k])}, which "
            f"matches nothing in {where} ({n} of {len(values)} annotations do not): {hint}"
        )
    return order[pos] if len(values) else np.zeros(0, np.int64)


def _labels(
    path: Path,
    cat_of: np.ndarray,
    category_ids: np.ndarray,
    names: list[str],
    classes: Sequence[str] | None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels 0..K−1 in category-id order, or in the order of `classes` (by name)."""
    if classes is None:
        return cat_of.astype(np.int64), tuple(names)
    classes = tuple(str(c) for c in classes)
    missing = [n for n in names if n not in classes]
    if missing or len(set(classes)) != len(classes):
        raise DataError(
            f"{path}: classes must name every category once; "
            + (f"{missing[:5]} are missing" if missing else "some repeat")
            + f" (the file's categories: {names[:20]})"
        )
    index = np.array([classes.index(n) for n in names], np.int64)
    return index[cat_of] if len(cat_of) else np.zeros(0, np.int64), classes


def _boxes(
    path: Path,
    bbox: np.ndarray,
    img_of: np.ndarray,
    ann_ids: np.ndarray,
    files: list[str],
    heights: np.ndarray,
    widths: np.ndarray,
    clip: bool,
) -> np.ndarray:
    """xyxy boxes in float64 from COCO's xywh; refused (or clipped) outside their images."""
    if not len(bbox):
        return np.zeros((0, 4))
    negative = (bbox[:, 2] < 0) | (bbox[:, 3] < 0)
    if negative.any():
        k = int(np.flatnonzero(negative)[0])
        raise DataError(
            f"{path}: annotation {k} (id {int(ann_ids[k])}) has bbox {bbox[k].tolist()} with a "
            f"negative width or height: COCO boxes are [x, y, width, height] (x2 < x1 or y2 < y1 "
            f"in the exporting tool?); fix or remove it"
        )
    boxes = np.concatenate([bbox[:, :2], bbox[:, :2] + bbox[:, 2:]], 1)
    limit = np.stack([widths, heights, widths, heights], 1)[img_of].astype(np.float64)
    if clip:
        return np.clip(boxes, 0, limit)
    outside = (boxes[:, :2] < 0).any(1) | (boxes[:, 2:] > limit[:, 2:]).any(1)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        i = int(img_of[k])
        raise DataError(
            f"{path}: annotation {k} (id {int(ann_ids[k])}) has bbox {bbox[k].tolist()}, which "
            f"reaches outside its {int(widths[i])}×{int(heights[i])} image {files[i]!r} "
            f"({int(outside.sum())} boxes do): pass clip=True to clip boxes to their images"
        )
    return boxes


def _common_size(
    path: Path, heights: np.ndarray, widths: np.ndarray, target: tuple[int, int] | None
) -> tuple[int, int]:
    if target is not None:
        return target
    sizes = np.unique(np.stack([heights, widths], 1), axis=0)
    if len(sizes) > 1:
        shown = ", ".join(f"{w}×{h}" for h, w in sizes[:3].tolist())
        raise DataError(
            f"{path}: the images have {len(sizes)} different sizes ({shown}, …): a DetectionSet "
            f"holds one size; pass size=(height, width) or an int to resize them"
        )
    if not len(sizes):
        raise DataError(f"{path}: the file lists no images")
    return int(sizes[0, 0]), int(sizes[0, 1])


# ---- masks -------------------------------------------------------------------------------------


def _has_segmentation(ann: dict) -> bool:
    return ann.get("segmentation") not in (None, [], {})


def _want_masks(path: Path, anns: list[dict], ann_ids: np.ndarray, masks: bool | None) -> bool:
    if masks is False or (masks is None and not anns):
        return False
    has = np.array([_has_segmentation(a) for a in anns], dtype=bool)
    if masks is None and not has.all():
        if has.any():
            warnings.warn(
                f"{path}: {int(has.sum())} of {len(has)} annotations have a segmentation, the "
                f"others none: reading boxes only (masks=True names the first without)",
                StriateWarning,
                stacklevel=3,
            )
        return False
    if not has.all():
        k = int(np.flatnonzero(~has)[0])
        raise DataError(
            f"{path}: annotation {k} (id {int(ann_ids[k])}) has no segmentation "
            f"({int((~has).sum())} of {len(has)} have none): pass masks=False to read boxes only"
        )
    return True


def _segmentation_error(path: Path, k: int, ann_id: int, why: str) -> DataError:
    return DataError(f"{path}: annotation {k} (id {ann_id}) has a bad segmentation: {why}")


def _masks(
    path: Path,
    anns: list[dict],
    ann_ids: np.ndarray,
    img_of: np.ndarray,
    heights: np.ndarray,
    widths: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """T×H×W masks of the annotations (in their final order), made at each image's own size
    (in chunks of bounded memory, one image size after another) and resized (nearest)."""
    th, tw = shape
    out = np.zeros((len(anns), th, tw), dtype=bool)
    segs = [a["segmentation"] for a in anns]
    is_rle = np.array([isinstance(s, dict) for s in segs], dtype=bool)
    for k, s in enumerate(segs):  # structure only; the pixels are made below, all at once
        if isinstance(s, dict):
            ok = isinstance(s.get("counts"), (str, list)) and _is_pair(s.get("size"))
            if not ok:
                why = "an RLE needs 'size' [height, width] and 'counts' (a string or a list)"
                raise _segmentation_error(path, k, int(ann_ids[k]), why)
            h, w = int(heights[img_of[k]]), int(widths[img_of[k]])
            if list(s["size"]) != [h, w]:
                why = f"its RLE size {s['size']} is not its image's [{h}, {w}] (height, width)"
                raise _segmentation_error(path, k, int(ann_ids[k]), why)
        elif not (isinstance(s, list) and all(_is_polygon(p) for p in s)):
            why = (
                "expected a list of polygons [[x1, y1, x2, y2, x3, y3, …], …] (x, y pairs) "
                f"or an RLE {{'size', 'counts'}}, got {_short(s)}"
            )
            raise _segmentation_error(path, k, int(ann_ids[k]), why)
    sizes = np.stack([heights, widths], 1)[img_of]
    groups, group_of = np.unique(sizes, axis=0, return_inverse=True)
    for g, (h, w) in enumerate(groups.tolist()):  # one pass per distinct image size
        members = np.flatnonzero(group_of.reshape(-1) == g)
        step = max(1, _MASK_PIXELS // (h * w))
        for start in range(0, len(members), step):
            chunk = members[start : start + step]
            made = _make_masks(path, [segs[k] for k in chunk], is_rle[chunk], chunk, ann_ids, h, w)
            out[chunk] = _resize_masks(made, th, tw)
    return out


def _is_pair(v: Any) -> bool:
    return type(v) is list and len(v) == 2 and all(type(x) is int and x >= 0 for x in v)


def _is_polygon(p: Any) -> bool:
    return (
        type(p) is list
        and len(p) >= 2
        and len(p) % 2 == 0
        and all(type(x) in (int, float) and math.isfinite(x) for x in p)
    )


def _make_masks(
    path: Path,
    segs: list,
    is_rle: np.ndarray,
    index: np.ndarray,
    ann_ids: np.ndarray,
    h: int,
    w: int,
) -> np.ndarray:
    made = np.zeros((len(segs), h, w), dtype=bool)
    polys = np.flatnonzero(~is_rle)
    if len(polys):
        owner = np.repeat(np.arange(len(polys)), [len(segs[k]) for k in polys])
        flat = [p for k in polys for p in segs[k]]
        made[polys] = rle.polygon_masks(flat, h, w, owner=owner, n=len(polys))
    rles = np.flatnonzero(is_rle)
    if len(rles):
        try:
            made[rles] = rle.decode([segs[k] for k in rles])
        except ValueError:
            for k in rles:  # find which one, to name it
                try:
                    rle.decode([segs[k]])
                except ValueError as e:
                    raise _segmentation_error(
                        path, int(index[k]), int(ann_ids[index[k]]), str(e)
                    ) from None
            raise
    return made


def _resize_masks(masks: np.ndarray, h: int, w: int) -> np.ndarray:
    if masks.shape[1:] == (h, w):
        return masks
    t = torch.from_numpy(masks.view(np.uint8))[:, None]
    return (
        torch.nn.functional.interpolate(t, size=(h, w), mode="nearest-exact")[:, 0].bool().numpy()
    )


# ---- images ------------------------------------------------------------------------------------


def _image_folder(path: Path, images: str | Path | None) -> Path:
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise DataError(f"{folder}: no such image folder (the images of {path.name})")
        return folder
    if path.stem.startswith("instances_"):
        beside = path.parent.parent / path.stem[len("instances_") :]
        if beside.is_dir():
            return beside
    return path.parent


# ---- writing -----------------------------------------------------------------------------------


def _category_ids_to_write(ds: DetectionSet, category_ids: Sequence[int] | None) -> list[int]:
    ids = category_ids if category_ids is not None else ds.category_ids
    if ids is None or any(i is None for i in ids):
        return list(range(1, ds.num_classes + 1))
    ids = [int(i) for i in ids]
    if len(ids) != ds.num_classes or len(set(ids)) != len(ids):
        raise DataError(
            f"write_coco: category_ids must be {ds.num_classes} distinct integers (one per "
            f"class), got {list(ids)[:10]}"
        )
    return ids
