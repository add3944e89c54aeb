"""A configurable ConvNet of the common pattern ``[(CONV-RELU)×N - POOL?]×M - (FC-RELU)×K - FC``.

The pattern of CS231n lecture 5 (the softmax is in the loss). Stage ``i`` of M = len(channels)
has N = ``convs_per_stage`` convolutions of width ``channels[i]``, each ``kernel_size`` with
padding ``kernel_size // 2`` (the size is kept), followed by [a norm] and the activation; a
2×2 pool with stride 2 ends the stage and halves the size (rounding down). Then the features are
flattened (or averaged over space with ``global_pool``) and pass K hidden FC layers and a final
Linear to the class scores.

The norm is BatchNorm2d (``batchnorm=True``, the default) or, with ``norm``, one of
`striate.models.norms.NORMS` ("batch", "layer", "instance", "group" with ``norm_groups`` groups,
"none"); ``norm`` overrides ``batchnorm`` when given.

Registered as ``"convnet"`` (these defaults) and ``"convnet_small"`` (one conv per stage: trains
on the 8×8 digits in seconds and works on 28×28 and 32×32 too).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from striate.checks import boolean, int_sequence, one_of, positive_int
from striate.errors import ConfigError
from striate.models.mlp import make_activation
from striate.models.norms import NORMS, make_norm
from striate.models.registry import CIFAR, check_dropout, check_io, register_variant

__all__ = ["ConvNet", "convnet"]

_POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class ConvNet(nn.Module):
    """``[(CONV-[BN]-ACT)×N - POOL?]×M - (FC-ACT-[DROPOUT])×K - FC`` for C×H×W inputs."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        convs_per_stage: int = 2,
        pool: bool | str | None = True,
        kernel_size: int = 3,
        batchnorm: bool = True,
        fc: Sequence[int] = (128,),
        dropout: float = 0.0,
        activation: str = "relu",
        global_pool: bool = False,
        norm: str | None = None,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        owner = "ConvNet"
        (c, h, w), num_classes = check_io(in_shape, num_classes, owner)
        channels = int_sequence(owner, "channels", channels, min_len=1)
        convs_per_stage = positive_int(owner, "convs_per_stage", convs_per_stage)
        kernel_size = positive_int(owner, "kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ConfigError(
                f"{owner}: kernel_size must be odd (1, 3, 5...) so that padding kernel_size // 2 "
                f"keeps the image size, got {kernel_size}"
            )
        batchnorm = boolean(owner, "batchnorm", batchnorm)
        if norm is None:
            norm = "batch" if batchnorm else "none"
        norm = one_of(owner, "norm", norm, NORMS)
        for out in channels:  # group norm's G must divide every width: checked at the door
            make_norm(norm, out, norm_groups)
        fc = int_sequence(owner, "fc", fc)
        dropout = check_dropout(dropout, owner)
        global_pool = boolean(owner, "global_pool", global_pool)
        make_activation(activation, owner)
        pool_kind = _pool_kind(pool, owner)
        if pool_kind is not None and min(h, w) >> len(channels) < 1:
            allowed = min(h, w).bit_length() - 1  # floor(log2(min(h, w)))
            raise ConfigError(
                f"{owner}: {len(channels)} pooled stages would shrink a {h}×{w} input below 1×1; "
                f"this input size allows at most {allowed} stage(s): use fewer channels entries, "
                f"pool=None, or larger images"
            )

        layers: list[nn.Module] = []
        width = c
        for out in channels:
            for _ in range(convs_per_stage):
                # no conv bias before a norm: its shift would cancel it
                layers.append(
                    nn.Conv2d(
                        width, out, kernel_size, padding=kernel_size // 2, bias=norm == "none"
                    )
                )
                if norm != "none":
                    layers.append(make_norm(norm, out, norm_groups))
                layers.append(make_activation(activation))
                width = out
            if pool_kind is not None:
                layers.append(_POOLS[pool_kind](2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity()

        stages = len(channels) if pool_kind is not None else 0
        # a 2×2/stride-2 pool maps size s to floor(s / 2)
        self.feature_shape = (width, 1, 1) if global_pool else (width, h >> stages, w >> stages)
        self.flat_features = width * self.feature_shape[1] * self.feature_shape[2]

        head: list[nn.Module] = []
        n_in = self.flat_features
        for n_out in fc:
            head += [nn.Linear(n_in, n_out), make_activation(activation)]
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            n_in = n_out
        if not fc and dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(n_in, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W."""
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))  # flatten: works on channels_last too


def _pool_kind(pool: bool | str | None, owner: str) -> str | None:
    if pool is True:
        return "max"
    if pool is None or pool is False:
        return None
    if isinstance(pool, str) and pool in _POOLS:
        return pool
    raise ConfigError(
        f"{owner}: pool must be True (max), 'max', 'avg', or None/False (no pooling), got {pool!r}"
    )


convnet = register_variant(
    "convnet",
    ConvNet,
    "Configurable ConvNet [(CONV-BN-RELU)x2-POOL]x2-FC-RELU-FC, widths 32 and 64.",
    **CIFAR,
)
register_variant(
    "convnet_small",
    convnet,
    "Small ConvNet [CONV-BN-RELU-POOL]x2-FC-RELU-FC for 8x8 digits up to 32x32 images.",
    defaults={"convs_per_stage": 1},
    **CIFAR,
)
