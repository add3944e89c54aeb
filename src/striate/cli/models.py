"""`striate models`: list the registered models; `striate models show NAME`: a model's summary.

Models are built on PyTorch's ``meta`` device, which has shapes but no values: parameters are
counted without allocating or initialising them, and ``--flops`` / ``show`` run their forward
pass without computing anything, so even 224×224 summaries of every model take seconds. A model
that cannot run on ``meta`` is built on the CPU instead.

Each model is listed and shown at its own input and classes (`striate.models.default_input`:
torchvision's 3×224×224 and 1000 classes for an ImageNet architecture, 3×32×32 and 10 for a CIFAR
one) unless --input / --num-classes say otherwise. Names are torchvision's (underscores); a hyphen
is read as an underscore.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from striate.progress import output_console, progress_bar

app = typer.Typer(
    help="List the registered models, or show one model's layer-by-layer summary.",
    invoke_without_command=True,
    no_args_is_help=False,
)
console = output_console()

INPUT = typer.Option(
    None, "--input", help="Input shape C,H,W such as 3,32,32 [default: the model's own]."
)
CLASSES = typer.Option(None, "--num-classes", help="Number of classes [default: the model's].")


@app.callback()
def _list(
    ctx: typer.Context,
    input_shape: str | None = INPUT,
    num_classes: int | None = CLASSES,
    flops: bool = typer.Option(
        False, "--flops", help="Also run one forward pass per model to count MACs and FLOPs."
    ),
) -> None:
    """Every registered model: what it is, its default input, parameters (and MACs/FLOPs)."""
    if ctx.invoked_subcommand is not None:
        return
    from striate import models
    from striate.errors import ConfigError
    from striate.models.summary import human_count, parameter_count

    shape = parse_shape(input_shape) if input_shape is not None else None
    table = Table(title="registered models", title_justify="left")
    table.add_column("name and description", overflow="fold", ratio=1)
    for col in ("input", "classes", "params", *(("MACs", "FLOPs") if flops else ())):
        table.add_column(col, no_wrap=True, justify="left" if col == "input" else "right")
    names = models.available()
    label = "counting parameters and MACs" if flops else "counting parameters"
    with progress_bar(label, len(names), "models") as advance:
        for name in names:
            row, about = [], escape(models.describe(name))
            try:
                model, in_shape, k = _build(name, shape, num_classes, {})
                row += ["x".join(map(str, in_shape)), str(k), f"{parameter_count(model)[0]:,}"]
                if flops:
                    s = _summarise(model, name, in_shape, k, {}, 1)
                    row += [human_count(s.macs), human_count(s.flops)]
            except Exception as e:  # one broken model does not hide the others
                what = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
                row += ["x".join(map(str, shape)) if shape else "", "", ""]
                row += ["", ""] if flops else []
                about = f"[red]{escape(what)}[/]"
            table.add_row(f"[bold]{escape(name)}[/]\n{about}", *row)
            advance(1)
    console.print(table)
    console.print(
        "FLOPs = 2 x MACs. Details of one model: striate models show NAME [--input C,H,W]",
        markup=False,
        highlight=False,
    )


@app.command()
def show(
    name: str = typer.Argument(..., help="A model name (see `striate models`)."),
    input_shape: str | None = INPUT,
    num_classes: int | None = CLASSES,
    option: list[str] | None = typer.Option(
        None,
        "--option",
        "-o",
        help="A builder option KEY=VALUE (VALUE read as JSON, else text), e.g. -o stem=cifar.",
    ),
    batch_size: int = typer.Option(1, "--batch-size", help="Batch size of the forward pass."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON instead."),
) -> None:
    """Layer by layer: output shape, parameters, MACs, memory, receptive field; and the totals."""
    from striate.models.registry import builder, canonical_name

    builder(name)  # an unknown name: the did-you-mean error
    name = canonical_name(name)
    shape = parse_shape(input_shape) if input_shape is not None else None
    options = parse_options(option or [])
    model, in_shape, k = _build(name, shape, num_classes, options)
    s = _summarise(model, name, in_shape, k, options, batch_size)
    if as_json:
        d = {"name": name, "num_classes": k, "options": options, **s.to_dict()}
        typer.echo(json.dumps(d, indent=1))
        return
    head, *body = s.table()
    table = Table(
        title=escape(f"{name}: {'x'.join(map(str, in_shape))} input, {k} classes"),
        title_justify="left",
    )
    for i, col in enumerate(head):  # names and shapes fold, numbers stay whole
        justify = "right" if i in (3, 4, 5) else "left"
        table.add_column(col, justify=justify, overflow="fold", no_wrap=i >= 3)
    for row in body:
        table.add_row(*map(escape, row))
    console.print(table)
    for what, value in s.totals():
        console.print(f"{what}: {value}", markup=False, highlight=False)
    console.print(
        "* the output reuses memory already counted (in place or a view)",
        markup=False,
        highlight=False,
    )


# --------------------------------------------------------------------------- helpers


def parse_shape(text: str) -> tuple[int, ...]:
    """'3,32,32' (or '3x32x32') as (3, 32, 32); anything else is a ConfigError."""
    from striate.errors import ConfigError

    parts = text.replace("x", ",").replace("×", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(
            f"--input must be an image shape C,H,W of three positive ints, such as 3,32,32 or "
            f"1,28,28; got {text!r}"
        )
    return shape


def parse_options(items: list[str]) -> dict[str, Any]:
    """['stem=cifar', 'channels=[16,32]'] as {'stem': 'cifar', 'channels': [16, 32]}."""
    from striate.errors import ConfigError

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"an option must be KEY=VALUE, such as stem=cifar or dropout=0.2; got {item!r}"
            )
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _build(name: str, shape: tuple[int, ...] | None, num_classes: int | None, options: dict):
    """The model on the meta device (the CPU if it cannot be built there), its input, classes:
    the model's own (`default_input`) unless given."""
    from striate import models

    default_shape, default_classes = models.default_input(name)
    shape = shape or default_shape
    k = default_classes if num_classes is None else num_classes
    return _create(models, name, k, shape, options), shape, k


def _create(models, name: str, k: int, shape, options: dict):
    import torch

    from striate.errors import StriateError

    try:
        with torch.device("meta"):
            return models.create(name, num_classes=k, in_shape=shape, **options)
    except StriateError:
        raise
    except Exception:  # an operation without a meta kernel: build it for real
        return models.create(name, num_classes=k, in_shape=shape, **options)


def _summarise(model, name: str, shape, k: int, options: dict, batch_size: int):
    """`summary` on the model's device; a model that cannot run on meta is rebuilt on the CPU."""
    import torch

    from striate import models
    from striate.errors import StriateError
    from striate.models.summary import summary

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        return summary(model, shape, batch_size=batch_size, device=device)
    except StriateError:
        raise
    except Exception:
        if device.type != "meta":
            raise
    model = models.create(name, num_classes=k, in_shape=shape, **options)
    return summary(model, shape, batch_size=batch_size, device="cpu")
