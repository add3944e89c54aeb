"""`striate env`: what decides speed and correctness on this machine (versions, GPUs, the CPU's
bf16, threads, free memory and disk) and a short measurement of data loading against training,
with advice on the bottleneck."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from striate.cli.options import DEVICE


def _opt(flag: str, help: str, show_default: bool = True) -> Any:  # noqa: A002
    return typer.Option(flag, help=help, show_default=show_default)


def env(
    data: Annotated[
        str,
        _opt(
            "--data",
            "Dataset to load from: a name (see `striate datasets`) or .npz, held in memory; or an "
            "image folder or .zip, streamed (decoded by --workers processes).",
        ),
    ] = "digits",
    root: Annotated[
        Path | None,
        _opt(
            "--root",
            "Folder holding the dataset's files [default: $STRIATE_DATA, else "
            "~/.cache/striate/datasets].",
            False,
        ),
    ] = None,
    model: Annotated[str, _opt("--model", "Model to train (`striate models` lists them).")] = (
        "convnet_small"
    ),
    batch_size: Annotated[int, _opt("--batch-size", "Images per batch.")] = 64,
    device: Annotated[str, DEVICE] = "auto",
    precision: Annotated[
        str, _opt("--precision", "Training precision: auto, fp32, bf16, fp16.")
    ] = ("auto"),
    augment: Annotated[
        str, _opt("--augment", "Augmentation the loader applies (as `striate train --augment`).")
    ] = "auto",
    workers: Annotated[
        int, _opt("--workers", "Decoding processes for a streamed folder or zip.")
    ] = 2,
    seconds: Annotated[
        float,
        _opt(
            "--seconds",
            "Seconds of measuring, half for data loading and half for training (plus the set-up: "
            "loading the set, building the model).",
        ),
    ] = 10.0,
    measure: Annotated[
        bool, _opt("--measure/--no-measure", "Measure data loading against training.")
    ] = True,
    runs: Annotated[
        Path, _opt("--runs", "Folder where runs are written (its free disk space is reported).")
    ] = Path("runs"),
    as_json: Annotated[bool, _opt("--json", "Print the facts as JSON.")] = False,
    progress: Annotated[
        bool, _opt("--progress/--no-progress", "Show what is being measured (on stderr).")
    ] = True,
) -> None:
    """Print what decides speed and correctness here, and where the bottleneck is."""
    from striate.environment import Situation, advice, machine_facts
    from striate.environment import measure as run_measurement

    facts = machine_facts(runs)
    result, lines = None, []
    if measure:
        result = run_measurement(
            data,
            root,
            model,
            batch_size,
            device,
            seconds,
            workers,
            augment,
            precision,
            progress=progress,
        )
        situation = Situation(
            device=result.device.split(":")[0],
            cuda_available=facts["cuda"]["available"],
            precision=result.precision,
            cpu_bf16=facts["cpu"]["native_bf16"],
            streaming=result.streaming,
            workers=result.workers,
            cores=facts["cpu"]["usable_cores"] or 1,
        )
        lines = advice(result.loading.images_per_s, result.training.images_per_s, situation)
    if as_json:
        out = {**facts, "measurement": result.as_dict() if result else None, "advice": lines}
        typer.echo(json.dumps(out, indent=2))
        return
    for line in describe(facts):
        typer.echo(line)
    if result is not None:
        for line in describe_measurement(result):
            typer.echo(line)
        for line in lines:
            typer.echo(f"advice: {line}")


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def describe(facts: dict[str, Any]) -> list[str]:
    """The facts as lines of text."""
    cuda, cpu = facts["cuda"], facts["cpu"]
    if cuda["built_with"] is None:
        cuda_line = "no CUDA (this torch is a CPU-only build)"
    elif not cuda["available"]:
        cuda_line = f"CUDA {cuda['built_with']} build, but no usable GPU (no device or no driver)"
    else:
        cuda_line = f"{cuda['built_with']}, cuDNN {cuda['cudnn'] or 'none'}"
    lines = [
        f"striate   {facts['striate']}",
        f"python    {facts['python']} ({facts['python_executable']})",
        f"platform  {facts['platform']}",
        f"torch     {facts['torch']}",
        f"CUDA      {cuda_line}",
    ]
    for gpu in cuda["devices"]:
        lines.append(
            f"GPU       cuda:{gpu['index']} {gpu['name']}, {_gib(gpu['memory_total'])} "
            f"({_gib(gpu['memory_free'])} free), compute capability {gpu['capability']}, "
            f"{gpu['multiprocessors']} SMs; precision auto: {gpu['precision_auto']}"
        )
    forced = f", {cpu['bf16_forced_by']}" if cpu["bf16_forced_by"] else ""
    lines += [
        f"CPU       {cpu['model']}, {cpu['cores']} cores ({cpu['usable_cores']} usable); native "
        f"bf16: {'yes' if cpu['native_bf16'] else 'no'}{forced}; precision auto: "
        f"{cpu['precision_auto']}",
        f"threads   torch {facts['threads']['torch']}, inter-op {facts['threads']['interop']}",
        f"memory    {_gib(facts['memory']['available'])} available of "
        f"{_gib(facts['memory']['total'])}",
        f"disk      {_gib(facts['disk']['free'])} free of {_gib(facts['disk']['total'])} at "
        f"{facts['disk']['path']}",
    ]
    return lines


def describe_measurement(m: Any) -> list[str]:
    """The measurement as lines of text."""
    shape = "×".join(str(s) for s in m.image_shape)
    source = f"{m.loader}, {m.images_in_set:,} images {shape}, augment {m.augment}"
    if m.streaming:
        source += f", {m.workers} workers"
    return [
        f"loading   {m.loading.images_per_s:>12,.0f} images/s  ({m.data}: {source}; "
        f"batch {m.batch_size} on {m.device}, {m.loading.seconds:.1f} s)",
        f"training  {m.training.images_per_s:>12,.0f} images/s  ({m.model}, {m.precision} on "
        f"{m.device}, forward+backward+step, batch {m.batch_size}, {m.training.seconds:.1f} s)",
    ]
