"""read_coco / write_coco: round trips, pycocotools parity, files pycocotools accepts, bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from striate.data import annotated_images, coco
from striate.data.coco import read_coco, write_coco
from striate.data.detectionset import DetectionSet
from striate.errors import ConfigError, DataError, StriateWarning
from striate.outputs import OutputExists

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


def make_set(n=4, h=18, w=22, masks=True, seed=0, counts=(2, 0, 3, 1)) -> DetectionSet:
    """A small set with an image without objects, crowd regions and random masks."""
    rng = np.random.default_rng(seed)
    counts = np.array(counts[:n])
    t = int(counts.sum())
    x1, y1 = rng.uniform(0, w - 6, t), rng.uniform(0, h - 6, t)
    boxes = np.stack([x1, y1, x1 + rng.uniform(0, 6, t), y1 + rng.uniform(0, 6, t)], 1)
    boxes[:1] = [0, 0, w, h]  # touching every edge
    return DetectionSet(
        torch.from_numpy(rng.integers(0, 256, (n, 3, h, w), dtype=np.uint8)),
        torch.from_numpy(boxes.astype(np.float32)),
        torch.from_numpy(rng.integers(0, 3, t)),
        torch.from_numpy(np.concatenate([[0], np.cumsum(counts)])),
        ("cat", "dog", "bird"),
        torch.from_numpy(rng.random((t, h, w)) < 0.3) if masks else None,
        torch.from_numpy(rng.random(t) < 0.4),
        torch.tensor([5, 9, 2, 7][:n]),
    )


def assert_same(a: DetectionSet, b: DetectionSet) -> None:
    for field in ("images", "boxes", "labels", "offsets", "crowd", "image_ids"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.classes == b.classes
    assert (a.masks is None) == (b.masks is None)
    if a.masks is not None:
        assert torch.equal(a.masks, b.masks)


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.fixture
def written(tmp_path) -> tuple[DetectionSet, Path]:
    ds = make_set()
    path = write_coco(ds, tmp_path / "annotations" / "instances_val.json", tmp_path / "val")
    return ds, path


def test_round_trip_with_masks_and_crowd(written, tmp_path):
    ds, path = written
    back = read_coco(path)  # COCO's layout: images found in ../val
    assert_same(ds, back)
    assert back.category_ids == (1, 2, 3)
    assert back.source == str(path)
    assert int(back.counts()[1]) == 0  # the image without objects survives


def test_round_trip_without_masks(tmp_path):
    ds = make_set(masks=False)
    path = write_coco(ds, tmp_path / "a.json", tmp_path)  # images beside the JSON
    doc = json.loads(path.read_text())
    assert all("segmentation" not in a for a in doc["annotations"])
    boxes = ds.boxes.double()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert np.allclose([a["area"] for a in doc["annotations"]], area.numpy())
    assert_same(ds, read_coco(path))


def test_pycocotools_reads_what_we_write(written):
    ds, path = written
    ref = COCO(str(path))
    anns = ref.loadAnns(ref.getAnnIds())
    assert [a["image_id"] for a in anns] == ds.image_ids[ds.image_of()].tolist()
    assert ref.getImgIds() == ds.image_ids.tolist()
    for k, a in enumerate(anns):
        assert np.array_equal(ref.annToMask(a) > 0, ds.masks[k].numpy())
        expect = coco_mask.encode(np.asfortranarray(ds.masks[k].numpy().astype(np.uint8)))
        assert a["segmentation"]["counts"] == expect["counts"].decode()
        assert a["area"] == float(coco_mask.area(expect))
        x1, y1, x2, y2 = ds.boxes[k].double().tolist()
        assert a["bbox"] == [x1, y1, x2 - x1, y2 - y1]
        assert a["iscrowd"] == int(ds.crowd[k])
        assert ref.cats[a["category_id"]]["name"] == ds.classes[int(ds.labels[k])]


def _image(folder: Path, name: str, h: int, w: int, seed: int = 0, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / name)


def _coco_json(tmp_path: Path, doc: dict, name: str = "ann.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _doc(h=20, w=30) -> dict:
    """A COCO file as the official ones are: polygons (one with two parts), an uncompressed RLE
    crowd region, a compressed RLE, category ids not 1..K, images out of id order."""
    crowd = np.zeros((h, w), dtype=bool)
    crowd[2:9, 15:28] = True
    packed = coco_mask.encode(np.asfortranarray(crowd[::-1].astype(np.uint8)))
    flat = crowd.T.reshape(-1).astype(np.int64)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return {
        "info": {},
        "images": [
            {"id": 42, "file_name": "b.png", "height": h, "width": w},
            {"id": 7, "file_name": "a.png", "height": h, "width": w},
            {"id": 9, "file_name": "c.png", "height": h, "width": w},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 18, "bbox": [1.5, 2, 10, 8], "iscrowd": 0,
             "segmentation": [[1.5, 2, 11.5, 2, 11.5, 10, 1.5, 10], [3, 12, 8, 12, 5, 18]]},
            {"id": 2, "image_id": 42, "category_id": 3, "bbox": [15, 2, 13, 7], "iscrowd": 1,
             "segmentation": {"size": [h, w], "counts": runs}},
            {"id": 5, "image_id": 7, "category_id": 3, "bbox": [0, 0, 30, 20], "iscrowd": 0,
             "segmentation": {"size": [h, w], "counts": packed["counts"].decode()}},
            {"id": 3, "image_id": 42, "category_id": 5, "bbox": [20.25, 10, 9.75, 10],
             "iscrowd": 0, "segmentation": [[20.25, 10, 30, 10, 30, 20, 25, 14.5]]},
        ],
        "categories": [
            {"id": 18, "name": "dog"}, {"id": 3, "name": "car"}, {"id": 5, "name": "cat"},
        ],
    }  # fmt: skip


@pytest.fixture
def official(tmp_path) -> Path:
    doc = _doc()
    for k, img in enumerate(doc["images"]):
        _image(tmp_path, img["file_name"], img["height"], img["width"], seed=k)
    return _coco_json(tmp_path, doc)


def test_reads_what_pycocotools_reads(official):
    ds = read_coco(official)
    ref = COCO(str(official))
    assert ds.image_ids.tolist() == [42, 7, 9]  # the file's order
    assert ds.classes == ("car", "cat", "dog")  # by category id: 3, 5, 18
    assert ds.category_ids == (3, 5, 18)
    assert ds.counts().tolist() == [2, 2, 0]
    # objects grouped by image, in annotation order inside each image
    ann_ids = [2, 3, 1, 5]
    anns = ref.loadAnns(ann_ids)
    for k, a in enumerate(anns):
        assert np.array_equal(ds.masks[k].numpy(), ref.annToMask(a) > 0), a["id"]
        x, y, w, h = a["bbox"]
        assert ds.boxes[k].tolist() == [x, y, x + w, y + h]
        assert ds.classes[int(ds.labels[k])] == ref.cats[a["category_id"]]["name"]
    assert ds.crowd.tolist() == [True, False, False, False]
    for k, img in enumerate([42, 7, 9]):
        file = ref.imgs[img]["file_name"]
        expect = np.asarray(Image.open(official.parent / file)).transpose(2, 0, 1)
        assert np.array_equal(ds.images[k].numpy(), expect)


def test_category_ids_survive_a_round_trip(official, tmp_path):
    ds = read_coco(official)
    out = write_coco(ds, tmp_path / "out" / "x.json", tmp_path / "out")
    doc = json.loads(out.read_text())
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [(3, "car"), (5, "cat"),
                                                                  (18, "dog")]  # fmt: skip
    assert_same(ds, read_coco(out))
    write_coco(ds, tmp_path / "renumbered.json", tmp_path / "r", category_ids=[10, 20, 30])
    again = read_coco(tmp_path / "renumbered.json", tmp_path / "r")
    assert again.category_ids == (10, 20, 30)


def test_classes_fix_the_label_order(official):
    ds = read_coco(official, classes=["dog", "cat", "car", "bus"])
    assert ds.classes == ("dog", "cat", "car", "bus")
    assert [ds.classes[i] for i in ds.labels.tolist()] == ["car", "cat", "dog", "car"]
    with pytest.raises(DataError, match="classes must name every category") as e:
        read_coco(official, classes=["dog", "cat"])
    one_line(e)


def test_size_resizes_images_boxes_and_masks(official):
    full = read_coco(official)
    small = read_coco(official, size=(10, 15))
    assert small.shape == (3, 10, 15)
    assert torch.allclose(small.boxes, full.boxes / 2)
    expect = torch.nn.functional.interpolate(
        full.masks[:, None].float(), size=(10, 15), mode="nearest-exact"
    )[:, 0].bool()
    assert torch.equal(small.masks, expect)
    img = Image.open(official.parent / "b.png").resize((15, 10), Image.Resampling.BILINEAR)
    assert np.array_equal(small.images[0].numpy(), np.asarray(img).transpose(2, 0, 1))


def test_different_sizes_need_size(tmp_path):
    doc = _doc()
    doc["images"][2].update(height=12, width=16)
    for k, img in enumerate(doc["images"]):
        _image(tmp_path, img["file_name"], img["height"], img["width"], seed=k)
    path = _coco_json(tmp_path, doc)
    with pytest.raises(DataError, match="pass size=") as e:
        read_coco(path)
    one_line(e)
    ds = read_coco(path, size=8)
    assert ds.shape == (3, 8, 8) and ds.masks.shape == (4, 8, 8)


def test_empty_annotation_list_is_images_without_objects(official):
    doc = json.loads(official.read_text())
    doc["annotations"] = []
    official.write_text(json.dumps(doc))
    ds = read_coco(official)
    assert len(ds) == 3 and len(ds.labels) == 0 and ds.counts().tolist() == [0, 0, 0]
    assert ds.masks is None and ds.classes == ("car", "cat", "dog")


def test_set_without_objects_round_trips(tmp_path):
    ds = make_set(counts=(0, 0, 0, 0), masks=False)
    path = write_coco(ds, tmp_path / "e.json", tmp_path)
    assert json.loads(path.read_text())["annotations"] == []
    assert_same(ds, read_coco(path))


def test_masks_false_and_grey_images(official):
    Image.open(official.parent / "c.png").convert("L").save(official.parent / "c.png")
    ds = read_coco(official, masks=False)
    assert ds.masks is None and ds.shape[0] == 3
    grey = np.asarray(Image.open(official.parent / "c.png"))
    assert all(np.array_equal(ds.images[2, c].numpy(), grey) for c in range(3))


def test_clip(official):
    doc = json.loads(official.read_text())
    doc["annotations"][0]["bbox"] = [-2, 3, 40, 5]
    official.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"outside its 30×20 image 'a.png'.*clip=True") as e:
        read_coco(official)
    one_line(e)
    ds = read_coco(official, clip=True)
    assert ds.boxes[2].tolist() == [0, 3, 30, 8]


def _broken(official: Path, change) -> Path:
    doc = json.loads(official.read_text())
    change(doc)
    official.write_text(json.dumps(doc))
    return official


def _set(path, value):
    """A change setting doc[path[0]][path[1]]…[path[-1]] = value."""

    def change(doc):
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value

    return change


BAD_FILES = {
    "image ids do not match": (
        _set(["annotations", 1, "image_id"], 1000),
        r"annotation 1 \(id 2\) has image_id 1000, which matches nothing in 'images'",
    ),
    "duplicate image id": (_set(["images", 2, "id"], 42), "images 0 and 2 share id 42"),
    "duplicate annotation id": (
        _set(["annotations", 3, "id"], 1), "annotations 0 and 3 share id 1"),
    "duplicate category id": (_set(["categories", 2, "id"], 3), "categories 1 and 2 share id 3"),
    "unknown category": (
        _set(["annotations", 0, "category_id"], 99),
        "category_id 99, which matches nothing in 'categories'",
    ),
    "negative width": (
        _set(["annotations", 0, "bbox"], [12, 2, -10, 8]), "negative width or height"),
    "bbox not 4 numbers": (_set(["annotations", 0, "bbox"], [1, 2, 3]), "bbox must be"),
    "no bbox": (lambda d: d["annotations"][2].pop("bbox"), r"annotation 2 \(id 5\) has no 'bbox'"),
    "string id": (_set(["images", 1, "id"], "7"), "image 1 has id \"7\": id must be an integer"),
    "no file name": (lambda d: d["images"][0].pop("file_name"), "has no 'file_name'"),
    "file name leaves the folder": (_set(["images", 0, "file_name"], "../b.png"), "leaves"),
    "bad iscrowd": (_set(["annotations", 0, "iscrowd"], 2), "iscrowd must be 0 or 1"),
    "missing images": (lambda d: d.pop("images"), "not a COCO instances file .no 'images'"),
    "annotations not a list": (
        _set(["annotations"], {}), "not a COCO instances file .no 'annotations'"),
    "annotation not an object": (_set(["annotations", 1], 3), r"annotations\[1\] is not"),
    "no categories": (_set(["categories"], []), "has no categories"),
    "duplicate class names": (_set(["categories", 2, "name"], "dog"), "both named 'dog'"),
    "RLE of another size": (
        _set(["annotations", 1, "segmentation", "size"], [10, 10]), "not its image's"),
    "bad RLE string": (
        _set(["annotations", 2, "segmentation", "counts"], "0k"), r"\(id 5\).*middle of a number"),
    "flat polygon": (_set(["annotations", 0, "segmentation"], [1, 2, 3, 4, 5, 6]), "polygons"),
    "odd polygon": (
        _set(["annotations", 0, "segmentation"], [[1, 2, 3, 4, 5]]), r"\(x, y pairs\)"),
    "partial segmentations": (
        lambda d: d["annotations"][3].pop("segmentation"), None),  # masks=None: boxes only
    "wrong image size": (
        lambda d: [i.update(width=31) for i in d["images"]] + [
            a.pop("segmentation") for a in d["annotations"]],
        "image is 30×20 but ann.json says it is 31×20"),
    "image missing": (_set(["images", 2, "file_name"], "gone.png"), "1 of 3 image files are"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_files_raise_one_line(official, case):
    change, words = BAD_FILES[case]
    path = _broken(official, change)
    before = path.read_bytes()
    if words is None:
        with pytest.warns(StriateWarning, match="3 of 4 annotations have a segmentation"):
            assert read_coco(path).masks is None
        with pytest.raises(DataError, match="pass masks=False") as e:
            read_coco(path, masks=True)
    else:
        with pytest.raises(DataError, match=words) as e:
            read_coco(path)
    assert one_line(e).startswith(
        str(path) if "image is" not in (words or "") else str(path.parent)
    )
    assert path.read_bytes() == before  # nothing written or lost


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"images": [], "annotations": [', "not valid JSON .* truncated or damaged"),
        ("", "not valid JSON"),
        ('{"images": [], "annotations": [], "categories": [], "x": NaN}', "holds NaN"),
        ("[1, 2]", "not a COCO instances file .no 'images' list; it holds a JSON list"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (b"\xff\xfe\x00garbage", "not"),
    ],
)
def test_malformed_json(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError, match=words) as e:
        read_coco(path)
    assert one_line(e).startswith(str(path))


def test_size_caps(official, monkeypatch):
    monkeypatch.setattr(coco, "MAX_JSON_BYTES", 100)
    with pytest.raises(DataError, match="more than the 100 a COCO file may have") as e:
        read_coco(official)
    one_line(e)
    monkeypatch.setattr(coco, "MAX_JSON_BYTES", 1 << 30)
    monkeypatch.setattr(annotated_images, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(DataError, match="too large for an image") as e:
        read_coco(official)
    one_line(e)


def test_unreadable_image(official):
    (official.parent / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match=r"c.png: unreadable image") as e:
        read_coco(official)
    one_line(e)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="no such COCO annotation file"):
        read_coco(tmp_path / "nope.json")
    path = _coco_json(tmp_path, _doc())
    with pytest.raises(DataError, match="no such image folder"):
        read_coco(path, tmp_path / "elsewhere")


def test_write_refuses_to_overwrite(written, tmp_path):
    ds, path = written
    image = tmp_path / "val" / "000000000005.png"
    before = path.read_bytes(), image.read_bytes()
    other = make_set(seed=1)
    with pytest.raises(OutputExists, match="instances_val.json exists .and 4 more") as e:
        write_coco(other, path, tmp_path / "val")
    one_line(e)
    assert (path.read_bytes(), image.read_bytes()) == before
    # one image in the way is enough to refuse, and nothing is written
    image2 = tmp_path / "val2"
    image2.mkdir()
    (image2 / "000000000009.png").write_bytes(b"mine")
    with pytest.raises(OutputExists, match="000000000009.png exists"):
        write_coco(other, tmp_path / "new.json", image2)
    assert not (tmp_path / "new.json").exists() and len(list(image2.iterdir())) == 1
    write_coco(other, path, tmp_path / "val", overwrite=True)
    assert_same(other, read_coco(path))


def test_write_checks_its_arguments(tmp_path):
    ds = make_set()
    with pytest.raises(ConfigError, match="image_format"):
        write_coco(ds, tmp_path / "a.json", tmp_path, image_format="gif")
    with pytest.raises(DataError, match="image ids repeat"):
        write_coco(ds[[0, 0]], tmp_path / "a.json", tmp_path)
    with pytest.raises(DataError, match="category_ids must be 3 distinct"):
        write_coco(ds, tmp_path / "a.json", tmp_path, category_ids=[1, 1, 2])
    assert not list(tmp_path.iterdir())


def test_jpeg(tmp_path):
    ds = make_set()
    path = write_coco(ds, tmp_path / "a.json", tmp_path, image_format="jpg")
    back = read_coco(path)
    assert torch.equal(back.boxes, ds.boxes) and torch.equal(back.masks, ds.masks)
    assert json.loads(path.read_text())["images"][0]["file_name"] == "000000000005.jpg"
    # lossy: the pixels are what PIL's own JPEG round trip at quality 95 gives
    buffer = io.BytesIO()
    Image.fromarray(ds.images[0].permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=95)
    expect = np.asarray(Image.open(buffer)).transpose(2, 0, 1)
    assert np.array_equal(back.images[0].numpy(), expect)


def test_decompression_bomb_is_refused(official, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # our 30×20 images now count as bombs
    with pytest.raises(DataError, match=r"b.png: unreadable image \(DecompressionBomb") as e:
        read_coco(official)
    one_line(e)
