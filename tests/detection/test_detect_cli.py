"""`striate detect train|eval|predict` on a tiny scene folder (a few steps), and one line with
exit status 2 for each bad input."""

from __future__ import annotations

import json

import typer
from PIL import Image
from tests.detection.test_run import scenes_folder  # noqa: F401  (the fixture)

from striate import models
from striate.cli import detect
from striate.errors import StriateError
from striate.models.io import save_model

app = typer.Typer()
app.add_typer(detect.app, name="detect")


def run(capsys, *args: str) -> tuple[int, str, str]:
    """The command's exit status and output, user errors as `striate`'s main reports them."""
    try:
        app(args=list(args), prog_name="striate", standalone_mode=False)
        code = 0
    except StriateError as e:
        print(f"error: {e}")
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


TINY = ("--epochs", "1", "--batch-size", "16", "-o", "widths=[8,16,16]", "--no-progress",
        "--device", "cpu")  # fmt: skip


def test_train_eval_predict(capsys, scenes_folder, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    code, printed, _ = run(
        capsys, "detect", "train", "--data", str(scenes_folder), "--out", str(out), *TINY
    )
    assert code == 0, printed
    assert "COCO mAP" in printed and "mAP@0.5" in printed and (out / "eval.json").is_file()
    trained = json.loads((out / "eval.json").read_text())["summary"]
    code, printed, _ = run(capsys, "detect", "eval", str(out), "--device", "cpu")
    assert code == 0, printed
    saved = json.loads((out / "eval.json").read_text())
    coco = saved["coco"]
    assert f"COCO mAP {coco['map']:.4f}, mAP@0.5 {coco['map_50']:.4f}" in printed
    for fact in ("train_seconds", "epochs", "steps"):  # the training's facts stay
        assert saved["summary"][fact] == trained[fact], fact
    image = tmp_path / "scene.png"
    Image.open(next((scenes_folder / "test").iterdir())).save(image)
    code, printed, _ = run(capsys, "detect", "predict", str(out), str(image), "--threshold", "0")
    assert code == 0, printed
    assert f"{image}:" in printed and (out / "predictions" / "scene.png").stat().st_size > 1000
    code, printed, _ = run(capsys, "detect", "predict", str(out), str(image))
    assert code == 2 and "already holds results" in printed


def test_bad_input_is_one_line(capsys, scenes_folder, tmp_path):  # noqa: F811
    def error(*args: str) -> str:
        code, printed, _ = run(capsys, *args)
        assert code == 2, printed
        assert printed.startswith("error: ") and len(printed.strip().splitlines()) == 1, printed
        return printed

    assert "no data folder" in error("detect", "train", "--data", str(tmp_path / "nope"),
                                     "--out", str(tmp_path / "a"), *TINY)  # fmt: skip
    bad_model = ("--out", str(tmp_path / "b"), "--model", "yolo")
    assert "unknown detector 'yolo'" in error(
        "detect", "train", "--data", str(scenes_folder), *bad_model
    )
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert "--overwrite" in error("detect", "train", "--data", str(scenes_folder),
                                  "--out", str(tmp_path / "taken"), *TINY)  # fmt: skip
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    classifier = models.create("mlp", num_classes=10, in_shape=(1, 8, 8), hidden=[4])
    save_model(
        tmp_path / "cls" / "model", classifier, classes=list("0123456789"), in_shape=(1, 8, 8)
    )
    assert "not a detection run" in error("detect", "eval", str(tmp_path / "cls"))
    assert "not a detection run" in error("detect", "predict", str(tmp_path / "cls"), "x.png")
    assert "no run folder" in error("detect", "eval", str(tmp_path / "missing"))


def test_help_names_the_detectors(capsys):
    code, printed, _ = run(capsys, "detect", "train", "--help")
    assert code == 0 and "two-stage" in printed


def test_the_commands_defaults_are_the_jobs():
    import inspect

    from striate.detection.run import DetectorConfig

    defaults = {k: p.default for k, p in inspect.signature(detect.train).parameters.items()}
    config = DetectorConfig()
    for name in ("model", "epochs", "batch_size", "lr", "augment", "seed", "device"):
        assert defaults[name] == getattr(config, name), name
