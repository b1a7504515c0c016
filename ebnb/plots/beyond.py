"""The figures beyond the thesis: the EB Exploit sweep, tickets against their controls, input
survival and the EB criteria by non-inferiority."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ebnb.plots.common import (
    BASELINE,
    CONTROL_STYLES,
    ENV_NAMES,
    _by_prune_episode,
    _error_bars,
    _label,
    _reference,
)
from ebnb.stats import MIN_CI_SEEDS, iqm_ci, t_interval

XI_COLORS = ("tab:purple", "tab:blue", "tab:green", "tab:orange", "tab:red", "tab:brown")
SEARCHES = {
    ("last_two", "after_exploration"): "last two masks, after exploration",
    ("last_two", "episode_1"): "last two masks, from episode 1",
    ("queue", "after_exploration"): "queue of 5, after exploration",
    ("queue", "episode_1"): "queue of 5, from episode 1",
}
WINDOW_MARKERS = ("o", "s", "^", "D", "v", "P")
COSTS = {"relative_env_steps": "env steps", "relative_updates": "gradient updates"}


def eb_exploit_sweep(results: pd.DataFrame, baseline: pd.DataFrame, env_id: str, cost: str = "relative_env_steps"):
    """EB Exploit, swept: test return against the whole run's training cost relative to the
    unpruned run (`cost`: a column of `COSTS`), one row per search (detector and start), one
    column per P; one point per (xi, window) (IQM over seeds, 95% bootstrap CI both ways:
    `ebnb.stats.iqm_ci`), colour = xi, marker = window; the unpruned run at cost 1 (star)."""
    from matplotlib.lines import Line2D

    if cost not in COSTS:
        raise ValueError(f"cost: unknown {cost!r}; allowed: {', '.join(COSTS)}")
    fractions, xis, windows = (sorted(results[c].unique()) for c in ("P", "xi", "window"))
    searches = [key for key in SEARCHES if ((results.detector == key[0]) & (results.start == key[1])).any()]
    colors, markers = dict(zip(xis, XI_COLORS)), dict(zip(windows, WINDOW_MARKERS))
    size = (3.6 * len(fractions) + 1.8, 2.6 * len(searches) + 0.8)
    fig, axes = plt.subplots(
        len(searches), len(fractions), figsize=size, squeeze=False, sharex="col", sharey=True, constrained_layout=True
    )
    unpruned = iqm_ci(baseline["test_return"])
    for row, (detector, start) in enumerate(searches):
        for column, fraction in enumerate(fractions):
            ax = axes[row, column]
            chosen = results[(results.P == fraction) & (results.detector == detector) & (results.start == start)]
            for (xi, window), group in chosen.groupby(["xi", "window"], sort=True):
                x, y = iqm_ci(group[cost]), iqm_ci(group["test_return"])
                ax.errorbar(
                    x[0],
                    y[0],
                    xerr=_error_bars([x]),
                    yerr=_error_bars([y]),
                    fmt=markers[window],
                    color=colors[xi],
                    markersize=6,
                    alpha=0.85,
                    elinewidth=0.7,
                    capsize=0,
                )
            ax.errorbar(
                1.0, unpruned[0], yerr=_error_bars([unpruned]), fmt="*", color="black", markersize=11, capsize=3
            )
            ax.axvline(1.0, color="black", linestyle=":", linewidth=1)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"P = {fraction}")
            if row == len(searches) - 1:
                ax.set_xlabel(f"{COSTS[cost]}, relative to unpruned")
            if column == 0:
                ax.set_ylabel(f"{SEARCHES[(detector, start)]}\ntest return (IQM)", fontsize=9)
    key = [Line2D([], [], marker="*", color="black", linestyle="", markersize=10, label="unpruned")]
    key += [Line2D([], [], marker="o", color=colors[xi], linestyle="", label=f"xi = {xi}") for xi in xis]
    key += [Line2D([], [], marker=markers[w], color="gray", linestyle="", label=f"window {w}") for w in windows]
    fig.legend(handles=key, loc="outside right center", fontsize=8)
    fig.suptitle(
        f"{ENV_NAMES.get(env_id, env_id)}: EB Exploit swept, test return against training cost in "
        f"{COSTS[cost]} (IQM over seeds, 95% bootstrap CI)"
    )
    return fig


CRITERION_LABELS = {
    "1_performance": "1. return vs unpruned (NI)",
    "2_length": "2. post-prune length vs unpruned (NI)",
    "2_total_cost": "2, whole cost: prune episode + length vs unpruned (NI)",
    "3_winning": "3. return and length vs winning ticket (NI, both)",
    "4_earlier": "4. seeds pruned before their own unpruned run converged",
    "early_bird": "Early-Bird ticket: 1, 2 (post-prune) and 3 shown, 4 for every seed",
}
STATE_COLORS = {
    "shown non-inferior": "#3b75af",
    "not shown either way": "#e6e6e6",
    "shown worse": "#c44e52",
    "fails criterion 4": "#9a9a9a",
    "passes": "#3b75af",
    "fails": "#9a9a9a",
}
DECIDING_P = {
    "1_performance": ("return_vs_unpruned",),
    "2_length": ("length_vs_unpruned",),
    "2_total_cost": ("total_vs_unpruned",),
    "3_winning": ("return_vs_winning", "length_vs_winning"),
}


def tickets_vs_controls(tickets: pd.DataFrame, baseline: pd.DataFrame, env_id: str, mode: str):
    """Test return (top) and training length (bottom) against the prune episode, one column
    per P: the L1 ticket and each of its controls (IQM over seeds, 95% bootstrap band), and
    the unpruned baseline. `tickets`: one mode of `experiments.controlled_tickets`."""
    fractions = sorted(tickets["P"].unique())
    fig, axes = plt.subplots(
        2,
        len(fractions),
        figsize=(3.6 * len(fractions), 6.5),
        sharex=True,
        sharey="row",
        squeeze=False,
        constrained_layout=True,
    )
    for column, fraction in enumerate(fractions):
        ax_return, ax_length = axes[0, column], axes[1, column]
        for control, style in CONTROL_STYLES.items():
            table = tickets[(tickets.P == fraction) & (tickets.control == control)]
            if len(table):
                _by_prune_episode(ax_return, ax_length, table, centre=iqm_ci, **style)
        _reference(ax_return, baseline["test_return"], **BASELINE)
        _reference(ax_length, baseline["converged_episode"], **BASELINE)
        ax_return.set_title(f"P = {fraction}")
        _label(ax_return, ax_length, "episodes to early stopping" + (" (from pruning)" if mode == "finetune" else ""))
        if column:
            ax_return.set_ylabel("")
            ax_length.set_ylabel("")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(
        f"{ENV_NAMES.get(env_id, env_id)}: {mode} tickets against their controls (IQM over seeds, 95% bootstrap CI)"
    )
    return fig


def input_survival(survival: pd.DataFrame, env_id: str):
    """One panel per P: the share of each input's outgoing first-layer weights kept by the
    dense run's L1 mask, against the episode (mean over seeds, 95% Student-t band)."""
    fractions = sorted(survival["P"].unique())
    fig, axes = plt.subplots(
        1, len(fractions), figsize=(3.6 * len(fractions), 3.8), sharey=True, squeeze=False, constrained_layout=True
    )
    features = list(dict.fromkeys(survival["feature"]))
    colors = plt.get_cmap("tab10").colors
    for ax, fraction in zip(axes[0], fractions):
        for feature, color in zip(features, colors):
            table = survival[(survival.P == fraction) & (survival.feature == feature)]
            seeds_by_episode = table.pivot(index="seed", columns="episode", values="kept")
            mean = seeds_by_episode.mean(axis=0)
            ax.plot(mean.index, mean, color=color, label=feature)
            if len(seeds_by_episode) >= MIN_CI_SEEDS:  # as mean_ci, for every episode at once
                _, low, high = t_interval(seeds_by_episode.to_numpy())
                ax.fill_between(mean.index, low, high, color=color, alpha=0.2, linewidth=0)
        ax.axhline(1 - fraction, color="black", linestyle=":", label="kept overall (1 - P)")
        ax.set_title(f"P = {fraction}")
        ax.set_xlabel("episode of the mask")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("share of the input's outgoing weights kept")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(
        f"{ENV_NAMES.get(env_id, env_id)}: which inputs the L1 mask keeps during training (mean over seeds, "
        "95% Student-t CI)"
    )
    return fig


