"""The classical figures of the lectures: filters with each edge policy, the perceptron's gates
and XOR.

    .venv/bin/python docs/classic.py

writes docs/classic/filters.png, docs/classic/edges.png and docs/classic/perceptron.png (a few
seconds on a CPU). The photograph is ../shared/data/images/dog.jpg (STRIATE_SHARED_DATA).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from striate.classic.filters import convolve, plot_filters  # noqa: E402
from striate.classic.perceptron import (  # noqa: E402
    Perceptron,
    gate,
    plot_decision_boundary,
    xor,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "classic"
DATA = Path(os.environ.get("STRIATE_SHARED_DATA", HERE.parents[1] / "shared" / "data"))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    photo = Image.open(DATA / "images" / "dog.jpg").convert("L").resize((240, 160))
    x = np.asarray(photo, dtype=np.float64) / 255
    plot_filters(x, ("sobel_x", "sobel_y", "laplacian", "sharpen")).savefig(
        OUT / "filters.png", dpi=70
    )

    corner = x[:24, :24]
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
    axes[0].imshow(corner, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("top-left 24×24")
    for ax, edge in zip(axes[1:], ("extend", "pad", "crop"), strict=True):
        ax.imshow(
            np.abs(convolve(corner, "laplacian", edge).numpy()), cmap="gray", vmin=0, vmax=0.6
        )
        ax.set_title(f"|laplacian|, edge={edge}")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "edges.png", dpi=90)

    table = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    jitter = np.random.default_rng(0).normal(0, 0.06, (4 * 25, 2))
    pts = np.repeat(table, 25, axis=0) + jitter
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, name in zip(axes, ("and", "or", "xor"), strict=True):
        y = xor(np.repeat(table, 25, 0)) if name == "xor" else gate(name, np.repeat(table, 25, 0))
        with warnings.catch_warnings():  # XOR: one perceptron cannot separate it, and says so
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = Perceptron(max_iter=200).fit(pts, y)
        plot_decision_boundary(model, pts, y, ax=ax)
        ax.set_title(
            name.upper() + (": no single line separates it" if name == "xor" else " perceptron")
        )
    fig.tight_layout()
    fig.savefig(OUT / "perceptron.png", dpi=90)
    print("wrote", *sorted(p.name for p in OUT.glob("*.png")))


if __name__ == "__main__":
    main()
