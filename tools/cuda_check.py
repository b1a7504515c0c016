"""Whether torch on a device trains like the fused kernel on the CPU, statistically (docs/exactness.md, "CUDA").

    python tools/cuda_check.py                                  # torch on cuda vs fused on the CPU
    python tools/cuda_check.py --device cpu --arithmetic torch  # the same check on the CPU (runs anywhere)

Both arms train the same seeds (the thesis' DQN config, early stopping, capped at --episodes)
and play greedy test episodes; the outcomes per seed are the training length (episodes to early
stopping, the cap where a run never stops: a restricted mean) and the mean test return. Each is
tested for equivalence by two one-sided Welch tests (`ebnb.stats.equivalence`) at the
protocol's non-inferiority margins (`ebnb.analysis.ni_margin`: 10% of the fused arm's mean
length, 5% of its mean return above the env's worst). The verdict is "equivalent" only if both
are shown equivalent; "not shown equivalent" says only that these seeds cannot tell.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ebnb import analysis, stats
from ebnb.agent import fresh_agent
from ebnb.config import check_positive_int, dqn_config, parse_seeds, placement
from ebnb.evaluate import greedy_returns
from ebnb.population import Population


def outcomes(cfg, seeds, test_episodes: int, device: str) -> dict[str, np.ndarray]:
    """Per seed: training length (episodes to early stopping, or the cap) and mean test return."""
    result = Population(cfg, [fresh_agent(cfg, s) for s in seeds], early_stop=True, device=device).run()
    tests = greedy_returns(cfg, [final.params for final in result.final], seeds, test_episodes)
    return {"length": result.agents["episodes_run"].to_numpy(float), "test return": tests.mean(axis=1)}


def verdict(fused: dict, other: dict, env_id: str, alpha: float) -> tuple[list[str], bool]:
    """Lines of the equivalence test of each outcome, and whether every one was shown equivalent."""
    lines, shown = [], True
    for name, higher in (("length", False), ("test return", True)):
        margin = analysis.ni_margin(fused[name], higher, analysis.WORST_RETURN[env_id])
        difference, lower, upper, p = stats.equivalence(other[name], fused[name], margin, alpha)
        equivalent = p < alpha
        shown &= equivalent
        lines.append(
            f"  {name}: fused mean {fused[name].mean():.2f}, other {other[name].mean():.2f}; difference "
            f"{difference:+.2f}, {1 - 2 * alpha:.0%} CI [{lower:+.2f}, {upper:+.2f}] vs margin +-{margin:.2f}: "
            f"TOST p = {p:.3g} -> {'equivalent' if equivalent else 'not shown equivalent'}"
        )
    return lines, shown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="cartpole", help="cartpole (default), acrobot")
    parser.add_argument("--device", default="cuda", help="the other arm's device (default cuda)")
    parser.add_argument("--arithmetic", default="torch", choices=("fused", "torch"), help="its arithmetic (torch)")
    parser.add_argument("--seeds", default="0-59", help="seeds of both arms (default 0-59)")
    parser.add_argument("--episodes", type=int, default=300, help="episode cap of each run (default 300)")
    parser.add_argument("--test-episodes", type=int, default=20, help="greedy test episodes per run (default 20)")
    parser.add_argument("--alpha", type=float, default=stats.ALPHA, help="level of each one-sided test (0.05)")
    args = parser.parse_args(argv)
    try:
        other_placement = placement(args.device, args.arithmetic)
        seeds = list(parse_seeds(args.seeds))
        episodes = check_positive_int("episodes", args.episodes)
        test_episodes = check_positive_int("test-episodes", args.test_episodes)
        fused_cfg = dqn_config(args.env, max_episodes=episodes)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    other_cfg = fused_cfg.replace(**other_placement)
    arms = {}
    for name, cfg, device in (("fused", fused_cfg, "cpu"), ("other", other_cfg, args.device)):
        start = time.perf_counter()
        arms[name] = outcomes(cfg, seeds, test_episodes, device)
        print(f"{name}: {cfg.arithmetic} on {device}, {len(seeds)} seeds, {time.perf_counter() - start:.0f} s")
    lines, shown = verdict(arms["fused"], arms["other"], fused_cfg.env_id, args.alpha)
    print(
        f"{fused_cfg.env_id}, {len(seeds)} seeds, cap {episodes} episodes: {args.arithmetic} on {args.device} vs fused on cpu"
    )
    print(*lines, sep="\n")
    print(f"verdict: {'EQUIVALENT' if shown else 'NOT SHOWN EQUIVALENT'} (alpha {args.alpha} per one-sided test)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