def _p_text(p: float) -> str:
    """A p-value in a few characters, three decimals near alpha: <.001, .049, .12, 1."""
    if p >= 0.995:
        return "1"
    return "<.001" if p < 0.001 else f"{p:.3f}".lstrip("0") if p < 0.095 else f"{p:.2f}".lstrip("0")


def _criterion_cells(criteria: pd.DataFrame, criterion: str) -> tuple[pd.Series, pd.Series]:
    """(state, text) per cell of `criteria_table` for one criterion's panel: the text is the
    Holm-adjusted p-value that decides the state: of the NI test (criterion 3: the larger of
    its two), in a cell shown worse of the test of worse (criterion 3: the smaller of its two);
    criterion 4's the seeds pruned before their own convergence ("k/n"); the conjunction's none."""
    if criterion in DECIDING_P:
        ni = criteria[[f"{c}_p_ni_holm" for c in DECIDING_P[criterion]]].max(axis=1)
        worse = criteria[[f"{c}_p_worse_holm" for c in DECIDING_P[criterion]]].min(axis=1)
        return criteria[criterion], ni.where(criteria[criterion] != "shown worse", worse).map(_p_text)
    if criterion == "4_earlier":
        return criteria[criterion], criteria.seeds_earlier.astype(str) + "/" + criteria.seeds.astype(str)
    return criteria[criterion], pd.Series("", index=criteria.index)


