"""DQN: the TD targets (plain and Double) and the Huber loss against direct computations, the
bootstrap at a time-limit cut, the target network's copy and Polyak step, exact resume through
the checkpoint file, one-line errors, and (slow) CartPole-v1 solved."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from striate.errors import ConfigError, InputError
from striate.rl import env_state
from striate.rl.dqn import DQN, DQNConfig, td_targets
from striate.rl.envs import make_env
from striate.rl.run import evaluate
from striate.state_file import load_state, save_state

torch.set_num_threads(1)

TINY = dict(buffer_size=300, learning_starts=40, batch_size=16, train_frequency=2,
            target_network_frequency=25, total_steps=400, hidden=[16])  # fmt: skip


def _linear(weight: list[list[float]]) -> nn.Linear:
    lin = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weight))
    return lin


def _batch() -> dict[str, torch.Tensor]:
    return {"obs": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
            "action": torch.tensor([0, 2, 1]), "reward": torch.tensor([1.0, -0.5, 2.0]),
            "next_obs": torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.5, 0.5]]),
            "terminated": torch.tensor([False, False, True])}  # fmt: skip


TARGET_W = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
ONLINE_W = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]


def test_dqn_target_by_hand():
    b, gamma = _batch(), 0.9
    y = td_targets(_linear(TARGET_W), _linear(ONLINE_W), b, gamma, double=False)
    # Q_target(s') rows: [1, 2, 1.5], [-1, 0.5, -0.25], [.5, .5, .5]; max: 2, 0.5, (ended)
    expected = torch.tensor([1.0 + 0.9 * 2.0, -0.5 + 0.9 * 0.5, 2.0])
    torch.testing.assert_close(y, expected)
    # the same, element by element from numpy
    q_next = b["next_obs"].numpy() @ np.array(TARGET_W).T
    ref = b["reward"].numpy() + gamma * (1 - b["terminated"].numpy()) * q_next.max(1)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-6)


def test_double_dqn_target_by_hand():
    b, gamma = _batch(), 0.9
    y = td_targets(_linear(TARGET_W), _linear(ONLINE_W), b, gamma, double=True)
    # online Q(s') rows: [0, 1, 4], [0, -1, 1], …: argmax 2 and 2; target evaluates them: 1.5, -0.25
    expected = torch.tensor([1.0 + 0.9 * 1.5, -0.5 + 0.9 * -0.25, 2.0])
    torch.testing.assert_close(y, expected)


def test_huber_loss_is_smooth_l1_by_hand():
    agent = DQN("CartPole-v1", seed=0, loss="huber", **TINY)
    agent.train(60, progress=False)
    batch = agent.replay.sample(32, torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = td_targets(agent.target, agent.q, batch, agent.config.gamma, False)
        q = agent.q(batch["obs"]).gather(1, batch["action"][:, None]).squeeze(1)
        # make some errors larger than 1 so both branches of the Huber loss count
        y = y + torch.linspace(-3, 3, 32)
        d = (q - y).abs()
        huber = torch.where(d < 1, 0.5 * d**2, d - 0.5).mean()
    batch["reward"] = batch["reward"] + torch.linspace(-3, 3, 32)
    assert agent.update(batch) == pytest.approx(float(huber), rel=1e-5)
    assert agent.loss is torch.nn.functional.smooth_l1_loss


def test_truncation_bootstraps_and_termination_does_not():
    agent = DQN("CartPole-v1", seed=0, **{**TINY, "learning_starts": 1000})
    agent._start(make_env("CartPole-v1", max_episode_steps=5), seed=3)
    agent.train(12, progress=False)
    assert [h["length"] for h in agent.history] == [5, 5]
    r = agent.replay
    assert not r.terminated[:12].any()  # two time-limit cuts, no termination
    # next_obs is the real last state, not the next episode's first
    for i in range(11):
        same = torch.equal(r.next_obs[i], r.obs[i + 1])
        assert same == (i not in (4, 9))
    batch = {
        k: getattr(r, k)[[4, 9]] for k in ("obs", "action", "reward", "next_obs", "terminated")
    }
    y = td_targets(agent.target, agent.q, batch, 0.99, False)
    expected = 1.0 + 0.99 * agent.target(r.next_obs[[4, 9]]).max(1).values
    torch.testing.assert_close(y, expected.detach())
    # random play ends episodes by termination well before 500 steps: flagged, and y = r there
    agent = DQN("CartPole-v1", seed=0, **{**TINY, "learning_starts": 1000})
    agent.train(200, progress=False)
    ends = np.cumsum([h["length"] for h in agent.history]) - 1
    assert torch.equal(torch.nonzero(agent.replay.terminated[:200]).flatten(), torch.tensor(ends))
    batch = {k: getattr(agent.replay, k)[ends] for k in ("obs", "action", "reward", "next_obs",
                                                          "terminated")}  # fmt: skip
    torch.testing.assert_close(td_targets(agent.target, agent.q, batch, 0.99, False),
                               batch["reward"])  # fmt: skip


def test_target_network_copy_and_polyak():
    agent = DQN("CartPole-v1", seed=0, **TINY)
    agent.train(100, progress=False)  # last update at t = 75, copies at 50 and 75
    assert agent.updates > 0
    for t, p in zip(agent.target.parameters(), agent.q.parameters(), strict=True):
        assert not torch.equal(t, p)  # updates at t = 76 … 98 came after the last copy
    agent._update_target()
    for t, p in zip(agent.target.parameters(), agent.q.parameters(), strict=True):
        assert torch.equal(t, p)
    polyak = DQN("CartPole-v1", seed=0, **{**TINY, "tau": 0.1})
    before = [t.clone() for t in polyak.target.parameters()]
    with torch.no_grad():
        for p in polyak.q.parameters():
            p.add_(1.0)
    polyak._update_target()
    for old, t, p in zip(before, polyak.target.parameters(), polyak.q.parameters(), strict=True):
        torch.testing.assert_close(t, 0.1 * p + 0.9 * old)


def test_exact_resume_through_the_checkpoint(tmp_path):
    straight = DQN("CartPole-v1", seed=1, **TINY)
    straight.train(300, progress=False)
    first = DQN("CartPole-v1", seed=1, **TINY)
    first.train(170, progress=False)
    save_state(tmp_path / "dqn.safetensors", {"agent": first.state_dict(),
               "env": env_state.capture(first.env), "history": first.history})  # fmt: skip
    state = load_state(tmp_path / "dqn.safetensors")
    resumed = DQN("CartPole-v1", seed=99, **TINY)  # another seed: everything comes from the file
    resumed.load_state_dict(state["agent"])
    env_state.restore(resumed.env, state["env"])
    resumed.history[:] = state["history"]
    resumed.train(130, progress=False)
    assert resumed.env_steps == straight.env_steps == 300
    assert resumed.history == straight.history
    for a, b in [(resumed.q, straight.q), (resumed.target, straight.target)]:
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y)
    assert torch.equal(resumed.replay.obs, straight.replay.obs)
    assert resumed.epsilon() == straight.epsilon()


def test_act_on_a_batch_and_stats():
    agent = DQN("CartPole-v1", seed=0, **TINY)
    stats = agent.train(50, progress=False)
    assert {"env_steps", "episodes", "mean_return_last_10"} <= stats.keys()
    assert stats["env_steps"] == 50 and agent.history[0]["episode"] == 0
    obs = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    a = agent.act(obs)
    assert a.shape == (7,) and set(a.tolist()) <= {0, 1}
    with torch.no_grad():
        np.testing.assert_array_equal(a, agent.q(torch.from_numpy(obs)).argmax(1).numpy())
    with pytest.raises(InputError, match="shape") as e:
        agent.act(np.zeros((2, 5)))
    assert "\n" not in str(e.value)


def test_defaults_are_cleanrl():
    c = DQNConfig()
    assert (c.learning_rate, c.buffer_size, c.gamma, c.tau, c.target_network_frequency) == (
        2.5e-4, 10_000, 0.99, 1.0, 500)  # fmt: skip
    assert (c.batch_size, c.start_e, c.end_e, c.exploration_fraction, c.learning_starts,
            c.train_frequency, c.total_steps, c.hidden) == (128, 1.0, 0.05, 0.5, 10_000, 10,
                                                            500_000, [120, 84])  # fmt: skip


def test_bad_input_one_line():
    with pytest.raises(InputError, match="Discrete action space") as e:
        DQN("Pendulum-v1")
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="84×84") as e:
        DQN("ALE/Pong-v5", atari_preprocessing=False)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="did you mean 'huber'") as e:
        DQN("CartPole-v1", loss="hubber")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="tau"):
        DQN("CartPole-v1", tau=0.0)


# CleanRL's settings but ε down to 0.05 over the first 20,000 steps, learning from step 1,000, and
# Double DQN: evaluated every 5,000 steps, seeds 0, 1, 2 pass 475 after 95,000, 115,000 and 95,000
# steps (CleanRL's own settings, seed 0: after 210,000; without Double DQN seed 2 stays below)
SOLVE = dict(total_steps=100_000, learning_starts=1000, exploration_fraction=0.2, double=True)


@pytest.mark.slow
def test_cartpole_reaches_475():
    agent = DQN("CartPole-v1", seed=0, **SOLVE)
    start, best = time.perf_counter(), 0.0
    while agent.env_steps < 150_000 and best < 475:
        agent.train(5_000, progress=False)
        best = max(best, evaluate(agent, "CartPole-v1", episodes=10, seed=1000)["mean"])
    print(f"dqn CartPole-v1: {best:.1f} after {agent.env_steps} steps, "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    assert best >= 475
