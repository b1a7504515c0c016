"""The Early-Bird criteria (thesis 3.4) by non-inferiority, cell by cell, with their power,
and finetune against retrain."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ebnb import stats as tests

ALPHA = 0.05

# ---- verdicts by non-inferiority (docs/protocol.md, "Statistics") -----------------------------

WORST_RETURN = {"CartPole-v0": 0.0, "Acrobot-v1": -500.0}  # an episode's lowest possible return
NI_RETURN_MARGIN = 0.05  # of the distance from the reference's mean return to the env's worst return
NI_LENGTH_MARGIN = 0.10  # of the reference's mean training length (episodes)
SHOWN_NI, NEITHER, SHOWN_WORSE = "shown non-inferior", "not shown either way", "shown worse"
STATES = (SHOWN_NI, NEITHER, SHOWN_WORSE)
FAILS_4 = "fails criterion 4"  # early_bird's fourth state: 1-3 not shown worse, but a seed pruned too late
VERDICT_CRITERIA = ("1_performance", "2_length", "2_total_cost", "3_winning", "4_earlier", "early_bird")


def ni_margin(reference, higher_is_better: bool, worst_return: float) -> float:
    """The NI margin in units: returns `NI_RETURN_MARGIN` x (mean - worst return), lengths
    `NI_LENGTH_MARGIN` x mean."""
    mean = float(np.mean(reference))
    return NI_RETURN_MARGIN * (mean - worst_return) if higher_is_better else NI_LENGTH_MARGIN * mean


def _comparisons(group: pd.DataFrame, baseline: pd.DataFrame, win: pd.DataFrame) -> dict:
    """name -> (ticket values, reference values, higher_is_better) of one cell's NI tests."""
    return {
        "return_vs_unpruned": (group["test_return"], baseline["test_return"], True),
        "length_vs_unpruned": (group["length"], baseline["converged_episode"], False),
        "total_vs_unpruned": (group["prune_episode"] + group["length"], baseline["converged_episode"], False),
        "return_vs_winning": (group["test_return"], win["test_return"], True),
        "length_vs_winning": (group["length"], win["length"], False),
    }


def ni_tests(
    tickets: pd.DataFrame, baseline: pd.DataFrame, winning: pd.DataFrame, env_id: str, alpha: float = ALPHA
) -> pd.DataFrame:
    """One row per (P, prune_episode, comparison): the seed-level NI test of ticket - reference
    (`ebnb.stats.non_inferiority`) and the one-sided Welch test of 'worse'. Columns: estimate,
    relative (to the reference mean), margin, bound (one-sided 95%, on the worse side) and its
    relative value, p_ni with Holm (p_ni_holm) and BH (p_ni_bh) adjustment over the cells of
    the figure (per comparison), p_worse and p_worse_holm, mde (smallest difference detectable
    at 80% power with these n and spreads), at_cap (ticket runs that hit the cap without
    converging: right-censored lengths; a capped mean is the Kaplan-Meier restricted mean at
    the cap, since runs stop only by converging or at the cap) and state (`STATES`)."""
    worst = WORST_RETURN[env_id]
    rows = []
    for (fraction, episode), group in tickets.groupby(["P", "prune_episode"], sort=True):
        for name, (ticket, reference, higher) in _comparisons(group, baseline, winning[winning.P == fraction]).items():
            margin = ni_margin(reference, higher, worst)
            ni = tests.non_inferiority(ticket, reference, margin, higher, alpha)
            shown_worse = tests.worse(ticket, reference, higher, alpha)
            mean = float(np.mean(reference))
            rows.append(
                {
                    "P": fraction,
                    "prune_episode": episode,
                    "comparison": name,
                    "ticket": float(np.mean(ticket)),
                    "reference": mean,
                    "estimate": ni.estimate,
                    "relative": ni.estimate / abs(mean),
                    "margin": margin,
                    "bound": ni.bound,
                    "bound_relative": ni.bound / abs(mean),
                    "p_ni": ni.p,
                    "p_worse": shown_worse.p,
                    "mde": tests.min_detectable_effect(
                        len(ticket), len(reference), np.std(ticket, ddof=1), np.std(reference, ddof=1), alpha
                    ),
                    "n": len(ticket),
                    "n_reference": len(reference),
                    "at_cap": int((~group["converged"]).sum()) if "length" in name or "total" in name else 0,
                }
            )
    table = pd.DataFrame(rows)
    by = table.groupby("comparison", sort=False)
    table["p_ni_holm"] = by["p_ni"].transform(tests.holm)
    table["p_ni_bh"] = by["p_ni"].transform(tests.benjamini_hochberg)
    table["p_worse_holm"] = by["p_worse"].transform(tests.holm)
    table["state"] = np.select([table.p_ni_holm < alpha, table.p_worse_holm < alpha], [SHOWN_NI, SHOWN_WORSE], NEITHER)
    return table


