"""The pixel-optimising loop (striate.synthesis.optimize) and image files (synthesis.images).

References: a quadratic whose minimiser is known, the history the loop records against the loss
recomputed, and PIL for the files written.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from striate.errors import ConfigError, DataError, InputError, StriateError
from striate.synthesis.images import photograph, read_image, resize_to, save_image, to_tensor
from striate.synthesis.optimize import optimize_image

TARGET = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def quadratic(x):
    return {"fit": ((x - TARGET) ** 2).sum(), "small": 1e-3 * (x**2).sum()}


@pytest.mark.parametrize("optimizer, steps", [("lbfgs", 20), ("adam", 300)])
def test_reaches_the_known_minimiser(optimizer, steps):
    out = optimize_image(
        torch.zeros(1, 3, 8, 8), quadratic, steps=steps, optimizer=optimizer, lr=None
        if optimizer == "lbfgs" else 0.05, progress=False,
    )  # fmt: skip
    torch.testing.assert_close(out.image, TARGET / 1.001, atol=2e-3, rtol=0)
    assert len(out.history) == steps and not out.interrupted
    last = out.history[-1]
    assert last["loss"] == pytest.approx(last["fit"] + last["small"])


def test_pixels_stay_in_range_and_snapshots_come_every_n_steps():
    seen = []
    out = optimize_image(
        torch.full((1, 3, 4, 4), 0.5), lambda x: {"up": -(x.sum())}, steps=6, optimizer="adam",
        lr=0.3, every=2, on_snapshot=lambda step, img: seen.append((step, img.max().item())),
        progress=False,
    )  # fmt: skip
    assert out.image.max() == 1 and [s for s, _ in seen] == [2, 4, 6]


def test_ctrl_c_keeps_the_last_image():
    calls = []

    def interrupted_at_5(x):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return quadratic(x)

    out = optimize_image(torch.zeros(1, 3, 8, 8), interrupted_at_5, steps=50, optimizer="adam",
                         progress=False)  # fmt: skip
    assert out.interrupted and len(out.history) == 4
    assert out.image.abs().sum() > 0


def test_progress_lines_without_a_terminal_show_the_terms(capsys):
    optimize_image(torch.zeros(1, 3, 8, 8), quadratic, steps=20, label="stylize")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 10 and err[-1].startswith("stylize: step 20/20  fit ")


def test_a_loss_that_blows_up_and_bad_options_are_one_line():
    with pytest.raises(StriateError, match="loss became nan"):
        optimize_image(torch.zeros(1, 3, 2, 2), lambda x: {"l": x.sum() * float("nan")}, steps=2,
                       progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="optimizer"):
        optimize_image(torch.zeros(1, 3, 2, 2), quadratic, steps=2, optimizer="sgd")
    with pytest.raises(ConfigError, match="steps"):
        optimize_image(torch.zeros(1, 3, 2, 2), quadratic, steps=0)


def test_image_files_round_trip_and_refuse_to_overwrite(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    t = to_tensor(grey)
    assert t.shape == (1, 3, 3, 4) and torch.equal(t[0, 0], t[0, 2])
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert to_tensor(rgba).shape == (1, 3, 2, 2)
    path = save_image(t, tmp_path / "a.png")
    assert np.array_equal(np.asarray(Image.open(path))[..., 0], grey)
    torch.testing.assert_close(read_image(path), t)
    with pytest.raises(StriateError, match="exists"):
        save_image(t, path, overwrite=False)
    with pytest.raises(InputError, match=".png or .jpg"):
        save_image(t, tmp_path / "a.gif")
    assert resize_to(torch.rand(1, 3, 30, 60), 20).shape == (1, 3, 10, 20)


def test_unreadable_image_files_and_names_are_one_line(tmp_path):
    save_image(torch.rand(1, 3, 16, 16), tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:40])
    with pytest.raises(DataError, match="cut.png is not a readable image"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(DataError, match="cannot read"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="did you mean 'chelsea'"):
        photograph("chelsey")
    assert photograph("coffee").shape == (1, 3, 400, 600)
