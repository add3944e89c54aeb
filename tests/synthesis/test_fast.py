"""Fast style transfer: the network keeps any size, blends styles by averaging γ and β, trains
against the perceptual loss through the engine (the loss against losses.py's batch formulas; a
few steps lower it on held-out photographs; resume continues exactly), round-trips through its
file; the crops against torch's resize; the CLI's bad inputs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import typer
from typer.testing import CliRunner

from striate.cli.fast_style import apply, train_fast
from striate.engine.callbacks import Callback
from striate.errors import ConfigError, DataError, InputError
from striate.synthesis.fast import (
    CropLoader,
    PerceptualTask,
    TransformerNet,
    apply_fast_style,
    load_fast_style,
    save_fast_style,
    style_targets,
    train_fast_style,
)
from striate.synthesis.features import vgg_features
from striate.synthesis.images import photograph, read_image, resize_to, save_image
from striate.synthesis.losses import content_loss, style_loss, total_variation
from striate.synthesis.normalization import ConditionalInstanceNorm2d

TINY = {"width": 4, "residual_blocks": 1}
SHALLOW = {"content_layer": "relu1_2", "style_layers": ["relu1_1", "relu1_2"]}


def _random_net(styles: int, seed: int = 0) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet(styles, **TINY)
    with torch.no_grad():  # γ, β start at 1, 0: make the styles differ
        for m in net.modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                m.weight.normal_(1, 0.5)
                m.bias.normal_(0, 0.5)
    return net.eval()


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 17, 23), (1, 3, 5, 3), (3, 3, 1, 9)])
def test_network_keeps_the_size_and_the_range(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    for net, style in ((_random_net(1), None), (_random_net(3), torch.arange(shape[0]) % 3)):
        with torch.no_grad():
            y = net(x, style)
        assert y.shape == x.shape
        assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_blending_two_styles_equals_the_network_with_averaged_gamma_beta():
    net = _random_net(2)
    x = torch.rand(2, 3, 20, 28, generator=torch.Generator().manual_seed(1))
    averaged = copy.deepcopy(net)
    with torch.no_grad():
        for m in averaged.modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                m.weight[:] = m.weight.mean(0)
                m.bias[:] = m.bias.mean(0)
    want = averaged(x, 0)
    torch.testing.assert_close(net(x, torch.tensor([0.5, 0.5])), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(apply_fast_style(net, x, [1, 1]), want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(net(x, 0), net(x, 1), atol=1e-3)  # the styles do differ


def test_save_and_load_give_the_same_outputs(tmp_path):
    net = _random_net(2)
    net.style_names = ["starry", "scream"]
    path = save_fast_style(net, tmp_path / "m.safetensors", size=32)
    loaded = load_fast_style(path)
    assert loaded.style_names == ["starry", "scream"] and loaded.facts == {"size": 32}
    x = torch.rand(1, 3, 19, 21, generator=torch.Generator().manual_seed(2))
    for style in ("starry", "scream", 1, [0.3, 0.7]):
        torch.testing.assert_close(
            apply_fast_style(loaded, x, style), apply_fast_style(net, x, style)
        )
    with pytest.raises(InputError, match="no style 'stary'.*did you mean 'starry'"):
        apply_fast_style(loaded, x, "stary")
    with pytest.raises(InputError, match="give 2 blending weights"):
        apply_fast_style(loaded, x, [1.0])


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda b: b[: len(b) // 2], "unreadable or truncated"),
        (lambda b: b"not a model at all", "unreadable or truncated"),
    ],
)
def test_a_damaged_model_file_is_one_clear_line(tmp_path, damage, match):
    path = save_fast_style(_random_net(1), tmp_path / "m.safetensors")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=match) as e:
        load_fast_style(path)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="no fast-style model"):
        load_fast_style(tmp_path / "missing.safetensors")


def test_crops_of_whole_images_are_torch_resizes_and_batches_replay():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8, generator=g)
    loader = CropLoader(images, None, size=16, batch_size=6, styles=3, steps=4, seed=1)
    batches = list(loader)
    assert len(batches) == 4
    x, s = batches[0]
    assert x.shape == (6, 3, 16, 16) and s.dtype == torch.int64 and int(s.max()) < 3
    up = F.interpolate(images.float() / 255, size=16, mode="bilinear", align_corners=False)
    for crop in x:  # each crop is one image upsampled whole, or its mirror image
        d = torch.stack([(crop - u).abs().max() for u in [*up, *up.flip(-1)]])
        assert float(d.min()) < 1e-5
    # a state taken mid-epoch resumes with the same batches
    loader = CropLoader(images, None, size=16, batch_size=6, styles=3, steps=4, seed=1)
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    again = CropLoader(images, None, size=16, batch_size=6, styles=3, steps=4, seed=0)
    again.load_state_dict(state)
    for (a, sa), (b, sb) in zip(batches[1:], again, strict=True):
        torch.testing.assert_close(a, b)
        assert torch.equal(sa, sb)


def test_photograph_crops_lie_inside_the_tile():
    tile = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    tile[..., 16:48, 16:48] = 255  # a white square: a crop of side ≥ 32 px around it sees it
    loader = CropLoader(None, tile, size=32, batch_size=8, styles=1, steps=1)
    x, _ = next(iter(loader))
    assert 0 < float(x.mean()) < 1


@pytest.fixture(scope="module")
def vgg(shared_data):
    return vgg_features(["relu1_1", "relu1_2"], shared_data / "weights" / "vgg16-hed.safetensors")


def test_perceptual_terms_equal_the_batch_losses(vgg):
    g = torch.Generator().manual_seed(3)
    styles = [torch.rand(1, 3, 24, 24, generator=g) for _ in range(2)]
    targets = style_targets(vgg, styles, ["relu1_1", "relu1_2"])
    task = PerceptualTask(vgg, targets, content_layer="relu1_2", tv_weight=0.5, style_weight=2)
    y, x = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    for style in (0, 1):
        terms = task.terms(y, x, torch.full((2,), style))
        fy, fx = vgg(y), vgg(x)
        want_c = content_loss(fy["relu1_2"], fx["relu1_2"])
        one = {k: v[style : style + 1] for k, v in targets.items()}
        want_s = 2 * style_loss(fy, one, layer_weights={"relu1_1": 1, "relu1_2": 1})
        torch.testing.assert_close(terms["content"].mean(), want_c, rtol=1e-5, atol=0)
        torch.testing.assert_close(terms["style"].mean(), want_s, rtol=1e-5, atol=0)
        torch.testing.assert_close(terms["tv"], 0.5 * total_variation(y))


class _StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.at = step

    def on_step_end(self, trainer, loss) -> None:
        if trainer.step == self.at:
            trainer.interrupted = True  # as Ctrl-C does


def _settings(tmp_path, shared_data) -> tuple[Path, dict]:
    style = tmp_path / "style.png"
    save_image(resize_to(read_image(shared_data / "images" / "starry_night.jpg"), 48), style)
    settings = dict(
        size=32, steps=30, every=10, batch_size=2, lr=1e-3, data=None, seed=3,
        photographs=["rocket"], held_out=["chelsea"], device="cpu", precision="fp32",
        weights=str(shared_data / "weights" / "vgg16-hed.safetensors"), **TINY, **SHALLOW,
    )  # fmt: skip
    return style, settings


def test_a_few_steps_lower_the_held_out_loss(tmp_path, shared_data):
    style, settings = _settings(tmp_path, shared_data)
    run = train_fast_style([style], tmp_path / "a", progress=False, **settings)
    torch.manual_seed(3)
    fresh = TransformerNet(1, **TINY)  # the initialisation the run started from
    val = [(resize_to(photograph("chelsea")[..., :, 75:375], (32, 32)), torch.zeros(1).long())]
    before = run.trainer.evaluate(fresh, val)["loss"]
    assert run.held_out["held_out_loss"] < 0.7 * before
    assert [h["step"] for h in run.trainer.history] == [10, 20, 30]
    for name in ("model.safetensors", "loss.png", "samples.png", "samples/chelsea-style.png"):
        assert (tmp_path / "a" / name).is_file()
    loaded = load_fast_style(tmp_path / "a")
    x = photograph("chelsea")[..., ::8, ::8]
    torch.testing.assert_close(apply_fast_style(loaded, x), apply_fast_style(run.model, x))
    with pytest.raises(ConfigError, match="already holds results"):
        train_fast_style([style], tmp_path / "a", progress=False, **settings)


@pytest.mark.slow
def test_a_run_stopped_and_resumed_ends_as_the_uninterrupted_one(tmp_path, shared_data):
    style, settings = _settings(tmp_path, shared_data)
    run = train_fast_style([style], tmp_path / "a", progress=False, **settings)
    stopped = train_fast_style(
        [style], tmp_path / "b", progress=False, callbacks=[_StopAt(15)], **settings
    )
    assert stopped.interrupted and stopped.trainer.step == 15
    resumed = train_fast_style([], tmp_path / "b", resume=True, progress=False)
    assert resumed.trainer.step == 30
    for (k, a), b in zip(
        run.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=k)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"held_out": ["chelsea"], "photographs": ["chelsea"]}, "both trained on and held out"),
        ({"photographs": ["chelsee"]}, "did you mean 'chelsea'"),
        ({"steps": 0}, "steps must be"),
        ({"size": 8}, "at least 16"),
        ({"colour": 1}, "unknown setting"),
    ],
)
def test_bad_training_settings(settings, match):
    with pytest.raises(ConfigError, match=match):
        train_fast_style([torch.rand(1, 3, 8, 8)], None, data=None, **settings)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("train-fast")(train_fast)
    app.command("apply")(apply)
    return app


def test_cli_apply_writes_each_style_and_refuses_to_overwrite(tmp_path):
    net = _random_net(2)
    net.style_names = ["a", "b"]
    model = save_fast_style(net, tmp_path / "run" / "model.safetensors")
    image = save_image(torch.rand(1, 3, 13, 17), tmp_path / "photo.png")
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(_cli(), ["apply", str(model), str(image), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["photo-a.png", "photo-b.png"]
    assert read_image(out / "photo-a.png").shape == (1, 3, 13, 17)
    result = runner.invoke(_cli(), ["apply", str(model), str(image), "--out", str(out)])
    assert isinstance(result.exception, ConfigError) and "pass --overwrite" in str(result.exception)
    args = ["apply", str(model), str(image), "--out", str(out), "--blend", "1,1"]
    assert runner.invoke(_cli(), args).exit_code == 0
    assert (out / "photo-blend-1-1.png").is_file()
    for extra, error, match in [
        (["--blend", "0.5,x"], InputError, "--blend takes numbers"),
        (["--blend", "1,1,1"], InputError, "give 2 blending weights"),
        (["--style", "c"], InputError, "no style 'c'"),
        (["--style", "a", "--blend", "1,1"], ConfigError, "not both"),
    ]:
        result = runner.invoke(_cli(), [*args[:5], *extra, "--overwrite"])
        assert isinstance(result.exception, error), (extra, result.output)
        assert match in str(result.exception)
    model.write_bytes(model.read_bytes()[:100])
    result = runner.invoke(_cli(), ["apply", str(model), str(image), "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, DataError) and "truncated" in str(result.exception)


def test_cli_train_fast_refuses_a_full_folder_and_resume_without_out(tmp_path):
    runner = CliRunner()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x").write_text("x")
    style = save_image(torch.rand(1, 3, 8, 8), tmp_path / "s.png")
    result = runner.invoke(_cli(), ["train-fast", str(style), "--out", str(tmp_path / "run")])
    assert isinstance(result.exception, ConfigError) and "--overwrite" in str(result.exception)
    result = runner.invoke(_cli(), ["train-fast", str(style), "--resume"])
    assert isinstance(result.exception, ConfigError) and "--resume needs --out" in str(
        result.exception
    )


@pytest.mark.slow
def test_a_longer_training_puts_the_style_on_a_held_out_photograph(tmp_path, shared_data):
    """Starry Night at 64 px for 300 steps: the held-out photographs' style distance falls well
    below the photographs' own, and the content stays closer than the style image's."""
    starry = shared_data / "images" / "starry_night.jpg"
    run = train_fast_style(
        [starry], tmp_path / "run", progress=False, size=64, steps=300, every=100,
        width=16, residual_blocks=3, data=None, device="cpu",
    )  # fmt: skip
    task = run.trainer.task
    val = [
        (resize_to(photograph(n), (64, 64)), torch.zeros(1).long()) for n in ("chelsea", "coffee")
    ]
    for x, s in val:
        y = apply_fast_style(run.model, x)
        stylised = task.terms(y, x, s)
        untouched = task.terms(x, x, s)
        style_image = task.terms(resize_to(read_image(starry), (64, 64)), x, s)
        assert float(stylised["style"]) < 0.3 * float(untouched["style"])
        assert float(stylised["content"]) < float(style_image["content"])


@pytest.mark.slow
def test_cli_trains_then_applies(tmp_path, shared_data):
    runner = CliRunner()
    style = shared_data / "images" / "scream.jpg"
    args = ["train-fast", str(style), "--out", str(tmp_path / "run"), "--size", "16"]
    args += ["--steps", "2", "--width", "4", "--residual-blocks", "1", "--data", "none"]
    result = runner.invoke(_cli(), [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "held-out photographs: loss" in result.output
    model = tmp_path / "run" / "model.safetensors"
    photo = save_image(photograph("coffee")[..., ::4, ::4], tmp_path / "coffee.png")
    result = runner.invoke(_cli(), ["apply", str(model), str(photo), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "o" / "coffee-scream.png").shape == (1, 3, 100, 150)
