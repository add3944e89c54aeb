"""The autoencoder trained by the same Trainer as the classifiers, through the Reconstruction
task: its loss and PSNR against independent formulas (scikit-image), training on real MNIST,
its own metrics in the progress lines and the report, and exact resume after Ctrl-C."""

import json

import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio

from striate.data import BatchLoader, load_dataset
from striate.engine import Trainer
from striate.errors import ConfigError
from striate.generative import Autoencoder, Reconstruction, psnr
from striate.generative.run import train_autoencoder
from striate.state_file import load_state
from tests.callbacks import CtrlCAt

QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")


def test_psnr_is_scikit_image_s_per_image():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 1, 8, 8, generator=g)
    image = (target + 0.1 * torch.randn(4, 1, 8, 8, generator=g)).clamp(0, 1)
    expected = [
        peak_signal_noise_ratio(t.numpy(), i.numpy(), data_range=1.0)
        for t, i in zip(target, image, strict=True)
    ]
    torch.testing.assert_close(psnr(image, target), torch.tensor(expected, dtype=torch.float32))
    assert psnr(target, target).tolist() == [100.0] * 4  # an exact copy is bounded, not inf


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_the_loss_is_the_formula_of_the_sigmoid_of_the_logits(loss):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 5, 5, generator=g)
    logits = torch.randn(3, 1, 5, 5, generator=g)
    step = Reconstruction(loss).training_step(lambda _: logits, (x, torch.zeros(3)))
    p = torch.sigmoid(logits)
    if loss == "bce":
        expected = -(x * p.log() + (1 - x) * (1 - p).log()).mean()
    else:
        expected = ((p - x) ** 2).mean()
    torch.testing.assert_close(step.loss, expected)
    loss_sum, psnr_sum, n = step.stats.tolist()
    assert n == 3 and loss_sum == pytest.approx(3 * float(expected), rel=1e-6)
    assert psnr_sum == pytest.approx(float(psnr(p, x).sum()), rel=1e-6)


def test_bad_settings_say_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match=r"did you mean 'mse'"):
        Reconstruction("mse2")
    with pytest.raises(ConfigError, match=r"shaped like its input \(2, 1, 4, 4\)"):
        Reconstruction().training_step(lambda x: x.flatten(1), (torch.rand(2, 1, 4, 4),))
    with pytest.raises(ConfigError, match="divisible by 4"):
        Autoencoder((1, 30, 30), hidden=(8, 16), kind="conv")
    with pytest.raises(ConfigError, match="Autoencoder: kind must be one of mlp, conv"):
        Autoencoder(kind="vae")
    with pytest.raises(ConfigError, match="unknown setting.*latnt"):
        train_autoencoder(latnt=3)
    with pytest.raises(ConfigError, match="not a run folder"):
        train_autoencoder(out=tmp_path / "none", resume=True)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_shapes(kind):
    hidden = (8, 16) if kind == "conv" else (64,)
    model = Autoencoder((3, 16, 16), latent=5, hidden=hidden, kind=kind)
    assert model.encode(torch.rand(2, 3, 16, 16)).shape == (2, 5)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 3, 16, 16)


