"""The statistics behind the EB-ticket criteria: IQM and its bootstrap interval, TOST, and the
criteria judged by Welch and by TOST side by side (`ebnb.statistics`, `ebnb.analysis`)."""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ebnb import analysis
from ebnb.statistics import iqm, iqm_ci, p_tost, p_worse

# ---- IQM and its bootstrap interval ------------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # mean of 3, 4, 5, 6
    assert iqm(range(1, 11)) == 5.5 == np.mean(range(3, 9)), "n = 10: 2 cut from each end, the middle 6"
    assert iqm([0, 0, 1, 1, 1, 1, 1, 1, 100, 100]) == 1.0
    assert iqm([-100, 1, 2, 3, 4, 5, 6, 100]) == 3.5  # outliers cut: mean of 2, 3, 4, 5
    assert iqm([7, 1, 3, 5]) == 4.0  # order does not matter: mean of 3, 5
    assert iqm([2.0, 2.0, 2.0]) == 2.0


@pytest.mark.parametrize("values", [
    [-500.0] * 6 + [-120.0, -100.0, -95.0, -90.0],  # Acrobot returns, a capped tail
    [500.0] * 8 + [300.0, 120.0],  # lengths at the episode cap
    list(np.random.default_rng(1).exponential(50.0, 10)),
    [3.0, 1.0, 2.0],
])  # fmt: skip
def test_the_iqm_interval_holds_the_iqm_and_stays_within_the_data(values):
    centre, low, high = iqm_ci(values)
    assert centre == iqm(values)
    assert min(values) <= low <= centre <= high <= max(values)
    assert iqm_ci(values) == (centre, low, high), "a fixed generator: the same interval every time"


def test_the_iqm_interval_is_the_percentile_bootstrap_over_seeds():
    """Against a hand-written percentile bootstrap (another generator: equal up to Monte Carlo error)."""
    values = np.random.default_rng(3).normal(100.0, 10.0, 30)
    centre, low, high = iqm_ci(values)
    resamples = values[np.random.default_rng(7).integers(0, len(values), (10_000, len(values)))]
    hand_low, hand_high = np.percentile(stats.trim_mean(resamples, 0.25, axis=1), [2.5, 97.5])
    assert low == pytest.approx(hand_low, abs=0.05 * (hand_high - hand_low))
    assert high == pytest.approx(hand_high, abs=0.05 * (hand_high - hand_low))
    assert iqm_ci(values, confidence=0.5)[1] > low, "a narrower confidence level, a narrower interval"


def test_the_iqm_interval_is_undefined_below_three_seeds_and_a_point_without_spread():
    for values in ([1.0, 3.0], [4.0]):
        centre, low, high = iqm_ci(values)
        assert centre == iqm(values) and np.isnan(low) and np.isnan(high)
    assert iqm_ci([5.0] * 4) == (5.0, 5.0, 5.0)


# ---- TOST --------------------------------------------------------------------------------------


def test_tost_finds_two_large_samples_of_the_same_distribution_equivalent():
    rng = np.random.default_rng(0)
    ticket, reference = rng.normal(100.0, 5.0, 500), rng.normal(100.0, 5.0, 500)
    assert p_tost(ticket, reference, margin=2.0) < 1e-6
    assert p_tost(ticket, reference, margin=0.0) >= 0.5, "no margin: equivalence cannot be shown"


@pytest.mark.parametrize("shift", [-8.0, 8.0])
def test_tost_rejects_equivalence_when_the_means_differ_by_more_than_the_margin(shift):
    rng = np.random.default_rng(1)
    ticket, reference = rng.normal(100.0 + shift, 5.0, 500), rng.normal(100.0, 5.0, 500)
    assert p_tost(ticket, reference, margin=5.0) > 0.99
    assert p_tost(ticket, reference, margin=12.0) < 0.001


def test_tost_p_value_is_the_larger_of_two_shifted_one_sided_welch_tests():
    ticket = np.array([101.0, 97.0, 104.0, 99.0, 103.0, 98.0, 102.0])
    reference = np.array([100.0, 95.0, 99.0, 102.0, 96.0, 101.0, 97.0, 98.0])
    margin = 3.0
    lower = stats.ttest_ind(ticket + margin, reference, equal_var=False, alternative="greater").pvalue
    upper = stats.ttest_ind(ticket - margin, reference, equal_var=False, alternative="less").pvalue
    assert p_tost(ticket, reference, margin) == pytest.approx(max(lower, upper), rel=1e-12)
    # the same by the Welch formulas
    var_t, var_r = ticket.var(ddof=1) / len(ticket), reference.var(ddof=1) / len(reference)
    se = np.sqrt(var_t + var_r)
    df = (var_t + var_r) ** 2 / (var_t**2 / (len(ticket) - 1) + var_r**2 / (len(reference) - 1))
    difference = ticket.mean() - reference.mean()
    by_hand = max(stats.t.sf((difference + margin) / se, df), stats.t.cdf((difference - margin) / se, df))
    assert p_tost(ticket, reference, margin) == pytest.approx(by_hand, rel=1e-9)
    assert 0.01 < by_hand < 0.99, "a case where both one-sided tests matter"


