"""Device selection shared by every part of striate."""

from __future__ import annotations

import torch

from striate.errors import StriateError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; anything else is checked to exist."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = parse_device(device, "'auto', 'cpu', 'cuda' or 'cuda:N'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StriateError(
            f"device {device!r} asked for, but CUDA is not available: use 'cpu' or 'auto'"
        )
    return dev


def parse_device(
    device: str | torch.device,
    usable: str,
    *,
    owner: str = "",
    error: type[StriateError] = StriateError,
) -> torch.device:
    """`device` as a torch.device; a name torch does not know raises `error` "owner: unknown
    device ...: use USABLE" (the names the caller takes)."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        prefix = f"{owner}: " if owner else ""
        raise error(f"{prefix}unknown device {device!r}: use {usable}") from e
