"""Bad input to `striate export`: one clear line and status 2 each, no file written."""

from __future__ import annotations

import pytest

from striate.cli.main import main


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in err
    return err


def test_a_run_exports_and_reports_parity(run, capsys):
    assert main(["export", str(run), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "max abs difference" in out and "digits (the run's data)" in out
    assert (run / "model.onnx").is_file()


def test_truncated_weights(run, capsys):
    weights = run / "model" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert "does not hold a readable striate model" in _error(capsys, ["export", str(run)])
    assert not (run / "model.onnx").exists()


def test_garbage_weights(run, capsys):
    (run / "model" / "weights.safetensors").write_bytes(b"\x00garbage" * 50)
    assert "does not hold a readable striate model" in _error(capsys, ["export", str(run)])


def test_garbage_model_json(run, capsys):
    (run / "model" / "model.json").write_text("{not json")
    assert "model.json is damaged" in _error(capsys, ["export", str(run)])


def test_missing_run(tmp_path, capsys):
    assert "no model at" in _error(capsys, ["export", str(tmp_path / "nope")])


def test_unknown_format(run, capsys):
    err = _error(capsys, ["export", str(run), "--format", "onxx"])
    assert "format must be one of onnx, torchscript, exported" in err and "onnx" in err


def test_output_in_a_missing_folder(run, tmp_path, capsys):
    err = _error(capsys, ["export", str(run), "-o", str(tmp_path / "no" / "m.onnx")])
    assert "does not exist" in err


@pytest.mark.parametrize("fmt", ["torchscript", "exported"])
def test_existing_file_needs_overwrite(run, capsys, fmt):
    assert main(["export", str(run), "--format", fmt]) == 0
    capsys.readouterr()
    assert "--overwrite" in _error(capsys, ["export", str(run), "--format", fmt])
    assert main(["export", str(run), "--format", fmt, "--overwrite"]) == 0


def test_run_and_pretrained_together(run, capsys):
    assert "not both" in _error(capsys, ["export", str(run), "--pretrained", "efficientnet_lite0"])


def test_damaged_export_file_is_one_line(tmp_path):
    from striate.errors import DataError
    from striate.export import load_exported

    for name in ("m.onnx", "m.pt", "m.pt2"):
        (tmp_path / name).write_bytes(b"PK\x03\x04 not really")
        with pytest.raises(DataError, match="not a readable"):
            load_exported(tmp_path / name)
