"""generative.jobs: tiny VAE, DCGAN and PixelCNN runs on real MNIST (a few hundred images, one
epoch): the run folder, loading back, sampling, evaluation against a direct computation, and the
bad inputs, each one line."""

from __future__ import annotations

import json
import math
import shutil

import matplotlib.image
import pytest
import torch
import torch.nn.functional as F

from striate.data import ImageSet, load_dataset
from striate.errors import ConfigError, DataError, InputError
from striate.generative.gan import generate
from striate.generative.grids import grid, save_grid
from striate.generative.jobs import (
    SampleSnapshots,
    binarize,
    evaluate_generative,
    load_generative,
    sample_generative,
    train_generative,
)
from striate.models import create
from striate.models.io import save_model

TINY = dict(train_size=128, test_size=32, epochs=1, batch_size=32, precision="fp32", device="cpu")
OPTIONS = {
    "vae": dict(hidden=[16], latent=3),
    "dcgan": dict(width=4, latent=6),
    "pixelcnn": dict(width=4, blocks=1),
}


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("gen")
    out = {}
    for name, options in OPTIONS.items():
        result = train_generative(
            name, "mnist", out=base / name, progress=False, root=str(shared_data),
            **TINY, **options,
        )  # fmt: skip
        out[name] = result
    return out


def _test_images(shared_data, n: int) -> torch.Tensor:
    """The test split binarised as the docstring states (a pixel v is on when an integer drawn
    uniformly from 0 … 254 with seed 0 + 1 is below v), over the whole split, then the
    evaluation's sample of n images."""
    test = load_dataset("mnist", "test", root=shared_data)
    g = torch.Generator().manual_seed(1)
    draws = torch.randint(0, 255, test.images.shape, generator=g, dtype=torch.uint8)
    bits = (draws < test.images).to(torch.uint8) * 255
    # the subset depends on the labels and the seed only, so the binarised set gives the same one
    return ImageSet(bits, test.labels, test.classes).sample(n, seed=0).images.float() / 255


def test_binarize_keeps_the_mean_and_the_bits_are_static(shared_data):
    test = load_dataset("mnist", "test", root=shared_data)
    a, b = binarize(test, 3), binarize(test, 3)
    assert torch.equal(a.images, b.images) and set(a.images.unique().tolist()) == {0, 255}
    assert not torch.equal(a.images, binarize(test, 4).images)
    # E[bit] = v/255: over 7.8 million pixels the means agree to ~1e-4 (binomial sd 1.4e-4)
    p = test.images.double() / 255
    sd = (p * (1 - p)).sum().sqrt() / p.numel()
    assert abs(a.images.double().mean() / 255 - p.mean()) < 5 * sd


@pytest.mark.parametrize("name,task", [("vae", "vae"), ("dcgan", "gan"), ("pixelcnn", "pixelcnn")])
def test_run_folder_and_model_file(runs, name, task):
    out = runs[name].out
    for f in (
        "config.json",
        "metrics.csv",
        "report.html",
        "samples.png",
        "model/weights.safetensors",
    ):
        assert (out / f).is_file(), f
    over_training = ("samples/epoch-001.png", "samples_over_training.png")
    assert all((out / f).is_file() is (name != "pixelcnn") for f in over_training)
    info = json.loads((out / "model" / "model.json").read_text())
    assert info["format"] == "striate-model/1" and info["task"] == task
    assert info["architecture"]["name"] == name
    assert info["binarize"] is (name != "dcgan")
    # 64 samples of 28 px (PixelCNN 16) in an 8×8 (4×4) grid with 2-pixel borders: 2 + 8·30
    side = 2 + (4 if name == "pixelcnn" else 8) * 30
    assert matplotlib.image.imread(out / "samples.png").shape[:2] == (side, side)


def test_snapshots_each_epoch_and_resume_after_ctrl_c_is_exact(shared_data, tmp_path):
    """A DCGAN (two optimisers) stopped by Ctrl-C inside epoch 2 and resumed ends bit-identical to
    the uninterrupted run; each epoch's grid is the model of that epoch drawn from the same seed."""
    from tests.callbacks import CtrlCAt

    settings = dict(TINY, epochs=3, root=str(shared_data), **OPTIONS["dcgan"])  # 4 steps/epoch
    full = train_generative("dcgan", "mnist", out=tmp_path / "full", progress=False, **settings)
    cut = train_generative("dcgan", "mnist", out=tmp_path / "cut", progress=False,
                           callbacks=[CtrlCAt(6)], **settings)  # fmt: skip
    assert cut.trainer.interrupted and not (tmp_path / "cut" / "model").exists()
    resumed = train_generative(out=tmp_path / "cut", resume=True, progress=False)
    assert resumed.trainer.step == full.trainer.step == 12
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert resumed.test == full.test
    names = [p.name for p in sorted((tmp_path / "cut" / "samples").iterdir())]
    assert names == ["epoch-001.png", "epoch-002.png", "epoch-003.png"]
    for run in ("full", "cut"):  # the last epoch's grid is the final model's: samples.png
        last = matplotlib.image.imread(tmp_path / run / "samples" / "epoch-003.png")
        assert (last == matplotlib.image.imread(tmp_path / run / "samples.png")).all()
    first = matplotlib.image.imread(tmp_path / "full" / "samples" / "epoch-001.png")
    assert (first == matplotlib.image.imread(tmp_path / "cut" / "samples" / "epoch-001.png")).all()
    assert not (first == last).all()  # training changed the samples
    shown = SampleSnapshots("dcgan", tmp_path / "cut" / "samples", 4, 0, 28).figure()
    assert [ax.get_title() for ax in shown.axes] == ["epoch 1", "epoch 2", "epoch 3"]


