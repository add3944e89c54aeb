"""The Atari preprocessing of DQN (Mnih et al. 2015, "Human-level control through deep
reinforcement learning", Methods: preprocessing; the lecture's slides): each agent step repeats
the action for 4 emulator frames, the observed frame is the pixel-wise max of the last two (sprites
flicker), turned grey (luminance) and shrunk to 84×84, and the agent sees the last 4 such frames.
Episodes start after a random number (1–30) of no-op actions; ending an episode at each lost life
is optional (Machado et al. 2018 advise against it).

    env = make_atari("ALE/Pong-v5", seed=0)        # observations 4×84×84 uint8
    is_atari("ALE/Pong-v5")                         # True: DQN wraps these by itself

It follows gymnasium's AtariPreprocessing (same steps and options), which needs OpenCV for the
resize; striate does not depend on OpenCV, so the frames are resized here by the same area
averaging as OpenCV's INTER_AREA (each output pixel the mean of the source area it covers, edge
pixels weighted by the part inside), as two small matrix products in torch (NumPy's BLAS threads
stall on a busy machine). ALE's v5 games skip 4 frames themselves: they are made with
frameskip=1 so that the skipping happens once, here. Their sticky actions
(repeat_action_probability 0.25, Machado et al. 2018) stay unless overridden.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import FrameStackObservation

from striate.checks import non_negative_int, positive_int
from striate.errors import InputError
from striate.rl.envs import env_ids, make_env


def is_atari(env_id: str) -> bool:
    """Whether `env_id` is one of ale-py's games."""
    spec = gym.registry.get(env_id) if env_id in env_ids() else None
    entry = getattr(spec, "entry_point", "") if spec is not None else ""
    return isinstance(entry, str) and entry.startswith("ale_py")


class AtariFrames(gym.Wrapper):
    """No-op reset, frame skip with a max over the last two frames, grey 84×84 uint8 frames
    (gymnasium's AtariPreprocessing, see the module docstring)."""

    def __init__(self, env: gym.Env, noop_max: int = 30, frame_skip: int = 4,
                 screen_size: int = 84, terminal_on_life_loss: bool = False):  # fmt: skip
        super().__init__(env)
        if getattr(env.unwrapped, "_frameskip", None) != 1:
            raise InputError(
                "atari: the game skips frames itself; make it with frameskip=1 (make_atari does)"
            )
        self.noop_max = non_negative_int("atari", "noop_max", noop_max)
        self.frame_skip = positive_int("atari", "frame_skip", frame_skip)
        self.screen_size = positive_int("atari", "screen_size", screen_size)
        self.terminal_on_life_loss = terminal_on_life_loss
        height, width = env.observation_space.shape[:2]
        self.frames = np.zeros((2, height, width), dtype=np.uint8)  # the last two screens
        self.lives = 0
        self.rows = torch.from_numpy(area_weights(height, screen_size))
        self.cols_t = torch.from_numpy(area_weights(width, screen_size).T.copy())
        self.observation_space = gym.spaces.Box(0, 255, (screen_size, screen_size), np.uint8)

    @property
    def ale(self):
        return self.env.unwrapped.ale

    def step(self, action):
        total, terminated, truncated, info = 0.0, False, False, {}
        for t in range(self.frame_skip):
            _, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if self.terminal_on_life_loss:
                lives = self.ale.lives()
                terminated = terminated or lives < self.lives
                self.lives = lives
            if terminated or truncated:
                break
            if t >= self.frame_skip - 2:
                self.ale.getScreenGrayscale(self.frames[t - self.frame_skip + 2])
        return self._observation(), total, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        _, info = self.env.reset(seed=seed, options=options)
        rng = self.env.unwrapped.np_random
        noops = int(rng.integers(1, self.noop_max + 1)) if self.noop_max else 0
        for _ in range(noops):
            _, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                _, info = self.env.reset(seed=seed, options=options)
        self.lives = self.ale.lives()
        self.frames[0] = 0
        self.ale.getScreenGrayscale(self.frames[1])
        return self._observation(), info

    def _observation(self) -> np.ndarray:
        """The max of the last two screens, shrunk to screen_size² by area averaging."""
        screen = self.frames.max(0) if self.frame_skip > 1 else self.frames[1]
        small = self.rows @ torch.from_numpy(screen).float() @ self.cols_t  # torch: its threads
        return small.round_().to(torch.uint8).numpy()


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """n_out × n_in weights: output cell i averages the input over [i s, (i + 1) s) with
    s = n_in / n_out, each input cell weighted by how much of it lies inside."""
    scale = n_in / n_out
    lo = np.arange(n_out, dtype=np.float64)[:, None] * scale
    cells = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.minimum(lo + scale, cells + 1) - np.maximum(lo, cells)
    return (np.clip(overlap, 0, None) / scale).astype(np.float32)


def make_atari(env_id: str, seed: int | None = None, *, noop_max: int = 30, frame_skip: int = 4,
               screen_size: int = 84, stack: int = 4, terminal_on_life_loss: bool = False,
               **kwargs: Any) -> gym.Env:  # fmt: skip
    """An ALE game with DQN's preprocessing: observations stack × screen_size² uint8 (4×84×84),
    reset with `seed` (and its action space seeded). `kwargs` go to the game
    (e.g. repeat_action_probability=0.0 for the deterministic games of Mnih et al. 2015)."""
    if not is_atari(env_id):
        raise InputError(
            f"make_atari: {env_id!r} is not an Atari game of ale-py; use an id like ALE/Pong-v5 "
            "(`striate rl envs` lists them; install the atari extra if there are none)"
        )
    stack = positive_int("atari", "stack", stack)
    env = make_env(env_id, frameskip=1, **kwargs)
    env = AtariFrames(env, noop_max, frame_skip, screen_size, terminal_on_life_loss)
    env = FrameStackObservation(env, stack)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env
