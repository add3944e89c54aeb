"""What ``precision="auto"`` trains in on this CPU, and each convolution of the CIFAR-10 recipes'
network in bf16 autocast against fp32.

    python benchmarks/conv_precision.py               # batch 500, 3 repeats (25 s, 2-core Zen 4)
    python benchmarks/conv_precision.py --quick       # batch 16, a smoke test; records nothing

`precision="auto"` (`striate.engine.precision`) picks bf16 autocast on a CPU that computes bf16
natively (AVX512-BF16 or AMX) and fp32 elsewhere, where bf16 is emulated. This measures whether
that choice is right here, layer by layer: every convolution of ``cifar_fast`` (the network of
``--recipe cifar10-fast``, ``cifar10-muon`` and ``cifar10-quick``; airbench94's) with the input
shape it sees at 32×32, forward and backward, channels-last as the recipes train, in fp32 and
under ``torch.autocast("cpu", torch.bfloat16)``; then the whole network's forward and backward
the same two ways. Each time is the median of ``--repeats`` calls after one warm-up, under the
malloc setting the Trainer trains under. Rows: milliseconds per call, and bf16/fp32 (below 1: bf16
faster).
"""

from __future__ import annotations

import argparse
import datetime

import torch
from torch import nn

from _common import (
    RESULTS,
    append_record,
    median_time,
    print_machine,
    print_table,
    row,
    same_malloc_as_trainer,
)
from striate.engine.precision import resolve_precision
from striate.models import create

RECORD = RESULTS / "conv_precision.jsonl"


def conv_inputs(model: nn.Module, batch: int) -> list[tuple[nn.Conv2d, tuple[int, ...]]]:
    """Each convolution of `model` with the input shape it sees at batch `batch`, 32×32."""
    seen: list[tuple[nn.Conv2d, tuple[int, ...]]] = []
    hooks = [
        m.register_forward_pre_hook(lambda m, args: seen.append((m, (batch, *args[0].shape[1:]))))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    return seen


def forward_backward(module: nn.Module, x: torch.Tensor, bf16: bool):
    """One forward and backward of `module` on `x`, in bf16 autocast or fp32."""

    def call() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = module(x)
        out.float().sum().backward()

    return call


def measure(batch: int, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    model = create("cifar_fast", num_classes=10).to(memory_format=torch.channels_last)
    rows = []

    def compare(name: str, module: nn.Module, shape: tuple[int, ...]) -> None:
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_()
        ms = {}
        for label, bf16 in (("fp32", False), ("bf16 autocast", True)):
            ms[label] = 1e3 * median_time(forward_backward(module, x, bf16), repeats)
            rows.append(row(name, label, ms[label], "ms", "forward + backward"))
        rows.append(row(name, "bf16 / fp32", ms["bf16 autocast"] / ms["fp32"], "×"))

    with same_malloc_as_trainer():
        for conv, shape in conv_inputs(model, batch):
            k = "×".join(map(str, conv.kernel_size))
            name = f"conv {conv.in_channels}→{conv.out_channels} {k}, {shape[2]}×{shape[3]}"
            compare(name, conv, shape)
        compare("whole network", model, (batch, 3, 32, 32))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="batch 16, one repeat; no record")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    batch, repeats = (16, 1) if args.quick else (args.batch, args.repeats)
    print_machine()
    auto = resolve_precision("auto", torch.device("cpu"))
    print(f'precision="auto" trains in {auto.name} on this CPU; batch {batch}, {repeats} repeats')
    rows = measure(batch, repeats)
    print_table(rows)
    if not args.quick:
        date = datetime.date.today().isoformat()
        extra = {"date": date, "batch": batch, "auto": auto.name}
        append_record(RECORD, [{**r, **extra} for r in rows])


if __name__ == "__main__":
    main()
