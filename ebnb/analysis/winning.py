"""Criterion 3's reference: winning tickets by iterative magnitude pruning (IMP, Frankle & Carbin;
the thesis' algorithm 2.1) against the one-shot ones the thesis uses (issue 31's variant 7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ebnb import stats as tests
from ebnb.analysis.criteria import ALPHA, NEITHER

MEASURES = {"test_return": "test return", "length": "retrain length"}
IMP_HIGHER, IMP_LOWER = "IMP shown higher", "IMP shown lower"  # a length: longer, shorter


def _paired_p(differences: np.ndarray) -> float:
    """Two-sided paired t p-value of mean(differences) = 0; without spread (or one pair) decided
    by the mean, deterministically: 0 if it is not 0, else 1."""
    if len(differences) < 2 or differences.std(ddof=1) == 0:
        return 0.0 if differences.mean() != 0 else 1.0
    return float(stats.ttest_1samp(differences, 0.0).pvalue)


def one_shot_and_imp(winning: pd.DataFrame, imp: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one-shot, IMP) winning tickets from `ebnb.experiments.winning_tickets` and `imp_tickets`:
    the one-shot ones with, at a P they lack (a grid's `sparse_fractions`), imp's round-1
    tickets there (a round 1 is a one-shot winning ticket); the IMP ones, per seed and P, the
    ticket of the most rounds (round 1 where it is the only one, as at the smallest P)."""
    extra = imp[(imp["round"] == 1) & ~imp.P.isin(winning.P)]
    one_shot = pd.concat([winning, extra[winning.columns.intersection(extra.columns)]], ignore_index=True)
    most = imp.groupby(["seed", "P"])["round"].transform("max") == imp["round"]
    return one_shot, imp[most]


def imp_vs_one_shot(one_shot: pd.DataFrame, imp: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per P that both tables hold and measure (`MEASURES`), the winning tickets paired by seed
    (`ebnb.experiments.winning_tickets` and `imp_tickets`): the seeds, both means, the mean
    difference IMP - one-shot with its two-sided 95% paired t interval, the two-sided paired t
    p-value with Holm over P (per measure), the difference that test detects with 80% power
    (`ebnb.stats.paired_min_detectable_effect` at alpha / 2), the runs at the cap of each, and
    the state: `IMP_HIGHER` or `IMP_LOWER` where the Holm p is below `alpha`, else "not shown
    either way" (never "equal")."""
    rows = []
    for fraction in sorted(set(one_shot["P"]) & set(imp["P"])):
        paired = one_shot[one_shot.P == fraction].merge(
            imp[imp.P == fraction], on="seed", suffixes=("_one_shot", "_imp"), validate="one_to_one"
        )
        for column in MEASURES:
            ours, theirs = paired[f"{column}_imp"].to_numpy(float), paired[f"{column}_one_shot"].to_numpy(float)
            difference, low, high = tests.paired_t_interval(ours, theirs)
            rows.append(
                {
                    "P": fraction,
                    "measure": column,
                    "seeds": len(paired),
                    "one_shot": theirs.mean(),
                    "imp": ours.mean(),
                    "difference": difference,
                    "ci_low": low,
                    "ci_high": high,
                    "p": _paired_p(ours - theirs),
                    "mde": tests.paired_min_detectable_effect(ours - theirs, alpha / 2),
                    "at_cap_one_shot": int((~paired["converged_one_shot"]).sum()),
                    "at_cap_imp": int((~paired["converged_imp"]).sum()),
                }
            )
    table = pd.DataFrame(rows)
    table["p_holm"] = table.groupby("measure", sort=False)["p"].transform(tests.holm)
    shown = table.p_holm < alpha
    table["state"] = np.select(
        [shown & (table.difference > 0), shown & (table.difference < 0)], [IMP_HIGHER, IMP_LOWER], NEITHER
    )
    return table


def imp_lines(table: pd.DataFrame) -> list[str]:
    """One line per row of `imp_vs_one_shot`, e.g. 'P=0.4, retrain length: one-shot 130.2, IMP
    151.0 episodes; IMP - one-shot +20.8 (95% paired CI -12.0 to +53.6; Holm p 0.41; detectable
    at 80% power 47.0; n = 10; at the cap 1 and 2) -> not shown either way'."""
    return [
        f"P={row.P}, {MEASURES[row.measure]}: one-shot {row.one_shot:.1f}, IMP {row.imp:.1f}; IMP - one-shot "
        f"{row.difference:+.1f} (95% paired CI {row.ci_low:+.1f} to {row.ci_high:+.1f}; Holm p {row.p_holm:.2g}; "
        f"detectable at 80% power {row.mde:.1f}; n = {row.seeds}"
        + (f"; at the cap {row.at_cap_one_shot} and {row.at_cap_imp}" if row.measure == "length" else "")
        + f") -> {row.state}"
        for row in table.itertuples()
    ]