@pytest.mark.parametrize(("ticket", "reference", "margin", "expected"), [
    ([96.0] * 5, [100.0] * 5, 5.0, 0.0),  # no spread, within the margin
    ([94.0] * 5, [100.0] * 5, 5.0, 1.0),  # no spread, outside
    ([95.0] * 5, [100.0] * 5, 5.0, 1.0),  # on the margin: not within
    ([104.0], [100.0, 99.0, 101.0], 5.0, 0.0),  # one ticket
    ([110.0, 90.0], [100.0], 5.0, 0.0),  # one reference value
    ([100.0] * 3, [100.0] * 3, 0.0, 1.0),  # margin 0: never equivalent
])  # fmt: skip
def test_tost_degenerate_samples_are_decided_by_the_means(ticket, reference, margin, expected):
    assert p_tost(ticket, reference, margin) == expected


def test_p_worse_is_still_importable_from_analysis():
    assert analysis.p_worse is p_worse


# ---- the criteria judged by both methods -------------------------------------------------------


def synthetic(seeds: int = 6):
    """Tickets at two P and two prune episodes: P=0.2 like the unpruned network, P=0.8 far worse
    returns; at episode 10 the P=0.2 tickets train much faster than the unpruned network."""
    rng = np.random.default_rng(5)
    baseline = pd.DataFrame({"seed": range(seeds), "test_return": rng.normal(200.0, 1.0, seeds),
                             "converged_episode": rng.normal(100.0, 2.0, seeds)})  # fmt: skip
    rows, winning = [], []
    for fraction in (0.2, 0.8):
        winning += [{"seed": s, "P": fraction, "test_return": 200.0 + rng.normal(0, 1), "length": 100.0 + rng.normal(0, 2)}
                    for s in range(seeds)]  # fmt: skip
        for episode in (10, 150):
            for seed in range(seeds):
                worse = 60.0 if fraction == 0.8 else 0.0
                faster = 60.0 if (fraction, episode) == (0.2, 10) else 0.0
                rows.append({"seed": seed, "P": fraction, "prune_episode": episode,
                             "test_return": 200.0 - worse + rng.normal(0, 1), "length": 100.0 - faster + rng.normal(0, 2)})  # fmt: skip
    return pd.DataFrame(rows), baseline, pd.DataFrame(winning)


def test_the_compared_table_has_both_methods_for_every_cell_and_criterion():
    tickets, baseline, winning = synthetic()
    compared = analysis.early_bird_criteria_compared(tickets, baseline, winning)
    assert list(compared.columns) == ["P", "prune_episode", "criterion", "method", "met", "p"]
    assert len(compared) == 4 * len(analysis.CRITERIA) * len(analysis.METHODS)
    counts = compared.groupby(["P", "prune_episode", "criterion"])["method"].agg(lambda m: tuple(m))
    assert (counts == analysis.METHODS).all()
    assert compared["met"].dtype == bool
    untested = compared.criterion.isin(["4_earlier", "early_bird"])
    assert compared.loc[untested, "p"].isna().all() and compared.loc[~untested, "p"].notna().all()


def test_each_method_column_is_early_bird_criteria_judged_by_that_method():
    tickets, baseline, winning = synthetic()
    compared = analysis.early_bird_criteria_compared(tickets, baseline, winning)
    for method in analysis.METHODS:
        wide = analysis.early_bird_criteria(tickets, baseline, winning, method=method)
        mine = compared[compared.method == method].pivot(index=["P", "prune_episode"], columns="criterion", values="met")
        expected = wide.set_index(["P", "prune_episode"])[list(analysis.CRITERIA)].astype(bool)
        pd.testing.assert_frame_equal(mine.rename_axis(columns=None), expected)
        p = compared[(compared.method == method) & (compared.criterion == "3_winning")]["p"].to_numpy()
        both = wide[["p_return_vs_winning", "p_length_vs_winning"]].to_numpy()
        assert np.allclose(p, both.min(axis=1) if method == "welch" else both.max(axis=1))


def test_welch_and_tost_verdicts_on_clear_cases():
    tickets, baseline, winning = synthetic()
    compared = analysis.early_bird_criteria_compared(tickets, baseline, winning).set_index(
        ["P", "prune_episode", "criterion", "method"])["met"]  # fmt: skip
    # like the unpruned network, pruned before it converges: both methods find an EB ticket
    assert compared[(0.2, 10, "1_performance", "tost")] and compared[(0.2, 10, "early_bird", "welch")]
    # far worse return: neither method meets criterion 1
    assert not compared[(0.8, 10, "1_performance", "welch")] and not compared[(0.8, 10, "1_performance", "tost")]
    # much faster training: not worse (Welch), but not equivalent either (TOST)
    assert compared[(0.2, 10, "2_length", "welch")] and not compared[(0.2, 10, "2_length", "tost")]
    # pruned after the unpruned network converged: criterion 4 fails for both
    assert not compared[(0.2, 150, "4_earlier", "welch")] and not compared[(0.2, 150, "4_earlier", "tost")]
    disagreements = analysis.criteria_disagreements(analysis.early_bird_criteria_compared(tickets, baseline, winning))
    assert ((disagreements.P == 0.2) & (disagreements.prune_episode == 10) & (disagreements.criterion == "2_length")).any()
    assert (disagreements.met_welch != disagreements.met_tost).all()


