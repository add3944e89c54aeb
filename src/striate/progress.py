"""Progress of long work, warnings as one line, and the consoles the CLI prints on: one helper
each, so that every part of striate looks the same.

Progress goes to stderr (results and tables to stdout). On a terminal a phase shows a live rich
bar (`progress_bar`) or a spinner (`phase`, for work without a count); anywhere else (a log file,
a pipe, CI) each phase prints one plain line when it ends, e.g. ``decoding train: 50,000 img in
12.3 s``, so a log still says what took the time.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from striate.errors import StriateWarning

# Tables printed to a file or a pipe are this wide at most: rich would otherwise fold every
# cell at 80 columns (its default without a terminal), splitting names and paths.
UNWRAPPED_WIDTH = 1000


def output_console(stderr: bool = False) -> Console:
    """A rich Console for the CLI: on a terminal, the terminal's width; elsewhere wide enough
    that tables keep each name and path on one line. Long lines of text are never folded."""
    stream = sys.stderr if stderr else sys.stdout
    isatty = getattr(stream, "isatty", None)
    terminal = bool(isatty and isatty())
    return Console(stderr=stderr, soft_wrap=True, width=None if terminal else UNWRAPPED_WIDTH)


def _progress_console(console: Console | None) -> Console:
    return console if console is not None else Console(stderr=True, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(
    label: str,
    total: int,
    unit: str = "",
    enabled: bool = True,
    console: Console | None = None,
) -> Iterator[Callable[[int], None]]:
    """A bar for `total` items; yields `advance(n)`. Does nothing when `enabled` is False.

    Without a terminal it prints ``label: done/total unit in S s`` once, when the work ends.
    """
    if not enabled:
        yield lambda n: None
        return
    console = _progress_console(console)
    start = time.perf_counter()
    if not console.is_terminal:
        done = [0]

        def count(n: int) -> None:
            done[0] += n

        yield count
        counted = f"{total:,}" if done[0] == total else f"{done[0]:,}/{total:,}"
        console.print(
            f"{label}: {counted} {unit} in {time.perf_counter() - start:.1f} s".replace("  ", " "),
            markup=False,
            highlight=False,
        )
        return
    with bar_progress(console, TextColumn(unit), transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def bar_progress(console: Console, stats: TextColumn, **options: Any) -> Progress:
    """A rich Progress of striate's columns: label, bar, done/total, `stats`, elapsed, left."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        stats,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=console, **options)


@contextlib.contextmanager
def phase(label: str, enabled: bool = True, console: Console | None = None) -> Iterator[None]:
    """Work without a count: a spinner on a terminal, then ``label: S s`` once it ends (the
    line alone without a terminal). Does nothing when `enabled` is False."""
    if not enabled:
        yield
        return
    console = _progress_console(console)
    start = time.perf_counter()
    if console.is_terminal:
        with console.status(label):
            yield
    else:
        yield
    console.print(f"{label}: {time.perf_counter() - start:.1f} s", markup=False, highlight=False)


@contextlib.contextmanager
def warnings_as_lines(console: Console | None = None) -> Iterator[None]:
    """Inside, striate's own warnings (`StriateWarning`) print as one ``warning: message`` line
    on stderr instead of Python's ``file:line: StriateWarning: …`` and a line of source code;
    other warnings are shown as Python shows them."""
    out = _progress_console(console)
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if issubclass(category, StriateWarning):
                out.print(f"warning: {message}", markup=False, highlight=False)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield
