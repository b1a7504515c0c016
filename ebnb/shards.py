"""Shards: the pieces a protocol step is cut into, each computed and stored on its own.

A step's units of work (one dense run, one ticket, ...) are cut into shards of at most
`shard_size` units. A shard is a pure function of its config: its missing units are trained
in one population (all at once, or for tickets a few at a time with continuous batching)
and each unit's result is stored atomically under the unit's own hash (`ebnb.store`), which
is what the notebooks load, as soon as the step's compute function hands it over (tickets:
the moment the unit finishes). So a crash loses at most the unstored units in flight, and a
rerun skips every unit already stored. A running shard also saves a checkpoint
(`ebnb.checkpoint`, named by the shard) every `checkpoint_every` seconds, and a rerun
continues from it: agents are batch invariant and restored bitwise, so the results equal an
uninterrupted run.

One process at a time computes a shard: a file lock beside the store serializes two runs
started on the same store; the second finds the shard stored and loads it.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from filelock import FileLock

from ebnb import accounting
from ebnb.checkpoint import DEFAULT_EVERY, Checkpoint
from ebnb.config import check_positive_int
from ebnb.identity import HASH_CHARS, config_json, kind
from ebnb.store import Store, check_name

log = logging.getLogger(__name__)

# compute(store, missing units, checkpoint, progress, save): trains the units and calls
# save(unit, result) once per unit as its result is ready. On resuming from `checkpoint` it
# goes on with the units it started with (saved in the checkpoint).
Save = Callable[[object, dict], None]
Compute = Callable[[Store, list, Checkpoint, bool, Save], None]


@kind("shard")
@dataclass(frozen=True)
class Shard:
    """Units of one kind computed together."""

    kind: str
    units: tuple


def shard_key(shard: Shard) -> str:
    """The name of a shard's lock and checkpoint: a digest of its whole config, recorded fields
    included (a checkpoint resumes only the units it was started with)."""
    return hashlib.sha256(config_json(shard).encode()).hexdigest()[:HASH_CHARS]


@dataclass
class ShardReport:
    """What running a shard did: units computed (0: it was already stored), whether it
    continued from a checkpoint, and what computing it cost (None if it was stored)."""

    shard: Shard
    computed: int
    resumed: bool
    cost: accounting.ShardCost | None = None


def cut(kind: str, units: Sequence, shard_size: int) -> list[Shard]:
    """`units` (duplicates dropped) in as few shards of at most `shard_size` as will do,
    dealt like cards: unit i goes to shard i % n, so that shards of units listed longest
    first get equal shares of long and short work, each in the order given."""
    check_positive_int("shard_size", shard_size)
    check_name(kind, "kind")
    unique = tuple(dict.fromkeys(units))
    n = -(-len(unique) // shard_size)
    return [Shard(kind, unique[i::n]) for i in range(n)]


def run(
    store: Store,
    shard: Shard,
    compute: Compute,
    checkpoint_every: float = DEFAULT_EVERY,
    progress: bool = False,
    label: str | None = None,
    force: bool = False,
) -> ShardReport:
    """Compute and store the units of `shard` that are not stored yet (with `progress` and a
    `label`, first print how many that is); a damaged stored unit is recomputed with a
    warning naming it. `force`: every unit, each replacing the stored one atomically, from
    scratch (a checkpoint of the shard is discarded). A shard found stored is only read: no
    lock file is opened, nothing is written (a complete store on a read-only disk works)."""
    if not force and all(store.exists(shard.kind, u) for u in shard.units):
        log.info("shard %s/%s: stored, skipped", shard.kind, shard_key(shard))
        return ShardReport(shard, 0, False)
    with FileLock(store.folder("lock") / f"{shard_key(shard)}.lock"):
        missing = [u for u in shard.units if force or not store.exists(shard.kind, u)]
        if not missing:  # another run stored it while we waited for the lock
            log.info("shard %s/%s: stored, skipped", shard.kind, shard_key(shard))
            return ShardReport(shard, 0, False)
        for unit in missing:
            damage = store.damage(shard.kind, unit)
            if damage:
                log.warning("warning: recomputing a damaged stored result: %s", damage)
        if progress and label:
            print(f"{label}: {len(missing)} of its {len(shard.units)} units to compute", flush=True)
        checkpoint = Checkpoint(store.root / "checkpoint" / f"{shard_key(shard)}.pt", checkpoint_every)
        if force:
            checkpoint.clear()
        unsaved = set(missing)

        def save(unit, result: dict) -> None:
            if unit in unsaved:  # a resumed checkpoint may hand over a unit stored before the crash
                store.save(shard.kind, unit, result, overwrite=force)
                unsaved.remove(unit)

        work, started, wall, cpu = copy.copy(accounting.TALLY), time.time(), time.perf_counter(), time.process_time()
        compute(store, missing, checkpoint, progress, save)
        cost = accounting.ShardCost(
            accounting.TALLY.since(work), time.perf_counter() - wall, time.process_time() - cpu, started
        )
        computed = len(missing) - len(unsaved)
        store.computed += computed
        checkpoint.clear()
        log.info("shard %s/%s: computed %d units", shard.kind, shard_key(shard), computed)
        return ShardReport(shard, computed, checkpoint.resumed, cost)
