"""`striate ensemble`: average the probabilities of several trained models or of one run's
snapshots, and compare the ensemble with each of its members on a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from striate._atomic import save_figure
from striate.progress import output_console

console = output_console()  # tables unfolded when stdout is not a terminal


def ensemble(
    members: list[Path] | None = typer.Argument(
        None,
        show_default=False,
        help="Members: run folders, their model/ folders or model.json files.",
    ),
    snapshots: list[Path] | None = typer.Option(
        None,
        "--snapshots",
        show_default=False,
        help="Add every snapshot of this run (RUN/snapshots/snapshot-K, from `striate train "
        "--schedule sgdr --snapshots`); repeat for several runs.",
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        show_default=False,
        help="Dataset name (see `striate datasets`) or path [default: the first member's run "
        "data, its test split as the run made it].",
    ),
    root: str | None = typer.Option(
        None, "--root", show_default=False, help="Folder holding the dataset's files."
    ),
    split: str | None = typer.Option(
        None, "--split", show_default=False, help="Split to evaluate on [default: test]."
    ),
    test_size: int | None = typer.Option(
        None, "--test-size", show_default=False, help="Stratified subset of the split (seed 0)."
    ),
    tta: str = typer.Option(
        "none",
        "--tta",
        help="Test-time augmentation: none, flip, translate[:N], flip,translate or "
        "tencrop[:S1/S2/...] (10 crops per scale).",
    ),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per evaluation batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    out: Path | None = typer.Option(
        None,
        "--out",
        show_default=False,
        help="Folder for ensemble.json and ensemble.png [default: runs/ensemble/DATA, or -2, "
        "-3, ... when taken]; one that already holds results needs --overwrite.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the results in an --out folder that holds some."
    ),
) -> None:
    """Average the predicted probabilities of trained models (or of a run's snapshots) and report
    each member's accuracy and loss next to the ensemble's.

    Members keep their own normalisation; all must predict the same classes from the same shape.

    Example: striate ensemble --snapshots runs/train/sgdr
    """
    from striate.data import stratified_split
    from striate.errors import ConfigError
    from striate.outputs import check_folder, clear_folder, default_folder
    from striate.train.ensemble import evaluate_ensemble, plot_ensemble
    from striate.train.evaluation import evaluation_data
    from striate.train.snapshots import snapshot_paths

    paths = list(members or [])
    for run in snapshots or []:
        paths += snapshot_paths(run)
    if not paths:
        raise ConfigError(
            "no ensemble members: give run or model folders, or --snapshots RUN for the "
            "snapshots of a run"
        )
    for name, value in (("--batch-size", batch_size), ("--test-size", test_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    ds, label, config = evaluation_data(paths[0], data, root, split)
    from striate.evaluate.tta import untrained_views

    for warning in untrained_views(tta, config.augment if config else None, ds.shape):
        console.print(f"warning: {escape(warning)}")
    if out is None:
        out = default_folder(Path("runs/ensemble"), Path(label.split(",")[0]).stem)
    check_folder(out, overwrite)
    if test_size is not None and test_size < len(ds):
        _, keep = stratified_split(ds, test_size, 0)
        ds = ds[keep]
    names = [_name(p) for p in paths]
    result = evaluate_ensemble(
        paths, ds, names=names, tta=tta, batch_size=batch_size, device=device
    )

    table = Table("member", "accuracy", "top-5", "loss", title=f"{len(ds)} images: {label}")
    best = result.best_member
    for i, (name, m) in enumerate(zip(result.names, result.members, strict=True)):
        style = "bold" if i == best else None
        table.add_row(escape(name), *_cells(m), style=style)
    table.add_section()
    table.add_row(f"ensemble of {len(paths)}", *_cells(result.ensemble), style="bold green")
    console.print(table)
    gain = 100 * result.gain
    verdict = "beats" if gain > 0 else "ties with" if gain == 0 else "falls behind"
    console.print(
        f"the ensemble {verdict} its best member ({escape(result.names[best])}, "
        f"{result.members[best]['acc']:.2%})" + (f" by {abs(gain):.2f} points" if gain else "")
    )
    report = {
        "data": label,
        "test_size": test_size,
        **result.to_dict(),
        "paths": [str(p) for p in paths],
    }
    clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
    from striate._atomic import atomic_write

    with atomic_write(out / "ensemble.json", "w") as f:
        json.dump(report, f, indent=2)
    fig = plot_ensemble(result, title=f"{label}: members and ensembles of the first k")
    save_figure(fig, out / "ensemble.png")
    console.print(f"wrote {escape(str(out / 'ensemble.json'))} and ensemble.png")


def _name(path: Path) -> str:
    """A short member name: snapshot-K of RUN as RUN/snapshot-K, a model folder by its run."""
    p = Path(path)
    if p.name == "model.json":
        p = p.parent
    if p.parent.name == "snapshots":
        return f"{p.parent.parent.name}/{p.name}"
    if p.name == "model":
        p = p.parent
    return str(p)


def _cells(m: dict[str, float]) -> list[str]:
    top5 = m.get("top5")
    return [f"{m['acc']:.2%}", "n/a" if top5 is None else f"{top5:.2%}", f"{m['loss']:.4f}"]
