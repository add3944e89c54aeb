"""The table every benchmark script prints: rows of section, program, value, unit, note."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch


def print_table(rows: Sequence[Mapping[str, object]]) -> None:
    """Print rows as aligned columns, after a line naming torch, its threads and the load."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load}")
    header = ("section", "program", "value", "unit", "note")
    cells = [header] + [
        (
            str(r["section"]),
            str(r["program"]),
            _fmt(float(r["value"]), str(r["unit"])),  # type: ignore[arg-type]
            str(r["unit"]),
            str(r.get("note", "")),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for k, c in enumerate(cells):
        line = "  ".join(
            v.ljust(w) if i != 2 else v.rjust(w)
            for i, (v, w) in enumerate(zip(c, widths, strict=True))
        )
        print(line.rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: float, unit: str) -> str:
    if unit in ("×", "s"):
        return f"{value:.3f}"
    if unit == "fraction":
        return f"{value:.4f}"
    if unit == "%":
        return f"{value:.2f}"
    return f"{value:,.1f}"
