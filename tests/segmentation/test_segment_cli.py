"""`striate segment train|eval|predict` end to end on a tiny COCO folder of digit scenes (written
by write_coco, read back by read_coco), and the bad inputs, each one line."""

import json

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from striate.cli.segment import app as segment_app
from striate.data.coco import write_coco
from striate.errors import ConfigError, DataError, StriateError
from striate.segmentation.figures import palette
from striate.segmentation.run import load_segmenter


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(segment_app, name="segment")
    return app


def run(app, *args):
    return CliRunner().invoke(app, ["segment", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def folder(scenes, tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    for split, ds in zip(("train", "test"), scenes, strict=True):
        write_coco(ds, root / "annotations" / f"instances_{split}.json", root / split)
    return root


TINY = ["--model", "unet", "-o", "base=4", "-o", "depth=2", "--epochs", 1, "--batch-size", 8]
TINY += ["--val-size", 8, "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(app, folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "unet"
    result = run(app, "train", "--data", folder, *TINY, "--out", out)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


def test_train_writes_a_run_with_the_test_miou(trained, scenes):
    out, printed = trained
    assert "test: mIoU " in printed and f"model: {out / 'model'}" in printed
    for name in ("overlays.png", "confusion.png", "iou.png", "report.html", "metrics.json"):
        assert (out / name).stat().st_size > 1000, name
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["classes"] == ["background", *"0123456789"]
    assert np.array(summary["confusion"]).sum() == 12 * 32 * 32  # every test pixel, once
    model = json.loads((out / "model" / "model.json").read_text())
    assert model["architecture"]["name"] == "unet" and model["normalization"]["mean"]
    assert model["metrics"]["test_miou"] == pytest.approx(summary["test"]["miou"])
    assert "Test images: image | truth | prediction" in (out / "report.html").read_text()


def test_eval_repeats_the_test_numbers(app, trained):
    out, _ = trained
    result = run(app, "eval", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    miou = json.loads((out / "metrics.json").read_text())["test"]["miou"]
    assert f"mIoU {miou:.4f}" in result.output
    assert "IoU background" in result.output.replace("  ", " ").replace("  ", " ")


def test_predict_writes_overlays_and_class_maps(app, trained, scenes, tmp_path):
    out, _ = trained
    image = scenes[1].images[0].permute(1, 2, 0).numpy()
    Image.fromarray(image).save(tmp_path / "scene.png")
    Image.fromarray(image[:20, :27]).save(tmp_path / "odd.png")  # any size
    dest = tmp_path / "pred"
    result = run(app, "predict", out, tmp_path / "scene.png", tmp_path / "odd.png", "--out", dest)
    assert result.exit_code == 0, result.output + repr(result.exception)
    classes = Image.open(dest / "scene_classes.png")
    assert classes.mode == "P" and classes.size == (32, 32)
    assert classes.getpalette()[: 3 * 11] == palette(11).reshape(-1).tolist()
    segmenter = load_segmenter(out)
    expected = segmenter.predict(scenes[1].images[:1])[0]
    assert np.array_equal(np.asarray(classes), expected.numpy())
    assert Image.open(dest / "odd_classes.png").size == (27, 20)
    assert (dest / "scene.png").stat().st_size > 1000
    again = run(app, "predict", out, tmp_path / "scene.png", "--out", dest)
    assert isinstance(again.exception, ConfigError) and "--overwrite" in str(again.exception)
    assert (
        run(app, "predict", out, tmp_path / "scene.png", "--out", dest, "--overwrite").exit_code
        == 0
    )


def _error(result, kind):
    assert isinstance(result.exception, kind), (result.output, repr(result.exception))
    message = str(result.exception)
    assert "\n" not in message
    return message


def test_bad_inputs_are_one_line(app, folder, trained, tmp_path):
    out, _ = trained
    missing = _error(run(app, "train", "--data", tmp_path / "nowhere", *TINY), DataError)
    assert "no data folder" in missing
    (tmp_path / "empty").mkdir()
    assert "has no annotations" in _error(
        run(app, "train", "--data", tmp_path / "empty", *TINY), DataError
    )
    assert "did you mean 'unet'" in _error(
        run(app, "train", "--data", folder, "--model", "unett", "--out", tmp_path / "r"),
        ConfigError,
    )
    assert "not a segmentation network" in _error(
        run(app, "train", "--data", folder, "--model", "resnet20", "--out", tmp_path / "r"),
        ConfigError,
    )
    assert not (tmp_path / "r").exists()  # nothing made for a refused run
    taken = _error(run(app, "train", "--data", folder, *TINY, "--out", out), ConfigError)
    assert "already holds results" in taken and (out / "model" / "model.json").is_file()
    assert "give --data" in _error(run(app, "train"), ConfigError)
    assert "no model at" in _error(run(app, "eval", tmp_path / "empty"), StriateError)
    other = tmp_path / "classifier" / "model"
    other.mkdir(parents=True)
    spec = {"name": "convnet_small", "num_classes": 10, "in_shape": [3, 32, 32]}
    info = {"format": "striate-model/1", "architecture": spec, "classes": list("0123456789"),
            "normalization": {"mean": [0.5] * 3, "std": [0.2] * 3}}  # fmt: skip
    (other / "model.json").write_text(json.dumps(info))
    assert "is not a segmentation run" in _error(
        run(app, "predict", other.parent, tmp_path / "x.png", "--out", tmp_path / "p"),
        StriateError,
    )
    assert "cannot read" in _error(
        run(app, "predict", out, tmp_path / "x.png", "--out", tmp_path / "p2"), DataError
    )


def test_a_run_stopped_by_ctrl_c_resumes_to_the_same_model(app, folder, trained, tmp_path):
    """The run re-reads its settings and data from config.json and ends where the uninterrupted
    CLI run ended: the same weights and test numbers."""
    from safetensors.torch import load_file

    from striate.segmentation.run import train_segmenter
    from tests.callbacks import CtrlCAt

    out, _ = trained
    settings = dict(model="unet", model_options={"base": 4, "depth": 2}, epochs=1, batch_size=8)
    settings.update(val_size=8, device="cpu", progress=False)
    cut = train_segmenter(folder, out=tmp_path / "cut", callbacks=[CtrlCAt(2)], **settings)
    assert cut.trainer.interrupted and cut.trainer.step == 2 and not cut.test
    with pytest.raises(StriateError, match="--resume"):
        load_segmenter(tmp_path / "cut")
    resumed = train_segmenter(out=tmp_path / "cut", resume=True, progress=False)
    assert resumed.trainer.step == 4
    a = load_file(str(out / "model" / "weights.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    summary = json.loads((out / "metrics.json").read_text())
    assert resumed.test == pytest.approx(summary["test"])


def test_the_command_s_defaults_are_the_config_s():
    import inspect

    from striate.cli.segment import train
    from striate.segmentation.run import SegmentationConfig

    config = SegmentationConfig()
    for name, p in inspect.signature(train).parameters.items():
        if name in SegmentationConfig.__dataclass_fields__ and name != "data":
            assert p.default == getattr(config, name), name
