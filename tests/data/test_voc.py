"""read_voc / write_voc: the devkit's coordinates, round trips, difficult objects, safe XML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from striate.data import voc
from striate.data.detectionset import DetectionSet
from striate.data.voc import VOC_CLASSES, read_voc, write_voc
from striate.errors import ConfigError, DataError
from striate.outputs import OutputExists


def make_set(seed=0) -> DetectionSet:
    rng = np.random.default_rng(seed)
    n, h, w = 4, 16, 20
    counts = np.array([2, 0, 3, 1])
    t = int(counts.sum())
    x1, y1 = rng.integers(0, w - 5, t), rng.integers(0, h - 5, t)
    boxes = np.stack([x1, y1, x1 + rng.integers(0, 5, t), y1 + rng.integers(0, 5, t)], 1)
    boxes = boxes.astype(np.float32)
    boxes[0] = [0, 0, w, h]
    boxes[1, 0] += 0.25  # not on a pixel edge: written as a decimal
    return DetectionSet(
        torch.from_numpy(rng.integers(0, 256, (n, 3, h, w), dtype=np.uint8)),
        torch.from_numpy(boxes),
        torch.from_numpy(rng.integers(0, 3, t)),
        torch.from_numpy(np.concatenate([[0], np.cumsum(counts)])),
        ("cat", "dog", "person"),
        None,
        torch.tensor([False, True, False, False, True, False]),
        torch.tensor([5, 9, 2, 7]),
    )


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


XML = """<annotation>
  <folder>VOC2007</folder>
  <filename>{file}</filename>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
  {objects}
</annotation>
"""
OBJECT = """<object><name>{name}</name><pose>Left</pose><truncated>1</truncated>
  <difficult>{difficult}</difficult>
  <bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax>
  </bndbox></object>"""


def devkit(tmp_path: Path, images: dict, split="trainval", size=(12, 16)) -> Path:
    """VOCdevkit/VOC2007 with images {id: [(name, difficult, (xmin, ymin, xmax, ymax))]}."""
    root = tmp_path / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    h, w = size
    rng = np.random.default_rng(0)
    for name, objects in images.items():
        text = "".join(OBJECT.format(name=o[0], difficult=o[1], box=o[2]) for o in objects)
        xml = XML.format(file=f"{name}.png", w=w, h=h, objects=text)
        (root / "Annotations" / f"{name}.xml").write_text(xml)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{name}.png")
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(images) + "\n")
    return root


@pytest.fixture
def root(tmp_path) -> Path:
    return devkit(
        tmp_path,
        {
            "000005": [("chair", 0, (1, 1, 16, 12)), ("person", 1, (3, 2, 7, 9))],
            "000007": [],
            "2008_000123": [("dog", 0, (10, 4, 10, 4))],  # one pixel: width 1 in the devkit
        },
    )


def test_devkit_coordinates(root):
    ds = read_voc(root, "trainval")
    assert ds.image_ids.tolist() == [5, 7, 2008000123]
    assert ds.counts().tolist() == [2, 0, 1]
    # xmin ymin xmax ymax (1-based, inclusive) → x1 = xmin − 1, y1 = ymin − 1, x2 = xmax, y2 = ymax
    assert ds.boxes.tolist() == [[0, 0, 16, 12], [2, 1, 7, 9], [9, 3, 10, 4]]
    # the devkit's width xmax − xmin + 1 is x2 − x1 here
    assert (ds.boxes[:, 2] - ds.boxes[:, 0]).tolist() == [16, 5, 1]
    assert [ds.classes[i] for i in ds.labels.tolist()] == ["chair", "person", "dog"]
    assert ds.classes == VOC_CLASSES
    assert ds.crowd.tolist() == [False, True, False]
    pixels = np.asarray(Image.open(root / "JPEGImages" / "000005.png")).transpose(2, 0, 1)
    assert np.array_equal(ds.images[0].numpy(), pixels)


def test_devkit_folder_is_looked_through(root):
    assert torch.equal(read_voc(root.parent, "trainval").boxes, read_voc(root, "trainval").boxes)


def test_difficult_modes_and_classes(root):
    dropped = read_voc(root, "trainval", difficult="drop", classes=None)
    assert dropped.classes == ("chair", "dog", "person")  # found, sorted
    assert dropped.counts().tolist() == [1, 0, 1] and not dropped.crowd.any()
    kept = read_voc(root, "trainval", difficult="keep")
    assert kept.counts().tolist() == [2, 0, 1] and not kept.crowd.any()
    with pytest.raises(ConfigError, match="difficult must be one of"):
        read_voc(root, "trainval", difficult="ignore")


def test_size(root):
    ds = read_voc(root, "trainval", size=(6, 4))
    assert ds.shape == (3, 6, 4)
    assert ds.boxes.tolist()[0] == [0, 0, 4, 6]
    assert torch.allclose(ds.boxes[1], torch.tensor([2 / 4, 1 / 2, 7 / 4, 9 / 2]))


def test_round_trip(tmp_path):
    ds = make_set()
    write_voc(ds, tmp_path / "VOC2099", "val", image_format="png")
    back = read_voc(tmp_path / "VOC2099", "val", classes=ds.classes)
    for field in ("images", "boxes", "labels", "offsets", "crowd", "image_ids"):
        assert torch.equal(getattr(ds, field), getattr(back, field)), field
    xml = (tmp_path / "VOC2099" / "Annotations" / "000005.xml").read_text()
    assert "<xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>16</ymax>" in xml
    assert "<difficult>1</difficult>" in xml  # the crowd object
    lines = (tmp_path / "VOC2099" / "ImageSets" / "Main" / "val.txt").read_text().split()
    assert lines == ["000005", "000009", "000002", "000007"]


def test_write_refuses_to_overwrite(tmp_path):
    ds = make_set()
    root = write_voc(ds, tmp_path / "VOC", "train")
    split = root / "ImageSets" / "Main" / "train.txt"
    before = split.read_bytes()
    with pytest.raises(OutputExists, match="train.txt exists .and 8 more") as e:
        write_voc(make_set(seed=1), root, "train")
    one_line(e)
    assert split.read_bytes() == before
    write_voc(make_set(seed=1), root, "train", overwrite=True)
    back = read_voc(root, "train", classes=ds.classes)
    assert torch.equal(back.boxes, make_set(seed=1).boxes)  # JPEG: pixels change, boxes not


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<annotation><filename>&lol4;</filename></annotation>
"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<annotation><filename>&secret;</filename></annotation>
"""
DOCTYPE_ONLY = """<!DOCTYPE annotation SYSTEM "http://example.com/voc.dtd">
<annotation><filename>000005.png</filename></annotation>"""


