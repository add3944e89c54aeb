"""Pascal VOC (Everingham et al. 2010, "The PASCAL Visual Object Classes (VOC) Challenge"):
the devkit's layout read into a DetectionSet and written from one.

Layout: ``ROOT/Annotations/ID.xml``, ``ROOT/JPEGImages/FILE`` (the XML's ``<filename>``) and
``ROOT/ImageSets/Main/SPLIT.txt`` (one ID a line). An XML file holds the image's ``<size>``
and its ``<object>``s: ``<name>``, ``<difficult>`` and ``<bndbox>`` with ``xmin ymin xmax ymax``.

Coordinates: the devkit counts pixels from 1 and its boxes include both end pixels (its
evaluation takes a box's width as xmax − xmin + 1), so pixel xmin's left edge is xmin − 1 and
pixel xmax's right edge is xmax. A DetectionSet's corners are edges, from 0: x1 = xmin − 1,
y1 = ymin − 1, x2 = xmax, y2 = ymax (and back: xmin = x1 + 1, xmax = x2). Detectron's and
mmdetection's VOC readers subtract 1 from all four; that gives the same boxes in their
inclusive-pixel convention (width = x2 − x1 + 1), not in ours.

XML is parsed by expat with document type declarations refused (so no entities, internal or
external: no billion laughs, no file reads), each file capped at `MAX_XML_BYTES`. Instance masks
(the devkit's SegmentationObject PNGs) are not read.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from xml.parsers import expat

import numpy as np
import torch
from PIL import Image

from striate._atomic import atomic_path, atomic_write
from striate.checks import one_of
from striate.data.annotated_images import read_images, refuse_existing
from striate.data.detectionset import DetectionSet
from striate.data.folder import parse_size
from striate.errors import DataError
from striate.progress import progress_bar

__all__ = ["MAX_XML_BYTES", "VOC_CLASSES", "read_voc", "write_voc"]

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
DIFFICULT = ("crowd", "drop", "keep")
IMAGE_FORMATS = ("jpg", "png")
MAX_XML_BYTES = 1 << 20  # VOC's files are 1–5 kB
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


class _Refused(Exception):
    """A DOCTYPE or entity declaration in an annotation file."""


def parse_xml(data: bytes) -> ET.Element:
    """An ElementTree of `data`, refusing any document type declaration (and with it every
    entity); raises `expat.ExpatError` for malformed XML and `ValueError` for a DOCTYPE."""
    parser = expat.ParserCreate()
    builder = ET.TreeBuilder()

    def refuse(*_args) -> None:
        raise _Refused

    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except _Refused:
        raise ValueError(
            "it declares a document type or entities, which VOC files never do"
        ) from None
    return builder.close()


def read_voc(
    root: str | Path,
    split: str = "train",
    *,
    classes: Sequence[str] | None = VOC_CLASSES,
    size: int | Sequence[int] | None = None,
    difficult: str = "crowd",
    clip: bool = False,
) -> DetectionSet:
    """Read split `split` of a VOC devkit folder (``VOC2007``, or a ``VOCdevkit`` holding one).

    `classes` gives the labels' order (None: the names found, sorted). `difficult` objects
    become crowd regions (ignored by matching, as VOC's evaluation ignores them), are dropped,
    or are kept as ordinary objects. `size` resizes images and boxes (VOC's images differ in
    size: pass it for the real sets). `clip` clips boxes to their images instead of refusing
    them. Image ids are the file ids as integers when they are digits (``2008_000123`` →
    2008000123), else 1..N.
    """
    root = _find_root(Path(root))
    mode = one_of("read_voc", "difficult", difficult, DIFFICULT)
    target = parse_size(size)
    names = _split_ids(root, split)
    parsed = []
    with progress_bar(f"reading {split} annotations", len(names), "files",
                      enabled=len(names) >= 500) as advance:  # fmt: skip
        for name in names:  # one file each: reading is per file
            parsed.append(_read_annotation(root / "Annotations" / f"{name}.xml"))
            advance(1)
    files = [p[0] for p in parsed]
    heights = np.array([p[1] for p in parsed], np.int64)
    widths = np.array([p[2] for p in parsed], np.int64)
    counts = np.array([len(p[3]) for p in parsed], np.int64)
    objects = [o for p in parsed for o in p[3]]
    xmls = [root / "Annotations" / f"{name}.xml" for name in names]
    object_xml = np.repeat(np.arange(len(names)), counts)

    classes, labels = _labels(root, split, objects, object_xml, xmls, classes)
    hard = np.array([o[1] for o in objects], dtype=bool)
    box = np.array([o[2] for o in objects], np.float64).reshape(-1, 4)
    boxes = np.concatenate([box[:, :2] - 1, box[:, 2:]], 1)
    boxes = _check_boxes(boxes, box, object_xml, xmls, heights, widths, clip)

    keep = ~hard if mode == "drop" else np.ones(len(hard), dtype=bool)
    counts = np.bincount(object_xml[keep], minlength=len(names))
    shape = _shape(root, split, heights, widths, target)
    scale = np.array([shape[1], shape[0], shape[1], shape[0]], np.float64)
    original = np.stack([widths, heights, widths, heights], 1)[object_xml]
    boxes = (boxes * scale / original)[keep]
    pixels = read_images(xmls, root / "JPEGImages", files, heights, widths, target)
    return DetectionSet(
        pixels,
        torch.from_numpy(boxes.astype(np.float32)),
        torch.from_numpy(labels[keep]),
        torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)),
        classes,
        None,
        torch.from_numpy(hard[keep] & (mode == "crowd")),
        torch.from_numpy(_image_ids(names)),
        f"{root} ({split})",
    )


def _labels(
    root: Path,
    split: str,
    objects: list,
    object_xml: np.ndarray,
    xmls: list[Path],
    classes: Sequence[str] | None,
) -> tuple[tuple[str, ...], np.ndarray]:
    """The class names and each object's label."""
    found = sorted({o[0] for o in objects})
    classes = tuple(found) if classes is None else tuple(str(c) for c in classes)
    if not classes:
        raise DataError(
            f"{root}: split {split!r} has no objects to take class names from: pass classes="
        )
    unknown = [n for n in found if n not in classes]
    if unknown:
        k = next(i for i, o in enumerate(objects) if o[0] == unknown[0])
        raise DataError(
            f"{xmls[object_xml[k]]}: object {unknown[0]!r} is not one of the classes "
            f"({', '.join(classes[:6])}, …): pass classes= with every name, or classes=None"
        )
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[o[0]] for o in objects], np.int64)


