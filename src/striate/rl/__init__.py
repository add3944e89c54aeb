"""Reinforcement learning (lecture 14): Markov decision processes and dynamic programming, tabular
Q-learning, DQN with experience replay, policy gradients (REINFORCE, actor-critic, PPO) and the
recurrent attention model. Agents act in gymnasium environments with short loops of their own
that reuse the engine's device, seeds, progress and atomic writes (DESIGN.md)."""

from striate.rl import gridworld as _gridworld  # noqa: E402, F401  registers striate/GridWorld-v0
