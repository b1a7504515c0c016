"""The thesis' figures 3.3-3.8: mask similarity, tickets against the prune episode, retrain
against finetune, EB Exploit."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ebnb.plots.common import BASELINE, ENV_NAMES, P_COLORS, _by_prune_episode, _error_bars, _label, _reference, mean_ci

AGREEMENTS = {  # what a mask heatmap shows: colour-bar label, title
    "similarity": ("mask similarity (1 - Hamming distance)", "similarity of masks drawn during training"),
    "kappa": (
        "Cohen's kappa (0 or less, black: no more alike than chance)",
        "chance-corrected similarity (Cohen's kappa, layer-aware chance) of masks drawn during training",
    ),
}


def similarity_heatmaps(similarity: dict[float, pd.DataFrame], env_id: str, quantity: str = "similarity"):
    """Figure 3.3: mask similarity (1 - normalized Hamming distance) between episodes, per P;
    quantity "kappa": the same pairs' Cohen's kappa (`ebnb.analysis.kappa_matrices`), on the
    same scale from 0 (chance) to 1."""
    if quantity not in AGREEMENTS:
        raise ValueError(f"quantity: unknown {quantity!r}; allowed: {', '.join(AGREEMENTS)}")
    label, title = AGREEMENTS[quantity]
    fig, axes = plt.subplots(1, len(similarity), figsize=(4.2 * len(similarity), 4), constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, (fraction, matrix) in zip(axes, sorted(similarity.items())):
        episodes = matrix.index.to_numpy()
        image = ax.imshow(
            matrix.to_numpy(),
            origin="lower",
            cmap="magma",
            vmin=0,
            vmax=1,
            extent=[episodes[0], episodes[-1], episodes[0], episodes[-1]],
        )
        ax.set_title(f"P = {fraction}")
        ax.set_xlabel("episode of mask")
        ax.set_ylabel("episode of mask")
    fig.colorbar(image, ax=axes, label=label, shrink=0.85)
    fig.suptitle(f"{ENV_NAMES.get(env_id, env_id)}: {title} (mean over seeds)")
    return fig


def tickets_vs_prune_episode(tickets: pd.DataFrame, baseline: pd.DataFrame, env_id: str, what: str):
    """Figures 3.4 (what='retrain') and 3.7 (what='finetune'): test return (top) and training
    length (bottom) against the episode of pruning, one line per P, unpruned baseline."""
    fig, (ax_return, ax_length) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, constrained_layout=True)
    for fraction, table in tickets.groupby("P"):
        _by_prune_episode(ax_return, ax_length, table, f"P = {fraction}", color=P_COLORS.get(fraction))
    _reference(ax_return, baseline["test_return"], **BASELINE)
    _reference(ax_length, baseline["converged_episode"], **BASELINE)
    length = "episodes to early stopping" + (" (from pruning)" if what == "finetune" else "")
    _label(ax_return, ax_length, length)
    ax_return.legend(fontsize=8, ncol=3)
    fig.suptitle(
        f"{ENV_NAMES.get(env_id, env_id)}: {what} tickets pruned at different episodes (mean, 95% Student-t CI)"
    )
    return fig


def retrain_vs_finetune(retrain: pd.DataFrame, finetune: pd.DataFrame, winning: pd.DataFrame, env_id: str):
    """Figures 3.5 (CartPole) and 3.6 (Acrobot): per P, retrained vs finetuned tickets, with
    the winning ticket (dashed)."""
    fractions = sorted(retrain["P"].unique())
    fig, axes = plt.subplots(
        2, len(fractions), figsize=(4.2 * len(fractions), 6.5), sharex=True, squeeze=False, constrained_layout=True
    )
    for column, fraction in enumerate(fractions):
        ax_return, ax_length = axes[0, column], axes[1, column]
        _by_prune_episode(ax_return, ax_length, retrain[retrain.P == fraction], "retrain", color="goldenrod")
        _by_prune_episode(ax_return, ax_length, finetune[finetune.P == fraction], "finetune", color="purple")
        tickets = winning[winning.P == fraction]
        _reference(ax_return, tickets["test_return"], color="black", linestyle="--", label="winning ticket")
        _reference(ax_length, tickets["length"], color="black", linestyle="--", label="winning ticket")
        ax_return.set_title(f"P = {fraction}")
        _label(ax_return, ax_length, "episodes to early stopping")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"{ENV_NAMES.get(env_id, env_id)}: retrained vs finetuned tickets and winning tickets (mean, 95% Student-t CI)"
    )
    return fig


def eb_exploit(results: pd.DataFrame, baseline: pd.DataFrame, env_id: str):
    """Figure 3.8: EB Exploit test return per P (P = 0: unpruned) and training length split
    into search and finetune phases, against the unpruned training length."""
    fractions = sorted(results["P"].unique())
    fig, (ax_return, ax_length) = plt.subplots(2, 1, figsize=(7, 7), constrained_layout=True)
    positions = np.arange(len(fractions) + 1)
    returns = [mean_ci(baseline["test_return"])] + [mean_ci(results[results.P == p]["test_return"]) for p in fractions]
    ax_return.errorbar(
        positions, [m for m, _, _ in returns], yerr=_error_bars(returns), fmt="o", capsize=4, color="purple"
    )
    ax_return.set_xticks(positions, ["0 (unpruned)"] + [str(p) for p in fractions])
    ax_return.set_ylabel("test return (mean of greedy episodes)")
    ax_return.set_xlabel("pruning fraction P")
    search = [mean_ci(results[results.P == p]["search_length"]) for p in fractions]
    tune = [mean_ci(results[results.P == p]["finetune_length"]) for p in fractions]
    x = positions[1:]
    ax_length.bar(x, [m for m, _, _ in search], yerr=_error_bars(search), capsize=3, color="tab:gray", label="search")
    ax_length.bar(
        x,
        [m for m, _, _ in tune],
        bottom=[m for m, _, _ in search],
        yerr=_error_bars(tune),
        capsize=3,
        color="purple",
        alpha=0.7,
        label="finetune",
    )
    _reference(ax_length, baseline["converged_episode"], **BASELINE)
    ax_length.set_xticks(x, [str(p) for p in fractions])
    ax_length.set_xlabel("pruning fraction P")
    ax_length.set_ylabel("training length (episodes)")
    ax_length.legend(fontsize=8)
    for ax in (ax_return, ax_length):
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{ENV_NAMES.get(env_id, env_id)}: EB Exploit (mean, 95% Student-t CI)")
    return fig
