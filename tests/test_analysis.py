"""`ebnb.statistics`: the IQM and its bootstrap interval; the verdicts of the EB criteria are
tested in test_verdicts.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ebnb import analysis
from ebnb.statistics import iqm, iqm_ci, p_worse

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
