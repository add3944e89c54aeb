"""What to change, given how fast the data arrives and how fast the model trains: a pure function
of the two throughputs and the situation they were measured in, so it is tested on constructed
numbers.

The reference's point (lecture: "the data bottleneck"): a GPU that trains at 5,000 images/s
waits for a loader that decodes 800 JPEGs/s, and a faster GPU changes nothing. Whichever side is
slower sets the pace; the advice names it and the remedies that apply to it here.
"""

from __future__ import annotations

from dataclasses import dataclass

# within this factor of each other the two sides are called balanced
BALANCED = 1.25


@dataclass(frozen=True)
class Situation:
    """Where the throughputs were measured: the device trained on ("cpu", "cuda", "mps"), whether
    a CUDA GPU exists, the precision training used, whether the CPU has native bf16, whether the
    data was streamed from a folder or zip (else held in memory), the loader's worker processes,
    and the usable CPU cores."""

    device: str
    cuda_available: bool = False
    precision: str = "fp32"
    cpu_bf16: bool = False
    streaming: bool = False
    workers: int = 0
    cores: int = 1


def advice(data_per_s: float, train_per_s: float, situation: Situation) -> list[str]:
    """Lines of advice: the first says which side is the bottleneck and by how much, the rest what
    to do about it."""
    if not (data_per_s > 0 and train_per_s > 0):
        return ["nothing was measured: give the measurement more --seconds"]
    s = situation
    if train_per_s > data_per_s * BALANCED:
        ratio = train_per_s / data_per_s
        lines = [
            f"data loading is the bottleneck: it is {ratio:.1f}× slower than training "
            f"({data_per_s:,.0f} vs {train_per_s:,.0f} images/s)"
        ]
        if s.streaming:
            if s.workers < s.cores:
                lines.append(
                    f"use more decoding workers (--workers; {s.workers} now, "
                    f"{s.cores} cores usable)"
                )
            lines.append(
                "decode once to the cache and keep the set in memory: `striate train` does this "
                "for a folder or zip (decoded on first use, then loaded from the cache)"
            )
        else:
            lines.append(
                f"the set is in memory; batches are gathered and augmented on the {s.device}: "
                "use a lighter --augment"
                + (
                    ", or train on the GPU, where augmentation is fast (--device cuda)"
                    if s.device == "cpu" and s.cuda_available
                    else ""
                )
            )
        return lines
    if data_per_s > train_per_s * BALANCED:
        ratio = data_per_s / train_per_s
        lines = [
            f"training is the bottleneck: data loading delivers {ratio:.1f}× what training "
            f"consumes ({data_per_s:,.0f} vs {train_per_s:,.0f} images/s)"
        ]
        lines += _faster_training(s)
        return lines
    return [
        f"data loading and training are balanced ({data_per_s:,.0f} vs {train_per_s:,.0f} "
        "images/s): speeding up either alone gains little"
    ]


def _faster_training(s: Situation) -> list[str]:
    lines = []
    if s.device == "cpu":
        if s.cuda_available:
            lines.append("a CUDA GPU is present: train on it (--device cuda)")
        else:
            lines.append('use a machine with a GPU (README: "Training on a cloud GPU")')
        if s.precision == "fp32" and s.cpu_bf16:
            lines.append("this CPU has native bf16: train in bf16 (--precision bf16 or auto)")
    elif s.device == "cuda":
        if s.precision == "fp32":
            lines.append("train with mixed precision (--precision auto: bf16, or fp16 on old GPUs)")
        lines.append("a larger --batch-size keeps the GPU busier, if the accuracy allows")
    else:
        lines.append("a smaller model or a larger --batch-size trains more images per second")
    return lines
