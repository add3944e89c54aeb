"""`striate doctor` (training diagnostics) and `striate init-experiment` (the lectures'
activation statistics under four initialisations).

`striate doctor` takes the data and model options of `striate train` (and `--config`), or a
trained run folder with `--run`; it prints a table of checks, writes doctor.json and PNG plots to
`--out`, adds a "Doctor" section to `--out`'s report.html when that folder is a run folder, and
exits with status 1 when a check fails.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from striate.cli.train import BATCH, CONFIG, DATA, DEVICE, LR, MODEL, OPT, ROOT, SEED, WD, _opt

console = Console(soft_wrap=True)


def doctor(
    config: Path | None = CONFIG,
    data: str | None = DATA,
    root: str | None = ROOT,
    model: str | None = MODEL,
    batch_size: int | None = BATCH,
    opt: str | None = OPT,
    lr: float | None = LR,
    wd: float | None = WD,
    momentum: float | None = _opt(
        "--momentum", "Momentum of SGD/RMSProp, or Adam's beta1 [default: 0.9 for SGD]."
    ),
    loss: str | None = _opt("--loss", "cross_entropy or hinge [default: cross_entropy]."),
    init: str | None = _opt("--init", "default, normal, xavier or kaiming [default: default]."),
    weights: str | None = _opt(
        "--weights",
        "Diagnose these trained weights (a .safetensors file, a state dict or a run folder); "
        "the initial-loss check is skipped.",
    ),
    run: Path | None = _opt(
        "--run",
        "A training run folder: its settings, its trained model, and its metrics.csv for the "
        "train/validation gap.",
    ),
    train_size: int | None = _opt("--train-size", "Stratified subset of the training split."),
    val_size: float | None = _opt(
        "--val-size", "Validation fraction (or count) held out of the training split [0.1]."
    ),
    seed: int | None = SEED,
    device: str | None = DEVICE,
    checks: str | None = _opt(
        "--checks",
        "Comma-separated checks to run: initial_loss, regularization, overfit, gradcheck, "
        "update_ratio, dead_relus, saturation, activation_scale (or activations), learning_rate, "
        "fit_gap [default: all].",
    ),
    max_samples: int = typer.Option(2048, "--max-samples", help="Examples used at most."),
    out: Path | None = _opt(
        "--out",
        "Folder for doctor.json and the plots [default: runs/doctor/DATA-MODEL]; a run folder's "
        "report.html gets a Doctor section.",
    ),
) -> None:
    """Sanity checks of a model and its training settings, each with pass/warn/fail and advice."""
    from striate.errors import ConfigError
    from striate.train.config import TrainConfig, merge, read_toml
    from striate.train.diagnostics import doctor as run_doctor
    from striate.train.run import build_model, default_out, load_run_data, source_normalizer

    options: dict[str, Any] = dict(
        data=data,
        root=root,
        model=model,
        batch_size=batch_size,
        opt=opt,
        lr=lr,
        wd=wd,
        momentum=momentum,
        loss=loss,
        init=init,
        weights=weights,
        train_size=train_size,
        val_size=val_size,
        seed=seed,
        device=device,
    )
    history = None
    if run is not None:
        saved = run / "config.json"
        if not saved.is_file():
            raise ConfigError(f"--run {run} is not a training run folder (no config.json)")
        try:
            values = json.loads(saved.read_text())["config"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"cannot read the run's settings from {saved}: {e}") from e
        values = merge(merge(values, read_toml(config)) if config else values, options)
        if options["weights"] is None:
            values["weights"] = str(run)
        cfg = TrainConfig.from_dict(values)
        history = _read_history(run / "metrics.csv")
    else:
        cfg = TrainConfig.load(config, **options)
    source = load_run_data(cfg)
    source.normalizer = source_normalizer(cfg, source)
    net = build_model(cfg, source.train)
    nesterov = cfg.nesterov and cfg.opt.strip().lower() == "sgd"
    report = run_doctor(
        net,
        source.train,
        val=source.val,
        checks=checks,
        normalize=source.normalizer,
        loss=cfg.loss,
        opt=cfg.opt,
        lr=cfg.lr,
        weight_decay=cfg.wd,
        momentum=cfg.momentum,
        nesterov=nesterov,
        batch_size=cfg.batch_size,
        pretrained=cfg.weights is not None,
        history=history,
        max_samples=max_samples,
        seed=cfg.seed,
        device=cfg.device,
    )
    folder = out if out is not None else default_out(cfg, Path("runs/doctor"))
    folder.mkdir(parents=True, exist_ok=True)
    result = report.to_dict()
    result["config"] = cfg.to_dict()
    _write_json(folder / "doctor.json", result)
    for name, fig in report.figures().items():
        fig.savefig(folder / name, dpi=100, bbox_inches="tight")
    console.print(report.table(title=f"striate doctor: {cfg.model} on {cfg.data}"))
    counts = report.counts()
    console.print(
        f"{counts['pass']} passed, {counts['warn']} warned, {counts['fail']} failed"
        + (f", {counts['skip']} skipped" if counts["skip"] else "")
    )
    page = folder / "report.html"
    if page.is_file():
        from striate.evaluate.report import add_section, doctor_section

        add_section(page, "Doctor", doctor_section(result))
        console.print(f"report: {escape(str(page))} (Doctor section)")
    console.print(f"results: {escape(str(folder / 'doctor.json'))}")
    if report.failed:
        raise typer.Exit(1)


def _read_history(path: Path) -> list[dict[str, float]] | None:
    """The per-epoch rows of a run's metrics.csv as floats (None when there is no file)."""
    if not path.is_file():
        return None
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            parsed = {}
            for k, v in row.items():
                try:
                    parsed[k] = float(v)
                except (TypeError, ValueError):
                    continue
            rows.append(parsed)
    return rows or None


