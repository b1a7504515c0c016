"""Figure statistics: confidence bands stay within what the data can take."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ebnb import plots


@pytest.mark.parametrize(
    "values",
    [
        [-500.0] * 8 + [-100.0, -90.0],  # Acrobot returns, most runs never swing up: the band passes -500
        [500.0] * 9 + [300.0],  # lengths at the episode cap
        list(np.random.default_rng(1).exponential(50.0, 10)),
        [3.0, 1.0, 2.0],
    ],
)
def test_the_band_is_the_student_t_interval_of_the_mean(values):
    mean, low, high = plots.mean_ci(values)
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert (low, high) == pytest.approx(expected, rel=1e-12)
    assert plots.mean_ci(values, confidence=0.5)[1] > low, "a narrower confidence level, a narrower band"


def test_fewer_than_three_values_get_no_band_and_no_spread_a_point():
    assert plots.mean_ci([1.0, 3.0]) == (2.0, 2.0, 2.0)
    assert plots.mean_ci([4.0]) == (4.0, 4.0, 4.0)
    assert plots.mean_ci([5.0] * 4) == (5.0, 5.0, 5.0)


def test_a_band_over_columns_is_each_columns_t_interval():
    """The input-survival figure draws every episode's band at once."""
    from ebnb.stats import t_interval

    values = np.random.default_rng(5).normal(size=(10, 7))
    mean, low, high = t_interval(values)
    for column in range(values.shape[1]):
        np.testing.assert_allclose(
            (mean[column], low[column], high[column]), plots.mean_ci(values[:, column]), rtol=1e-12
        )


def test_summarize_gives_each_group_its_own_band():
    table = pd.DataFrame({"P": [0.2] * 5 + [0.8] * 5, "length": [10, 20, 30, 40, 50, 500, 500, 500, 500, 480]})
    summary = plots.summarize(table, ["P"], "length")
    assert summary["P"].tolist() == [0.2, 0.8]
    assert summary["mean"].tolist() == [30.0, 496.0]
    assert summary[["low", "high"]].to_numpy().tolist() == [
        list(plots.mean_ci([10, 20, 30, 40, 50])[1:]),
        list(plots.mean_ci([500] * 4 + [480])[1:]),
    ]


def test_criteria_heatmap_colours_each_cell_by_its_state_with_the_deciding_p_value_and_the_power():
    from test_verdicts import synthetic

    from ebnb import analysis

    criteria = analysis.criteria_table(*synthetic(), "CartPole-v0")
    fig = plots.criteria_heatmap(criteria, "CartPole-v0", "retrain")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == list(plots.CRITERION_LABELS.values())
    title = fig.get_suptitle()
    assert "CartPole-v0" in title and "80% power" in title and "n = 10 vs 10 seeds" in title
    images = {ax.get_title(): ax.get_images()[0].get_array() for ax in axes}
    states = list(plots.STATE_COLORS)
    performance = images[plots.CRITERION_LABELS["1_performance"]]  # rows P = 0.2, 0.8; columns e = 10, 90
    assert [[states[int(v)] for v in row] for row in performance] == [
        [analysis.SHOWN_NI, analysis.SHOWN_NI],
        [analysis.SHOWN_WORSE, analysis.NEITHER],
    ]
    earlier = axes[list(plots.CRITERION_LABELS).index("4_earlier")]
    assert sorted(t.get_text() for t in earlier.texts) == ["10/10", "10/10", "9/10", "9/10"]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in axes[0].texts}
    row = criteria.set_index(["P", "prune_episode"])
    assert texts[(1, 0)] == plots.beyond._p_text(row.loc[(0.8, 10), "return_vs_unpruned_p_worse_holm"]), (
        "red: p of worse"
    )
    assert texts[(0, 0)] == plots.beyond._p_text(row.loc[(0.2, 10), "return_vs_unpruned_p_ni_holm"])
    assert not axes[-1].texts, "the conjunction has none"
    legend = [t.get_text() for t in axes[-1].get_legend().get_texts()]
    assert legend == [*analysis.STATES, analysis.FAILS_4]
    plt.close(fig)


def test_a_figure_saved_twice_gives_the_same_bytes(tmp_path):
    """Published figures change only when what they show changes (no creation date in the PDF)."""
    import time

    def saved(folder):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        return [p.read_bytes() for p in plots.save(fig, "fig", folder, "quick profile: not the thesis grid")]

    first = saved(tmp_path / "a")
    time.sleep(1.1)  # a date in whole seconds would now differ
    assert saved(tmp_path / "b") == first


def test_the_sweep_figure_has_a_row_per_search_and_a_column_per_p_in_the_cost_asked_for():
    rng = np.random.default_rng(0)
    rows = [
        {
            "seed": seed,
            "P": fraction,
            "xi": xi,
            "window": 1,
            "detector": detector,
            "start": start,
            "test_return": 200 - rng.random(),
            "relative_env_steps": rng.random(),
            "relative_updates": rng.random(),
        }
        for seed in range(3)
        for fraction in (0.2, 0.8)
        for xi in (0.1, 0.2)
        for detector, start in (("last_two", "after_exploration"), ("queue", "episode_1"))
    ]
    baseline = pd.DataFrame({"test_return": [200.0, 199.0, 198.0]})
    fig = plots.eb_exploit_sweep(pd.DataFrame(rows), baseline, "CartPole-v0", "relative_updates")
    axes = np.array(fig.axes).reshape(2, 2)
    assert [ax.get_title() for ax in axes[0]] == ["P = 0.2", "P = 0.8"]
    assert [ax.get_ylabel().split("\n")[0] for ax in axes[:, 0]] == [
        "last two masks, after exploration",
        "queue of 5, from episode 1",
    ]
    assert axes[1, 0].get_xlabel() == "gradient updates, relative to unpruned"
    plt.close(fig)
    with pytest.raises(ValueError, match="cost: unknown 'episodes'"):
        plots.eb_exploit_sweep(pd.DataFrame(rows), baseline, "CartPole-v0", "episodes")


def test_the_kappa_heatmaps_are_figure_33s_on_the_kappa_scale():
    episodes = [0, 2, 4]
    matrices = {p: pd.DataFrame(np.eye(3), index=episodes, columns=episodes) for p in (0.2, 0.8)}
    fig = plots.similarity_heatmaps(matrices, "Acrobot-v1", "kappa")
    assert "Cohen's kappa" in fig.get_suptitle() and "Cohen's kappa" in fig.axes[-1].get_ylabel()
    assert [ax.get_title() for ax in fig.axes[:2]] == ["P = 0.2", "P = 0.8"]
    plt.close(fig)
    fig = plots.similarity_heatmaps(matrices, "Acrobot-v1")
    assert fig.get_suptitle() == "Acrobot: similarity of masks drawn during training (mean over seeds)"
    plt.close(fig)
    with pytest.raises(ValueError, match="quantity: unknown 'hamming'"):
        plots.similarity_heatmaps(matrices, "Acrobot-v1", "hamming")
