"""Throughput of the engine against the plain sequential DQN (the tests' reference).

Both train fresh agents with the thesis hyperparameters for the same number of episodes,
learning on; the engine's agents also carry a random 20% mask so the masked update path is
what gets timed. Sequential: env-steps per second of one agent. Engine: agent-steps per
second of K agents in one population.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from pathlib import Path

import numpy as np

from ebnb import masks, qnet
from ebnb.agent import fresh_agent
from ebnb.config import DQNConfig
from ebnb.population import Population

# Long enough that most timed steps learn (CartPole learns from transition 200, Acrobot from 1000).
BENCH_EPISODES = {"CartPole-v0": 40, "Acrobot-v1": 4}
DEFAULT_AGENTS = (1, 64, 256, 512)


def _reference_module():
    """tests/reference_dqn.py from the source checkout this package lives in."""
    path = Path(__file__).resolve().parents[1] / "tests" / "reference_dqn.py"
    if not path.exists():
        raise RuntimeError(f"bench needs the reference DQN at {path}: run it from a source checkout")
    spec = importlib.util.spec_from_file_location("reference_dqn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sequential_steps_per_s(cfg: DQNConfig, episodes: int, repeats: int = 3) -> float:
    """Median env-steps/s of the reference DQN over `repeats` seeds."""
    reference = _reference_module()
    rates = []
    for seed in range(repeats):
        start = time.perf_counter()
        steps = reference.train(cfg, seed, episodes)["steps"]
        rates.append(steps / (time.perf_counter() - start))
    return statistics.median(rates)


def population_steps_per_s(cfg: DQNConfig, n_agents: int, episodes: int, device="cpu") -> float:
    """Agent-steps/s of one population of `n_agents` fresh, masked agents."""
    agents = []
    for seed in range(n_agents):
        agent = fresh_agent(cfg, seed)
        import torch

        weights = [torch.from_numpy(w[None]) for w in qnet.weights(agent.params)]
        mask = masks.random_masks(weights, 0.2, [seed])
        agents.append(agent.pruned([m[0].numpy() for m in mask]))
    population = Population(cfg, agents, early_stop=False, max_episodes=episodes, device=device)
    start = time.perf_counter()
    result = population.run()
    elapsed = time.perf_counter() - start
    return float(np.sum(result.episodes["length"])) / elapsed


def run(cfgs: list[DQNConfig], agent_counts=DEFAULT_AGENTS, device="cpu"):
    """Yield one row per (env, K): sequential and population throughput and their ratio."""
    for cfg in cfgs:
        episodes = BENCH_EPISODES.get(cfg.env_id, 20)
        sequential = sequential_steps_per_s(cfg, episodes)
        for n_agents in agent_counts:
            population = population_steps_per_s(cfg, n_agents, episodes, device)
            yield {
                "env": cfg.env_id,
                "agents": n_agents,
                "sequential_steps_per_s": round(sequential, 1),
                "population_agent_steps_per_s": round(population, 1),
                "ratio": round(population / sequential, 2),
            }
