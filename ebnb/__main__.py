"""Command line: `python -m ebnb train ...` and `python -m ebnb bench ...`.

Bad input exits with status 2 and a one-line message naming the parameter, before any
compute starts (the output file's folder is checked writable first); a failure of the
machine (a full or read-only disk) exits 1 with one line (`ebnb.errors`); `--debug` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ebnb import errors
from ebnb.config import check_positive_int, dqn_config, parse_seeds, placement
from ebnb.envs import ENV_ALIASES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ebnb", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="on failure, show the traceback")
    commands = parser.add_subparsers(dest="command", required=True)
    envs = ", ".join(ENV_ALIASES)

    train = commands.add_parser("train", help="train one population of DQN agents; write per-episode results")
    train.add_argument("--env", required=True, help=f"{envs}, or any gymnasium id with discrete actions")
    train.add_argument("--seeds", required=True, help="'3', '0-9' or '1,4,7': one agent per seed")
    train.add_argument("--episodes", type=int, default=500, help="episode cap per agent (default 500)")
    train.add_argument("--no-early-stop", action="store_true", help="train every agent for all --episodes")
    train.add_argument("--out", required=True, help="FILE.csv or FILE.parquet: one row per (seed, episode)")
    train.add_argument("--device", default="cpu", help="torch device (default cpu)")
    train.add_argument(
        "--arithmetic",
        choices=("fused", "torch"),
        help="fused kernel (CPU, same bits everywhere) or torch (default: fused on cpu, torch on cuda)",
    )

    bench = commands.add_parser("bench", help="throughput of the engine vs the plain sequential DQN")
    bench.add_argument("--env", help=f"{envs}, or a gymnasium id (default: both thesis envs)")
    bench.add_argument(
        "--agents",
        type=int,
        nargs="+",
        action="extend",
        help="population sizes K, e.g. --agents 1 16 64 256 (repeatable; default: 1, 64, 256, 512)",
    )
    bench.add_argument("--threads", type=int, help="threads for the engine (default: torch's default, one per core)")
    bench.add_argument("--steps", type=int, default=3000, help="transitions per agent (default 3000)")
    bench.add_argument("--json", action="store_true", help="one JSON object per line")
    bench.add_argument("--device", default="cpu", help="torch device (default cpu)")
    bench.add_argument(
        "--arithmetic",
        choices=("fused", "torch"),
        help="the engine's arithmetic (default: fused on cpu, torch on cuda)",
    )
    return parser


def train(args):
    """Check the arguments; return the job that trains one population and writes its log."""
    cfg = dqn_config(args.env, **placement(args.device, args.arithmetic))
    seeds = parse_seeds(args.seeds)
    episodes = check_positive_int("episodes", args.episodes)
    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"out: must end in .csv or .parquet, got {args.out!r}")
    errors.check_writable_file("out", out)
    return lambda: _train(args, cfg, seeds, episodes, out)


def _train(args, cfg, seeds, episodes, out) -> None:
    from ebnb.agent import fresh_agent
    from ebnb.population import Population

    population = Population(
        cfg,
        [fresh_agent(cfg, s) for s in seeds],
        early_stop=not args.no_early_stop,
        max_episodes=episodes,
        device=args.device,
        progress=True,
    )
    result = population.run()
    log = result.episodes.rename(columns={"agent": "seed"})
    log["seed"] = [seeds[a] for a in log["seed"]]
    log = log[["seed", "episode", "return", "length", "epsilon"]]
    _write(log, out)
    summary = result.agents.assign(seed=list(seeds))
    last10 = log.groupby("seed")["return"].apply(lambda r: r.tail(10).mean())
    print(f"{cfg.env_id}: {len(seeds)} agents, {len(log)} episodes -> {out}")
    for row in summary.itertuples():
        print(
            f"  seed {row.seed}: {row.episodes_run} episodes ({row.stop_reason}), "
            f"mean return of last 10: {last10[row.seed]:.1f}"
        )


def _write(log, out: Path) -> None:
    """`log` to `out` (csv or parquet), atomically: written beside it and renamed; on a failure
    nothing of it stays behind, nor the folders made for it."""
    made = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    try:
        log.to_csv(temporary, index=False) if out.suffix == ".csv" else log.to_parquet(temporary, index=False)
        os.replace(temporary, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        for folder in made:  # innermost first
            folder.rmdir()
        raise


def bench(args):
    """Check the arguments; return the job that prints sequential vs population throughput."""
    from ebnb import bench as benchmark

    envs = [args.env] if args.env else ["cartpole", "acrobot"]
    cfgs = [dqn_config(env, **placement(args.device, args.arithmetic)) for env in envs]
    counts = tuple(check_positive_int("agents", k) for k in args.agents) if args.agents else benchmark.DEFAULT_AGENTS
    check_positive_int("steps", args.steps)
    if args.threads is not None:
        check_positive_int("threads", args.threads)
    return lambda: _bench(args, cfgs, counts)


def _bench(args, cfgs, counts) -> None:
    import torch

    from ebnb import bench as benchmark

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not args.json:
        print(
            f"{'env':<12} {'K':>5} {'threads':>7} {'sequential steps/s':>19} {'population agent-steps/s':>25} "
            f"{'per CPU-s':>10} {'ratio':>6}"
        )
    for row in benchmark.run(cfgs, counts, args.steps, device=args.device):
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(
                f"{row['env']:<12} {row['agents']:>5} {row['threads']:>7} {row['sequential_steps_per_s']:>19,.0f} "
                f"{row['population_agent_steps_per_s']:>25,.0f} {row['population_agent_steps_per_cpu_s']:>10,.0f} "
                f"{row['ratio']:>6.1f}",
                flush=True,
            )


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    checked = {"train": train, "bench": bench}[args.command]
    return errors.run(lambda: checked(args)(), args.debug)  # the checks, then the job they return


if __name__ == "__main__":
    sys.exit(main())
