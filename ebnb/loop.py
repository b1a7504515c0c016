"""The compiled DQN loop: many steps of a population's agents per call, for the built-in envs.

`Population.run` calls `advance` instead of stepping in Python when the arithmetic is the
fused kernel's and the env is one of the built-in ones (CartPole-v0, Acrobot-v1). One call
runs every live agent on its own for up to `budget` steps, each step what
`Population._step` does for it, in the same order and arithmetic:

- epsilon-greedy acting (the greedy action of the agent's network, `ebnb.kernel`);
- the env step with same-step autoreset (`ebnb.dynamics.transition`, `restart`, `observe`; its
  observations divided by the env's bounds with `scaled_observations`);
- the replay write; epsilon's per-step decay; where due, the minibatch slots from the agent's
  own REPLAY stream and the update (`kernel._learn_agent`: TD target, backward, Adam, mask);
- at an episode's end, without a callback: the target copy, epsilon's per-episode decay,
  the counters, the solved streak and the log row.

An agent stops early in a call at an event that Python must see: an episode end when the
population has a callback (`pending`: Python runs `episode_end.end_episodes` for it), a stop
(`retiring`: early stopping, the episode cap or a requested stop), or a full log. Agents are
independent (own network, replay, env, random streams), so running each one for several
steps before the next changes no number; the batch, the thread count and the budget change
only when Python sees what. Every array is the population's own memory, updated in place.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ebnb import accounting, dynamics, episode_end, kernel, layers, rng
from ebnb.rng import Stream

_JIT = layers.JIT
LOG_ROWS = 64  # episode ends an agent may log per call; a full log ends its call
_COIN, _ACTION, _REPLAY = int(Stream.COIN), int(Stream.ACTION), int(Stream.REPLAY)


@numba.njit(**_JIT)
def _greedy(params, k, obs_row, x):
    """Agent k's greedy action (first maximum) for one observation, through `x: [1, obs_dim]`."""
    for d in range(obs_row.shape[0]):
        x[0, d] = obs_row[d]
    q = layers._forward(params, k, x)[-1]
    best = 0
    for a in range(1, q.shape[1]):
        if q[0, a] > q[0, best]:
            best = a
    return best


