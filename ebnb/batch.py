"""A population's per-agent state as structs of arrays: every field holds one row per agent on
its first axis, and admitting, retiring and compacting agents are one operation over all fields.

`LiveAgents` holds the training agents in batch order (compacted as they stop): counters,
epsilon, observations, and the objects that hold their stacked tensors (networks and Adam
moments in `StackedAdam`, replay buffers in `StackedReplay`, one sub-env each in the env).
`AgentRecords` holds what stays per agent id, live or stopped (only ever extended). A field
declared on either class follows every `select` and `extend` (tests/test_batch.py): there is
no second list of names to keep aligned with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from ebnb import envs, qnet
from ebnb.agent import AgentState, env_dims
from ebnb.config import DQNConfig
from ebnb.optim import StackedAdam
from ebnb.replay import FIELDS, StackedReplay


class AgentArrays:
    """A struct of arrays: the base of dataclasses whose first field is a numpy array with one
    entry per agent.

    A field is a numpy array or torch tensor with the agent axis first, a list of them (one per
    layer), None (absent for every agent: no masks), or an object that selects and extends its
    own rows in place (`select(rows)`, `extend(other)`: the env, `StackedAdam`, `StackedReplay`).
    An env holds at least one sub-env, so objects keep their last rows when no row is kept; the
    next `extend` of the emptied struct replaces every field by the other struct's.
    """

    def __len__(self) -> int:
        return len(getattr(self, fields(self)[0].name))

    def select(self, rows: np.ndarray) -> None:
        """Keep only the agents at `rows` (positions, in that order), in every field."""
        rows = np.asarray(rows, dtype=np.int64)
        for field in fields(self):
            setattr(self, field.name, _select(getattr(self, field.name), rows))

    def extend(self, other: AgentArrays) -> None:
        """Append the agents of `other` (the same struct) after this one's, in every field."""
        if type(other) is not type(self):
            raise TypeError(f"other: expected a {type(self).__name__}, got {type(other).__name__}")
        empty = len(self) == 0
        for field in fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            setattr(self, field.name, theirs if empty else _concat(field.name, mine, theirs))


def _select(value, rows: np.ndarray):
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return value[rows]
    if isinstance(value, torch.Tensor):
        return value.index_select(0, torch.from_numpy(rows).to(value.device))
    if isinstance(value, list):
        return [_select(v, rows) for v in value]
    if len(rows):
        value.select(rows)
    return value


def _concat(name: str, mine, theirs):
    if mine is None or theirs is None:
        if mine is not theirs:
            raise ValueError(f"{name}: present in one struct and None in the other")
        return None
    if isinstance(mine, np.ndarray):
        return np.concatenate([mine, theirs])
    if isinstance(mine, torch.Tensor):
        return torch.cat([mine, theirs])
    if isinstance(mine, list):
        return [_concat(name, a, b) for a, b in zip(mine, theirs, strict=True)]
    mine.extend(theirs)
    return mine


