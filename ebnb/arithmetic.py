"""Who does a population's network arithmetic: the fused kernel (`ebnb.kernel`: fixed order,
the same bits on every CPU) or torch (`ebnb.qnet` + `ebnb.optim`: the reference, and CUDA),
picked by `DQNConfig.arithmetic`: acting (`greedy_actions`) and the DQN update (`learn_fused`,
`learn_torch`, which `Population._learn` calls for the agents due)."""

from __future__ import annotations

import numpy as np
import torch

from ebnb import kernel, qnet
from ebnb.config import DQNConfig


class NumpyViews:
    """numpy views of groups of CPU tensors, made again only when one of them is replaced
    (compaction, new agents, a new mask): `Tensor.numpy()` costs about a microsecond, and a
    small population's step needed ~30 of them. Holding the tensors keeps their identity
    meaningful. It pickles (in a checkpoint) as an empty cache: unpickled arrays would be
    copies, not views, of the unpickled tensors."""

    def __init__(self):
        self._tensors: tuple = ()
        self._arrays: tuple = ()

    def __reduce__(self):
        return NumpyViews, ()

    def __call__(self, *groups) -> tuple[tuple[np.ndarray, ...], ...]:
        """For each group (an iterable of tensors), the tuple of their numpy views."""
        groups = tuple(tuple(group) for group in groups)
        tensors = tuple(t for group in groups for t in group)
        if len(tensors) != len(self._tensors) or any(a is not b for a, b in zip(tensors, self._tensors)):
            self._tensors, self._arrays = tensors, tuple(t.numpy() for t in tensors)
        views, start = [], 0
        for group in groups:
            views.append(self._arrays[start : start + len(group)])
            start += len(group)
        return tuple(views)


def greedy_actions(cfg: DQNConfig, params: list[torch.Tensor], obs: np.ndarray, views: NumpyViews | None = None):
    """argmax_a Q(obs, a) `[K, N]` of stacked networks for observations `obs: [K, N, obs_dim]`,
    computed by the config's arithmetic (the fused kernel, through `views` if given, or torch)."""
    if cfg.arithmetic == "fused":
        return kernel.greedy_actions((views or NumpyViews())(params)[0], obs)
    x = torch.from_numpy(obs).to(params[0].device, params[0].dtype)
    return qnet.greedy_actions(params, x).cpu().numpy()


def learn_fused(population, positions: np.ndarray) -> None:
    """One update of each agent at batch `positions` by the fused kernel (`ebnb.kernel.learn`)."""
    slots = population.replay.slots(
        population.seeds[positions],
        population.updates[positions],
        population.transitions[positions],
        population.cfg.batch_size,
    )
    optimizer = population.optimizer
    params, target, exp_avg, exp_avg_sq, mask, (steps,), replay = population.learning_views()
    kernel.learn(
        params,
        target,
        exp_avg,
        exp_avg_sq,
        steps,
        mask if population.mask is not None else None,
        dict(zip(population.replay.data, replay)),
        positions,
        slots,
        gamma=population.cfg.gamma,
        lr=optimizer.lr,
        betas=optimizer.betas,
        eps=optimizer.eps,
    )


def learn_torch(population, positions: np.ndarray) -> None:
    """One update of each agent at batch `positions` by torch (`ebnb.qnet` + `ebnb.optim`), in
    chunks of `population.chunk_size` agents."""
    batch = population.replay.sample(
        torch.from_numpy(positions).to(population.device),
        population.seeds[positions],
        population.updates[positions],
        population.transitions[positions],
        population.cfg.batch_size,
    )
    everyone = len(positions) == len(population.ids)
    for start in range(0, len(positions), population.chunk_size):
        rows = slice(start, min(start + population.chunk_size, len(positions)))
        agents = rows if everyone else torch.from_numpy(positions[rows]).to(population.device)
        _learn_chunk(population, agents, {name: value[rows] for name, value in batch.items()})


def _learn_chunk(population, agents: slice | torch.Tensor, batch: dict) -> None:
    """DQN's update for a chunk of agents: consecutive ones (a slice) or any (indices).

    Chunks keep activations cache-sized; each agent's numbers do not depend on the chunk.
    """
    cfg = population.cfg
    with torch.no_grad():
        pick = (lambda t: t[agents]) if isinstance(agents, slice) else (lambda t: t.index_select(0, agents))
        params = [pick(p).detach().requires_grad_(True) for p in population.params]
        next_q = qnet.q_values(
            [pick(t) for t in population.target], batch["next_obs"].transpose(1, 2).to(population.dtype)
        )
        reward, done = (
            batch["reward"].to(population.dtype),
            batch["done"].to(population.dtype),
        )  # gamma in the net's precision
        td_target = reward + cfg.gamma * (1.0 - done) * next_q.max(1).values
    q_values = qnet.q_values(params, batch["obs"].transpose(1, 2).to(population.dtype))
    q_taken = q_values.gather(1, batch["action"][:, None, :])[:, 0]
    loss = (q_taken - td_target).square().mean(1).sum()  # each agent's mean TD loss, summed
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        population.optimizer.step(list(grads), agents)
        if population.mask is not None:
            for w, m in zip(qnet.weights(population.params), population.mask):
                if isinstance(agents, slice):
                    w[agents].mul_(m[agents])
                else:
                    w.index_copy_(0, agents, w.index_select(0, agents) * m.index_select(0, agents))