def _joint_state(states) -> str:
    """Intersection-union: shown non-inferior if every test is; shown worse if any test is."""
    states = list(states)
    return SHOWN_NI if all(s == SHOWN_NI for s in states) else SHOWN_WORSE if SHOWN_WORSE in states else NEITHER


def earlier_per_seed(tickets: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Criterion 4 per seed: per (P, prune_episode), how many seeds' tickets were pruned before
    their own seed's unpruned run converged (a run that never converged counts as converged
    at its cap), of how many. The cell passes only if all seeds do."""
    own = tickets.merge(baseline[["seed", "converged_episode"]], on="seed", validate="many_to_one")
    earlier = own.assign(earlier=own.prune_episode < own.converged_episode)
    counts = earlier.groupby(["P", "prune_episode"], sort=True)["earlier"].agg(seeds_earlier="sum", seeds="size")
    return counts.reset_index().assign(passes=lambda t: t.seeds_earlier == t.seeds)


def _verdicts(table: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    """The verdicts of `early_bird_verdicts` from its `ni_tests` table and `earlier_per_seed`."""
    state = table.set_index(["P", "prune_episode"]).pivot(columns="comparison", values="state")
    earlier = earlier.set_index(["P", "prune_episode"])
    verdicts = pd.DataFrame(
        {
            "1_performance": state["return_vs_unpruned"],
            "2_length": state["length_vs_unpruned"],
            "2_total_cost": state["total_vs_unpruned"],
            "3_winning": state[["return_vs_winning", "length_vs_winning"]].apply(_joint_state, axis=1),
            "4_earlier": earlier["passes"].map({True: "passes", False: "fails"}),
            "seeds_earlier": earlier["seeds_earlier"].astype(int).astype(str) + "/" + earlier["seeds"].astype(str),
        }
    )
    joint = verdicts[["1_performance", "2_length", "3_winning"]].apply(_joint_state, axis=1)
    verdicts["early_bird"] = np.where(earlier["passes"], joint, np.where(joint == SHOWN_WORSE, joint, FAILS_4))
    return verdicts.reset_index()


def early_bird_verdicts(
    tickets: pd.DataFrame, baseline: pd.DataFrame, winning: pd.DataFrame, env_id: str, alpha: float = ALPHA
) -> pd.DataFrame:
    """Per (P, prune_episode): the three-state verdict (`STATES`) of each criterion from
    `ni_tests`: 1 return vs unpruned; 2 post-prune length vs unpruned (the thesis' reading);
    2_total_cost prune episode + length vs unpruned (the whole episode count); 3 return and
    length vs the winning tickets (intersection-union); 4 per seed (`earlier_per_seed`:
    "passes" or "fails"; seeds_earlier "k/n"); early_bird: the joint state of 1, 2 and 3
    (intersection-union) if 4 passes, else `FAILS_4` (unless 1-3 are already shown worse)."""
    return _verdicts(ni_tests(tickets, baseline, winning, env_id, alpha), earlier_per_seed(tickets, baseline))


CELL_COLUMNS = (
    "ticket",
    "reference",
    "estimate",
    "relative",
    "margin",
    "margin_relative",
    "bound",
    "bound_relative",
    "p_ni",
    "p_ni_holm",
    "p_ni_bh",
    "p_worse",
    "p_worse_holm",
    "mde",
    "n",
    "n_reference",
    "at_cap",
    "state",
)


def criteria_table(
    tickets: pd.DataFrame, baseline: pd.DataFrame, winning: pd.DataFrame, env_id: str, alpha: float = ALPHA
) -> pd.DataFrame:
    """One row per (P, prune_episode), the table behind a figure's criteria (its saved CSV):
    the verdicts of `early_bird_verdicts` with criterion 4 as counts (`seeds_earlier` of
    `seeds`), then per comparison of `ni_tests` its `CELL_COLUMNS` as `<comparison>_<column>`
    (e.g. `return_vs_unpruned_p_ni_holm`; `margin_relative`: the margin over |reference mean|)."""
    table = ni_tests(tickets, baseline, winning, env_id, alpha)
    table = table.assign(margin_relative=table.margin / table.reference.abs())
    earlier = earlier_per_seed(tickets, baseline)
    verdicts = _verdicts(table, earlier).drop(columns="seeds_earlier")
    verdicts = verdicts.merge(earlier[["P", "prune_episode", "seeds_earlier", "seeds"]], on=["P", "prune_episode"])
    wide = table.pivot(index=["P", "prune_episode"], columns="comparison", values=list(CELL_COLUMNS))
    names = list(dict.fromkeys(table.comparison))
    wide = wide.reindex(columns=[(column, name) for name in names for column in CELL_COLUMNS])
    wide.columns = [f"{name}_{column}" for column, name in wide.columns]
    return verdicts.merge(wide.reset_index(), on=["P", "prune_episode"], validate="one_to_one")


def verdict_counts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """How many cells of `early_bird_verdicts` (or `criteria_table`) are in each state, per
    criterion (criteria x states)."""
    columns = [c for c in VERDICT_CRITERIA if c in verdicts]
    counts = verdicts[columns].apply(lambda c: c.value_counts()).fillna(0).astype(int).T
    return counts[[s for s in (*STATES, FAILS_4, "passes", "fails") if s in counts]]


def verdict_lines(criteria: pd.DataFrame) -> list[str]:
    """Per criterion of `criteria_table` (or `early_bird_verdicts`), how many cells are in each
    state, as text: the counts a README quotes."""
    counts = verdict_counts(criteria)
    return [
        f"{criterion}: "
        + ", ".join(
            f"{int(counts.at[criterion, state])} {state}" for state in counts.columns if counts.at[criterion, state]
        )
        + f" (of {len(criteria)} cells)"
        for criterion in counts.index
    ]


COMPARISONS = (
    "return_vs_unpruned",
    "length_vs_unpruned",
    "total_vs_unpruned",
    "return_vs_winning",
    "length_vs_winning",
)


def power_lines(criteria: pd.DataFrame) -> list[str]:
    """Per comparison of `criteria_table`: the seeds per group, the NI margin and the smallest
    difference detectable at 80% power (medians over cells), in units and relative to the
    reference mean. An NI test shows a truly equal ticket non-inferior with 80% power only
    where the margin is at least that difference."""
    lines = []
    for name in COMPARISONS:
        n, n_reference, margin, relative_margin, mde = (
            criteria[f"{name}_{c}"].median() for c in ("n", "n_reference", "margin", "margin_relative", "mde")
        )
        relative_mde = (criteria[f"{name}_mde"] / criteria[f"{name}_reference"].abs()).median()
        lines.append(
            f"{name}: n = {n:.0f} vs {n_reference:.0f} seeds; margin {margin:.1f} ({relative_margin:.1%}); "
            f"detectable at 80% power {mde:.1f} ({relative_mde:.1%}) (medians over cells)"
        )
    return lines


def finetune_vs_retrain(retrain: pd.DataFrame, finetune: pd.DataFrame) -> pd.DataFrame:
    """Per P, at seed level: each seed's mean training length over the prune episodes, retrained
    and finetuned (one pair per seed: the cells of a seed share its dense run), an exact
    one-sided Wilcoxon signed-rank test of 'finetuning trains for fewer episodes', Holm over
    P, and the mean test returns."""
    keys = ["seed", "P", "prune_episode"]
    paired = retrain.merge(finetune, on=keys, suffixes=("_retrain", "_finetune"))
    per_seed = paired.groupby(["P", "seed"], sort=True).mean(numeric_only=True).reset_index()
    rows = []
    for fraction, group in per_seed.groupby("P", sort=True):
        rows.append(
            {
                "P": fraction,
                "seeds": len(group),
                "length_retrain": group["length_retrain"].mean(),
                "length_finetune": group["length_finetune"].mean(),
                "p_finetune_shorter": tests.paired_wilcoxon(
                    group["length_retrain"], group["length_finetune"], "greater"
                ),
                "test_return_retrain": group["test_return_retrain"].mean(),
                "test_return_finetune": group["test_return_finetune"].mean(),
            }
        )
    table = pd.DataFrame(rows)
    return table.assign(p_holm=tests.holm(table["p_finetune_shorter"]))
