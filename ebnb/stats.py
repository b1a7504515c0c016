"""Statistics over seeds (one value per seed and group): non-inferiority at a margin and the
one-sided test of "worse" (Welch, or paired by seed), multiplicity adjustment (Holm,
Benjamini-Hochberg), the minimum detectable effect, restricted mean lengths of runs censored at
a cap, exact paired Wilcoxon; and the figures' summaries: the mean's Student-t interval, the
interquartile mean and its bootstrap interval.

Differences are always ticket - reference. "Better" is higher for returns
(`higher_is_better=True`) and lower for lengths. The non-inferiority (NI) test is Welch's t
shifted by the margin (docs/protocol.md, "Statistics", says why): H0 the ticket is worse than
the reference by at least `margin`; rejecting it shows the ticket non-inferior. Samples
without a t statistic (fewer than 2 values, or no spread) are decided by their means, p = 0
or 1, never NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.80
BOOTSTRAP_RESAMPLES = 10_000
MIN_CI_SEEDS = 3  # fewer values: no interval (iqm_ci: NaN; plots.mean_ci: the mean alone)


class Bound(NamedTuple):
    """A difference (ticket - reference), its one-sided confidence bound on the worse side,
    and a p-value."""

    estimate: float
    bound: float
    p: float


def welch_se_df(ticket, reference) -> tuple[float, float]:
    """(standard error, Welch-Satterthwaite degrees of freedom) of mean(ticket) - mean(reference);
    a standard error of 0 where a sample has fewer than 2 values or neither has spread."""
    ticket, reference = np.asarray(ticket, float), np.asarray(reference, float)
    if len(ticket) < 2 or len(reference) < 2:
        return 0.0, float(max(len(ticket) + len(reference) - 2, 0))
    a, b = ticket.var(ddof=1) / len(ticket), reference.var(ddof=1) / len(reference)
    se = float(np.sqrt(a + b))
    if se == 0:
        return 0.0, float(len(ticket) + len(reference) - 2)
    return se, float((a + b) ** 2 / (a**2 / (len(ticket) - 1) + b**2 / (len(reference) - 1)))


def non_inferiority(ticket, reference, margin: float, higher_is_better: bool, alpha: float = ALPHA) -> Bound:
    """Welch NI test of H0 'ticket worse than reference by at least `margin`' (margin >= 0, in
    the quantity's units). `bound`: the one-sided (1 - alpha) confidence bound of the
    difference on the worse side (lower for returns, upper for lengths); p < alpha exactly
    when the bound lies on the better side of -margin (returns) or +margin (lengths)."""
    if margin < 0:
        raise ValueError(f"margin: >= 0 in the quantity's units, got {margin}")
    ticket, reference = np.asarray(ticket, float), np.asarray(reference, float)
    sign = 1.0 if higher_is_better else -1.0  # sign * difference: larger is better
    estimate = float(ticket.mean() - reference.mean())
    se, df = welch_se_df(ticket, reference)
    if se == 0:
        return Bound(estimate, estimate, 0.0 if sign * estimate > -margin else 1.0)
    bound = estimate - sign * stats.t.ppf(1 - alpha, df) * se
    return Bound(estimate, float(bound), float(stats.t.sf((sign * estimate + margin) / se, df)))


def paired_non_inferiority(ticket, reference, margin: float, higher_is_better: bool, alpha: float = ALPHA) -> Bound:
    """`non_inferiority` for values paired by position (seed): a one-sample t-test of the
    differences ticket - reference shifted by the margin."""
    difference = np.asarray(ticket, float) - np.asarray(reference, float)
    sign, estimate = (1.0 if higher_is_better else -1.0), float(difference.mean())
    se = float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else 0.0
    if se == 0:
        return Bound(estimate, estimate, 0.0 if sign * estimate > -margin else 1.0)
    df = len(difference) - 1
    return Bound(
        estimate,
        float(estimate - sign * stats.t.ppf(1 - alpha, df) * se),
        float(stats.t.sf((sign * estimate + margin) / se, df)),
    )


def equivalence(sample, reference, margin: float, alpha: float = ALPHA) -> tuple[float, float, float, float]:
    """Equivalence within +-`margin` by two one-sided tests (TOST: `non_inferiority` in both
    directions at level `alpha`): (difference, lower bound, upper bound, p), the bounds those of
    the (1 - 2 alpha) confidence interval. p < alpha shows |difference| < margin; a larger p
    shows nothing (failing to find a difference is not equivalence)."""
    lower, upper = (non_inferiority(sample, reference, margin, higher, alpha) for higher in (True, False))
    return lower.estimate, lower.bound, upper.bound, max(lower.p, upper.p)


def worse(ticket, reference, higher_is_better: bool, alpha: float = ALPHA) -> Bound:
    """One-sided Welch test of H0 'ticket not worse' (H1: worse); `bound` on the better side,
    so p < alpha exactly when the bound lies on the worse side of 0."""
    flipped = non_inferiority(reference, ticket, 0.0, higher_is_better, alpha)
    return Bound(-flipped.estimate, -flipped.bound, flipped.p)


def paired_worse(ticket, reference, higher_is_better: bool, alpha: float = ALPHA) -> Bound:
    """`worse` for values paired by position (seed): the one-sided paired t-test of 'worse'."""
    flipped = paired_non_inferiority(reference, ticket, 0.0, higher_is_better, alpha)
    return Bound(-flipped.estimate, -flipped.bound, flipped.p)


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the order given: the i-th
    smallest p times (m - i + 1), made non-decreasing in that order, at most 1."""
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in the order given."""
    p = np.asarray(p, float)
    return stats.false_discovery_control(p, method="bh") if len(p) else p


def min_detectable_effect(
    n_ticket: int, n_reference: int, sd_ticket: float, sd_reference: float, alpha: float = ALPHA, power: float = POWER
) -> float:
    """The smallest true difference (in units, > 0) that a one-sided Welch test at `alpha`
    detects with probability `power`, for these sample sizes and spreads (noncentral t at the
    Welch-Satterthwaite degrees of freedom). An NI test at margin m shows a truly equal ticket
    non-inferior with that power only if m >= this effect. 0 without spread."""
    a, b = sd_ticket**2 / n_ticket, sd_reference**2 / n_reference
    se = np.sqrt(a + b)
    if se == 0:
        return 0.0
    df = (a + b) ** 2 / (a**2 / (n_ticket - 1) + b**2 / (n_reference - 1))
    critical = stats.t.ppf(1 - alpha, df)
    ncp = optimize.brentq(lambda d: stats.nct.sf(critical, df, d) - power, 0.0, 50.0)
    return float(ncp * se)


def paired_min_detectable_effect(differences, alpha: float = ALPHA, power: float = POWER) -> float:
    """`min_detectable_effect` for values paired by seed: the smallest true mean difference a
    one-sided paired t-test at `alpha` detects with probability `power`, for these n paired
    differences' spread (noncentral t with n - 1 degrees of freedom). 0 without spread."""
    differences = np.asarray(differences, float)
    n, sd = len(differences), float(differences.std(ddof=1))
    if sd == 0:
        return 0.0
    critical = stats.t.ppf(1 - alpha, n - 1)
    ncp = optimize.brentq(lambda d: stats.nct.sf(critical, n - 1, d) - power, 0.0, 50.0)
    return float(ncp * sd / np.sqrt(n))


class Rmst(NamedTuple):
    """Restricted mean of lengths up to `tau` (Kaplan-Meier) and its variance."""

    mean: float
    variance: float


def rmst(lengths, converged, tau: float) -> Rmst:
    """Restricted mean time to convergence up to `tau` (the cap), from the Kaplan-Meier curve
    of lengths where a run that did not converge is right-censored at its length. Variance:
    the Greenwood-type sum over convergence times t_j of A_j^2 d_j / (n_j (n_j - d_j)), A_j the
    area under the curve from t_j to tau (0 where the curve drops to 0). When censoring happens
    only at tau, the restricted mean is the plain mean of min(length, tau)."""
    lengths, converged = np.minimum(np.asarray(lengths, float), tau), np.asarray(converged, bool)
    times = np.unique(lengths[converged & (lengths < tau)])
    at_risk = np.array([(lengths >= t).sum() for t in times], float)
    events = np.array([((lengths == t) & converged).sum() for t in times], float)
    survival = np.cumprod(1 - events / at_risk) if len(times) else np.array([])
    edges = np.concatenate([[0.0], times, [tau]])
    levels = np.concatenate([[1.0], survival])
    areas = levels * np.diff(edges)
    tail = np.cumsum(areas[::-1])[::-1][1:]  # A_j: area from t_j to tau
    alive = at_risk > events
    variance = np.sum(tail[alive] ** 2 * events[alive] / (at_risk[alive] * (at_risk[alive] - events[alive])))
    return Rmst(float(areas.sum()), float(variance))


def rmst_difference(ticket: Rmst, reference: Rmst, margin: float, alpha: float = ALPHA) -> Bound:
    """NI of restricted mean lengths (lower is better), normal approximation: the difference,
    its upper one-sided (1 - alpha) bound and the p-value of H0 'ticket longer by >= margin'."""
    estimate, se = ticket.mean - reference.mean, np.sqrt(ticket.variance + reference.variance)
    if se == 0:
        return Bound(estimate, estimate, 0.0 if estimate < margin else 1.0)
    return Bound(
        estimate, float(estimate + stats.norm.ppf(1 - alpha) * se), float(stats.norm.cdf((estimate - margin) / se))
    )


def paired_wilcoxon(a, b, alternative: str = "two-sided") -> float:
    """Exact Wilcoxon signed-rank p-value of a - b paired by position (seed); zero differences
    dropped (Wilcoxon's rule); 1.0 when all differences are 0. Every tail is scipy's lower
    tail (of a - b, or of b - a for "greater"), which it sums directly: above 50 pairs scipy's
    upper tail is 1 - cdf, which cancels to 0 or below for p under ~1e-16 (100 positive
    differences gave -2.2e-16, not 2^-100, in scipy 1.17); up to 50 the two agree bit for bit."""
    difference = np.asarray(a, float) - np.asarray(b, float)
    difference = difference[difference != 0]
    if not len(difference):
        return 1.0

    def lower(d) -> float:
        return float(stats.wilcoxon(d, alternative="less", method="exact").pvalue)

    if alternative == "less":
        return lower(difference)
    if alternative == "greater":
        return lower(-difference)
    if alternative == "two-sided":
        return min(1.0, 2 * min(lower(difference), lower(-difference)))
    raise ValueError(f"alternative: must be 'less', 'greater' or 'two-sided', got {alternative!r}")


def paired_t_interval(a, b, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of a - b paired by position (seed): the two-sided Student-t interval."""
    return t_interval(np.asarray(a, float) - np.asarray(b, float), confidence)


def iqm(values) -> float:
    """Interquartile mean (rliable's definition, `scipy.stats.trim_mean(values, 0.25)`): the
    mean of the values left after cutting int(n / 4) of the lowest and as many of the highest.
    That is the middle 50% only where 4 divides n: for n = 10 it cuts 2 from each end and
    averages the middle 6; for n = 15, 3 and the middle 9."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def t_interval(values, confidence: float = 0.95):
    """(mean, low, high): the mean over seeds (axis 0) and its two-sided Student-t confidence
    interval, mean -/+ t(1/2 + confidence/2, n - 1) s / sqrt(n), s the sample standard
    deviation. Floats for values [seeds]; arrays for [seeds, columns] (e.g. episodes). The
    interval is symmetric: it may pass a bound the values cannot (a return of -500, a length
    at the cap), as an interval of the mean may."""
    values = np.asarray(values, dtype=float)
    mean = values.mean(axis=0)
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(axis=0, ddof=1) / np.sqrt(len(values))
    if values.ndim == 1:
        return float(mean), float(mean - half), float(mean + half)
    return mean, mean - half, mean + half


def bootstrap_interval(values, statistic, confidence: float = 0.95):
    """(low, high): the percentile-bootstrap confidence interval of `statistic(resamples, axis=1)`
    over the values (seeds), `BOOTSTRAP_RESAMPLES` resamples with replacement from a fixed
    generator, so it is the same every time. Each bound is the statistic of a resample, so for
    a mean or an IQM the interval lies within [min, max] of the values. Floats for values
    [seeds]; for values [seeds, columns] (e.g. episodes) an array each, every column
    bootstrapped with the same resamples of seeds."""
    values = np.asarray(values, dtype=float)
    resamples = values[np.random.default_rng(0).integers(0, len(values), (BOOTSTRAP_RESAMPLES, len(values)))]
    low, high = np.percentile(statistic(resamples, axis=1), [50 * (1 - confidence), 50 * (1 + confidence)], axis=0)
    return (float(low), float(high)) if values.ndim == 1 else (low, high)


def _iqm_along(values: np.ndarray, axis: int) -> np.ndarray:
    return stats.trim_mean(values, 0.25, axis=axis)


def iqm_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(iqm, low, high): the interquartile mean and its `bootstrap_interval` over the values
    (seeds): rliable's stratified bootstrap with one task, resampling seeds with replacement.
    With fewer than `MIN_CI_SEEDS` values, low = high = NaN."""
    centre = iqm(values)
    if len(values) < MIN_CI_SEEDS:
        return centre, float("nan"), float("nan")
    return centre, *bootstrap_interval(values, _iqm_along, confidence)