@pytest.mark.parametrize(
    "text, words",
    [
        (BILLION_LAUGHS.encode(), "refused: it declares a document type"),
        (EXTERNAL.encode(), "refused: it declares a document type"),
        (DOCTYPE_ONLY.encode(), "refused: it declares a document type"),
        (EXTERNAL.replace('"1.0"', '"1.0" encoding="utf-16"').encode("utf-16"), "refused"),
        (b"<annotation><filename>000005.png</filename><size>", "malformed XML .*truncated"),
        (b"<annotation><filename>a</filename></annot>", "malformed XML"),
        (b"", "malformed XML"),
        (b"<notes/>", "not a VOC annotation .its root is <notes>"),
        (b"<annotation><size><width>4</width><height>4</height></size></annotation>",
         "has no <filename>"),
        (b"<annotation><filename>../x.png</filename></annotation>", "must name a file"),
        (b"<annotation><filename>a.png</filename><size><width>4.5</width><height>4</height>"
         b"</size></annotation>", "<size/width> is '4.5', not an integer"),
    ],
)  # fmt: skip
def test_bad_xml_is_refused(root, text, words):
    file = root / "Annotations" / "000005.xml"
    file.write_bytes(text)
    with pytest.raises(DataError, match=words) as e:
        read_voc(root, "trainval")
    assert one_line(e).startswith(str(file))
    assert file.read_bytes() == text


def _edit(root: Path, name: str, old: str, new: str) -> Path:
    file = root / "Annotations" / f"{name}.xml"
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new))
    return file


@pytest.mark.parametrize(
    "old, new, words",
    [
        ("<xmax>7</xmax>", "<xmax>1</xmax>", "xmax < xmin or ymax < ymin"),
        ("<xmax>16</xmax>", "<xmax>17</xmax>", "reaches outside its 16×12 image.*clip=True"),
        ("<xmin>1</xmin>", "<xmin>0</xmin>", "reaches outside"),
        ("<xmin>3</xmin>", "<xmin>three</xmin>", "<bndbox/xmin> is 'three', not a number"),
        ("<xmin>3</xmin>", "", "object 1 has no <bndbox/xmin>"),
        ("<name>chair</name>", "<name>chiar</name>", "'chiar' is not one of the classes"),
        ("<difficult>1</difficult>", "<difficult>yes</difficult>", "<difficult> 'yes'"),
    ],
)
def test_bad_annotations(root, old, new, words):
    file = _edit(root, "000005", old, new)
    with pytest.raises(DataError, match=words) as e:
        read_voc(root, "trainval")
    text = one_line(e)
    assert str(file) in text


