"""The thesis' verdicts at its 10 seeds beside the same verdicts at 15 (profile `full15`,
seeds 0-14, of which 0-9 are the full profile's units): which change (issue 28.9)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ebnb.analysis import ALPHA


def side_by_side(at10: pd.DataFrame, at15: pd.DataFrame, keys: list[str], columns) -> pd.DataFrame:
    """One row per `keys` (both tables hold the same rows): each of `columns` at n = 10
    (``<column>_n10``) and n = 15 (``<column>_n15``), and ``changed``, the columns whose value
    differs, comma-separated ("" if none)."""
    columns = list(columns)
    both = at10[keys + columns].merge(at15[keys + columns], on=keys, suffixes=("_n10", "_n15"), validate="one_to_one")
    if len(both) != len(at10) or len(both) != len(at15):
        raise ValueError(
            f"side_by_side: the tables hold other {keys} ({len(at10)} and {len(at15)} rows, {len(both)} shared)"
        )
    differs = pd.DataFrame({c: both[f"{c}_n10"] != both[f"{c}_n15"] for c in columns})
    ordered = keys + [f"{c}_{n}" for c in columns for n in ("n10", "n15")]
    return both[ordered].assign(changed=differs.apply(lambda row: ", ".join(row.index[row]), axis=1))


def change_lines(table: pd.DataFrame, keys: list[str]) -> list[str]:
    """One line per row of `side_by_side` whose verdict changes from n = 10 to n = 15, e.g.
    'P=0.2, prune_episode=30: 2_length shown non-inferior -> not shown either way'; one line
    saying so if none does."""
    lines = []
    for _, row in table[table.changed != ""].iterrows():
        where = ", ".join(f"{k}={row[k]}" for k in keys)
        lines.append(
            f"{where}: " + "; ".join(f"{c} {row[f'{c}_n10']} -> {row[f'{c}_n15']}" for c in row.changed.split(", "))
        )
    return lines or [f"no verdict changes (of {len(table)} rows)"]


def shorter(comparison: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """`ebnb.analysis.finetune_vs_retrain` with its verdict per P: ``finetune`` "shorter" where
    the Holm-adjusted p-value is below `alpha`, else "not shown shorter"."""
    return comparison.assign(finetune=np.where(comparison.p_holm < alpha, "shorter", "not shown shorter"))
