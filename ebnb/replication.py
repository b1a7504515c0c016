"""The thesis' verdicts at its 10 seeds beside the same verdicts at more (profile `full15`,
seeds 0-14, and `powered`, CartPole's deciding cells at seeds 0-99; seeds 0-9 are the full
profile's units): which change (issues 28.9 and 31.5)."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
