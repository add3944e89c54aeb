"""`striate doctor` (training diagnostics) and `striate init-experiment` (the lectures'
activation statistics under four initialisations).

`striate doctor` takes the data and model options of `striate train` (and `--config`), or a
trained run folder with `--run`; it prints a table of checks, writes doctor.json and PNG plots to
`--out`, adds a "Doctor" section to `--out`'s report.html when that folder is a run folder, and
exits with status 1 when a check fails. With `--run RUN --human-error 0.5%` it adds the error
analysis of `striate.train.error_analysis`: the run's model, in fp32 evaluation mode, on its
training split (train), its validation split (train-dev: held out of the training data), an
optional `--dev-data`/`--dev-split` (dev) and its test split (test).
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from striate._atomic import save_figure
from striate.cli.options import CONFIG, HELP, listing, option, own_option, settings
from striate.progress import output_console

console = output_console()  # tables unfolded when stdout is not a terminal


# the TrainConfig settings the doctor takes as they are
AS_CONFIGURED = (
    "loss",
    "opt",
    "lr",
    "weight_decay",
    "momentum",
    "batch_size",
    "schedule",
    "schedule_options",
    "seed",
    "device",
)


# the parameters named after TrainConfig fields take their flag, help and default from the field
def doctor(
    config: Annotated[Path | None, CONFIG] = None,
    data: Annotated[str | None, option("data")] = None,
    root: Annotated[str | None, option("root")] = None,
    model: Annotated[str | None, option("model")] = None,
    batch_size: Annotated[int | None, option("batch_size")] = None,
    opt: Annotated[str | None, option("opt")] = None,
    lr: Annotated[float | None, option("lr")] = None,
    weight_decay: Annotated[float | None, option("weight_decay")] = None,
    schedule: Annotated[str | None, option("schedule")] = None,
    epochs: Annotated[int | None, option("epochs")] = None,
    momentum: Annotated[float | None, option("momentum")] = None,
    loss: Annotated[str | None, option("loss")] = None,
    init: Annotated[str | None, option("init")] = None,
    weights: Annotated[
        str | None,
        option(
            "weights",
            "Diagnose these trained weights (a .safetensors file, a state dict or a run folder); "
            "the initial-loss check is skipped.",
        ),
    ] = None,
    run: Annotated[
        Path | None,
        own_option(
            "--run",
            "A training run folder: its settings, its trained model, and its metrics.csv for the "
            "train/validation gap.",
        ),
    ] = None,
    train_size: Annotated[int | None, option("train_size")] = None,
    val_size: Annotated[float | None, option("val_size")] = None,
    seed: Annotated[int | None, option("seed")] = None,
    device: Annotated[str | None, option("device")] = None,
    checks: Annotated[
        str | None,
        own_option(
            "--checks",
            f"Comma-separated checks to run: {listing('striate.train.doctor:checks_help')} "
            "[default: all].",
        ),
    ] = None,
    max_samples: Annotated[
        int, typer.Option("--max-samples", help="Examples used at most.")
    ] = 2048,
    human_error: Annotated[
        str | None,
        own_option(
            "--human-error",
            "Human-level error, e.g. 0.5% or 0.005 (with --run): adds the error analysis "
            "(avoidable bias, variance, data mismatch, overfitting to dev) and what to do about "
            "the largest gap.",
        ),
    ] = None,
    dev_data: Annotated[
        str | None,
        own_option(
            "--dev-data",
            "A dev set from the data the model is meant for (name or path; its --dev-split, "
            "default test) for the error analysis; without one, data mismatch and overfitting "
            "to dev are measured together.",
        ),
    ] = None,
    dev_split: Annotated[
        str | None,
        own_option(
            "--dev-split",
            "The split of --dev-data (or, alone, of the run's own data, e.g. val) used as dev set.",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        own_option(
            "--out",
            "Folder for doctor.json and the plots [default: runs/doctor/DATA-MODEL, -2, ...]; a "
            "run folder gets them added and its report.html a Doctor section.",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the contents of an --out folder that already holds results (a run "
            "folder is never emptied: the doctor's files in it are replaced).",
        ),
    ] = False,
    show_help: Annotated[bool, HELP] = False,
) -> None:
    """Sanity checks of a model and its training settings, each with pass/warn/fail and advice."""
    options = settings(locals())
    from striate._atomic import write_json
    from striate.errors import ConfigError
    from striate.outputs import check_folder, clear_folder, default_folder, slug
    from striate.train.assembly import prepare
    from striate.train.config import TrainConfig, merge, read_toml
    from striate.train.doctor import doctor as run_doctor
    from striate.train.error_analysis import parse_error_rate

    human = parse_error_rate(human_error) if human_error is not None else None
    if human is not None and run is None:
        raise ConfigError(
            "--human-error compares a trained model's errors with the human level: give its run "
            "folder with --run RUN"
        )
    if human is None and (dev_data is not None or dev_split is not None):
        raise ConfigError(
            "--dev-data and --dev-split are for the error analysis: give --human-error too "
            "(e.g. --human-error 0.5%)"
        )
    # the run's own folder gets the doctor's files added (and its report a Doctor section);
    # any other folder that holds files is refused unless --overwrite, before any work is done
    into_run = out_dir is not None and (out_dir / "config.json").is_file()
    if into_run and run is not None and out_dir.resolve() != run.resolve():
        raise ConfigError(
            f"--out {out_dir} is another training run's folder: write the results into the run "
            f"they describe (--out {run}) or choose another --out"
        )
    if out_dir is not None and not into_run:
        check_folder(out_dir, overwrite)

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
        if "weights" not in options:
            values["weights"] = str(run)
        cfg = TrainConfig.from_dict(values)
        history = _read_history(run / "metrics.csv")
    else:
        cfg = TrainConfig.load(config, **options)
    prepared = prepare(cfg, progress=False)
    source, net = prepared.data, prepared.model
    dev = _dev_set(cfg, dev_data, dev_split) if human is not None else None
    per_epoch = math.ceil(len(source.train) / cfg.batch_size)
    report = run_doctor(
        net,
        source.train,
        val=source.val,
        checks=checks,
        normalize=source.normalizer,
        nesterov=cfg.nesterov and cfg.opt.strip().lower() == "sgd",
        total_steps=cfg.steps if cfg.steps is not None else (cfg.epochs or 1) * per_epoch,
        pretrained=cfg.weights is not None,
        history=history,
        max_samples=max_samples,
        **{k: getattr(cfg, k) for k in AS_CONFIGURED},
    )
    if human is not None:
        _error_analysis(report, run, cfg, source, dev, dev_data, human)
    if out_dir is None:
        folder = default_folder(Path("runs/doctor"), slug(f"{Path(cfg.data).stem}-{cfg.model}"))
        folder.mkdir(parents=True, exist_ok=True)
    elif into_run:
        folder = out_dir
    else:
        folder = clear_folder(out_dir) if overwrite else out_dir
        folder.mkdir(parents=True, exist_ok=True)
    result = report.to_dict()
    result["config"] = cfg.to_dict()
    write_json(folder / "doctor.json", result)
    for name, fig in report.figures().items():
        save_figure(fig, folder / name)
    console.print(report.table(title=f"striate doctor: {cfg.model} on {cfg.data}"))
    counts = report.counts()
    console.print(
        f"{counts['pass']} passed, {counts['warn']} warned, {counts['fail']} failed"
        + (f", {counts['skip']} skipped" if counts["skip"] else "")
    )
    if report.error_analysis is not None:
        _print_error_analysis(report.error_analysis)
    page = folder / "report.html"
    if page.is_file():
        from striate.evaluate.report import add_section, doctor_section

        add_section(page, "Doctor", doctor_section(result))
        console.print(f"report: {escape(str(page))} (Doctor section)")
    console.print(f"results: {escape(str(folder / 'doctor.json'))}")
    if report.failed:
        raise typer.Exit(1)


def _dev_set(cfg: Any, dev_data: str | None, dev_split: str | None):
    """The dev set of the error analysis: --dev-data (split --dev-split, default test), or
    --dev-split of the run's own data; None without either."""
    from striate.data import load_dataset
    from striate.errors import ConfigError

    if dev_data is None and dev_split is None:
        return None
    name = dev_data if dev_data is not None else cfg.data
    split = dev_split or "test"
    if str(name) == str(cfg.data) and split in ("train", "test", "all"):
        raise ConfigError(
            f"the dev set must differ from the run's own {split} split: give another split "
            f"(--dev-split) or other data (--dev-data)"
        )
    return load_dataset(name, split, cfg.root)


