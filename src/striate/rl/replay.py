"""Experience replay (Lin 1992; Mnih et al. 2015, "Human-level control through deep reinforcement
learning", Algorithm 1): a ring buffer of the last `capacity` transitions (s, a, r, s',
terminated), preallocated as tensors, sampled uniformly with replacement.

    buffer = ReplayBuffer(10_000, obs_shape=(4,))                  # Atari: (4, 84, 84), torch.uint8
    buffer.add(obs, action, reward, next_obs, terminated)
    batch = buffer.sample(128, generator)     # dict of tensors: obs, action, reward, next_obs, ...

`next_obs` is the state the step led to, also when the episode was cut by a time limit (then
`terminated` is False and the target bootstraps from it). Atari frames are kept as uint8 (a
quarter of the memory of float32); the network scales them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from striate.checks import positive_int
from striate.errors import InputError

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


class ReplayBuffer:
    """A ring buffer of transitions: once full, each new one replaces the oldest."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...],
                 obs_dtype: torch.dtype = torch.float32, device: Any = "cpu"):  # fmt: skip
        self.capacity = positive_int("replay", "capacity", capacity)
        self.device = torch.device(device)
        shape = (self.capacity, *obs_shape)
        self.obs = torch.zeros(shape, dtype=obs_dtype, device=self.device)
        self.next_obs = torch.zeros(shape, dtype=obs_dtype, device=self.device)
        self.action = torch.zeros(self.capacity, dtype=torch.int64, device=self.device)
        self.reward = torch.zeros(self.capacity, dtype=torch.float32, device=self.device)
        self.terminated = torch.zeros(self.capacity, dtype=torch.bool, device=self.device)
        self.position, self.size = 0, 0  # the next slot to write; how many slots are filled

    def __len__(self) -> int:
        return self.size

    def add(self, obs: Any, action: int, reward: float, next_obs: Any, terminated: bool) -> None:
        """Store one transition in the oldest slot."""
        i = self.position
        self.obs[i] = torch.as_tensor(np.asarray(obs), device=self.device)
        self.next_obs[i] = torch.as_tensor(np.asarray(next_obs), device=self.device)
        self.action[i], self.reward[i], self.terminated[i] = int(action), float(reward), terminated
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample_indices(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """`batch_size` slots drawn uniformly, with replacement, from the filled ones."""
        if self.size == 0:
            raise InputError("replay: the buffer is empty; add transitions before sampling")
        return torch.randint(self.size, (batch_size,), generator=generator).to(self.device)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A uniform minibatch: a dict of tensors with a leading batch axis."""
        i = self.sample_indices(batch_size, generator)
        return {name: getattr(self, name)[i] for name in FIELDS}

    def state_dict(self) -> dict[str, Any]:
        """The filled part of the buffer (tensors) and the write position: enough to resume."""
        n = self.size
        return {"position": self.position, "size": n,
                **{name: getattr(self, name)[:n].clone() for name in FIELDS}}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = int(state["size"])
        if n > self.capacity or tuple(state["obs"].shape[1:]) != tuple(self.obs.shape[1:]):
            raise InputError(
                f"replay: the saved buffer holds {n} transitions of shape "
                f"{tuple(state['obs'].shape[1:])}, this one {self.capacity} of "
                f"{tuple(self.obs.shape[1:])}; load it into a buffer made with the same settings"
            )
        for name in FIELDS:
            getattr(self, name)[:n] = state[name].to(self.device)
        self.position, self.size = int(state["position"]), n