def criteria_heatmap(criteria: pd.DataFrame, env_id: str, what: str, alpha: float = 0.05):
    """The EB-ticket criteria of `ebnb.analysis.criteria_table`: one panel per criterion and one
    for the whole cell, pruning fraction P against prune episode, each cell coloured by its
    state (shown non-inferior / not shown either way / shown worse; criterion 4 passes only if
    every seed was pruned before its own unpruned run converged), the deciding Holm-adjusted NI
    p-value or criterion 4's "k/n" in it, and the power (seeds, margins, the difference
    detectable at 80% power) in the title."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from matplotlib.transforms import offset_copy

    from ebnb.analysis import power_lines

    fractions, episodes = sorted(criteria["P"].unique()), sorted(criteria["prune_episode"].unique())
    states = list(STATE_COLORS)
    cmap = ListedColormap(list(STATE_COLORS.values()))
    columns = 2
    rows = -(-len(CRITERION_LABELS) // columns)
    width = (max(0.55 * len(episodes), 4.5) + 0.8) * columns + 1.0
    height = (max(0.38 * len(fractions), 0.9) + 0.7) * rows + 2.4
    fig, axes = plt.subplots(rows, columns, figsize=(width, height), squeeze=False, constrained_layout=True)
    for ax, criterion in zip(axes.flat, CRITERION_LABELS):
        state, text = _criterion_cells(criteria, criterion)
        cells = criteria.assign(code=state.map(states.index), text=text)
        code = cells.pivot(index="P", columns="prune_episode", values="code").reindex(index=fractions, columns=episodes)
        label = cells.pivot(index="P", columns="prune_episode", values="text").reindex(
            index=fractions, columns=episodes
        )
        ax.imshow(
            np.ma.masked_invalid(code.to_numpy(float)),
            cmap=cmap,
            vmin=-0.5,
            vmax=len(states) - 0.5,
            aspect="auto",
            origin="lower",
            interpolation="nearest",
        )
        for i, j in np.ndindex(code.shape):
            if isinstance(label.iat[i, j], str) and label.iat[i, j]:
                dark = states[int(code.iat[i, j])] in ("shown non-inferior", "shown worse", "passes")
                ax.text(
                    j, i, label.iat[i, j], ha="center", va="center", fontsize=6.5, color="white" if dark else "black"
                )
        ax.set_xticks(range(len(episodes)), [str(e) for e in episodes], fontsize=8)
        ax.set_yticks(range(len(fractions)), [str(f) for f in fractions], fontsize=8)
        ax.set_ylabel("pruning fraction P", fontsize=8)
        ax.set_xlabel("episode at which the network was pruned", fontsize=8)
        ax.set_title(CRITERION_LABELS[criterion], fontsize=9)
    for ax in axes.flat[len(CRITERION_LABELS) :]:
        ax.set_visible(False)
    key = [
        Patch(facecolor=STATE_COLORS[s], label=s)
        for s in ("shown non-inferior", "not shown either way", "shown worse", "fails criterion 4")
    ]
    # under the last panel, inside the layout (a figure legend outside it would hide `save`'s note)
    below_label = offset_copy(axes[-1, -1].transAxes, fig, y=-34, units="points")
    axes[-1, -1].legend(
        handles=key, loc="upper right", bbox_to_anchor=(1.0, 0.0), bbox_transform=below_label, ncol=4, fontsize=8
    )
    power = "\n".join(power_lines(criteria)[:2])
    fig.suptitle(
        f"{ENV_NAMES.get(env_id, env_id)} ({env_id}): {what} tickets, the EB criteria by seed-level "
        f"non-inferiority (alpha = {alpha}, Holm over the {len(criteria)} cells)\ncell text: the Holm-adjusted "
        "p-value of NI (in red cells: of the test of worse); criterion 4: seeds pruned before their own "
        f"unpruned run converged, of n (blue: all)\npower: {power}",
        fontsize=9,
    )
    return fig
