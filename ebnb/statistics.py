"""Statistics over seeds: one-sided Welch tests, the mean's Student-t
interval (the figures' bands), the interquartile mean and its bootstrap confidence interval.

The tests compare a sample of tickets (one value per seed) with a reference sample (the
unpruned network's, or the winning tickets'); `ebnb.analysis` uses them to decide the thesis'
criteria. Degenerate samples (fewer than 2 values, or no spread in either sample) get a
deterministic p-value of 0 or 1 from the means, never NaN, so a criterion is always decided.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 10_000
MIN_CI_SEEDS = 3  # fewer values: no interval (iqm_ci: NaN; plots.mean_ci: the mean alone)


def _degenerate(ticket: np.ndarray, reference: np.ndarray) -> bool:
    """True where a Welch t statistic is undefined: fewer than 2 values in a sample, or no
    spread in either sample."""
    return len(ticket) < 2 or len(reference) < 2 or (ticket.std() == 0 and reference.std() == 0)


def p_worse(ticket, reference, higher_is_better: bool) -> float:
    """One-sided Welch t-test p-value for 'ticket is worse than reference'.

    Degenerate samples (`_degenerate`): 0.0 if the ticket's mean is worse than the
    reference's, else 1.0."""
    ticket, reference = np.asarray(ticket, float), np.asarray(reference, float)
    if _degenerate(ticket, reference):
        worse = ticket.mean() < reference.mean() if higher_is_better else ticket.mean() > reference.mean()
        return 0.0 if worse else 1.0
    alternative = "less" if higher_is_better else "greater"
    return float(stats.ttest_ind(ticket, reference, equal_var=False, alternative=alternative).pvalue)


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
