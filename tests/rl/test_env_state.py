"""rl.env_state: a fresh environment given a captured state continues the episode exactly."""

import gymnasium as gym
import numpy as np
import pytest

from striate.errors import InputError
from striate.rl.env_state import capture, restore
from striate.rl.envs import make_env
from striate.state_file import load_state, save_state


def _run(env, actions):
    out = []
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        out.append((np.asarray(obs).tolist(), reward, terminated, truncated))
        if terminated or truncated:
            out.append(np.asarray(env.reset()[0]).tolist())  # a reset draws from the env's RNG
    return out


@pytest.mark.parametrize("env_id", ["CartPole-v1", "FrozenLake-v1", "Acrobot-v1"])
def test_a_restored_env_continues_the_episode_and_its_random_draws(env_id, tmp_path):
    rng = np.random.default_rng(0)
    env = make_env(env_id, seed=1)
    n = env.action_space.n
    _run(env, rng.integers(n, size=17))
    save_state(tmp_path / "env.safetensors", {"env": capture(env)})  # through the file format
    later = rng.integers(n, size=60)
    fresh = make_env(env_id, seed=99)  # another episode, another seed
    restore(fresh, load_state(tmp_path / "env.safetensors")["env"])
    assert _run(fresh, later) == _run(env, later)
    assert fresh.action_space.sample() == env.action_space.sample()


def test_a_vector_env_too():
    def make(seed):
        envs = gym.vector.SyncVectorEnv([lambda: make_env("CartPole-v1") for _ in range(3)])
        envs.reset(seed=seed)
        return envs

    env = make(0)
    for _ in range(25):
        env.step(np.array([1, 0, 1]))
    fresh = make(5)
    restore(fresh, capture(env))
    for _ in range(40):
        a, b = env.step(np.array([0, 1, 1])), fresh.step(np.array([0, 1, 1]))
        for x, y in zip(a[:4], b[:4], strict=True):
            assert np.array_equal(x, y)


def test_an_emulator_is_refused_in_one_line():
    pytest.importorskip("ale_py")
    with pytest.raises(InputError, match="resume starts a new episode"):
        capture(make_env("ALE/Pong-v5"))