@dataclass(eq=False, repr=False)
class LiveAgents(AgentArrays):
    """The training agents of a population, in batch order."""

    ids: np.ndarray  # agent ids: positions in the list the population was built from
    seeds: np.ndarray
    epsilon: np.ndarray
    transitions: np.ndarray
    updates: np.ndarray
    episodes: np.ndarray
    episode_limit: np.ndarray  # the episode count at which the agent stops (its start + max_episodes)
    streak: np.ndarray  # solved episodes in a row, counted from the start of this run
    episode_return: np.ndarray  # of the episode in progress
    episode_length: np.ndarray
    episode_epsilon: np.ndarray  # epsilon at the start of the episode in progress
    stop_requested: np.ndarray
    pruned: np.ndarray  # has a mask (the others' masks are all ones)
    obs: np.ndarray
    optimizer: StackedAdam  # the online networks (`optimizer.params`), Adam moments and step counts
    target: list[torch.Tensor]
    mask: list[torch.Tensor] | None  # one per weight matrix; None while no agent is pruned
    replay: StackedReplay
    env: Any  # one sub-env per agent (`ebnb.envs.make`)

    @classmethod
    def from_states(
        cls, cfg: DQNConfig, agents: Sequence[AgentState], max_episodes: int, device: torch.device
    ) -> LiveAgents:
        """Agents starting from `agents`, each for up to `max_episodes` episodes, on `device`."""
        n = len(agents)
        episodes = np.array([a.episodes for a in agents], dtype=np.int64)
        seeds = np.array([a.seed for a in agents], dtype=np.int64)
        epsilon = np.array([a.epsilon for a in agents], dtype=np.float64)

        def stacked(field):
            return [
                t.to(device)
                for t in qnet.stack([[torch.from_numpy(np.array(a[None])) for a in getattr(s, field)] for s in agents])
            ]

        optimizer = StackedAdam(stacked("params"), cfg.lr)
        optimizer.load(
            stacked("exp_avg"), stacked("exp_avg_sq"), torch.tensor([a.adam_steps for a in agents], device=device)
        )
        mask = None
        if any(a.mask is not None for a in agents):
            mask = [
                torch.stack(
                    [
                        torch.as_tensor(a.mask[layer])
                        if a.mask is not None
                        else torch.ones(w.shape[1:], dtype=torch.bool)
                        for a in agents
                    ]
                ).to(device, optimizer.params[0].dtype)
                for layer, w in enumerate(qnet.weights(optimizer.params))
            ]
        replay = StackedReplay(n, cfg.buffer_size, env_dims(cfg.env_id)[0], device)
        for name in FIELDS:
            replay.data[name].copy_(torch.from_numpy(np.stack([a.replay[name] for a in agents])))
        env = envs.make(cfg.env_id, n, seeds.tolist(), start_episodes=episodes.tolist())
        return cls(
            ids=np.arange(n),
            seeds=seeds,
            epsilon=epsilon,
            transitions=np.array([a.transitions for a in agents], dtype=np.int64),
            updates=np.array([a.updates for a in agents], dtype=np.int64),
            episodes=episodes,
            episode_limit=episodes + max_episodes,
            streak=np.zeros(n, dtype=np.int64),
            episode_return=np.zeros(n),
            episode_length=np.zeros(n, dtype=np.int64),
            episode_epsilon=epsilon.copy(),
            stop_requested=np.zeros(n, dtype=bool),
            pruned=np.array([a.mask is not None for a in agents]),
            obs=env.reset()[0],
            optimizer=optimizer,
            target=stacked("target"),
            mask=mask,
            replay=replay,
            env=env,
        )

    def state_at(self, position: int) -> AgentState:
        """The full state of the agent at batch `position` (copies)."""

        def row(tensors):
            return [t[position].detach().cpu().numpy().copy() for t in tensors]

        optimizer = self.optimizer
        return AgentState(
            seed=int(self.seeds[position]),
            params=row(optimizer.params),
            target=row(self.target),
            exp_avg=row(optimizer.exp_avg),
            exp_avg_sq=row(optimizer.exp_avg_sq),
            adam_steps=int(optimizer.steps[position]),
            replay={name: t[position].cpu().numpy().copy() for name, t in self.replay.data.items()},
            epsilon=float(self.epsilon[position]),
            transitions=int(self.transitions[position]),
            updates=int(self.updates[position]),
            episodes=int(self.episodes[position]),
            mask=[m[position].cpu().numpy() > 0.5 for m in self.mask] if self.pruned[position] else None,
        )


@dataclass(eq=False, repr=False)
class AgentRecords(AgentArrays):
    """What a population records per agent id, live or stopped."""

    seed: np.ndarray
    converged_episode: np.ndarray  # the episode that completed the first solved streak; -1: none yet
    episodes_run: np.ndarray  # episodes run in this population (set when the agent stops)
    stop_reason: np.ndarray  # str objects; "" while live
    final: np.ndarray  # AgentState objects (the state at the stop), None while live or once released

    @classmethod
    def fresh(cls, seeds: np.ndarray) -> AgentRecords:
        """Records of agents with `seeds` that have not run yet."""
        n = len(seeds)
        stop_reason, final = np.empty(n, dtype=object), np.empty(n, dtype=object)
        stop_reason[:] = ""
        return cls(seeds.copy(), np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64), stop_reason, final)


_RENAMED = {"stop_requested": "_stop_requested"}  # a live field's key in a checkpoint, where not its name


def to_checkpoint(live: LiveAgents, records: AgentRecords) -> dict:
    """The per-agent fields one key each, for a checkpoint (`Population.state_dict`): a live
    field by its name, a record by "_" + its name (the keys they had as a population's own
    attributes, before this module: checkpoints of either age load with `from_checkpoint`)."""
    return {
        **{_RENAMED.get(f.name, f.name): getattr(live, f.name) for f in fields(live)},
        **{f"_{f.name}": getattr(records, f.name) for f in fields(records)},
    }


def from_checkpoint(state: dict) -> tuple[LiveAgents, AgentRecords]:
    """The structs of a checkpoint's per-agent keys (`to_checkpoint`), which are taken out of `state`."""
    state.pop("params", None)  # the online networks (`optimizer.params`), saved twice before this module
    live = LiveAgents(**{f.name: state.pop(_RENAMED.get(f.name, f.name)) for f in fields(LiveAgents)})
    records = AgentRecords(**{f.name: state.pop(f"_{f.name}") for f in fields(AgentRecords)})
    records.stop_reason, records.final = (_objects(records.stop_reason), _objects(records.final))  # lists before
    return live, records


def _objects(values) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array
