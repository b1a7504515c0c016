"""The thesis' claims as computations on results: the four Early-Bird ticket criteria (3.4),
finetune vs retrain, EB Exploit vs unpruned.

"Similar or better" is decided by a one-sided Welch t-test at level `alpha`: a criterion is
met unless the ticket is significantly worse (lower test return, or longer training) than
the reference. With 10 seeds this is lenient by design, as the thesis' visual reading was; the
p-values are in the tables so a reader can apply a stricter rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05


def p_worse(ticket, reference, higher_is_better: bool) -> float:
    """One-sided Welch t-test p-value for 'ticket is worse than reference' (1.0 when undefined)."""
    ticket, reference = np.asarray(ticket, float), np.asarray(reference, float)
    if len(ticket) < 2 or len(reference) < 2 or (ticket.std() == 0 and reference.std() == 0):
        worse = ticket.mean() < reference.mean() if higher_is_better else ticket.mean() > reference.mean()
        return 0.0 if worse else 1.0
    alternative = "less" if higher_is_better else "greater"
    return float(stats.ttest_ind(ticket, reference, equal_var=False, alternative=alternative).pvalue)


def early_bird_criteria(tickets: pd.DataFrame, baseline: pd.DataFrame, winning: pd.DataFrame,
                        alpha: float = ALPHA) -> pd.DataFrame:  # fmt: skip
    """Per (P, prune_episode): the four EB-ticket criteria of thesis section 3.4.

    1. performance: test return not significantly below the unpruned network's;
    2. length: training length not significantly above the unpruned network's;
    3. winning: neither return below nor length above the winning tickets' (same P);
    4. earlier: pruned before the unpruned network converges (mean convergence episode).
    """
    rows = []
    unpruned_length = baseline["converged_episode"].mean()
    for (fraction, episode), group in tickets.groupby(["P", "prune_episode"], sort=True):
        win = winning[winning.P == fraction]
        row = {
            "P": fraction, "prune_episode": episode,
            "test_return": group["test_return"].mean(), "length": group["length"].mean(),
            "p_return_vs_unpruned": p_worse(group["test_return"], baseline["test_return"], True),
            "p_length_vs_unpruned": p_worse(group["length"], baseline["converged_episode"], False),
            "p_return_vs_winning": p_worse(group["test_return"], win["test_return"], True),
            "p_length_vs_winning": p_worse(group["length"], win["length"], False),
        }  # fmt: skip
        row["1_performance"] = row["p_return_vs_unpruned"] >= alpha
        row["2_length"] = row["p_length_vs_unpruned"] >= alpha
        row["3_winning"] = row["p_return_vs_winning"] >= alpha and row["p_length_vs_winning"] >= alpha
        row["4_earlier"] = episode < unpruned_length
        row["early_bird"] = row["1_performance"] and row["2_length"] and row["3_winning"] and row["4_earlier"]
        rows.append(row)
    return pd.DataFrame(rows)


def finetune_vs_retrain(retrain: pd.DataFrame, finetune: pd.DataFrame) -> pd.DataFrame:
    """Per P: mean training length and test return of both, and a paired Wilcoxon test of
    'finetuning trains for fewer episodes' over matching (seed, prune_episode)."""
    keys = ["seed", "P", "prune_episode"]
    paired = retrain.merge(finetune, on=keys, suffixes=("_retrain", "_finetune"))
    rows = []
    for fraction, group in paired.groupby("P", sort=True):
        difference = group["length_retrain"] - group["length_finetune"]
        p = 1.0 if (difference == 0).all() else float(stats.wilcoxon(difference, alternative="greater").pvalue)
        rows.append({
            "P": fraction, "length_retrain": group["length_retrain"].mean(),
            "length_finetune": group["length_finetune"].mean(), "p_finetune_shorter": p,
            "test_return_retrain": group["test_return_retrain"].mean(),
            "test_return_finetune": group["test_return_finetune"].mean(),
        })  # fmt: skip
    return pd.DataFrame(rows)


def eb_exploit_summary(results: pd.DataFrame, baseline: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per P: how often a ticket was found, lengths, test return, and whether EB Exploit is
    not significantly worse than the unpruned network in return and total training length."""
    rows = []
    for fraction, group in results.groupby("P", sort=True):
        total = group["search_length"] + group["finetune_length"]
        p_return = p_worse(group["test_return"], baseline["test_return"], True)
        p_length = p_worse(total, baseline["converged_episode"], False)
        rows.append({
            "P": fraction, "found": group["found"].mean(), "prune_episode": group.loc[group.found, "prune_episode"].mean(),
            "search_length": group["search_length"].mean(), "finetune_length": group["finetune_length"].mean(),
            "total_length": total.mean(), "unpruned_length": baseline["converged_episode"].mean(),
            "test_return": group["test_return"].mean(), "unpruned_test_return": baseline["test_return"].mean(),
            "return_ok": p_return >= alpha, "length_ok": p_length >= alpha,
        })  # fmt: skip
    return pd.DataFrame(rows)


def mask_similarity_summary(similarity: dict[float, pd.DataFrame], settled: float = 0.9) -> pd.DataFrame:
    """Per P: similarity of the first mask to the last; mean similarity of consecutive masks in
    the first and last tenth of training; the first episode from which every later mask is at
    least `settled` similar to the final one."""
    rows = []
    for fraction, matrix in sorted(similarity.items()):
        values, episodes = matrix.to_numpy(), matrix.index.to_numpy()
        consecutive = np.diag(values, 1)
        tenth = max(1, len(consecutive) // 10)
        to_last = values[:, -1]
        unsettled = np.flatnonzero(to_last < settled)
        settles = episodes[unsettled[-1] + 1] if len(unsettled) and unsettled[-1] + 1 < len(episodes) else (
            episodes[0] if not len(unsettled) else np.nan)
        rows.append({
            "P": fraction, "first_vs_last": values[0, -1],
            "consecutive_early": consecutive[:tenth].mean(), "consecutive_late": consecutive[-tenth:].mean(),
            f"settles_at_{settled}": settles,
        })  # fmt: skip
    return pd.DataFrame(rows)
