"""What every figure shares: styles, the mean and its confidence band, axis labels, file names and
`save`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ebnb import ownership
from ebnb.stats import MIN_CI_SEEDS, t_interval

ENV_NAMES = {"CartPole-v0": "CartPole", "Acrobot-v1": "Acrobot"}
P_COLORS = {0.2: "tab:blue", 0.4: "tab:green", 0.6: "tab:orange", 0.8: "tab:red"}
BASELINE = dict(color="black", linestyle=":", label="unpruned")
CONTROL_STYLES = {
    "l1": dict(color="black", label="L1 ticket"),
    "random_mask": dict(color="tab:red", label="random mask"),
    "layer_shuffled": dict(color="tab:orange", label="L1 mask shuffled within layers"),
    "reinit": dict(color="tab:purple", label="L1 mask, re-initialised θ0"),
    "permuted_weights": dict(color="tab:cyan", label="L1 mask, θ0 permuted within layers"),
}


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean over seeds and its two-sided Student-t confidence interval
    (`ebnb.stats.t_interval`). With n = 10 the percentile bootstrap's "95%" covered the
    mean 0.89-0.90 of the time in a simulation on the published data, Student-t's 0.92-0.95
    (issue 28.9); the t interval is symmetric and may pass a bound the values cannot (-500, the
    episode cap). With fewer than `MIN_CI_SEEDS` values, low = high = mean."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < MIN_CI_SEEDS:
        return mean, mean, mean
    return t_interval(values, confidence)


def summarize(table: pd.DataFrame, by: list[str], column: str, centre=mean_ci) -> pd.DataFrame:
    """Per group of `by`: centre, lower and upper 95% bound of `column` (columns mean, low,
    high; `centre` is `mean_ci` or `ebnb.stats.iqm_ci`)."""
    rows = []
    for key, group in table.groupby(by, sort=True):
        rows.append((*np.atleast_1d(key), *centre(group[column])))
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high"])


def _band(ax, x, summary: pd.DataFrame, **style):
    ax.plot(x, summary["mean"], marker="o", markersize=3, **style)
    ax.fill_between(x, summary["low"], summary["high"], alpha=0.2, color=style.get("color"), linewidth=0)


def _error_bars(intervals) -> np.ndarray:
    """matplotlib's asymmetric `yerr` [2, n] of (mean, low, high) triples."""
    return np.array([[mean - low for mean, low, _ in intervals], [high - mean for mean, _, high in intervals]])


def _reference(ax, values, **style):
    mean, low, high = mean_ci(values)
    ax.axhline(mean, **style)
    ax.axhspan(low, high, color=style.get("color", "black"), alpha=0.08, linewidth=0)


def _by_prune_episode(ax_return, ax_length, table: pd.DataFrame, label: str, centre=mean_ci, **style):
    returns = summarize(table, ["prune_episode"], "test_return", centre)
    lengths = summarize(table, ["prune_episode"], "length", centre)
    _band(ax_return, returns["prune_episode"], returns, label=label, **style)
    _band(ax_length, lengths["prune_episode"], lengths, label=label, **style)


def _label(ax_return, ax_length, length_label: str):
    ax_return.set_ylabel("test return (mean of greedy episodes)")
    ax_length.set_ylabel(length_label)
    ax_length.set_xlabel("episode at which the network was pruned")
    for ax in (ax_return, ax_length):
        ax.grid(alpha=0.3)


def figure_name(number: str, what: str, env_id: str) -> str:
    """File stem of a thesis figure, named by the env id, e.g. fig3_4_retrain_cartpole-v0."""
    return f"fig{number}_{what}_{env_id.lower()}"


def save(fig, name: str, directory: str | Path, note: str | None = None) -> list[Path]:
    """Write `fig` as `<directory>/<name>.png` and `.pdf`, with `note` (what the figure is,
    if not the thesis grid: `ebnb.experiments.figure_note`) printed under it; return the paths."""
    if note:
        fig.text(0.5, 0.0, note, ha="center", va="top", fontsize=9, color="firebrick")
    paths = [ownership.new_file(Path(directory) / f"{name}.{ext}", "outputs") for ext in ("png", "pdf")]
    for path in paths:  # no creation date in the PDF: the same figure gives the same bytes
        fig.savefig(
            path, dpi=150, bbox_inches="tight", metadata={"CreationDate": None} if path.suffix == ".pdf" else None
        )
    return paths
