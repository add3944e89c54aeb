"""GradientNormLogger: the logged norm is the norm of the gradients a hand-written step
computes, before clipping, one value per step in steps.csv, kept across a resume."""

import copy
import csv
import math

import torch
import torch.nn.functional as F
from torch import nn

from striate.engine import GradientClipping, GradientNormLogger, Trainer
from tests.callbacks import CtrlCAt

QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]


def test_the_logged_norm_is_the_gradient_norm_of_each_step_before_clipping(tmp_path):
    data = _data()
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    reference = copy.deepcopy(model)
    callbacks = [GradientNormLogger(), GradientClipping(max_norm=0.01)]
    trainer = Trainer(epochs=2, lr=0.5, momentum=0.0, out=tmp_path, callbacks=callbacks, **QUIET)
    trainer.fit(model, data)
    opt = torch.optim.SGD(reference.parameters(), lr=0.5)
    expected = []
    for _ in range(2):
        for x, y in data:
            opt.zero_grad()
            F.cross_entropy(reference(x), y).backward()
            grads = [p.grad.flatten() for p in reference.parameters()]
            expected.append(torch.cat(grads).norm().item())
            nn.utils.clip_grad_norm_(reference.parameters(), 0.01)
            opt.step()
    logged = trainer.steps_log["grad_norm"]
    assert len(logged) == trainer.step == 8
    assert all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(logged, expected, strict=True))
    assert min(expected) > 0.01  # so clipping changed every step: the norm is taken before it
    rows = list(csv.DictReader((tmp_path / "steps.csv").open()))
    assert [float(r["grad_norm"]) for r in rows] == logged


def test_a_run_resumed_with_it_logs_nan_for_the_steps_before(tmp_path):
    data = _data()
    torch.manual_seed(0)
    first = Trainer(epochs=2, lr=0.1, out=tmp_path, callbacks=[CtrlCAt(4)], **QUIET)
    first.fit(nn.Linear(6, 2), data)
    assert first.interrupted and "grad_norm" not in first.steps_log
    trainer = Trainer(epochs=2, lr=0.1, out=tmp_path, callbacks=[GradientNormLogger()], **QUIET)
    trainer.fit(nn.Linear(6, 2), data, resume=tmp_path)
    norms = trainer.steps_log["grad_norm"]
    assert len(norms) == 8
    assert all(math.isnan(v) for v in norms[:4]) and all(v > 0 for v in norms[4:])


def test_the_report_draws_the_logged_norms():
    from striate.evaluate.curves import plot_steps

    nan = math.nan
    steps = {"step": [1, 2, 3, 4], "lr": [0.1] * 4, "grad_norm": [nan, 2.0, 1.0, 0.5]}
    fig = plot_steps(steps)
    (axis,) = [ax for ax in fig.axes if ax.get_title() == "gradient norm"]
    x, y = axis.lines[0].get_data()
    assert list(x) == [2, 3, 4] and list(y) == [2.0, 1.0, 0.5]
