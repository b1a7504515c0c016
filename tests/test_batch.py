"""The structs of arrays of `ebnb.batch`: every field, of every kind, follows admitting
(`extend`) and compaction (`select`) row for row."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pytest
import torch

from ebnb import masks
from ebnb.agent import fresh_agent
from ebnb.batch import AgentArrays, AgentRecords, LiveAgents
from ebnb.config import CARTPOLE


@dataclass(eq=False)
class Inner(AgentArrays):
    label: np.ndarray


@dataclass(eq=False)
class Rows(AgentArrays):
    """One field of each kind a struct holds, row k of each carrying the label k."""

    label: np.ndarray
    tensor: torch.Tensor
    layers: list[torch.Tensor]
    absent: list[torch.Tensor] | None
    inner: Inner  # an object that selects and extends itself


def rows(labels, absent=None) -> Rows:
    labels = np.asarray(labels, dtype=np.int64)
    t = torch.from_numpy(labels)
    return Rows(
        labels.copy(), t[:, None].repeat(1, 3), [t[:, None, None].repeat(1, 2, 2), t.clone()], absent, Inner(labels)
    )


def labels(struct: Rows) -> dict[str, list]:
    """Each field's rows as the label they carry (a row whose entries disagree: None)."""

    def per_row(value):
        flat = value.reshape(len(value), -1)
        return [int(row[0]) if (row == row[0]).all() else None for row in flat]

    return {
        "label": per_row(struct.label),
        "tensor": per_row(struct.tensor),
        "layer.0": per_row(struct.layers[0]),
        "layer.1": per_row(struct.layers[1]),
        "inner": per_row(struct.inner.label),
    }


def assert_rows(struct: Rows, expected: list[int]) -> None:
    assert labels(struct) == dict.fromkeys(labels(struct), expected)
    assert len(struct) == len(expected) and struct.absent is None


def test_every_kind_of_field_follows_extend_and_select():
    struct = rows([0, 1, 2])
    struct.extend(rows([3, 4]))
    assert_rows(struct, [0, 1, 2, 3, 4])
    struct.select(np.array([4, 0, 2]))
    assert_rows(struct, [4, 0, 2])
    struct.extend(rows([5]))
    assert_rows(struct, [4, 0, 2, 5])
    struct.select(np.array([], dtype=np.int64))  # every agent stopped
    assert len(struct) == 0 and len(struct.inner) == 4  # an object keeps its last rows...
    struct.extend(rows([6, 7]))
    assert_rows(struct, [6, 7])  # ...until the next agents replace them


def test_a_field_present_on_one_side_only_or_another_struct_is_refused():
    with pytest.raises(ValueError, match="absent: present in one struct and None in the other"):
        rows([0]).extend(rows([1], absent=[torch.ones(1, 2)]))
    with pytest.raises(TypeError, match="other: expected a Rows, got Inner"):
        rows([0]).extend(Inner(np.array([1])))


TRANSIENT = {"prev_done"}  # gymnasium CartPole's autoreset flags: ours rewrites them at every step's start


def fingerprints(value, n: int) -> list[tuple]:
    """Row k of everything per-agent in `value` (arrays, tensors, lists and dicts of them, and
    the ones with n rows inside an object: the env's, `StackedAdam`'s, `StackedReplay`'s)."""
    if value is None:
        return [()] * n
    if isinstance(value, np.ndarray | torch.Tensor):
        assert len(value) == n
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        return [(repr(array[k]) if array.dtype == object else array[k].tobytes(),) for k in range(n)]
    if isinstance(value, list | dict):
        parts = [fingerprints(v, n) for v in (value.values() if isinstance(value, dict) else value)]
        return [sum((part[k] for part in parts), ()) for k in range(n)]
    inside = [v for name, v in vars(value).items() if name not in TRANSIENT and _stacked(v, n)]
    assert inside, f"{type(value).__name__}: no per-agent arrays found"
    return fingerprints(inside, n)


def _stacked(value, n: int) -> bool:
    """An array with n rows, or a non-empty list or dict of arrays (tensors: the stacked layers)."""
    if isinstance(value, np.ndarray | torch.Tensor):
        return value.ndim > 0 and len(value) == n
    items = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
    return bool(items) and all(isinstance(item, torch.Tensor) for item in items)


def by_field(struct: AgentArrays) -> dict[str, list[tuple]]:
    return {f.name: fingerprints(getattr(struct, f.name), len(struct)) for f in fields(struct)}


def made_distinct(struct: AgentArrays) -> AgentArrays:
    """`struct` with every numpy field different from row to row (counters + k, flags flipped
    on every other row), so that a field whose rows moved out of order is seen."""
    for field in fields(struct):
        value = getattr(struct, field.name)
        if isinstance(value, np.ndarray) and value.dtype == bool:
            value[::2] = ~value[::2]
        elif isinstance(value, np.ndarray) and value.dtype != object:
            value += np.arange(len(value)).reshape(-1, *[1] * (value.ndim - 1)).astype(value.dtype)
    return struct


def live_agents(seeds) -> LiveAgents:
    """Agents with their own seeds, networks and replay contents, the first one pruned."""
    agents = [fresh_agent(CARTPOLE, seed) for seed in seeds]
    agents = [a.replace(replay={name: r + k for name, r in a.replay.items()}) for k, a in enumerate(agents)]
    shapes = [(1, *w.shape) for w in agents[0].params[0::2]]
    agents[0] = agents[0].pruned([m[0].numpy() for m in masks.random_masks(shapes, 0.5, [seeds[0]])])
    return made_distinct(LiveAgents.from_states(CARTPOLE, agents, 10, torch.device("cpu")))


def records(seeds) -> AgentRecords:
    made = made_distinct(AgentRecords.fresh(np.array(seeds)))
    made.stop_reason[:] = [f"reason {seed}" for seed in seeds]
    made.final[0] = fresh_agent(CARTPOLE, seeds[0])
    return made


@pytest.mark.parametrize("make", [live_agents, records], ids=["LiveAgents", "AgentRecords"])
def test_every_declared_field_follows_admit_and_compaction(make):
    """Each field declared on `LiveAgents` or `AgentRecords`, and every per-agent array inside
    one (the env's, the optimizer's, the replay's), follows `extend` and `select`."""
    struct, other = make([10, 11, 12]), make([20, 21])
    before = {name: rows + by_field(other)[name] for name, rows in by_field(struct).items()}
    assert all(len(set(rows)) > 1 for rows in before.values())
    struct.extend(other)
    assert by_field(struct) == before
    keep = [3, 0, 2]
    struct.select(np.array(keep))
    assert by_field(struct) == {name: [rows[k] for k in keep] for name, rows in before.items()}
