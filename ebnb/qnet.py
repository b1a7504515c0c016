"""Q-networks of many agents at once: an MLP whose every tensor has a leading agent axis.

Parameters are a flat list `[W1, b1, W2, b2, ...]` in `torch.nn.Linear`'s layout with an
agent axis in front: `W_l: [K, out_l, in_l]`, `b_l: [K, out_l, 1]`. A layer is one
`torch.baddbmm` for all K agents. Minibatches run feature-major (`[K, features, batch]`),
which is markedly faster for these thin layers than batch-major; acting (one observation per
agent) runs batch-major on transposed views. Slices of a bmm are bitwise independent of K on
CPU, which is what makes an agent's numbers the same alone or in a population.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

Params = list[torch.Tensor]


def layer_sizes(obs_dim: int, hidden: Sequence[int], n_actions: int) -> list[int]:
    """[obs_dim, *hidden, n_actions]."""
    return [obs_dim, *hidden, n_actions]


def init_params(sizes: Sequence[int], seed: int) -> Params:
    """One agent's parameters (leading axis of 1), drawn exactly as `torch.nn.Linear` does.

    The draws come from a generator seeded with `seed` in nn.Linear's order (weight then bias,
    layer by layer), so `torch.manual_seed(seed)` followed by building the same
    `nn.Sequential` of `nn.Linear` layers gives the same numbers.
    """
    generator = torch.Generator().manual_seed(int(seed))
    params: Params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        weight = torch.empty(fan_out, fan_in)
        torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(fan_in)
        bias = torch.empty(fan_out, 1).uniform_(-bound, bound, generator=generator)
        params += [weight[None], bias[None]]
    return params


def q_values(params: Params, x: torch.Tensor) -> torch.Tensor:
    """Q-values `[K, n_actions, N]` of a minibatch `x: [K, obs_dim, N]` (feature-major)."""
    n_layers = len(params) // 2
    for layer in range(n_layers):
        x = torch.baddbmm(params[2 * layer + 1], params[2 * layer], x)
        if layer < n_layers - 1:
            x = torch.relu(x)
    return x


def greedy_actions(params: Params, obs: torch.Tensor) -> torch.Tensor:
    """argmax_a Q(obs, a) `[K, N]` for observations `obs: [K, N, obs_dim]` (batch-major)."""
    n_layers = len(params) // 2
    x = obs
    for layer in range(n_layers):
        x = torch.baddbmm(params[2 * layer + 1].transpose(1, 2), x, params[2 * layer].transpose(1, 2))
        if layer < n_layers - 1:
            x = torch.relu(x)
    return x.argmax(2)


def weights(params: Params) -> Params:
    """The prunable tensors: weight matrices only (biases are never pruned)."""
    return params[0::2]


def stack(per_agent: Sequence[Params]) -> Params:
    """Concatenate agents' parameter lists along the agent axis."""
    return [torch.cat(tensors) for tensors in zip(*per_agent)]
