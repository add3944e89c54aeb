"""Schedules against their formulas written out here and against torch's own schedulers."""

from __future__ import annotations

import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from striate.engine.schedules import (
    SCHEDULES,
    SGDR,
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    OneCycle,
    Schedule,
    Scheduler,
    StepDecay,
    Warmup,
    make_schedule,
    plot_schedule,
    schedule_for,
)
from striate.errors import ConfigError


def sgd(lr=0.1, momentum=0.9, groups=1):
    """A real SGD optimizer over tiny parameters; group i has lr * (i + 1)."""
    params = [
        {"params": [torch.nn.Parameter(torch.ones(2))], "lr": lr * (i + 1)} for i in range(groups)
    ]
    return torch.optim.SGD(params, lr=lr, momentum=momentum)


def drive(opt, scheduler, n):
    """The lrs (per group) and momenta that steps 0..n-1 use, stepping like a training loop."""
    lrs, moms = [], []
    for _ in range(n):
        lrs.append([g["lr"] for g in opt.param_groups])
        group = opt.param_groups[0]
        moms.append(group["betas"][0] if "betas" in group else group.get("momentum"))
        opt.step()
        scheduler.step()
    return lrs, moms


def factors(schedule, n):
    return [schedule.factor(t) for t in range(n)]


# --------------------------------------------------------------------------- formulas


def test_constant():
    assert factors(Constant(), 5) == [1.0] * 5


def test_step_decay_formula():
    s = StepDecay(gamma=0.5, step_size=3)
    expected = [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    assert factors(s, 10) == pytest.approx(expected)
    m = StepDecay(gamma=0.1, milestones=[2, 5])
    assert factors(m, 7) == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_exponential_and_inverse_time_formulas():
    e = Exponential(0.9)
    assert factors(e, 4) == pytest.approx([1, 0.9, 0.81, 0.729])
    assert e.factor(50) == pytest.approx(math.exp(50 * math.log(0.9)))
    k = InverseTime(0.5)
    assert factors(k, 4) == pytest.approx([1, 1 / 1.5, 1 / 2, 1 / 2.5])


def test_rsqrt_formula_and_transformer_shape_with_warmup():
    s = InverseSqrt(4)
    assert factors(s, 3) == pytest.approx([1, 1 / math.sqrt(1.25), 1 / math.sqrt(1.5)])
    # After a w-step warm-up: sqrt(w / t), Vaswani et al.'s decay.
    w = Warmup(InverseSqrt(10), 10)
    for t in (10, 11, 40, 1000):
        assert w.factor(t) == pytest.approx(math.sqrt(10 / t))


def test_cosine_formula_and_hold():
    s = Cosine(10, min_factor=0.1)
    for t in (0, 3, 5, 9, 10):
        assert s.factor(t) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * t / 10)) / 2)
    assert s.factor(5) == pytest.approx(0.55)
    assert s.factor(10) == pytest.approx(0.1)
    assert s.factor(25) == s.factor(10)


def test_linear_formula_and_hold():
    s = Linear(8, end_factor=0.2)
    assert factors(s, 9) == pytest.approx([1 - 0.8 * t / 8 for t in range(9)])
    assert s.factor(100) == pytest.approx(0.2)


def test_sgdr_cycles():
    s = SGDR(T_0=4, T_mult=2, min_factor=0.0)

    # Cycles [0, 4), [4, 12), [12, 28): restart to 1 at 4 and 12.
    def ref(t_cur, t_i):
        return 0.5 * (1 + math.cos(math.pi * t_cur / t_i))

    expected = [ref(t, 4) for t in range(4)] + [ref(t, 8) for t in range(8)]
    expected += [ref(t, 16) for t in range(16)]
    assert factors(s, 28) == pytest.approx(expected)
    assert s.factor(4) == s.factor(12) == 1.0
    assert factors(SGDR(3, 1, 0.2), 7) == pytest.approx(
        [0.2 + 0.8 * ref(t % 3, 3) for t in range(7)]
    )


def test_warmup_ramp_then_shifted_inner():
    inner = Cosine(20, 0.0)
    w = Warmup(inner, 4)
    assert factors(w, 4) == pytest.approx([1 / 5, 2 / 5, 3 / 5, 4 / 5])
    assert [w.factor(t) for t in range(4, 30)] == pytest.approx(factors(inner, 26))
    assert w.momentum(0) is None


