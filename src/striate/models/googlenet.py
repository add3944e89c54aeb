"""GoogLeNet (Inception v1): a stem, nine Inception modules and global average pooling.

Szegedy et al. 2014, "Going Deeper with Convolutions" (arXiv:1409.4842); CS231n lecture 9. An
Inception module runs four branches side by side on the same input and concatenates their
channels: a 1×1 conv; a 1×1 "bottleneck" then a 3×3; a 1×1 bottleneck then a "5×5"; a 3×3/1
max-pool then a 1×1 projection. The 1×1 bottlenecks keep the cost down; the head is global
average pooling, dropout and one FC layer, so the network has 22 weight layers but only ~6.6M
parameters.

The layout and every module name are torchvision's (``conv1.conv``/``conv1.bn``, ``maxpool1``,
``inception3a.branch1`` ... ``branch4``, ``aux1``/``aux2``, ``fc``), so a torchvision state
dict loads as it is. Each conv is a ``BasicConv2d``: conv without bias, BatchNorm (eps 1e-3),
ReLU; the batch norm comes from torchvision's port, not the 2014 paper. Also from torchvision:
**branch3 uses a 3×3 conv where the paper has 5×5** (pytorch/vision issue 906); it is kept so
that the published weights fit. Its pretrained weights also expect ``transform_input=True``.

Auxiliary heads (``aux_logits=True``): two small classifiers on inception4a and inception4d,
whose losses the paper adds with weight 0.3 during training. ``forward(x)`` always returns the
main logits alone, so the model trains with the Trainer like any other (the heads are then
unused); `GoogLeNet.forward_with_aux` returns ``GoogLeNetOutputs(logits, aux_logits2,
aux_logits1)`` in torchvision's order, and `googlenet_loss` adds the weighted auxiliary losses.

``stem="cifar"`` replaces the 7×7/2 conv1 by a 3×3/1 conv and drops maxpool1 and maxpool2 (they
become ``nn.Identity``), for small images such as 32×32 CIFAR: the Inception modules then see
32×32, 16×16 and 8×8 maps instead of 1×1 ones. Average pooling is adaptive, so any input at
least the stem's minimum (`min_input_size`) works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import boolean, positive_number
from striate.errors import ConfigError
from striate.models.registry import IMAGENET, check_dropout, check_io, register_variant
from striate.models.stems import STEMS, check_min_side, check_stem

__all__ = [
    "STEMS",
    "BasicConv2d",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "Inception",
    "InceptionAux",
    "googlenet",
    "googlenet_loss",
    "min_input_size",
]

# (name, in, #1x1, #3x3 reduce, #3x3, #"5x5" reduce, #"5x5", pool proj): the paper's table 1
_INCEPTIONS = (
    ("inception3a", 192, 64, 96, 128, 16, 32, 32),
    ("inception3b", 256, 128, 128, 192, 32, 96, 64),
    ("inception4a", 480, 192, 96, 208, 16, 48, 64),
    ("inception4b", 512, 160, 112, 224, 24, 64, 64),
    ("inception4c", 512, 128, 128, 256, 24, 64, 64),
    ("inception4d", 512, 112, 144, 288, 32, 64, 64),
    ("inception4e", 528, 256, 160, 320, 32, 128, 128),
    ("inception5a", 832, 256, 160, 320, 32, 128, 128),
    ("inception5b", 832, 384, 192, 384, 48, 128, 128),
)

# the layers that change the spatial size, as (kernel, stride, padding, ceil_mode), per stem
_SIZE_LAYERS = {
    "imagenet": (
        (7, 2, 3, False),  # conv1
        (3, 2, 0, True),  # maxpool1
        (3, 2, 0, True),  # maxpool2
        (3, 2, 0, True),  # maxpool3
        (2, 2, 0, True),  # maxpool4
    ),
    "cifar": ((3, 2, 0, True), (2, 2, 0, True)),  # maxpool3, maxpool4 (conv1 keeps the size)
}


class GoogLeNetOutputs(NamedTuple):
    """Main and auxiliary logits, in torchvision's order; the aux ones are None without heads."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor | None
    aux_logits1: torch.Tensor | None


class BasicConv2d(nn.Module):
    """Conv (no bias) - BatchNorm (eps 1e-3) - ReLU, torchvision's building block."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(BN(conv(x)))."""
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches concatenated along channels (torchvision: branch3 is 3×3)."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),  # 5×5 in the paper
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×in×H×W to N×out_channels×H×W."""
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4×4 average pool, 1×1 conv to 128, FC 1024, dropout 0.7, FC."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores N×num_classes from an intermediate feature map."""
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        x = F.dropout(F.relu(self.fc1(x), inplace=True), 0.7, training=self.training)
        return self.fc2(x)


