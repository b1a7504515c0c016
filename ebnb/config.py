"""Frozen configurations: the thesis' DQN hyperparameters per environment, and input checks.

Every value here is from the thesis' appendices A and B, with the open choices fixed by
docs/protocol.md (epsilon decays per episode on CartPole, per step on Acrobot; a time-limit
truncation is not terminal). Configs are frozen dataclasses so that a config *is* the
identity of a result: `ebnb.store` names outputs by a hash of it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

from ebnb.envs import resolve_env_id
from ebnb.identity import kind

SEED_LIMIT = 2**63  # seeds enter the random streams as int64 (`ebnb.rng`)


def check_seed(name: str, value) -> int:
    """`value` as a seed: an int in [0, 2**63), or a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{name}: each must be an integer in [0, 2**63), got {value!r}")
    return value


def check_positive_int(name: str, value) -> int:
    """`value` as an int >= 1, or a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_number(name: str, value) -> float:
    """`value` as a float (int or float, not bool), or a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def check_device(name: str, value) -> str:
    """A torch device this machine has ('cpu', 'cuda', 'cuda:1', ...), or a ValueError."""
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name}: unknown device {value!r}; allowed: cpu, cuda, cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}: {value!r} is not available on this machine (no CUDA); use cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name}: {value!r} is not supported; allowed: cpu, cuda")
    return str(value)


def placement(device="cpu", arithmetic=None) -> dict:
    """The DQN config's `device` and `arithmetic` for agents trained on `device` (a torch device
    this machine has: `check_device`; its type is the config's) with `arithmetic` (None: the
    fused kernel on the CPU, torch on CUDA); a ValueError naming what is wrong."""
    kind = check_device("device", device).split(":")[0]
    if arithmetic not in (None, "fused", "torch"):
        raise ValueError(f"arithmetic: unknown {arithmetic!r}; allowed: fused, torch")
    if kind == "cuda" and arithmetic == "fused":
        raise ValueError("arithmetic: the fused kernel runs on the CPU only; on cuda use torch")
    return {"device": kind, "arithmetic": arithmetic or ("fused" if kind == "cpu" else "torch")}


def check_fraction(name: str, value) -> float:
    """A pruning fraction strictly between 0 and 1, or a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in the open interval (0, 1), got {value!r}")
    return float(value)


@kind("dqn")
@dataclass(frozen=True)
class DQNConfig:
    """Everything that defines how one DQN agent learns (thesis appendices A and B)."""

    env_id: str
    hidden: tuple[int, ...]  # hidden layer widths of the Q-network (ReLU)
    lr: float  # Adam learning rate
    batch_size: int
    buffer_size: int  # replay capacity, in transitions
    learning_starts: int  # no gradient step before this many transitions
    train_freq: int  # a gradient step whenever the transition count is a multiple of this
    eps_decay: float  # epsilon <- max(eps_floor, epsilon * eps_decay) ...
    eps_decay_per: Literal["episode", "step"]  # ... at the end of each episode / after each step
    solved_return: float  # an episode with at least this return counts towards early stopping
    gamma: float = 0.99
    eps_start: float = 1.0
    eps_floor: float = 0.01
    solved_streak: int = 10  # early stopping after this many solved episodes in a row
    max_episodes: int = 500
    truncation_is_terminal: bool = False  # True: the old Gym behaviour (no bootstrap at time limits)
    # Who does the network arithmetic: "fused" (ebnb.kernel, CPU, the same bits on every CPU) or
    # "torch" (ebnb.qnet + ebnb.optim: the reference, and the CUDA path). Part of a result's
    # identity: the two round differently, so the store never mixes their results.
    arithmetic: Literal["fused", "torch"] = "fused"
    # Where the agents train: "cpu", or "cuda" (torch arithmetic only). Part of a result's identity
    # unless "cpu", its default (docs/exactness.md, "CUDA"): CUDA rounds differently again, and
    # results stored before the field existed keep their keys (`ebnb.identity` leaves defaults out).
    device: Literal["cpu", "cuda"] = "cpu"

    def __post_init__(self):
        if not isinstance(self.hidden, tuple) or not self.hidden:
            raise ValueError(f"hidden must be a non-empty tuple of layer widths, got {self.hidden!r}")
        for width in self.hidden:
            check_positive_int("hidden", width)
        for name in ("lr", "eps_decay", "gamma", "eps_start", "eps_floor", "solved_return"):
            check_number(name, getattr(self, name))
        check_positive_int("solved_streak", self.solved_streak)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("buffer_size", self.buffer_size)
        check_positive_int("train_freq", self.train_freq)
        check_positive_int("max_episodes", self.max_episodes)
        check_positive_int("solved_streak", self.solved_streak)
        if self.learning_starts < self.batch_size:
            raise ValueError(f"learning_starts must be >= batch_size ({self.batch_size}), got {self.learning_starts}")
        if self.arithmetic not in ("fused", "torch"):
            raise ValueError(f"arithmetic must be 'fused' or 'torch', got {self.arithmetic!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda" and self.arithmetic == "fused":
            raise ValueError("device: the fused kernel runs on the CPU only; on cuda use arithmetic 'torch'")
        if self.eps_decay_per not in ("episode", "step"):
            raise ValueError(f"eps_decay_per must be 'episode' or 'step', got {self.eps_decay_per!r}")
        for name in ("lr", "eps_decay", "gamma", "eps_start", "eps_floor"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value}")

    def replace(self, **changes) -> DQNConfig:
        """A copy with some fields changed (validated again)."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(f"{unknown[0]}: not a DQN config field; allowed: {', '.join(names)}")
        return dataclasses.replace(self, **changes)


