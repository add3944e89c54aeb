"""Preprocessing against independent references: numpy statistics, scikit-learn's PCA, the ZCA
formula computed in numpy, and the published MNIST mean and std."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA

from striate.data import preprocess
from striate.data.imageset import ImageSet
from striate.data.preprocess import PCA, ZCA, MeanImage, Normalizer
from striate.errors import StriateError


def _read_idx(path):
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


@pytest.fixture(scope="module")
def mnist(shared_data):
    """MNIST train and test images, uint8 N×1×28×28 numpy arrays, read independently of striate."""
    folder = shared_data / "mnist"
    train = _read_idx(folder / "train-images-idx3-ubyte.gz")[:, None]
    test = _read_idx(folder / "t10k-images-idx3-ubyte.gz")[:, None]
    return train, test


@pytest.fixture
def small_chunks(monkeypatch):
    """Force many chunks so that the chunked float64 accumulation is exercised on small data."""
    monkeypatch.setattr(preprocess, "_CHUNK_ELEMENTS", 100)


def _correlated(n=3000, shape=(3, 4, 4), seed=0):
    """Random images in 0–1 whose pixels are correlated (a random mixing of Gaussian noise)."""
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    mixed = 0.1 * rng.normal(size=(n, d)) @ mixing
    x = 0.5 + mixed + 0.05 * rng.normal(size=(n, d)) + 0.02 * rng.normal(size=(1, d))
    return x.reshape(n, *shape)


# --- Normalizer -----------------------------------------------------------------------------


def test_normalizer_on_real_mnist(mnist):
    train, _ = mnist
    norm = Normalizer().fit(torch.from_numpy(train))
    # exact reference from the histogram of grey levels (no 60000×784 float64 copy)
    hist = sum(np.bincount(part.ravel(), minlength=256) for part in np.array_split(train, 10))
    levels = np.arange(256) / 255
    mean = (hist * levels).sum() / hist.sum()
    std = np.sqrt((hist * (levels - mean) ** 2).sum() / hist.sum())
    assert norm.mean_.item() == pytest.approx(mean, abs=1e-12)
    assert norm.std_.item() == pytest.approx(std, abs=1e-12)
    # the published figures (this copy's faint pixels differ by 1-2 grey levels: see README)
    assert norm.mean_.item() == pytest.approx(0.1307, abs=5e-4)
    assert norm.std_.item() == pytest.approx(0.3081, abs=5e-4)


def test_normalizer_matches_numpy_per_channel(small_chunks):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(37, 3, 5, 4), dtype=np.uint8)
    x[:, 1] //= 4  # channels with different statistics
    norm = Normalizer().fit(torch.from_numpy(x))
    ref = x.astype(np.float64) / 255
    np.testing.assert_allclose(norm.mean_.numpy(), ref.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(norm.std_.numpy(), ref.std(axis=(0, 2, 3)), rtol=1e-10)
    # an ImageSet and a float tensor on the 0–1 scale give the same statistics
    ds = ImageSet(torch.from_numpy(x), torch.zeros(37, dtype=torch.int64), ("a",))
    assert torch.allclose(Normalizer().fit(ds).std_, norm.std_, rtol=1e-12, atol=0)
    assert torch.allclose(Normalizer().fit(torch.from_numpy(ref)).mean_, norm.mean_, atol=1e-15)
    assert torch.allclose(norm.mean_.float(), ds.pixel_stats()[0])


def test_normalize_then_inverse_is_identity_and_standardises():
    x = torch.from_numpy(_correlated()).float()
    norm = Normalizer().fit(x)
    y = norm(x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std(dim=(0, 2, 3), correction=0), torch.ones(3), atol=1e-5)
    assert torch.allclose(norm.inverse(y), x, atol=1e-6)
    assert torch.allclose(norm.inverse_transform(y), x, atol=1e-6)
    y64 = norm(x.double())  # the batch's dtype is kept
    assert y64.dtype == torch.float64
    assert torch.allclose(norm(x[0]), y[0])  # a single C×H×W image works too


def test_normalizer_uses_training_statistics_only():
    rng = np.random.default_rng(2)
    train = torch.from_numpy(rng.uniform(0.0, 0.5, size=(50, 3, 4, 4)))
    test = torch.from_numpy(rng.uniform(0.5, 1.0, size=(20, 3, 4, 4)))
    norm = Normalizer().fit(train)
    expected = (test - train.mean(dim=(0, 2, 3))[:, None, None]) / train.std(
        dim=(0, 2, 3), correction=0
    )[:, None, None]
    assert torch.allclose(norm(test), expected)
    assert norm(test).mean() > 1  # test data sits above the training mean: not re-centred


def test_normalizer_uint8_batch_is_read_as_fraction():
    x = torch.randint(0, 256, (4, 1, 3, 3), dtype=torch.uint8)
    norm = Normalizer(mean=[0.5], std=[0.25])
    assert torch.allclose(norm(x), (x.float() / 255 - 0.5) / 0.25)


def test_normalizer_state_dict_round_trips_through_json():
    norm = Normalizer().fit(torch.from_numpy(_correlated(n=100)))
    state = json.loads(json.dumps(norm.state_dict()))
    assert isinstance(state["mean"], list) and len(state["std"]) == 3
    again = Normalizer.from_state_dict(state)
    x = torch.rand(5, 3, 4, 4)
    assert torch.equal(again(x), norm(x))
    mnist = Normalizer(mean=[0.13066], std=[0.30811])
    assert repr(mnist) == "Normalizer(mean=[0.1307], std=[0.3081])"


def test_normalizer_constant_channel_is_not_divided_by_zero():
    x = torch.zeros(10, 3, 2, 2)
    x[:, 0] = torch.rand(10, 2, 2)
    norm = Normalizer().fit(x)
    assert norm.std_[1:].tolist() == [1.0, 1.0]
    assert torch.isfinite(norm(x)).all()


def test_transforms_follow_the_batch_device():
    # the meta device stands in for an accelerator: no data, but real device placement
    x = torch.empty(2, 3, 4, 4, device="meta")
    data = torch.from_numpy(_correlated(n=64))
    for t in (Normalizer(), MeanImage(), PCA(5), ZCA()):
        t.fit(data)
        out = t(x)
        assert out.device.type == "meta"
        assert t.inverse_transform(out).device.type == "meta"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_transforms_on_cuda_match_cpu():
    data = torch.from_numpy(_correlated(n=200))
    x = torch.rand(8, 3, 4, 4)
    makers = (Normalizer, MeanImage, lambda: PCA(5, whiten=True), ZCA)
    for make in makers:
        on_cpu, on_gpu = make().fit(data), make().fit(data.cuda())  # fitted on either device
        out = on_gpu(x.cuda())
        assert out.device.type == "cuda"
        assert torch.allclose(out.cpu(), on_cpu(x), atol=1e-4)
        assert torch.allclose(on_gpu.inverse(out).cpu(), on_cpu.inverse(on_cpu(x)), atol=1e-4)


def test_normalizer_argument_errors():
    with pytest.raises(StriateError, match="both mean and std"):
        Normalizer(mean=[0.5])
    with pytest.raises(StriateError, match="positive stds"):
        Normalizer(mean=[0.5], std=[0.0])
    with pytest.raises(StriateError, match="2 means and 1 stds"):
        Normalizer(mean=[0.5, 0.5], std=[0.2])
    with pytest.raises(StriateError, match="'mean' and 'std'"):
        Normalizer.from_state_dict({"mean": [0.1]})
    norm = Normalizer().fit(torch.rand(4, 3, 32, 32))
    with pytest.raises(StriateError, match=r"3-channel images \(3×32×32\).*1×1×28×28"):
        norm(torch.rand(1, 1, 28, 28))
    with pytest.raises(StriateError, match="float batch"):
        norm(torch.ones(1, 3, 2, 2, dtype=torch.int32))


# --- MeanImage ------------------------------------------------------------------------------


def test_mean_image_matches_numpy(small_chunks, mnist):
    train, test = mnist
    train, test = train[:500], test[:50]
    sub = MeanImage().fit(torch.from_numpy(train))
    ref = train.astype(np.float64).mean(axis=0) / 255
    assert sub.mean_.shape == (1, 28, 28)
    np.testing.assert_allclose(sub.mean_.numpy(), ref, atol=1e-12)
    out = sub(torch.from_numpy(test).double() / 255)  # test data, training mean
    np.testing.assert_allclose(out.numpy(), test / 255 - ref, atol=1e-12)
    assert torch.allclose(sub.inverse(out), torch.from_numpy(test).double() / 255)
    again = MeanImage.from_state_dict(json.loads(json.dumps(sub.state_dict())))
    assert torch.equal(again.mean_, sub.mean_)


# --- PCA ------------------------------------------------------------------------------------


def _centre(images):
    """The central 16×16 pixels of 28×28 MNIST digits, still uint8."""
    return np.ascontiguousarray(images[:, :, 6:22, 6:22])


def _align_signs(ours, ref):
    """Flip each of our components (rows) to agree in sign with the reference."""
    signs = np.sign(np.sum(ours * ref, axis=1, keepdims=True))
    return ours * signs, signs.ravel()


@pytest.mark.parametrize("whiten", [False, True])
def test_pca_matches_sklearn_on_mnist(mnist, whiten):
    train, test = mnist
    # the central 16×16 pixels keep the eigendecompositions small (256 values per image)
    train, test = _centre(train[:1500]), _centre(test[:300])
    x_train = train.reshape(len(train), -1) / 255
    x_test = test.reshape(len(test), -1) / 255
    ref = SkPCA(n_components=30, whiten=whiten, svd_solver="full").fit(x_train)
    pca = PCA(n_components=30, whiten=whiten).fit(torch.from_numpy(train))

    components, signs = _align_signs(pca.components_.numpy(), ref.components_)
    np.testing.assert_allclose(components, ref.components_, atol=1e-8)
    np.testing.assert_allclose(pca.explained_variance_.numpy(), ref.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(
        pca.explained_variance_ratio_.numpy(), ref.explained_variance_ratio_, rtol=1e-9
    )
    np.testing.assert_allclose(pca.mean_.numpy(), ref.mean_, atol=1e-12)

    # transforming test data uses the training fit
    z = pca(torch.from_numpy(x_test.reshape(test.shape)))
    assert z.shape == (300, 30)
    np.testing.assert_allclose(z.numpy() * signs, ref.transform(x_test), atol=1e-7)
    back = pca.inverse_transform(z)
    assert back.shape == (300, 1, 16, 16)
    np.testing.assert_allclose(
        back.numpy().reshape(300, -1), ref.inverse_transform(ref.transform(x_test)), atol=1e-7
    )
    # our sign convention: each component's largest-magnitude entry is positive
    big = pca.components_.abs().argmax(1)
    assert (pca.components_[torch.arange(30), big] > 0).all()


def test_pca_whitened_training_projections_have_unit_variance(small_chunks):
    x = torch.from_numpy(_correlated(n=800, shape=(1, 4, 4)))
    pca = PCA(n_components=10, whiten=True).fit(x)
    z = pca(x)
    assert torch.allclose(z.var(0), torch.ones(10, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(z.mean(0), torch.zeros(10, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(torch.cov(z.T), torch.eye(10, dtype=torch.float64), atol=1e-9)


def test_pca_full_rank_round_trip_and_variance_fraction():
    x = torch.from_numpy(_correlated(n=500, shape=(1, 4, 4)))
    pca = PCA().fit(x)
    assert pca.n_components_ == 16
    assert pca.explained_variance_ratio_.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(pca.inverse_transform(pca(x)), x, atol=1e-10)
    flat = x.reshape(500, -1).numpy()
    for fraction in (0.5, 0.9, 0.99):
        ref = SkPCA(n_components=fraction, svd_solver="full").fit(flat)
        assert PCA(n_components=fraction).fit(x).n_components_ == ref.n_components_


def test_pca_errors():
    x = torch.rand(20, 3, 8, 8)
    pca = PCA(n_components=4).fit(x)
    with pytest.raises(StriateError, match=r"shape 3×8×8 .*shape 5×1×28×28"):
        pca(torch.rand(5, 1, 28, 28))
    with pytest.raises(StriateError, match="4 components"):
        pca.inverse_transform(torch.rand(5, 3))
    with pytest.raises(StriateError, match="out of range"):
        PCA(n_components=21).fit(x)
    with pytest.raises(StriateError, match=r"fraction of variance in \(0, 1\)"):
        PCA(n_components=1.5).fit(x)
    with pytest.raises(StriateError, match="at least 2 images"):
        PCA().fit(x[:1])


# --- ZCA ------------------------------------------------------------------------------------


def test_zca_whitens_to_identity_covariance(small_chunks):
    x = torch.from_numpy(_correlated(n=2000, shape=(3, 2, 2)))
    zca = ZCA(eps=1e-12).fit(x)
    w = zca(x)
    assert w.shape == x.shape
    cov = torch.cov(w.reshape(len(w), -1).T)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=1e-6)
    assert torch.equal(zca.matrix_, zca.matrix_.T)
    assert torch.allclose(zca.inverse_transform(w), x, atol=1e-9)


def test_zca_matches_numpy_reference_on_mnist(mnist):
    train, test = mnist
    train, test = _centre(train[:1000]), _centre(test[:100])
    zca = ZCA(eps=1e-2).fit(ImageSet(torch.from_numpy(train), torch.zeros(1000).long(), ("x",)))
    # reference: W = U diag(1/sqrt(S + eps)) U^T from numpy's covariance (N - 1) and eigh
    x = train.reshape(1000, -1) / 255
    s, u = np.linalg.eigh(np.cov(x, rowvar=False))
    w = u @ np.diag(1 / np.sqrt(s + 1e-2)) @ u.T
    np.testing.assert_allclose(zca.matrix_.numpy(), w, atol=1e-9)
    np.testing.assert_allclose(zca.matrix_.numpy(), zca.matrix_.numpy().T, atol=0)
    ratio = np.sort(np.clip(s, 0, None))[::-1] / np.trace(np.cov(x, rowvar=False))
    np.testing.assert_allclose(zca.explained_variance_ratio_.numpy(), ratio, atol=1e-12)
    # test images are whitened with the training mean and matrix, in float32 like a real batch
    x_test = torch.from_numpy(test).float() / 255
    out = zca(x_test)
    assert out.dtype == torch.float32 and out.shape == (100, 1, 16, 16)
    expected = (test.reshape(100, -1) / 255 - x.mean(axis=0)) @ w
    np.testing.assert_allclose(out.numpy().reshape(100, -1), expected, atol=1e-4)
    assert torch.allclose(zca.inverse(out), x_test, atol=1e-4)


def test_zca_errors():
    with pytest.raises(StriateError, match="positive"):
        ZCA(eps=0).fit(torch.rand(10, 1, 2, 2))
    zca = ZCA().fit(torch.rand(10, 3, 8, 8))
    with pytest.raises(StriateError, match=r"3×8×8.*1×28×28"):
        zca(torch.rand(2, 1, 28, 28))


# --- the shared convention ------------------------------------------------------------------


@pytest.mark.parametrize("make", [Normalizer, MeanImage, PCA, ZCA])
def test_unfitted_use_and_bad_fit_data_are_clear_errors(make):
    t = make()
    name = type(t).__name__
    with pytest.raises(StriateError, match=rf"{name} is not fitted yet: call .*fit\(train_data\)"):
        t(torch.rand(2, 3, 4, 4))
    with pytest.raises(StriateError, match="not fitted"):
        t.inverse_transform(torch.rand(2, 3, 4, 4))
    assert t.fit(torch.rand(5, 3, 4, 4)) is t  # fit returns self
    with pytest.raises(StriateError, match="N×C×H×W"):
        make().fit(torch.rand(5, 4, 4))
    with pytest.raises(StriateError, match="int64"):
        make().fit(torch.ones(5, 1, 4, 4, dtype=torch.int64))
    with pytest.raises(StriateError, match="empty"):
        make().fit(torch.rand(0, 1, 4, 4))
    with pytest.raises(StriateError, match="list"):
        make().fit([[1, 2]])


def test_refit_replaces_statistics_and_cached_copies():
    norm = Normalizer().fit(torch.zeros(4, 1, 2, 2) + 0.25)
    x = torch.full((1, 1, 2, 2), 0.75)
    assert torch.allclose(norm(x), torch.full_like(x, 0.5))
    norm.fit(torch.zeros(4, 1, 2, 2) + 0.5)
    assert torch.allclose(norm(x), torch.full_like(x, 0.25))


def test_chunks_bound_memory(small_chunks):
    x = torch.zeros(50, 3, 4, 4, dtype=torch.uint8)
    chunks = list(preprocess._chunks(x))
    assert all(c.numel() <= 100 and c.dtype == torch.float64 for c in chunks)
    assert sum(len(c) for c in chunks) == 50