class GoogLeNet(nn.Module):
    """GoogLeNet with torchvision's names; ``forward`` returns the main logits only."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int = 1000,
        aux_logits: bool = False,
        stem: str = "imagenet",
        dropout: float = 0.2,
        transform_input: bool = False,
    ) -> None:
        super().__init__()
        owner = "GoogLeNet"
        (c, h, w), num_classes = check_io(in_shape, num_classes, owner)
        self.aux_logits = boolean(owner, "aux_logits", aux_logits)
        self.transform_input = boolean(owner, "transform_input", transform_input)
        dropout = check_dropout(dropout, owner)
        check_stem(stem, owner)
        check_min_side(owner, h, w, stem, min_input_size(stem), min_input_size("cifar"))
        if self.transform_input and c != 3:
            raise ConfigError(
                f"{owner}: transform_input=True maps ImageNet-normalised RGB to torchvision's "
                f"pretrained input scale and needs 3 channels, got {c}; use transform_input=False"
            )
        self.stem = stem

        if stem == "imagenet":
            self.conv1 = BasicConv2d(c, 64, kernel_size=7, stride=2, padding=3)
            self.maxpool1: nn.Module = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        else:
            self.conv1 = BasicConv2d(c, 64, kernel_size=3, stride=1, padding=1)
            self.maxpool1 = nn.Identity()
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = (
            nn.MaxPool2d(3, stride=2, ceil_mode=True) if stem == "imagenet" else nn.Identity()
        )

        # registered in forward order, so the state dict's key order is torchvision's
        for name, *channels in _INCEPTIONS:
            setattr(self, name, Inception(*channels))
            if name == "inception3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        if self.aux_logits:
            self.aux1: InceptionAux | None = InceptionAux(512, num_classes)
            self.aux2: InceptionAux | None = InceptionAux(528, num_classes)
        else:
            self.aux1 = None
            self.aux2 = None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's: truncated normal, std 0.01, cut at ±2 std (scipy truncnorm(-2, 2))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                _trunc_normal_(m.weight, std=0.01)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised input to the (x - 0.5)/0.5 scale of torchvision's weights."""
        if not self.transform_input:
            return x
        mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return x * (std / 0.5) + (mean - 0.5) / 0.5

    def _body(self, x: torch.Tensor, with_aux: bool) -> GoogLeNetOutputs:
        x = self._transform(x)
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if with_aux and self.aux1 is not None else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if with_aux and self.aux2 is not None else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return GoogLeNetOutputs(x, aux2, aux1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Main class scores (logits), N×num_classes, in train and eval mode alike."""
        return self._body(x, with_aux=False).logits

    def forward_with_aux(self, x: torch.Tensor) -> GoogLeNetOutputs:
        """Main and auxiliary logits (aux None without ``aux_logits``), in either mode."""
        return self._body(x, with_aux=True)


@torch.no_grad()
def _trunc_normal_(w: torch.Tensor, std: float) -> torch.Tensor:
    """N(0, std²) cut at ±2·std, by the inverse CDF: ``√2·std·erfinv(u)``, u uniform.

    u ranges over ``2Φ(±2) - 1 = ±erf(√2)``; one pass, unlike the rejection sampling of
    ``nn.init.trunc_normal_``, which is an order of magnitude slower on large layers.
    """
    edge = math.erf(math.sqrt(2.0))
    w.uniform_(-edge, edge).erfinv_().mul_(std * math.sqrt(2.0))
    return w.clamp_(-2 * std, 2 * std)  # erfinv's rounding at the edges


def googlenet_loss(
    outputs: GoogLeNetOutputs | torch.Tensor, target: torch.Tensor, aux_weight: float = 0.3
) -> torch.Tensor:
    """Cross-entropy of the main logits plus ``aux_weight`` × that of each auxiliary head.

    Szegedy et al. 2014, §5: the auxiliary losses are "added to the total loss of the network
    with a discount weight (0.3)". Plain logits (or absent heads) give the main loss alone.
    """
    aux_weight = positive_number("googlenet_loss", "aux_weight", aux_weight)
    if isinstance(outputs, torch.Tensor):
        return F.cross_entropy(outputs, target)
    if not isinstance(outputs, tuple) or len(outputs) != 3:
        raise ConfigError(
            f"googlenet_loss: outputs must be the logits tensor or the GoogLeNetOutputs of "
            f"GoogLeNet.forward_with_aux, got {type(outputs).__name__}"
        )
    logits, aux2, aux1 = outputs
    loss = F.cross_entropy(logits, target)
    for aux in (aux1, aux2):
        if aux is not None:
            loss = loss + aux_weight * F.cross_entropy(aux, target)
    return loss


def min_input_size(stem: str = "imagenet") -> int:
    """The smallest height (and width) that GoogLeNet with ``stem`` accepts."""
    check_stem(stem, "min_input_size")
    return next(s for s in range(1, 1024) if _out_size(s, stem) is not None)


def _out_size(s: int, stem: str) -> int | None:
    """The final map's size for input size ``s``, None where a layer would get too small.

    torch's rule for conv/pool output sizes; in ceil mode a last window that would start
    in the right padding is dropped.
    """
    for k, stride, pad, ceil in _SIZE_LAYERS[stem]:
        span = s + 2 * pad - k
        out = (-(-span // stride) if ceil else span // stride) + 1
        if ceil and (out - 1) * stride >= s + pad:
            out -= 1
        if out < 1:
            return None
        s = out
    return s


googlenet = register_variant(
    "googlenet",
    GoogLeNet,
    "GoogLeNet (Inception v1), torchvision layout; 6.6M parameters for 1000 classes.",
    **IMAGENET,
)
