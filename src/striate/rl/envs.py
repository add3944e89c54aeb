"""Gymnasium environments with clear errors: make one by id (the Atari games of ale-py included),
and check that an agent can act in it before it starts.

    env = make_env("CartPole-v1", seed=0)          # reset with the seed; action_space seeded too
    n = discrete_actions(env, "dqn")                 # 2; a continuous action space: InputError
    size = flat_observation(env, "dqn")              # 4; images or dicts: InputError
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

from striate.checks import did_you_mean
from striate.errors import InputError

_ale_registered = False


def _register_ale() -> None:
    """Register ale-py's Atari environments (ALE/Pong-v5, …) with gymnasium once."""
    global _ale_registered
    if not _ale_registered:
        try:
            import ale_py

            gym.register_envs(ale_py)
        except ImportError:  # the Atari games are optional
            pass
        _ale_registered = True


def env_ids() -> list[str]:
    """Every registered environment id."""
    _register_ale()
    return sorted(gym.registry)


def make_env(env_id: str, seed: int | None = None, **kwargs) -> gym.Env:
    """`gymnasium.make(env_id, **kwargs)`, reset with `seed` (and its action space seeded), or an
    InputError naming the closest id when `env_id` is unknown."""
    _register_ale()
    if not isinstance(env_id, str) or env_id not in gym.registry:
        raise InputError(
            f"unknown environment {env_id!r}{did_you_mean(env_id, gym.registry)}; "
            "`striate rl envs` lists them"
        )
    if kwargs.get("render_mode") == "rgb_array":  # pygame needs no window (nor a desktop session)
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        raise InputError(f"{env_id} needs a package that is not installed: {e}") from None
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def discrete_actions(env: gym.Env, owner: str) -> int:
    """The number of actions of a Discrete action space; an InputError for any other."""
    space = env.action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise InputError(
            f"{owner}: {_name(env)} has a {type(space).__name__} action space {space}, but "
            f"{owner} picks one of n discrete actions; use an environment with a Discrete action "
            "space (CartPole-v1, Acrobot-v1, MountainCar-v0)"
        )
    return int(space.n)


def flat_observation(env: gym.Env, owner: str) -> int:
    """The length of a Box observation of one dimension (a vector of numbers); an InputError for
    images, dicts or discrete observations, which an MLP cannot take as they are."""
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        shape = getattr(space, "shape", None)
        what = type(space).__name__ + ("" if shape is None else f" of shape {shape}")
        raise InputError(
            f"{owner}: {_name(env)} observes {what}, but {owner}'s network takes a vector of "
            "numbers; use a vector-observation environment, or the Atari preprocessing for ALE "
            "games"
        )
    return int(np.prod(space.shape))


def discrete_states(env: gym.Env, owner: str) -> int:
    """The number of states of a Discrete observation space (FrozenLake, Taxi); an InputError for
    any other, as a table needs a finite state set."""
    space = env.observation_space
    if not isinstance(space, gym.spaces.Discrete):
        raise InputError(
            f"{owner}: {_name(env)} observes {type(space).__name__}, but a table needs a finite "
            "set of states; use FrozenLake-v1, Taxi-v4, CliffWalking-v1 or striate/GridWorld-v0"
        )
    return int(space.n)


def _name(env: gym.Env) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__
