"""Shared by the search tests: tiny trials on the bundled digits."""

from __future__ import annotations

from striate.train import TrainConfig

TINY = dict(train_size=300, epochs=1, device="cpu", precision="fp32")


def tiny(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})
