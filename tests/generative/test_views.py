"""generative.views: the VAE's 2-D manifold against decoding Φ⁻¹ of the grid computed with scipy,
traversals and interpolations against decoding hand-built latents (VAE and DCGAN), arithmetic
against the averaged posterior means, and `draw_view` on tiny runs trained on real MNIST; the bad
inputs, each one line."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import norm

from striate.errors import InputError
from striate.generative.dcgan import DCGANGenerator
from striate.generative.jobs import load_generative, sample_generative, train_generative
from striate.generative.vae import VAE
from striate.generative.views import (
    arithmetic,
    decode,
    draw_view,
    interpolation,
    latent_manifold,
    latent_traversals,
)

TINY = dict(train_size=128, test_size=16, epochs=1, batch_size=32, precision="fp32", device="cpu")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _vae(latent: int, likelihood: str = "bernoulli") -> VAE:
    torch.manual_seed(0)
    return VAE((1, 28, 28), latent=latent, hidden=(16,), likelihood=likelihood).eval()


def _generator() -> DCGANGenerator:
    torch.manual_seed(0)
    return DCGANGenerator(latent_dim=6, channels=1, size=28, width=4)


def _means(vae: VAE, z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return vae.mean(vae.decode(z)).clamp(0, 1)


def _fakes(generator: DCGANGenerator, z: torch.Tensor) -> torch.Tensor:
    """The generator in eval mode (batch norm's running statistics), mapped to [0, 1]."""
    was = generator.training
    with torch.no_grad():
        out = generator.eval()(z)
    generator.train(was)
    return ((out + 1) / 2).clamp(0, 1)


def _grid_latents(side: int) -> torch.Tensor:
    """Kingma & Welling 2014, Fig. 4 layout: row i, column j holds z = (Φ⁻¹(u_j), Φ⁻¹(u_{side-1-i}))
    with u_k = (k + ½) / side: the first latent along the columns, the second upwards."""
    u = [(k + 0.5) / side for k in range(side)]
    rows = [[(norm.ppf(u[j]), norm.ppf(u[side - 1 - i])) for j in range(side)] for i in range(side)]
    return torch.tensor(rows, dtype=torch.float32).reshape(side * side, 2)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_manifold_decodes_the_inverse_normal_cdf_of_the_grid(likelihood):
    vae = _vae(2, likelihood)
    images = latent_manifold(vae, side=5)
    assert images.shape == (25, 1, 28, 28)
    torch.testing.assert_close(images, _means(vae, _grid_latents(5)), atol=1e-6, rtol=0)
    assert images.min() >= 0 and images.max() <= 1


def test_manifold_refuses_other_latent_sizes_in_one_line():
    with pytest.raises(InputError) as e:
        latent_manifold(_vae(3))
    assert "2-D latent" in str(e.value) and "--latent 2" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kind", ["vae", "dcgan"])
def test_traversal_rows_vary_one_latent_each(kind):
    model = _vae(4) if kind == "vae" else _generator()
    reference = _means if kind == "vae" else _fakes
    latent = 4 if kind == "vae" else 6
    z = torch.randn(1, latent, generator=torch.Generator().manual_seed(1))
    dims, values = [2, 0], [-2.0, -1.0, 0.0, 1.0, 2.0]
    images = latent_traversals(model, z, dims, steps=5, span=2.0)
    assert images.shape == (10, 1, 28, 28)
    expected = []
    for d in dims:
        for v in values:
            w = z[0].clone()
            w[d] = v
            expected.append(w)
    torch.testing.assert_close(images, reference(model, torch.stack(expected)), atol=1e-6, rtol=0)


def test_traversal_bad_dims_one_line():
    with pytest.raises(InputError) as e:
        latent_traversals(_vae(4), torch.zeros(1, 4), dims=[4])
    assert "below the latent size 4" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="must hold 4 numbers"):
        latent_traversals(_vae(4), torch.zeros(1, 3))


