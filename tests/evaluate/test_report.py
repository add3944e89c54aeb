"""The HTML run report: self-contained, parseable, escaped, complete when parts are missing, and
written atomically."""

from __future__ import annotations

import base64
import html
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

import striate.evaluate.report as report
from striate.errors import ConfigError
from striate.evaluate.report import plot_worst, write_report

DATA_URI = "data:image/png;base64,"


class _Page(HTMLParser):
    """Collects tags, attributes, text and table cells of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(k, v or "") for k, v in attrs]
        self._in_cell = tag in ("td", "th")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_cell:
            self.cells.append(data)

    def images(self) -> list[Image.Image]:
        srcs = [v for k, v in self.attrs if k == "src"]
        assert all(s.startswith(DATA_URI) for s in srcs)
        out = []
        for s in srcs:
            img = Image.open(io.BytesIO(base64.b64decode(s[len(DATA_URI) :], validate=True)))
            img.load()
            out.append(img)
        return out


CLASSES = ["<script>", "dog", "ship"]


def _inputs(**changes):
    rng = np.random.default_rng(0)
    args = dict(
        title="Run <b>1</b>",
        config={"model": "resnet20", "lr": 0.1, "note": "<i>x</i>", 5: (1, 2)},
        history=[
            {"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_acc": 0.5, "val_acc": 0.4}
            for e in (1, 2, 3)
        ],
        steps={"step": list(range(20)), "lr": [0.1] * 20, "loss": rng.random(20).tolist()},
        final={"test_acc": 0.9234, "test_loss": 0.3125, "epochs": 3, "lr": np.float32(0.25)},
        classes=CLASSES,
        confusion=np.array([[50, 7, 0], [9, 40, 2], [0, 0, 0]]),
        worst={
            "images": rng.integers(0, 256, (5, 1, 8, 8), dtype=np.uint8),
            "true": [0, 1, 1, 0, 2],
            "pred": [1, 0, 2, 1, 1],
            "loss": [3.5, 2.25, 2.0, 1.5, 1.0],
            "prob": [0.9, 0.8, 0.7, 0.6, 0.5],
        },
    )
    args.update(changes)
    return args


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "run" / "report.html"
    out = write_report(
        path, **_inputs(extra_sections=[("Notes & more", '<p id="extra">trusted</p>')])
    )
    return out, out.read_text(encoding="utf-8")


def test_full_report_is_self_contained(full):
    path, text = full
    assert path.is_file() and path.name == "report.html"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary left
    page = _Page(text)
    links = [v for k, v in page.attrs if k in ("src", "href")]
    assert not [v for v in links if re.match(r"\s*(https?:)?//", v, re.IGNORECASE)]
    assert "link" not in page.tags and "script" not in page.tags
    images = page.images()  # history, steps, confusion, worst images
    assert len(images) == 4
    assert all(img.format == "PNG" and min(img.size) > 100 for img in images)


def test_user_text_is_escaped(full):
    _, text = full
    page = _Page(text)
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert "Run &lt;b&gt;1&lt;/b&gt;" in text and "<b>" not in page.tags
    assert "&lt;i&gt;x&lt;/i&gt;" in text and "i" not in page.tags
    assert "<script>" in page.cells  # shown as text in the per-class and confused tables
    assert "Notes &amp; more" in text and '<p id="extra">trusted</p>' in text  # verbatim html


def test_tables_carry_the_numbers(full):
    page = _Page(full[1])
    cells = page.cells
    for value in ("92.34%", "0.3125", "3", "0.25"):  # accuracies in percent, as the CLI prints them
        assert value in cells
    # per-class accuracy: 50/57, 40/51, and an empty class
    assert f"{50 / 57:.2%}" in cells and f"{40 / 51:.2%}" in cells and "—" in cells
    # most confused pairs in order: dog→<script> 9, <script>→dog 7, dog→ship 2
    i = cells.index("predicted as")
    assert cells[i + 2 : i + 11] == ["dog", "<script>", "9", "<script>", "dog", "7"] + [
        "dog",
        "ship",
        "2",
    ]
    assert '"model": "resnet20"' in "".join(page.text)  # the configuration as JSON
    assert '"5": [' in "".join(page.text)


def test_missing_parts_say_not_available(tmp_path):
    path = write_report(
        tmp_path / "r.html",
        **_inputs(history=[], steps={}, final={}, config={}, confusion=None, worst=None),
    )
    text = path.read_text(encoding="utf-8")
    page = _Page(text)
    assert page.images() == []
    assert text.count("not available") == 7
    assert "<h2>Most confused classes</h2>" in text


def test_no_validation_data_and_no_mistakes(tmp_path):
    history = [{"epoch": e, "train_loss": 1 / e} for e in (1, 2)]
    path = write_report(
        tmp_path / "r.html",
        **_inputs(history=history, confusion=np.diag([3, 4, 5]), worst=None, steps={"lr": []}),
    )
    text = path.read_text(encoding="utf-8")
    assert len(_Page(text).images()) == 2  # history and confusion
    assert "every off-diagonal count is zero" in text


def test_failed_figure_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("the previous report")

    def boom(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(report, "plot_steps", boom)
    with pytest.raises(RuntimeError, match="figure failed"):
        write_report(path, **_inputs())
    assert path.read_text() == "the previous report"
    with pytest.raises(RuntimeError, match="figure failed"):
        write_report(tmp_path / "new.html", **_inputs())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_worst_grid_titles_and_pixels():
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    fig = plot_worst(grey, [0, 1, 2], [1, 2, 0], [2.3456, 1.0, 0.5], [0.9, 0.5, 0.25], CLASSES)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["<script> → dog (2.35)\np=0.90", "dog → ship (1.00)\np=0.50"] + [
        "ship → <script> (0.50)\np=0.25"
    ]
    im = fig.axes[0].images[0]
    np.testing.assert_array_equal(im.get_array(), grey[0, 0])
    assert im.get_interpolation() == "nearest" and im.get_cmap().name == "gray"
    assert im.get_clim() == (0, 255)

    rgb = rng.integers(0, 256, (10, 3, 4, 5), dtype=np.uint8)
    fig = plot_worst(rgb, [7] * 10, [0] * 10, [1.0] * 10, [0.5] * 10, CLASSES)
    assert len(fig.axes) == 16  # 8 columns, 2 rows
    np.testing.assert_array_equal(fig.axes[9].images[0].get_array(), rgb[9].transpose(1, 2, 0))
    assert fig.axes[0].get_title().startswith("7 → <script>")  # unknown index shown as number
    assert len(fig.axes[10].images) == 0


def test_bad_input_gives_config_errors(tmp_path):
    out = tmp_path / "r.html"
    worst = _inputs()["worst"]
    with pytest.raises(ConfigError, match=r"uint8 array N×C×H×W .* float64"):
        write_report(out, **_inputs(worst={**worst, "images": np.zeros((5, 1, 8, 8))}))
    with pytest.raises(ConfigError, match=r"C = 1 or 3, got uint8 of shape \(5, 2, 8, 8\)"):
        images = np.zeros((5, 2, 8, 8), np.uint8)
        write_report(out, **_inputs(worst={**worst, "images": images}))
    with pytest.raises(ConfigError, match=r"worst\['loss'\] has 2 values for 5 images"):
        write_report(out, **_inputs(worst={**worst, "loss": [1.0, 2.0]}))
    with pytest.raises(ConfigError, match=r"missing \['prob'\]"):
        write_report(out, **_inputs(worst={k: v for k, v in worst.items() if k != "prob"}))
    with pytest.raises(ConfigError, match="2 class names for a 3×3"):
        write_report(out, **_inputs(classes=["a", "b"]))
    with pytest.raises(ConfigError, match="is a folder"):
        write_report(tmp_path, **_inputs())
    with pytest.raises(ConfigError, match=r"extra_sections\[0\] must be a \(heading, html\)"):
        write_report(out, **_inputs(extra_sections=["<p>no heading</p>"]))
    with pytest.raises(ConfigError, match="config must be a dict"):
        write_report(out, **_inputs(config=[("lr", 0.1)]))
    with pytest.raises(ConfigError, match="one dict per epoch"):
        write_report(out, **_inputs(history={"epoch": 1}))
    with pytest.raises(ConfigError, match="valid keys are step, lr, momentum, loss"):
        write_report(out, **_inputs(steps={"lrs": [0.1]}))
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_doctor_section_shows_the_error_analysis():
    from striate.evaluate.report import doctor_section
    from striate.train.error_analysis import analyze_errors

    analysis = analyze_errors(human=0.01, train=0.08, train_dev=0.10)
    body = doctor_section({"checks": [], "passed": True, "error_analysis": analysis.to_dict()})
    assert "Error analysis (human-level error 1.00%)" in body
    assert "<td>avoidable bias</td><td>train 8.00% − human 1.00%</td>" in body
    assert '<td class="num">+7.00%</td>' in body and '<td class="num">+2.00%</td>' in body
    assert html.escape(analysis.to_dict()["advice"]) in body