CARTPOLE = DQNConfig(
    env_id="CartPole-v0",
    hidden=(128, 128),
    lr=0.0025,
    batch_size=32,
    buffer_size=1000,
    learning_starts=200,
    train_freq=4,
    eps_decay=0.95,
    eps_decay_per="episode",
    solved_return=200.0,
)

ACROBOT = DQNConfig(
    env_id="Acrobot-v1",
    hidden=(128,),
    lr=0.001,
    batch_size=64,
    buffer_size=2000,
    learning_starts=1000,
    train_freq=1,
    eps_decay=0.999,
    eps_decay_per="step",
    solved_return=-100.0,
)

THESIS_PRESETS = {CARTPOLE.env_id: CARTPOLE, ACROBOT.env_id: ACROBOT}


def dqn_config(env: str, **overrides) -> DQNConfig:
    """The thesis' DQN config for `env` (short name or gymnasium id), with optional overrides.

    Environments the thesis did not use get CartPole's hyperparameters and the early-stopping
    threshold from their gymnasium spec (`reward_threshold`); pass `solved_return=` where the
    spec has none.
    """
    import gymnasium

    env_id = resolve_env_id(env)
    if env_id in THESIS_PRESETS:
        return THESIS_PRESETS[env_id].replace(**overrides)
    threshold = gymnasium.spec(env_id).reward_threshold
    if threshold is None and "solved_return" not in overrides:
        raise ValueError(
            f"env: {env_id} has no reward_threshold in its gymnasium spec to stop early at; "
            "in Python, pass dqn_config(..., solved_return=<return>)"
        )
    defaults = {"env_id": env_id, "solved_return": threshold}
    return CARTPOLE.replace(**{**defaults, **overrides})


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds from '3', '0-9' or '1,4,7' (mixes like '0-2,7' work too); empty is an error."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise ValueError(f"seeds: cannot read {part!r}; allowed: '3', '0-9' or '1,4,7'")
        low, high = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if high < low:
            raise ValueError(f"seeds: range {part!r} is empty; write low-high with low <= high")
        check_seed("seeds", high)
        seeds.extend(range(low, high + 1))
    if not seeds:
        raise ValueError("seeds: the seed list is empty; allowed: '3', '0-9' or '1,4,7'")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: {text!r} names a seed twice")
    return tuple(seeds)
