"""The fused CPU kernel: DQN's network arithmetic in a fixed order, the same bits on every CPU.

This is the CPU twin of `ebnb.qnet` + `ebnb.optim` (the torch reference, also the CUDA path).
BLAS and oneDNN kernels pick their summation order by instruction set, and RL's feedback
loop turns a last-bit difference into different actions within a few thousand steps; so
results made with them belong to the CPU that made them. Here every sum is written out:

- compiled by numba with fast-math off, so LLVM may neither reassociate a sum nor contract
  a multiply and an add into an FMA;
- every sum runs sequentially over its index from +0.0 (`_accumulate`, `_dots`); only
  independent sums sit side by side in the innermost loop, which vectorises freely without
  changing any single sum, whatever the vector width; zero terms are skipped, which changes
  no bit (a sum that starts at +0.0 never becomes -0.0), except where adding them all pays:
  a layer with at most `THIN` inputs (its forward pass, padded with zero terms, and its
  weight and bias gradients) and the gradient below a layer with at most `FEW` outputs (the
  Q-value head): the same bits for finite numbers (only 0 * inf, a diverged run's, would
  differ from skipping);
- transposes move 8 x 8 tiles through vector registers (`layers._transpose`): data only;
- ReLU and the gradient's ReLU mask are selects, not branches (ReLU zeros fall at random);
- Adam's bias corrections use `_power` (repeated squaring), not libm's `pow`, whose
  result may depend on the CPU's code path; `sqrt` and division are IEEE-exact.

Parameters are the engine's stacked tensors seen as numpy arrays (`[K, out, in]` weights,
`[K, out, 1]` biases, shared memory), so the kernel updates them in place and everything
else (compaction, snapshots, checkpoints) stays as it is. Agents run in parallel over a
`prange` (on one thread when there are fewer than `PARALLEL_MIN_AGENTS` or torch uses one
thread); each agent's numbers do not depend on the thread, the batch or its position.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ebnb import layers

# OpenMP (the system's libgomp) where it loads, else numba's own workqueue. On 2 threads a
# population of 256 Acrobot agents made 43,300 agent-steps/s with OpenMP against 30,500 with
# the workqueue (which scaled the update 1.2x over one thread, OpenMP 1.65x), and torch work
# right after a kernel call was not slower. Single-threaded workers open no parallel region.
numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]  # numba wants all three named
numba.config.THREADING_LAYER = "default"
_JIT = layers.JIT


@numba.njit(**_JIT)
def _power(base, exponent):
    """base ** exponent for an integer exponent >= 0, by repeated squaring (fixed order)."""
    result, factor, n = 1.0, base, exponent
    while n > 0:
        if n & 1:
            result *= factor
        factor *= factor
        n >>= 1
    return result


PARALLEL_MIN_AGENTS = 8  # fewer agents run on one thread: starting a parallel region costs ~150 us


def _threads(n_agents: int) -> int:
    """Threads for a call over `n_agents`: as many as torch uses (1 in a single-threaded
    worker), and 1 for a handful of agents, where a parallel region costs more than it saves."""
    if n_agents < PARALLEL_MIN_AGENTS:
        return 1
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


@numba.njit(**_JIT)
def _greedy_agent(params, obs, actions, k):
    n_obs, obs_dim = obs.shape[1], obs.shape[2]
    x = np.empty((n_obs, obs_dim), params[0].dtype)
    for j in range(n_obs):
        for d in range(obs_dim):
            x[j, d] = obs[k, j, d]
    q = layers._forward(params, k, x)[-1]
    for j in range(n_obs):
        best = 0
        for a in range(1, q.shape[1]):
            if q[j, a] > q[j, best]:
                best = a
        actions[k, j] = best


@numba.njit(**_JIT)
def _greedy_serial(params, obs, actions):
    for k in range(obs.shape[0]):
        _greedy_agent(params, obs, actions, k)


@numba.njit(parallel=True, **_JIT)
def _greedy_parallel(params, obs, actions):
    for k in numba.prange(obs.shape[0]):
        _greedy_agent(params, obs, actions, k)


def greedy_actions(params, obs: np.ndarray) -> np.ndarray:
    """argmax_a Q(obs, a) `[K, N]` for observations `obs: [K, N, obs_dim]` (first maximum on ties)."""
    actions = np.empty(obs.shape[:2], dtype=np.int64)
    threads = _threads(obs.shape[0])
    if threads > 1:
        numba.set_num_threads(threads)
    (_greedy_parallel if threads > 1 else _greedy_serial)(tuple(params), np.ascontiguousarray(obs), actions)
    return actions


@numba.njit(**_JIT)
def _adam(param, grad, exp_avg, exp_avg_sq, step_size, bias_correction2_sqrt, beta1, beta2, eps):
    """One Adam step of flat arrays (torch.optim.Adam's formula, no weight decay)."""
    one = param.dtype.type(1)
    for j in range(param.shape[0]):
        g = grad[j]
        exp_avg[j] = beta1 * exp_avg[j] + (one - beta1) * g
        exp_avg_sq[j] = beta2 * exp_avg_sq[j] + (one - beta2) * (g * g)
        denom = np.sqrt(exp_avg_sq[j]) / bias_correction2_sqrt + eps
        param[j] = param[j] - step_size * (exp_avg[j] / denom)


@numba.njit(**_JIT)
def _minibatch(replay_obs, replay_next_obs, k, slots, dtype):
    """Batch-major `[batch, obs_dim]` copies of agent k's observations and next observations
    at `slots`, in one pass, so that their cache misses overlap."""
    obs = np.empty((slots.shape[0], replay_obs.shape[2]), dtype)
    next_obs = np.empty_like(obs)
    for j in range(slots.shape[0]):
        slot = slots[j]
        for d in range(replay_obs.shape[2]):
            obs[j, d] = replay_obs[k, slot, d]
            next_obs[j, d] = replay_next_obs[k, slot, d]
    return obs, next_obs


@numba.njit(**_JIT)
def _learn_agent(
    params,
    target,
    exp_avg,
    exp_avg_sq,
    steps,
    masks,
    masked,
    replay_obs,
    replay_action,
    replay_reward,
    replay_next_obs,
    replay_done,
    k,
    own,
    gamma,
    lr,
    beta1,
    beta2,
    eps,
):
    """DQN's update of agent k on its minibatch at replay slots `own`, then Adam and the mask."""
    n_layers = len(params) // 2
    batch = own.shape[0]
    dtype = params[0].dtype
    cast = dtype.type

    # TD target from the target network: r + gamma * (1 - done) * max_a Q'(s', a)
    obs, next_obs = _minibatch(replay_obs, replay_next_obs, k, own, dtype)
    next_q = layers._q_values(target, k, next_obs)
    td_target = np.empty(batch, dtype)
    for j in range(batch):
        best = next_q[j, 0]
        for a in range(1, next_q.shape[1]):
            best = max(best, next_q[j, a])
        not_done = cast(1) - cast(replay_done[k, own[j]])
        td_target[j] = cast(replay_reward[k, own[j]]) + (cast(gamma) * not_done) * best

    # Online forward; d(mean squared TD error)/dQ(s, a) for the actions taken
    outputs = layers._forward(params, k, obs)
    q = outputs[-1]
    delta = np.zeros_like(q)
    for j in range(batch):
        action = replay_action[k, own[j]]
        delta[j, action] = (cast(2) * (q[j, action] - td_target[j])) * (cast(1) / cast(batch))

    # Adam's scalars for this agent's own step count
    steps[k] += 1
    step = int(steps[k])
    step_size = cast(lr / (1.0 - _power(beta1, step)))
    bias_correction2_sqrt = cast(np.sqrt(1.0 - _power(beta2, step)))

    # Backward, last layer first; a layer is stepped once the gradient below it is taken
    for layer in range(n_layers - 1, -1, -1):
        weight, bias = params[2 * layer][k], params[2 * layer + 1][k]
        grad_weight = np.empty_like(weight)
        grad_bias = np.empty_like(bias)
        below = np.empty_like(outputs[layer])
        layers._backward(weight, delta, outputs[layer], grad_weight, grad_bias, below, layer > 0)
        for tensor, grad in ((2 * layer, grad_weight.ravel()), (2 * layer + 1, grad_bias.ravel())):
            _adam(
                params[tensor][k].ravel(),
                grad,
                exp_avg[tensor][k].ravel(),
                exp_avg_sq[tensor][k].ravel(),
                step_size,
                bias_correction2_sqrt,
                cast(beta1),
                cast(beta2),
                cast(eps),
            )
        if masked:
            keep = masks[layer][k]
            for o in range(weight.shape[0]):
                for i in range(weight.shape[1]):
                    weight[o, i] *= keep[o, i]
        delta = below


@numba.njit(**_JIT)
def _learn_serial(
    params,
    target,
    exp_avg,
    exp_avg_sq,
    steps,
    masks,
    masked,
    replay_obs,
    replay_action,
    replay_reward,
    replay_next_obs,
    replay_done,
    agents,
    slots,
    gamma,
    lr,
    beta1,
    beta2,
    eps,
):
    for row in range(agents.shape[0]):
        _learn_agent(
            params,
            target,
            exp_avg,
            exp_avg_sq,
            steps,
            masks,
            masked,
            replay_obs,
            replay_action,
            replay_reward,
            replay_next_obs,
            replay_done,
            agents[row],
            slots[row],
            gamma,
            lr,
            beta1,
            beta2,
            eps,
        )


@numba.njit(parallel=True, **_JIT)
def _learn_parallel(
    params,
    target,
    exp_avg,
    exp_avg_sq,
    steps,
    masks,
    masked,
    replay_obs,
    replay_action,
    replay_reward,
    replay_next_obs,
    replay_done,
    agents,
    slots,
    gamma,
    lr,
    beta1,
    beta2,
    eps,
):
    for row in numba.prange(agents.shape[0]):
        _learn_agent(
            params,
            target,
            exp_avg,
            exp_avg_sq,
            steps,
            masks,
            masked,
            replay_obs,
            replay_action,
            replay_reward,
            replay_next_obs,
            replay_done,
            agents[row],
            slots[row],
            gamma,
            lr,
            beta1,
            beta2,
            eps,
        )


def learn(params, target, exp_avg, exp_avg_sq, steps, masks, replay, agents, slots, *, gamma, lr, betas, eps) -> None:
    """One DQN gradient step and Adam step, in place, for each agent in `agents` (batch
    positions), on the minibatch at its replay `slots` `[k, batch]`; pruned weights are
    re-zeroed after the step where `masks` (one `[K, out, in]` array per weight) is given."""
    params = tuple(params)
    threads = _threads(len(agents))
    if threads > 1:
        numba.set_num_threads(threads)
    masked = masks is not None
    masks = tuple(masks) if masked else params[0::2]
    (_learn_parallel if threads > 1 else _learn_serial)(
        params,
        tuple(target),
        tuple(exp_avg),
        tuple(exp_avg_sq),
        steps,
        masks,
        masked,
        replay["obs"],
        replay["action"],
        replay["reward"],
        replay["next_obs"],
        replay["done"],
        np.ascontiguousarray(agents, dtype=np.int64),
        np.ascontiguousarray(slots, dtype=np.int64),
        float(gamma),
        float(lr),
        float(betas[0]),
        float(betas[1]),
        float(eps),
    )