@pytest.fixture(scope="module")
def ae_run(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ae") / "run"
    settings = dict(root=str(shared_data), train_size=2048, test_size=512, epochs=3, lr=3e-3)
    result = train_autoencoder("mnist", out=out, progress=True, **settings, **_fp32())
    return result, out


def _fp32():
    return {"precision": "fp32", "device": "cpu", "batch_size": 64}


def test_the_autoencoder_learns_mnist_through_the_trainer(ae_run):
    result, out = ae_run
    history = result.trainer.history
    assert set(history[0]) >= {"train_loss", "train_psnr", "val_loss", "val_psnr"}
    assert not any("acc" in k for row in history for k in row)
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["val_psnr"] > history[0]["val_psnr"]
    assert (out / "checkpoints" / "last.safetensors").is_file()
    assert (out / "checkpoints" / "best.json").is_file()
    assert "val_loss" in json.loads((out / "checkpoints" / "best.json").read_text())
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_psnr", "val_psnr"} <= set(header) and "train_acc" not in header
    assert (out / "reconstructions.png").stat().st_size > 1000


def test_the_test_psnr_is_the_mean_psnr_of_the_predictions(ae_run, shared_data):
    result, _ = ae_run
    test = load_dataset("mnist", "test", root=shared_data).sample(512, seed=0)
    x = test.images.float() / 255
    with torch.no_grad():
        rebuilt = torch.sigmoid(result.model.eval()(x))
    assert result.test["psnr"] == pytest.approx(float(psnr(rebuilt, x).mean()), rel=1e-5)
    # better than the best constant guess, the mean training image (11.8 dB), by 2 dB
    train = load_dataset("mnist", "train", root=shared_data).sample(2048, seed=0)
    mean = (train.images.float() / 255).mean(0, keepdim=True).expand_as(x)
    assert result.test["psnr"] > float(psnr(mean, x).mean()) + 2.0, result.test


def test_the_report_shows_the_task_s_metrics_and_no_accuracy(ae_run):
    _, out = ae_run
    html = (out / "report.html").read_text()
    assert "test_psnr" in html and "loss and psnr per epoch" in html
    assert "Reconstructions of test images" in html
    assert "accuracy" not in html.lower() and "Confusion" not in html


def test_the_progress_lines_show_psnr_not_accuracy(shared_data, tmp_path, capfd):
    train_autoencoder(
        "mnist", root=str(shared_data), train_size=256, test_size=128, epochs=1, **_fp32()
    )
    err = capfd.readouterr().err
    assert "epoch 1/1" in err and "train_psnr" in err and "val_psnr" in err
    assert "acc" not in err


def test_resume_after_ctrl_c_is_bit_identical_to_the_uninterrupted_run(shared_data, tmp_path):
    settings = dict(root=str(shared_data), train_size=512, test_size=128, epochs=3, **_fp32())
    settings["batch_size"] = 64  # 8 steps per epoch: the cut falls inside epoch 2
    full = train_autoencoder("mnist", out=tmp_path / "full", progress=False, **settings)
    cut = train_autoencoder(
        "mnist", out=tmp_path / "cut", progress=False, callbacks=[CtrlCAt(11)], **settings
    )
    assert cut.trainer.interrupted and cut.trainer.step == 11 and not cut.test
    assert (
        load_state(tmp_path / "cut" / "checkpoints" / "last.safetensors")["trainer"]["step"] == 11
    )
    resumed = train_autoencoder(out=tmp_path / "cut", resume=True, progress=False)
    assert resumed.trainer.step == full.trainer.step == 24
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    untimed = [
        [{k: v for k, v in row.items() if k != "time"} for row in run.trainer.history]
        for run in (full, resumed)
    ]
    assert untimed[0] == untimed[1]
    assert resumed.test == full.test


def test_a_custom_loader_and_the_trainer_alone_work_too(shared_data):
    """The task is all the Trainer needs: a plain BatchLoader of un-normalised images."""
    images = load_dataset("mnist", "train", root=shared_data)[:256]
    torch.manual_seed(0)
    model = Autoencoder(latent=8, hidden=(64,))
    trainer = Trainer(epochs=2, task=Reconstruction("mse"), opt="adam", lr=3e-3, **QUIET)
    loader = BatchLoader(images, 64, device="cpu", seed=0)
    history = trainer.fit(model, loader, BatchLoader(images, 256, shuffle=False, device="cpu"))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    pred = trainer.predict(model, images.images[:4].float() / 255)
    assert pred.shape == (4, 1, 28, 28) and 0 <= float(pred.min()) <= float(pred.max()) <= 1
    assert F.mse_loss(pred, images.images[:4].float() / 255) < 0.25
