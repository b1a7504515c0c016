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

import itertools
import os
import re
import secrets
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from ebnb import shards
from ebnb.checkpoint import DEFAULT_EVERY
from ebnb.experiments import Grid, Step, expected_steps, input_stages, longest_first, steps, to_compute
from ebnb.published import Published
from ebnb.store import Store

DEFAULT_SHARD_SIZE = (
    256  # units per shard for `compute`: few shards (each ends in a tail of stragglers), two per big step
)


def plan(
    envs: Iterable[str], step_names: Iterable[str], g: Grid, published: Published | None = None, **options
) -> list[tuple[str, Step]]:
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


def check_workers(workers, scheduler: str) -> int:
    """--workers for a LocalCluster: an int from 1 to this machine's cores (more only share them)."""
    cores = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= cores:
        raise ValueError(f"--workers must be an integer from 1 to {cores} (this machine's cores), got {workers!r}")
    if scheduler != "local":
        raise ValueError(f"--workers: only --scheduler local takes it (it sizes the LocalCluster), not {scheduler}")
    return workers


def check_reachable(scheduler: str, timeout: float = 5.0) -> None:
    """For a tcp:// or tls:// scheduler: OSError naming it unless something listens there."""
    if "://" not in scheduler:
        return
    host, port = scheduler.split("://", 1)[1].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise OSError(
            f"--scheduler: cannot reach {scheduler} ({error.strerror or error}); start the Dask scheduler "
            "there (dask scheduler --port ...) or use --scheduler local"
        ) from None


def run(
    store_root: Path,
    work: list[tuple[str, Step]],
    scheduler: str = "inline",
    shard_size: int = DEFAULT_SHARD_SIZE,
    checkpoint_every: float = DEFAULT_EVERY,
    progress: bool = False,
    workers: int | None = None,
    force: bool = False,
) -> Iterator[tuple[str, str, shards.ShardReport]]:
    """Compute every shard of `work`, and of the inputs its steps plan once their needs are
    stored (`ebnb.experiments.input_stages`); yield (env, step name, report) as shards finish.
    `force`: recompute the stored units too, replacing them (`ebnb.shards.run`). A store that
    holds all of it is only read, in this process, whatever the scheduler (no cluster, no probe)."""
    check_scheduler(scheduler)
    planned = {(env, step.name) for env, step in work if step.inputs is not None}
    for env, step in work:
        if step.inputs is None and any((env, need) in planned for need in step.needs):
            raise ValueError(f"{step.name} needs a step whose inputs are planned while it runs; put it in its own run")
    if not work:
        return
    if scheduler == "inline" or (not force and _stored(Store(store_root), work)):  # nothing for Dask: no probe
        yield from _run_inline(Store(store_root), work, shard_size, checkpoint_every, progress, force)
    else:
        yield from _run_dask(store_root, work, shard_size, scheduler, checkpoint_every, workers, force)


def _stored(store: Store, work) -> bool:
    """Whether the store holds every unit of `work` and of the inputs its steps plan (only reads)."""
    return all(store.exists(step.kind, unit) for _, step in work for unit in step.units) and not any(
        next(input_stages(store, step), None) for _, step in work
    )


def _cut(step: Step, shard_size: int) -> list[shards.Shard]:
    return shards.cut(step.kind, longest_first(step.units), shard_size)


def _run_inline(store: Store, work, shard_size: int, checkpoint_every: float, progress: bool, force: bool):
    known, number = sum(len(_cut(step, shard_size)) for _, step in work), 0
    for env, step in work:
        for stage in itertools.chain(input_stages(store, step), [step]):  # each planned once the one before is stored
            cut = _cut(stage, shard_size)
            known += len(cut) if stage is not step else 0
            for shard in cut:
                number += 1
                label = f"[shard {number}/{known}] {env} {stage.name}"
                yield env, stage.name, shards.run(store, shard, stage.compute, checkpoint_every, progress, label, force)


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


def _run_dask(
    store_root: Path, work, shard_size: int, scheduler: str, checkpoint_every: float, workers: int | None, force: bool
):
    """Every shard of the steps without planned inputs is submitted at once, each waiting for
    the shards of the steps it needs. A step with planned inputs waits in this client until
    its needs are done; then each stage of its inputs, and last its own shards, is submitted
    the moment the stage before is done, in at least as many shards as there are workers and
    ahead of all other waiting shards (they start late, so they are the run's critical path)."""
    from distributed import Client, LocalCluster, as_completed

    tasks = [(env, step, shard) for env, step in work if step.inputs is None for shard in _cut(step, shard_size)]
    priority = priorities(tasks)
    store = Store(store_root)
    probe = store.folder() / f".probe-{secrets.token_hex(6)}"
    probe.touch()
    cluster = None
    try:
        if scheduler == "local":
            cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True, dashboard_address=None
            )
        with Client(cluster or scheduler) as client:
            futures, labels = {}, {}
            top = len(tasks)
            spread = max(1, len(client.scheduler_info()["workers"]))  # planned work comes late: cut it for every worker

            def submit(env: str, step: Step, shard: shards.Shard, rank: int, wait: bool = True):
                """`wait`: run after the shards of the steps it needs (no need once they are done, and
                then no pull towards the worker that holds their reports)."""
                needs = [f for (e, name), fs in futures.items() if wait and e == env and name in step.needs for f in fs]
                future = client.submit(
                    _run_shard,
                    str(store_root.resolve()),
                    probe.name,
                    shard,
                    step.compute,
                    checkpoint_every,
                    needs,
                    force,
                    pure=False,
                    priority=rank,
                )
                futures.setdefault((env, step.name), []).append(future)
                labels[future.key] = (env, step.name)
                return future

            finishing = as_completed([submit(env, step, shard, priority[(env, shard)]) for env, step, shard in tasks])
            # (env, step name) -> [the step, its stages still to plan (itself last), the futures of the stage running]
            planned = {
                (env, step.name): [step, itertools.chain(input_stages(store, step), [step]), []]
                for env, step in work
                if step.inputs is not None
            }

            def submit_ready() -> None:
                nonlocal top
                for (env, name), state in list(planned.items()):
                    step, stages, running = state
                    needs = [f for (e, need), fs in futures.items() if e == env and need in step.needs for f in fs]
                    waiting = any((env, need) in planned for need in step.needs)
                    if waiting or not all(f.status == "finished" for f in needs + running):
                        continue
                    stage = next(stages)
                    cut = _cut(stage, min(shard_size, -(-len(stage.units) // spread)))
                    state[2] = [
                        submit(env, stage, shard, top + len(cut) - i, wait=False) for i, shard in enumerate(cut)
                    ]
                    top += len(cut)
                    for future in state[2]:
                        finishing.add(future)
                    if stage is step:
                        del planned[(env, name)]

            submit_ready()
            for future in finishing:
                env, name = labels[future.key]
                report = future.result()
                submit_ready()
                yield env, name, report
            if planned:
                raise RuntimeError(f"steps never ready to plan their inputs: {sorted(planned)}")
    finally:
        probe.unlink(missing_ok=True)
        if cluster is not None:
            cluster.close()


def _run_shard(root: str, probe: str, shard: shards.Shard, compute, checkpoint_every: float, _needs, force=False):
    """A Dask task: one shard, on the shared store (`_needs` are the futures it waits for)."""
    if not (Path(root) / probe).exists():
        import socket

        raise RuntimeError(
            f"store: {root} is not visible from worker {socket.gethostname()}; "
            "the store must be on a filesystem shared by all workers"
        )
    return shards.run(Store(root), shard, compute, checkpoint_every, force=force)
