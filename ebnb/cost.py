"""A ticket's whole cost (issue 28.5): episodes, env steps and gradient updates before and after
pruning, and multiply-adds at the mask's density.

Before pruning a ticket costs the dense run up to its prune episode e (retrain, finetune; the
winning ticket: up to convergence; EB Exploit: its search, which is the same seed's dense run,
bit for bit, until it prunes or early-stops). Env steps there are the dense run's episode
lengths summed (one transition per env step); gradient updates follow from the DQN config
(`updates_at`). After pruning, a ticket's table records `post_prune_env_steps` and
`post_prune_updates` since commit 01397f7; results computed before that commit and EB
Exploit's lack them, and then only episodes are counted after pruning: the row's `counted`
says so and the missing columns are NaN, never estimated.

Multiply-adds (`forward_macs`, `update_macs`): one forward pass per env step (acting; the
compiled loop skips it on exploring steps, so this is an upper bound) and per update a target
and an online forward pass over the minibatch, the weight gradients and the input gradients of
every layer but the first. At density d = 1 - P they are the dense counts times d: what a kernel
that skips every pruned weight would do. ebnb's fused kernel (`ebnb.kernel`) does so only in
part: it skips pruned weights in the minibatch forward passes (not in acting, `_dots`) of
layers with fewer than `layers.WIDE` outputs and more than `layers.THIN` inputs (the Q-value head), skips zero activations (not
pruned weights) in wide layers, adds every term in thin-input layers (the first layer of both
envs) and in the gradient below the Q-value head, and computes every weight gradient before
the mask zeroes the pruned ones. So the
"at density" columns count the arithmetic a sparse kernel needs, not the time ebnb spends.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ebnb import qnet
from ebnb.agent import env_dims
from ebnb.config import DQNConfig

RECORDED = "episodes, env steps and updates"
EPISODES_ONLY = "after pruning episodes only (env steps and updates not recorded in these results)"
POST_PRUNE_COLUMNS = ("post_prune_env_steps", "post_prune_updates")  # a ticket's counters after pruning


def updates_at(cfg: DQNConfig, env_steps) -> np.ndarray:
    """Gradient updates after `env_steps` transitions of a fresh agent: #{t <= T: t is a multiple
    of train_freq and t >= learning_starts} (the engine's rule, `Population.step`)."""
    steps = np.asarray(env_steps, dtype=np.int64)
    return np.maximum(0, steps // cfg.train_freq - (cfg.learning_starts - 1) // cfg.train_freq)


def _sizes(cfg: DQNConfig) -> list[int]:
    obs_dim, n_actions = env_dims(cfg.env_id)
    return qnet.layer_sizes(obs_dim, cfg.hidden, n_actions)


def forward_macs(cfg: DQNConfig) -> int:
    """Multiply-adds of one dense forward pass of one observation: sum of in x out over layers."""
    sizes = _sizes(cfg)
    return int(sum(a * b for a, b in itertools.pairwise(sizes)))


def update_macs(cfg: DQNConfig) -> int:
    """Multiply-adds of one dense gradient update: over the minibatch, the target network's and
    the online network's forward passes, the weight gradients (in x out each layer) and the input
    gradients of every layer but the first."""
    sizes = _sizes(cfg)
    return int(cfg.batch_size * (4 * forward_macs(cfg) - sizes[0] * sizes[1]))


def dense_env_steps(curves: pd.DataFrame) -> pd.DataFrame:
    """Per seed of `experiments.training_curves`, the dense run's env steps after each episode
    (the lengths summed), with episode 0 (no step yet): columns seed, episode, env_steps."""
    curves = curves.sort_values(["seed", "episode"])
    steps = curves.assign(env_steps=curves.groupby("seed")["length"].cumsum())[["seed", "episode", "env_steps"]]
    start = pd.DataFrame({"seed": curves.seed.unique(), "episode": 0, "env_steps": 0})
    return pd.concat([start, steps], ignore_index=True).sort_values(["seed", "episode"], ignore_index=True)


def _steps_at(steps: pd.DataFrame, seeds, episodes) -> np.ndarray:
    """The dense run's env steps of each seed after the given episode."""
    key = pd.DataFrame({"seed": np.asarray(seeds), "episode": np.asarray(episodes)})
    merged = key.merge(steps, on=["seed", "episode"], how="left", validate="many_to_one")
    if merged.env_steps.isna().any():
        raise ValueError("an episode beyond a dense run's log: " + str(key[merged.env_steps.isna()].iloc[0].to_dict()))
    return merged.env_steps.to_numpy(np.int64)


def _with_macs(table: pd.DataFrame, cfg: DQNConfig, density) -> pd.DataFrame:
    """Multiply-adds before (dense) and after pruning (at `density`), and their sums."""
    forward, update = forward_macs(cfg), update_macs(cfg)
    before = table.env_steps_before * forward + table.updates_before * update
    after = (table.env_steps_after * forward + table.updates_after * update) * density
    return table.assign(
        density=density,
        macs_before=before.astype(float),
        macs_after=after,
        episodes=table.episodes_before + table.episodes_after,
        env_steps=table.env_steps_before + table.env_steps_after,
        updates=table.updates_before + table.updates_after,
        macs=before + after,
    )


def ticket_costs(tickets: pd.DataFrame, curves: pd.DataFrame, cfg: DQNConfig, mode: str) -> pd.DataFrame:
    """Per ticket (seed, P, prune_episode) of `experiments.retrain` / `finetune` /
    `winning_tickets` (`mode` "retrain" or "finetune"; winning tickets are retrained): episodes,
    env steps and updates before pruning (the dense run to episode e) and after (the ticket's own
    `post_prune_*` columns, NaN where the results lack them), multiply-adds before (dense) and
    after (at density 1 - P), the totals, and `counted` (`RECORDED` or `EPISODES_ONLY`)."""
    if mode not in ("retrain", "finetune"):
        raise ValueError(f"mode: 'retrain' or 'finetune', got {mode!r}")
    before = _steps_at(dense_env_steps(curves), tickets.seed, tickets.prune_episode)
    recorded = set(POST_PRUNE_COLUMNS) <= set(tickets.columns)
    after_steps = tickets["post_prune_env_steps"] if recorded else pd.Series(np.nan, index=tickets.index)
    after_updates = tickets["post_prune_updates"] if recorded else pd.Series(np.nan, index=tickets.index)
    table = pd.DataFrame(
        {
            "seed": tickets.seed,
            "P": tickets.P,
            "prune_episode": tickets.prune_episode,
            "mode": mode,
            "episodes_before": tickets.prune_episode,
            "env_steps_before": before,
            "updates_before": updates_at(cfg, before),
            "episodes_after": tickets.length,
            "env_steps_after": after_steps.astype(float),
            "updates_after": after_updates.astype(float),
        }
    )
    table["counted"] = np.where(table.env_steps_after.notna() & table.updates_after.notna(), RECORDED, EPISODES_ONLY)
    return _with_macs(table, cfg, 1.0 - tickets.P.to_numpy(float))


def unpruned_costs(baseline: pd.DataFrame, curves: pd.DataFrame, cfg: DQNConfig) -> pd.DataFrame:
    """Per seed, the unpruned network's cost to its early stopping (its convergence episode, or
    the cap): all before pruning, nothing after, at density 1."""
    steps = _steps_at(dense_env_steps(curves), baseline.seed, baseline.converged_episode)
    table = pd.DataFrame(
        {
            "seed": baseline.seed,
            "episodes_before": baseline.converged_episode,
            "env_steps_before": steps,
            "updates_before": updates_at(cfg, steps),
            "episodes_after": 0,
            "env_steps_after": 0.0,
            "updates_after": 0.0,
            "counted": RECORDED,
        }
    )
    return _with_macs(table, cfg, 1.0)


def eb_exploit_costs(results: pd.DataFrame, curves: pd.DataFrame, cfg: DQNConfig) -> pd.DataFrame:
    """Per run of `experiments.eb_exploit`: the search (the same seed's dense run to
    `search_length`) counted whole; after pruning, `finetune_length` episodes only (EB Exploit's
    results record no post-prune env steps or updates: NaN, `counted` says so)."""
    steps = _steps_at(dense_env_steps(curves), results.seed, results.search_length)
    found = results.found.to_numpy(bool)
    table = pd.DataFrame(
        {
            "seed": results.seed,
            "P": results.P,
            "found": found,
            "episodes_before": results.search_length,
            "env_steps_before": steps,
            "updates_before": updates_at(cfg, steps),
            "episodes_after": results.finetune_length,
            "env_steps_after": np.where(found, np.nan, 0.0),
            "updates_after": np.where(found, np.nan, 0.0),
        }
    )
    table["counted"] = np.where(found, EPISODES_ONLY, RECORDED)
    return _with_macs(table, cfg, np.where(found, 1.0 - results.P.to_numpy(float), 1.0))


def cost_summary(costs: pd.DataFrame, unpruned: pd.DataFrame, by=("P", "prune_episode")) -> pd.DataFrame:
    """Means over seeds per group of `by` of a cost table (`ticket_costs`, `eb_exploit_costs`),
    each total also relative to the same seeds' unpruned cost (`unpruned_costs`, mean over the
    seeds present); a mean over a column with a NaN is NaN (not counted), and `counted` names
    what is counted."""
    columns = [
        "episodes_before",
        "episodes_after",
        "episodes",
        "env_steps_before",
        "env_steps_after",
        "env_steps",
        "updates_before",
        "updates_after",
        "updates",
        "macs_before",
        "macs_after",
        "macs",
    ]
    rows = []
    reference = unpruned.set_index("seed")
    for key, group in costs.groupby(list(by), sort=True):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update({c: group[c].mean(skipna=False) for c in columns})
        base = reference.loc[group.seed.unique()]
        row.update({f"{c}_relative": row[c] / base[c].mean() for c in ("episodes", "env_steps", "updates", "macs")})
        row["counted"] = "; ".join(sorted(group.counted.unique()))
        rows.append(row)
    return pd.DataFrame(rows)


def cost_lines(summary: pd.DataFrame) -> list[str]:
    """Per P of `cost_summary`: the range over its rows (prune episodes) of each total relative
    to the unpruned run, and what is counted; "not recorded after pruning" where a total is NaN
    (the part before pruning is in the table's `*_before` columns)."""

    def spread(values) -> str:
        values = np.asarray(values, float)
        if np.isnan(values).any():
            return "not recorded after pruning"
        low, high = values.min(), values.max()
        return f"{low:.2f}" if low == high else f"{low:.2f}-{high:.2f}"

    lines = []
    for fraction, group in summary.groupby("P", sort=True):
        lines.append(
            f"P={fraction}: x unpruned, episodes {spread(group.episodes_relative)}, env steps "
            f"{spread(group.env_steps_relative)}, updates {spread(group.updates_relative)}, multiply-adds "
            f"{spread(group.macs_relative)} (counted: {'; '.join(sorted(set(group.counted)))})"
        )
    return lines
