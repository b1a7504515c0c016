"""The configs hold the thesis' hyperparameters (appendices A and B, docs/protocol.md's table).

The numbers below are copied from the thesis (appendix B "DQN Details", appendix A "Neural
Network details") and from docs/protocol.md where the thesis leaves a choice open (epsilon decays
per episode on CartPole, per step on Acrobot; early stopping after 10 solved episodes). They
are literals on purpose: a changed config must fail here, not be compared with itself.
"""

from __future__ import annotations

import re

import pytest

from ebnb import experiments
from ebnb.config import ACROBOT, CARTPOLE, dqn_config, placement
from ebnb.identity import config_hash, identity_json

THESIS = {
    # field: (CartPole, Acrobot)
    "env_id": ("CartPole-v0", "Acrobot-v1"),
    "hidden": ((128, 128), (128,)),  # appendix A: 128 neurons; 2 hidden layers / 1
    "lr": (0.0025, 0.001),
    "batch_size": (32, 64),
    "buffer_size": (1000, 2000),
    "learning_starts": (200, 1000),  # "start learning after 200 / 1000 transitions"
    "train_freq": (4, 1),  # "update frequency: every 4 transitions / every 1 transition"
    "gamma": (0.99, 0.99),
    "eps_start": (1.0, 1.0),
    "eps_decay": (0.95, 0.999),
    "eps_decay_per": ("episode", "step"),  # docs/protocol.md
    "eps_floor": (0.01, 0.01),
    "solved_return": (200.0, -100.0),  # early-stopping threshold
    "solved_streak": (10, 10),  # "10 consecutive episodes"
    "max_episodes": (500, 500),
    "truncation_is_terminal": (False, False),  # docs/protocol.md: time limits bootstrap
    "arithmetic": ("fused", "fused"),  # not a hyperparameter: the fixed-order CPU kernel (ebnb.kernel)
    "device": ("cpu", "cpu"),  # where the agents train (cuda: torch arithmetic only)
}


@pytest.mark.parametrize("field", THESIS)
def test_configs_hold_the_thesis_hyperparameters(field):
    cartpole, acrobot = THESIS[field]
    assert getattr(CARTPOLE, field) == cartpole and type(getattr(CARTPOLE, field)) is type(cartpole)
    assert getattr(ACROBOT, field) == acrobot and type(getattr(ACROBOT, field)) is type(acrobot)


def test_every_config_field_is_pinned():
    assert set(THESIS) == {f for f in CARTPOLE.__dataclass_fields__}


@pytest.mark.parametrize(
    "name, preset", [("cartpole", CARTPOLE), ("CartPole-v0", CARTPOLE), ("acrobot", ACROBOT), ("Acrobot-v1", ACROBOT)]
)
def test_dqn_config_gives_the_thesis_preset(name, preset):
    assert dqn_config(name) == preset


@pytest.mark.parametrize("env, preset", [("cartpole", CARTPOLE), ("acrobot", ACROBOT)])
def test_the_full_profile_trains_with_the_thesis_config(env, preset):
    """Every unit of the thesis grid carries the preset unchanged (500 episodes is the cap)."""
    full = experiments.PROFILES["full"]
    steps = experiments.steps(env, full)
    for unit in steps["dense runs"].units:
        assert unit.dqn == preset and unit.episodes == 500
    for name in ("retrain", "winning tickets", "finetune"):
        assert all(u.dense.dqn == preset for u in steps[name].units)
    assert all(u.dqn == preset and u.episodes == 500 for u in steps["eb_exploit"].units)
    assert {(u.xi, u.window, u.rewind) for u in steps["eb_exploit"].units} == {(0.1, 2, False)}


def test_the_device_is_part_of_a_results_key_except_the_cpu_so_no_key_changed():
    """A CUDA result never shares the key of a CPU one; the CPU, the default, is left out of the
    key, so every key made before the field existed stays (docs/exactness.md, "CUDA")."""
    torch_cpu = CARTPOLE.replace(arithmetic="torch")
    on_cuda = torch_cpu.replace(device="cuda")
    assert "device" not in identity_json(torch_cpu) and '"device":"cuda"' in identity_json(on_cuda)
    assert identity_json(on_cuda).replace(',"device":"cuda"', "") == identity_json(torch_cpu)
    assert config_hash(on_cuda) != config_hash(torch_cpu) != config_hash(CARTPOLE)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"device": "cuda"}, "device: the fused kernel runs on the CPU only; on cuda use arithmetic 'torch'"),
        ({"device": "tpu", "arithmetic": "torch"}, "device must be 'cpu' or 'cuda', got 'tpu'"),
    ],
)
def test_a_config_refuses_a_device_its_arithmetic_cannot_run_on(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        CARTPOLE.replace(**changes)


def test_placement_defaults_the_arithmetic_to_the_devices_and_checks_both():
    assert placement() == {"device": "cpu", "arithmetic": "fused"}
    assert placement("cpu", "torch") == {"device": "cpu", "arithmetic": "torch"}
    with pytest.raises(ValueError, match="arithmetic: unknown 'exact'; allowed: fused, torch"):
        placement("cpu", "exact")
    with pytest.raises(ValueError, match="device: unknown device 'gpu'"):
        placement("gpu")
