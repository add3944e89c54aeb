"""The state of a running gymnasium environment as plain data, so a stopped run resumes in the
middle of an episode exactly: the same observations, rewards and random draws as if it had not
stopped.

    state = capture(env)        # tensors and JSON-able values (for striate.state_file)
    restore(fresh_env, state)   # a freshly made env of the same id continues where env was

It walks the wrapper chain (`.env`) and a vector env's `.envs`, and keeps each layer's plain
attributes (numbers, flags, strings, numeric arrays and lists or tuples of them) and random
generators (the env's and its spaces'). That covers the classic-control and toy-text
environments; an emulator (ALE) keeps its state elsewhere, so `capture` refuses it and a run
resumes there at the next episode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from striate.errors import InputError

_SIMPLE = (bool, int, float, str, type(None))
_SKIP = {"env", "envs", "env_fns", "spec", "_saved_kwargs", "metadata", "_metadata"}


def _numeric(value: Any) -> bool:
    """An array of numbers or flags (a map's layout of bytes is fixed by the id: not state)."""
    return isinstance(value, np.ndarray) and value.dtype.kind in "biuf"


def capture(env: Any) -> dict[str, Any]:
    """The environment's state (see the module docstring)."""
    if type(getattr(env, "unwrapped", env)).__module__.startswith("ale_py"):
        raise InputError(
            "capture: an Atari emulator's state lives outside Python; resume starts a new episode"
        )
    state: dict[str, Any] = {"attributes": {}, "generators": {}}
    for name, value in vars(env).items():
        if name in _SKIP:
            continue
        if isinstance(value, np.random.Generator):
            state["generators"][name] = value.bit_generator.state
        elif isinstance(value, _SIMPLE):
            state["attributes"][name] = value
        elif _numeric(value):
            state["attributes"][name] = {"array": torch.from_numpy(value.copy())}
        elif isinstance(value, (list, tuple)) and value and all(map(_numeric, value)):
            state["attributes"][name] = {"arrays": [torch.from_numpy(v.copy()) for v in value]}
    for space in ("action_space", "observation_space"):
        rng = getattr(vars(env).get(space), "_np_random", None)
        if isinstance(rng, np.random.Generator):
            state["generators"][f"{space}._np_random"] = rng.bit_generator.state
    if "env" in vars(env):
        state["inner"] = capture(env.env)
    if isinstance(vars(env).get("envs"), list):
        state["each"] = [capture(e) for e in env.envs]
    return state


def restore(env: Any, state: dict[str, Any]) -> None:
    """Put `state` (from `capture` on an env made the same way) into `env`."""
    for name, value in state["attributes"].items():
        if isinstance(value, dict) and "array" in value:
            value = value["array"].numpy().copy()
        elif isinstance(value, dict) and "arrays" in value:
            old = vars(env).get(name)
            arrays = [v.numpy().copy() for v in value["arrays"]]
            value = tuple(arrays) if isinstance(old, tuple) else arrays
        setattr(env, name, value)
    for name, bit_state in state["generators"].items():
        owner, _, attribute = name.rpartition(".")
        target = getattr(env, owner) if owner else env
        rng = getattr(target, attribute, None)
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng()
            setattr(target, attribute, rng)
        rng.bit_generator.state = bit_state
    if "inner" in state:
        restore(env.env, state["inner"])
    if "each" in state:
        if len(state["each"]) != len(env.envs):
            raise InputError(
                f"restore: the saved state has {len(state['each'])} environments, this vector env "
                f"{len(env.envs)}; resume with the run's own settings"
            )
        for e, s in zip(env.envs, state["each"], strict=True):
            restore(e, s)
