"""Adam over stacked parameters that equals K independent `torch.optim.Adam`s.

Each agent owns its step count (Adam's bias correction depends on it) and moves only when it
takes a gradient step of its own: Adam moves parameters even on a zero gradient, so agents
that are not due are left out of the update instead of being fed zeros.

The arithmetic is PyTorch's fused CPU Adam kernel (`torch._fused_adam_`, the kernel behind
`torch.optim.Adam(fused=True)`), one pass over parameters and moments. When every agent
steps and all share a step count (agents trained from scratch together, the common case) it
runs on the stacked tensors; otherwise on per-agent views, each with its own step count.
Either way an agent's result is bitwise the same as alone (see `_aligned`).
"""

from __future__ import annotations

import torch

from ebnb.qnet import Params


class StackedAdam:
    """Adam state (moments, per-agent step counts) for stacked parameters `[K, ...]`."""

    def __init__(self, params: Params, lr: float, betas=(0.9, 0.999), eps=1e-8):
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.steps = torch.zeros(params[0].shape[0])
        self._views = None

    def load(self, exp_avg: Params, exp_avg_sq: Params, steps: torch.Tensor) -> None:
        """Replace the moments and step counts (resuming agents from snapshots)."""
        self.exp_avg, self.exp_avg_sq, self.steps = exp_avg, exp_avg_sq, steps.float()
        self._views = None

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the agents at `index` (compaction); parameters are re-indexed too."""
        for tensors in (self.params, self.exp_avg, self.exp_avg_sq):
            tensors[:] = [t.index_select(0, index) for t in tensors]
        self.steps = self.steps.index_select(0, index)
        self._views = None

    def step(self, grads: Params, agents: torch.Tensor | None = None) -> None:
        """One Adam step for `agents` (indices; None = all) given their gradients `[k, ...]`."""
        if agents is None:
            self.steps += 1
            chosen = range(len(self.steps))
        else:
            self.steps[agents] += 1
            chosen = agents.tolist()
        stacked = agents is None and bool((self.steps == self.steps[0]).all())
        views = self._agent_views()
        lists = ([], [], [], [], [])  # params, grads, exp_avg, exp_avg_sq, steps
        for i, grad in enumerate(grads):
            if stacked and i in self._aligned:
                entries = [(self.params[i], grad, self.exp_avg[i], self.exp_avg_sq[i], self.steps[0])]
            else:
                entries = [(views[0][k][i], grad[j], views[1][k][i], views[2][k][i], views[3][k]) for j, k in enumerate(chosen)]
            for entry in entries:
                for out, item in zip(lists, entry):
                    out.append(item)
        self._fused(*lists)

    @property
    def _aligned(self) -> set[int]:
        """Tensors whose per-agent size is a multiple of 16 elements.

        The fused kernel works in 64-byte chunks and handles a chunk's last `size % vector
        width` elements with scalar code, whose rounding can differ from the vector code's
        (fused multiply-add). With per-agent sizes that are multiples of 16 floats, stacked
        tensors have no such tail, so every agent's numbers are independent of K. Other
        tensors (the output layer's bias) are always stepped agent by agent.
        """
        return {i for i, p in enumerate(self.params) if p[0].numel() % 16 == 0}

    def _agent_views(self):
        """Per-agent views of parameters, moments and step count, built once per compaction."""
        if self._views is None:
            self._views = [
                [[t[k] for t in tensors] for k in range(len(self.steps))]
                for tensors in (self.params, self.exp_avg, self.exp_avg_sq)
            ] + [[self.steps[k] for k in range(len(self.steps))]]
        return self._views

    def _fused(self, params, grads, exp_avg, exp_avg_sq, steps) -> None:
        beta1, beta2 = self.betas
        torch._fused_adam_(
            params, grads, exp_avg, exp_avg_sq, [], steps,
            lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=self.eps,
            amsgrad=False, maximize=False,
        )  # fmt: skip
