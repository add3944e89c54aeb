"""Gatys style transfer and texture synthesis on the VGG-16 HED features, at 32–48 px on the
first two blocks (relu1_1, relu2_1), and the `stylize` command."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from striate.cli.stylize import snapshot_path
from striate.cli.stylize import stylize as stylize_command
from striate.errors import ConfigError, DataError, InputError, StriateError
from striate.synthesis import gatys
from striate.synthesis.colour import rgb_to_yiq
from striate.synthesis.features import vgg_features
from striate.synthesis.gatys import style_targets, stylize, synthesize_texture
from striate.synthesis.images import photograph, read_image, resize_to, save_image

LAYERS = ("relu1_1", "relu2_1")
# L-BFGS without a line search overshoots now and then on such tiny images and shallow layers
# (the loss jumps 10–100× for a step); half steps keep it monotone there
SMALL = dict(content_layers=("relu2_1",), style_layers=LAYERS, progress=False, lr=0.5)


@pytest.fixture(scope="module")
def weights(shared_data) -> Path:
    return shared_data / "weights" / "vgg16-hed.safetensors"


@pytest.fixture(scope="module")
def vgg(weights):
    return vgg_features(LAYERS, weights, pooling="avg")


@pytest.fixture(scope="module")
def content() -> torch.Tensor:
    return resize_to(photograph("chelsea"), 40)  # 27×40


@pytest.fixture(scope="module")
def style(shared_data) -> torch.Tensor:
    return read_image(shared_data / "images" / "starry_night.jpg", 40)


@pytest.fixture(scope="module")
def scream(shared_data) -> torch.Tensor:
    return read_image(shared_data / "images" / "scream.jpg", 40)


class Recorder:
    """The extractor, recording the images it sees (`optimised`: those of optimisation steps);
    raises KeyboardInterrupt at the `interrupt_at`-th step."""

    def __init__(self, extractor, interrupt_at: int | None = None) -> None:
        self.extractor, self.interrupt_at = extractor, interrupt_at
        self.seen: list[torch.Tensor] = []
        self.optimised: list[torch.Tensor] = []

    def to(self, device):
        return self

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append(x.detach().clone())
        if x.requires_grad:
            self.optimised.append(self.seen[-1])
            if len(self.optimised) == self.interrupt_at:
                raise KeyboardInterrupt
        return self.extractor(x)


def _gram(f: torch.Tensor) -> torch.Tensor:
    """F Fᵀ / (C·H·W), written out (independent of losses.gram_matrix)."""
    c = f.shape[1]
    m = f[0].reshape(c, -1).double()
    return (m @ m.T / m.numel()).unsqueeze(0)


def _style_distance(extractor, image: torch.Tensor, style: torch.Tensor) -> float:
    """Mean over layers of the relative squared Gram difference."""
    f, s = extractor(image), extractor(style)
    total = 0.0
    for layer in LAYERS:
        a = _gram(s[layer])
        total += float((_gram(f[layer]) - a).square().mean() / a.square().mean())
    return total / len(LAYERS)


def _content_distance(extractor, image: torch.Tensor, content: torch.Tensor) -> float:
    return float((extractor(image)["relu2_1"] - extractor(content)["relu2_1"]).square().mean())


def test_stylize_moves_toward_the_style_and_keeps_the_content(vgg, content, style):
    with torch.no_grad():
        before = _style_distance(vgg, content, style)
    out = stylize(content, style, extractor=vgg, steps=25, **SMALL)
    assert out.image.shape == content.shape and not out.interrupted
    assert len(out.history) == 25 and set(out.history[0]) == {"content", "style", "tv", "loss"}
    assert out.history[-1]["loss"] < out.history[0]["loss"]
    with torch.no_grad():
        after = _style_distance(vgg, out.image, style)
        kept = _content_distance(vgg, out.image, content)
        painting = _content_distance(vgg, resize_to(style, tuple(content.shape[-2:])), content)
    assert after < before / 3
    assert kept < painting / 2


@pytest.mark.parametrize("init", ["content", "style", "noise"])
def test_init(vgg, content, style, init):
    rec = Recorder(vgg)
    stylize(content, style, extractor=rec, steps=1, init=init, seed=3, **SMALL)
    first = rec.optimised[0]
    hw = tuple(content.shape[-2:])
    expected = {
        "content": content,
        "style": resize_to(style, hw),
        "noise": torch.rand((1, 3, *hw), generator=torch.Generator().manual_seed(3)),
    }[init]
    torch.testing.assert_close(first, expected)


def test_style_targets_are_the_grams_of_the_style(vgg, style, scream):
    hw = (27, 40)
    got = style_targets([style], vgg, LAYERS, hw)
    f = vgg(resize_to(style, 40))
    for layer in LAYERS:
        torch.testing.assert_close(got[layer].double(), _gram(f[layer]), rtol=1e-5, atol=1e-6)
    # two styles weighted (1, 0) are the first one alone; (1, 3) a weighted mean
    one_zero = style_targets([style, scream], vgg, LAYERS, hw, style_weights=[1, 0])
    mixed = style_targets([style, scream], vgg, LAYERS, hw, style_weights=[1, 3])
    other = style_targets([scream], vgg, LAYERS, hw)
    for layer in LAYERS:
        torch.testing.assert_close(one_zero[layer], got[layer])
        torch.testing.assert_close(mixed[layer], (got[layer] + 3 * other[layer]) / 4)


def test_style_scale_resizes_the_style_relative_to_the_content(vgg, style):
    hw = (27, 40)
    half = style_targets([style], vgg, LAYERS, hw, style_scale=0.5)
    f = vgg(resize_to(style, 20))  # the longer side: 0.5 × 40
    for layer in LAYERS:
        torch.testing.assert_close(half[layer].double(), _gram(f[layer]), rtol=1e-5, atol=1e-6)
    full = style_targets([style], vgg, LAYERS, hw)
    assert not torch.allclose(half["relu1_1"], full["relu1_1"], rtol=1e-2)


def test_two_styles_weighted_one_zero_paint_as_the_first_alone(vgg, content, style, scream):
    alone = stylize(content, style, extractor=vgg, steps=3, **SMALL)
    blended = stylize(content, [style, scream], style_weights=[1, 0], extractor=vgg, steps=3,
                      **SMALL)  # fmt: skip
    torch.testing.assert_close(blended.image, alone.image, rtol=0, atol=1e-5)


def test_preserve_colour_keeps_the_content_colours(vgg, content, style):
    rec = Recorder(vgg)
    out = stylize(content, style, extractor=rec, steps=5, preserve_colour=True, **SMALL)
    steps = {id(x) for x in rec.optimised}
    targets_and_start = [x for x in rec.seen if id(x) not in steps] + rec.optimised[:1]
    for x in targets_and_start:  # luminance only: three equal channels
        torch.testing.assert_close(x[:, 0], x[:, 1], rtol=0, atol=0)
        torch.testing.assert_close(x[:, 0], x[:, 2], rtol=0, atol=0)
    yiq, ref = rgb_to_yiq(out.image.double()), rgb_to_yiq(content.double())
    inside = ((out.image > 0.002) & (out.image < 0.998)).all(1)  # not clipped to the RGB cube
    assert inside.float().mean() > 0.5
    for c in (1, 2):
        torch.testing.assert_close(yiq[:, c][inside], ref[:, c][inside], rtol=0, atol=2e-3)
    assert float((yiq[:, 0] - ref[:, 0]).abs().mean()) > 0.01  # the luminance did change


def test_coarse_to_fine(vgg, content, style):
    rec = Recorder(vgg)
    out = stylize(content, style, extractor=rec, steps=2, scales=2, **SMALL)
    assert out.image.shape == content.shape and len(out.history) == 4
    sizes = [tuple(x.shape[-2:]) for x in rec.optimised]
    assert sizes[0] == (14, 20) and sizes[-1] == (27, 40)


def test_snapshots_every_n_steps(vgg, content, style):
    got = []
    stylize(content, style, extractor=vgg, steps=4, every=2,
            on_snapshot=lambda k, im: got.append((k, im.shape)), **SMALL)  # fmt: skip
    assert got == [(2, content.shape), (4, content.shape)]


@pytest.mark.parametrize("scales", [1, 2])
def test_ctrl_c_returns_the_last_image(vgg, content, style, scales):
    rec = Recorder(vgg, interrupt_at=3)
    out = stylize(content, style, extractor=rec, steps=5, scales=scales, **SMALL)
    assert out.interrupted and len(out.history) == 2
    assert out.image.shape == content.shape


def test_texture_from_noise_matches_the_source_grams(vgg, shared_data):
    source = resize_to(photograph("brick"), 40)
    rec = Recorder(vgg)
    out = synthesize_texture(source, (32, 48), layers=LAYERS, extractor=rec, steps=20, seed=1,
                             progress=False)  # fmt: skip
    assert out.image.shape == (1, 3, 32, 48)
    start = rec.optimised[0]
    assert start.std() > 0.01  # noise, around the source's mean colour
    torch.testing.assert_close(start.mean((2, 3)), source.mean((2, 3)), rtol=0, atol=0.01)
    with torch.no_grad():
        before = _style_distance(vgg, start, source)
        after = _style_distance(vgg, out.image, source)
    assert after < before / 10


def test_bad_input(vgg, weights, content, style):
    with pytest.raises(ConfigError, match="no layer 'relu9_1'"):
        stylize(content, style, weights=weights, style_layers=("relu9_1",), progress=False)
    with pytest.raises(ConfigError, match="gives no relu3_1"):
        stylize(content, style, extractor=vgg, style_layers=("relu3_1",),
                content_layers=("relu2_1",), progress=False)  # fmt: skip
    with pytest.raises(InputError, match="1×3×H×W or 3×H×W"):
        stylize(content[0, 0], style, extractor=vgg, **SMALL)
    with pytest.raises(InputError, match="one RGB image"):
        stylize(content.expand(2, -1, -1, -1), style, extractor=vgg, **SMALL)
    with pytest.raises(InputError, match="values in 0–1"):
        stylize(content * 255, style, extractor=vgg, **SMALL)
    with pytest.raises(InputError, match="too small"):
        stylize(content[..., :1, :1], style, extractor=vgg, **SMALL)
    with pytest.raises(ConfigError, match="one style weight per style"):
        stylize(content, [style, style], style_weights=[1], extractor=vgg, **SMALL)
    with pytest.raises(ConfigError, match="init must be one of"):
        stylize(content, style, init="contnet", extractor=vgg, **SMALL)
    with pytest.raises(ConfigError, match="size must be a positive integer"):
        synthesize_texture(style, 0, extractor=vgg, layers=LAYERS, progress=False)


# --------------------------------------------------------------------------- the command


@pytest.fixture
def cli(tmp_path, content, style, weights):
    """A Typer app with the command, image files, and the VGG cut to two blocks (fast)."""
    save_image(content, tmp_path / "cat.png")
    save_image(style, tmp_path / "starry.png")
    app = typer.Typer()
    app.command()(stylize_command)

    def invoke(*args: str):
        base = [str(tmp_path / "cat.png"), str(tmp_path / "starry.png"), "--weights",
                str(weights), "--size", "32", "--device", "cpu"]  # fmt: skip
        return CliRunner().invoke(app, [*base, *args])

    return invoke


@pytest.fixture
def shallow(monkeypatch, weights):
    """stylize's default layers cut to the first two blocks."""
    real = gatys.stylize

    def fast(*args, **kwargs):
        return real(*args, content_layers=("relu2_1",), style_layers=LAYERS, **kwargs)

    monkeypatch.setattr(gatys, "stylize", fast)


