"""The Atari preprocessing against the emulator stepped by hand (4 frames per step, the max of the
last two, grey, 84×84 by exact area averaging), the stacked observations, and DQN with the Nature
network running on Pong."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from striate.errors import InputError
from striate.rl.atari import is_atari, make_atari
from striate.rl.dqn import DQN, NatureQNetwork
from striate.rl.envs import make_env

torch.set_num_threads(1)


def area_resize_210x160(screen: np.ndarray) -> np.ndarray:
    """210×160 → 84×84 by area averaging, done the long way: repeat each pixel so that both
    sizes divide evenly (rows ×2 → 420 = 84·5, columns ×21 → 3360 = 84·40), then average
    blocks."""
    big = np.repeat(np.repeat(screen.astype(np.float64), 2, 0), 21, 1)
    return big.reshape(84, 5, 84, 40).mean((1, 3))


def test_observations_are_four_grey_84_frames():
    env = make_atari("ALE/Pong-v5", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 84, 84)
    assert env.unwrapped._frameskip == 1  # the skipping happens once, in the wrapper
    for _ in range(5):
        new, *_ = env.step(env.action_space.sample())
        np.testing.assert_array_equal(new[:3], obs[1:])  # the stack slides by one frame
        obs = new
    assert is_atari("ALE/Pong-v5") and not is_atari("CartPole-v1")


def test_frames_match_the_emulator_stepped_by_hand():
    wrapped = make_atari("ALE/Pong-v5", noop_max=0, repeat_action_probability=0.0)
    raw = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0)
    obs, _ = wrapped.reset(seed=5)
    raw.reset(seed=5)
    frame0 = raw.unwrapped.ale.getScreenGrayscale()
    np.testing.assert_allclose(obs[-1], area_resize_210x160(frame0), atol=0.51)
    actions = [0, 2, 3, 2, 2, 1, 3, 3, 0, 2] * 6
    for step, a in enumerate(actions):
        obs, reward, *_ = wrapped.step(a)
        screens, total = [], 0.0
        for _ in range(4):
            total += raw.step(a)[1]
            screens.append(raw.unwrapped.ale.getScreenGrayscale().astype(np.float64))
        expected = area_resize_210x160(np.maximum(screens[-2], screens[-1]))
        np.testing.assert_allclose(obs[-1], expected, atol=0.51, err_msg=f"step {step}")
        assert reward == total
    assert raw.unwrapped.ale.getEpisodeFrameNumber() == 4 * len(actions)


def test_not_an_atari_game_one_line():
    with pytest.raises(InputError, match="not an Atari game") as e:
        make_atari("CartPole-v1")
    assert "\n" not in str(e.value)


def _pong_agent(**extra) -> DQN:
    return DQN("ALE/Pong-v5", seed=0, buffer_size=400, learning_starts=60, batch_size=8,
               train_frequency=4, target_network_frequency=50, total_steps=1000,
               **extra)  # fmt: skip


def test_dqn_nature_network_runs_on_pong():
    agent = _pong_agent()
    assert isinstance(agent.q, NatureQNetwork)
    assert agent.replay.obs.dtype == torch.uint8 and agent.replay.obs.shape[1:] == (4, 84, 84)
    stats = agent.train(200, progress=False)
    assert stats["env_steps"] == 200 and agent.updates == 199 // 4 - 60 // 4  # t = 64, 68, …, 196
    assert np.isfinite(stats["loss"])
    obs = make_atari("ALE/Pong-v5", seed=1).reset(seed=1)[0]
    actions = agent.act(np.stack([obs, obs]))
    assert actions.shape == (2,) and actions.min() >= 0 and actions.max() < 6


def test_nature_network_shapes():
    net = NatureQNetwork(4, 6)
    assert net(torch.zeros(3, 4, 84, 84, dtype=torch.uint8)).shape == (3, 6)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size, m.stride) for m in convs] == [
        (32, (8, 8), (4, 4)), (64, (4, 4), (2, 2)), (64, (3, 3), (1, 1))]  # fmt: skip


@pytest.mark.slow
def test_dqn_runs_a_few_thousand_steps_on_pong():
    agent = _pong_agent(double=True, loss="huber")
    stats = agent.train(3000, progress=False)
    assert stats["env_steps"] == 3000 and np.isfinite(stats["loss"])


def test_raw_frames_refused_by_dqn():
    env = make_env("ALE/Pong-v5")
    assert env.observation_space.shape == (210, 160, 3)
    with pytest.raises(InputError, match="atari_preprocessing=True"):
        DQN("ALE/Pong-v5", atari_preprocessing=False)
