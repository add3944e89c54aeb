"""`striate search`: random (or TPE) hyper-parameter search, coarse then fine, on an Optuna study.

striate search --param lr=log:1e-4:1 --param wd=log:1e-6:1e-2 --coarse 20 --fine 6
striate search --config run.toml --trials 30             # [search] table of run.toml
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from striate.cli.options import CONFIG, HELP, listing, option, own_option
from striate.progress import output_console

console = output_console()  # tables unfolded when stdout is not a terminal


# the parameters named after TrainConfig fields take their flag, help and default from the field
def search(
    param: Annotated[
        list[str],
        typer.Option(
            "--param",
            "-p",
            help="A searched hyper-parameter, repeatable: NAME=log:LOW:HIGH (uniform in log "
            "space), uniform:LOW:HIGH, int:LOW:HIGH, logint:LOW:HIGH or choice:A,B,C. NAME is any "
            "option of `striate train` (lr, weight_decay, batch_size, momentum, label_smoothing, "
            "opt, ...), model_options.X or a model argument such as dropout. Adds to the `search` "
            "table of --config. Example: -p lr=log:1e-4:1 -p dropout=uniform:0:0.5.",
        ),
    ] = [],  # noqa: B006 - typer copies it
    trials: Annotated[
        int | None,
        own_option("--trials", "Trials of a single stage (instead of --coarse/--fine)."),
    ] = None,
    coarse: Annotated[
        int | None,
        own_option(
            "--coarse",
            "Trials of the coarse stage: many short ones (default: 20 without --trials).",
        ),
    ] = None,
    fine: Annotated[
        int | None,
        own_option(
            "--fine",
            "Trials of the fine stage, in the range narrowed around the best quarter of the "
            "coarse trials (default: 6 without --trials).",
        ),
    ] = None,
    coarse_epochs: Annotated[
        int | None,
        own_option(
            "--coarse-epochs",
            "Epochs of a coarse trial (default: a fifth of --epochs, at least 1).",
        ),
    ] = None,
    coarse_train_size: Annotated[
        int | None,
        own_option(
            "--coarse-train-size", "Train the coarse trials on this many of the training images."
        ),
    ] = None,
    config: Annotated[Path | None, CONFIG] = None,
    data: Annotated[str | None, option("data")] = None,
    root: Annotated[str | None, option("root")] = None,
    model: Annotated[str | None, option("model")] = None,
    epochs: Annotated[int | None, option("epochs", "Epochs of a (fine) trial.")] = None,
    batch_size: Annotated[int | None, option("batch_size")] = None,
    opt: Annotated[str | None, option("opt")] = None,
    lr: Annotated[float | None, option("lr", "Learning rate when not searched.")] = None,
    weight_decay: Annotated[
        float | None, option("weight_decay", "Weight decay when not searched.")
    ] = None,
    schedule: Annotated[str | None, option("schedule")] = None,
    augment: Annotated[str | None, option("augment")] = None,
    precision: Annotated[str | None, option("precision")] = None,
    val_size: Annotated[
        float | None,
        option("val_size", "Validation fraction (or count) the trials are compared on."),
    ] = None,
    train_size: Annotated[int | None, option("train_size")] = None,
    sampler: Annotated[
        str,
        typer.Option(
            "--sampler",
            help="random (the lectures' random search) or tpe (Bayesian).",
        ),
    ] = "random",
    pruner: Annotated[
        str,
        typer.Option(
            "--pruner",
            help="Stop unpromising trials early on their val accuracy per epoch: "
            f"{listing('striate.train.search.storage:PRUNERS')}.",
        ),
    ] = "none",
    abort_factor: Annotated[
        float,
        typer.Option(
            "--abort-factor", help="Abort a trial whose loss exceeds this many times its first."
        ),
    ] = 3.0,
    study: Annotated[
        str | None,
        own_option(
            "--study",
            "Study name (default: DATA-MODEL-PARAMS, e.g. digits-convnet_small-lr-wd); the same "
            "command (name, storage, space and settings) continues a search, another is refused.",
        ),
    ] = None,
    storage: Annotated[
        str | None,
        own_option(
            "--storage",
            "Where the study lives: a journal file path, or a database URL (sqlite:///s.db, "
            "postgresql://...) for several machines (default: OUT/study.journal).",
        ),
    ] = None,
    out: Annotated[
        Path | None, own_option("--out", "Output folder (default: runs/search/STUDY).")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Start afresh: delete the study (in its journal or database) and the folder's "
            "results. Give it to the first process only, not to those that share the work.",
        ),
    ] = False,
    seed: Annotated[
        int | None,
        option("seed", "Seed of the split and the sampler; trial k trains with seed+k."),
    ] = None,
    device: Annotated[str | None, option("device")] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Print a line per trial.")
    ] = True,
    show_help: Annotated[bool, HELP] = False,
) -> None:
    """Search hyper-parameters: random search in stages (coarse, then fine in a narrowed range).

    Each trial trains with sampled values and is scored on validation accuracy.
    A trial whose loss exceeds 3x its first loss is aborted.
    The study is kept on disk: run the same command again to continue it, or in a second
    terminal to share the work; a different search under the same name is refused.
    Writes results.csv, results.json, val_acc.png and best.toml (for `striate train --config`).
    Needs optuna: pip install 'striate[search]'.
    """
    from striate.errors import ConfigError
    from striate.train.config import TrainConfig, read_toml
    from striate.train.search import (
        coarse_fine,
        default_study_name,
        parse_param,
        parse_space,
        require_optuna,
    )
    from striate.train.search import search as run

    require_optuna()

    values = read_toml(config) if config is not None else {}
    table = values.pop("search", {})
    if not isinstance(table, dict):
        raise ConfigError(f'{config}: [search] must be a table of NAME = "kind:LOW:HIGH"')
    space = parse_space(table)
    for text in param:
        p = parse_param(text)
        space[p.name] = p  # the command line wins over the file
    if not space:
        raise ConfigError(
            "nothing to search: give --param NAME=kind:LOW:HIGH (e.g. --param lr=log:1e-4:1) "
            "or a [search] table in --config"
        )
    options = dict(
        data=data,
        root=root,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        opt=opt,
        lr=lr,
        weight_decay=weight_decay,
        schedule=schedule,
        augment=augment,
        precision=precision,
        val_size=val_size,
        train_size=train_size,
        seed=seed,
        device=device,
    )
    values.update({k: v for k, v in options.items() if v is not None})
    cfg = TrainConfig.from_dict(values)
    if trials is not None:
        if coarse is not None or fine is not None:
            raise ConfigError("give --trials (one stage) or --coarse/--fine, not both")
        stages_arg = dict(trials=trials)
    else:
        total = cfg.epochs or 1
        first = coarse_epochs if coarse_epochs is not None else max(1, total // 5)
        stages_arg = dict(
            stages=coarse_fine(
                20 if coarse is None else coarse,
                6 if fine is None else fine,
                coarse_epochs=first if cfg.epochs is not None else None,
                coarse_train_size=coarse_train_size,
            )
        )
    if study is None:
        study = default_study_name(cfg, space)
    elif not re.fullmatch(r"[A-Za-z0-9_.-]+", study):
        raise ConfigError(f"--study {study!r}: use letters, digits, '.', '_' and '-'")
    folder = out if out is not None else Path("runs/search") / study
    result = run(
        cfg,
        space,
        out=folder,
        storage=storage,
        study_name=study,
        overwrite=overwrite,
        sampler=sampler,
        pruner=pruner,
        abort_factor=abort_factor,
        progress=progress,
        **stages_arg,
    )
    console.print(results_table(result.trials, result.best))
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    if result.interrupted:
        console.print(
            f"interrupted; run the same command again to continue ({escape(str(folder))})"
        )
        raise typer.Exit(130)
    console.print(escape(result.summary))
    if result.best is not None:
        console.print(f"train it: striate train --config {escape(str(folder / 'best.toml'))}")
    console.print(
        f"results: {escape(str(folder))} (study {escape(study)}: results.csv, val_acc.png)  "
        f"[{result.seconds:.0f} s]"
    )


def results_table(trials: list[dict], best: dict | None = None, limit: int = 30) -> Table:
    """The trials, best validation accuracy first (the first `limit`); the chosen trial (see
    the line under the table) is marked "best"."""
    names: list[str] = []
    for t in trials:
        names += [n for n in t["params"] if n not in names]
    table = Table("stage", "trial", "val acc", "state", *names, "epochs", "s", "")
    chosen = (best["stage"], best["trial"]) if best is not None else None
    for t in trials[:limit]:
        acc = t.get("val_acc")
        mark = (t["stage"], t["trial"]) == chosen
        table.add_row(
            t["stage"],
            str(t["trial"]),
            "" if acc is None or not math.isfinite(acc) else f"{acc:.2%}",
            t["state"],
            *(_fmt(t["params"].get(n)) for n in names),
            str(t.get("epochs") or ""),
            f"{t['seconds']:.1f}" if t.get("seconds") is not None else "",
            "best" if mark else "",
            style="bold" if mark else None,
        )
    if len(trials) > limit:
        table.caption = f"{len(trials) - limit} more in results.csv"
    return table


def _fmt(v: object) -> str:
    if v is None:
        return ""
    return f"{v:.3g}" if isinstance(v, float) else escape(str(v))
