"""`striate datasets`: list the sources; `striate datasets show NAME`: what a dataset holds;
`striate datasets cache`: the decoded-image cache, and clearing it."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from striate._atomic import atomic_path
from striate.progress import output_console

app = typer.Typer(
    help="List dataset sources, show what one holds, or list and clear the decode cache.",
    invoke_without_command=True,
    no_args_is_help=False,
)
console = output_console()


@app.callback()
def _list(ctx: typer.Context) -> None:
    """List the named datasets and the kinds of path `load_dataset` reads."""
    if ctx.invoked_subcommand is not None:
        return
    from striate.data.registry import PATH_KINDS, SOURCES

    table = Table(title="named datasets", title_justify="left")
    for col in ("name", "splits", "what", "files (in --root or ROOT/NAME)"):
        table.add_column(col, overflow="fold")
    for s in SOURCES.values():
        table.add_row(s.name, " ".join(s.splits), s.description, s.files)
    console.print(table)
    paths = Table(title="paths", title_justify="left")
    paths.add_column("kind")
    paths.add_column("layout", overflow="fold")
    for kind, layout in PATH_KINDS:
        paths.add_row(kind, layout)
    console.print(paths)
    console.print("Example: striate datasets show mnist --root ../shared/data")


@app.command()
def show(
    name: str = typer.Argument(..., help="A dataset name (see `striate datasets`) or a path."),
    root: Path | None = typer.Option(None, help="Folder holding the dataset's files."),
    split: list[str] | None = typer.Option(
        None, "--split", help="Split(s) to show; default: every split the source has."
    ),
    size: int | None = typer.Option(None, help="Resize every image to SIZE×SIZE."),
    on_bad_image: str = typer.Option(
        "error", help="'error' stops at an unreadable image; 'skip' leaves it out and counts it."
    ),
    out: Path | None = typer.Option(
        None, help="PNG grid of samples to write [default: runs/datasets/NAME.png]."
    ),
    per_class: int = typer.Option(8, help="Samples per class in the grid (classes ≤ 20)."),
    seed: int = typer.Option(0, help="Seed for the samples shown."),
) -> None:
    """Per-split and per-class counts, image shape, pixel mean/std, and a PNG grid of samples."""
    from striate.data.registry import available_splits, load_dataset

    splits = split or available_splits(name, root)
    sets = {s: load_dataset(name, s, root, size=size, on_bad_image=on_bad_image) for s in splits}
    first = next(iter(sets.values()))
    c, h, w = first.shape
    summary = Table(title=escape(name), title_justify="left")
    for col in ("split", "images", "shape C×H×W", "pixel mean (0–1)", "pixel std (0–1)"):
        summary.add_column(col, overflow="fold")
    for s, ds in sets.items():
        mean, std = ds.pixel_stats()
        summary.add_row(
            s,
            f"{len(ds):,}",
            "×".join(map(str, ds.shape)),
            " ".join(f"{v:.4f}" for v in mean.tolist()),
            " ".join(f"{v:.4f}" for v in std.tolist()),
        )
    console.print(summary)
    for s, ds in sets.items():
        console.print(f"{s}: {ds.source}", markup=False, highlight=False, soft_wrap=True)

    counts = Table(title="images per class", title_justify="left")
    counts.add_column("class")
    for s in sets:
        counts.add_column(s, justify="right")
    per_split = {s: ds.class_counts().tolist() for s, ds in sets.items()}
    for k, cls in enumerate(first.classes):
        counts.add_row(escape(cls), *(f"{per_split[s][k]:,}" for s in sets))
    console.print(counts)

    out = out or Path("runs") / "datasets" / f"{_slug(name)}.png"
    grid = (
        first.show(per_class=per_class, seed=seed)
        if first.num_classes <= 20
        else first.show(n=100, seed=seed)
    )
    with atomic_path(out) as tmp:
        grid.savefig(tmp, dpi=120, format="png")
    console.print(
        f"{c}×{h}×{w} images; samples of '{next(iter(sets))}' written to {out}", markup=False
    )


@app.command()
def cache(
    clear: bool = typer.Option(
        False, "--clear", help="Delete entries: all of them, or those unused for --older-than DAYS."
    ),
    older_than: float | None = typer.Option(
        None, help="With --clear: only entries not used for this many days."
    ),
) -> None:
    """List the decoded-image cache (image folders and zips decode once, then load from here),
    or delete entries from it. A deleted entry only costs the next load a decode."""
    import datetime

    from striate.data import cache as decode_cache
    from striate.paths import cache_root

    if older_than is not None and not clear:
        raise typer.BadParameter("--older-than goes with --clear", param_hint="--older-than")
    if older_than is not None and not older_than >= 0:
        raise typer.BadParameter("days must be >= 0", param_hint="--older-than")
    if clear:
        count, freed = decode_cache.clear(older_than)
        console.print(f"deleted {count} cache entr{'y' if count == 1 else 'ies'}, {_mb(freed)}")
        return
    found = decode_cache.entries()
    table = Table(title=escape(f"decode cache: {cache_root()}"), title_justify="left")
    for col in ("source", "split", "images", "size", "last used"):
        table.add_column(
            col, overflow="fold", justify="right" if col in ("images", "size") else "left"
        )
    for e in found:
        used = datetime.datetime.fromtimestamp(e.last_used).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            escape(e.source or f"? ({e.path.name})"),
            escape(e.split or "?"),
            "?" if e.images is None else f"{e.images:,}",
            _mb(e.bytes),
            used,
        )
    console.print(table)
    total = sum(e.bytes for e in found)
    console.print(
        f"{len(found)} entr{'y' if len(found) == 1 else 'ies'}, {_mb(total)}; "
        "free the space with: striate datasets cache --clear [--older-than DAYS]"
    )


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _slug(name: str) -> str:
    stem = Path(name).name if ("/" in name or "\\" in name) else name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-") or "dataset"
