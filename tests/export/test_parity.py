"""Every format against independent references: eager PyTorch on the same images, onnxruntime
reading the file itself, at batch sizes 1, 7 and 64; metadata read back from each file."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from striate.export import ParityError, export_model, load_exported
from striate.export.parity import batches

FILES = {"onnx": "m.onnx", "torchscript": "m.pt", "exported": "m.pt2"}


@pytest.fixture(scope="module")
def exports(tmp_path_factory, classifier, digits_images):
    folder = tmp_path_factory.mktemp("exports")
    reports = {}
    for fmt, name in FILES.items():
        reports[fmt] = export_model(
            classifier, folder / name, fmt, images=digits_images, inputs="digits", source="test"
        )
    return folder, reports


@pytest.mark.parametrize("fmt", list(FILES))
@pytest.mark.parametrize("n", [1, 7, 64])
def test_loaded_export_matches_eager_at_every_batch_size(exports, classifier, fmt, n):
    folder, _ = exports
    model = load_exported(folder / FILES[fmt])
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(n))
    with torch.no_grad():
        want = classifier(x)
    got = model(x)
    assert got.shape == (n, 10)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", [1, 7, 64])
def test_onnx_batch_is_dynamic_in_onnxruntime_itself(exports, classifier, n):
    folder, _ = exports
    model = onnx.load(str(folder / "m.onnx"))
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # named, not fixed
    session = ort.InferenceSession(str(folder / "m.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(n).random((n, 1, 8, 8), dtype=np.float32)
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        want = classifier(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fmt", list(FILES))
def test_metadata_round_trip(exports, classifier, fmt):
    folder, reports = exports
    meta = load_exported(folder / FILES[fmt]).metadata
    assert meta == reports[fmt].metadata
    assert meta["classes"] == list(classifier.classes)
    assert meta["in_shape"] == [1, 8, 8]
    assert meta["mean"] == pytest.approx([0.3]) and meta["std"] == pytest.approx([0.2])
    assert meta["export_format"] == fmt and meta["striate_version"]
    parity = meta["parity"]
    assert parity["batch_sizes"] == [1, 7, 64] and parity["images"] == 16
    assert 0 <= parity["max_abs_diff"] <= parity["tolerance"]


def test_metadata_is_where_other_tools_find_it(exports):
    folder, _ = exports
    props = {p.key: p.value for p in onnx.load(str(folder / "m.onnx")).metadata_props}
    assert json.loads(props["striate"])["classes"][0] == "digit 0"
    for name in ("m.pt", "m.pt2"):
        with zipfile.ZipFile(folder / name) as z:
            found = [n for n in z.namelist() if n.endswith("striate.json")]
            assert found, z.namelist()
            assert json.loads(z.read(found[0]))["in_shape"] == [1, 8, 8]


def test_parity_uses_batches_other_than_the_example(digits_images):
    sizes = [len(b) for b in batches(digits_images, (1, 7, 64))]
    assert sizes == [1, 7, 64]
    big = batches(digits_images, (64,))[0]
    assert not torch.equal(big[:16], big[16:32])  # repeats are mirrored, not copies


def test_a_difference_over_the_tolerance_writes_nothing(tmp_path, classifier, digits_images):
    with pytest.raises(ParityError, match="differs from eager PyTorch"):
        export_model(classifier, tmp_path / "m.onnx", "onnx", images=digits_images,
                     tolerance=1e-12)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_pt2_loading_refuses_the_pickle_fallback(monkeypatch, exports):
    from striate.errors import DataError
    from striate.export import program

    folder, _ = exports
    calls = []
    original = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    program.load(folder / "m.pt2")
    assert all(w is True for w in calls)
    with program._weights_only(), pytest.raises(DataError, match="only pickle"):
        torch.load(folder / "m.pt2", weights_only=False)
