"""Progressive resizing: the first epochs on smaller images, which cost less per step.

A convolutional network with global pooling takes any input size, and its cost grows with the
number of pixels: the first epochs, which learn coarse features, can run on smaller images and
the last ones on full-sized images (fast.ai's progressive resizing, Howard & Gugger 2020,
"Fastai: a layered API for deep learning", Information 11(2); MosaicML Composer's
``ProgressiveResizing``, with its "crop" and "resize" modes).

    ProgressiveResize(epochs=3)                 random 24×24 crops of 32×32 images in epochs 0-2
    ProgressiveResize(epochs=3, scale=0.5, mode="resize")   16×16 downscaled images instead
    Resize(size)                                bilinear with antialiasing, as torchvision's

"crop" keeps the images' scale and the statistics of their small patches (what a whitening
first layer was fitted to) and shows part of each image; "resize" shows all of it, smaller.
The size changes once, at epoch ``epochs`` (fast.ai's steps, not Composer's linear growth): a
change of input size costs the convolution libraries a new plan, and batch-norm statistics
settle again after each change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from striate.checks import image_size, number, one_of, positive_int
from striate.data.augment import BatchInfo, RandomCrop, Transform
from striate.errors import StriateError

__all__ = ["ProgressiveResize", "Resize"]


class Resize(Transform):
    """Resize every image to ``size`` (an int: a square) by bilinear interpolation with
    antialiasing when shrinking (``F.interpolate(..., antialias=True)``, which follows PIL's
    and torchvision's ``Resize``)."""

    _fields = ("size",)

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = image_size("Resize", size)

    def apply(self, x, y, params):
        if tuple(x.shape[-2:]) == self.size:
            return x, y
        out = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        return out, y


class ProgressiveResize(Transform):
    """Images ``scale`` times their side (rounded, at least 1 pixel) in epochs ``0 … epochs-1``
    and full-sized from epoch ``epochs`` on.

    ``mode="crop"`` takes a window of that size at a random position per image (uniform over
    all positions); ``mode="resize"`` shrinks the whole image (`Resize`). Like
    `AlternatingFlip` it needs the epoch, which the loaders pass in ``info``; place it after
    the other geometric augmentations.
    """

    _fields = ("epochs", "scale", "mode")
    _modes = ("crop", "resize")

    def __init__(self, epochs: int, scale: float = 0.75, mode: str = "crop") -> None:
        self.epochs = positive_int("ProgressiveResize", "epochs", epochs)
        self.scale = number("ProgressiveResize", "scale", scale, low=0, high=1, low_open=True)
        self.mode = one_of("ProgressiveResize", "mode", mode, self._modes)

    def size(self, height: int, width: int, epoch: int) -> tuple[int, int]:
        """The image size this transform gives in ``epoch`` for images of height × width."""
        if epoch >= self.epochs:
            return height, width
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))

    def __call__(self, x, y, g, info=None):
        if not isinstance(info, BatchInfo):
            raise StriateError(
                "ProgressiveResize: needs the epoch; use it through BatchLoader/StreamingLoader, "
                "or pass info=BatchInfo(index=..., epoch=..., seed=...)"
            )
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            return super().__call__(x, y, g)  # the base class says what is wrong
        size = self.size(x.shape[-2], x.shape[-1], info.epoch)
        if size == tuple(x.shape[-2:]):
            return super().__call__(x, y, g)
        shrink = RandomCrop(size, padding=0) if self.mode == "crop" else Resize(size)
        return shrink(x, y, g)

    def apply(self, x, y, params):
        return x, y
