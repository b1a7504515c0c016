"""The EB criteria by non-inferiority (`ebnb.analysis.ni_tests`, `early_bird_verdicts`): the
direction and sign of the margin, Holm over the cells of a figure, three states, criterion 4
per seed, and the verdicts on the published full-profile tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ebnb import analysis, experiments, stats
from ebnb.store import Store

SEEDS = 10


def synthetic():
    """Cells (P, e): (0.2, 10) as good as the unpruned network and faster, pruned before every
    seed converged; (0.2, 90) the same but pruned after seed 0 converged (at 80); (0.8, 10)
    far worse returns; (0.8, 90) returns worse by about the margin (10), noisy."""
    rng = np.random.default_rng(3)
    converged = np.r_[80.0, np.full(SEEDS - 1, 120.0)] + rng.normal(0, 1, SEEDS)
    baseline = pd.DataFrame(
        {"seed": range(SEEDS), "test_return": 200.0 + rng.normal(0, 1, SEEDS), "converged_episode": converged}
    )
    winning, rows = [], []
    for fraction in (0.2, 0.8):
        winning += [
            {"seed": s, "P": fraction, "test_return": 200.0 + rng.normal(0, 1), "length": 110.0 + rng.normal(0, 2)}
            for s in range(SEEDS)
        ]
        for episode in (10, 90):
            shift, spread = {(0.2, 10): (0, 1), (0.2, 90): (0, 1), (0.8, 10): (-60, 1), (0.8, 90): (-10, 20)}[
                fraction, episode
            ]
            rows += [
                {
                    "seed": s,
                    "P": fraction,
                    "prune_episode": episode,
                    "test_return": 200.0 + shift + rng.normal(0, spread),
                    "length": 60.0 + rng.normal(0, 2),
                    "converged": True,
                }
                for s in range(SEEDS)
            ]
    return pd.DataFrame(rows), baseline, pd.DataFrame(winning)


def cell(table, fraction, episode, comparison=None):
    rows = table[(table.P == fraction) & (table.prune_episode == episode)]
    return (rows[rows.comparison == comparison] if comparison else rows).iloc[0]


def test_three_states_on_clear_cases():
    tickets, baseline, winning = synthetic()
    table = analysis.ni_tests(tickets, baseline, winning, "CartPole-v0")
    assert cell(table, 0.2, 10, "return_vs_unpruned").state == analysis.SHOWN_NI
    assert cell(table, 0.2, 10, "length_vs_unpruned").state == analysis.SHOWN_NI, "shorter is better for lengths"
    assert cell(table, 0.8, 10, "return_vs_unpruned").state == analysis.SHOWN_WORSE
    assert cell(table, 0.8, 90, "return_vs_unpruned").state == analysis.NEITHER, "noisy: neither shown"
    assert cell(table, 0.2, 90, "total_vs_unpruned").state == analysis.SHOWN_WORSE, "90 + 60 episodes vs ~116"
    margin = cell(table, 0.2, 10, "return_vs_unpruned").margin
    assert margin == pytest.approx(0.05 * baseline.test_return.mean()), "CartPole's worst return is 0"
    assert analysis.ni_margin([-100.0], True, analysis.WORST_RETURN["Acrobot-v1"]) == pytest.approx(20.0)
    assert analysis.ni_margin([200.0], False, 0.0) == pytest.approx(20.0)


def test_ni_p_values_are_the_welch_ni_test_and_holm_over_the_cells_of_a_comparison():
    tickets, baseline, winning = synthetic()
    table = analysis.ni_tests(tickets, baseline, winning, "CartPole-v0")
    row = cell(table, 0.8, 90, "return_vs_unpruned")
    ticket = tickets[(tickets.P == 0.8) & (tickets.prune_episode == 90)].test_return
    expected = stats.non_inferiority(ticket, baseline.test_return, row.margin, True)
    assert (row.estimate, row.bound, row.p_ni) == pytest.approx(tuple(expected))
    for _, group in table.groupby("comparison"):
        assert group.p_ni_holm.to_numpy() == pytest.approx(stats.holm(group.p_ni))
        assert len(group) == 4
    assert (table.p_ni_holm >= table.p_ni).all() and (table.p_ni_holm > table.p_ni).any()


def test_criterion_4_is_judged_per_seed_not_against_the_mean():
    tickets, baseline, winning = synthetic()
    earlier = analysis.earlier_per_seed(tickets, baseline).set_index(["P", "prune_episode"])
    assert earlier.loc[(0.2, 10)].tolist() == [SEEDS, SEEDS, True]
    assert earlier.loc[(0.2, 90)].tolist() == [SEEDS - 1, SEEDS, False], "90 < mean convergence, not seed 0's 80"
    verdicts = analysis.early_bird_verdicts(tickets, baseline, winning, "CartPole-v0").set_index(["P", "prune_episode"])
    assert verdicts.loc[(0.2, 10), "early_bird"] == analysis.SHOWN_NI
    assert verdicts.loc[(0.2, 90), "early_bird"] == "fails criterion 4"
    assert verdicts.loc[(0.8, 10), "early_bird"] == analysis.SHOWN_WORSE
    assert verdicts.loc[(0.2, 90), "seeds_earlier"] == f"{SEEDS - 1}/{SEEDS}"


def test_criterion_3_is_shown_only_if_both_of_its_tests_are():
    assert analysis.criteria._joint_state([analysis.SHOWN_NI, analysis.SHOWN_NI]) == analysis.SHOWN_NI
    assert analysis.criteria._joint_state([analysis.SHOWN_NI, analysis.NEITHER]) == analysis.NEITHER
    assert analysis.criteria._joint_state([analysis.SHOWN_NI, analysis.SHOWN_WORSE]) == analysis.SHOWN_WORSE


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The published full profile's units (results/ holds other profiles' beside them), read
    into an empty store."""
    full, store, results = (
        experiments.grid("full"),
        Store(tmp_path_factory.mktemp("store")),
        experiments.published_results(),
    )

    def load(env, step):
        return getattr(experiments, step)(env, full, store, results)

    return load


