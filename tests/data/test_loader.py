"""BatchLoader and StreamingLoader: coverage of an epoch, seeding, resumption, the two agree."""

from __future__ import annotations

import warnings

import pytest
import torch

from striate.data.folder import StriateWarning, load_folder
from striate.data.imageset import ImageSet
from striate.data.loader import BatchLoader, StreamingLoader
from striate.errors import DataError, StriateError
from tests.data.folder_fixtures import make_folder, zip_folder


def _set(n=23, c=3, h=4, w=5, k=3, seed=0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % k, tuple("abc"[:k]), "random")


def _gather(loader):
    xs, ys = zip(*list(loader), strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_an_epoch_covers_every_image_once_as_float_0_1():
    ds = _set()
    loader = BatchLoader(ds, batch_size=5, device="cpu", seed=1)
    assert len(loader) == 5
    sizes = [len(y) for _, y in loader]
    assert sizes == [5, 5, 5, 5, 3]
    x, y = _gather(loader)
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    # every image appears once, with its own label: match rows back to the source
    flat = (ds.images.float() / 255).flatten(1)
    match = (x.flatten(1)[:, None, :] == flat[None]).all(-1)
    assert match.sum(1).eq(1).all()
    src = match.float().argmax(1)
    assert sorted(src.tolist()) == list(range(len(ds)))
    assert torch.equal(y, ds.labels[src])


def test_no_shuffle_keeps_order_and_drop_last_drops():
    ds = _set()
    x, y = _gather(BatchLoader(ds, batch_size=5, shuffle=False, device="cpu"))
    assert torch.equal(x, ds.images.float() / 255) and torch.equal(y, ds.labels)
    loader = BatchLoader(ds, batch_size=5, drop_last=True, device="cpu")
    assert len(loader) == 4 and [len(y) for _, y in loader] == [5, 5, 5, 5]


def test_seeded_epochs_repeat_and_resume():
    ds = _set()
    a = BatchLoader(ds, batch_size=4, device="cpu", seed=3)
    epochs = [_gather(a)[1] for _ in range(3)]
    assert not torch.equal(epochs[0], epochs[1])  # a new order each epoch
    b = BatchLoader(ds, batch_size=4, device="cpu", seed=3)
    assert torch.equal(_gather(b)[1], epochs[0])
    c = BatchLoader(ds, batch_size=4, device="cpu", seed=3)
    c.load_state_dict({"epoch": 2, "seed": 3})  # resuming at epoch 2 replays epoch 2
    assert torch.equal(_gather(c)[1], epochs[2])
    d = BatchLoader(ds, batch_size=4, device="cpu", seed=4)
    assert not torch.equal(_gather(d)[1], epochs[0])


def test_a_state_taken_mid_epoch_resumes_after_the_last_batch_with_the_same_draws(tmp_path):
    from striate.data.augment import RandomCrop
    from striate.state_file import load_state, save_state

    ds = _set(n=30)
    kw = dict(batch_size=4, device="cpu", seed=5, augment=RandomCrop(4, padding=1))
    full = BatchLoader(ds, **kw)
    reference = [list(full) for _ in range(2)]
    a = BatchLoader(ds, **kw)
    list(a)
    it = iter(a)
    for _ in range(3):
        next(it)
    save_state(tmp_path / "s.safetensors", {"loader": a.state_dict()})  # survives a file
    b = BatchLoader(ds, **kw)
    b.load_state_dict(load_state(tmp_path / "s.safetensors")["loader"])
    rest = list(b)
    assert len(rest) == len(reference[1]) - 3
    for (xb, yb), (xr, yr) in zip(rest, reference[1][3:], strict=True):
        assert torch.equal(xb, xr) and torch.equal(yb, yr)
    assert b.state_dict() == {"epoch": 2, "seed": 5}  # the epoch finished: no position left
    b.set_epoch(1)  # set_epoch starts an epoch from its beginning
    assert torch.equal(torch.cat([y for _, y in b]), torch.cat([y for _, y in reference[1]]))


def test_augment_gets_the_epoch_generator_and_normalize_comes_last():
    ds = _set()
    seen = []

    def flip_all(x, y, g):
        seen.append(torch.rand(1, generator=g).item())
        return x.flip(-1), y

    def normalize(x):
        return (x - 0.5) / 0.25

    loader = BatchLoader(
        ds,
        batch_size=50,
        shuffle=False,
        augment=flip_all,
        normalize=normalize,
        device="cpu",
        seed=7,
    )
    x, y = next(iter(loader))
    assert torch.allclose(x, (ds.images.float().flip(-1) / 255 - 0.5) / 0.25)
    loader.set_epoch(0)
    next(iter(loader))
    assert seen[0] == seen[1]  # the same epoch draws the same random numbers


def _source_and_flips(x, source):
    """For each row of x: the index of the source image it is, and whether it is mirrored."""
    flat = source.flatten(1)
    plain = (x.flatten(1)[:, None, :] == flat[None]).all(-1)
    mirrored = (x.flip(-1).flatten(1)[:, None, :] == flat[None]).all(-1)
    assert (plain.sum(1) + mirrored.sum(1)).eq(1).all()
    return (plain | mirrored).float().argmax(1), mirrored.any(1)


@pytest.mark.parametrize("kind", ["memory", "stream"])
def test_alternating_flip_sees_each_image_both_ways_in_two_epochs(tmp_path, kind):
    from striate.data.augment import AlternatingFlip

    if kind == "memory":
        ds = _set(n=40)
        loader = BatchLoader(ds, batch_size=6, device="cpu", seed=3, augment=AlternatingFlip())
    else:  # a bad file is skipped: the indices must still match the images kept
        make_folder(tmp_path / "f", per_class=(14, 13, 13), splits=("train",))
        (tmp_path / "f" / "train" / "dog" / "0003.png").write_bytes(b"garbage")
        kw = dict(batch_size=6, device="cpu", seed=3, workers=0, on_bad_image="skip")
        loader = StreamingLoader(tmp_path / "f", augment=AlternatingFlip(), **kw)
        with pytest.warns(StriateWarning, match="skipped 1"):
            ds = load_folder(
                tmp_path / "f", "train", cache=False, progress=False, on_bad_image="skip"
            )
    source = ds.images.float() / 255
    flips = []
    for _ in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StriateWarning)
            src, mirrored = _source_and_flips(_gather(loader)[0], source)
        flips.append(torch.zeros(len(ds), dtype=torch.bool).index_put((src,), mirrored))
        assert sorted(src.tolist()) == list(range(len(ds)))
    assert 0 < flips[0].sum() < len(ds)
    assert torch.equal(flips[1], ~flips[0]) and torch.equal(flips[2], flips[0])


