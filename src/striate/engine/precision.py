"""Mixed precision: which autocast dtype to train in, and the gradient scaler fp16 needs.

`precision="auto"` picks bf16 autocast on a CPU with native bf16 (AVX512-BF16 or AMX; elsewhere it
is emulated and slower than fp32), bf16 on a CUDA GPU that supports it and fp16 with gradient
scaling on one that does not; fp32 otherwise. Parameters and optimiser state stay fp32.

Reported numbers do not depend on the CPU: evaluation, prediction, TTA, ensembles, the doctor and
run reports always compute in fp32, whatever precision trained the weights, so the same weights
give the same accuracy on a CPU with native bf16 and on one without (beyond float rounding).
`STRIATE_CPU_BF16=1` (or `0`) overrides the capability check, so both paths can be tested on any
machine.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from striate.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles), unless the environment
    variable STRIATE_CPU_BF16 says "1" or "0"."""
    forced = os.environ.get("STRIATE_CPU_BF16", "").strip()
    if forced:
        if forced not in ("0", "1"):
            raise ConfigError(
                f"STRIATE_CPU_BF16 must be 1 (treat the CPU as having native bf16) or 0, "
                f"got {forced!r}"
            )
        return forced == "1"
    cpu = torch.cpu
    return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())


@dataclass(frozen=True)
class Precision:
    """A resolved precision: the autocast dtype (None for fp32) on one device type."""

    name: str  # "fp32", "bf16" or "fp16"
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        """fp16 gradients underflow without loss scaling (Micikevicius et al. 2018); bf16 do not."""
        return torch.amp.GradScaler(self.device_type) if self.name == "fp16" else None


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 natively: a CUDA GPU that supports it, or such a CPU."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """Check `precision` against the device and turn "auto" into a concrete choice."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    kind = device.type
    if precision == "auto":
        fallback = "fp16" if kind == "cuda" else "fp32"
        precision = "bf16" if native_bf16(device) else fallback
    if precision == "fp16" and kind != "cuda":
        raise ConfigError(
            f"precision 'fp16' needs a CUDA device (got {kind}); use 'bf16' or 'fp32' on {kind}"
        )
    if precision == "bf16" and kind not in ("cpu", "cuda"):
        raise ConfigError(f"precision 'bf16' is not supported on {kind}; use 'fp32'")
    return Precision(precision, kind)


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def resolve_channels_last(channels_last: bool | str, model: nn.Module) -> bool:
    """Channels-last memory format for models with 2-D convolutions when "auto".

    Faster convolutions on CPU (oneDNN) and on tensor-core GPUs; on CPU torch's fp32 batch norm is
    less exact in this format (see BENCHMARKS.md), so pass False to match a contiguous run.
    """
    if channels_last == "auto":
        return has_conv(model)
    if not isinstance(channels_last, bool):
        raise ConfigError(f"channels_last must be True, False or 'auto', got {channels_last!r}")
    return channels_last