@numba.njit(**_JIT)
def _run_agent(k, budget, net, replay, agents, env, log, out, hyper, counts):
    """Agent k (batch position) for up to `budget` steps; see the module docstring."""
    params, target, exp_avg, exp_avg_sq, adam_steps, masks, masked = net
    replay_obs, replay_action, replay_reward, replay_next_obs, replay_done = replay
    (
        seeds,
        _ids,
        epsilon,
        transitions,
        updates,
        episodes,
        episode_limit,
        streak,
        episode_return,
        episode_length,
        _episode_epsilon,
        stop_requested,
        obs,
        _converged_episode,
    ) = agents
    kind, state, env_steps, env_episodes, env_seeds, obs_bounds = env
    log_count, log_episode, _log_return, _log_length, _log_epsilon = log
    n_steps, n_updates, pending, retiring = out
    gamma, lr, beta1, beta2, eps, eps_decay, eps_floor, _solved_return = hyper
    (
        batch,
        train_freq,
        learning_starts,
        eps_per_step,
        cut_at_truncation,
        solved_streak,
        early_stop,
        n_actions,
        has_callback,
    ) = counts
    capacity = replay_obs.shape[1]
    dtype = params[0].dtype
    seed = seeds[k]
    x = np.empty((1, obs.shape[1]), dtype)
    next_row = np.empty(obs.shape[1], np.float32)
    slots = np.empty(batch, np.int64)
    made = 0
    while made < budget:
        # act epsilon-greedily
        t = transitions[k]
        if rng._uniform_of(seed, _COIN, t) < epsilon[k]:
            action = np.int64(np.floor(rng._uniform_of(seed, _ACTION, t) * np.float64(n_actions)))
        else:
            action = _greedy(params, k, obs[k], x)
        # step the env; store the transition (its true last observation, before any reset)
        reward, terminated, truncated = dynamics.transition(kind, state, env_steps, k, action)
        dynamics.observe(kind, state, k, next_row, obs_bounds)
        done = terminated or truncated
        slot = t % capacity
        for d in range(obs.shape[1]):
            replay_obs[k, slot, d] = obs[k, d]
            replay_next_obs[k, slot, d] = next_row[d]
        replay_action[k, slot] = action
        replay_reward[k, slot] = np.float32(reward)
        replay_done[k, slot] = np.float32(1.0) if (terminated or (truncated and cut_at_truncation)) else np.float32(0.0)
        if done:  # same-step autoreset
            env_episodes[k] += 1
            dynamics.restart(kind, state, env_steps, k, env_seeds[k], env_episodes[k])
            dynamics.observe(kind, state, k, next_row, obs_bounds)
        transitions[k] = t + 1
        episode_return[k] += reward
        episode_length[k] += 1
        if eps_per_step:
            epsilon[k] = max(epsilon[k] * eps_decay, eps_floor)
        # learn where due, on a minibatch drawn from the agent's own stream
        if (t + 1) % train_freq == 0 and t + 1 >= learning_starts:
            filled = np.float64(min(t + 1, capacity))
            for j in range(batch):
                slots[j] = np.int64(np.floor(rng._uniform_of(seed, _REPLAY, updates[k] * batch + j) * filled))
            kernel._learn_agent(
                params,
                target,
                exp_avg,
                exp_avg_sq,
                adam_steps,
                masks,
                masked,
                replay_obs,
                replay_action,
                replay_reward,
                replay_next_obs,
                replay_done,
                k,
                slots,
                gamma,
                lr,
                beta1,
                beta2,
                eps,
            )
            updates[k] += 1
            n_updates[k] += 1
        for d in range(obs.shape[1]):
            obs[k, d] = next_row[d]
        made += 1
        if not done:
            continue
        if has_callback:
            pending[k] = True
            break
        _end_episode(k, params, target, agents, log, hyper, counts)
        if (early_stop and streak[k] >= solved_streak) or episodes[k] >= episode_limit[k] or stop_requested[k]:
            retiring[k] = True
            break
        if log_count[k] == log_episode.shape[1]:
            break
    n_steps[k] = made


@numba.njit(**_JIT)
def _end_episode(k, params, target, agents, log, hyper, counts):
    """`ebnb.episode_end.end_episodes` for agent k, without a callback: the target copy, epsilon's
    per-episode decay, counters, the solved streak, the first convergence, a log row."""
    (
        _seeds,
        ids,
        epsilon,
        _transitions,
        _updates,
        episodes,
        _episode_limit,
        streak,
        episode_return,
        episode_length,
        episode_epsilon,
        _stop_requested,
        _obs,
        converged_episode,
    ) = agents
    log_count, log_episode, log_return, log_length, log_epsilon = log
    _gamma, _lr, _beta1, _beta2, _eps, eps_decay, eps_floor, solved_return = hyper
    solved_streak, eps_per_step = counts[5], counts[3]
    for tensor in range(len(params)):
        source, copy = params[tensor][k].ravel(), target[tensor][k].ravel()
        for j in range(source.shape[0]):
            copy[j] = source[j]
    if not eps_per_step:
        epsilon[k] = max(epsilon[k] * eps_decay, eps_floor)
    episodes[k] += 1
    streak[k] = streak[k] + 1 if episode_return[k] >= solved_return else 0
    agent = ids[k]
    if streak[k] == solved_streak and converged_episode[agent] < 0:
        converged_episode[agent] = episodes[k]
    row = log_count[k]
    log_episode[k, row] = episodes[k]
    log_return[k, row] = episode_return[k]
    log_length[k, row] = episode_length[k]
    log_epsilon[k, row] = episode_epsilon[k]
    log_count[k] = row + 1
    episode_return[k] = 0.0
    episode_length[k] = 0
    episode_epsilon[k] = epsilon[k]


@numba.njit(**_JIT)
def _advance(positions, budget, net, replay, agents, env, log, out, hyper, counts):
    for k in positions:
        _run_agent(k, budget, net, replay, agents, env, log, out, hyper, counts)


_pool: ThreadPoolExecutor | None = None


