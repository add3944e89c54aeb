"""Progress bars for long work (rich), one helper so every part of striate looks the same."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def progress_bar(
    label: str, total: int, unit: str = "", enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """A bar for `total` items; yields `advance(n)`. Does nothing when `enabled` is False."""
    if not enabled:
        yield lambda n: None
        return
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
