"""Agent states as the store keeps them (flat named arrays), their hash, and the masks drawn
from their weights."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ebnb import masks, qnet
from ebnb.agent import AgentState


def state_arrays(prefix: str, state: AgentState) -> dict[str, np.ndarray]:
    """An agent's state as flat arrays named `<prefix>.<field>` (a dense run's snapshots)."""
    return {f"{prefix}.{name}": array for name, array in state.to_arrays().items()}


def state_from(arrays: dict, prefix: str) -> AgentState:
    """The agent state `state_arrays` stored under `prefix` in `arrays`."""
    head = prefix + "."
    return AgentState.from_arrays({k[len(head) :]: v for k, v in arrays.items() if k.startswith(head)})


def state_sha256(state: AgentState) -> str:
    """sha256 of an agent's complete state (`AgentState.to_arrays`: parameters, target, mask,
    Adam moments and step count, replay buffer, epsilon, counters), names, dtypes and shapes
    included. Ticket and EB Exploit results store it (column `state_sha256`) for the final
    network, so byte-identical stored results mean identical trained networks."""
    digest = hashlib.sha256()
    for name, array in sorted(state.to_arrays().items()):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def weights_of(state: AgentState) -> list[torch.Tensor]:
    """An agent's weight matrices as one-agent stacks [1, out, in] (as `ebnb.masks` takes them)."""
    return [torch.from_numpy(np.asarray(w))[None] for w in qnet.weights(state.params)]


def mask_of(state: AgentState, fraction: float) -> list[np.ndarray]:
    """The mask (`ebnb.masks.prune`) of an agent's current weights at P = fraction."""
    return [m[0].numpy() for m in masks.prune(weights_of(state), fraction)]


def draw_masks(drawn: dict[int, dict[float, list]], fractions, agent_ids, weights) -> None:
    """Append to `drawn[agent][P]` the packed flat mask (`ebnb.masks.prune`) of each agent's `weights`."""
    for fraction in fractions:
        flat = masks.flatten(masks.prune(weights, fraction)).numpy()
        for row, agent in enumerate(agent_ids):
            drawn[int(agent)][fraction].append(masks.pack(flat[row]))


def stacked_weights(agents: list[AgentState]) -> list[torch.Tensor]:
    """The agents' weight matrices stacked [K, out, in], one tensor per layer."""
    return [torch.cat(w) for w in zip(*[weights_of(a) for a in agents])]
