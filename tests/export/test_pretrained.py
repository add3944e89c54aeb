"""The real thing: EfficientNet-Lite0's ImageNet weights exported to ONNX and checked on photos."""

from __future__ import annotations

import pytest
import torch

from striate.export import export_model, load_exported
from striate.export.samples import sample_images


@pytest.mark.slow
def test_efficientnet_lite0_onnx_on_photos(tmp_path, shared_data):
    from striate.data.folder import decode_image
    from striate.models.io import pretrained

    clf = pretrained("efficientnet_lite0")
    photos = [
        decode_image(p.read_bytes(), None) for p in sorted((shared_data / "images").glob("*.jpg"))
    ]
    x, inputs = sample_images(clf, images=photos)
    report = export_model(clf, tmp_path / "e.onnx", "onnx", images=x, inputs=inputs)
    assert report.parity.max_abs_diff < 1e-3 and report.parity.top1_agreement == 1
    model = load_exported(tmp_path / "e.onnx")
    assert len(model.classes) == 1000 and model.metadata["crop"] == pytest.approx(0.875)
    with torch.no_grad():
        torch.testing.assert_close(model(x), clf(x), atol=1e-3, rtol=1e-4)
