"""Where compute goes: per-process work counters, and the run record of a `compute`.

The engine counts its work in `TALLY` (one per process: a worker computes one shard at a
time): agent-steps and population steps (`ebnb.population`), gradient updates, and greedy
test steps (`ebnb.evaluate`). `ebnb.shards.run` reads it around each shard, together with
the shard's wall and CPU seconds. A run record sums the shards per (env, step) and says how
busy the machine's cores were; `pipeline.py compute` and `all` write one per run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


@dataclass
class Tally:
    """Work done: agent-steps (one env step of one training agent), population steps (one
    step of a whole population), gradient updates, and env steps of greedy test episodes."""

    agent_steps: int = 0
    population_steps: int = 0
    updates: int = 0
    test_steps: int = 0

    def since(self, before: Tally) -> Tally:
        return Tally(**{f.name: getattr(self, f.name) - getattr(before, f.name) for f in fields(self)})

    def add(self, other: Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


TALLY = Tally()  # this process's running total


@dataclass
class ShardCost:
    """What computing one shard cost: its work, its wall and CPU seconds, when it started."""

    work: Tally
    wall_s: float
    cpu_s: float
    started: float  # time.time()


def busy_fractions(costs: list[ShardCost], wall_s: float, cores: int) -> tuple[float, float]:
    """(CPU seconds / (wall x cores): how busy the cores were on average; the fraction of the
    wall time during which at least `cores` shards were running at once)."""
    if wall_s <= 0:
        return 0.0, 0.0
    events = sorted([(c.started, 1) for c in costs] + [(c.started + c.wall_s, -1) for c in costs])
    running, last, all_busy = 0, None, 0.0
    for moment, change in events:
        if last is not None and running >= cores:
            all_busy += moment - last
        running, last = running + change, moment
    return sum(c.cpu_s for c in costs) / (wall_s * cores), all_busy / wall_s


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Commit, lock-file hash, CPU model and core count of this checkout and machine."""
    lock = PROJECT / "requirements.lock"
    return {
        "commit": _commit(),
        "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else None,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
    }


def run_record(
    steps: list[tuple[str, str, int, int, list[ShardCost]]], start: datetime, end: datetime, checkout: dict, **settings
) -> dict:
    """The record of one run on this machine: `checkout` (`machine()` taken when the run
    started: commit, lock file, CPU), `settings`, times, and per (env, step, units in the
    grid, units computed, shard costs) the work, wall and core seconds and mean live agents;
    and how busy the cores were."""
    cores = checkout["cores"] or 1
    wall_s = (end - start).total_seconds()
    rows, everything = [], []
    total = Tally()
    for env, step, units, computed, costs in steps:
        work = Tally()
        for cost in costs:
            work.add(cost.work)
        total.add(work)
        everything += costs
        rows.append(
            {
                "env": env,
                "step": step,
                "units": units,
                "computed": computed,
                **asdict(work),
                "mean_live": round(work.agent_steps / work.population_steps, 1) if work.population_steps else 0.0,
                "shard_wall_s": round(sum(c.wall_s for c in costs), 1),
                "core_s": round(sum(c.cpu_s for c in costs), 1),
            }
        )
    cores_busy, all_cores_busy = busy_fractions(everything, wall_s, cores)
    core_s = sum(c.cpu_s for c in everything)
    return {
        **checkout,
        **settings,
        "start": start.isoformat(timespec="seconds"),
        "end": end.isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 1),
        "steps": rows,
        "total": asdict(total),
        "core_s": round(core_s, 1),
        "agent_steps_per_core_s": round(total.agent_steps / core_s, 1) if core_s else 0.0,
        "cores_busy": round(cores_busy, 3),
        "all_cores_busy": round(all_cores_busy, 3),
    }


def now() -> datetime:
    return datetime.now(UTC)


def write(record: dict, folder: Path) -> Path:
    """Save `record` as <folder>/<start time>.json (atomic: a temporary file renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['start'].replace(':', '-')}.json"
    temporary = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, path)
    return path


def table(record: dict) -> str:
    """The record as a text table: one line per (env, step), then the totals."""
    head = (
        f"{'env':<9} {'step':<16} {'units':>6} {'agent-steps':>12} {'updates':>11} {'test steps':>11} "
        f"{'live':>6} {'wall s':>8} {'core s':>8}"
    )
    lines = [head]
    for r in record["steps"]:
        lines.append(
            f"{r['env']:<9} {r['step']:<16} {r['computed']:>3}/{r['units']:<3}{r['agent_steps']:>12,} "
            f"{r['updates']:>11,} {r['test_steps']:>11,} {r['mean_live']:>6} {r['shard_wall_s']:>8} "
            f"{r['core_s']:>8}"
        )
    lines.append(
        f"wall {record['wall_s']} s, {record['cores']} cores ({record['cpu']}); "
        f"{record['core_s']} core-s, {record['agent_steps_per_core_s']:,} agent-steps per core-s; "
        f"cores busy {100 * record['cores_busy']:.0f}%, all at once {100 * record['all_cores_busy']:.0f}% "
        "of the time"
    )
    return "\n".join(lines)
