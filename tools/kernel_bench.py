"""Single-threaded speed of the fused kernel: microseconds per agent-update and per greedy action.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python tools/kernel_bench.py [--agents 64] [--repeats 7] [--mask 0.2]

Builds a population of fresh agents per env (thesis config, float32, a random `--mask`
pruning if > 0), steps it until learning has started, and captures the arguments of one
`kernel.learn` call. Each repeat restores the captured state, then times `--calls` calls
of `kernel.learn` on one thread (every repeat does the same arithmetic), and `--calls`
calls of `kernel.greedy_actions` for K agents x 1 observation. Prints the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ebnb import kernel, masks
from ebnb import population as engine
from ebnb.agent import fresh_agent
from ebnb.config import dqn_config


def _captured_learn(env: str, n_agents: int, mask: float) -> tuple[list, dict]:
    """(args, kwargs) of a `kernel.learn` call of a fresh population once learning has started."""
    cfg = dqn_config(env, arithmetic="fused")
    population = engine.Population(cfg, [fresh_agent(cfg, seed) for seed in range(n_agents)], early_stop=False)
    everyone = np.arange(n_agents)
    if mask > 0:
        shapes = [w.shape for w in population.weights(everyone)]
        population.set_mask(everyone, masks.random_masks(shapes, mask, everyone.tolist()))
    while population.transitions[0] < cfg.learning_starts + 100:
        population._step()
    captured = []
    original = kernel.learn
    kernel.learn = lambda *args, **kwargs: captured.append((args, kwargs))
    try:
        while not captured or len(captured[0][0][7]) < n_agents:
            captured.clear()
            population._step()
    finally:
        kernel.learn = original
    args, kwargs = captured[0]
    return [[np.array(t, copy=True) for t in a] if isinstance(a, (list, tuple)) else a for a in args], kwargs


def _median_us(function, calls: int, repeats: int, units: int, reset=lambda: None) -> float:
    """Median over `repeats` of microseconds per unit of `calls` calls of `function`, in CPU
    time of this thread (the kernel runs on it): the wall time on an idle core, and less
    disturbed by other work than the wall."""
    times = []
    for _ in range(repeats):
        reset()
        start = time.thread_time()
        for _ in range(calls):
            function()
        times.append((time.thread_time() - start) / (calls * units))
    return 1e6 * statistics.median(times)


def bench(env: str, n_agents: int, calls: int, repeats: int, mask: float) -> tuple[float, float]:
    """(us per agent-update, us per agent's greedy action) for `env`, single-threaded."""
    args, kwargs = _captured_learn(env, n_agents, mask)
    state = [t for a in args[:4] for t in a] + [args[4]]
    saved = [t.copy() for t in state]

    def reset():
        for t, s in zip(state, saved):
            np.copyto(t, s)

    learn = lambda: kernel.learn(*args, **kwargs)
    learn()  # compile
    update_us = _median_us(learn, calls, repeats, n_agents, reset)
    obs = args[6]["obs"][:, :1].copy()
    act = lambda: kernel.greedy_actions(args[0], obs)
    act()
    reset()
    return update_us, _median_us(act, calls, repeats, n_agents)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=["acrobot", "cartpole"])
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--mask", type=float, default=0.0, help="pruned fraction of each weight (0: dense)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for env in args.env:
        update_us, act_us = bench(env, args.agents, args.calls, args.repeats, args.mask)
        print(
            f"{env:<9} K={args.agents}: update {update_us:7.1f} us per agent, greedy action {act_us:6.2f} us per agent"
        )


if __name__ == "__main__":
    main()
