"""striate.progress: a live bar on a terminal, one line per phase anywhere else, warnings as one
line, and consoles whose tables do not fold at 80 columns without a terminal."""

from __future__ import annotations

import io
import re
import warnings

import pytest
from rich.console import Console
from rich.table import Table

from striate.errors import StriateWarning
from striate.progress import (
    UNWRAPPED_WIDTH,
    output_console,
    phase,
    progress_bar,
    warnings_as_lines,
)


def test_without_a_terminal_a_phase_is_one_line_on_stderr(capsys):
    with progress_bar("decoding train", 10, "img") as advance:
        for _ in range(10):
            advance(1)
    with progress_bar("searching", 8, "queries") as advance:
        advance(3)  # stopped early: says how far it got
    with phase("hog features"):
        pass
    with progress_bar("quiet", 5, enabled=False) as advance, phase("quiet", enabled=False):
        advance(5)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"decoding train: 10 img in \d+\.\d s", lines[0])
    assert re.fullmatch(r"searching: 3/8 queries in \d+\.\d s", lines[1])
    assert re.fullmatch(r"hog features: \d+\.\d s", lines[2])


def test_on_a_terminal_the_bar_is_drawn():
    buffer = io.StringIO()
    terminal = Console(file=buffer, force_terminal=True, width=100)
    with progress_bar("decoding", 4, "img", console=terminal) as advance:
        advance(4)
    shown = buffer.getvalue()
    assert "decoding" in shown and "4/4" in shown and "━" in shown


def test_striate_warnings_print_as_one_line_and_others_as_python_shows_them(capsys):
    with warnings_as_lines():
        warnings.warn("skipped 2 unreadable images", StriateWarning, stacklevel=1)
        with pytest.warns(DeprecationWarning, match="old"):
            warnings.warn("old", DeprecationWarning, stacklevel=1)
    _, err = capsys.readouterr()
    assert err == "warning: skipped 2 unreadable images\n"
    with pytest.warns(StriateWarning):  # outside, Python's machinery is back
        warnings.warn("again", StriateWarning, stacklevel=1)


def test_output_console_keeps_table_cells_whole_without_a_terminal(capsys):
    console = output_console()
    assert not console.is_terminal and console.width == UNWRAPPED_WIDTH
    table = Table("name", "value")
    long_name = "a-rather-long-class-name-" * 5
    table.add_row(long_name, "1")
    console.print(table)
    out = capsys.readouterr().out
    assert long_name in out  # on one line, not folded at 80 columns
    assert max(map(len, out.splitlines())) < 200  # the table keeps its natural width
