"""Where a population step's time goes: acting, env, replay, learning (update with Adam), episode ends.

    python tools/profile_step.py [--env acrobot] [--agents 256] [--steps 200] [--arithmetic fused]

Builds a population of fresh agents with the thesis config, steps it until learning has
started, then times `--steps` more steps, wrapping each part of `Population._step` with a
clock. Prints microseconds per agent-step for each part and the agent-steps per second.
Time it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time

from ebnb import arithmetic as arithmetics
from ebnb import episode_end
from ebnb import population as engine
from ebnb.agent import fresh_agent
from ebnb.config import dqn_config


def _timed(parts: dict, name: str, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            parts[name] = parts.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def profile(env: str, agents: int, steps: int, arithmetic: str) -> tuple[float, dict]:
    """(agent-steps per second, {part: seconds}) of `steps` steps after learning starts."""
    cfg = dqn_config(env, arithmetic=arithmetic)
    population = engine.Population(cfg, [fresh_agent(cfg, seed) for seed in range(agents)], early_stop=False)
    while population.transitions[0] < cfg.learning_starts + 10:
        population._step()
    parts: dict[str, float] = {}
    original_greedy, original_end = arithmetics.greedy_actions, episode_end.end_episodes
    arithmetics.greedy_actions = _timed(parts, "acting", original_greedy)
    episode_end.end_episodes = _timed(parts, "episode ends", original_end)
    try:
        population.env.step = _timed(parts, "env step", population.env.step)
        population.replay.add = _timed(parts, "replay add", population.replay.add)
        population.replay.slots = _timed(parts, "replay sampling", population.replay.slots)
        population._learn = _timed(parts, "learning (update, Adam, mask)", population._learn)
        population.optimizer.step = _timed(parts, "  of which Adam (torch path)", population.optimizer.step)
        start = time.perf_counter()
        for _ in range(steps):
            population._step()
        elapsed = time.perf_counter() - start
    finally:
        arithmetics.greedy_actions, episode_end.end_episodes = original_greedy, original_end
    parts["other"] = elapsed - sum(v for k, v in parts.items() if not k.startswith(" "))
    return agents * steps / elapsed, parts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="acrobot")
    parser.add_argument("--agents", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--arithmetic", choices=("fused", "torch"), default="fused")
    args = parser.parse_args(argv)
    rate, parts = profile(args.env, args.agents, args.steps, args.arithmetic)
    print(f"{args.env} K={args.agents} {args.arithmetic}: {rate:,.0f} agent-steps/s")
    for name, seconds in parts.items():
        print(f"  {name:<32} {1e6 * seconds / (args.agents * args.steps):6.1f} us per agent-step")


if __name__ == "__main__":
    main()