@pytest.mark.parametrize("kind,method", [("vae", "linear"), ("dcgan", "spherical")])
def test_interpolation_rows_start_and_end_at_the_two_latents(kind, method):
    model = _vae(4) if kind == "vae" else _generator()
    reference = _means if kind == "vae" else _fakes
    latent = 4 if kind == "vae" else 6
    g = torch.Generator().manual_seed(2)
    z0, z1 = torch.randn(3, latent, generator=g), torch.randn(3, latent, generator=g)
    images = interpolation(model, z0, z1, steps=6, method=method).reshape(3, 6, 1, 28, 28)
    torch.testing.assert_close(images[:, 0], reference(model, z0), atol=1e-5, rtol=0)
    torch.testing.assert_close(images[:, -1], reference(model, z1), atol=1e-5, rtol=0)
    assert model.training is (kind == "dcgan")  # the mode it came in, restored
    if method == "linear":  # the middle of the path: t = 2/5
        middle = reference(model, 0.6 * z0 + 0.4 * z1)
        torch.testing.assert_close(images[:, 2], middle, atol=1e-5, rtol=0)


def test_arithmetic_decodes_the_combination_of_averaged_posterior_means():
    vae = _vae(4)
    g = torch.Generator().manual_seed(3)
    groups = [torch.rand(3, 1, 28, 28, generator=g) for _ in range(3)]
    with torch.no_grad():
        mu = [vae.encode(x)[0].mean(0) for x in groups]
    expected = _means(vae, (mu[0] - mu[1] + mu[2])[None])
    torch.testing.assert_close(arithmetic(vae, groups), expected, atol=1e-6, rtol=0)


def test_decode_refuses_a_model_without_latent():
    with pytest.raises(InputError, match="no latent to decode"):
        decode(torch.nn.Linear(2, 2), torch.zeros(1, 2))


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("views")
    options = {
        "vae": dict(hidden=[16], latent=2, train_size=256),
        "dcgan": dict(width=4, latent=6),
        "pixelcnn": dict(width=4, blocks=1),
    }
    return {
        name: train_generative(
            name, "mnist", out=base / name, progress=False, root=str(shared_data),
            **(TINY | extra),
        ).out
        for name, extra in options.items()
    }  # fmt: skip


def test_draw_view_manifold_and_samples(runs):
    vae = load_generative(runs["vae"]).model
    images, columns = draw_view(runs["vae"], "manifold", count=16)
    assert columns == 4 and images.shape == (16, 1, 28, 28)
    torch.testing.assert_close(images, _means(vae, _grid_latents(4)), atol=1e-6, rtol=0)
    images, columns = draw_view(runs["vae"], "samples", count=5, seed=4)
    assert columns is None and torch.equal(images, sample_generative(runs["vae"], 5, seed=4))


@pytest.mark.parametrize("name", ["vae", "dcgan"])
def test_draw_view_interpolation_and_traversal(runs, name):
    model = load_generative(runs[name]).model
    latent = 2 if name == "vae" else 6
    reference = _means if name == "vae" else lambda m, z: _fakes(m.generator, z)
    images, columns = draw_view(runs[name], "interpolation", count=25, seed=5)
    assert columns == 10 and images.shape == (20, 1, 28, 28)  # 25 // 10 = 2 rows of 10
    z = torch.randn(2, 2, latent, generator=torch.Generator().manual_seed(5))
    rows = images.reshape(2, 10, 1, 28, 28)
    torch.testing.assert_close(rows[:, 0], reference(model, z[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(rows[:, -1], reference(model, z[1]), atol=1e-5, rtol=0)

    images, columns = draw_view(runs[name], "traversal", seed=6)
    assert columns == 9 and images.shape == (latent * 9, 1, 28, 28)
    base = torch.randn(1, latent, generator=torch.Generator().manual_seed(6))
    first = base.clone()
    first[0, 0] = -3.0  # row 0 starts with latent 0 at −3
    torch.testing.assert_close(images[:1], reference(model, first), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "name,view,words",
    [
        ("dcgan", "manifold", "needs a vae run with a 2-D latent, this run is a dcgan"),
        ("pixelcnn", "interpolation", "works for vae and dcgan runs"),
        ("pixelcnn", "traversal", "this run is a pixelcnn"),
        ("vae", "walk", "show must be one of"),
    ],
)
def test_draw_view_refusals_one_line(runs, name, view, words):
    with pytest.raises(InputError) as e:
        draw_view(runs[name], view)
    assert words in str(e.value) and "\n" not in str(e.value)
