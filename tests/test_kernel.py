"""The fused kernel (`ebnb.kernel`) against the torch path (`ebnb.qnet` + `ebnb.optim`), and
the golden hashes that hold its bits on every CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import golden
import numpy as np
import pytest
import torch

from ebnb import masks
from ebnb.agent import fresh_agent
from ebnb.arithmetic import greedy_actions
from ebnb.config import ACROBOT, CARTPOLE
from ebnb.population import Population

TESTS = Path(__file__).resolve().parent


def _filled_population(cfg, dtype, arithmetic: str) -> Population:
    """Six agents with full random replay buffers, out of phase (own Adam step counts and
    moments), agents 1 and 4 pruned by random masks: the state one update starts from."""
    rng = np.random.default_rng(0)
    agents = []
    for seed in range(6):
        agent = fresh_agent(cfg, seed, dtype=dtype)
        replay = {name: rng.standard_normal(array.shape).astype(array.dtype) for name, array in agent.replay.items()}
        replay["action"] = rng.integers(0, agent.params[-1].shape[0], agent.replay["action"].shape)
        replay["done"] = (rng.random(agent.replay["done"].shape) < 0.1).astype(np.float32)
        moments = [np.abs(rng.standard_normal(p.shape)).astype(dtype) * 1e-3 for p in agent.params]
        agent = agent.replace(
            replay=replay,
            transitions=cfg.buffer_size + 7 * seed,
            updates=3 * seed,
            adam_steps=5 * seed,
            exp_avg=[m * 0.1 for m in moments],
            exp_avg_sq=moments,
            target=[p + dtype(0.01) for p in agent.params],
        )
        if seed in (1, 4):
            shapes = [w.shape for w in agent.params[0::2]]
            agent = agent.pruned([m[0].numpy() for m in masks.random_masks([(1, *s) for s in shapes], 0.5, [seed])])
        agents.append(agent)
    return Population(cfg.replace(arithmetic=arithmetic), agents, early_stop=False)


@pytest.mark.parametrize("cfg", [CARTPOLE, ACROBOT], ids=["cartpole", "acrobot"])
@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"])
def test_one_update_equals_the_torch_path_per_agent(cfg, dtype, atol):
    """One gradient + Adam + mask step of agents 0, 1, 3, 4 (not 2, 5): the fused kernel and
    torch agree on every parameter, target, moment and step count of every agent."""
    fused, reference = _filled_population(cfg, dtype, "fused"), _filled_population(cfg, dtype, "torch")
    positions = np.array([0, 1, 3, 4])
    before = fused.snapshot(np.arange(6))
    for population in (fused, reference):
        population._learn(positions)
    for agent, (a, b, old) in enumerate(zip(fused.snapshot(np.arange(6)), reference.snapshot(np.arange(6)), before)):
        assert a.adam_steps == b.adam_steps == old.adam_steps + (agent in positions)
        for group in ("params", "target", "exp_avg", "exp_avg_sq"):
            for x, y, z in zip(getattr(a, group), getattr(b, group), getattr(old, group)):
                np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=f"agent {agent} {group}")
                if agent not in positions or group == "target":
                    assert np.array_equal(x, z), f"agent {agent} {group} must not move"
        if a.mask is not None:
            for layer, keep in enumerate(a.mask):
                assert not a.params[2 * layer][~keep].any()
        if agent in positions:
            assert not np.array_equal(a.params[0], old.params[0]), "the update must move the weights"


@pytest.mark.parametrize("cfg", [CARTPOLE, ACROBOT], ids=["cartpole", "acrobot"])
def test_greedy_actions_equal_the_torch_path(cfg):
    population = _filled_population(cfg, np.float32, "fused")
    obs = np.random.default_rng(1).standard_normal((6, 50, population.obs_dim)).astype(np.float32)
    fused = greedy_actions(cfg, population.params, obs)
    reference = greedy_actions(cfg.replace(arithmetic="torch"), population.params, obs)
    assert np.array_equal(fused, reference)
    assert len(np.unique(fused)) > 1


def test_the_fused_kernel_refuses_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="device"):
        Population(CARTPOLE, [fresh_agent(CARTPOLE, 0)], device="cuda")


def test_a_population_trains_on_its_configs_device():
    """The device is the config's (so the units', so the pipeline's): a CUDA config trains on
    CUDA, and a device of another type is refused."""
    on_cuda = CARTPOLE.replace(arithmetic="torch", device="cuda")
    if torch.cuda.is_available():
        assert Population(on_cuda, [fresh_agent(on_cuda, 0)]).device.type == "cuda"
    else:
        with pytest.raises(ValueError, match="device: 'cuda' is not available on this machine"):
            Population(on_cuda, [fresh_agent(on_cuda, 0)])
    torch_cpu = CARTPOLE.replace(arithmetic="torch")
    assert Population(torch_cpu, [fresh_agent(torch_cpu, 0)]).device.type == "cpu"


def test_golden_hashes_in_process_match_the_committed_ones():
    """Short runs of both envs (a dense, a masked, a resumed out-of-phase and a fresh agent;
    over 3,000 steps each; then greedy test episodes) hash to the committed values, which
    were made on another machine: the same bits on every CPU."""
    committed = json.loads((TESTS / "golden.json").read_text())
    assert golden.hashes() == committed


def test_golden_hashes_without_simd_beyond_sse2_match_the_committed_ones():
    """The same runs compiled for a generic x86-64 CPU (SSE2 only, no AVX, no FMA) in a fresh
    process give the same bits."""
    committed = json.loads((TESTS / "golden.json").read_text())
    environment = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": ""}
    out = subprocess.run(
        [sys.executable, str(TESTS / "golden.py")],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    assert json.loads(out.stdout) == committed