def test_image_size_must_match_the_annotation(root):
    for name in ("000005", "000007", "2008_000123"):
        _edit(root, name, "<width>16</width>", "<width>17</width>")
    with pytest.raises(DataError, match="image is 16×12 but 000005.xml says it is 17×12") as e:
        read_voc(root, "trainval")
    assert one_line(e).startswith(str(root / "JPEGImages" / "000005.png"))


def test_clip(root):
    _edit(root, "000005", "<xmax>16</xmax>", "<xmax>18</xmax>")
    assert read_voc(root, "trainval", clip=True).boxes[0].tolist() == [0, 0, 16, 12]


def test_missing_pieces(root, tmp_path):
    with pytest.raises(DataError, match=r"no split 'test'.*the splits here are \['trainval'\]"):
        read_voc(root, "test")
    with pytest.raises(DataError, match="not a VOC devkit folder"):
        read_voc(tmp_path / "nowhere")
    (root / "JPEGImages" / "000007.png").unlink()
    with pytest.raises(DataError, match="1 of 3 image files are missing") as e:
        read_voc(root, "trainval")
    assert one_line(e).startswith(str(root / "Annotations" / "000007.xml"))
    (root / "Annotations" / "2008_000123.xml").unlink()
    with pytest.raises(DataError, match="2008_000123.xml: missing .listed in the split"):
        read_voc(root, "trainval")


def test_split_file_checks(root):
    split = root / "ImageSets" / "Main" / "trainval.txt"
    split.write_text("000005\n000005\n")
    with pytest.raises(DataError, match="listed twice"):
        read_voc(root, "trainval")
    split.write_text("000005\n../../etc/passwd\n")
    with pytest.raises(DataError, match="is not an image id"):
        read_voc(root, "trainval")


def test_size_cap(root, monkeypatch):
    monkeypatch.setattr(voc, "MAX_XML_BYTES", 64)
    with pytest.raises(DataError, match="too large for a VOC annotation file") as e:
        read_voc(root, "trainval")
    one_line(e)


def test_different_sizes_need_size(tmp_path):
    root = devkit(tmp_path, {"1": [("cat", 0, (1, 1, 4, 4))]})
    devkit(tmp_path, {"2": []}, split="other", size=(8, 8))
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("1\n2\n")
    with pytest.raises(DataError, match="2 sizes .*pass size="):
        read_voc(root, "trainval")
    assert read_voc(root, "trainval", size=8).shape == (3, 8, 8)


REAL = """<annotation verified="no">
\t<folder>VOC2012</folder>
\t<filename>2008_000008.png</filename>
\t<source>
\t\t<database>The VOC2008 Database</database>
\t\t<annotation>PASCAL VOC2008</annotation>
\t\t<image>flickr</image>
\t</source>
\t<size>
\t\t<width>16</width>
\t\t<height>12</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>person</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>1</truncated>
\t\t<occluded>0</occluded>
\t\t<bndbox>
\t\t\t<xmin>2.5</xmin>
\t\t\t<ymin>1</ymin>
\t\t\t<xmax>9</xmax>
\t\t\t<ymax>12</ymax>
\t\t</bndbox>
\t\t<difficult>0</difficult>
\t\t<part>
\t\t\t<name>head</name>
\t\t\t<bndbox><xmin>3</xmin><ymin>1</ymin><xmax>5</xmax><ymax>3</ymax></bndbox>
\t\t</part>
\t</object>
</annotation>
"""


def test_a_devkit_file_with_parts_and_decimals(root):
    """VOC 2008+ files: <part>s inside an object (not objects themselves), <occluded>, decimal
    coordinates in a few files, attributes on the root (LabelImg writes verified=)."""
    (root / "Annotations" / "2008_000008.xml").write_text(REAL)
    Image.new("RGB", (16, 12)).save(root / "JPEGImages" / "2008_000008.png")
    (root / "ImageSets" / "Main" / "one.txt").write_text("2008_000008\n")
    ds = read_voc(root, "one")
    assert ds.boxes.tolist() == [[1.5, 0, 9, 12]]
    assert ds.classes[int(ds.labels[0])] == "person" and not ds.crowd.any()
