"""The check every export passes before it is written: the exported model's outputs against eager
PyTorch's on the same real images, at several batch sizes (1, 7 and 64 by default, none of them
the batch the export was traced with, so a batch size or a branch baked into the graph shows)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from striate.errors import StriateError

BATCH_SIZES = (1, 7, 64)
TOLERANCE = 1e-3  # on logits: float32 kernels of different runtimes agree to ~1e-5 here


class ParityError(StriateError):
    """The exported model's outputs differ from eager PyTorch's by more than the tolerance."""


@dataclass(frozen=True)
class Parity:
    """The largest absolute difference of the logits over every batch, and what was compared."""

    max_abs_diff: float
    tolerance: float
    batch_sizes: tuple[int, ...]
    images: int
    inputs: str
    top1_agreement: float

    def as_dict(self) -> dict:
        return asdict(self) | {"batch_sizes": list(self.batch_sizes)}  # as JSON reads it back

    def line(self) -> str:
        sizes = ", ".join(map(str, self.batch_sizes))
        return (
            f"parity with eager PyTorch: max abs difference of the logits {self.max_abs_diff:.2e} "
            f"(tolerance {self.tolerance:g}; batches of {sizes} from {self.images} images: "
            f"{self.inputs}; top-1 agreement {self.top1_agreement:.0%})"
        )


def batches(images: torch.Tensor, sizes: Sequence[int] = BATCH_SIZES) -> list[torch.Tensor]:
    """Batches of the given sizes cut from `images`, repeated (every other pass mirrored, so the
    rows differ) where there are fewer images than a batch needs."""
    out = []
    for n in sizes:
        reps = [images if k % 2 == 0 else images.flip(-1) for k in range(-(-n // len(images)))]
        out.append(torch.cat(reps)[:n].contiguous())
    return out


@torch.no_grad()
def compare(
    eager: Callable[[torch.Tensor], torch.Tensor],
    exported: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    *,
    inputs: str,
    tolerance: float = TOLERANCE,
    sizes: Sequence[int] = BATCH_SIZES,
    what: str = "the exported model",
) -> Parity:
    """Run both on each batch; a ParityError when the logits differ by more than `tolerance`
    or the exported model answers in another shape."""
    worst, agree, total = 0.0, 0, 0
    for x in batches(images, sizes):
        want = eager(x).float()
        got = torch.as_tensor(exported(x)).float()
        if got.shape != want.shape:
            raise ParityError(
                f"{what} answers a batch of {len(x)} with shape {tuple(got.shape)}, eager PyTorch "
                f"with {tuple(want.shape)}: its batch dimension is not dynamic"
            )
        diff = (got - want).abs().max().item() if want.numel() else 0.0
        worst = max(worst, diff if diff == diff else float("inf"))  # NaN counts as a mismatch
        agree += int((got.argmax(1) == want.argmax(1)).sum())
        total += len(x)
    parity = Parity(worst, tolerance, tuple(sizes), len(images), inputs, agree / max(total, 1))
    if not worst <= tolerance:
        raise ParityError(
            f"{what} differs from eager PyTorch by {worst:.3g} (max abs difference of the "
            f"logits, tolerance {tolerance:g}) on {inputs}; nothing was written"
        )
    return parity
