"""Unsupervised pretraining: a classifier whose body is a trained autoencoder's encoder.

    ae = train_autoencoder("mnist", epochs=5).model           # all images, no labels
    few = per_class(load_dataset("mnist", "train"), 100)      # 100 labelled images per class
    net = classifier_from_encoder(ae, 10)                     # encoder weights + a new linear head
    twin = classifier_like_encoder(ae, 10)                    # the same network, from scratch

The encoder's code (`latent` numbers, as the autoencoder made them: no activation that could
discard half of it) feeds a new `nn.Linear(latent, K)`, so the pretrained and the scratch
network differ only in how the encoder starts (lecture 12 of the reference: initialise a
supervised model from the encoder and fine-tune it with few labels; Erhan et al. 2010, "Why does
unsupervised pre-training help deep learning?", JMLR 11).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from striate.checks import boolean, positive_int
from striate.data import ImageSet
from striate.data.stratify import encode, generator, group_by_class
from striate.errors import ConfigError, DataError
from striate.generative.autoencoder import Autoencoder

__all__ = ["EncoderClassifier", "classifier_from_encoder", "classifier_like_encoder", "per_class"]


class EncoderClassifier(nn.Module):
    """`encoder` (image → code) → `head` (code → class logits)."""

    def __init__(self, encoder: nn.Module, latent: int, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(latent, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def classifier_from_encoder(
    autoencoder: Autoencoder, num_classes: int, *, freeze: bool = False
) -> EncoderClassifier:
    """A classifier on a copy of `autoencoder`'s encoder (its trained weights) and a new linear
    head; `freeze=True` keeps the encoder fixed (only the head learns: a linear probe)."""
    _check(autoencoder, "classifier_from_encoder")
    positive_int("classifier_from_encoder", "num_classes", num_classes)
    boolean("classifier_from_encoder", "freeze", freeze)
    encoder = copy.deepcopy(autoencoder.encoder)
    encoder.requires_grad_(not freeze)
    return EncoderClassifier(encoder, autoencoder.latent, num_classes)


def classifier_like_encoder(autoencoder: Autoencoder, num_classes: int) -> EncoderClassifier:
    """The network of `classifier_from_encoder(autoencoder, ...)` with a freshly initialised
    encoder (torch's default initialisation, seeded by the global generator): the scratch twin."""
    _check(autoencoder, "classifier_like_encoder")
    positive_int("classifier_like_encoder", "num_classes", num_classes)
    encoder = copy.deepcopy(autoencoder.encoder)
    for module in encoder.modules():
        if module is not encoder and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    encoder.requires_grad_(True)
    return EncoderClassifier(encoder, autoencoder.latent, num_classes)


def per_class(images: ImageSet, k: int, seed: int = 0) -> ImageSet:
    """`k` images of every class, drawn at random with `seed` (in their original order): the
    few labelled images of a semi-supervised comparison (ImageSet.sample keeps each class's share
    instead, so its counts follow the class sizes)."""
    positive_int("per_class", "k", k)
    codes, counts, names = encode(images.labels, images.classes)
    if int(counts.min()) < k:
        short = names[int(counts.argmin())]
        raise DataError(
            f"per_class: class {short} has {int(counts.min())} images, fewer than k={k}; "
            f"use a k of at most {int(counts.min())}"
        )
    idx, _, rank = group_by_class(codes, counts, generator(seed))
    return images[idx[rank < k].sort().values]


def _check(autoencoder: object, owner: str) -> None:
    if not isinstance(autoencoder, Autoencoder):
        raise ConfigError(
            f"{owner}: autoencoder must be a striate.generative.Autoencoder, got "
            f"{type(autoencoder).__name__}"
        )
