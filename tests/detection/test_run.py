"""The detection job: a run folder with model, metrics, checkpoints, eval.json and pictures; the
saved model reloads and detects as the trained one; `evaluate_detector` repeats the run's
numbers; a stopped run resumes; bad input is one clear line."""

from __future__ import annotations

import json

import pytest
import torch
from tests.callbacks import CtrlCAt
from tests.detection.test_task import tiny_scenes

from striate import models
from striate.data.coco import write_coco
from striate.detection.run import (
    evaluate_detector,
    load_detector,
    predict_detections,
    train_detector,
)
from striate.errors import ConfigError, DataError, InputError
from striate.models.io import save_model
from striate.outputs import OutputExists

TINY = dict(
    epochs=1, batch_size=16, device="cpu", precision="fp32", progress=False,
    model_options={"widths": [8, 16, 16]},
)  # fmt: skip


@pytest.fixture(scope="module")
def scenes_folder(tmp_path_factory):
    """A COCO-layout folder of tiny scenes, as `striate detect scenes` writes one."""
    root = tmp_path_factory.mktemp("scenes")
    for split, n, seed in (("train", 32, 0), ("test", 8, 1)):
        write_coco(
            tiny_scenes(n, seed), root / "annotations" / f"instances_{split}.json", root / split
        )
    return root


@pytest.fixture(scope="module")
def grid_run(scenes_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "grid"
    return train_detector(scenes_folder, out=out, model="grid", **TINY)


def test_the_run_folder_holds_the_model_metrics_and_pictures(grid_run):
    out = grid_run.out
    for name in ("config.json", "metrics.csv", "eval.json", "detections.png", "pr_curves.png",
                 "report.html", "model/model.json", "model/weights.safetensors",
                 "checkpoints/last.safetensors"):  # fmt: skip
        assert (out / name).is_file(), name
    saved = json.loads((out / "eval.json").read_text())
    assert set(saved) >= {"summary", "coco", "voc2007", "voc2010"}
    assert saved["summary"]["coco_map"] == grid_run.test["coco"]["map"]
    assert saved["summary"]["coco_map_50"] == grid_run.test["coco"]["map_50"]
    assert saved["summary"]["test_images"] == 8 and saved["summary"]["train_seconds"] >= 0
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss_objectness", "train_loss_box_reg", "val_map", "val_map_50"} <= set(header)


def test_the_saved_model_detects_as_the_trained_one_and_scores_the_same(grid_run):
    loaded = load_detector(grid_run.out)
    assert loaded.classes == tuple(str(d) for d in range(10))
    x = torch.rand(2, 3, 32, 32)
    a = grid_run.model.eval().detect(x)
    b = loaded.model.detect(x)
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p["scores"], q["scores"])
    again = evaluate_detector(grid_run.out, device="cpu", write=False)
    assert again["coco"]["map"] == pytest.approx(grid_run.test["coco"]["map"], abs=1e-9)
    assert again["voc2007"]["map"] == pytest.approx(grid_run.test["voc2007"]["map"], abs=1e-9)
    image = (torch.rand(20, 28, 1) * 255).to(torch.uint8).numpy()  # grey, another size
    (found,) = predict_detections(loaded, [image], threshold=0.0)
    assert set(found) == {"boxes", "scores", "labels"}
    assert (found["boxes"][:, 2] <= 28).all() and (found["boxes"][:, 3] <= 20).all()


@pytest.mark.parametrize("model", ["grid", pytest.param("two-stage", marks=pytest.mark.slow)])
def test_a_stopped_run_resumes(scenes_folder, tmp_path, model):
    out = tmp_path / model
    options = {**TINY, "model_options": {"widths": [8, 16, 16]}}
    if model == "two-stage":
        options["model_options"]["representation"] = 32
    stopped = train_detector(scenes_folder, out=out, model=model, callbacks=[CtrlCAt(1)], **options)
    assert stopped.trainer.interrupted and not (out / "eval.json").exists()
    resumed = train_detector(out=out, resume=True, progress=False)
    assert resumed.trainer.step == 2 and (out / "eval.json").is_file()
    assert set(resumed.test) == {"coco", "voc2007", "voc2010"}


def test_bad_input_is_one_clear_line(scenes_folder, grid_run, tmp_path):
    with pytest.raises(DataError, match="no data folder at .*striate detect scenes"):
        train_detector(tmp_path / "missing", out=tmp_path / "a", **TINY)
    with pytest.raises(ConfigError, match="unknown detector 'yolo'"):
        train_detector(scenes_folder, out=tmp_path / "b", model="yolo", **TINY)
    with pytest.raises(OutputExists, match="--overwrite"):
        train_detector(scenes_folder, out=grid_run.out, **TINY)
    with pytest.raises(ConfigError, match="unknown setting"):
        train_detector(scenes_folder, out=tmp_path / "c", epoch=3)
    classifier = models.create("mlp", num_classes=10, in_shape=(1, 8, 8), hidden=[4])
    save_model(
        tmp_path / "cls" / "model", classifier, classes=list("0123456789"), in_shape=(1, 8, 8)
    )
    with pytest.raises(InputError, match="not a detection run: its model is mlp"):
        load_detector(tmp_path / "cls")
    with pytest.raises(InputError, match="not a detection run"):
        load_detector(tmp_path)
    (tmp_path / "half" / "annotations").mkdir(parents=True)
    with pytest.raises(DataError, match="has no train split"):
        train_detector(tmp_path / "half", out=tmp_path / "d", **TINY)
