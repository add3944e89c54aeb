"""The replay memory: uniform sampling (a chi-square test over many seeded draws), the ring keeps
the newest transitions, and its state_dict restores it exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from striate.errors import InputError
from striate.rl.replay import ReplayBuffer


def _filled(capacity: int, n: int, obs_shape=(3,), dtype=torch.float32) -> ReplayBuffer:
    buffer = ReplayBuffer(capacity, obs_shape, dtype)
    for i in range(n):
        obs = np.full(obs_shape, i % 256, dtype=np.float32 if dtype.is_floating_point else np.uint8)
        buffer.add(obs, i % 5, float(i), obs + 1, i % 7 == 0)
    return buffer


def test_samples_uniformly_chi_square():
    buffer = _filled(50, 50)
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([buffer.sample(1000, g)["reward"] for _ in range(100)]).long()
    counts = torch.bincount(draws, minlength=50).double()
    expected = draws.numel() / 50
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 49 degrees of freedom: the 0.999 quantile of chi-square(49) is 85.35
    assert chi2 < 85.35
    assert counts.min() > 0


def test_ring_overwrites_the_oldest():
    buffer = _filled(10, 25)
    assert len(buffer) == 10 and buffer.position == 25 % 10
    assert sorted(buffer.reward.tolist()) == list(map(float, range(15, 25)))
    batch = buffer.sample(500, torch.Generator().manual_seed(1))
    assert batch["reward"].min() >= 15
    # each transition's fields stay together
    torch.testing.assert_close(batch["obs"][:, 0], batch["reward"])
    torch.testing.assert_close(batch["next_obs"], batch["obs"] + 1)
    assert torch.equal(batch["terminated"], batch["reward"].long() % 7 == 0)


def test_only_filled_slots_are_sampled():
    batch = _filled(100, 7).sample(1000, torch.Generator().manual_seed(2))
    assert set(batch["reward"].long().tolist()) == set(range(7))


def test_state_dict_round_trip_uint8_frames():
    buffer = _filled(8, 13, obs_shape=(4, 84, 84), dtype=torch.uint8)
    assert buffer.obs.dtype == torch.uint8
    copy = ReplayBuffer(8, (4, 84, 84), torch.uint8)
    copy.load_state_dict(buffer.state_dict())
    for name in ("obs", "action", "reward", "next_obs", "terminated"):
        assert torch.equal(getattr(copy, name), getattr(buffer, name))
    assert (copy.position, len(copy)) == (buffer.position, len(buffer))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(copy.sample(16, g1)["obs"], buffer.sample(16, g2)["obs"])


def test_state_dict_of_a_partly_filled_buffer():
    buffer = _filled(20, 6)
    copy = ReplayBuffer(20, (3,))
    copy.load_state_dict(buffer.state_dict())
    assert len(copy) == 6 and copy.position == 6
    torch.testing.assert_close(copy.reward, buffer.reward)


def test_bad_input_one_line():
    with pytest.raises(InputError, match="empty") as e:
        ReplayBuffer(4, (3,)).sample(2, torch.Generator())
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="same settings") as e:
        ReplayBuffer(4, (5,)).load_state_dict(_filled(4, 4).state_dict())
    assert "\n" not in str(e.value)