def init_experiment(
    nonlinearity: str = typer.Option("tanh", "--nonlinearity", help="tanh, relu or sigmoid."),
    inits: str = typer.Option(
        "0.01,1.0,xavier,he", "--inits", help="Comma-separated: a std (0.01, 1.0), xavier or he."
    ),
    layers: int = typer.Option(10, "--layers", help="Hidden layers."),
    units: int = typer.Option(500, "--units", help="Units per layer."),
    samples: int = typer.Option(1000, "--samples", help="Unit-Gaussian input rows."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data and the weights."),
    out: Path = typer.Option(
        Path("runs/init-experiment"), "--out", help="Folder for the plots and JSON."
    ),
) -> None:
    """The lecture's experiment: std of each layer of a deep net under four initialisations."""
    from striate.train.activations import init_experiment as run_experiment

    names = [s.strip() for s in inits.split(",") if s.strip()]
    result = run_experiment(
        nonlinearity, inits=names, layers=layers, units=units, samples=samples, seed=seed
    )
    out.mkdir(parents=True, exist_ok=True)
    stem = f"init_experiment_{re.sub(r'[^a-z0-9]+', '_', nonlinearity)}"
    result.plot().savefig(out / f"{stem}.png", dpi=100, bbox_inches="tight")
    result.plot_histograms().savefig(out / f"{stem}_hist.png", dpi=100, bbox_inches="tight")
    _write_json(out / f"{stem}.json", result.to_dict())
    table = Table("layer", *names, title=f"layer std, {layers}×{units} {nonlinearity} network")
    for i in range(layers):
        table.add_row(str(i + 1), *(f"{result.stds(n)[i]:.3g}" for n in names))
    console.print(table)
    console.print(f"plots: {escape(str(out / (stem + '.png')))}, {escape(stem + '_hist.png')}")


def _write_json(path: Path, obj: Any) -> None:
    from striate._atomic import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, default=str, allow_nan=False)
