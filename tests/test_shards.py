"""What survives a crash: checkpoints inside shards, killed and concurrent runs, Dask.

Every test compares against an uninterrupted in-process run of the same work and asserts
byte-identical stored results (each result's manifest holds its files' sha256; ticket and EB
Exploit results hold `state_sha256`, the hash of the final network and Adam state, so equal
files mean equal trained networks). Crashes land while agents learn: CartPole configs that
learn from transition 64 make short runs carry Adam state, lagging targets, masks, snapshots
and found EB tickets, all of which a resume must restore.
"""

from __future__ import annotations

import io
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ebnb import compute, experiments, shards
from ebnb import population as population_module
from ebnb.agent import fresh_agent
from ebnb.checkpoint import Checkpoint
from ebnb.config import dqn_config
from ebnb.population import Population
from ebnb.store import Store, config_hash

ROOT = Path(__file__).resolve().parents[1]
GRID = experiments.grid("quick")
STEPS = ("retrain", "winning tickets", "finetune", "eb_exploit")  # and the dense runs they need


def manifests(store: Store, work) -> dict[str, str | None]:
    """kind/hash -> the unit's manifest (sha256 of every file; None if absent) for `work`."""
    out = {}
    for _, step in work:
        for unit in step.units:
            path = store.path(step.kind, unit)
            out[f"{step.kind}/{path.name}"] = (path / "manifest.json").read_text() if path.exists() else None
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The quick profile's CartPole work, computed once, uninterrupted, in this process: the
    manifests (sha256 of every stored file, including each ticket's and EB Exploit run's
    `state_sha256`, the hash of its final network and Adam state) and the store."""
    work = compute.plan(["cartpole"], STEPS, GRID)
    store = Store(tmp_path_factory.mktemp("reference"))
    list(compute.run(store.root, work, "inline", shard_size=8))
    return work, manifests(store, work), store


def cartpole_without_eb_exploit(reference):
    """The part of the reference that `compute 03_finetune --env cartpole` computes."""
    work, expected, _ = reference
    work = [(env, step) for env, step in work if env == "cartpole" and step.name != "eb_exploit"]
    keys = {f"{step.kind}/{config_hash(unit)}" for _, step in work for unit in step.units}
    return work, {k: v for k, v in expected.items() if k in keys}


def test_stored_tickets_and_eb_exploit_runs_carry_the_hash_of_their_trained_network(reference):
    """So the byte-identical comparisons below compare trained networks, not only summaries
    (at the quick profile every ticket's length is the cap and no EB ticket is found)."""
    work, _, store = reference
    hashes = {}  # step -> {(seed, P, prune episode) -> hash}
    for _, step in work:
        if step.kind in ("ticket", "eb_exploit"):
            for unit in step.units:
                row = store.load(step.kind, unit)["result"].iloc[0]
                assert re.fullmatch(r"[0-9a-f]{64}", row["state_sha256"])
                key = (row["seed"], row["P"], row["prune_episode"])
                hashes.setdefault(step.name, {})[key] = row["state_sha256"]
    assert {name: len(h) for name, h in hashes.items()} == {
        "retrain": 8,
        "winning tickets": 4,
        "finetune": 8,
        "eb_exploit": 4,
    }
    # every seed and P trains a network of its own, finetuning also from each prune episode's state;
    # retrained tickets pruned at episodes 2 and 6 start alike (no gradient step before episode ~9),
    # and EB Exploit finds no ticket in 10 episodes (each seed's run is unpruned whatever P)
    for name, by_key in hashes.items():
        size = {"finetune": 3, "eb_exploit": 1}.get(name, 2)
        distinct = {k[:size]: h for k, h in by_key.items()}
        assert len(set(distinct.values())) == len(distinct), name


def test_population_restored_from_a_checkpoint_continues_bitwise(monkeypatch):
    cfg = dqn_config("cartpole")
    monkeypatch.setattr(population_module, "CALL_STEPS", 400)  # ticks every 100 steps of each agent

    def population():
        return Population(cfg, [fresh_agent(cfg, s) for s in range(4)], early_stop=True, max_episodes=30)

    whole = population().run()
    saved = {}

    def capture(p):  # the first tick once every agent has learnt (from transition 200)
        if not saved and p.live == 4 and p.transitions.min() >= 300:
            buffer = io.BytesIO()
            torch.save(p.state_dict(), buffer)
            saved["state"] = buffer.getvalue()

    first = population().run(tick=capture)
    assert saved, "no checkpoint mid-learning"
    resumed = Population.restore(torch.load(io.BytesIO(saved["state"]), weights_only=False)).run()
    for result in (first, resumed):
        assert result.episodes.equals(whole.episodes)
        assert result.agents.equals(whole.agents)
        for a, b in zip(result.final, whole.final):
            for x, y in zip(a.params + a.exp_avg + a.exp_avg_sq, b.params + b.exp_avg + b.exp_avg_sq):
                assert (x == y).all()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# CartPole that learns from transition 64 (not 200), so a short run has Adam moments, a target
# behind the online net, masks and snapshots: what a resume must restore
FAST_LEARNING = {"learning_starts": 64}


CRASH_GRID = dict(seeds=(0, 1), fractions=(0.2, 0.8), prune_episodes=(4,), episodes=10, test_episodes=2)


def _live_states(state: dict) -> list:
    """Full states of the live agents of a checkpointed population (copies)."""
    population = Population.restore(state["population"])
    return population.snapshot(population.ids)


def _learning_in_progress(states) -> bool:
    """Every live agent has taken Adam steps, and some agent's target lags its online net."""
    lagging = any(any((t != p).any() for t, p in zip(s.target, s.params)) for s in states)
    return bool(states) and all(s.adam_steps > 0 and any(m.any() for m in s.exp_avg) for s in states) and lagging


def _crash_point(step: str):
    """When to crash a shard of `step`: a predicate on (checkpoint state, live agent states)."""
    if step == "dense runs":  # learning, and snapshot e4 and masks already recorded in the job
        return lambda state, states: (
            _learning_in_progress(states)
            and len(states) == 2
            and all("e4" in snaps for snaps in state["job"]["snapshots"].values())
            and all(len(d[0.2]) >= 3 for d in state["job"]["drawn"].values())
        )
    if step == "eb_exploit":  # tickets found and pruned, finetuning under way
        return lambda state, states: (
            state["phase"] == "finetune"
            and len(state["job"]["found"]) >= 2
            and all(s.mask is not None for s in states)
            and _learning_in_progress(states)
        )
    return lambda state, states: all(s.mask is not None for s in states) and _learning_in_progress(states)


@pytest.mark.parametrize("step", ["dense runs", "finetune", "retrain", "eb_exploit"])
def test_a_shard_crashed_while_learning_resumes_to_identical_results(tmp_path, monkeypatch, step):
    """Crash a shard at a checkpoint taken mid-learning (Adam moments and step counts, lagging
    target networks, masks, snapshots, EB Exploit's found tickets in its finetune phase), resume
    it, and compare with the same shard computed uninterrupted: byte-identical stored results,
    which for tickets and EB Exploit include the hash of the final network and Adam state."""
    # EB Exploit: epsilon halves per episode, so it reaches its floor at episode 7 and, with a
    # loose xi, every run finds its ticket at the next comparison and finetunes it
    dqn = {**FAST_LEARNING, **({"eps_decay": 0.5} if step == "eb_exploit" else {})}
    # short compiled calls, so that checkpoints fall mid-episode too (with a callback a call
    # otherwise ends where every agent has just ended an episode and copied its target)
    monkeypatch.setattr(population_module, "CALL_STEPS", 14)
    g = experiments.grid("quick", **CRASH_GRID, dqn=dqn)
    env_steps = experiments.steps("cartpole", g, xi=0.9, window=1)  # loose xi: tickets are found
    target = env_steps[step]
    shard = shards.cut(target.kind, target.units, 4)[0]
    stores = {name: Store(tmp_path / name) for name in ("uninterrupted", "crashed")}
    for store in stores.values():
        for need in target.needs:
            list(compute.run(store.root, [("cartpole", env_steps[need])], "inline", shard_size=4))
    shards.run(stores["uninterrupted"], shard, target.compute, checkpoint_every=1e9)

    real_save, crash_now, crashed = Checkpoint.save, _crash_point(step), {}

    def save_then_crash(self, state):
        real_save(self, state)
        if crash_now(state, _live_states(state)):
            crashed.update(phase=state["phase"], saves=self.saves)
            raise KeyboardInterrupt("killed right after a checkpoint")

    monkeypatch.setattr(Checkpoint, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        shards.run(stores["crashed"], shard, target.compute, checkpoint_every=1e-6)
    monkeypatch.setattr(Checkpoint, "save", real_save)
    store = stores["crashed"]
    assert not any(store.exists(target.kind, u) for u in shard.units)
    assert len(list((store.root / "checkpoint").iterdir())) == 1, crashed

    report = shards.run(store, shard, target.compute, checkpoint_every=1e9)
    assert report.resumed and report.computed == len(shard.units)
    assert not list((store.root / "checkpoint").iterdir()), "a finished shard leaves no checkpoint"
    got, expected = (manifests(s, [("cartpole", target)]) for s in (store, stores["uninterrupted"]))
    assert None not in got.values() and len(got) == len(shard.units)
    assert got == expected, crashed
    if target.kind != "dense":
        hashes = [store.load(target.kind, u)["result"]["state_sha256"].iloc[0] for u in shard.units]
        assert len(set(hashes)) == len(hashes)


@pytest.mark.parametrize("damage", [lambda b: b[:-100], lambda b: b[:64] + b"x" + b[65:], lambda b: b""])
def test_a_damaged_checkpoint_is_discarded_not_loaded(tmp_path, damage):
    checkpoint = Checkpoint(tmp_path / "c.pt")
    checkpoint.save({"phase": "train", "job": {"x": torch.arange(1000)}})
    assert checkpoint.load()["job"]["x"].sum() == 499500
    checkpoint.path.write_bytes(damage(checkpoint.path.read_bytes()))
    assert Checkpoint(tmp_path / "c.pt").load() is None
    assert not checkpoint.path.exists()


def _compute_command(store: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "pipeline.py"),
        "--store",
        str(store),
        "compute",
        "03_finetune",
        "--env",
        "cartpole",
        "--profile",
        "quick",
        "--shard-size",
        "4",
        *extra,
    ]


def _one_thread() -> dict[str, str]:
    """The environment for a `compute` subprocess: single-threaded torch (same numbers, much
    faster for tiny populations on a busy machine)."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _shard_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[compute] cartpole")]


def test_killed_compute_reruns_to_identical_results_without_recomputing_finished_shards(tmp_path, reference):
    work, expected = cartpole_without_eb_exploit(reference)
    store = Store(tmp_path)
    command = _compute_command(tmp_path, "--scheduler", "inline", "--checkpoint-every", "0.5")
    target = random.randint(1, len(expected) // 2)  # kill right after this many units are stored
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_one_thread())
    while len(list(tmp_path.glob("*/*/manifest.json"))) < target and process.poll() is None:
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 0.05))
    process.send_signal(signal.SIGKILL)
    before_kill = process.communicate()[0]
    stored_at_kill = {k for k, v in manifests(store, work).items() if v is not None}
    delay = f"killed with {len(stored_at_kill)} of {len(expected)} units stored"
    assert len(stored_at_kill) < len(expected), delay

    rerun = subprocess.run(command, capture_output=True, text=True, check=True, env=_one_thread()).stdout
    assert manifests(store, work) == expected, delay
    all_shards = [(step.kind, shard) for _, step in work for shard in shards.cut(step.kind, step.units, 4)]
    finished = sum(
        all(f"{kind}/{store.path(kind, u).name}" in stored_at_kill for u in shard.units) for kind, shard in all_shards
    )
    lines = _shard_lines(rerun)
    assert len(lines) == len(all_shards)
    assert sum("stored before" in line for line in lines) == finished, (before_kill, rerun)
    recomputed = sum(int(line.rsplit("(", 1)[1].split()[0]) for line in lines if "units)" in line)
    assert recomputed == len(expected) - len(stored_at_kill)
    assert not list((tmp_path / "checkpoint").glob("*.pt"))


def test_compute_killed_while_a_checkpoint_exists_resumes_from_it_to_identical_results(tmp_path):
    """SIGKILL `pipeline.py compute` once a running shard has checkpointed (and checkpointed
    again for a while: it is learning by then), rerun: the rerun must report the shard as
    resumed and store exactly what an uninterrupted run stores."""
    overrides = ["-p", "seeds=[0,1]", "-p", "episodes=60"]
    g = experiments.grid("quick", seeds=(0, 1), episodes=60)
    work = compute.plan(["cartpole"], ["dense runs"], g)
    reference = Store(tmp_path / "reference")
    list(compute.run(reference.root, work, "inline", shard_size=2))
    expected = manifests(reference, work)

    store = tmp_path / "killed"
    command = [
        sys.executable,
        str(ROOT / "pipeline.py"),
        "--store",
        str(store),
        "compute",
        "01_mask_similarity",
        "--env",
        "cartpole",
        "--profile",
        "quick",
        *overrides,
        "--shard-size",
        "2",
        "--scheduler",
        "inline",
        "--checkpoint-every",
        "0.05",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_one_thread())
    checkpoints, first_seen = store / "checkpoint", None
    while process.poll() is None:
        if first_seen is None and list(checkpoints.glob("*.pt")):
            first_seen = time.monotonic()
        if first_seen is not None and time.monotonic() - first_seen > random.uniform(0.3, 0.6):
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    before_kill = process.communicate()[0]
    assert len(list(checkpoints.glob("*.pt"))) == 1, f"the shard finished before the kill: {before_kill}"
    assert all(v is None for v in manifests(Store(store), work).values())

    rerun = subprocess.run(command, capture_output=True, text=True, check=True, env=_one_thread()).stdout
    summary = re.search(r"shards: (\d+) computed, (\d+) resumed from a checkpoint, (\d+) stored before", rerun)
    assert summary and summary.groups() == ("0", "1", "0"), rerun
    assert manifests(Store(store), work) == expected
    assert not list(checkpoints.glob("*.pt"))


def test_two_computes_at_once_on_one_store_compute_each_shard_once(tmp_path, reference):
    work, expected = cartpole_without_eb_exploit(reference)
    command = _compute_command(tmp_path, "--scheduler", "inline")
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_one_thread())
        for _ in range(2)
    ]
    outputs = [p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert manifests(Store(tmp_path), work) == expected
    lines = [line for out, _ in outputs for line in _shard_lines(out)]
    n_shards = sum(len(shards.cut(s.kind, s.units, 4)) for _, s in work)
    assert sum("stored before" not in line for line in lines) == n_shards, "each shard is computed by one process"


def test_dask_local_cluster_fills_the_store_like_the_inline_run(tmp_path, reference):
    """The quick profile (CartPole; both envs share the code path) through a LocalCluster of 2
    workers; stored results hold each trained network's hash, so they compare networks."""
    work, expected, _ = reference
    reports = list(compute.run(tmp_path, work, "local", shard_size=8, workers=2))
    assert sum(r.computed for _, _, r in reports) == len(expected)
    assert manifests(Store(tmp_path), work) == expected
    assert not list(tmp_path.glob(".probe-*"))


def test_a_worker_that_cannot_see_the_store_fails_with_a_message_naming_it(tmp_path):
    step = compute.plan(["cartpole"], ["dense runs"], GRID)[0][1]
    shard = shards.cut(step.kind, step.units, 4)[0]
    with pytest.raises(RuntimeError, match=r"store: .* is not visible from worker .*shared by all workers"):
        compute._run_shard(str(tmp_path), ".probe-written-by-another-machine", shard, step.compute, 1.0, [])
    assert not any(tmp_path.iterdir())


def _ticket_work(monkeypatch, population: int):
    """CartPole tickets of a small grid (learning from transition 64), at most `population`
    training at once, and the dense runs they need; short compiled calls, so that agents stop
    in different calls and waiting ones enter beside the others."""
    monkeypatch.setattr(population_module, "CALL_STEPS", 30)
    g = experiments.grid("quick", **{**CRASH_GRID, "prune_episodes": (2, 4)}, dqn=FAST_LEARNING)
    return compute.plan(["cartpole"], ["retrain", "winning tickets", "finetune"], g, population=population)


def test_tickets_entering_freed_slots_store_the_same_bytes_as_tickets_started_together(tmp_path, monkeypatch):
    """Continuous batching: with room for 3, each ticket enters the slot of one that stopped
    while the others keep training (mid-episode, out of phase); every stored file, including
    each final network's hash, equals the run where all 20 tickets start together."""
    live_at_checkpoints = []  # the live agent ids (unit indices, admitted in order) at each checkpoint
    real_save = Checkpoint.save

    def recording_save(self, state):
        live_at_checkpoints.append(sorted(int(i) for i in state["population"]["ids"]))
        return real_save(self, state)

    stored = {}
    for population in (64, 3):
        work = _ticket_work(monkeypatch, population)
        store = Store(tmp_path / str(population))
        monkeypatch.setattr(Checkpoint, "save", recording_save if population == 3 else real_save)
        list(compute.run(store.root, work, "inline", shard_size=32, checkpoint_every=1e-9))
        stored[population] = manifests(store, work)
    assert len(stored[3]) == 22 and None not in stored[3].values()
    assert stored[3] == stored[64]
    # a later unit (index 3 on) live beside an earlier one: it entered while that one trained
    assert any(len(ids) >= 2 and ids[-1] >= 3 for ids in live_at_checkpoints), live_at_checkpoints


def test_tickets_crashed_while_entering_freed_slots_resume_to_identical_results(tmp_path, monkeypatch):
    """Crash a continuously batched shard after some tickets are stored and others wait in its
    queue, with the live ones learning; the rerun resumes its checkpoint (live agents and the
    queue) and stores byte-identical results, computing no stored ticket again."""
    work = _ticket_work(monkeypatch, population=3)
    tickets = [(env, step) for env, step in work if step.kind == "ticket"]
    uninterrupted = Store(tmp_path / "uninterrupted")
    list(compute.run(uninterrupted.root, work, "inline", shard_size=32))
    store = Store(tmp_path / "crashed")
    list(compute.run(store.root, work[:1], "inline", shard_size=32))  # the dense runs
    shard = shards.cut("ticket", [u for _, step in tickets for u in step.units], 32)[0]
    compute_tickets = tickets[0][1].compute
    real_save, crashed = Checkpoint.save, {}

    def save_then_crash(self, state):
        real_save(self, state)
        job = state["job"]
        if 2 <= job["saved"] and job["admitted"] < len(job["units"]) and _learning_in_progress(_live_states(state)):
            crashed.update(saved=job["saved"], admitted=job["admitted"])
            raise KeyboardInterrupt("killed right after a checkpoint")

    monkeypatch.setattr(Checkpoint, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        shards.run(store, shard, compute_tickets, checkpoint_every=1e-6)
    monkeypatch.setattr(Checkpoint, "save", real_save)
    stored_at_crash = sum(store.exists("ticket", u) for u in shard.units)
    assert stored_at_crash >= crashed["saved"] >= 2 and len(list((store.root / "checkpoint").iterdir())) == 1

    report = shards.run(store, shard, compute_tickets, checkpoint_every=1e9)
    assert report.resumed and report.computed == len(shard.units) - stored_at_crash
    assert manifests(store, tickets) == manifests(uninterrupted, tickets)
    assert not list((store.root / "checkpoint").iterdir())