# --------------------------------------------------------------------------- 1cycle


def test_onecycle_shape():
    T, div, final_div = 100, 10.0, 1000.0
    s = OneCycle(T, div=div, final_div=final_div, pct_start=0.4, pct_down=0.4)
    peak, low = 0.4 * T - 1, 0.8 * T - 2  # 39, 78
    f = factors(s, T + 5)
    assert f[0] == pytest.approx(1 / div)
    assert f[39] == pytest.approx(1.0) and max(f) == pytest.approx(1.0)
    assert f.index(max(f)) == 39
    assert f[78] == pytest.approx(1 / div)
    assert f[T - 1] == pytest.approx(1 / final_div)
    assert f[T + 4] == pytest.approx(1 / final_div)  # held after the end
    # Linear pieces, written out.
    for t in (10, 39, 50, 78, 90):
        if t <= peak:
            ref = 1 / div + (1 - 1 / div) * t / peak
        elif t <= low:
            ref = 1 - (1 - 1 / div) * (t - peak) / (low - peak)
        else:
            ref = 1 / div + (1 / final_div - 1 / div) * (t - low) / (T - 1 - low)
        assert f[t] == pytest.approx(ref)
    m = [s.momentum(t) for t in range(T)]
    assert m[0] == pytest.approx(0.95)
    assert min(m) == pytest.approx(0.85) and m.index(min(m)) == 39
    assert m[78] == pytest.approx(0.95) and m[90] == pytest.approx(0.95)
    assert m[20] == pytest.approx(0.95 - 0.1 * 20 / peak)


def test_onecycle_defaults_follow_gugger():
    s = OneCycle(1000)
    assert (s.div, s.final_div, s.pct_start, s.pct_down) == (10.0, 1000.0, 0.45, 0.45)
    assert s.factor(0) == pytest.approx(0.1)
    assert s.factor(999) == pytest.approx(0.1 / 100)  # one hundredth of the start
    assert OneCycle(50, max_momentum=None, min_momentum=None).momentum(3) is None


def test_onecycle_matches_torch_three_phase():
    T, lr_max = 57, 0.4
    opt = sgd(lr=lr_max)
    ours = Scheduler(opt, OneCycle(T, div=25, final_div=25e4, pct_start=0.3, pct_down=0.3))
    got = drive(opt, ours, T)
    opt2 = sgd(lr=lr_max)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        opt2,
        max_lr=lr_max,
        total_steps=T,
        pct_start=0.3,
        anneal_strategy="linear",
        div_factor=25,
        final_div_factor=1e4,
        three_phase=True,
    )
    want = drive(opt2, ref, T)
    assert [g[0] for g in got[0]] == pytest.approx([w[0] for w in want[0]], rel=1e-9)
    assert got[1] == pytest.approx(want[1], rel=1e-9)


# --------------------------------------------------------------------------- torch's schedulers

LR = torch.optim.lr_scheduler


@pytest.mark.parametrize(
    ("schedule", "make_ref", "n"),
    [
        (StepDecay(0.3, step_size=7), lambda o: LR.StepLR(o, step_size=7, gamma=0.3), 40),
        (
            StepDecay(0.5, milestones=[3, 10, 11]),
            lambda o: LR.MultiStepLR(o, milestones=[3, 10, 11], gamma=0.5),
            20,
        ),
        (Exponential(0.95), lambda o: LR.ExponentialLR(o, gamma=0.95), 40),
        (Cosine(30, 0.05), lambda o: LR.CosineAnnealingLR(o, T_max=30, eta_min=0.05 * 0.1), 31),
        (
            Linear(25, 0.1),
            lambda o: LR.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=25),
            40,
        ),
        (
            SGDR(5, 2, 0.01),
            lambda o: LR.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.001),
            60,
        ),
        (InverseTime(0.2), lambda o: LR.LambdaLR(o, lambda t: 1 / (1 + 0.2 * t)), 20),
    ],
)
def test_matches_torch_scheduler(schedule, make_ref, n):
    opt = sgd(lr=0.1, momentum=0.0)
    got, _ = drive(opt, Scheduler(opt, schedule), n)
    opt2 = sgd(lr=0.1, momentum=0.0)
    want, _ = drive(opt2, make_ref(opt2), n)
    assert [g[0] for g in got] == pytest.approx([w[0] for w in want], rel=1e-7, abs=1e-12)