def _shape(
    root: Path,
    split: str,
    heights: np.ndarray,
    widths: np.ndarray,
    target: tuple[int, int] | None,
) -> tuple[int, int]:
    """The images' common size: `target`, else the one size they all have."""
    if target is not None:
        return target
    sizes = np.unique(np.stack([heights, widths], 1), axis=0)
    if len(sizes) > 1:
        shown = ", ".join(f"{w}×{h}" for h, w in sizes[:3].tolist())
        raise DataError(
            f"{root}: split {split!r} has images of {len(sizes)} sizes ({shown}, …): a "
            f"DetectionSet holds one size; pass size=(height, width) or an int"
        )
    return (int(sizes[0, 0]), int(sizes[0, 1])) if len(sizes) else (1, 1)


def write_voc(
    ds: DetectionSet,
    root: str | Path,
    split: str = "train",
    *,
    overwrite: bool = False,
    image_format: str = "jpg",
) -> Path:
    """Write `ds` in the devkit layout under `root`: ``Annotations/ID.xml``,
    ``JPEGImages/ID.jpg`` (or .png: VOC's own files are JPEG, which changes the pixels) and
    ``ImageSets/Main/SPLIT.txt``, IDs the image ids as six digits (VOC 2007's names). Crowd
    objects are written difficult. Masks are not written. Existing files are refused unless
    `overwrite`; each file is written atomically, the split list last. Returns `root`."""
    fmt = one_of("write_voc", "image_format", image_format, IMAGE_FORMATS)
    if not _ID.match(split):
        raise DataError(f"write_voc: split {split!r} must be a plain name (letters, digits, _-.)")
    root = Path(root)
    ids = ds.image_ids.tolist()
    if len(set(ids)) != len(ids) or min(ids, default=0) < 0:
        raise DataError(
            "write_voc: the set's image ids must be distinct and not negative (they name the "
            "files): give the set image_ids 1..N"
        )
    names = [f"{i:06d}" for i in ids]
    xmls = [root / "Annotations" / f"{n}.xml" for n in names]
    images = [root / "JPEGImages" / f"{n}.{fmt}" for n in names]
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not overwrite:
        refuse_existing("write_voc", [split_file, *xmls, *images])
    c, h, w = ds.shape
    if c not in (1, 3):
        raise DataError(f"write_voc: images with {c} channels cannot be saved: 1 or 3 needed")
    # Back to the devkit's 1-based inclusive pixels; integral values are written as integers.
    b = ds.boxes.double().numpy()
    coords = np.concatenate([b[:, :2] + 1, b[:, 2:]], 1)
    text = [_number(v) for v in coords.reshape(-1).tolist()]
    offsets = ds.offsets.tolist()
    labels = ds.labels.tolist()
    crowd = ds.crowd.tolist()
    pixels = ds.images.permute(0, 2, 3, 1).cpu().numpy()
    with progress_bar("writing VOC files", len(names), "images",
                      enabled=len(names) >= 500) as advance:  # fmt: skip
        for i in range(len(names)):  # one file each
            objects = "".join(
                _OBJECT.format(
                    name=_escape(ds.classes[labels[k]]), difficult=int(crowd[k]),
                    xmin=text[4 * k], ymin=text[4 * k + 1], xmax=text[4 * k + 2],
                    ymax=text[4 * k + 3],
                )
                for k in range(offsets[i], offsets[i + 1])
            )  # fmt: skip
            xml = _ANNOTATION.format(
                file=images[i].name, width=w, height=h, depth=c, objects=objects
            )
            arr = pixels[i]
            img = Image.fromarray(arr[:, :, 0] if c == 1 else arr)
            with atomic_path(images[i]) as tmp:
                img.save(tmp, format="PNG" if fmt == "png" else "JPEG", quality=95)
            with atomic_write(xmls[i], "w") as f:
                f.write(xml)
            advance(1)
    with atomic_write(split_file, "w") as f:
        f.write("".join(f"{n}\n" for n in names))
    return root