@pytest.mark.parametrize("env", ["CartPole-v0", "Acrobot-v1"])
def test_published_verdicts_no_ticket_is_cheaper_counted_whole(published, env):
    """Issue 28.4: counted as prune episode + finetune length, no cell is shown non-inferior."""
    baseline, winning = published(env, "baseline"), published(env, "winning_tickets")
    for mode in ("retrain", "finetune"):
        verdicts = analysis.early_bird_verdicts(published(env, mode), baseline, winning, env)
        assert len(verdicts) == 48
        assert (verdicts["2_total_cost"] != analysis.SHOWN_NI).all()
        counts = analysis.verdict_counts(verdicts)
        assert counts.sum(axis=1).eq(48).all()


def test_the_criteria_table_carries_each_cells_tests_and_verdicts():
    """The saved CSV's table: one row per cell, the verdicts of `early_bird_verdicts` with
    criterion 4 as counts, and every `ni_tests` column per comparison, value for value."""
    tickets, baseline, winning = synthetic()
    criteria = analysis.criteria_table(tickets, baseline, winning, "CartPole-v0")
    table = analysis.ni_tests(tickets, baseline, winning, "CartPole-v0")
    verdicts = analysis.early_bird_verdicts(tickets, baseline, winning, "CartPole-v0")
    assert len(criteria) == 4
    assert (criteria[list(analysis.VERDICT_CRITERIA)] == verdicts[list(analysis.VERDICT_CRITERIA)]).all().all()
    assert (
        criteria.seeds_earlier.astype(str) + "/" + criteria.seeds.astype(str)
    ).tolist() == verdicts.seeds_earlier.tolist()
    for row in table.itertuples():
        mine = criteria[(criteria.P == row.P) & (criteria.prune_episode == row.prune_episode)].iloc[0]
        for column in analysis.CELL_COLUMNS:
            if column != "margin_relative":
                assert mine[f"{row.comparison}_{column}"] == getattr(row, column), (row.comparison, column)
        assert mine[f"{row.comparison}_margin_relative"] == pytest.approx(row.margin / abs(row.reference))
    counts = analysis.verdict_counts(criteria)
    assert list(counts.columns[:3]) == list(analysis.STATES)
    assert counts.loc["1_performance", list(analysis.STATES)].tolist() == [2, 1, 1]


def test_power_lines_name_the_seeds_the_margin_and_the_detectable_difference():
    criteria = analysis.criteria_table(*synthetic(), "CartPole-v0")
    lines = analysis.power_lines(criteria)
    assert [line.split(":")[0] for line in lines] == list(analysis.COMPARISONS)
    margin = criteria.return_vs_unpruned_margin.median()
    assert f"n = {SEEDS} vs {SEEDS} seeds; margin {margin:.1f}" in lines[0]
    assert f"detectable at 80% power {criteria.return_vs_unpruned_mde.median():.1f}" in lines[0]


def test_verdict_lines_count_each_state_of_each_criterion():
    criteria = analysis.criteria_table(*synthetic(), "CartPole-v0")
    lines = analysis.verdict_lines(criteria)
    assert lines[0] == "1_performance: 2 shown non-inferior, 1 not shown either way, 1 shown worse (of 4 cells)"
    assert "4_earlier: 2 passes, 2 fails (of 4 cells)" in lines


def test_eb_exploit_power_is_the_paired_detectable_difference_per_p():
    baseline = pd.DataFrame({"seed": range(4), "converged_episode": [100, 110, 120, 130]})
    results = pd.DataFrame(
        {
            "seed": list(range(4)) * 2,
            "P": [0.2] * 4 + [0.8] * 4,
            "search_length": [50] * 8,
            "finetune_length": [60, 50, 80, 70, 70, 80, 90, 100],
        }
    )
    power = analysis.eb_exploit_power(results, baseline)
    assert power.P.tolist() == [0.2, 0.8] and power.seeds.tolist() == [4, 4]
    assert power.margin.tolist() == pytest.approx([11.5, 11.5])
    assert power.mde.iloc[0] == pytest.approx(stats.paired_min_detectable_effect([10, -10, 10, -10]))
    assert power.mde.iloc[1] == 0.0, "the same difference for every seed: no spread"
