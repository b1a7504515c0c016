"""One agent's complete learning state: enough to continue its run exactly where it stopped."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from ebnb import envs, qnet
from ebnb.config import DQNConfig
from ebnb.replay import FIELDS


@dataclass
class AgentState:
    """Parameters, target network, Adam state, replay buffer, epsilon and counters of one agent.

    Arrays carry no agent axis. `transitions`, `updates` and `episodes` are also the counters
    of the agent's random streams (exploration, replay indices, env resets), so an agent
    restored from a snapshot continues the same streams it would have used uninterrupted.
    """

    seed: int
    params: list[np.ndarray]  # [W1, b1, ...]; W: [out, in], b: [out, 1] (nn.Linear's layout)
    target: list[np.ndarray]
    exp_avg: list[np.ndarray]
    exp_avg_sq: list[np.ndarray]
    adam_steps: int
    replay: dict[str, np.ndarray]  # FIELDS -> [capacity, ...]
    epsilon: float
    transitions: int = 0
    updates: int = 0
    episodes: int = 0
    mask: list[np.ndarray] | None = None  # bool, one per weight matrix; None = dense

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat name -> array form, for `np.savez`."""
        arrays = {
            "seed": np.int64(self.seed),
            "adam_steps": np.int64(self.adam_steps),
            "epsilon": np.float64(self.epsilon),
            "transitions": np.int64(self.transitions),
            "updates": np.int64(self.updates),
            "episodes": np.int64(self.episodes),
        }
        for group in ("params", "target", "exp_avg", "exp_avg_sq", "mask"):
            for i, array in enumerate(getattr(self, group) or []):
                arrays[f"{group}.{i}"] = array
        arrays.update({f"replay.{name}": array for name, array in self.replay.items()})
        return {name: np.asarray(array) for name, array in arrays.items()}

    @classmethod
    def from_arrays(cls, arrays) -> AgentState:
        """Inverse of `to_arrays`."""

        def group(name):
            keys = sorted((k for k in arrays if k.startswith(name + ".")), key=lambda k: int(k.split(".")[1]))
            return [np.asarray(arrays[k]) for k in keys]

        return cls(
            seed=int(arrays["seed"]),
            params=group("params"),
            target=group("target"),
            exp_avg=group("exp_avg"),
            exp_avg_sq=group("exp_avg_sq"),
            adam_steps=int(arrays["adam_steps"]),
            replay={name: np.asarray(arrays[f"replay.{name}"]) for name in FIELDS},
            epsilon=float(arrays["epsilon"]),
            transitions=int(arrays["transitions"]),
            updates=int(arrays["updates"]),
            episodes=int(arrays["episodes"]),
            mask=group("mask") or None,
        )

    def replace(self, **changes) -> AgentState:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def pruned(self, mask: list[np.ndarray]) -> AgentState:
        """The same agent with `mask` applied to online and target weights (m * theta)."""

        def apply(params):
            out = list(params)
            for layer, keep in enumerate(mask):
                out[2 * layer] = params[2 * layer] * keep
            return out

        return self.replace(params=apply(self.params), target=apply(self.target), mask=list(mask))


@functools.cache
def env_dims(env_id: str) -> tuple[int, int]:
    """(observation size, number of actions) of an environment."""
    env = envs.make(env_id, 1, 0)
    return int(np.prod(env.single_observation_space.shape)), int(env.single_action_space.n)


def fresh_agent(cfg: DQNConfig, seed: int, dtype=np.float32) -> AgentState:
    """A new agent: nn.Linear-style init from `seed`, zero Adam state, empty replay, eps_start.

    `dtype` is the precision of its network and Adam state (float64 serves to compare with
    a reference implementation beyond float32 rounding); the init is drawn in float32.
    """
    obs_dim, n_actions = env_dims(cfg.env_id)
    sizes = qnet.layer_sizes(obs_dim, cfg.hidden, n_actions)
    params = [p[0].numpy().astype(dtype) for p in qnet.init_params(sizes, seed)]
    shapes = {"obs": (obs_dim,), "next_obs": (obs_dim,)}
    replay = {
        name: np.zeros((cfg.buffer_size, *shapes.get(name, ())), dtype=np.int64 if name == "action" else np.float32)
        for name in FIELDS
    }
    return AgentState(
        seed=int(seed),
        params=params,
        target=[p.copy() for p in params],
        exp_avg=[np.zeros_like(p) for p in params],
        exp_avg_sq=[np.zeros_like(p) for p in params],
        adam_steps=0,
        replay=replay,
        epsilon=cfg.eps_start,
    )