# --------------------------------------------------------------------------- Scheduler


def test_per_group_ratios_kept_and_get_last_lr():
    opt = sgd(lr=0.2, groups=3)
    sched = Scheduler(opt, Cosine(10, 0.0))
    for t in range(12):
        lrs = [g["lr"] for g in opt.param_groups]
        f = 0.5 * (1 + math.cos(math.pi * min(t, 10) / 10))
        assert lrs == pytest.approx([0.2 * f, 0.4 * f, 0.6 * f])
        assert sched.get_last_lr() == pytest.approx(lrs)
        opt.step()
        sched.step()


def test_momentum_goes_to_adam_beta1_and_sgd_momentum():
    p = torch.nn.Parameter(torch.ones(2))
    adam = torch.optim.AdamW([p], lr=1e-3, betas=(0.9, 0.999))
    s = OneCycle(40)
    _, moms = drive(adam, Scheduler(adam, s), 40)
    assert moms == pytest.approx([s.momentum(t) for t in range(40)])
    assert adam.param_groups[0]["betas"][1] == 0.999
    opt = sgd()
    _, moms = drive(opt, Scheduler(opt, s), 40)
    assert moms == pytest.approx([s.momentum(t) for t in range(40)])


def test_momentum_schedule_without_momentum_raises():
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adagrad([p], lr=0.1)
    with pytest.raises(ConfigError, match="momentum.*max_momentum=None"):
        Scheduler(opt, OneCycle(40))
    Scheduler(opt, OneCycle(40, max_momentum=None, min_momentum=None))  # fine


def test_resume_continues_exactly():
    schedule = make_schedule("onecycle", 100, warmup=10)
    opt = sgd(groups=2)
    full = drive(opt, Scheduler(opt, schedule), 100)

    opt = sgd(groups=2)
    sched = Scheduler(opt, schedule)
    first = drive(opt, sched, 37)
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # plain numbers only, no pickled objects

    opt2 = sgd(groups=2)
    sched2 = Scheduler(opt2, make_schedule("onecycle", 100, warmup=10))
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    rest = drive(opt2, sched2, 63)
    assert first[0] + rest[0] == full[0]
    assert first[1] + rest[1] == full[1]

    # Loading only the scheduler's state also puts the optimizer at the right lr and momentum.
    opt3 = sgd(groups=2)
    sched3 = Scheduler(opt3, schedule)
    sched3.load_state_dict(saved["sched"])
    rest3 = drive(opt3, sched3, 63)
    assert rest3 == rest


def test_scheduler_rejects_non_schedule():
    with pytest.raises(ConfigError, match="make_schedule"):
        Scheduler(sgd(), lambda t: 1.0)
    with pytest.raises(ConfigError, match="Optimizer"):
        Scheduler("sgd", Constant())


# --------------------------------------------------------------------------- factory


def test_factory_builds_every_name():
    opts = {
        "step": {"step_size": 2},
        "exponential": {"gamma": 0.99},
        "inverse-time": {"k": 0.01},
        "rsqrt": {"timescale": 1},
        "sgdr": {"T_0": 2},
    }
    for name in SCHEDULES:
        s = make_schedule(name, 200, 10, **opts.get(name, {}))
        assert isinstance(s, Schedule)
        assert 0 < s.factor(0) <= 1
        assert repr(s).startswith(type(s).__name__ + "(")


def test_factory_converts_epochs_to_steps():
    s = make_schedule("step", 1000, 50, step_size=2.5, gamma=0.5)
    assert s.step_size == 125 and s.gamma == 0.5
    m = make_schedule("step", 1000, 50, milestones=[1, 1.5])
    assert m.milestones == (50, 75)
    assert make_schedule("sgdr", 1000, 50, T_0=0.5, T_mult=2).T_0 == 25
    assert make_schedule("rsqrt", 1000, 50, timescale=2).timescale == 100
    # gamma and k stay per step.
    assert make_schedule("exponential", 1000, 50, gamma=0.99).gamma == 0.99


