"""The command line and the Python API reject bad input before any compute, naming the parameter."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pandas as pd
import pytest
import torch

from ebnb import masks
from ebnb.agent import fresh_agent
from ebnb.config import CARTPOLE, dqn_config, parse_seeds
from ebnb.population import Population


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "ebnb", *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False
    )


def test_cli_train_writes_one_row_per_seed_and_episode(tmp_path):
    out = tmp_path / "log.parquet"
    result = cli(
        "train", "--env", "cartpole", "--seeds", "1,4", "--episodes", "6", "--no-early-stop", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    log = pd.read_parquet(out)
    assert list(log.columns) == ["seed", "episode", "return", "length", "epsilon"]
    assert sorted(set(log.seed)) == [1, 4]
    assert log.groupby("seed").episode.apply(list).tolist() == [list(range(1, 7))] * 2
    assert (log["return"] == log["length"]).all()  # CartPole pays 1 per step
    assert "seed 4: 6 episodes" in result.stdout


def test_cli_bench_json_rows(monkeypatch, capsys):
    """With a clock that advances exactly 1 s per reading, every timed phase lasts 1 s, so the
    rates are step counts: the sequential one is the median over 3 seeds of the reference DQN's
    steps (each run finishes the episode in which it reaches --steps), the population one is
    the agents' total steps. Checks that the row is about the env, K and --steps asked for."""
    rows = _bench_rows_with_a_fake_clock(monkeypatch, capsys, ["--agents", "4"])
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {
        "env",
        "agents",
        "arithmetic",
        "threads",
        "sequential_steps_per_s",
        "population_agent_steps_per_s",
        "population_agent_steps_per_cpu_s",
        "ratio",
    }
    assert row["env"] == "CartPole-v0" and row["agents"] == 4 and row["arithmetic"] == "fused"
    assert row["threads"] == torch.get_num_threads()
    sequential, population = row["sequential_steps_per_s"], row["population_agent_steps_per_s"]
    assert sequential == int(sequential) and 250 <= sequential < 250 + 200  # one CartPole episode: <= 200 steps
    assert population == int(population) and 4 * 250 <= population < 4 * (250 + 200)
    assert row["population_agent_steps_per_cpu_s"] == population  # the fake CPU clock advances as the wall clock
    assert row["ratio"] == round(population / sequential, 2)


def test_cli_bench_sequential_rate_is_the_median_over_three_seeds(monkeypatch):
    """With a clock advancing 1 s per reading, the sequential rate is the median step count of
    seeds 0, 1, 2, each trained until the episode in which it reaches the requested steps."""
    from ebnb import bench, reference_dqn

    clock = iter(range(10**6))
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    steps = sorted(reference_dqn.train(CARTPOLE, seed, 500, max_steps=250)["steps"] for seed in range(3))
    assert bench.sequential_steps_per_s(CARTPOLE, 250) == steps[1]


@pytest.mark.parametrize(
    "agents", [["--agents", "2", "--agents", "3", "1"], ["--agents", "2", "3", "1"]], ids=["repeated", "one flag"]
)
def test_cli_bench_gives_a_row_per_agents_value(monkeypatch, capsys, agents):
    """`--agents` repeated or given several values: one row per population size, in the order given."""
    rows = _bench_rows_with_a_fake_clock(monkeypatch, capsys, agents)
    assert [row["agents"] for row in rows] == [2, 3, 1]
    assert rows[0]["sequential_steps_per_s"] == rows[1]["sequential_steps_per_s"]  # measured once per env


def _bench_rows_with_a_fake_clock(monkeypatch, capsys, agents: list[str]) -> list[dict]:
    """`python -m ebnb bench --env cartpole <agents> --steps 250 --json`, in process, with a
    clock that advances exactly 1 s per reading: its rows."""
    from ebnb import bench
    from ebnb.__main__ import main

    clock, cpu_clock = iter(range(10**6)), iter(range(10**6))
    monkeypatch.setattr(
        bench,
        "time",
        types.SimpleNamespace(perf_counter=lambda: float(next(clock)), process_time=lambda: float(next(cpu_clock))),
    )
    assert main(["bench", "--env", "cartpole", *agents, "--steps", "250", "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize(
    "call, parameter",
    [
        (lambda: dqn_config("nosuchenv"), "env"),
        (lambda: dqn_config("MountainCarContinuous-v0"), "env"),
        (lambda: parse_seeds(""), "seeds"),
        (lambda: parse_seeds("1,x"), "seeds"),
        (lambda: masks.global_magnitude_masks([torch.ones(1, 2, 2)], 1.0), "P"),
        (lambda: masks.global_magnitude_masks([torch.ones(1, 2, 2)], 0.0), "P"),
        (lambda: masks.random_masks([(1, 2, 2)], -0.2, [0]), "P"),
        (lambda: Population(CARTPOLE, [fresh_agent(CARTPOLE, 0)], max_episodes=0), "max_episodes"),
        (lambda: Population(CARTPOLE, []), "agents"),
        (lambda: CARTPOLE.replace(batch_size=0), "batch_size"),
    ],
)
def test_python_api_rejects_bad_input_naming_the_parameter(call, parameter):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value).startswith(parameter)