def test_bad_arguments():
    with pytest.raises(StriateError, match="batch_size"):
        BatchLoader(_set(), batch_size=0, device="cpu")
    with pytest.raises(StriateError, match="ImageSet"):
        BatchLoader(torch.zeros(3, 1, 2, 2), device="cpu")
    with pytest.raises(StriateError, match="drop_last"):
        BatchLoader(_set(n=3), batch_size=5, drop_last=True, device="cpu")
    with pytest.raises(DataError, match="empty"):
        BatchLoader(_set()[torch.arange(0)], device="cpu")


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_from_a_zip_yields_what_the_in_memory_loader_does(tmp_path, workers):
    make_folder(tmp_path / "f", per_class=(9, 7, 8), splits=("train",))
    z = zip_folder(tmp_path / "f", tmp_path / "f.zip")
    ds = load_folder(z, "train", cache=False, progress=False)
    mem = BatchLoader(ds, batch_size=5, device="cpu", seed=11)
    stream = StreamingLoader(z, "train", batch_size=5, device="cpu", seed=11, workers=workers)
    assert len(stream) == len(mem) and stream.classes == ds.classes
    for _ in range(2):  # two epochs, the same order in both loaders
        for (xm, ym), (xs, ys) in zip(mem, stream, strict=True):
            assert torch.equal(xm, xs) and torch.equal(ym, ys)