def test_cli_writes_the_image_and_snapshots(cli, shallow, tmp_path):
    out = tmp_path / "out" / "cat.png"
    r = cli("--steps", "2", "--every", "1", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert read_image(out).shape[-2:] == (22, 32)
    assert snapshot_path(out, 1).name == "cat.step0001.png" and snapshot_path(out, 1).is_file()
    assert snapshot_path(out, 2).is_file()
    assert f"wrote {out}" in r.output.replace("\n", "")
    r = cli("--steps", "1", "--out", str(out))  # exists: refused before any work
    assert isinstance(r.exception, StriateError) and "--overwrite" in str(r.exception)
    r = cli("--steps", "1", "--out", str(out), "--overwrite")
    assert r.exit_code == 0, r.output


def test_cli_ctrl_c_saves_the_last_image(cli, shallow, tmp_path, monkeypatch, vgg):
    monkeypatch.setattr(gatys, "vgg_features", lambda *a, **k: Recorder(vgg, interrupt_at=3))
    out = tmp_path / "stopped.png"
    r = cli("--steps", "10", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "stopped at step 2" in r.output and out.is_file()


def test_cli_defaults_are_the_functions():
    cli_defaults = inspect.signature(stylize_command).parameters
    for name, value in inspect.signature(stylize).parameters.items():
        if name in cli_defaults and name not in ("content", "styles"):
            assert cli_defaults[name].default == value.default, name


def test_cli_bad_input(cli, shallow, tmp_path):
    r = cli("--steps", "1", "--out", str(tmp_path / "x.png"), "--style-blend", "1,2")
    assert isinstance(r.exception, ConfigError) and "1 comma-separated" in str(r.exception)
    r = cli("--out", str(tmp_path / "x.gif"))
    assert isinstance(r.exception, StriateError) and ".png or .jpg" in str(r.exception)
    app = typer.Typer()
    app.command()(stylize_command)
    r = CliRunner().invoke(app, [str(tmp_path / "missing.png"), str(tmp_path / "s.png")])
    assert isinstance(r.exception, DataError) and "missing.png" in str(r.exception)


@pytest.mark.slow
def test_default_layers_all_move_toward_the_style(weights, style):
    """With each layer's loss relative to its target, the deep layers count too. (On the HED
    weights relu1_1's Gram entries are ~10⁴× relu5_1's; with equal absolute layer weights the
    same 40 steps leave relu3_1–relu5_1 farther from the style than the photograph was.)"""
    vgg = vgg_features([*gatys.STYLE_LAYERS, *gatys.CONTENT_LAYERS], weights, pooling="avg")
    content = resize_to(photograph("astronaut"), 96)
    out = stylize(content, style, extractor=vgg, steps=40, progress=False)
    s = vgg(resize_to(style, 96))

    def distances(x: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            f = vgg(x)
        return {
            layer: float((_gram(f[layer]) - _gram(s[layer])).square().mean())
            / float(_gram(s[layer]).square().mean())
            for layer in gatys.STYLE_LAYERS
        }

    before, after = distances(content), distances(out.image)
    for layer in gatys.STYLE_LAYERS:
        assert after[layer] < before[layer] / 2, (layer, before, after)