_ANNOTATION = """<annotation>
\t<folder>JPEGImages</folder>
\t<filename>{file}</filename>
\t<source><database>written by striate</database></source>
\t<size><width>{width}</width><height>{height}</height><depth>{depth}</depth></size>
\t<segmented>0</segmented>
{objects}</annotation>
"""
_OBJECT = """\t<object>
\t\t<name>{name}</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>{difficult}</difficult>
\t\t<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>
\t</object>
"""


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _number(v: float) -> str:
    return str(int(v)) if v == int(v) else repr(v)


def _find_root(root: Path) -> Path:
    """`root` itself when it holds Annotations, else its one VOC20xx folder (VOCdevkit)."""
    if (root / "Annotations").is_dir():
        return root
    inside = sorted(p for p in root.glob("VOC*") if (p / "Annotations").is_dir())
    if len(inside) == 1:
        return inside[0]
    if len(inside) > 1:
        raise DataError(
            f"{root} holds {len(inside)} VOC sets ({', '.join(p.name for p in inside)}): "
            f"pass the one to read"
        )
    raise DataError(
        f"{root}: not a VOC devkit folder (no Annotations/): pass the folder holding "
        f"Annotations, JPEGImages and ImageSets (e.g. VOCdevkit/VOC2007)"
    )


def _split_ids(root: Path, split: str) -> list[str]:
    folder = root / "ImageSets" / "Main"
    file = folder / f"{split}.txt"
    if not _ID.match(split) or not file.is_file():
        have = sorted(p.stem for p in folder.glob("*.txt") if "_" not in p.stem)
        raise DataError(
            f"{root}: no split {split!r} (no {file.relative_to(root)}): the splits here are "
            f"{have or 'none'}"
        )
    if file.stat().st_size > 64 * MAX_XML_BYTES:
        raise DataError(f"{file}: too large for a list of image ids")
    try:
        lines = file.read_text(encoding="utf-8").split()
    except UnicodeDecodeError:
        raise DataError(f"{file}: not a text file of image ids") from None
    bad = next((n for n in lines if not _ID.match(n)), None)
    if bad is not None:
        raise DataError(f"{file}: {bad[:40]!r} is not an image id (letters, digits, _-.)")
    if len(set(lines)) != len(lines):
        dup = next(n for n in lines if lines.count(n) > 1)
        raise DataError(f"{file}: image id {dup!r} is listed twice: list each image once")
    return lines


