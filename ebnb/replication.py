"""The thesis' verdicts at its 10 seeds beside the same verdicts at more (profile `full15`,
seeds 0-14, and `powered`, CartPole's deciding cells at seeds 0-99; seeds 0-9 are the full
profile's units), and under another reading of the protocol (e.g. `gym_terminal`; `readings`:
Acrobot's observations scaled, profile `acrobot_scaled`, with which inputs its masks cut,
`input_cuts`): which change (issues 28.9 and 31)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ebnb import stats
from ebnb.analysis import ALPHA, COMPARISONS


def side_by_side(
    before: pd.DataFrame, after: pd.DataFrame, keys: list[str], columns, names: tuple[str, str] = ("n10", "n15")
) -> pd.DataFrame:
    """One row per `keys` (both tables hold the same rows): each of `columns` in `before`
    (``<column>_<names[0]>``) and in `after` (``<column>_<names[1]>``), and ``changed``, the
    columns whose value differs, comma-separated ("" if none)."""
    columns = list(columns)
    suffixes = tuple(f"_{name}" for name in names)
    both = before[keys + columns].merge(after[keys + columns], on=keys, suffixes=suffixes, validate="one_to_one")
    if len(both) != len(before) or len(both) != len(after):
        raise ValueError(
            f"side_by_side: the tables hold other {keys} ({len(before)} and {len(after)} rows, {len(both)} shared)"
        )
    differs = pd.DataFrame({c: both[f"{c}{suffixes[0]}"] != both[f"{c}{suffixes[1]}"] for c in columns})
    ordered = keys + [f"{c}{suffix}" for c in columns for suffix in suffixes]
    return both[ordered].assign(changed=differs.apply(lambda row: ", ".join(row.index[row]), axis=1))


def change_lines(table: pd.DataFrame, keys: list[str], names: tuple[str, str] = ("n10", "n15")) -> list[str]:
    """One line per row of `side_by_side` (made with the same `names`) whose verdict changes,
    e.g. 'P=0.2, prune_episode=30: 2_length shown non-inferior -> not shown either way'; one
    line saying so if none does."""
    lines = []
    for _, row in table[table.changed != ""].iterrows():
        where = ", ".join(f"{k}={row[k]}" for k in keys)
        changes = (f"{c} {row[f'{c}_{names[0]}']} -> {row[f'{c}_{names[1]}']}" for c in row.changed.split(", "))
        lines.append(f"{where}: " + "; ".join(changes))
    return lines or [f"no verdict changes (of {len(table)} rows)"]


def effect_lines(criteria: pd.DataFrame, comparisons=COMPARISONS) -> list[str]:
    """Per cell of `ebnb.analysis.criteria_table` and comparison: the estimate (ticket minus
    reference), its one-sided 95% bound, the NI margin, the difference detectable at 80% power,
    the seeds and the verdict, e.g. 'P=0.2, e=20, length_vs_unpruned: +3.1 (bound +9.8; margin
    10.8; detectable 6.0; n = 100 vs 100) -> shown non-inferior'."""
    lines = []
    for _, row in criteria.iterrows():
        for name in comparisons:
            value = {c: row[f"{name}_{c}"] for c in ("estimate", "bound", "margin", "mde", "n", "n_reference", "state")}
            lines.append(
                f"P={row.P}, e={row.prune_episode}, {name}: {value['estimate']:+.1f} (bound {value['bound']:+.1f}; "
                f"margin {value['margin']:.1f}; detectable {value['mde']:.1f}; "
                f"n = {value['n']:.0f} vs {value['n_reference']:.0f}) -> {value['state']}"
            )
    return lines


