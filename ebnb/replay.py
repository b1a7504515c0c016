"""Per-agent circular replay buffers stored as `[K, capacity, ...]` tensors."""

from __future__ import annotations

import numpy as np
import torch

from ebnb import rng

FIELDS = ("obs", "action", "reward", "next_obs", "done")


class StackedReplay:
    """K replay buffers of equal capacity; agent k's transition number t goes to slot t % capacity."""

    def __init__(self, n_agents: int, capacity: int, obs_dim: int, device="cpu"):
        self.capacity = capacity
        shapes = {"obs": (obs_dim,), "action": (), "reward": (), "next_obs": (obs_dim,), "done": ()}
        dtypes = {"action": torch.int64}
        self.data = {
            name: torch.zeros(n_agents, capacity, *shapes[name], dtype=dtypes.get(name, torch.float32), device=device)
            for name in FIELDS
        }

    def add(self, transitions: np.ndarray, **values: np.ndarray) -> None:
        """Store one transition per agent; `transitions` is each agent's count *before* this one."""
        rows, slots = np.arange(len(transitions)), transitions % self.capacity
        for name, value in values.items():
            data = self.data[name]
            if data.device.type == "cpu":  # numpy indexing: a few us instead of torch's tens
                data.numpy()[rows, slots] = value
            else:
                data[torch.from_numpy(rows), torch.from_numpy(slots)] = torch.from_numpy(value).to(
                    data.device, data.dtype
                )

    def slots(self, seeds, updates, transitions, batch_size: int) -> np.ndarray:
        """Minibatch slots `[k, batch_size]`, uniform over each agent's filled slots, drawn
        from the agent's REPLAY stream at counters `update * batch_size + j`."""
        counters = np.asarray(updates)[:, None] * batch_size + np.arange(batch_size)
        filled = np.minimum(np.asarray(transitions), self.capacity)[:, None]
        return rng.integers(np.asarray(seeds)[:, None], rng.Stream.REPLAY, counters, filled)

    def sample(self, agents: torch.Tensor, seeds, updates, transitions, batch_size: int) -> dict:
        """A minibatch `[k, batch_size, ...]` for each of `agents`, at their `slots`."""
        slots = self.slots(seeds, updates, transitions, batch_size)
        flat = torch.from_numpy(slots).to(agents.device) + agents[:, None] * self.capacity
        flat = flat.reshape(-1)
        return {
            name: t.reshape(-1, *t.shape[2:]).index_select(0, flat).reshape(len(agents), batch_size, *t.shape[2:])
            for name, t in self.data.items()
        }

    def select(self, rows: np.ndarray) -> None:
        """Keep only the agents at `rows` (compaction)."""
        index = torch.from_numpy(rows)
        self.data = {name: t.index_select(0, index.to(t.device)) for name, t in self.data.items()}

    def extend(self, other: StackedReplay) -> None:
        """Append the buffers of `other` after this one's."""
        self.data = {name: torch.cat([t, other.data[name]]) for name, t in self.data.items()}
