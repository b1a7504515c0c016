"""What survives a crash: checkpoints inside shards, killed and concurrent runs, Dask.

Every test compares against an uninterrupted in-process run of the same quick-profile work
and asserts byte-identical stored results (each result's manifest holds its files' sha256).
"""

from __future__ import annotations

import io
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ebnb import compute, experiments, shards
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
    """The quick profile's work for both envs, computed once, uninterrupted, in this process."""
    work = compute.plan(["cartpole", "acrobot"], STEPS, GRID)
    store = Store(tmp_path_factory.mktemp("reference"))
    list(compute.run(store.root, work, "inline", shard_size=8))
    return work, manifests(store, work)


def cartpole_without_eb_exploit(reference):
    """The part of the reference that `compute 03_finetune --env cartpole` computes."""
    work, expected = reference
    work = [(env, step) for env, step in work if env == "cartpole" and step.name != "eb_exploit"]
    keys = {f"{step.kind}/{config_hash(unit)}" for _, step in work for unit in step.units}
    return work, {k: v for k, v in expected.items() if k in keys}


def test_population_restored_from_a_checkpoint_continues_bitwise():
    cfg = dqn_config("cartpole")

    def population():
        return Population(cfg, [fresh_agent(cfg, s) for s in range(4)], early_stop=True, max_episodes=30)

    whole = population().run()
    saved = {}

    def capture(p, at=300):
        capture.steps = getattr(capture, "steps", 0) + 1
        if capture.steps == at:
            buffer = io.BytesIO()
            torch.save(p.state_dict(), buffer)
            saved["state"] = buffer.getvalue()

    first = population().run(tick=capture)
    resumed = Population.restore(torch.load(io.BytesIO(saved["state"]), weights_only=False)).run()
    for result in (first, resumed):
        assert result.episodes.equals(whole.episodes)
        assert result.agents.equals(whole.agents)
        for a, b in zip(result.final, whole.final):
            for x, y in zip(a.params + a.exp_avg + a.exp_avg_sq, b.params + b.exp_avg + b.exp_avg_sq):
                assert (x == y).all()


@pytest.mark.parametrize("step", ["dense runs", "finetune", "eb_exploit"])
def test_a_shard_crashed_after_a_checkpoint_resumes_to_identical_results(tmp_path, monkeypatch, reference, step):
    work, expected = reference
    store = Store(tmp_path)
    env_steps = {s.name: s for env, s in work if env == "cartpole"}
    for need in env_steps[step].needs:
        list(compute.run(store.root, [("cartpole", env_steps[need])], "inline", shard_size=4))
    target = env_steps[step]
    shard = shards.cut(target.kind, target.units, 4)[0]
    real_save = Checkpoint.save

    def save_then_crash(self, state):
        real_save(self, state)
        if self.saves == 5:
            raise KeyboardInterrupt("killed right after the 5th checkpoint")

    monkeypatch.setattr(Checkpoint, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        shards.run(store, shard, target.compute, checkpoint_every=1e-6)
    monkeypatch.setattr(Checkpoint, "save", real_save)
    assert not any(store.exists(target.kind, u) for u in shard.units)
    assert len(list((store.root / "checkpoint").iterdir())) == 1

    report = shards.run(store, shard, target.compute, checkpoint_every=1e-6)
    assert report.resumed and report.computed == len(shard.units)
    assert not list((store.root / "checkpoint").iterdir()), "a finished shard leaves no checkpoint"
    got = {k: v for k, v in manifests(store, [("cartpole", target)]).items() if v is not None}
    assert len(got) == len(shard.units)
    assert got == {k: expected[k] for k in got}


@pytest.mark.parametrize("damage", [lambda b: b[:-100], lambda b: b[:64] + b"x" + b[65:], lambda b: b""])
def test_a_damaged_checkpoint_is_discarded_not_loaded(tmp_path, damage):
    checkpoint = Checkpoint(tmp_path / "c.pt")
    checkpoint.save({"phase": "train", "job": {"x": torch.arange(1000)}})
    assert checkpoint.load()["job"]["x"].sum() == 499500
    checkpoint.path.write_bytes(damage(checkpoint.path.read_bytes()))
    assert Checkpoint(tmp_path / "c.pt").load() is None
    assert not checkpoint.path.exists()


def _compute_command(store: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "pipeline.py"), "--store", str(store), "compute", "03_finetune", "--env",
            "cartpole", "--profile", "quick", "--shard-size", "4", *extra]  # fmt: skip


def _shard_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[compute] cartpole")]


def test_killed_compute_reruns_to_identical_results_without_recomputing_finished_shards(tmp_path, reference):
    work, expected = cartpole_without_eb_exploit(reference)
    store = Store(tmp_path)
    command = _compute_command(tmp_path, "--scheduler", "inline", "--checkpoint-every", "0.5")
    target = random.randint(1, len(expected) // 2)  # kill right after this many units are stored
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while len(list(tmp_path.glob("*/*/manifest.json"))) < target and process.poll() is None:
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 0.05))
    process.send_signal(signal.SIGKILL)
    before_kill = process.communicate()[0]
    stored_at_kill = {k for k, v in manifests(store, work).items() if v is not None}
    delay = f"killed with {len(stored_at_kill)} of {len(expected)} units stored"
    assert len(stored_at_kill) < len(expected), delay

    rerun = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert manifests(store, work) == expected, delay
    all_shards = [(step.kind, shard) for _, step in work for shard in shards.cut(step.kind, step.units, 4)]
    finished = sum(all(f"{kind}/{store.path(kind, u).name}" in stored_at_kill for u in shard.units)
                   for kind, shard in all_shards)  # fmt: skip
    lines = _shard_lines(rerun)
    assert len(lines) == len(all_shards)
    assert sum("stored before" in line for line in lines) == finished, (before_kill, rerun)
    recomputed = sum(int(line.rsplit("(", 1)[1].split()[0]) for line in lines if "units)" in line)
    assert recomputed == len(expected) - len(stored_at_kill)
    assert not list((tmp_path / "checkpoint").glob("*.pt"))


def test_two_computes_at_once_on_one_store_compute_each_shard_once(tmp_path, reference):
    work, expected = cartpole_without_eb_exploit(reference)
    command = _compute_command(tmp_path, "--scheduler", "inline")
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert manifests(Store(tmp_path), work) == expected
    lines = [line for out, _ in outputs for line in _shard_lines(out)]
    n_shards = sum(len(shards.cut(s.kind, s.units, 4)) for _, s in work)
    assert sum("stored before" not in line for line in lines) == n_shards, "each shard is computed by one process"


def test_dask_local_cluster_fills_the_store_like_the_inline_run(tmp_path, reference):
    """The quick profile, both envs, through a LocalCluster of 2 workers."""
    work, expected = reference
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

