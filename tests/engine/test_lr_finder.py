"""The lr range test: its lr sequence, smoothing and stop rule against hand computations, the exact
restore of model/optimizer/loader, and its suggestion on a real (tiny) separable problem."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from striate.data.imageset import ImageSet
from striate.data.loader import BatchLoader
from striate.engine.lr_finder import LRFinderResult, lr_find
from striate.errors import ConfigError


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(16, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 4),
    )


def separable_set(n=512, seed=0):
    """1×4×4 uint8 images whose class is the argmax of a fixed linear map: linearly separable."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8)
    w = torch.randn(16, 4, generator=g)
    x = images.float().div(255).flatten(1) - 0.5
    labels = (x @ w).argmax(1)
    return ImageSet(images, labels, ("a", "b", "c", "d"))


def standardise(x):
    """Uniform [0, 1] pixels to roughly zero mean and unit variance."""
    return (x - 0.5) / 0.29


def real_step(model, optimizer):
    def step(batch):
        x, y = batch
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def fake(losses, optimizer=None, seen=None):
    """A `step` that returns the designed losses in turn (and records the lrs it was called at)."""
    it = iter(losses)

    def step(batch):
        if seen is not None:
            seen.append([g["lr"] for g in optimizer.param_groups])
        return next(it)

    return step


def dummy_optimizer(groups=(1.0,)):
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in groups]
    return torch.optim.SGD(params, lr=1.0)


def smoothed_reference(losses, beta):
    """Bias-corrected EMA as an explicit weighted mean: sum_j (1-b) b^(i-j) l_j / (1 - b^(i+1))."""
    out = []
    for i in range(len(losses)):
        num = sum((1 - beta) * beta ** (i - j) * losses[j] for j in range(i + 1))
        out.append(num / (1 - beta ** (i + 1)))
    return out


# --------------------------------------------------------------------------- lr sequence


def test_lr_sequence_is_geometric_and_keeps_group_ratios():
    opt = dummy_optimizer(groups=(0.1, 0.3, 0.05))
    seen = []
    res = lr_find(
        torch.nn.Linear(1, 1),
        opt,
        [0],
        fake([1.0] * 50, opt, seen),
        start=1e-6,
        end=1.0,
        num_steps=50,
    )
    assert res.stop_reason == "num_steps" and len(res.lrs) == 50
    expected = np.geomspace(1e-6, 1.0, 50)
    assert np.allclose(res.lrs, expected, rtol=1e-12)
    assert res.lrs[0] == 1e-6 and res.lrs[-1] == pytest.approx(1.0, rel=1e-12)
    seen = np.array(seen)
    assert np.allclose(seen[:, 0], expected, rtol=1e-12)
    assert np.allclose(seen[:, 1], 3 * expected) and np.allclose(seen[:, 2], 0.5 * expected)
    # The groups' own lrs are back afterwards.
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.3, 0.05]


# --------------------------------------------------------------------------- smoothing and stop


def test_smoothing_matches_hand_computation():
    raw = [2.0, 1.0, 3.0, 0.5, 0.7, 1.2, 0.9, 0.4, 0.6, 0.8]
    res = lr_find(
        torch.nn.Linear(1, 1),
        dummy_optimizer(),
        [0],
        fake(raw),
        num_steps=10,
        beta=0.7,
        diverge=1e9,
    )
    assert res.raw_losses == raw
    assert res.losses == pytest.approx(smoothed_reference(raw, 0.7), rel=1e-12)
    assert res.losses[0] == 2.0  # the bias correction makes the first value the first loss
    # Gugger's recursion as printed in the post, step by step.
    avg = 0.0
    for i, loss in enumerate(raw):
        avg = 0.7 * avg + 0.3 * loss
        assert res.losses[i] == pytest.approx(avg / (1 - 0.7 ** (i + 1)))


