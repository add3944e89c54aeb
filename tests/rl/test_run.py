"""rl.run: the job's run folder, evaluations at fixed seeds, Ctrl-C and an exact resume, the GIF,
and its one-line errors, with a small agent written here (the algorithms have their own tests)."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from striate.errors import ConfigError, InputError
from striate.rl import run as rl_run
from striate.rl.envs import discrete_actions, make_env


class Drifter:
    """Acts at random from its own generator and sums what it observes (its 'weights'), so an
    exact resume shows in the sum, the history and the generator."""

    def __init__(self, env_id, *, seed=0, device="cpu", interrupt_at=None):
        self.env = make_env(env_id)
        self.n = discrete_actions(self.env, "drifter")
        self.obs, _ = self.env.reset(seed=seed)
        self.rng = np.random.default_rng(seed)
        self.total = torch.zeros(self.env.observation_space.shape, dtype=torch.float64)
        self.env_steps, self.history, self.ret, self.len = 0, [], 0.0, 0
        self.interrupt_at = interrupt_at

    def train(self, steps, progress=True):
        for _ in range(steps):
            obs, r, term, trunc, _ = self.env.step(int(self.rng.integers(self.n)))
            self.total += torch.as_tensor(obs, dtype=torch.float64)
            self.env_steps, self.ret, self.len = self.env_steps + 1, self.ret + r, self.len + 1
            if term or trunc:
                self.history.append({"env_steps": self.env_steps, "episode": len(self.history),
                                     "return": self.ret, "length": self.len})  # fmt: skip
                self.ret, self.len = 0.0, 0
                obs, _ = self.env.reset()
            self.obs = obs
            if self.env_steps == self.interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)
        return {"env_steps": self.env_steps}

    def act(self, obs, deterministic=True):
        return (np.asarray(obs)[:, 2] > 0).astype(np.int64)  # push towards the pole's lean

    def state_dict(self):
        return {"total": self.total, "env_steps": self.env_steps, "ret": self.ret,
                "len": self.len, "rng": self.rng.bit_generator.state,
                "obs": torch.as_tensor(self.obs)}  # fmt: skip

    def load_state_dict(self, state):
        self.total, self.env_steps = state["total"], state["env_steps"]
        self.ret, self.len = state["ret"], state["len"]
        self.rng.bit_generator.state = state["rng"]
        self.obs = state["obs"].numpy()


@pytest.fixture
def drifter(monkeypatch):
    monkeypatch.setitem(rl_run.ALGORITHMS, "drifter", (__name__, "Drifter"))


SETTINGS = dict(steps=2_500, eval_every=1_000, eval_episodes=3, progress=False)


def test_run_folder_and_evaluations_at_fixed_seeds(drifter, tmp_path):
    result = rl_run.train_agent("drifter", "CartPole-v1", out=tmp_path / "r", **SETTINGS)
    assert [e["env_steps"] for e in result.evaluations] == [1_000, 2_000, 2_500]
    for name in ("config.json", "checkpoint.safetensors", "episodes.csv", "evaluations.csv",
                 "learning_curve.png", "eval.json"):  # fmt: skip
        assert (tmp_path / "r" / name).is_file(), name
    # the greedy policy is fixed, so every evaluation sees the same seeded episodes
    assert len({e["mean"] for e in result.evaluations}) == 1
    again = rl_run.evaluate(result.agent, "CartPole-v1", 3, seed=1_000)
    assert again["mean"] == result.evaluations[-1]["mean"]
    assert json.loads((tmp_path / "r" / "eval.json").read_text())["env_steps"] == 2_500


def test_ctrl_c_then_resume_is_exact(drifter, tmp_path):
    full = rl_run.train_agent("drifter", "CartPole-v1", out=tmp_path / "full", **SETTINGS)
    cut = rl_run.train_agent(
        "drifter", "CartPole-v1", out=tmp_path / "cut", options={"interrupt_at": 1_300},
        **SETTINGS,
    )  # fmt: skip
    assert cut.interrupted and cut.agent.env_steps == 2_000  # the running unit of steps finished
    assert not (tmp_path / "cut" / "eval.json").exists()
    resumed = rl_run.train_agent(out=tmp_path / "cut", resume=True, progress=False)
    assert not resumed.interrupted and resumed.agent.env_steps == 2_500
    assert torch.equal(resumed.agent.total, full.agent.total)
    assert resumed.agent.history == full.agent.history
    assert resumed.evaluations == [
        {**e, "seconds": r["seconds"]}
        for e, r in zip(full.evaluations, resumed.evaluations, strict=True)
    ]


def test_eval_run_and_gif(drifter, tmp_path):
    rl_run.train_agent("drifter", "CartPole-v1", out=tmp_path / "r", **SETTINGS)
    gif = tmp_path / "episode.gif"
    score = rl_run.evaluate_run(tmp_path / "r", episodes=2, video=gif)
    assert len(score["returns"]) == 2
    with Image.open(gif) as im:  # a frame per step (PIL merges repeated frames' durations)
        assert im.size == (600, 400) and 1 < im.n_frames <= score["returns"][0]
        total = 0
        for i in range(im.n_frames):
            im.seek(i)
            total += im.info["duration"]
    assert total == score["returns"][0] * 40  # 25 frames per second


def test_bad_input_one_line_each(drifter, tmp_path):
    with pytest.raises(ConfigError, match="algorithm must be one of .*did you mean 'ppo'"):
        rl_run.train_agent("ppp", "CartPole-v1", out=tmp_path / "x", **SETTINGS)
    with pytest.raises(InputError, match="did you mean 'CartPole-v1'"):
        rl_run.train_agent("drifter", "CartPole-v9", out=tmp_path / "y", **SETTINGS)
    with pytest.raises(InputError, match="Box action space"):
        rl_run.train_agent("drifter", "Pendulum-v1", out=tmp_path / "z", **SETTINGS)
    with pytest.raises(InputError, match="no run at"):
        rl_run.train_agent(out=tmp_path / "missing", resume=True)
    with pytest.raises(InputError, match="no run folder"):
        rl_run.evaluate_run(tmp_path / "missing")
