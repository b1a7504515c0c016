"""What a population does for agents that have just ended an episode: DQN's target copy,
epsilon's per-episode decay, the counters, the solved streak and first convergence, the log
row, the callback, and the stop rules, which retire an agent from the batch.

`Population._step` calls `end_episodes` for the agents whose episode ended in its step; the
compiled loop does the same in `ebnb.loop._end_episode` for a population without a callback,
and calls `end_episodes` (with one) and `retire` here otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

STOP_REASONS = ("early_stop", "max_episodes", "callback")


@dataclass
class EpisodeEnds:
    """Agents that finished an episode in this step (one entry each)."""

    agents: np.ndarray  # agent ids: positions in the list the population was built from
    episodes: np.ndarray  # the agent's lifetime episode count, including the one just ended
    returns: np.ndarray
    lengths: np.ndarray
    transitions: np.ndarray  # the agent's lifetime transition count
    epsilon: np.ndarray  # epsilon for the agent's next episode
    converged: np.ndarray  # True where this episode completes the first solved streak


def end_episodes(population, positions: np.ndarray) -> None:
    """The episode ends of the agents at batch `positions` of `population`, the callback's
    included; then the ones that stop leave the batch (`retire`)."""
    cfg = population.cfg
    index = torch.from_numpy(positions).to(population.device)
    with torch.no_grad():
        for t, weights in zip(population.target, population.params):
            t.index_copy_(0, index, weights.index_select(0, index))
    if cfg.eps_decay_per == "episode":
        population.epsilon[positions] = np.maximum(population.epsilon[positions] * cfg.eps_decay, cfg.eps_floor)
    population.episodes[positions] += 1
    ids = population.ids[positions]
    returns = population.episode_return[positions]
    solved = returns >= cfg.solved_return
    population.streak[positions] = np.where(solved, population.streak[positions] + 1, 0)
    converged_episode = population.records.converged_episode
    converged = (population.streak[positions] == cfg.solved_streak) & (converged_episode[ids] < 0)
    converged_episode[ids[converged]] = population.episodes[positions][converged]
    population._log.append(
        (
            ids,
            population.episodes[positions].copy(),
            returns.copy(),
            population.episode_length[positions].copy(),
            population.episode_epsilon[positions].copy(),
        )
    )
    population._progress.update(len(positions))
    if population.callback is not None:
        population._callback_agents = set(ids.tolist())
        try:
            population.callback(
                population,
                EpisodeEnds(
                    ids,
                    population.episodes[positions].copy(),
                    returns.copy(),
                    population.episode_length[positions].copy(),
                    population.transitions[positions].copy(),
                    population.epsilon[positions].copy(),
                    converged,
                ),
            )
        finally:
            population._callback_agents = None
    population.episode_return[positions] = 0.0
    population.episode_length[positions] = 0
    population.episode_epsilon[positions] = population.epsilon[positions]

    reasons = stop_reasons(population, positions)
    if (reasons != "").any():
        retire(population, positions[reasons != ""], reasons[reasons != ""])


def stop_reasons(population, positions: np.ndarray) -> np.ndarray:
    """Why each agent at `positions` (which has just ended an episode) stops, or ''."""
    return np.select(
        [
            population.early_stop & (population.streak[positions] >= population.cfg.solved_streak),
            population.episodes[positions] >= population.episode_limit[positions],
            population.stop_requested[positions],
        ],
        STOP_REASONS,
        default="",
    )


def retire(population, positions: np.ndarray, reasons: np.ndarray) -> None:
    """Record stopped agents' final states (`reasons`: one per position) and drop them from
    the batch (compaction: one `select` of every live field)."""
    records = population.records
    for k, reason in zip(positions, reasons, strict=True):
        agent = int(population.ids[k])
        records.final[agent] = population.batch.state_at(int(k))
        records.stop_reason[agent] = str(reason)
        records.episodes_run[agent] = population.episodes[k] - (population.episode_limit[k] - population.max_episodes)
        population._progress.update(int(population.episode_limit[k] - population.episodes[k]))
        population.retired.append(agent)
    with torch.no_grad():
        population.batch.select(np.setdiff1d(np.arange(len(population.ids)), positions))
    population._progress.set_postfix(live=population.live)
