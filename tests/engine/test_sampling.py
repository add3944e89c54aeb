"""SGD-S core against its definition: draw frequencies by chi-square, the importance-sampling
identity summed exactly, Pearson r against scipy, decile persistence on constructed histories."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from striate.engine.sampling import (
    LossTable,
    SGDSSampler,
    decile_persistence,
    loss_gradnorm_correlation,
)
from striate.errors import ConfigError, InputError


def filled_table(losses) -> LossTable:
    table = LossTable(len(losses))
    table.update(torch.arange(len(losses)), torch.as_tensor(losses, dtype=torch.float64))
    return table


# LossTable


def test_update_records_losses_and_seen_mask():
    table = LossTable(5)
    table.update([3, 1], torch.tensor([0.5, 2.0]))
    assert table.losses.tolist() == [0.0, 2.0, 0.0, 0.5, 0.0]
    assert table.seen.tolist() == [False, True, False, True, False]
    table.update(np.array([1]), np.array([0.25]))
    assert table.losses[1].item() == 0.25


def test_repeated_indices_last_write_wins():
    table = LossTable(4)
    table.update([2, 0, 2, 2, 0], [1.0, 5.0, 2.0, 3.0, 7.0])
    assert table.losses.tolist() == [7.0, 0.0, 3.0, 0.0]


def test_float32_table_and_gradient_carrying_losses():
    table = LossTable(3, dtype=torch.float32)
    losses = torch.tensor([0.1, 0.2], requires_grad=True) * 2
    table.update(torch.tensor([0, 2]), losses)
    assert table.losses.dtype == torch.float32
    assert torch.allclose(table.losses, torch.tensor([0.2, 0.0, 0.4]))


def test_unseen_samples_get_the_mean_of_the_seen():
    table = LossTable(4)
    table.update([0, 1], [1.0, 3.0])
    assert table.filled().tolist() == [1.0, 3.0, 2.0, 2.0]


def test_table_state_round_trip():
    table = LossTable(6)
    table.update([0, 4], [1.5, 2.5])
    other = LossTable(6)
    other.load_state_dict(table.state_dict())
    assert torch.equal(other.losses, table.losses) and torch.equal(other.seen, table.seen)
    table.update([0], [9.0])  # the state is a copy
    assert other.losses[0].item() == 1.5


# SGDSSampler


def test_transient_epochs_are_permutations_and_differ():
    sampler = SGDSSampler(LossTable(50), transient_epochs=2, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and len(sampler) == 50
    assert list(sampler) == first  # the same epoch again yields the same order
    sampler.end_epoch()
    second = list(sampler)
    assert sorted(second) == list(range(50)) and second != first


def test_steady_state_frequencies_follow_the_losses():
    losses = torch.tensor([0.5, 1.0, 2.0, 4.0, 0.25, 3.0, 1.5, 0.75, 6.0, 1.0], dtype=torch.float64)
    sampler = SGDSSampler(filled_table(losses), transient_epochs=0, num_samples=50_000, seed=1)
    counts = np.bincount(list(sampler), minlength=len(losses))
    expected = (losses / losses.sum()).numpy() * counts.sum()
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(0.999, df=len(losses) - 1)
    uniform = np.full(len(losses), counts.sum() / len(losses))
    assert ((counts - uniform) ** 2 / uniform).sum() > 100 * stats.chi2.ppf(0.999, df=9)


def test_unseen_and_inactive_samples_in_the_draw():
    table = LossTable(4)
    table.update([0, 1], [1.0, 3.0])  # 2 and 3 unseen: the mean, 2.0
    sampler = SGDSSampler(table, transient_epochs=0, num_samples=1000)
    assert sampler.probabilities().tolist() == [1 / 8, 3 / 8, 2 / 8, 2 / 8]
    sampler.active[1] = False
    assert sampler.probabilities().tolist() == [1 / 5, 0.0, 2 / 5, 2 / 5]
    assert set(sampler) == {0, 2, 3}


def test_nothing_recorded_yet_draws_uniformly():
    sampler = SGDSSampler(LossTable(4), transient_epochs=0)
    assert sampler.probabilities().tolist() == [0.25] * 4
    assert set(sampler) <= {0, 1, 2, 3} and len(list(sampler)) == 4


def test_all_zero_losses_draw_uniformly():
    sampler = SGDSSampler(filled_table([0.0] * 4), transient_epochs=0)
    assert sampler.probabilities().tolist() == [0.25] * 4


def test_end_epoch_drops_the_lowest_losses():
    rng = np.random.default_rng(0)
    losses = rng.permutation(100).astype(float) + 1
    sampler = SGDSSampler(filled_table(losses), transient_epochs=0, reintroduce_fraction=0.0)
    sampler.end_epoch()
    assert sampler.active.sum() == 90
    assert set(np.flatnonzero(~sampler.active.numpy())) == set(np.argsort(losses)[:10])
    sampler.end_epoch()  # 10 % of the 90 left
    assert sampler.active.sum() == 81
    assert set(np.flatnonzero(~sampler.active.numpy())) == set(np.argsort(losses)[:19])
    assert len(sampler) == 81 and set(sampler) <= set(np.argsort(losses)[19:])


def test_end_epoch_reintroduces_removed_samples():
    losses = np.arange(1000, dtype=float) + 1
    sampler = SGDSSampler(filled_table(losses), transient_epochs=0, seed=4)
    sampler.end_epoch()  # drop 100, put back int(0.01 * 1000) = 10 of them
    back = np.flatnonzero(sampler.active.numpy()[:100])
    assert sampler.active.sum() == 910 and len(back) == 10
    assert sampler.active[100:].all()


def test_transient_epochs_drop_nothing():
    sampler = SGDSSampler(filled_table(np.arange(20.0) + 1), transient_epochs=2)
    sampler.end_epoch()
    assert sampler.active.all() and not sampler.steady
    sampler.end_epoch()
    assert sampler.steady


def test_too_few_samples_to_drop_drops_none():
    # The post's sorted_loss_idx[-int(0.1 * 5):] is [-0:], which would remove all five.
    sampler = SGDSSampler(filled_table([1.0, 2.0, 3.0, 4.0, 5.0]), transient_epochs=0)
    sampler.end_epoch()
    assert sampler.active.all()


def test_importance_weights_make_the_mean_unbiased():
    losses = torch.tensor([0.2, 1.0, 3.0, 0.5, 2.5, 0.1, 4.0, 1.2], dtype=torch.float64)
    sampler = SGDSSampler(filled_table(losses), transient_epochs=0, reweight=True)
    sampler.active[[1, 5]] = False
    f = torch.linspace(-1.0, 2.0, 8, dtype=torch.float64) ** 2
    p = sampler.probabilities()
    active = sampler.active.nonzero().squeeze(1)
    w = sampler.weights(active)
    assert torch.allclose((p[active] * w * f[active]).sum(), f[active].mean(), rtol=1e-12)
    assert torch.allclose((p[active] * w).sum(), torch.tensor(1.0, dtype=torch.float64))
    biased = (p[active] * f[active]).sum()
    assert not torch.isclose(biased, f[active].mean())  # the post's unweighted estimate


def test_weights_are_ones_without_reweight_or_in_transient_epochs():
    table = filled_table([1.0, 2.0, 3.0])
    assert SGDSSampler(table, transient_epochs=0).weights([0, 2]).tolist() == [1.0, 1.0]
    assert SGDSSampler(table, transient_epochs=1, reweight=True).weights([0]).tolist() == [1.0]


def test_weights_use_the_probabilities_of_the_draw():
    table = filled_table([1.0, 1.0, 2.0])
    sampler = SGDSSampler(table, transient_epochs=0, reweight=True)
    list(sampler)
    table.update([2], [100.0])  # refreshed mid-epoch: the epoch's draw is already fixed
    assert sampler.weights([2]).tolist() == pytest.approx([1 / (3 * 0.5)])
    sampler.end_epoch()
    assert sampler.probabilities()[2].item() > 0.9


def test_weights_of_a_sample_that_cannot_be_drawn():
    sampler = SGDSSampler(filled_table(np.arange(20.0) + 1), transient_epochs=0, reweight=True)
    sampler.end_epoch()
    with pytest.raises(InputError, match="sample 0 cannot be drawn"):
        sampler.weights([0])


def run_epochs(sampler: SGDSSampler, epochs: int) -> list[list[int]]:
    """Epochs of draws, with losses refreshed from a fixed function of index and epoch."""
    orders = []
    for _ in range(epochs):
        order = list(sampler)
        idx = torch.tensor(order)
        sampler.table.update(idx, (idx % 7 + 1).double() / (sampler.epoch + 1))
        orders.append(order)
        sampler.end_epoch()
    return orders


def test_resume_from_state_dict_continues_identically():
    def make():
        return SGDSSampler(LossTable(200), transient_epochs=1, seed=9)

    whole = run_epochs(make(), 5)
    first = make()
    head = run_epochs(first, 2)
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    assert head + run_epochs(resumed, 3) == whole
    assert head[1] != whole[2]


def test_resume_in_the_middle_of_an_epoch_keeps_its_draw():
    sampler = SGDSSampler(filled_table(np.arange(30.0) + 1), transient_epochs=0, seed=2)
    order = list(sampler)
    sampler.table.update(torch.tensor(order[:10]), torch.full((10,), 50.0))
    resumed = SGDSSampler(LossTable(30), transient_epochs=0, seed=2)
    resumed.load_state_dict(sampler.state_dict())
    assert list(resumed) == order


def test_set_epoch_jumps_to_an_epoch():
    sampler = SGDSSampler(LossTable(40), transient_epochs=5, seed=0)
    sampler.set_epoch(3)
    third = list(sampler)
    other = SGDSSampler(LossTable(40), transient_epochs=5, seed=0)
    for _ in range(3):
        other.end_epoch()
    assert list(other) == third


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"drop_fraction": 1.0}, "drop_fraction must be a probability in \\[0, 1\\)"),
        ({"drop_fraction": -0.1}, "drop_fraction"),
        ({"reintroduce_fraction": 1.5}, "reintroduce_fraction"),
        ({"transient_epochs": -1}, "transient_epochs must be a non-negative integer"),
        ({"num_samples": 0}, "num_samples must be a positive integer"),
        ({"reweight": "yes"}, "reweight must be True or False"),
    ],
)
def test_bad_sampler_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SGDSSampler(LossTable(3), **kwargs)


@pytest.mark.parametrize(
    "indices, losses, match",
    [
        ([0, 1], [1.0], "one loss per index \\(2\\), got shape \\(1,\\)"),
        ([0], [-1.0], "finite and >= 0"),
        ([0], [float("nan")], "finite and >= 0"),
        ([0], [float("inf")], "finite and >= 0"),
        ([3], [1.0], "indices must be in \\[0, 3\\), got 3"),
        ([-1], [1.0], "got -1"),
        ([0.5], [1.0], "indices must be integers"),
        ([[0]], [1.0], "indices must be 1-D"),
    ],
)
def test_bad_updates(indices, losses, match):
    with pytest.raises(InputError, match=match):
        LossTable(3).update(indices, losses)


def test_bad_tables_and_states():
    with pytest.raises(InputError, match="size must be a positive integer, got 0"):
        LossTable(0)
    with pytest.raises(ConfigError, match="dtype"):
        LossTable(3, dtype=torch.int64)
    with pytest.raises(InputError, match="table must be a LossTable"):
        SGDSSampler([1.0, 2.0])
    with pytest.raises(InputError, match="no loss recorded yet"):
        LossTable(3).filled()
    with pytest.raises(InputError, match="has 4 samples"):
        LossTable(4).load_state_dict(LossTable(3).state_dict())
    with pytest.raises(InputError, match="table has 4"):
        SGDSSampler(LossTable(4)).load_state_dict(SGDSSampler(LossTable(3)).state_dict())


# statistics


def test_correlation_equals_scipy_pearsonr():
    rng = np.random.default_rng(0)
    losses = rng.exponential(size=500)
    grad_norms = 2 * losses + rng.normal(scale=0.5, size=500)
    r = loss_gradnorm_correlation(torch.tensor(losses), grad_norms)
    assert r == pytest.approx(stats.pearsonr(losses, grad_norms).statistic, abs=1e-12)
    posts = np.cov(grad_norms, losses) / (np.std(grad_norms) * np.std(losses))
    assert posts[0, 1] == pytest.approx(r * 500 / 499, abs=1e-12)


@pytest.mark.parametrize(
    "losses, grad_norms, match",
    [
        ([1.0, 2.0], [1.0], "same length"),
        ([1.0], [1.0], "at least 2"),
        ([1.0, 1.0], [1.0, 2.0], "constant"),
        ([1.0, np.nan], [1.0, 2.0], "losses must be a 1-D array of finite numbers"),
        ([[1.0, 2.0]], [1.0, 2.0], "1-D"),
    ],
)
def test_bad_correlation_inputs(losses, grad_norms, match):
    with pytest.raises(InputError, match=match):
        loss_gradnorm_correlation(losses, grad_norms)


def test_constant_ranks_persist_completely():
    base = np.random.default_rng(0).permutation(1000).astype(float)
    history = np.stack([base * s + 3 for s in (1.0, 0.5, 2.0, 10.0)])  # same ranks every epoch
    assert decile_persistence(history) == {d: 1.0 for d in range(10)}


def test_random_ranks_persist_by_chance():
    rng = np.random.default_rng(1)
    history = np.stack([rng.permutation(100_000) for _ in range(3)]).astype(float)
    for epochs, expected in [(None, 0.01), (slice(1, 3), 0.1)]:
        shares = decile_persistence(history, epochs)
        assert sorted(shares) == list(range(10))
        for share in shares.values():  # 10 000 per decile: 0.3 is over 3 sigma at 0.01
            assert share == pytest.approx(expected, rel=0.3)


def test_decile_boundaries_and_ties():
    # 15 samples: deciles hold ranks floor(d * 15 / 10) ...; all tied -> ranks by index.
    history = np.zeros((2, 15))
    history[1] = np.arange(15)[::-1]  # reversed order in the second epoch
    shares = decile_persistence(history)
    # Epoch 0 ranks = index; epoch 1 ranks = 14 - index: only the middle decile's sample 7 stays.
    stops = [(d * 15) // 10 for d in range(11)]
    members = [set(range(stops[d], stops[d + 1])) for d in range(10)]
    expected = {d: len(m & {14 - i for i in m}) / len(m) for d, m in enumerate(members)}
    assert shares == expected
    assert decile_persistence(history, slice(0, 1)) == {d: 1.0 for d in range(10)}


def test_shuffled_losses_back_in_dataset_order_persist_as_unshuffled():
    # A toy run: each sample has a fixed difficulty, plus noise per epoch. A shuffled run records
    # losses in visit order; LossTable.update(permutation, ...) puts them back in dataset order.
    rng = np.random.default_rng(2)
    n, epochs = 5000, 4
    difficulty = rng.exponential(size=n)
    noise = rng.normal(scale=0.002, size=(epochs, n))
    unshuffled = np.abs(difficulty + noise)
    rows, visits = [], []
    for e in range(epochs):
        permutation = rng.permutation(n)
        visit_order = unshuffled[e, permutation]
        table = LossTable(n)
        table.update(permutation, visit_order)
        rows.append(table.losses.numpy())
        visits.append(visit_order)
    assert np.array_equal(np.stack(rows), unshuffled)
    kept = decile_persistence(np.stack(rows))
    assert kept == decile_persistence(unshuffled) and min(kept.values()) > 0.9
    scrambled = decile_persistence(np.stack(visits))  # forgetting to undo the shuffle
    assert max(scrambled.values()) < 0.01


@pytest.mark.parametrize(
    "history, epochs, match",
    [
        (np.zeros((3, 5)), None, "N >= 10"),
        (np.zeros(20), None, "2-D"),
        (np.zeros((3, 20)), slice(5, 6), "selects no epoch"),
        (np.zeros((3, 20)), 1, "epochs must be a slice or None"),
        (np.full((2, 20), np.inf), None, "finite"),
    ],
)
def test_bad_histories(history, epochs, match):
    with pytest.raises(InputError, match=match):
        decile_persistence(history, epochs)
