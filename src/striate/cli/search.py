"""`striate search`: random (or TPE) hyper-parameter search, coarse then fine, on an Optuna study.

striate search --param lr=log:1e-4:1 --param wd=log:1e-6:1e-2 --coarse 20 --fine 6
striate search --config run.toml --trials 30             # [search] table of run.toml
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from striate.cli.train import (
    AUGMENT,
    BATCH,
    CONFIG,
    DATA,
    DEVICE,
    MODEL,
    OPT,
    PRECISION,
    ROOT,
    SCHEDULE,
    _opt,
)
from striate.progress import output_console

console = output_console()  # tables unfolded when stdout is not a terminal


def search(
    param: list[str] = typer.Option(
        [],
        "--param",
        "-p",
        help="A searched hyper-parameter, repeatable: NAME=log:LOW:HIGH (uniform in log space), "
        "uniform:LOW:HIGH, int:LOW:HIGH, logint:LOW:HIGH or choice:A,B,C. NAME is any option "
        "of `striate train` (lr, wd, batch_size, momentum, label_smoothing, opt, ...), "
        "model_options.X or a model argument such as dropout. Adds to the `search` table of "
        "--config. Example: -p lr=log:1e-4:1 -p dropout=uniform:0:0.5.",
    ),
    trials: int | None = _opt("--trials", "Trials of a single stage (instead of --coarse/--fine)."),
    coarse: int | None = _opt(
        "--coarse", "Trials of the coarse stage: many short ones (default: 20 without --trials)."
    ),
    fine: int | None = _opt(
        "--fine",
        "Trials of the fine stage, in the range narrowed around the best quarter of the coarse "
        "trials (default: 6 without --trials).",
    ),
    coarse_epochs: int | None = _opt(
        "--coarse-epochs", "Epochs of a coarse trial (default: a fifth of --epochs, at least 1)."
    ),
    coarse_train_size: int | None = _opt(
        "--coarse-train-size", "Train the coarse trials on this many of the training images."
    ),
    config: Path | None = CONFIG,
    data: str | None = DATA,
    root: str | None = ROOT,
    model: str | None = MODEL,
    epochs: int | None = _opt("--epochs", "Epochs of a (fine) trial (default: 30)."),
    batch_size: int | None = BATCH,
    opt: str | None = OPT,
    lr: float | None = _opt("--lr", "Learning rate when not searched (default: 0.1)."),
    wd: float | None = _opt("--wd", "Weight decay when not searched (default: 5e-4)."),
    schedule: str | None = SCHEDULE,
    augment: str | None = AUGMENT,
    precision: str | None = PRECISION,
    val_size: float | None = _opt(
        "--val-size", "Validation fraction (or count) the trials are compared on (default: 0.1)."
    ),
    train_size: int | None = _opt("--train-size", "Stratified subset of the training split."),
    sampler: str = typer.Option(
        "random", "--sampler", help="random (the lectures' random search) or tpe (Bayesian)."
    ),
    pruner: str = typer.Option(
        "none",
        "--pruner",
        help="Stop unpromising trials early on their val accuracy per epoch: none, median, "
        "percentile, halving or hyperband.",
    ),
    abort_factor: float = typer.Option(
        3.0, "--abort-factor", help="Abort a trial whose loss exceeds this many times its first."
    ),
    study: str | None = _opt(
        "--study",
        "Study name (default: DATA-MODEL-PARAMS, e.g. digits-convnet_small-lr-wd); the same "
        "command (name, storage, space and settings) continues a search, another is refused.",
    ),
    storage: str | None = _opt(
        "--storage",
        "Where the study lives: a journal file path, or a database URL (sqlite:///s.db, "
        "postgresql://...) for several machines (default: OUT/study.journal).",
    ),
    out: Path | None = _opt("--out", "Output folder (default: runs/search/STUDY)."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Start afresh: delete the study (in its journal or database) and the folder's "
        "results. Give it to the first process only, not to those that share the work.",
    ),
    seed: int | None = _opt(
        "--seed", "Seed of the split and the sampler; trial k trains with seed+k (default: 0)."
    ),
    device: str | None = DEVICE,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Print a line per trial."),
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
    from striate.train.hpsearch import (
        coarse_fine,
        default_study_name,
        parse_param,
        parse_space,
        require_optuna,
    )
    from striate.train.hpsearch import search as run

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
        wd=wd,
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
