"""Controls for a ticket: sparse networks like the L1 ticket in every way but one.

A ticket is an L1 mask m (from the dense run's theta_e, fraction P) applied to a start state:
theta_0 with a fresh agent (retrain) or the dense run at episode e (finetune). Each control
changes one thing (Vischer, Lange & Sprekeler 2022 use the first three on CartPole and Acrobot):

- ``random_mask``: the same number of weights pruned, at uniformly random positions;
- ``layer_shuffled``: m shuffled within each layer, so every layer keeps its sparsity;
- ``reinit``: m applied to a fresh theta_0 drawn from another seed (retrain only);
- ``permuted_weights``: m applied to theta_0, the surviving values then shuffled among the
  surviving positions of their layer (retrain only).

The randomness of a control comes from its agent's own stream (`ebnb.rng.Stream.CONTROL`),
keyed by the control, P and the prune episode, so a control is a pure function of its unit.
"""

from __future__ import annotations

import numpy as np
import torch

from ebnb import masks, qnet, rng
from ebnb.agent import AgentState

# control -> the ticket modes it applies to
CONTROLS = {
    "random_mask": ("retrain", "finetune"),
    "layer_shuffled": ("retrain", "finetune"),
    "reinit": ("retrain",),
    "permuted_weights": ("retrain",),
}


def check_control(control: str, mode: str) -> None:
    """ValueError unless `control` is a control that applies to tickets of `mode`."""
    if control not in CONTROLS:
        raise ValueError(f"controls: unknown {control!r}; allowed: {', '.join(CONTROLS)}")
    if mode not in CONTROLS[control]:
        raise ValueError(f"controls: {control!r} applies to {' and '.join(CONTROLS[control])} tickets, not {mode}")


def _key(seed: int, control: str, fraction: float, prune_episode: int) -> int:
    """A 63-bit seed for one control of one ticket, from the agent's CONTROL stream."""
    counter = (list(CONTROLS).index(control) * 1_000 + round(fraction * 1_000)) * 1_000_000 + prune_episode
    return int(rng.seed63(seed, rng.Stream.CONTROL, counter))


def _permutation(n: int, key: int, part: int) -> torch.Tensor:
    """A uniformly random permutation of range(n), a function of (key, part) alone."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(rng.seed63(key, rng.Stream.CONTROL, part))))


def layer_shuffled(mask: list[np.ndarray], key: int) -> list[np.ndarray]:
    """`mask` with each layer's entries permuted within the layer (its sparsity kept)."""
    return [m.reshape(-1)[_permutation(m.size, key, layer).numpy()].reshape(m.shape) for layer, m in enumerate(mask)]


def permuted_kept(params: list[np.ndarray], mask: list[np.ndarray], key: int) -> list[np.ndarray]:
    """`params` with each weight matrix's values at kept positions permuted among those
    positions (biases and pruned positions unchanged)."""
    out = [p.copy() for p in params]
    for layer, keep in enumerate(mask):
        weight = out[2 * layer]
        kept = np.flatnonzero(keep)
        weight.reshape(-1)[kept] = weight.reshape(-1)[kept[_permutation(kept.size, key, layer).numpy()]]
    return out


def reinitialised(state: AgentState, key: int) -> AgentState:
    """`state` (a fresh agent) with online and target network drawn from another init seed;
    its random streams stay those of its own seed."""
    weights = qnet.weights(state.params)
    sizes = [w.shape[1] for w in weights] + [weights[-1].shape[0]]
    seed = int(rng.seed32(key, rng.Stream.CONTROL, 0))
    params = [p[0].numpy().astype(state.params[0].dtype) for p in qnet.init_params(sizes, seed)]
    return state.replace(params=params, target=[p.copy() for p in params])


def control_start(
    control: str, start: AgentState, l1_mask: list[np.ndarray], fraction: float, prune_episode: int
) -> AgentState:
    """The start state of `control` for the ticket `start.pruned(l1_mask)` drawn at
    (start.seed, `fraction`, `prune_episode`)."""
    key = _key(start.seed, control, fraction, prune_episode)
    if control == "random_mask":
        shapes = [(1, *m.shape) for m in l1_mask]
        drawn = masks.random_masks(shapes, fraction, [int(rng.seed63(key, rng.Stream.CONTROL, 0))])
        return start.pruned([m[0].numpy() for m in drawn])
    if control == "layer_shuffled":
        return start.pruned(layer_shuffled(l1_mask, key))
    if control == "reinit":
        return reinitialised(start, key).pruned(l1_mask)
    if control == "permuted_weights":
        params = permuted_kept(start.params, l1_mask, key)
        return start.replace(params=params, target=[p.copy() for p in params]).pruned(l1_mask)
    raise ValueError(f"controls: unknown {control!r}; allowed: {', '.join(CONTROLS)}")