def shorter(comparison: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """`ebnb.analysis.finetune_vs_retrain` with its verdict per P: ``finetune`` "shorter" where
    the Holm-adjusted p-value is below `alpha`, else "not shown shorter"."""
    return comparison.assign(finetune=np.where(comparison.p_holm < alpha, "shorter", "not shown shorter"))


def baseline_lines(before: pd.DataFrame, after: pd.DataFrame, names: tuple[str, str]) -> list[str]:
    """The unpruned runs (`ebnb.experiments.baseline`) of the same seeds under two readings,
    e.g. the protocol's and profile `gym_terminal`'s: per reading the runs that converged, the
    mean training length and test return, then each mean's change (after - before, paired by
    seed) with its two-sided 95% t interval."""
    both = before.merge(after, on="seed", suffixes=("_0", "_1"), validate="one_to_one")
    if len(both) != len(before) or len(both) != len(after):
        raise ValueError(f"baseline_lines: the tables hold other seeds ({len(before)} and {len(after)} rows)")
    lines = [
        f"{name}: {int(both[f'converged_{i}'].sum())} of {len(both)} runs converged; training length "
        f"{both[f'converged_episode_{i}'].mean():.1f} episodes, test return {both[f'test_return_{i}'].mean():.1f}"
        for i, name in enumerate(names)
    ]
    for column, what in (("converged_episode", "training length"), ("test_return", "test return")):
        mean, low, high = stats.paired_t_interval(both[f"{column}_1"], both[f"{column}_0"])
        lines.append(f"{what}, {names[1]} - {names[0]}: {mean:+.1f} (95% paired CI {low:+.1f} to {high:+.1f})")
    return lines


def readings(env: str, profile: str, g, variant: str, store, published, names: tuple[str, ...]):
    """(the full profile's grid, `variant`'s grid) for setting the main reading beside profile
    `variant` (the full grid under other DQN settings, e.g. acrobot_scaled) in a notebook run at
    `profile` with grid `g`: at the full profile's own grid where the store or `published`
    holds `variant`'s steps `names`, at `variant`'s own grid where they hold the full
    profile's; else None (another grid, an env `variant` is not defined for, or not held:
    nothing is computed)."""
    from ebnb import experiments
    from ebnb.side_profiles import SIDE_PROFILES

    full = experiments.PROFILES["full"]
    if profile == "full" and g == full:
        other = variant
    elif profile == variant and g == experiments.PROFILES[variant]:
        other = "full"
    else:
        return None
    side = SIDE_PROFILES.get(variant)
    if side is not None and not side.runs_on(env):
        return None
    held = experiments.held(env, other, store, published, names)
    if held is None:
        return None
    return (full, held) if other == variant else (held, g)


def input_cuts(readings: dict[str, pd.DataFrame], episodes) -> pd.DataFrame:
    """Per reading (name: an `experiments.input_survival` table), P, input and mask episode of
    `episodes`: the share of the input's outgoing first-layer weights the L1 mask prunes (1 -
    kept), mean over seeds with its 95% Student-t interval. Columns: reading, P, episode,
    feature, pruned, low, high, seeds."""
    rows = []
    for name, survival in readings.items():
        chosen = survival[survival.episode.isin(list(episodes))]
        for (fraction, episode, feature), group in chosen.groupby(["P", "episode", "feature"], sort=False):
            pruned = 1.0 - group.kept.to_numpy()
            mean, low, high = (
                stats.t_interval(pruned) if len(pruned) >= stats.MIN_CI_SEEDS else (pruned.mean(), np.nan, np.nan)
            )
            rows.append((name, fraction, episode, feature, float(mean), float(low), float(high), len(pruned)))
    return pd.DataFrame(rows, columns=["reading", "P", "episode", "feature", "pruned", "low", "high", "seeds"])


def first_cut_lines(cuts: pd.DataFrame) -> list[str]:
    """Per reading, P and episode of `input_cuts`: the inputs in the order the mask prunes them
    (most pruned first), e.g. 'main, P=0.2, episode 20: θ2 velocity 0.35, θ1 velocity 0.30, ...'."""
    lines = []
    for (name, fraction, episode), group in cuts.groupby(["reading", "P", "episode"], sort=False):
        ranked = group.sort_values("pruned", ascending=False, kind="stable")
        shown = ", ".join(f"{row.feature} {row.pruned:.2f}" for row in ranked.itertuples())
        lines.append(f"{name}, P={fraction}, episode {episode}: {shown}")
    return lines


CUT_EPISODES = (0, 20, 100, 500)  # mask episodes `input_cuts` shows in notebook 01 (0: θ0, the same in every reading)
