"""Filling the store: every shard of some protocol steps, in this process or on Dask.

`plan` lists the steps a set of notebooks reads; `run` computes their shards in dependency
order (tickets read the dense runs). Schedulers:

- ``inline``: one shard after another in this process;
- ``local``: a `distributed.LocalCluster` sized to this machine (one single-threaded worker
  process per core), shards of independent steps in parallel;
- ``tcp://host:port``: an existing Dask cluster (e.g. started by dask-jobqueue on Slurm).

On Dask the workers read and write the store themselves, so **the store must be on a
filesystem every worker sees** (a shared or network disk; trivially so for `local`). A probe
file written by the client is checked by each task, which fails with a message naming the
store if the worker cannot see it. Results never travel through the scheduler.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from ebnb import shards
from ebnb.checkpoint import DEFAULT_EVERY
from ebnb.experiments import Grid, Step, expected_steps, longest_first, steps, to_compute
from ebnb.published import Published
from ebnb.store import Store

DEFAULT_SHARD_SIZE = 256  # units per shard for `compute`: few shards (each ends in a tail of stragglers), two per big step


def plan(envs: Iterable[str], step_names: Iterable[str], g: Grid, published: Published | None = None,
         **options) -> list[tuple[str, Step]]:  # fmt: skip
    """(env, step) pairs for `step_names` and the steps they need, in dependency order, each
    narrowed to the units `published` lacks (`ebnb.experiments.to_compute`; `options`: EB
    Exploit's parameters and `population`, see `ebnb.experiments.steps`)."""
    names = list(step_names)
    return [(env, step) for env in envs for step in to_compute(steps(env, g, **options), names, published)]


def check_scheduler(scheduler: str) -> str:
    """'inline', 'local' or a Dask scheduler address 'tcp://host:port'."""
    address = isinstance(scheduler, str) and re.fullmatch(r"(tcp|tls)://[^:/\s]+:\d+", scheduler)
    if scheduler in ("inline", "local") or address:
        return scheduler
    raise ValueError(f"scheduler: unknown {scheduler!r}; allowed: inline, local, tcp://host:port")


def run(
    store_root: Path,
    work: list[tuple[str, Step]],
    scheduler: str = "inline",
    shard_size: int = DEFAULT_SHARD_SIZE,
    checkpoint_every: float = DEFAULT_EVERY,
    progress: bool = False,
    workers: int | None = None,
) -> Iterator[tuple[str, str, shards.ShardReport]]:
    """Compute every shard of `work`; yield (env, step name, report) as shards finish."""
    check_scheduler(scheduler)
    tasks = [(env, step, shard) for env, step in work
             for shard in shards.cut(step.kind, longest_first(step.units), shard_size)]  # fmt: skip
    if not tasks:
        return
    if scheduler == "inline":
        store = Store(store_root)
        for number, (env, step, shard) in enumerate(tasks, 1):
            label = f"[shard {number}/{len(tasks)}] {env} {step.name}"
            yield env, step.name, shards.run(store, shard, step.compute, checkpoint_every, progress, label)
        return
    yield from _run_dask(store_root, tasks, scheduler, checkpoint_every, workers)


def priorities(tasks) -> dict:
    """(env, shard) -> its priority (higher starts first), by rank of: the expected agent-steps
    of the shards that wait for its step (dependencies first); the expected agent-steps of its
    longest unit (the longest start first, so that they do not finish last); its total."""
    expected = {(env, shard): sum(map(expected_steps, shard.units)) for env, _, shard in tasks}
    waiting = {}
    for env, step, shard in tasks:
        for need in step.needs:
            waiting[(env, need)] = waiting.get((env, need), 0) + expected[(env, shard)]

    def key(task):
        env, step, shard = task
        return waiting.get((env, step.name), 0), max(map(expected_steps, shard.units)), expected[(env, shard)]

    ranked = sorted(tasks, key=key)
    return {(env, shard): rank for rank, (env, _, shard) in enumerate(ranked)}


def _run_dask(store_root: Path, tasks, scheduler: str, checkpoint_every: float, workers: int | None):
    from distributed import Client, LocalCluster, as_completed

    priority = priorities(tasks)
    store_root.mkdir(parents=True, exist_ok=True)
    probe = store_root / f".probe-{secrets.token_hex(6)}"
    probe.touch()
    cluster = None
    try:
        if scheduler == "local":
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                                   dashboard_address=None)  # fmt: skip
        with Client(cluster or scheduler) as client:
            futures, labels = {}, {}
            for env, step, shard in tasks:
                needs = [f for (e, name), fs in futures.items() if e == env and name in step.needs for f in fs]
                future = client.submit(_run_shard, str(store_root.resolve()), probe.name, shard, step.compute,
                                       checkpoint_every, needs, pure=False, priority=priority[(env, shard)])  # fmt: skip
                futures.setdefault((env, step.name), []).append(future)
                labels[future.key] = (env, step.name)
            for future in as_completed([f for fs in futures.values() for f in fs]):
                env, name = labels[future.key]
                yield env, name, future.result()
    finally:
        probe.unlink(missing_ok=True)
        if cluster is not None:
            cluster.close()


def _run_shard(root: str, probe: str, shard: shards.Shard, compute, checkpoint_every: float, _needs):
    """A Dask task: one shard, on the shared store (`_needs` are the futures it waits for)."""
    if not (Path(root) / probe).exists():
        import socket

        raise RuntimeError(f"store: {root} is not visible from worker {socket.gethostname()}; "
                           "the store must be on a filesystem shared by all workers")  # fmt: skip
    return shards.run(Store(root), shard, compute, checkpoint_every)
