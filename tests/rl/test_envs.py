"""rl.envs: environments by id with one-line errors for what an agent cannot use."""

import gymnasium as gym
import pytest

from striate.errors import InputError
from striate.rl.envs import discrete_actions, discrete_states, flat_observation, make_env


def test_make_env_seeds_the_reset_and_the_action_space():
    a, b = make_env("CartPole-v1", seed=3), make_env("CartPole-v1", seed=3)
    assert (a.reset(seed=3)[0] == b.reset(seed=3)[0]).all()
    assert [a.action_space.sample() for _ in range(20)] == [
        b.action_space.sample() for _ in range(20)
    ]
    assert discrete_actions(a, "dqn") == 2 and flat_observation(a, "dqn") == 4
    assert discrete_states(make_env("FrozenLake-v1"), "q-learning") == 16


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and "; " in msg
    return msg


def test_unknown_id_says_the_closest():
    with pytest.raises(InputError) as e:
        make_env("CartPole-v2")
    assert "did you mean 'CartPole-v1'" in _one_line(e)


def test_spaces_an_agent_cannot_take_are_one_line_each():
    with pytest.raises(InputError) as e:
        discrete_actions(make_env("Pendulum-v1"), "dqn")
    assert "Box action space" in _one_line(e)
    with pytest.raises(InputError) as e:
        flat_observation(make_env("FrozenLake-v1"), "ppo")
    assert "observes Discrete" in _one_line(e)
    with pytest.raises(InputError) as e:
        discrete_states(make_env("CartPole-v1"), "q-learning")
    assert "finite set of states" in _one_line(e)


def test_a_missing_physics_package_is_one_line(monkeypatch):
    def needs_box2d(*args, **kwargs):
        raise gym.error.DependencyNotInstalled("Box2D is not installed")

    monkeypatch.setattr(gym, "make", needs_box2d)
    with pytest.raises(InputError) as e:
        make_env("CarRacing-v3")
    assert "CarRacing-v3 needs a package that is not installed: Box2D" in str(e.value)