def _image_ids(names: list[str]) -> np.ndarray:
    digits = [n.replace("_", "") for n in names]
    if all(d.isdigit() and len(d) < 19 for d in digits):
        ids = np.array([int(d) for d in digits], np.int64)
        if len(np.unique(ids)) == len(ids):
            return ids
    return np.arange(1, len(names) + 1, dtype=np.int64)


def _read_annotation(file: Path) -> tuple[str, int, int, list]:
    """(image file name, height, width, [(name, difficult, [xmin, ymin, xmax, ymax])])."""
    if not file.is_file():
        raise DataError(f"{file}: missing (listed in the split): restore it or remove its id")
    n = file.stat().st_size
    if n > MAX_XML_BYTES:
        raise DataError(f"{file}: {n:,} bytes is too large for a VOC annotation file")
    try:
        tree = parse_xml(file.read_bytes())
    except expat.ExpatError as e:
        raise DataError(
            f"{file}: malformed XML ({expat.ErrorString(e.code)} at line {e.lineno}): the file "
            f"is truncated or damaged; restore it"
        ) from None
    except ValueError as e:
        raise DataError(f"{file}: refused: {e}") from None
    if tree.tag != "annotation":
        raise DataError(f"{file}: not a VOC annotation (its root is <{tree.tag}>)")
    name = _text(file, tree, "filename")
    if not name or Path(name).name != name or name in (".", ".."):
        raise DataError(f"{file}: <filename> {name!r} must name a file in JPEGImages")
    width = _number_of(file, tree, "size/width", integer=True)
    height = _number_of(file, tree, "size/height", integer=True)
    if width < 1 or height < 1:
        raise DataError(f"{file}: <size> {width}×{height} is not an image size")
    objects = []
    for k, obj in enumerate(tree.findall("object")):  # a handful per file
        where = f"object {k}"
        label = _text(file, obj, "name", where)
        hard = obj.findtext("difficult", "0").strip()
        if hard not in ("0", "1"):
            raise DataError(f"{file}: {where} has <difficult> {hard!r}: 0 or 1")
        box = [_number_of(file, obj, f"bndbox/{t}", where=where)
               for t in ("xmin", "ymin", "xmax", "ymax")]  # fmt: skip
        objects.append((label, hard == "1", box))
    return name, int(height), int(width), objects


def _text(file: Path, node: ET.Element, path: str, where: str = "") -> str:
    found = node.find(path)
    if found is None or not (found.text or "").strip():
        owner = f"{where} has" if where else "has"
        raise DataError(f"{file}: {owner} no <{path}>: a VOC annotation needs it")
    return found.text.strip()


def _number_of(
    file: Path, node: ET.Element, path: str, *, where: str = "", integer: bool = False
) -> float:
    text = _text(file, node, path, where)
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or (integer and v != int(v)):
        owner = f"{where}'s" if where else "its"
        kind = "an integer" if integer else "a number"
        raise DataError(f"{file}: {owner} <{path}> is {text[:20]!r}, not {kind}")
    return v


def _check_boxes(
    boxes: np.ndarray,
    raw: np.ndarray,
    owner: np.ndarray,
    xmls: list[Path],
    heights: np.ndarray,
    widths: np.ndarray,
    clip: bool,
) -> np.ndarray:
    if not len(boxes):
        return boxes
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        k = int(np.flatnonzero(inverted)[0])
        raise DataError(
            f"{xmls[owner[k]]}: a box has xmin ymin xmax ymax {_box_text(raw[k])}, with xmax < "
            f"xmin or ymax < ymin ({int(inverted.sum())} such boxes): fix or remove it"
        )
    limit = np.stack([widths, heights, widths, heights], 1)[owner].astype(np.float64)
    if clip:
        return np.clip(boxes, 0, limit)
    outside = (boxes[:, :2] < 0).any(1) | (boxes[:, 2:] > limit[:, 2:]).any(1)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        i = int(owner[k])
        raise DataError(
            f"{xmls[i]}: a box with xmin ymin xmax ymax {_box_text(raw[k])} reaches outside its "
            f"{int(widths[i])}×{int(heights[i])} image (VOC counts pixels 1..width; "
            f"{int(outside.sum())} boxes do): pass clip=True to clip boxes to their images"
        )
    return boxes


def _box_text(b: np.ndarray) -> str:
    return " ".join(_number(float(v)) for v in b)
