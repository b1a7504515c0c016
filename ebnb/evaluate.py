"""Test evaluation: greedy (epsilon 0) episodes of many agents at once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ebnb import accounting, envs, qnet, rng
from ebnb.arithmetic import greedy_actions
from ebnb.config import DQNConfig, check_positive_int


def test_seeds(seeds) -> np.ndarray:
    """The env seed of each agent's test episodes: derived from its seed, apart from training."""
    return rng.seed63(np.asarray(seeds, dtype=np.int64), rng.Stream.TEST, 0)


def greedy_returns(
    cfg: DQNConfig, params: Sequence[Sequence[np.ndarray]], seeds, episodes: int = 100, chunk: int = 128
) -> np.ndarray:
    """Returns `[n_agents, episodes]` of each agent's network played greedily.

    Agent i plays its test episodes side by side, one sub-env each; test episode j starts
    where episode j of an env seeded with `test_seeds(seed_i)` starts, so the test set of an
    agent is fixed by its seed and does not depend on which agents are evaluated with it.
    """
    check_positive_int("episodes", episodes)
    seeds = np.asarray(seeds, dtype=np.int64)
    if len(seeds) != len(params):
        raise ValueError(f"seeds: expected one per agent ({len(params)}), got {len(seeds)}")
    returns = [
        _play(cfg, params[start : start + chunk], seeds[start : start + chunk], episodes)
        for start in range(0, len(params), chunk)
    ]
    return np.concatenate(returns) if returns else np.zeros((0, episodes))


def _play(cfg: DQNConfig, params, seeds: np.ndarray, episodes: int) -> np.ndarray:
    n = len(params)
    stacked = qnet.stack([[torch.from_numpy(np.asarray(p, dtype=np.float32)[None]) for p in agent] for agent in params])
    env = envs.make(
        cfg.env_id,
        n * episodes,
        np.repeat(test_seeds(seeds), episodes).tolist(),
        start_episodes=np.tile(np.arange(episodes), n).tolist(),
    )
    obs = env.reset()[0]
    total = np.zeros(n * episodes)
    running = np.ones(n * episodes, dtype=bool)
    while running.any():
        actions = greedy_actions(cfg, stacked, obs.reshape(n, episodes, -1)).reshape(-1)
        obs, reward, terminated, truncated, _ = env.step(actions)
        total += np.where(running, reward, 0.0)
        accounting.TALLY.test_steps += int(running.sum())
        running &= ~(terminated | truncated)
    return total.reshape(n, episodes)
