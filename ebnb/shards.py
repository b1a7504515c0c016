"""Shards: the pieces a protocol step is cut into, each computed and stored on its own.

A step's units of work (one dense run, one ticket, ...) are cut into shards of at most
`shard_size` units. A shard is a pure function of its config: its missing units are trained
together in one population and each unit's result is stored atomically under the unit's own
hash (`ebnb.store`), which is what the notebooks load. So a crash loses at most the shards in
flight, and a rerun skips every unit already stored. A running shard also saves a checkpoint
(`ebnb.checkpoint`) every `checkpoint_every` seconds, and a rerun continues from it: agents
are batch invariant and restored bitwise, so the results equal an uninterrupted run.

One process at a time computes a shard: a file lock beside the store serializes two runs
started on the same store; the second finds the shard stored and loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from filelock import FileLock

from ebnb.checkpoint import DEFAULT_EVERY, Checkpoint
from ebnb.config import check_positive_int
from ebnb.store import Store, check_name, config_hash

log = logging.getLogger(__name__)

# compute(store, missing units, checkpoint, progress) -> one result dict per unit, in order
Compute = Callable[[Store, list, Checkpoint, bool], list[dict]]


@dataclass(frozen=True)
class Shard:
    """Units of one kind computed together."""

    kind: str
    units: tuple


@dataclass
class ShardReport:
    """What running a shard did: units computed (0: it was already stored), and whether it
    continued from a checkpoint."""

    shard: Shard
    computed: int
    resumed: bool


def cut(kind: str, units: Sequence, shard_size: int) -> list[Shard]:
    """`units` (duplicates dropped, order kept) in shards of at most `shard_size`."""
    check_positive_int("shard_size", shard_size)
    check_name(kind, "kind")
    unique = tuple(dict.fromkeys(units))
    return [Shard(kind, unique[i : i + shard_size]) for i in range(0, len(unique), shard_size)]


def run(
    store: Store, shard: Shard, compute: Compute, checkpoint_every: float = DEFAULT_EVERY, progress: bool = False
) -> ShardReport:
    """Compute and store the units of `shard` that are not stored yet."""
    lock = store.root / "lock" / f"{config_hash(shard)}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock):
        missing = [u for u in shard.units if not store.exists(shard.kind, u)]
        if not missing:
            log.info("shard %s/%s: stored, skipped", shard.kind, config_hash(shard))
            return ShardReport(shard, 0, False)
        key = config_hash(Shard(shard.kind, tuple(missing)))
        checkpoint = Checkpoint(store.root / "checkpoint" / f"{key}.pt", checkpoint_every)
        results = compute(store, missing, checkpoint, progress)
        for unit, result in zip(missing, results, strict=True):
            store.save(shard.kind, unit, result)
        store.computed += len(missing)
        checkpoint.clear()
        log.info("shard %s/%s: computed %d units", shard.kind, config_hash(shard), len(missing))
        return ShardReport(shard, len(missing), checkpoint.resumed)
