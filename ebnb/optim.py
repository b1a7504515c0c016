"""Adam over stacked parameters that equals K independent `torch.optim.Adam`s.

Each agent owns its step count (Adam's bias correction depends on it) and moves only when it
takes a gradient step of its own: Adam moves parameters even on a zero gradient, so agents
that are not due are left out of the update instead of being fed zeros.

The arithmetic is PyTorch's fused CPU Adam kernel (`torch._fused_adam_`, the kernel behind
`torch.optim.Adam(fused=True)`), one pass over parameters and moments. When a run of
consecutive agents steps together and shares a step count (agents trained from scratch
together, the common case) it runs on slices of the stacked tensors; otherwise on gathered
per-agent rows, each with its own step count. Either way an agent's result is bitwise the
same as alone (see ALIGN).
"""

from __future__ import annotations

import numpy as np
import torch

from ebnb.qnet import Params

# The fused kernel works in 64-byte chunks and handles a chunk's last `size % vector width`
# elements with scalar code, whose rounding can differ from the vector code's (fused
# multiply-add). With every agent's slice a multiple of 16 floats, stacked tensors have no
# such tail, so an agent's numbers do not depend on K. Thinner tensors (the output bias) are
# stepped through zero-padded copies.
ALIGN = 16


def _pad(tensor: torch.Tensor) -> torch.Tensor:
    """`[k, ...]` flattened per agent and zero-padded to a multiple of ALIGN elements."""
    flat = tensor.reshape(len(tensor), -1)
    return torch.nn.functional.pad(flat, (0, -flat.shape[1] % ALIGN))


class StackedAdam:
    """Adam state (moments, per-agent step counts) for stacked parameters `[K, ...]`."""

    def __init__(self, params: Params, lr: float, betas=(0.9, 0.999), eps=1e-8):
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.steps = torch.zeros(params[0].shape[0])
        self._aligned = [p[0].numel() % ALIGN == 0 for p in params]

    def load(self, exp_avg: Params, exp_avg_sq: Params, steps: torch.Tensor) -> None:
        """Replace the moments and step counts (resuming agents from snapshots)."""
        self.exp_avg, self.exp_avg_sq, self.steps = exp_avg, exp_avg_sq, steps.float()

    def select(self, rows: np.ndarray) -> None:
        """Keep only the agents at `rows` (compaction); parameters are re-indexed too."""
        index = torch.from_numpy(rows).to(self.params[0].device)
        for tensors in (self.params, self.exp_avg, self.exp_avg_sq):
            tensors[:] = [t.index_select(0, index) for t in tensors]
        self.steps = self.steps.index_select(0, index)

    def extend(self, other: StackedAdam) -> None:
        """Append the agents of `other` (parameters, moments, step counts) after this one's."""
        for tensors, more in (
            (self.params, other.params),
            (self.exp_avg, other.exp_avg),
            (self.exp_avg_sq, other.exp_avg_sq),
        ):
            tensors[:] = [torch.cat([t, m]) for t, m in zip(tensors, more, strict=True)]
        self.steps = torch.cat([self.steps, other.steps])

    def step(self, grads: Params, agents: slice | torch.Tensor) -> None:
        """One Adam step for `agents` (a slice of consecutive agents, or indices), given
        their gradients `[k, ...]`."""
        self.steps[agents] += 1
        consecutive = isinstance(agents, slice)
        steps = self.steps[agents]
        shared = consecutive and bool((steps == steps[0]).all())
        step_of = [steps[0]] if shared else steps.unbind(0)
        lists = ([], [], [], [], [])  # params, grads, exp_avg, exp_avg_sq, steps
        write_back = []
        for i, grad in enumerate(grads):
            originals = [self.params[i], self.exp_avg[i], self.exp_avg_sq[i]]
            state = [t[agents] if consecutive else t.index_select(0, agents) for t in originals]
            state.insert(1, grad)
            if not self._aligned[i]:
                state = [_pad(t) for t in state]
            if not consecutive or not self._aligned[i]:
                write_back.append((originals, [state[0], state[2], state[3]]))
            rows = [state] if shared else zip(*(t.unbind(0) for t in state))
            for row, step in zip(rows, step_of):
                for out, item in zip(lists, [*row, step]):
                    out.append(item)
        if shared:
            self._fused(*lists)
        else:
            # One tensor per agent: the CPU kernel opens a parallel region per tensor, and
            # with another process on the cores each region's join can wait a scheduler
            # tick (measured: 2.8 s instead of ~10 ms per call). One thread does not change
            # the arithmetic (elementwise, in fixed 64-byte chunks).
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                self._fused(*lists)
            finally:
                torch.set_num_threads(threads)
        for originals, updated in write_back:
            for original, new in zip(originals, updated):
                new = new.reshape(len(new), -1)[:, : original[0].numel()].reshape(-1, *original.shape[1:])
                if consecutive:
                    original[agents] = new
                else:
                    original.index_copy_(0, agents, new)

    def _fused(self, params, grads, exp_avg, exp_avg_sq, steps) -> None:
        beta1, beta2 = self.betas
        torch._fused_adam_(
            params,
            grads,
            exp_avg,
            exp_avg_sq,
            [],
            steps,
            lr=self.lr,
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=self.eps,
            amsgrad=False,
            maximize=False,
        )
