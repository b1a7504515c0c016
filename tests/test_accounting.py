"""Run records: the work a compute counts equals the work its stored results describe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ebnb import accounting, experiments, ownership
from ebnb.accounting import ShardCost, Tally
from ebnb.store import Store


def _cost(started: float, wall_s: float, cpu_s: float) -> ShardCost:
    return ShardCost(Tally(), wall_s, cpu_s, started)


def test_busy_fractions_count_cpu_seconds_and_the_time_every_core_had_a_shard():
    # two cores, 10 s: shard A 0-6 s, shard B 2-10 s, shard C 7-9 s -> two at once in 2-6 and 7-9
    costs = [_cost(100.0, 6.0, 6.0), _cost(102.0, 8.0, 7.0), _cost(107.0, 2.0, 1.0)]
    cores_busy, all_busy = accounting.busy_fractions(costs, wall_s=10.0, cores=2)
    assert cores_busy == pytest.approx(14.0 / 20.0)
    assert all_busy == pytest.approx(6.0 / 10.0)
    assert accounting.busy_fractions(costs, wall_s=10.0, cores=3)[1] == 0.0


def test_compute_writes_a_run_record_whose_counts_match_the_stored_results(tmp_path, capsys):
    """Agent-steps = the stored training episodes' lengths; gradient updates = the transitions
    at which DQN learns; greedy test steps = CartPole's test returns (one reward per step)."""
    import pipeline  # the project root is on sys.path (conftest.py there)

    store = tmp_path / "store"
    g = experiments.grid("quick", seeds=(0, 1), episodes=12, test_episodes=3)
    assert (
        pipeline.main(
            [
                "--store",
                str(store),
                "compute",
                "01_mask_similarity",
                "--env",
                "cartpole",
                "--profile",
                "quick",
                "-p",
                "seeds=[0,1]",
                "-p",
                "episodes=12",
                "-p",
                "test_episodes=3",
                "--scheduler",
                "inline",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    records = list((store / "runs").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert "agent-steps per core-s" in printed and "dense runs" in printed
    assert {"commit", "lock_sha256", "cpu", "cores", "start", "end", "wall_s", "cores_busy", "all_cores_busy"} <= set(
        record
    )
    [row] = record["steps"]
    assert (row["env"], row["step"], row["units"], row["computed"]) == ("cartpole", "dense runs", 2, 2)

    cfg = experiments.run_config("cartpole", g)
    results = experiments.dense_runs("cartpole", g, Store(store))
    lengths = [r["episodes"]["length"].sum() for r in results]
    transitions = [np.arange(1, n + 1) for n in lengths]
    updates = sum(int(((t % cfg.train_freq == 0) & (t >= cfg.learning_starts)).sum()) for t in transitions)
    test_steps = sum(r["baseline"]["test_return"].iloc[0] * g.test_episodes for r in results)
    assert row["agent_steps"] == sum(lengths)
    assert row["updates"] == updates > 0
    assert row["test_steps"] == round(test_steps)
    assert row["mean_live"] == pytest.approx(row["agent_steps"] / row["population_steps"], abs=0.05)
    assert 1.0 < row["mean_live"] <= 2.0
    assert 0 < row["core_s"] and 0 < record["wall_s"]

    assert ownership.refusal(store, "store") is None, "`clean` must see run records as the store's own files"


def test_all_writes_one_run_record_with_the_notebooks_wall_times(tmp_path, monkeypatch, capsys):
    """`pipeline.py all` glue: compute (stubbed: everything stored), then the notebooks (stubbed),
    then one record holding both, printed as a table at the end."""
    import pipeline
    from ebnb import compute

    monkeypatch.setattr(compute, "run", lambda *args, **kwargs: iter(()))
    monkeypatch.setattr(pipeline, "run_grid", lambda *args: {("01_mask_similarity", "cartpole"): 1.5})
    store = tmp_path / "store"
    argv = ["--store", str(store), "--out", str(tmp_path / "out"), "all", "--recompute", "--env", "cartpole"]
    assert pipeline.main(argv) == 0
    [path] = (store / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["command"] == "all" and record["profile"] == "full" and record["workers"] >= 1
    assert record["notebooks"] == [{"notebook": "01_mask_similarity", "env": "cartpole", "wall_s": 1.5}]
    assert record["all_wall_s"] >= 0 and next(r["step"] for r in record["steps"]) == "dense runs"
    assert "[pipeline] all:" in capsys.readouterr().out
