"""The tests of `ebnb.stats` against known values: scipy's Welch t-tests shifted by the margin,
scipy's Benjamini-Hochberg, a hand-worked Holm example, a hand-worked Kaplan-Meier restricted
mean, scipy's exact Wilcoxon and paired t interval, and the power of the minimum detectable
effect by simulation; the interquartile mean and its bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ebnb import stats

RNG = np.random.default_rng(11)
TICKET, REFERENCE = RNG.normal(-110.0, 12.0, 10), RNG.normal(-100.0, 6.0, 10)


@pytest.mark.parametrize("margin", [0.0, 5.0, 20.0])
def test_ni_for_returns_is_welch_shifted_by_the_margin(margin):
    ni = stats.non_inferiority(TICKET, REFERENCE, margin, higher_is_better=True)
    scipy = scipy_stats.ttest_ind(TICKET + margin, REFERENCE, equal_var=False, alternative="greater")
    assert ni.p == pytest.approx(scipy.pvalue, rel=1e-9)
    assert ni.estimate == pytest.approx(TICKET.mean() - REFERENCE.mean())
    assert ni.bound == pytest.approx(scipy.confidence_interval(0.95).low - margin, rel=1e-9)
    assert (ni.p < 0.05) == (ni.bound > -margin)


@pytest.mark.parametrize("margin", [0.0, 5.0, 20.0])
def test_ni_for_lengths_is_welch_shifted_by_the_margin(margin):
    ticket, reference = -TICKET, -REFERENCE  # lengths: lower is better
    ni = stats.non_inferiority(ticket, reference, margin, higher_is_better=False)
    scipy = scipy_stats.ttest_ind(ticket - margin, reference, equal_var=False, alternative="less")
    assert ni.p == pytest.approx(scipy.pvalue, rel=1e-9)
    assert ni.bound == pytest.approx(scipy.confidence_interval(0.95).high + margin, rel=1e-9)
    assert (ni.p < 0.05) == (ni.bound < margin)


def test_ni_rejects_for_a_better_ticket_and_a_wide_margin_not_for_a_worse_one():
    better, reference = np.arange(10.0) + 50, np.arange(10.0)
    assert stats.non_inferiority(better, reference, 1.0, True).p < 1e-6
    assert stats.non_inferiority(reference, better, 1.0, True).p > 1 - 1e-6
    assert stats.non_inferiority(reference, better, 100.0, True).p < 1e-6, "a margin wider than the gap"
    assert stats.non_inferiority(better, reference, 1.0, False).p > 1 - 1e-6, "longer is worse for lengths"
    with pytest.raises(ValueError, match="margin"):
        stats.non_inferiority(better, reference, -1.0, True)


def test_samples_without_spread_are_decided_by_their_means():
    capped = np.full(10, 200.0)
    assert stats.non_inferiority(capped, capped - 5, 0.0, True) == (5.0, 5.0, 0.0)
    assert stats.non_inferiority(capped - 5, capped, 4.0, True).p == 1.0
    assert stats.non_inferiority(capped - 5, capped, 6.0, True).p == 0.0
    assert stats.worse(capped - 5, capped, True).p == 0.0 and stats.worse(capped, capped, True).p == 1.0


@pytest.mark.parametrize(
    ("ticket", "reference", "higher", "expected"),
    [
        ([104.0], [100.0, 99.0, 101.0], False, 0.0),  # one ticket, longer: worse
        ([104.0], [100.0, 99.0, 101.0], True, 1.0),
        ([110.0, 90.0], [100.0], True, 1.0),  # one reference value, equal means: not worse
        ([95.0, 80.0], [100.0], True, 0.0),
    ],
)
def test_a_sample_of_one_value_is_decided_by_the_means(ticket, reference, higher, expected):
    assert stats.worse(ticket, reference, higher).p == expected
    assert stats.paired_worse(ticket[:1], reference[:1], higher).p == expected


def test_worse_is_scipys_one_sided_welch_test():
    for higher, alternative in ((True, "less"), (False, "greater")):
        scipy = scipy_stats.ttest_ind(TICKET, REFERENCE, equal_var=False, alternative=alternative)
        shown = stats.worse(TICKET, REFERENCE, higher)
        assert shown.p == pytest.approx(scipy.pvalue, rel=1e-9)
        ci = scipy.confidence_interval(0.95)
        assert shown.bound == pytest.approx(ci.high if higher else ci.low, rel=1e-9)


def test_holm_by_hand():
    """m = 4, sorted 0.005, 0.01, 0.03, 0.04: x4 = 0.02, x3 = 0.03, x2 = 0.06, x1 = 0.04 -> 0.06 (step-down)."""
    p = [0.01, 0.04, 0.03, 0.005]
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]), "capped at 1"
    assert stats.holm([0.02]) == pytest.approx([0.02])


def test_holm_lies_between_raw_and_bonferroni():
    p = RNG.uniform(0, 0.2, 48)
    adjusted = stats.holm(p)
    assert np.all(adjusted >= p) and np.all(adjusted <= np.minimum(1, 48 * p))
    assert np.all(np.diff(adjusted[np.argsort(p)]) >= 0)


def test_benjamini_hochberg_against_scipy_and_by_hand():
    p = RNG.uniform(0, 0.1, 48)
    assert stats.benjamini_hochberg(p) == pytest.approx(scipy_stats.false_discovery_control(p, method="bh"))
    # sorted 0.005, 0.01, 0.03, 0.04: x4/1, x4/2, x4/3, x4/4 = 0.02, 0.02, 0.04, 0.04 (min from the top)
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_the_minimum_detectable_effect_is_detected_with_80_percent_power():
    n, sd_t, sd_r = 10, 12.0, 6.0
    effect = stats.min_detectable_effect(n, n, sd_t, sd_r)
    se = np.sqrt(sd_t**2 / n + sd_r**2 / n)
    assert 2.3 * se < effect < 2.7 * se, "about (t_0.95 + t_0.80) standard errors"
    draws = np.random.default_rng(5)
    ticket = draws.normal(-effect, sd_t, (20_000, n))
    reference = draws.normal(0.0, sd_r, (20_000, n))
    p = scipy_stats.ttest_ind(ticket, reference, axis=1, equal_var=False, alternative="less").pvalue
    assert np.mean(p < 0.05) == pytest.approx(0.80, abs=0.015)
    assert stats.min_detectable_effect(20, 20, sd_t, sd_r) < effect
    assert stats.min_detectable_effect(n, n, 0.0, 0.0) == 0.0


def test_rmst_by_hand_with_censoring_before_the_cap():
    """Lengths 2, 4+, 6, 8, 10+ (+ censored), tau 10: S = 0.8 from 2, 8/15 from 6, 4/15 from 8;
    area 2 + 4(0.8) + 2(8/15) + 2(4/15) = 6.8. Variance: 4.8^2/(5*4) + 1.6^2/(3*2) + (8/15)^2/(2*1)."""
    result = stats.rmst([2, 4, 6, 8, 10], [True, False, True, True, False], tau=10)
    assert result.mean == pytest.approx(6.8)
    assert result.variance == pytest.approx(4.8**2 / 20 + 1.6**2 / 6 + (8 / 15) ** 2 / 2)


def test_rmst_with_censoring_only_at_the_cap_is_the_capped_mean():
    lengths = np.array([120, 140, 500, 500, 230, 180, 500, 260, 310, 500])
    result = stats.rmst(lengths, lengths < 500, tau=500)
    assert result.mean == pytest.approx(lengths.mean())
    assert stats.rmst([500] * 4, [False] * 4, tau=500) == (500.0, 0.0)


def test_rmst_difference_is_a_one_sided_normal_ni_test():
    ticket, reference = stats.Rmst(300.0, 400.0), stats.Rmst(250.0, 500.0)
    shown = stats.rmst_difference(ticket, reference, margin=25.0)
    se = np.sqrt(900.0)
    assert shown.estimate == 50.0 and shown.bound == pytest.approx(50 + 1.6448536 * se)
    assert shown.p == pytest.approx(scipy_stats.norm.sf((25 - 50) / se))


def test_paired_wilcoxon_is_scipys_exact_test():
    a, b = RNG.normal(0, 1, 10), RNG.normal(0.5, 1, 10)
    expected = scipy_stats.wilcoxon(a - b, alternative="less", method="exact").pvalue
    assert stats.paired_wilcoxon(a, b, "less") == pytest.approx(expected)
    assert stats.paired_wilcoxon(np.arange(10) + 1.0, np.zeros(10), "greater") == pytest.approx(1 / 1024)
    assert stats.paired_wilcoxon([1, 2, 3], [1, 2, 3]) == 1.0
    for alternative in ("less", "greater", "two-sided"):
        expected = scipy_stats.wilcoxon(a - b, alternative=alternative, method="exact").pvalue
        assert stats.paired_wilcoxon(a, b, alternative) == pytest.approx(expected, rel=1e-12)


def test_paired_wilcoxon_keeps_a_tiny_p_value_at_100_seeds():
    """100 positive differences: p = 2^-100 exactly (only the all-positive sign pattern is as
    extreme), where scipy's own upper tail cancels to -2.2e-16 (notebook 03 at profile
    powered, finetuning shorter than retraining on 100 of 100 seeds, printed p=0)."""
    shorter = np.arange(100) + 1.0
    assert stats.paired_wilcoxon(shorter, np.zeros(100), "greater") == pytest.approx(2.0**-100, rel=1e-9)
    assert stats.paired_wilcoxon(np.zeros(100), shorter, "less") == pytest.approx(2.0**-100, rel=1e-9)
    assert stats.paired_wilcoxon(shorter, np.zeros(100)) == pytest.approx(2.0**-99, rel=1e-9)
    with pytest.raises(ValueError, match="alternative: must be"):
        stats.paired_wilcoxon(shorter, np.zeros(100), "bigger")


def test_paired_t_interval_is_scipys():
    a, b = RNG.normal(0, 1, 10), RNG.normal(0.5, 1, 10)
    centre, low, high = stats.paired_t_interval(a, b)
    ci = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (low, high) == pytest.approx((ci.low, ci.high)) and centre == pytest.approx(np.mean(a - b))


def test_paired_ni_is_scipys_paired_t_shifted_by_the_margin():
    a, b = RNG.normal(0, 1, 10), RNG.normal(0.5, 1, 10)
    for higher, shift, alternative in ((True, 0.3, "greater"), (False, -0.3, "less")):
        ni = stats.paired_non_inferiority(a, b, 0.3, higher)
        scipy = scipy_stats.ttest_rel(a + shift, b, alternative=alternative)
        assert ni.p == pytest.approx(scipy.pvalue, rel=1e-9)
        ci = scipy.confidence_interval(0.95)
        assert ni.bound == pytest.approx((ci.low if higher else ci.high) - shift, rel=1e-9)


def test_paired_worse_is_scipys_one_sided_paired_t_test():
    a, b = RNG.normal(0, 1, 10), RNG.normal(0.5, 1, 10)
    for higher, alternative in ((True, "less"), (False, "greater")):
        scipy = scipy_stats.ttest_rel(a, b, alternative=alternative)
        shown = stats.paired_worse(a, b, higher)
        assert shown.p == pytest.approx(scipy.pvalue, rel=1e-9)
        ci = scipy.confidence_interval(0.95)
        assert shown.bound == pytest.approx(ci.high if higher else ci.low, rel=1e-9)
        assert shown.estimate == pytest.approx(np.mean(a - b))


def test_the_paired_minimum_detectable_effect_is_detected_with_80_percent_power():
    differences = np.random.default_rng(2).normal(0.0, 30.0, 10)
    effect = stats.paired_min_detectable_effect(differences)
    sd, n = differences.std(ddof=1), len(differences)
    draws = np.random.default_rng(6).normal(effect, sd, (20_000, n))
    p = scipy_stats.ttest_1samp(draws, 0.0, axis=1, alternative="greater").pvalue
    assert np.mean(p < 0.05) == pytest.approx(0.80, abs=0.015)
    assert stats.paired_min_detectable_effect([5.0] * 4) == 0.0


# ---- IQM and its bootstrap interval ------------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # mean of 3, 4, 5, 6
    assert stats.iqm(range(1, 11)) == 5.5 == np.mean(range(3, 9)), "n = 10: 2 cut from each end, the middle 6"
    assert stats.iqm([0, 0, 1, 1, 1, 1, 1, 1, 100, 100]) == 1.0
    assert stats.iqm([-100, 1, 2, 3, 4, 5, 6, 100]) == 3.5  # outliers cut: mean of 2, 3, 4, 5
    assert stats.iqm([7, 1, 3, 5]) == 4.0  # order does not matter: mean of 3, 5
    assert stats.iqm([2.0, 2.0, 2.0]) == 2.0


@pytest.mark.parametrize(
    "values",
    [
        [-500.0] * 6 + [-120.0, -100.0, -95.0, -90.0],  # Acrobot returns, a capped tail
        [500.0] * 8 + [300.0, 120.0],  # lengths at the episode cap
        list(np.random.default_rng(1).exponential(50.0, 10)),
        [3.0, 1.0, 2.0],
    ],
)
def test_the_iqm_interval_holds_the_iqm_and_stays_within_the_data(values):
    centre, low, high = stats.iqm_ci(values)
    assert centre == stats.iqm(values)
    assert min(values) <= low <= centre <= high <= max(values)
    assert stats.iqm_ci(values) == (centre, low, high), "a fixed generator: the same interval every time"


def test_the_iqm_interval_is_the_percentile_bootstrap_over_seeds():
    """Against a hand-written percentile bootstrap (another generator: equal up to Monte Carlo error)."""
    values = np.random.default_rng(3).normal(100.0, 10.0, 30)
    _centre, low, high = stats.iqm_ci(values)
    resamples = values[np.random.default_rng(7).integers(0, len(values), (10_000, len(values)))]
    hand_low, hand_high = np.percentile(scipy_stats.trim_mean(resamples, 0.25, axis=1), [2.5, 97.5])
    assert low == pytest.approx(hand_low, abs=0.05 * (hand_high - hand_low))
    assert high == pytest.approx(hand_high, abs=0.05 * (hand_high - hand_low))
    assert stats.iqm_ci(values, confidence=0.5)[1] > low, "a narrower confidence level, a narrower interval"


def test_the_iqm_interval_is_undefined_below_three_seeds_and_a_point_without_spread():
    for values in ([1.0, 3.0], [4.0]):
        centre, low, high = stats.iqm_ci(values)
        assert centre == stats.iqm(values) and np.isnan(low) and np.isnan(high)
    assert stats.iqm_ci([5.0] * 4) == (5.0, 5.0, 5.0)


def test_a_bootstrap_over_columns_equals_the_bootstrap_of_each_column():
    """The input-survival figure bootstraps every episode at once; each column's interval is
    the one `bootstrap_interval` gives that column alone (up to the rounding of numpy's mean,
    which sums a strided column in another order)."""
    values = np.random.default_rng(5).normal(size=(10, 7))
    low, high = stats.bootstrap_interval(values, np.mean)
    for column in range(values.shape[1]):
        np.testing.assert_allclose(
            (low[column], high[column]), stats.bootstrap_interval(values[:, column], np.mean), rtol=1e-12
        )


def test_equivalence_is_shown_only_when_the_whole_interval_lies_within_the_margin():
    """TOST: equivalent samples at a margin wider than their interval give p < alpha; the same
    samples at a narrow margin, or two samples too few to tell, do not (no difference found is
    not equivalence); p is the larger of the two one-sided tests' p."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(100, 5, 40), rng.normal(100, 5, 40)
    difference, lower, upper, p = stats.equivalence(a, b, margin=5.0)
    assert lower < difference < upper and -5 < lower and upper < 5 and p < 0.05
    assert stats.equivalence(a, b, margin=0.5)[3] > 0.05
    assert stats.equivalence(a[:3], b[:3] + 1.0, margin=5.0)[3] > 0.05
    shifted = stats.equivalence(a + 10.0, b, margin=5.0)
    assert shifted[3] > 0.5 and shifted[1] > 0, "10 apart at margin 5: not equivalent"
    ni_up, ni_down = (stats.non_inferiority(a, b, 5.0, higher).p for higher in (True, False))
    assert p == max(ni_up, ni_down)
