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


def test_side_by_side_refuses_tables_of_other_cells():
    at10 = _verdicts("a", "b", "c")
    with pytest.raises(ValueError, match="other"):
        replication.side_by_side(at10, at10.iloc[:2], ["P", "prune_episode"], ["1_performance"])


def test_shorter_is_the_holm_adjusted_verdict():
    table = replication.shorter(pd.DataFrame({"P": [0.2, 0.8], "p_holm": [0.049, 0.05]}))
    assert table.finetune.tolist() == ["shorter", "not shown shorter"]
