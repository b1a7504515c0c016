"""The verdicts at n = 10 beside n = 15 (`ebnb.replication`): which change, on hand-made tables."""

from __future__ import annotations

import pandas as pd
import pytest

from ebnb import replication


def _verdicts(*states) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "P": [0.2, 0.2, 0.4],
            "prune_episode": [5, 30, 5],
            "1_performance": list(states),
            "early_bird": ["fails criterion 4", "shown non-inferior", "shown worse"],
        }
    )


def test_side_by_side_names_each_changed_verdict_and_only_those():
    at10 = _verdicts("shown non-inferior", "shown non-inferior", "shown worse")
    at15 = _verdicts("shown non-inferior", "not shown either way", "shown worse").iloc[
        ::-1
    ]  # row order does not matter
    at15.loc[at15.prune_episode == 30, "early_bird"] = "not shown either way"
    table = replication.side_by_side(at10, at15, ["P", "prune_episode"], ["1_performance", "early_bird"])
    assert list(table.columns) == [
        "P",
        "prune_episode",
        "1_performance_n10",
        "1_performance_n15",
        "early_bird_n10",
        "early_bird_n15",
        "changed",
    ]
    assert table.changed.tolist() == ["", "1_performance, early_bird", ""]
    assert replication.change_lines(table, ["P", "prune_episode"]) == [
        (
            "P=0.2, prune_episode=30: 1_performance shown non-inferior -> not shown either way; "
            "early_bird shown non-inferior -> not shown either way"
        )
    ]
    same = replication.side_by_side(at10, at10, ["P", "prune_episode"], ["1_performance"])
    assert replication.change_lines(same, ["P", "prune_episode"]) == ["no verdict changes (of 3 rows)"]


def test_side_by_side_names_its_columns_after_the_tables_it_compares():
    at10 = _verdicts("shown non-inferior", "not shown either way", "shown worse")
    at100 = _verdicts("shown non-inferior", "shown non-inferior", "shown worse")
    table = replication.side_by_side(at10, at100, ["P", "prune_episode"], ["1_performance"], names=("n10", "n100"))
    assert list(table.columns) == ["P", "prune_episode", "1_performance_n10", "1_performance_n100", "changed"]
    assert replication.change_lines(table, ["P", "prune_episode"], names=("n10", "n100")) == [
        "P=0.2, prune_episode=30: 1_performance not shown either way -> shown non-inferior"
    ]


def test_effect_lines_give_each_comparisons_estimate_bound_margin_power_and_verdict():
    row = {"P": 0.8, "prune_episode": 20}
    for name, estimate, state in (
        ("length_vs_unpruned", 3.14, "shown non-inferior"),
        ("return_vs_unpruned", -2.0, "shown worse"),
    ):
        row |= {
            f"{name}_estimate": estimate,
            f"{name}_bound": estimate + 6.0,
            f"{name}_margin": 10.8,
            f"{name}_mde": 5.25,
            f"{name}_n": 100,
            f"{name}_n_reference": 99,
            f"{name}_state": state,
        }
    lines = replication.effect_lines(pd.DataFrame([row]), ("length_vs_unpruned", "return_vs_unpruned"))
    assert lines == [
        "P=0.8, e=20, length_vs_unpruned: +3.1 (bound +9.1; margin 10.8; detectable 5.2; n = 100 vs 99) -> shown non-inferior",
        "P=0.8, e=20, return_vs_unpruned: -2.0 (bound +4.0; margin 10.8; detectable 5.2; n = 100 vs 99) -> shown worse",
    ]


def test_side_by_side_refuses_tables_of_other_cells():
    at10 = _verdicts("a", "b", "c")
    with pytest.raises(ValueError, match="other"):
        replication.side_by_side(at10, at10.iloc[:2], ["P", "prune_episode"], ["1_performance"])


def test_shorter_is_the_holm_adjusted_verdict():
    table = replication.shorter(pd.DataFrame({"P": [0.2, 0.8], "p_holm": [0.049, 0.05]}))
    assert table.finetune.tolist() == ["shorter", "not shown shorter"]
