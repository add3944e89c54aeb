"""The options that commands share, declared once: a TrainConfig setting's flag, help and default
come from its field (`striate.train.config.setting`), so `striate train`, `lr-find`, `search` and
`doctor` describe it alike.

    def train(lr: Annotated[float | None, option("lr")] = None, ...,
              show_help: Annotated[bool, HELP] = False): ...
    given = settings(locals())      # the TrainConfig settings given on the command line

Two things keep the command line quick. The annotations are read when typer builds the commands
(the modules use postponed annotations), not when the CLI is imported. And the lists of names in
the help (models, optimisers, schedules, losses, augmentations, doctor checks) are read from their
registries, which import torch, only when help is shown: a command that lists names takes `HELP`
as its --help option, which fills them in first.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import typer

from striate.cli.models import parse_options

CONFIG = typer.Option("--config", help="TOML file of options; command-line options win.")
MODEL_OPTION = typer.Option(
    "--model-option",
    "-o",
    help="A model argument KEY=VALUE (VALUE read as JSON, else text), e.g. -o dropout=0.2; "
    "repeat for more.",
)
SCHEDULE_OPTION = typer.Option(
    "--schedule-option",
    help="A schedule argument KEY=VALUE, e.g. --schedule-option T_0=8 for sgdr, "
    "--schedule-option warmup=1.",
)
OPT_OPTION = typer.Option(
    "--opt-option",
    help="An optimiser setting KEY=VALUE, e.g. --opt-option aux_lr=0.1 for muon.",
)
OVERWRITE = typer.Option(
    "--overwrite", help="Replace the results in an --out folder that already holds some."
)

# a list of names in a help text, filled in when help is shown: {module:ATTR}
RESUME = typer.Option("--resume", show_default=False, help="Continue the run stopped in RUN.")
_LISTING = re.compile(r"\{([A-Za-z_][\w.]*):([A-Za-z_]\w*)\}")


VGG_WEIGHTS = typer.Option(
    "--weights",
    show_default=False,
    help="VGG weights file (torchvision vgg16/vgg19 state dict or vgg16-hed.safetensors) "
    "[default: $STRIATE_VGG_WEIGHTS, else ../shared/data/weights/vgg16-hed.safetensors].",
)
DEVICE = typer.Option("--device", help="auto, cpu, cuda or cuda:N.")


def listing(ref: str) -> str:
    """The place in a help text where the names of `ref` ("module:ATTR": a registry, a tuple of
    names, or a function returning names or the text itself) are listed when help is shown."""
    if not _LISTING.fullmatch("{" + ref + "}"):
        raise ValueError(f"a listing names module:ATTR, not {ref!r}")
    return "{" + ref + "}"


def names(ref: str) -> str:
    """The names `ref` lists, comma-separated (imports the module)."""
    module, _, attr = ref.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    if callable(obj) and not isinstance(obj, Iterable):
        obj = obj()
    return obj if isinstance(obj, str) else ", ".join(str(n) for n in obj)


def _show_help(ctx: typer.Context, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    for param in ctx.command.params:
        if isinstance(getattr(param, "help", None), str):
            param.help = _LISTING.sub(lambda m: names(f"{m[1]}:{m[2]}"), param.help)
    typer.echo(ctx.get_help(), color=ctx.color)
    raise typer.Exit()


HELP = typer.Option(
    "--help",
    is_eager=True,
    expose_value=False,
    callback=_show_help,
    help="Show this message and exit.",
)


def _fields() -> dict[str, dataclasses.Field]:
    from striate.train.config import TrainConfig

    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def flags(name: str) -> list[str]:
    """The command-line flags of TrainConfig setting `name`: its own (--batch-size for
    batch_size, unless its field says otherwise), then its old names (--wd)."""
    from striate.train.config import TrainConfig

    own = _fields()[name].metadata.get("flag") or "--" + name.replace("_", "-")
    old = [f"--{k.replace('_', '-')}" for k, v in TrainConfig.ALIASES.items() if v == name]
    return [own, *old]


def described(name: str, help: str | None = None) -> str:  # noqa: A002
    """The help of setting `name` (or `help` instead of the field's own), its `{names}` a
    listing, and its default as `[default: …]`."""
    f = _fields()[name]
    text = help if help is not None else f.metadata["help"]
    if f.metadata.get("names"):
        text = text.replace("{names}", listing(f.metadata["names"]))
    shown = f.metadata.get("shown")
    if shown is None and f.default is not None and f.default is not dataclasses.MISSING:
        shown = f"{f.default:g}" if isinstance(f.default, float) else f.default
    return f"{text} [default: {shown}]" if shown is not None else text


@functools.cache
def option(name: str, help: str | None = None) -> Any:  # noqa: A002
    """The typer option of TrainConfig setting `name`, for `Annotated[T | None, option(name)]`:
    its flags, its help (the field's, or `help`) and the default it falls back to. Its own
    default is None: an option left out leaves the setting to --config and TrainConfig."""
    return typer.Option(*flags(name), help=described(name, help), show_default=False)


def own_option(flag: str, help: str) -> Any:  # noqa: A002
    """An option of one command (not a TrainConfig setting) whose help says its default, if it
    has one, so typer does not show it again."""
    return typer.Option(flag, help=help, show_default=False)


def settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The TrainConfig settings among a command's parameters `values` (named after the fields),
    the ones given (not None); the command line's own forms made settings: -o KEY=VALUE
    (model_option), --opt-option and --schedule-option into tables, --snapshot-every N into
    snapshots, paths into text."""
    fields = _fields()
    out = {k: v for k, v in values.items() if k in fields and v is not None}
    for option_name, table in (
        ("model_option", "model_options"),
        ("opt_option", "opt_options"),
        ("schedule_option", "schedule_options"),
    ):
        if values.get(option_name):
            out[table] = parse_options(values[option_name])
    if values.get("snapshot_every") is not None:
        out["snapshots"] = values["snapshot_every"]
    return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}