def test_factory_warmup_keeps_the_end():
    s = make_schedule("cosine", 100, 10, warmup=2, min_factor=0.1)
    assert isinstance(s, Warmup) and s.warmup_steps == 20 and s.inner.total_steps == 80
    assert s.factor(100) == pytest.approx(0.1)  # cosine still ends at total_steps
    assert s.factor(0) == pytest.approx(1 / 21)
    assert s.factor(20) == pytest.approx(1.0)
    o = make_schedule("onecycle", 200, 10, warmup=1)
    assert o.factor(199) == pytest.approx(1e-3)
    assert isinstance(make_schedule("constant", 10, warmup=0), Constant)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_schedule("cosin", 10), r"constant, step.*did you mean 'cosine'"),
        (lambda: make_schedule("nope", 10), r"the schedules are constant, step, exponential"),
        (lambda: make_schedule("cosine", 10, gamma=0.1), r"no option 'gamma'.*min_factor, warmup"),
        (lambda: make_schedule("exponential", 10), r"needs gamma="),
        (lambda: make_schedule("step", 10), r"exactly one of step_size"),
        (lambda: make_schedule("step", 10, step_size=-1), r"step_size.*positive"),
        (lambda: make_schedule("step", 10, step_size=0), r"step_size.*positive"),
        (lambda: make_schedule("step", 100, 10, step_size=0.01), r"less than one step"),
        (lambda: make_schedule("step", 10, step_size=2, gamma=0), r"gamma.*\(0, 1\]"),
        (lambda: make_schedule("step", 10, step_size=2, gamma=10), r"gamma=0.1"),
        (lambda: make_schedule("step", 100, 10, milestones=[2, 1]), r"strictly increasing"),
        (lambda: make_schedule("step", 100, 10, milestones=3), r"list of epochs"),
        (lambda: make_schedule("cosine", 0), r"total_steps"),
        (lambda: make_schedule("cosine", 10, steps_per_epoch=0), r"steps_per_epoch"),
        (lambda: make_schedule("cosine", 100, 10, warmup=10), r"leaves nothing"),
        (lambda: make_schedule("cosine", 100, 10, warmup=-1), r"warmup.*positive"),
        (lambda: make_schedule("cosine", 100, min_factor=2), r"min_factor.*\[0, 1\]"),
        (lambda: make_schedule("inverse-time", 10, k=-0.1), r"k must be"),
        (lambda: make_schedule("sgdr", 10, T_0=1, T_mult=1.5), r"T_mult"),
        (lambda: make_schedule("onecycle", 3), r"too few"),
        (lambda: make_schedule("onecycle", 100, pct_start=0.7, pct_down=0.5), r"at most 1"),
        (lambda: make_schedule("onecycle", 100, div=0.5), r"div"),
        (lambda: make_schedule("onecycle", 100, min_momentum=None), r"both"),
        (lambda: Warmup(Constant(), 0), r"warmup_steps"),
        (lambda: Constant().factor(-1), r"non-negative"),
    ],
)
def test_bad_options_raise_config_error(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_config_error_is_value_error():
    with pytest.raises(ValueError):
        make_schedule("unknown", 10)


@settings(max_examples=40, deadline=None)
@given(
    t=st.integers(0, 10_000),
    total=st.integers(10, 5000),
    name=st.sampled_from(["cosine", "linear", "onecycle"]),
)
def test_bounded_schedules_stay_in_range(t, total, name):
    s = make_schedule(name, total)
    assert 0 <= s.factor(t) <= 1
    if t >= total:
        assert s.factor(t) == s.factor(total + 1)


# --------------------------------------------------------------------------- plot


def test_plot_returns_figure_with_momentum_panel():
    fig = plot_schedule(OneCycle(100), 120, base_lr=0.5)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    y = fig.axes[0].lines[0].get_ydata()
    assert len(y) == 120 and max(y) == pytest.approx(0.5)
    assert min(fig.axes[1].lines[0].get_ydata()) == pytest.approx(0.85)
    fig = plot_schedule(Cosine(50), 50)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    with pytest.raises(ConfigError):
        plot_schedule(Cosine(50), 0)


def test_schedule_for_cycles_momentum_only_where_the_optimiser_has_it():
    adagrad = torch.optim.Adagrad([torch.zeros(1, requires_grad=True)], lr=0.1)
    lr_only = schedule_for(adagrad, "onecycle", 100)
    Scheduler(adagrad, lr_only)
    assert "momentum" not in adagrad.param_groups[0]  # nothing to cycle: no error, no key
    with_momentum = schedule_for(sgd(), "onecycle", 100)
    assert with_momentum.momentum(0) == pytest.approx(0.95)
