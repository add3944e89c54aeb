"""Interpretable cells of a character language model (Karpathy, Johnson & Fei-Fei 2015,
"Visualizing and Understanding Recurrent Networks"; lecture 10 of 002_*.txt, "Searching for
interpretable cells"): one cell's activation after each character, shown as the text with each
character's background coloured by it, and the cells that best track features of the text (inside
quotes, position in the line, bracket depth, the end of the line approaching).

    acts = cell_activations(model, vocab, text)        # (T, H): tanh(c_t) of the last layer
    for feature, cell, r in find_cells(model, vocab, text):
        Path(f"{feature}.html").write_text(cell_html(text, acts[:, cell]))

Karpathy et al. colour tanh(c) of an LSTM cell ("cell", the default here); the output h = o⊙tanh(c)
("hidden") works for any recurrent kind.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any, NamedTuple

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import Tensor, nn

from striate.checks import integer, one_of, positive_int, positive_number
from striate.errors import InputError
from striate.progress import progress_bar
from striate.sequence.recurrent import Recurrent

VALUES = ("cell", "hidden")
FEATURES = {
    "inside_quotes": "1 inside a double-quoted span (after its opening quote, up to its closing)",
    "line_position": "characters since the last newline (0 on it; the first line counts from 1)",
    "bracket_depth": "open minus closed ( [ { brackets so far",
    "to_line_end": "characters left until the next newline (0 on the newline itself)",
}
_OPEN, _CLOSE = "([{", ")]}"
# The figure draws each character as a text artist: keep it to a readable page.
MAX_FIGURE_CHARS = 6000


class CellMatch(NamedTuple):
    """A cell whose activation correlates with a text feature (Pearson r over the characters)."""

    feature: str
    cell: int
    correlation: float


def text_features(text: str) -> dict[str, Tensor]:
    """The FEATURES of `text`, one float64 value per character, each the state after reading
    that character (as the cell's activation is). Computed with cumulative sums, not a loop."""
    if not isinstance(text, str) or not text:
        raise InputError("text_features: text must be a non-empty string")
    codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
    n = codes.numel()
    idx = torch.arange(n)

    def count(chars: str) -> Tensor:
        hits = torch.zeros(n, dtype=torch.long)
        for ch in chars:  # a handful of characters, each compared with the whole text at once
            hits += codes == ord(ch)
        return hits

    newline = codes == ord("\n")
    # Straight quotes toggle; curly ones open and close.
    straight = torch.cumsum(count('"'), 0) % 2 == 1
    curly = torch.cumsum(count("“") - count("”"), 0) > 0
    last_newline = torch.cummax(torch.where(newline, idx, -1), 0).values  # -1: before the text
    flipped = torch.where(newline, idx, n).flip(0)  # the next newline, or n after the last line
    next_newline = torch.cummin(flipped, 0).values.flip(0)
    return {
        "inside_quotes": (straight | curly).double(),
        "line_position": (idx - last_newline).double(),
        "bracket_depth": torch.cumsum(count(_OPEN) - count(_CLOSE), 0).double(),
        "to_line_end": (next_newline - idx).double(),
    }


def cell_activations(
    model: nn.Module,
    vocab: Any,
    text: str,
    *,
    layer: int = -1,
    value: str = "cell",
    chunk: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> Tensor:
    """Every cell's activation after each character of `text` (T, H), float32 on the CPU:
    tanh(c_t) ("cell", LSTM only) or h_t ("hidden") of one layer (default the last), from
    `Recurrent.trace` on the input the model gives its recurrent layer, in chunks with the state
    carried (one sequence, from a zero state)."""
    value = one_of("cell_activations", "value", value, VALUES)
    chunk = positive_int("cell_activations", "chunk", chunk)
    rnn = _recurrent_layer(model)
    layer = integer(
        "cell_activations", "layer", layer, low=-rnn.num_layers, high=rnn.num_layers - 1
    )
    if value == "cell" and rnn.kind != "lstm":
        raise InputError(
            f"cell_activations: value='cell' is tanh(c) of an LSTM, the model is a {rnn.kind}; "
            "use value='hidden'"
        )
    if not isinstance(text, str) or not text:
        raise InputError("cell_activations: text must be a non-empty string")
    ids = vocab.encode(text)[None].to(device)
    seen: list[tuple] = []
    hook = rnn.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((args, kwargs)), with_kwargs=True
    )
    was_training = model.training
    model.eval()
    out = []
    try:
        bar = progress_bar("cell activations", ids.shape[1], "chars", progress)
        with torch.no_grad(), bar as step:
            state = None
            for t in range(0, ids.shape[1], chunk):
                seen.clear()
                _, state = model.features(ids[:, t : t + chunk], state)
                args, kwargs = seen[0]
                trace = rnn.trace(*args, **kwargs)
                keep = torch.tanh(trace["c"][layer]) if value == "cell" else trace["h"][layer]
                out.append(keep[0].float().cpu())
                step(keep.shape[1])
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(out)


def find_cells(
    model: nn.Module,
    vocab: Any,
    text: str,
    *,
    top: int = 1,
    features: Iterable[str] | None = None,
    layer: int = -1,
    value: str = "cell",
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> list[CellMatch]:
    """For each text feature, the `top` cells whose activation correlates best (largest |r|)
    with it over `text`: rows (feature, cell, r), strongest first within a feature. A feature
    that is constant on the text (no quotes, no brackets) has no correlation and no rows."""
    top = positive_int("find_cells", "top", top)
    names = list(FEATURES) if features is None else list(features)
    for name in names:
        one_of("find_cells", "features", name, tuple(FEATURES))
    acts = cell_activations(
        model, vocab, text, layer=layer, value=value, device=device, progress=progress
    )
    table = text_features(text)
    r = correlations(acts, torch.stack([table[name] for name in names], dim=1))  # (K, H)
    rows = []
    for k, name in enumerate(names):
        if torch.isnan(r[k]).all():
            continue
        order = torch.argsort(r[k].nan_to_num(0.0).abs(), descending=True)[:top]
        rows += [CellMatch(name, int(c), float(r[k, c])) for c in order]
    return rows


def correlations(acts: Tensor, features: Tensor) -> Tensor:
    """Pearson r of every feature (T, K) with every cell (T, H) over the T characters: (K, H),
    in float64; NaN for a constant feature, 0 for a constant cell."""
    a = acts.double() - acts.double().mean(0)
    f = features.double() - features.double().mean(0)
    a_norm, f_norm = a.norm(dim=0), f.norm(dim=0)
    r = (f.T @ a) / (f_norm[:, None] * a_norm.clamp_min(1e-300)[None, :])
    r = torch.where(a_norm[None, :] > 0, r, 0.0)
    return torch.where(f_norm[:, None] > 0, r, torch.nan)


def cell_html(text: str, values: Tensor, *, scale: float = 1.0, title: str | None = None) -> str:
    """A standalone HTML page of `text`, each character's background red for a positive and blue
    for a negative activation, as strong as |value|/scale; the value shows on hover."""
    values = _check_values("cell_html", text, values)
    scale = positive_number("cell_html", "scale", scale)
    alpha = (values.abs() / scale).clamp(max=1.0).tolist()
    spans = []
    for ch, v, a in zip(text, values.tolist(), alpha, strict=True):
        rgb = "214,39,40" if v >= 0 else "31,119,180"
        spans.append(
            f'<span style="background:rgba({rgb},{a:.3f})" title="{v:+.3f}">'
            f"{html.escape(ch)}</span>"
        )
    heading = f"<h3>{html.escape(title)}</h3>\n" if title else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        f"{html.escape(title or 'cell activation')}</title></head><body>\n{heading}"
        '<div style="font-family:monospace;white-space:pre-wrap;line-height:1.5">'
        + "".join(spans)
        + "</div>\n</body></html>\n"
    )


def cell_figure(
    text: str,
    values: Tensor,
    *,
    columns: int = 80,
    scale: float = 1.0,
    title: str | None = None,
) -> Figure:
    """A matplotlib Figure of `text` laid out in lines of at most `columns` characters, each
    character on a background coloured by its activation (RdBu, red positive)."""
    values = _check_values("cell_figure", text, values)
    columns = positive_int("cell_figure", "columns", columns)
    scale = positive_number("cell_figure", "scale", scale)
    if len(text) > MAX_FIGURE_CHARS:
        raise InputError(
            f"cell_figure: the text has {len(text):,} characters, more than the "
            f"{MAX_FIGURE_CHARS:,} a figure shows; pass a slice (cell_html takes any length)"
        )
    rows, cols = _layout(text, columns)
    height = int(rows.max()) + 1
    grid = torch.full((height, columns), float("nan"))
    grid[rows, cols] = values.float()
    fig = Figure(figsize=(0.11 * columns + 0.4, 0.22 * height + (0.6 if title else 0.3)))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 if not title else 0.98 - 0.4 / fig.get_figheight()))
    cmap = colormaps["RdBu_r"].with_extremes(bad="white")
    ax.imshow(grid.numpy(), cmap=cmap, vmin=-scale, vmax=scale, aspect="auto", alpha=0.6)
    for ch, r, c in zip(text, rows.tolist(), cols.tolist(), strict=True):
        if not ch.isspace():
            ax.text(c, r, ch, ha="center", va="center", family="monospace", fontsize=8)
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _layout(text: str, columns: int) -> tuple[Tensor, Tensor]:
    """Row and column of each character: a newline ends its line (and sits at its end); lines
    longer than `columns` wrap. Cumulative sums, no loop over the characters."""
    codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32)
    newline = codes == ord("\n")
    idx = torch.arange(codes.numel())
    before = torch.cat([torch.tensor([False]), newline[:-1]])  # a line starts after a newline
    previous = torch.cummax(torch.where(before, idx - 1, -1), 0).values
    within = idx - previous - 1  # index in the line, from 0
    line = torch.cumsum(before.long(), 0)
    wraps = torch.zeros(int(line[-1]) + 1, dtype=torch.long)
    wraps.scatter_reduce_(0, line, within // columns + 1, reduce="amax")
    first_row = torch.cumsum(wraps, 0) - wraps
    return first_row[line] + within // columns, within % columns


def _check_values(owner: str, text: str, values: Any) -> Tensor:
    if not isinstance(text, str) or not text:
        raise InputError(f"{owner}: text must be a non-empty string")
    if not isinstance(values, Tensor) or values.shape != (len(text),):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise InputError(
            f"{owner}: values must be one activation per character, ({len(text)},), got {shape}"
        )
    return values.detach().double().cpu().nan_to_num(0.0)


def _recurrent_layer(model: nn.Module) -> Recurrent:
    found = [m for m in model.modules() if isinstance(m, Recurrent)]
    if len(found) != 1:
        raise InputError(
            f"cell_activations: the model must hold one striate Recurrent layer (a RecurrentLM), "
            f"found {len(found)}"
        )
    return found[0]