def _error_analysis(
    report, run: Path, cfg: Any, source: Any, dev: Any, dev_data: str | None, human: float
) -> None:
    """Measure the run's model on its splits (and the dev set) and add the error analysis. The
    run's test split stands for the test set only when it comes from the dev set's data."""
    from striate.device import resolve_device
    from striate.models.io import load_model
    from striate.train.doctor import measure_errors
    from striate.train.error_analysis import analyze_errors

    model = load_model(run, device=resolve_device(cfg.device))
    sets = {"train": source.train}
    if source.val is not None:
        sets["train_dev"] = source.val
    notes = []
    if dev is not None:
        sets["dev"] = dev
    if dev is None or dev_data is None or str(dev_data) == str(cfg.data):
        sets["test"] = source.test
    errors, sizes = measure_errors(model, sets)
    if "test" not in sets:
        test, _ = measure_errors(model, {"test": source.test})
        notes.append(
            f"the run's test split ({cfg.data}: {test['test']:.2%} error) is not from the dev "
            f"set's data ({dev_data}), so overfitting to dev is not measured"
        )
    analysis = analyze_errors(human=human, **errors, sizes=sizes, notes=notes)
    report.add_error_analysis(analysis)


def _print_error_analysis(analysis) -> None:
    from striate.train.error_analysis import ERROR_LABELS

    human = analysis.errors["human"]
    table = Table(title=f"error analysis (human-level error {human:.2%})")
    for col, justify in (
        ("gap", "left"),
        ("errors", "left"),
        ("difference", "right"),
        ("noise (2 s.e.)", "right"),
    ):
        table.add_column(col, justify=justify, overflow="fold")
    for g in analysis.gaps:
        errors = (
            f"{ERROR_LABELS[g.upper]} {analysis.errors[g.upper]:.2%} − "
            f"{ERROR_LABELS[g.lower]} {analysis.errors[g.lower]:.2%}"
        )
        name, value = escape(g.name), f"{g.value:+.2%}"
        if g is analysis.largest:
            name, value = f"[bold]{name}[/bold]", f"[bold]{value}[/bold]"
        noise = f"±{g.noise:.2%}" if g.noise is not None else "—"
        table.add_row(name, escape(errors), value, noise)
    console.print(table)
    console.print(escape(analysis.advice))
    for note in analysis.notes:
        console.print(f"note: {escape(note)}")


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
    from striate._atomic import write_json
    from striate.train.activations import init_experiment as run_experiment

    names = [s.strip() for s in inits.split(",") if s.strip()]
    result = run_experiment(
        nonlinearity, inits=names, layers=layers, units=units, samples=samples, seed=seed
    )
    out.mkdir(parents=True, exist_ok=True)
    stem = f"init_experiment_{re.sub(r'[^a-z0-9]+', '_', nonlinearity)}"
    save_figure(result.plot(), out / f"{stem}.png")
    save_figure(result.plot_histograms(), out / f"{stem}_hist.png")
    write_json(out / f"{stem}.json", result.to_dict())
    table = Table("layer", *names, title=f"layer std, {layers}×{units} {nonlinearity} network")
    for i in range(layers):
        table.add_row(str(i + 1), *(f"{result.stds(n)[i]:.3g}" for n in names))
    console.print(table)
    console.print(f"plots: {escape(str(out / (stem + '.png')))}, {escape(stem + '_hist.png')}")
