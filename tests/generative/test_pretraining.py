"""A classifier initialised from an autoencoder's encoder: the copied weights, freezing, the
scratch twin, k labelled images per class, and a few Trainer steps on real MNIST."""

import pytest
import torch

from striate.data import BatchLoader, ImageSet, load_dataset
from striate.engine import Trainer
from striate.errors import ConfigError, DataError
from striate.generative import Autoencoder
from striate.generative.pretraining import (
    classifier_from_encoder,
    classifier_like_encoder,
    per_class,
)

KINDS = {"mlp": dict(hidden=(32,)), "conv": dict(hidden=(4, 8), kind="conv")}


@pytest.mark.parametrize("kind", KINDS)
def test_the_classifier_starts_from_the_encoder_s_weights(kind):
    torch.manual_seed(0)
    ae = Autoencoder((1, 28, 28), latent=6, **KINDS[kind])
    net = classifier_from_encoder(ae, 10)
    ours = net.encoder.state_dict()
    assert ours.keys() == ae.encoder.state_dict().keys()
    for name, w in ae.encoder.state_dict().items():
        assert torch.equal(ours[name], w) and ours[name].data_ptr() != w.data_ptr()  # a copy
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        expected = net.head(ae.encode(x))  # independent: the autoencoder's own code
        torch.testing.assert_close(net(x), expected)
    assert net(x).shape == (3, 10)


@pytest.mark.parametrize("kind", KINDS)
def test_freeze_keeps_the_encoder_fixed_and_the_twin_has_the_same_shapes(kind):
    torch.manual_seed(0)
    ae = Autoencoder((1, 28, 28), latent=6, **KINDS[kind])
    frozen = classifier_from_encoder(ae, 10, freeze=True)
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
    assert all(p.requires_grad for p in frozen.head.parameters())
    frozen(torch.rand(2, 1, 28, 28)).sum().backward()
    assert all(p.grad is None for p in frozen.encoder.parameters())
    assert all(p.requires_grad for p in ae.parameters())  # the autoencoder itself is untouched

    twin = classifier_like_encoder(ae, 10)
    pre = classifier_from_encoder(ae, 10)
    shapes = {k: v.shape for k, v in pre.state_dict().items()}
    assert {k: v.shape for k, v in twin.state_dict().items()} == shapes
    count = sum(p.numel() for p in pre.parameters())
    assert sum(p.numel() for p in twin.parameters()) == count
    assert all(p.requires_grad for p in twin.parameters())
    for name, w in ae.encoder.state_dict().items():  # re-initialised, not copied
        if w.ndim > 1:
            assert not torch.equal(twin.encoder.state_dict()[name], w), name


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ConfigError, match="must be a striate.generative.Autoencoder"):
        classifier_from_encoder(torch.nn.Linear(2, 2), 3)
    with pytest.raises(ConfigError, match="num_classes"):
        classifier_like_encoder(Autoencoder(latent=2, hidden=()), 0)
    labels = torch.tensor([0, 0, 0, 1, 1])
    small = ImageSet(torch.zeros(5, 1, 2, 2, dtype=torch.uint8), labels, ["a", "b"])
    with pytest.raises(DataError, match="fewer than k=3; use a k of at most 2"):
        per_class(small, 3)


def test_per_class_takes_k_of_each_class_seeded(shared_data):
    train = load_dataset("mnist", "train", root=shared_data)
    a, b, c = per_class(train, 7, seed=1), per_class(train, 7, seed=1), per_class(train, 7, seed=2)
    assert torch.bincount(a.labels, minlength=10).tolist() == [7] * 10  # MNIST is unbalanced
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    # every chosen image is a training image of its own label (pixel fingerprints compared)
    w = torch.randint(1, 1 << 20, (28 * 28,), generator=torch.Generator().manual_seed(0))
    keys = train.images.flatten(1).long() @ w * 10 + train.labels
    assert torch.isin(a.images.flatten(1).long() @ w * 10 + a.labels, keys).all()


def test_the_pretrained_classifier_trains_with_the_trainer(shared_data):
    torch.manual_seed(0)
    few = per_class(load_dataset("mnist", "train", root=shared_data), 10)
    ae = Autoencoder((1, 28, 28), latent=16, hidden=(64,))
    net = classifier_from_encoder(ae, 10)
    quiet = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")
    trainer = Trainer(epochs=15, opt="adam", lr=3e-3, **quiet)
    loader = BatchLoader(few, 50, device="cpu")
    before = trainer.evaluate(net, loader)
    trainer.fit(net, loader)
    after = trainer.evaluate(net, loader)
    assert after["loss"] < 0.5 * before["loss"] and after["acc"] > 0.8, (before, after)