def test_tost_margins_are_relative_to_the_reference_mean():
    """Zero spread: TOST decides by |difference| < margin, so the margin is visible exactly."""
    baseline = pd.DataFrame({"test_return": [-100.0] * 3, "converged_episode": [200.0] * 3})
    winning = pd.DataFrame({"P": [0.5] * 3, "test_return": [-50.0] * 3, "length": [100.0] * 3})
    margins = analysis.equivalence_margins(baseline, winning)
    assert margins.to_dict("list") == {"reference": ["unpruned", "winning P=0.5"], "mean_return": [-100.0, -50.0],
                                       "return_margin": [5.0, 2.5], "mean_length": [200.0, 100.0],
                                       "length_margin": [20.0, 10.0]}  # fmt: skip

    def verdicts(test_return, length):
        tickets = pd.DataFrame({"P": [0.5] * 3, "prune_episode": [1] * 3, "test_return": [test_return] * 3,
                                "length": [length] * 3})  # fmt: skip
        return analysis.early_bird_criteria(tickets, baseline, winning, method="tost").iloc[0]

    assert verdicts(-104.0, 181.0)[["1_performance", "2_length"]].all()
    assert not verdicts(-106.0, 181.0)["1_performance"] and not verdicts(-104.0, 179.0)["2_length"]
    assert not verdicts(-96.0, 221.0)["2_length"], "above the margin is not equivalent either"
    assert not verdicts(-104.0, 181.0)["3_winning"], "vs the winning tickets: within 2.5 and 10 of -50 and 100"
    assert verdicts(-52.0, 109.0)["3_winning"] and not verdicts(-53.0, 109.0)["3_winning"]


def test_an_unknown_method_is_refused():
    tickets, baseline, winning = synthetic()
    with pytest.raises(ValueError, match="method"):
        analysis.early_bird_criteria(tickets, baseline, winning, method="bayes")


def test_disagreement_lines_name_every_disagreeing_cell():
    tickets, baseline, winning = synthetic()
    disagreements = analysis.criteria_disagreements(analysis.early_bird_criteria_compared(tickets, baseline, winning))
    lines = analysis.disagreement_lines(disagreements)
    assert sum(int(line.split(", ")[-1].split(" cells")[0].split()[-1]) for line in lines) == len(disagreements)
    assert analysis.disagreement_lines(disagreements.iloc[:0]) == ["The methods agree on every cell."]


# ---- the published full-profile results --------------------------------------------------------


@pytest.fixture(scope="module")
def published_cartpole():
    from ebnb import experiments
    from ebnb.store import Store

    grid, published = experiments.grid("full"), experiments.published_results()
    with tempfile.TemporaryDirectory() as directory:
        store = Store(directory)
        yield (experiments.retrain("cartpole", grid, store, published),
               experiments.baseline("cartpole", grid, store, published),
               experiments.winning_tickets("cartpole", grid, store, published))  # fmt: skip


def test_published_cartpole_retrain_criteria_judged_twice(published_cartpole):
    retrain, baseline, winning = published_cartpole
    compared = analysis.early_bird_criteria_compared(retrain, baseline, winning)
    assert len(compared) == 48 * 5 * 2
    welch = analysis.early_bird_criteria(retrain, baseline, winning)
    mine = compared[compared.method == "welch"].pivot(index=["P", "prune_episode"], columns="criterion", values="met")
    assert (mine[list(analysis.CRITERIA)].to_numpy() == welch[list(analysis.CRITERIA)].to_numpy()).all()
    counts = analysis.criteria_counts(compared)
    assert counts.loc["early_bird", "welch"] == welch.early_bird.sum() == 17
    assert (counts["welch"] == welch[list(analysis.CRITERIA)].sum()).all() and list(counts.columns) == ["welch", "tost"]
    disagreements = analysis.criteria_disagreements(compared)
    by_cell = compared.pivot_table(index=["P", "prune_episode", "criterion"], columns="method", values="met")
    assert len(disagreements) == (by_cell["welch"] != by_cell["tost"]).sum() > 0


def test_a_bootstrap_over_columns_equals_the_bootstrap_of_each_column():
    """The input-survival figure bootstraps every episode at once; each column's interval is
    the one `bootstrap_interval` gives that column alone (up to the rounding of numpy's mean,
    which sums a strided column in another order)."""
    from ebnb.statistics import bootstrap_interval

    values = np.random.default_rng(5).normal(size=(10, 7))
    low, high = bootstrap_interval(values, np.mean)
    for column in range(values.shape[1]):
        np.testing.assert_allclose((low[column], high[column]), bootstrap_interval(values[:, column], np.mean),
                                   rtol=1e-12)