def test_samples_over_training_shows_at_most_8_epochs_with_the_first_and_last(tmp_path):
    for epoch in range(1, 21):
        save_grid(torch.full((1, 1, 4, 4), epoch / 20), tmp_path / f"epoch-{epoch:03d}.png")
    shown = SampleSnapshots("vae", tmp_path, 1, 0, 4).figure()
    titles = [int(ax.get_title().split()[1]) for ax in shown.axes]
    assert titles == [1, 4, 6, 9, 12, 15, 17, 20]  # round(i · 19 / 7) + 1


def test_grid_places_each_image():
    images = torch.rand(5, 3, 4, 6)
    g = grid(images, columns=2)
    assert g.shape == (3, 2 + 3 * 6, 2 + 2 * 8)
    for i in range(5):
        r, c = divmod(i, 2)
        y, x = 2 + r * 6, 2 + c * 8
        assert torch.equal(g[:, y : y + 4, x : x + 6], images[i])
    assert (g[:, 2 + 2 * 6 :, 2 + 8 :] == 1).all()  # the empty sixth tile is white


def test_load_gives_the_same_weights_and_outputs(runs, shared_data):
    """Weights bit-identical; outputs equal up to float rounding: the Trainer may keep a conv
    net channels-last, and the kernels for that layout sum in another order (~1e-8 here)."""
    for name in ("vae", "dcgan", "pixelcnn"):
        trained, loaded = runs[name].model, load_generative(runs[name].out).model
        for k, v in trained.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k]), (name, k)
    close = dict(rtol=1e-5, atol=1e-6)
    z = torch.randn(5, 3)
    vae, loaded = runs["vae"].model.eval(), load_generative(runs["vae"].out).model
    torch.testing.assert_close(loaded.decode(z), vae.decode(z), **close)
    z = torch.randn(5, 6)
    gen, loaded = runs["dcgan"].model.generator, load_generative(runs["dcgan"].out).model
    torch.testing.assert_close(generate(loaded.generator, z), generate(gen, z), **close)
    x = (torch.rand(2, 1, 28, 28) > 0.5).float()
    pcnn, loaded = runs["pixelcnn"].model.eval(), load_generative(runs["pixelcnn"].out).model
    torch.testing.assert_close(loaded(x), pcnn(x), **close)


@pytest.mark.parametrize("name", ["vae", "dcgan", "pixelcnn"])
def test_sample_shapes_range_and_seed(runs, name, tmp_path):
    n = 2 if name == "pixelcnn" else 10
    a = sample_generative(runs[name].out, n, seed=4, out=tmp_path / "s.png")
    assert a.shape == (n, 1, 28, 28) and a.min() >= 0 and a.max() <= 1
    assert (tmp_path / "s.png").is_file()
    assert torch.equal(a, sample_generative(runs[name].out, n, seed=4))
    assert not torch.equal(a, sample_generative(runs[name].out, n, seed=5))
    if name == "pixelcnn":
        assert set(a.unique().tolist()) <= {0.0, 1.0}


def test_vae_eval_equals_a_direct_computation(runs, shared_data):
    k, n = 4, 16
    scores = evaluate_generative(runs["vae"].out, k=k, images=n, seed=0)
    model = load_generative(runs["vae"].out).model
    x = _test_images(shared_data, n)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        std = (0.5 * logvar).exp()
        z = mu + std * torch.randn(mu.shape, generator=g)
        rec = -F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="none")
        kl = 0.5 * (mu**2 + std**2 - 1 - logvar).sum(1)
        elbo = rec.flatten(1).sum(1) - kl
        zs = mu + std * torch.randn((k, *mu.shape), generator=g)
        p, q = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(mu, std)
        logits = model.decode(zs)
        log_px = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(2).sum(2)
        log_w = log_px + p.log_prob(zs).sum(2) - q.log_prob(zs).sum(2)
        iw = torch.logsumexp(log_w, 0) - math.log(k)
    assert scores["images"] == n
    assert scores["elbo"] == pytest.approx(float(elbo.mean()), rel=1e-5)
    assert scores[f"log_px_k{k}"] == pytest.approx(float(iw.mean()), rel=1e-5)


