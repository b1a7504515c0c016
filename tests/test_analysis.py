"""`ebnb.statistics`: the IQM and its bootstrap interval, and TOST (the EB Exploit sweep's
equivalence test of returns); the verdicts of the EB criteria are tested in test_verdicts.py."""

from __future__ import annotations

import numpy as np
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
