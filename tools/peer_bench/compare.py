"""ebnb against the PureJaxRL-style driver on this machine: interleaved rounds over envs, thread
counts and population sizes K; the raw rows as JSON and a markdown table.

    python tools/peer_bench/compare.py --rounds 3 --out /work/logs/peer-compare.json

Run with the project's venv; the peer runs in its own venv (`--peer-python`). Every run is a
fresh process of one side for one env and thread count, doing all K in turn. Threads: one
thread is CPU 0 alone (the process's affinity, set before it starts) with torch on one thread
for ebnb and XLA's single-threaded Eigen for jax; two threads is both CPUs, torch on two, XLA
on its defaults. Within a round the side that goes first alternates. jax's persistent
compilation cache (`JAX_COMPILATION_CACHE_DIR`, keyed by XLA_FLAGS too) spares later rounds the
compile, which is untimed anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENVS = ("cartpole", "acrobot")
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def command(side: str, env: str, threads: int, agents, steps: int, peer_python: str) -> list[str]:
    """The command line of one run of `side` ('ebnb' or 'peer')."""
    common = ["--env", env, "--agents", *map(str, agents), "--steps", str(steps)]
    if side == "ebnb":
        return [sys.executable, str(HERE / "ebnb_side.py"), *common, "--threads", str(threads)]
    return [peer_python, str(HERE / "purejaxrl_dqn.py"), *common]


def run_once(side: str, env: str, threads: int, agents, steps: int, peer_python: str) -> list[dict]:
    """One run's rows, each tagged with its side, env name and thread count."""
    cpus = {0} if threads == 1 else set(range(threads))
    environ = dict(os.environ)
    if side == "peer":
        environ.setdefault("JAX_COMPILATION_CACHE_DIR", "/tmp/peer-jax-cache")
        environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        if threads == 1:
            environ["XLA_FLAGS"] = XLA_ONE_THREAD
    out = subprocess.run(
        command(side, env, threads, agents, steps, peer_python),
        env=environ,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [{**row, "side": side, "bench_env": env, "bench_threads": threads} for row in rows]


def measure(args) -> list[dict]:
    """All rounds' rows, written to `args.out` after every run (a cut-short run keeps its rows).
    With `args.stop_by` (a Unix time), no round starts that the last round's duration says
    would end after it."""
    rows, round_took = [], 0.0
    for round_ in range(args.rounds):
        if args.stop_by and time.time() + round_took > args.stop_by:
            print(f"stopping after {round_} rounds: another would end after --stop-by", file=sys.stderr)
            break
        round_start = time.perf_counter()
        for threads in args.threads:
            for env in args.envs:
                sides = ("ebnb", "peer") if (round_ + threads) % 2 == 0 else ("peer", "ebnb")
                for side in sides:
                    start = time.perf_counter()
                    got = run_once(side, env, threads, args.agents, args.steps, args.peer_python)
                    rows += [{**row, "round": round_} for row in got]
                    Path(args.out).write_text(json.dumps(rows, indent=1))
                    print(
                        f"round {round_} threads {threads} {env} {side}: {time.perf_counter() - start:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
        round_took = time.perf_counter() - round_start
    return rows


def _median_range(values) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def table(rows: list[dict]) -> str:
    """The markdown table: per env, threads and K, each side's agent-steps/s median (range) and
    per CPU-second median, and ebnb / peer per CPU-second (ratio of medians; per-round range)."""
    lines = [
        (
            "| env | threads | K | ebnb agent-steps/s | PureJaxRL agent-steps/s | ebnb per CPU-s"
            " | PureJaxRL per CPU-s | ebnb / PureJaxRL per CPU-s |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cells = sorted(
        {(r["bench_env"], r["bench_threads"], r["agents"]) for r in rows}, key=lambda c: (ENVS.index(c[0]), *c[1:])
    )
    for env, threads, k in cells:
        mine = {
            side: {
                r["round"]: r
                for r in rows
                if (r["side"], r["bench_env"], r["bench_threads"], r["agents"]) == (side, env, threads, k)
            }
            for side in ("ebnb", "peer")
        }
        if not mine["ebnb"] or not mine["peer"]:
            continue
        per_s = {side: [r["agent_steps_per_s"] for r in mine[side].values()] for side in mine}
        per_cpu = {side: [r["agent_steps_per_cpu_s"] for r in mine[side].values()] for side in mine}
        both = sorted(set(mine["ebnb"]) & set(mine["peer"]))
        ratios = [mine["ebnb"][i]["agent_steps_per_cpu_s"] / mine["peer"][i]["agent_steps_per_cpu_s"] for i in both]
        ratio = statistics.median(per_cpu["ebnb"]) / statistics.median(per_cpu["peer"])
        name = mine["ebnb"][both[0]]["env"] if both else env
        lines.append(
            f"| {name} | {threads} | {k} | {_median_range(per_s['ebnb'])} | {_median_range(per_s['peer'])}"
            f" | {statistics.median(per_cpu['ebnb']):,.0f} | {statistics.median(per_cpu['peer']):,.0f}"
            f" | {ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--envs", nargs="+", choices=ENVS, default=list(ENVS))
    parser.add_argument("--threads", type=int, nargs="+", choices=(1, 2), default=[1, 2])
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--peer-python", default="/work/venvs/peer/bin/python")
    parser.add_argument("--stop-by", type=float, help="Unix time: start no round that would end after it")
    parser.add_argument("--out", required=True, help="the raw rows, JSON")
    parser.add_argument("--table-from", action="store_true", help="print the table of --out's rows; measure nothing")
    args = parser.parse_args(argv)
    rows = json.loads(Path(args.out).read_text()) if args.table_from else measure(args)
    print(table(rows))


if __name__ == "__main__":
    main()
