"""Classical image filtering: fixed kernels (Sobel, Prewitt, Laplacian, box, custom) convolved with
images and batches, with the three ways the course notes handle the image's edge.

Edge handling (003_*.txt, "High-pass Filters"):

- ``"extend"``: the nearest edge pixel is repeated outwards (corners extend in 90° wedges, other
  edge pixels in lines): scipy.ndimage's ``mode="nearest"``, torch's ``"replicate"`` padding.
- ``"pad"``: a border of zeros (black pixels): ``mode="constant", cval=0``.
- ``"crop"``: output pixels that would need values beyond the edge are skipped, so the output is
  smaller by the kernel's size minus one ("valid" convolution).

`convolve` is a true convolution (the kernel flipped), as ``scipy.ndimage.convolve``; OpenCV's
``filter2D`` correlates instead, which only flips the sign of the antisymmetric edge kernels.
Every channel is filtered on its own, the whole batch in one grouped ``conv2d``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from striate.checks import one_of
from striate.errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["EDGES", "KERNELS", "QUIZ_KERNELS", "convolve", "kernel", "plot_filters"]

EDGES = ("extend", "pad", "crop")
_PADDING = {"extend": "replicate", "pad": "constant"}

KERNELS: dict[str, tuple[tuple[float, ...], ...]] = {
    # first derivatives: x responds to vertical edges (left-right change), y to horizontal ones
    "sobel_x": ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)),
    "sobel_y": ((-1, -2, -1), (0, 0, 0), (1, 2, 1)),
    "prewitt_x": ((-1, 0, 1), (-1, 0, 1), (-1, 0, 1)),
    "prewitt_y": ((-1, -1, -1), (0, 0, 0), (1, 1, 1)),
    # second derivative, 4- and 8-neighbour: a high-pass filter that sums to zero
    "laplacian": ((0, 1, 0), (1, -4, 1), (0, 1, 0)),
    "laplacian_8": ((1, 1, 1), (1, -8, 1), (1, 1, 1)),
    "box": ((1 / 9,) * 3,) * 3,
    "sharpen": ((0, -1, 0), (-1, 5, -1), (0, -1, 0)),
}
"""Named 3×3 kernels (rows top to bottom)."""

QUIZ_KERNELS: dict[str, tuple[tuple[float, ...], ...]] = {
    "a": ((0, -1, 0), (-1, 4, -1), (0, -1, 0)),  # high-pass: edges in every direction
    "b": ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)),  # left/right difference: vertical edges
    "c": ((1 / 9,) * 3,) * 3,  # averaging: a low-pass blur
    "d": ((-1, -2, -1), (0, 0, 0), (1, 2, 1)),  # top/bottom difference: horizontal edges
}
"""The four kernels of the notes' quiz 5.24 ("which would be best for finding and enhancing
horizontal edges and lines?", answer d: "the difference between the top and bottom edges
surrounding a given pixel"). The figure is missing from the notes; these are the course's four
kinds of kernel, with d as its explanation describes it."""


def kernel(name_or_values: str | np.ndarray | torch.Tensor) -> torch.Tensor:
    """A 2-D float64 kernel from a name of KERNELS or from values (odd or even sizes)."""
    if isinstance(name_or_values, str):
        name = one_of("filters", "kernel", name_or_values, tuple(KERNELS), error=InputError)
        return torch.tensor(KERNELS[name], dtype=torch.float64)
    k = torch.as_tensor(np.asarray(name_or_values, dtype=np.float64))
    if k.dim() != 2 or min(k.shape) < 1:
        raise InputError(f"filters: a kernel must be a 2-D array, got shape {tuple(k.shape)}")
    if not torch.isfinite(k).all():
        raise InputError("filters: the kernel holds NaN or infinite values")
    return k


def convolve(
    images: np.ndarray | torch.Tensor,
    weights: str | np.ndarray | torch.Tensor,
    edge: str = "extend",
) -> torch.Tensor:
    """Convolve each channel of `images` with `weights`, handling the border by `edge`.

    `images`: H×W, C×H×W or N×C×H×W, any real dtype (uint8 is taken as float); the result is a
    float tensor of the same layout (float64 for float64 input, else float32), smaller by the
    kernel's size minus one under ``edge="crop"``. The kernel's centre is at index ``size // 2``
    on each axis, as in scipy.ndimage.
    """
    edge = one_of("filters", "edge", edge, EDGES, error=InputError)
    x = torch.as_tensor(images)
    if x.dim() not in (2, 3, 4):
        raise InputError(f"filters: images must be H×W, C×H×W or N×C×H×W, got {x.dim()} dimensions")
    if x.is_complex() or x.dtype == torch.bool:
        raise InputError(f"filters: images must be real numbers, got {x.dtype}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    shape = x.shape
    x4 = x.reshape(-1, 1, *shape[-2:]).to(dtype)
    k = kernel(weights).to(dtype=dtype, device=x4.device)
    kh, kw = k.shape
    if edge == "crop" and (kh > shape[-2] or kw > shape[-1]):
        raise InputError(
            f"filters: a {kh}×{kw} kernel leaves nothing of a {shape[-2]}×{shape[-1]} image "
            "with edge='crop': use edge='extend' or 'pad', or a smaller kernel"
        )
    if edge != "crop":
        # scipy's centre: size // 2 before, the rest after (for a flipped kernel: mirrored)
        top, left = (kh - 1) - kh // 2, (kw - 1) - kw // 2
        pad = (left, kw - 1 - left, top, kh - 1 - top)
        x4 = F.pad(x4, pad, mode=_PADDING[edge])
    out = F.conv2d(x4, k.flip(0, 1)[None, None])  # conv2d correlates: flipping convolves
    return out.reshape(*shape[:-2], *out.shape[-2:])


def plot_filters(
    image: np.ndarray | torch.Tensor,
    names: tuple[str, ...] = ("sobel_x", "sobel_y", "laplacian", "box"),
    edge: str = "extend",
) -> Figure:
    """The image (greyscale H×W, or C×H×W averaged to grey) and its response to each kernel."""
    import matplotlib.pyplot as plt

    x = torch.as_tensor(image).float()
    if x.dim() == 3:
        x = x.mean(0)
    if x.dim() != 2:
        raise InputError(f"filters: plot_filters takes one H×W or C×H×W image, got {x.dim()}-D")
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(2.6 * (len(names) + 1), 2.9))
    axes[0].imshow(x.numpy(), cmap="gray")
    axes[0].set_title("image")
    for ax, name in zip(axes[1:], names, strict=True):
        response = convolve(x, name, edge)
        if name != "box":
            response = response.abs()  # edges of either sign
        ax.imshow(response.numpy(), cmap="gray")
        ax.set_title(name)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig
