"""Criterion 3's reference (issue 31's variant 7): IMP winning tickets against one-shot ones,
paired by seed, Holm over P, in three states; and their figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ebnb import analysis, plots
from ebnb.stats import holm


def winning(returns: dict, lengths: dict, capped=()) -> pd.DataFrame:
    """A winning-ticket table (the columns the comparison reads) of seeds 0..n-1 per P."""
    rows = [
        {"seed": s, "P": p, "test_return": r, "length": lengths[p][s], "converged": (p, s) not in capped}
        for p, values in returns.items()
        for s, r in enumerate(values)
    ]
    return pd.DataFrame(rows)


RNG = np.random.default_rng(3)
ONE_SHOT = winning(
    {0.2: RNG.normal(190, 5, 10), 0.8: RNG.normal(150, 20, 10)},
    {0.2: RNG.normal(120, 30, 10), 0.8: RNG.normal(200, 60, 10)},
    capped={(0.8, 3)},
)
IMP = winning(
    {
        0.2: ONE_SHOT[ONE_SHOT.P == 0.2].test_return.to_numpy(),
        0.8: ONE_SHOT[ONE_SHOT.P == 0.8].test_return - 40 + RNG.normal(0, 1, 10),
    },
    {
        0.2: ONE_SHOT[ONE_SHOT.P == 0.2].length.to_numpy(),
        0.8: ONE_SHOT[ONE_SHOT.P == 0.8].length.to_numpy() + RNG.normal(5, 50, 10),
    },
    capped={(0.8, 3), (0.8, 5)},
).assign(round=lambda t: t.P.map({0.2: 1, 0.8: 2}))


def test_imp_against_one_shot_is_scipys_paired_t_test_with_its_interval_and_holm_over_p():
    table = analysis.imp_vs_one_shot(ONE_SHOT, IMP)
    assert table[["P", "measure"]].values.tolist() == [
        [0.2, "test_return"],
        [0.2, "length"],
        [0.8, "test_return"],
        [0.8, "length"],
    ]
    for row in table.itertuples():
        ours = IMP[IMP.P == row.P][row.measure].to_numpy()
        theirs = ONE_SHOT[ONE_SHOT.P == row.P][row.measure].to_numpy()
        if row.P == 0.2:  # round 1 is the one-shot ticket: no difference, decided by the mean
            assert (row.difference, row.p, row.mde) == (0.0, 1.0, 0.0)
            continue
        assert row.p == pytest.approx(stats.ttest_rel(ours, theirs).pvalue, rel=1e-12)
        interval = stats.t.interval(0.95, 9, loc=np.mean(ours - theirs), scale=stats.sem(ours - theirs))
        assert (row.ci_low, row.ci_high) == pytest.approx(interval, rel=1e-12)
    for _, group in table.groupby("measure"):
        np.testing.assert_allclose(group.p_holm, holm(group.p))
    shown = table.set_index(["P", "measure"])
    assert shown.loc[(0.8, "test_return"), "state"] == analysis.IMP_LOWER  # about 40 lower at every seed
    assert shown.loc[(0.8, "length"), "state"] == analysis.NEITHER  # noise of 50 on 10 seeds
    assert shown.loc[(0.8, "length"), ["at_cap_one_shot", "at_cap_imp"]].tolist() == [1, 2]
    assert shown.loc[(0.2, "length"), "state"] == analysis.NEITHER
    higher = analysis.imp_vs_one_shot(ONE_SHOT, IMP.assign(test_return=IMP.test_return + 80)).set_index(
        ["P", "measure"]
    )
    assert higher.loc[(0.8, "test_return"), "state"] == analysis.IMP_HIGHER
    assert higher.loc[(0.2, "test_return"), "difference"] == pytest.approx(80.0)
    assert higher.loc[(0.2, "test_return"), "state"] == analysis.IMP_HIGHER
    rounded = ONE_SHOT.assign(length=ONE_SHOT.length.round())
    constant = analysis.imp_vs_one_shot(rounded, rounded.assign(length=rounded.length + 3.0))
    row = constant.set_index(["P", "measure"]).loc[(0.8, "length")]  # no spread in the differences: by the mean
    assert (row.difference, row.p, row.ci_low, row.ci_high, row.state) == (3.0, 0.0, 3.0, 3.0, analysis.IMP_HIGHER)


def test_imp_lines_say_each_difference_with_interval_power_and_state():
    lines = analysis.imp_lines(analysis.imp_vs_one_shot(ONE_SHOT, IMP))
    assert len(lines) == 4 and lines[0].startswith("P=0.2, test return: one-shot ")
    assert "at the cap 1 and 2" in lines[3] and "95% paired CI" in lines[3] and "detectable at 80% power" in lines[3]
    assert lines[2].endswith(f"-> {analysis.IMP_LOWER}") and "IMP - one-shot -39.7" in lines[2]


def test_the_imp_figure_draws_both_kinds_of_winning_ticket_per_p_beside_the_unpruned_run():
    baseline = pd.DataFrame({"seed": range(10), "test_return": 195.0, "converged_episode": 110.0})
    fig = plots.winning_imp(ONE_SHOT, IMP, baseline, "CartPole-v0")
    ax_return, ax_length = fig.axes
    lines = {line.get_label(): line for line in ax_return.get_lines()}
    one_shot = next(line for label, line in lines.items() if label.startswith("one-shot"))
    imp = next(line for label, line in lines.items() if label.startswith("IMP"))
    np.testing.assert_allclose(one_shot.get_ydata(), ONE_SHOT.groupby("P").test_return.mean())
    np.testing.assert_allclose(imp.get_ydata(), IMP.groupby("P").test_return.mean())
    assert list(imp.get_xdata()) == [0.2, 0.8] and lines["unpruned"].get_ydata()[0] == 195.0
    assert ax_length.get_ylabel() == "episodes to early stopping"
    plt.close(fig)


def test_one_shot_and_imp_takes_the_one_shot_ticket_at_a_sparse_p_from_imps_round_1():
    """At a P the winning tickets lack (0.9), imp's round 1 is the one-shot reference and its
    round 2 the IMP ticket; at the others each side keeps its own rows, in their order."""
    sparse = IMP[IMP.P == 0.8].assign(P=0.9)
    imp = pd.concat([IMP, sparse.assign(round=3), sparse.assign(round=1, test_return=0.0)], ignore_index=True)
    one_shot, chains = analysis.one_shot_and_imp(ONE_SHOT, imp)
    pd.testing.assert_frame_equal(one_shot.iloc[: len(ONE_SHOT)], ONE_SHOT)
    assert (one_shot[one_shot.P == 0.9].test_return == 0.0).all() and len(one_shot) == len(ONE_SHOT) + 10
    assert chains.index.tolist() == list(range(len(IMP) + 10)) and (chains[chains.P == 0.9]["round"] == 3).all()