def test_stops_when_smoothed_loss_exceeds_four_times_the_minimum():
    # Falls to 1 around step 30, then grows 30% a step.
    raw = [5.0 * 0.95**i for i in range(32)] + [1.0 * 1.3**k for k in range(1, 60)]
    beta = 0.5
    sm = smoothed_reference(raw, beta)
    stop = next(i for i in range(5, len(sm)) if sm[i] > 4 * min(sm[:i]))
    res = lr_find(
        torch.nn.Linear(1, 1), dummy_optimizer(), [0], fake(raw), num_steps=len(raw), beta=beta
    )
    assert res.stop_reason == "diverged"
    assert len(res.losses) == stop + 1  # the point that crossed is recorded, then the test ends
    assert res.losses[-1] > 4 * min(res.losses[:-1])
    assert max(res.losses[:-1]) <= 5.0 and res.stop_lr == res.lrs[-1]
    # With diverge=8 it runs further.
    res8 = lr_find(
        torch.nn.Linear(1, 1),
        dummy_optimizer(),
        [0],
        fake(raw),
        num_steps=len(raw),
        beta=beta,
        diverge=8.0,
    )
    assert len(res8.losses) > len(res.losses)


def test_no_stop_during_the_first_steps_and_stop_on_nan():
    raw = [1.0, 10.0, 10.0] + [1.0] * 17 + [math.nan] + [1.0] * 10
    res = lr_find(
        torch.nn.Linear(1, 1), dummy_optimizer(), [0], fake(raw), num_steps=len(raw), beta=0.0
    )
    assert res.stop_reason == "non-finite" and len(res.lrs) == 20
    assert res.stop_lr == pytest.approx(1e-8 * (1e9) ** (20 / (len(raw) - 1)))
    json.dumps(res.to_dict())  # valid JSON


def test_batches_are_reiterated_and_one_pass_iterators_end_the_test():
    seen = []

    def step(batch):
        seen.append(batch)
        return 1.0

    lr_find(torch.nn.Linear(1, 1), dummy_optimizer(), [1, 2, 3], step, num_steps=7)
    assert seen == [1, 2, 3, 1, 2, 3, 1]
    res = lr_find(torch.nn.Linear(1, 1), dummy_optimizer(), iter([1, 2, 3]), step, num_steps=7)
    assert res.stop_reason == "exhausted" and len(res.lrs) == 3


# --------------------------------------------------------------------------- restore


def snapshot(model, opt):
    import copy

    return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())


def assert_same_state(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_state(x, y)
    else:
        assert a == b


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4),
        lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.8, 0.99)),
    ],
)
def test_model_optimizer_and_loader_restored_exactly(make_opt):
    data = separable_set(256)
    loader = BatchLoader(data, batch_size=32, device="cpu", seed=3)
    model = tiny_model()
    opt = make_opt(model.parameters())
    step = real_step(model, opt)
    for batch in loader:  # one real epoch: momentum buffers / Adam moments, BN statistics
        step(batch)
    model.eval()
    before_model, before_opt = snapshot(model, opt)
    loader_state = dict(loader.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]

    res = lr_find(model, opt, loader, step, start=1e-4, end=10.0, num_steps=40)
    assert len(res.lrs) > 10
    assert_same_state(model.state_dict(), before_model)
    assert_same_state(opt.state_dict(), before_opt)
    assert not model.training and not any(m.training for m in model.modules())
    assert loader.state_dict() == loader_state
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))
    # The next epoch is the one that would have come without the test.
    fresh = BatchLoader(data, batch_size=32, device="cpu", seed=3)
    list(fresh)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(loader, fresh, strict=True))


def test_restored_when_step_raises():
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    batches = list(BatchLoader(separable_set(128), batch_size=32, device="cpu"))
    step = real_step(model, opt)
    step(batches[0])
    before_model, before_opt = snapshot(model, opt)
    calls = []

    def failing(batch):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("out of memory")
        return step(batch)

    with pytest.raises(RuntimeError, match="out of memory"):
        lr_find(model, opt, batches, failing, num_steps=20)
    assert_same_state(model.state_dict(), before_model)
    assert_same_state(opt.state_dict(), before_opt)


# --------------------------------------------------------------------------- a real problem