def test_pixelcnn_eval_equals_a_direct_computation(runs, shared_data):
    scores = evaluate_generative(runs["pixelcnn"].out, images=16)
    model = load_generative(runs["pixelcnn"].out).model
    x = _test_images(shared_data, 16)
    with torch.no_grad():
        nll = F.binary_cross_entropy_with_logits(model(x), x, reduction="sum") / 16
    assert scores["nll"] == pytest.approx(float(nll), rel=1e-5)
    assert scores["bits_per_dim"] == pytest.approx(float(nll) / (784 * math.log(2)), rel=1e-5)


def test_sample_metrics_with_a_classifier(runs, shared_data, tmp_path):
    net = create("mlp", num_classes=10, in_shape=(1, 28, 28), hidden=[8])
    save_model(tmp_path / "clf" / "model", net, classes=[str(i) for i in range(10)],
               in_shape=(1, 28, 28))  # fmt: skip
    scores = evaluate_generative(runs["dcgan"].out, images=40, classifier=tmp_path / "clf",
                                 samples=40)  # fmt: skip
    assert scores["classifier_frechet_distance"] >= 0
    assert 1 <= scores["classifier_score"] <= 10
    assert 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1


def test_bad_inputs_one_line_each(runs, shared_data, tmp_path):
    def one_line(err):
        msg = str(err.value)  # one line that says what to do after a ';' or ':'
        assert "\n" not in msg and any(sep in msg for sep in ("; ", ": "))

    with pytest.raises(InputError, match="count must be a positive integer") as e:
        sample_generative(runs["vae"].out, 0)
    one_line(e)
    with pytest.raises(InputError, match="no run folder") as e:
        load_generative(tmp_path / "missing")
    one_line(e)
    foreign = tmp_path / "foreign" / "model"
    foreign.mkdir(parents=True)
    (foreign / "model.json").write_text(json.dumps({"format": "striate-model/1", "task": "x"}))
    with pytest.raises(InputError, match="not a generative run") as e:
        load_generative(tmp_path / "foreign")
    one_line(e)
    # model.json edited to another latent size than the weights'
    copy = tmp_path / "vae"
    shutil.copytree(runs["vae"].out / "model", copy / "model")
    info = json.loads((copy / "model" / "model.json").read_text())
    info["architecture"]["arguments"]["latent"] = 7
    (copy / "model" / "model.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="latent of 3 numbers but model.json asks for 7") as e:
        load_generative(copy)
    one_line(e)
    with pytest.raises(ConfigError, match="latent 5 does not match the saved run's 3"):
        train_generative(out=runs["vae"].out, resume=True, latent=5)
    with pytest.raises(DataError, match="built for 32×32") as e:
        train_generative("dcgan", "mnist", out=tmp_path / "d", size=32, root=str(shared_data),
                         **TINY)  # fmt: skip
    one_line(e)
    assert not (tmp_path / "d").exists()  # refused before the folder is made
    with pytest.raises(InputError, match="GAN has no likelihood"):
        evaluate_generative(runs["dcgan"].out)


def test_autoencoder_through_train_autoencoder(shared_data, tmp_path):
    out = tmp_path / "ae"
    tiny = dict(TINY, train_size=64, test_size=16)
    train_generative("autoencoder", "mnist", out=out, progress=False, root=str(shared_data),
                     hidden=[8], latent=2, **tiny)  # fmt: skip
    assert (out / "reconstructions.png").is_file()  # train_autoencoder's run folder
    info = json.loads((out / "model" / "model.json").read_text())
    assert info["task"] == "autoencoder" and info["architecture"]["arguments"]["latent"] == 2
    scores = evaluate_generative(out, images=16)
    model = load_generative(out).model
    test = load_dataset("mnist", "test", root=shared_data).sample(16, seed=0)
    x = test.images.float() / 255  # grey levels, not binarised
    with torch.no_grad():
        logits = model(x)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 16
    mse = (logits.sigmoid() - x).pow(2).flatten(1).mean(1)
    assert scores["bce"] == pytest.approx(float(bce), rel=1e-5)
    assert scores["psnr"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), rel=1e-4)
    with pytest.raises(InputError, match="no prior to sample"):
        sample_generative(out, 4)


def test_dcgan_d_steps_each_take_batch_size_real_images(shared_data, tmp_path):
    settings = dict(TINY, batch_size=16, d_steps=2, root=str(shared_data), **OPTIONS["dcgan"])
    run = train_generative("dcgan", "mnist", out=tmp_path / "k2", progress=False, **settings)
    # 128 images in batches of 2 × 16: 4 generator steps, 8 discriminator steps of 16 images
    assert run.trainer.step == 4 and run.trainer.task.d_steps == 8
