"""`make synthesis-gallery` (docs/synthesis.py) runs end to end: every section, every picture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_synthesis_gallery_quick_writes_every_figure_and_the_page(tmp_path, shared_data):
    out = tmp_path / "docs" / "synthesis"
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "synthesis.py"), "--quick", "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "STRIATE_SHARED_DATA": str(shared_data)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    page = (tmp_path / "docs" / "synthesis.md").read_text()
    pictures = sorted(out.glob("*.png"))
    assert len(pictures) == 16
    for path in pictures:
        pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
        assert pixels.std() > 10  # a picture, not an empty canvas
        assert f"synthesis/{path.name}" in page
    quality = json.loads((out / "quality.json").read_text())
    assert set(quality) == {"rocket-starry-night", "dahlia-starry-night", "coffee-scream"}