def test_suggestion_on_a_separable_problem():
    data = separable_set(1024)
    loader = BatchLoader(data, batch_size=32, device="cpu", seed=0, normalize=standardise)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    res = lr_find(model, opt, loader, real_step(model, opt), start=1e-5, end=1e3, num_steps=100)
    assert res.stop_reason == "diverged" and 20 < len(res.lrs) < 100
    assert res.suggestion is not None and res.steepest is not None
    assert 1e-5 < res.suggestion < res.stop_lr / 10
    assert 1e-5 < res.steepest < res.stop_lr
    # The suggested lr trains: one epoch of plain SGD at it cuts the loss far below chance level,
    # while the start of the sweep barely moves it.
    x = standardise(data.images.float().div(255))

    def loss_after_one_epoch(lr):
        torch.manual_seed(1)
        m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
        step = real_step(m, torch.optim.SGD(m.parameters(), lr=lr))
        for batch in loader:
            step(batch)
        with torch.no_grad():
            return F.cross_entropy(m(x), data.labels).item()

    assert loss_after_one_epoch(res.suggestion) < 0.4 * math.log(4)
    assert loss_after_one_epoch(1e-5) > 0.9 * math.log(4)


# --------------------------------------------------------------------------- suggestions, plot


def designed(n=60, k_min=40):
    """A result whose smoothed loss (beta=0) falls fastest at index 20 and is lowest at k_min."""
    lrs = list(np.geomspace(1e-6, 1.0, n))
    i = np.arange(n)
    loss = 3 - np.tanh((i - 20) / 4.0) + 0.002 * (i - k_min) ** 2
    raw = [float(v) for v in loss]
    return lr_find(
        torch.nn.Linear(1, 1),
        dummy_optimizer(),
        [0],
        fake(raw),
        start=1e-6,
        end=1.0,
        num_steps=n,
        beta=0.0,
        diverge=100.0,
    ), lrs


def test_suggestion_is_a_tenth_of_the_minimum_and_steepest_is_the_fastest_fall():
    res, lrs = designed()
    assert res.suggestion == pytest.approx(lrs[40] / 10)
    assert res.steepest == pytest.approx(lrs[20], rel=0.3)
    # Few points: nothing to suggest.
    short = lr_find(torch.nn.Linear(1, 1), dummy_optimizer(), [0], fake([1.0] * 12), num_steps=12)
    assert short.suggestion is None and short.steepest is None
    assert json.loads(json.dumps(short.to_dict()))["suggestion"] is None


def test_plot_skips_points_and_marks_suggestion():
    res, lrs = designed()
    fig = res.plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    line = ax.lines[0]
    assert len(line.get_xdata()) == 60 - 10 - 5
    assert line.get_xdata()[0] == pytest.approx(lrs[10])
    assert ax.get_xscale() == "log"
    marks = [ln.get_xdata()[0] for ln in ax.lines[1:]]
    assert res.suggestion in marks
    assert len(res.plot(skip_start=0, skip_end=0).axes[0].lines[0].get_xdata()) == 60
    with pytest.raises(ConfigError, match="skip_start"):
        res.plot(skip_start=-1)
    empty = LRFinderResult([1e-3] * 5, [1.0] * 5, [1.0] * 5)
    fig = empty.plot()
    assert not fig.axes[0].lines
    assert "too few points" in fig.axes[0].texts[0].get_text()


def test_to_dict_is_json():
    res, _ = designed()
    d = json.loads(json.dumps(res.to_dict()))
    assert d["lrs"] == pytest.approx(res.lrs) and d["suggestion"] == pytest.approx(res.suggestion)
    assert set(d) >= {"lrs", "losses", "raw_losses", "suggestion", "steepest", "stop_reason"}


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": 0.0}, "start must be a positive number"),
        ({"start": -1e-3}, "start"),
        ({"start": 1.0, "end": 0.5}, "end must be a number above start"),
        ({"num_steps": 1}, "num_steps"),
        ({"num_steps": 2.5}, "num_steps"),
        ({"beta": 1.0}, "beta"),
        ({"diverge": 1.0}, "diverge"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        lr_find(torch.nn.Linear(1, 1), dummy_optimizer(), [0], fake([1.0] * 200), **kwargs)


def test_empty_batches_and_zero_lr_raise_config_error():
    model = torch.nn.Linear(1, 1)
    with pytest.raises(ConfigError, match="no batch"):
        lr_find(model, dummy_optimizer(), [], fake([1.0] * 10))
    with pytest.raises(ConfigError, match="lr is 0"):
        lr_find(model, dummy_optimizer(groups=(0.0, 1.0)), [0], fake([1.0] * 10))
    with pytest.raises(ConfigError, match="Optimizer"):
        lr_find(model, "sgd", [0], fake([1.0] * 10))