def test_streaming_bad_images_and_sizes(tmp_path):
    make_folder(tmp_path / "f", per_class=(3, 3, 3), splits=("train",))
    bad = tmp_path / "f" / "train" / "dog" / "0001.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="dog/0001.png"):
        list(StreamingLoader(tmp_path / "f", batch_size=4, device="cpu", workers=0))
    skipping = StreamingLoader(
        tmp_path / "f", batch_size=4, device="cpu", workers=0, on_bad_image="skip"
    )
    with pytest.warns(StriateWarning, match="skipped 1"):
        assert sum(len(y) for _, y in skipping) == 8
    make_folder(tmp_path / "g", per_class=(2, 2, 2), splits=("train",), h=6, w=6)
    make_folder(tmp_path / "g", classes=("emu",), per_class=(2,), splits=("train",), h=5, w=6)
    with pytest.raises(DataError, match=r"5×6.*size="):
        list(StreamingLoader(tmp_path / "g", batch_size=8, shuffle=False, device="cpu", workers=0))
    resized = StreamingLoader(tmp_path / "g", batch_size=8, size=4, device="cpu", workers=0)
    assert next(iter(resized))[0].shape[1:] == (3, 4, 4)
    with pytest.raises(DataError, match="no split 'test'"):
        StreamingLoader(tmp_path / "g", "test", device="cpu")


@pytest.mark.parametrize("as_zip", [False, True])
def test_streaming_names_unreadable_files(tmp_path, as_zip):
    make_folder(tmp_path / "f", per_class=(3, 3, 3), splits=("train",))
    (tmp_path / "f" / "train" / "dog" / "0001.png").write_bytes(b"not an image")
    src = zip_folder(tmp_path / "f", tmp_path / "f.zip") if as_zip else tmp_path / "f"
    with pytest.raises(DataError) as info:
        list(StreamingLoader(src, batch_size=4, device="cpu", workers=0))
    assert "cannot read image 'train/dog/0001.png': not a recognised image format" in str(
        info.value
    )
    skipping = StreamingLoader(src, batch_size=4, device="cpu", workers=0, on_bad_image="skip")
    with pytest.warns(StriateWarning) as caught:
        list(skipping)
    text = str(caught[0].message)
    assert "skipped 1 unreadable image in 'train' this epoch: train/dog/0001.png (not a" in text
    # the first image sizes the stream: when it is unreadable, say which it is
    (tmp_path / "f" / "train" / "cat" / "0000.png").write_bytes(b"nor is this")
    src = zip_folder(tmp_path / "f", tmp_path / "g.zip") if as_zip else tmp_path / "f"
    with pytest.raises(DataError) as info:
        StreamingLoader(src, batch_size=4, device="cpu", workers=0)
    assert "cannot read image 'train/cat/0000.png'" in str(info.value)
    for shown in (str(info.value), text):
        assert "BytesIO" not in shown and " at 0x" not in shown


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches_with_augmentation():
    from striate.data.augment import ColorJitter, Compose, Cutout, RandomAffine, RandomCrop

    ds = _set(n=300, h=16, w=16)
    augment = Compose(
        [
            RandomCrop(16, padding=2, padding_mode="reflect"),
            Cutout(4),
            RandomAffine(15, scale=(0.9, 1.1)),
            ColorJitter(0.2, 0.2, 0.2),
        ]
    )
    cpu = BatchLoader(ds, batch_size=64, augment=augment, device="cpu", seed=5)
    gpu = BatchLoader(ds, batch_size=64, augment=augment, device="cuda", seed=5)
    for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
        assert xg.is_cuda and torch.equal(yc, yg.cpu())
        torch.testing.assert_close(xc, xg.cpu(), atol=1e-4, rtol=1e-4)