def advance(budget: int, threads: int, *groups) -> None:
    """Every agent for up to `budget` steps (see the module docstring), on `threads` threads.

    Threads take runs of agents from a queue (the compiled code releases the GIL), so a thread
    that the OS deschedules holds up only its own run, never the others' work, and none spins
    waiting for another."""
    global _pool
    n = len(groups[2][0])
    if threads <= 1 or n == 1:
        _advance(np.arange(n), budget, *groups)
        return
    if _pool is None or _pool._max_workers != threads:
        _pool = ThreadPoolExecutor(threads, thread_name_prefix="ebnb-loop")
    run = max(1, n // (4 * threads))
    for _ in _pool.map(
        lambda start: _advance(np.arange(start, min(start + run, n)), budget, *groups), range(0, n, run)
    ):
        pass


def _bounds(env) -> np.ndarray:
    """What `dynamics.observe` divides observations by: the env's `obs_bounds`, or none."""
    return np.empty(0, np.float32) if env.obs_bounds is None else np.ascontiguousarray(env.obs_bounds, np.float32)


def advance_population(population, threads: int, budget: int, kind: int) -> None:
    """`advance` over a `Population`'s own arrays (its env of `kind`, each agent up to `budget`
    steps, on up to `threads` threads); then what Python must do: the counters, the log rows,
    episode ends with the callback (`episode_end.end_episodes`) and stops (`episode_end.retire`)."""
    cfg, optimizer, env, n = population.cfg, population.optimizer, population.env, len(population.ids)
    params, target, exp_avg, exp_avg_sq, mask, (adam_steps,), replay = population.learning_views()
    population.obs = np.ascontiguousarray(population.obs)
    env.state = np.ascontiguousarray(env.state)
    net = (
        params,
        target,
        exp_avg,
        exp_avg_sq,
        adam_steps,
        mask if population.mask is not None else params[0::2],
        population.mask is not None,
    )
    agents = (
        population.seeds,
        population.ids,
        population.epsilon,
        population.transitions,
        population.updates,
        population.episodes,
        population.episode_limit,
        population.streak,
        population.episode_return,
        population.episode_length,
        population.episode_epsilon,
        population.stop_requested,
        population.obs,
        population.records.converged_episode,
    )
    log = (
        np.zeros(n, np.int64),
        np.empty((n, LOG_ROWS), np.int64),
        np.empty((n, LOG_ROWS)),
        np.empty((n, LOG_ROWS), np.int64),
        np.empty((n, LOG_ROWS)),
    )
    out = (np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, bool), np.zeros(n, bool))
    hyper = tuple(
        float(v)
        for v in (
            cfg.gamma,
            optimizer.lr,
            *optimizer.betas,
            optimizer.eps,
            cfg.eps_decay,
            cfg.eps_floor,
            cfg.solved_return,
        )
    )
    counts = tuple(
        int(v)
        for v in (
            cfg.batch_size,
            cfg.train_freq,
            cfg.learning_starts,
            cfg.eps_decay_per == "step",
            cfg.truncation_is_terminal,
            cfg.solved_streak,
            population.early_stop,
            population.n_actions,
            population.callback is not None,
        )
    )
    advance(
        budget,
        min(n, threads),
        net,
        tuple(replay),
        agents,
        (kind, env.state, env.steps, env.episodes, env.seeds, _bounds(env)),
        log,
        out,
        hyper,
        counts,
    )
    n_steps, n_updates, pending, retiring = out
    accounting.TALLY.population_steps += int(n_steps.max())
    accounting.TALLY.agent_steps += int(n_steps.sum())
    accounting.TALLY.updates += int(n_updates.sum())
    count = log[0]
    if count.any():
        rows = np.arange(LOG_ROWS) < count[:, None]
        population._log.append((np.repeat(population.ids, count), *(column[rows] for column in log[1:])))
        population._progress.update(int(count.sum()))
    if pending.any():
        episode_end.end_episodes(population, np.flatnonzero(pending))
    if retiring.any():
        positions = np.flatnonzero(retiring)
        episode_end.retire(population, positions, episode_end.stop_reasons(population, positions))
