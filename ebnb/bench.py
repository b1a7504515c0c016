"""Throughput of the engine against the plain sequential DQN (`ebnb.reference_dqn`, the tests' reference).

Both train fresh agents with the thesis hyperparameters, learning on, until each agent has
made `BENCH_STEPS` transitions (finishing the episode it is in); the engine's agents also
carry a random 20% mask so the masked update path is what gets timed. Sequential:
env-steps per second of one agent (median of 3 seeds). Engine: agent-steps per second of
K agents in one population.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from ebnb import masks, reference_dqn
from ebnb.agent import fresh_agent
from ebnb.config import DQNConfig
from ebnb.population import Population

# Most timed steps learn: CartPole learns from transition 200, Acrobot from 1000.
BENCH_STEPS = 3000
DEFAULT_AGENTS = (1, 64, 256, 512)


def sequential_steps_per_s(cfg: DQNConfig, steps: int = BENCH_STEPS, repeats: int = 3) -> float:
    """Median env-steps/s of the reference DQN over `repeats` seeds."""
    rates = []
    for seed in range(repeats):
        start = time.perf_counter()
        made = reference_dqn.train(cfg, seed, cfg.max_episodes, max_steps=steps)["steps"]
        rates.append(made / (time.perf_counter() - start))
    return statistics.median(rates)


def population_steps_per_s(
    cfg: DQNConfig, n_agents: int, steps: int = BENCH_STEPS, device="cpu"
) -> tuple[float, float]:
    """(agent-steps per wall second, per CPU second of this process) of one population of
    `n_agents` fresh agents pruned by random 20% masks."""

    def stop_after_steps(population, ends):
        population.stop(ends.agents[ends.transitions >= steps])

    # warm-up, untimed: the first call of compiled code in a process loads it (or compiles it)
    Population(
        cfg, [fresh_agent(cfg, 0)], early_stop=False, max_episodes=1, callback=stop_after_steps, device=device
    ).run()
    population = Population(
        cfg,
        [fresh_agent(cfg, seed) for seed in range(n_agents)],
        early_stop=False,
        callback=stop_after_steps,
        device=device,
    )
    everyone = np.arange(n_agents)
    shapes = [w.shape for w in population.weights(everyone)]
    population.set_mask(everyone, masks.random_masks(shapes, 0.2, everyone.tolist()))
    start, cpu = time.perf_counter(), time.process_time()
    result = population.run()
    elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    made = float(np.sum(result.episodes["length"]))
    return made / elapsed, made / cpu_s if cpu_s > 0 else float("nan")


def run(cfgs: list[DQNConfig], agent_counts=DEFAULT_AGENTS, steps: int = BENCH_STEPS, device="cpu"):
    """Yield one row per (env, K): sequential and population throughput (per wall second and,
    for the population, per CPU second) and their ratio."""
    for cfg in cfgs:
        sequential = sequential_steps_per_s(cfg, steps)
        for n_agents in agent_counts:
            population, per_cpu_s = population_steps_per_s(cfg, n_agents, steps, device=device)
            yield {
                "env": cfg.env_id,
                "agents": n_agents,
                "arithmetic": cfg.arithmetic,
                "threads": torch.get_num_threads(),
                "sequential_steps_per_s": round(sequential, 1),
                "population_agent_steps_per_s": round(population, 1),
                "population_agent_steps_per_cpu_s": round(per_cpu_s, 1),
                "ratio": round(population / sequential, 2),
            }
