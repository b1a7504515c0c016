"""ebnb's side of the comparison: `ebnb.bench.population_steps_per_s` (the population half of
`python -m ebnb bench`, without its sequential reference) for one env on `--threads` threads,
one JSON line per K, in the shape of purejaxrl_dqn.py's lines. Run with the project's venv:

    python tools/peer_bench/ebnb_side.py --env cartpole --agents 1 16 64 256 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from ebnb import bench
from ebnb.config import dqn_config


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=("cartpole", "acrobot"), required=True)
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--steps", type=int, default=bench.BENCH_STEPS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # as `python -m ebnb bench --threads`
    cfg = dqn_config(args.env)
    for k in args.agents:
        per_s, per_cpu_s = bench.population_steps_per_s(cfg, k, args.steps)
        row = {
            "env": cfg.env_id,
            "agents": k,
            "threads": torch.get_num_threads(),
            "cpus": len(os.sched_getaffinity(0)),
            "agent_steps_per_s": round(per_s, 1),
            "agent_steps_per_cpu_s": round(per_cpu_s, 1),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
