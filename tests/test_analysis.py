"""`ebnb.analysis`' comparisons by the one-sided Welch test of 'worse' (`ebnb.stats.worse`) give
scipy's p-values on the published results: the controls of notebook 05 and EB Exploit's
return; the verdicts of the EB criteria are tested in test_verdicts.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ebnb import analysis, experiments
from ebnb.store import Store


def welch_worse(ticket, reference, higher_is_better: bool) -> float:
    """scipy's one-sided Welch p-value of 'ticket worse'; samples without a t statistic
    decided by the means (0 if the ticket's mean is worse, else 1)."""
    ticket, reference = np.asarray(ticket, float), np.asarray(reference, float)
    if len(ticket) < 2 or len(reference) < 2 or (ticket.std() == 0 and reference.std() == 0):
        worse = ticket.mean() < reference.mean() if higher_is_better else ticket.mean() > reference.mean()
        return 0.0 if worse else 1.0
    alternative = "less" if higher_is_better else "greater"
    return float(stats.ttest_ind(ticket, reference, equal_var=False, alternative=alternative).pvalue)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The published full profile, read into an empty store."""
    return experiments.grid("full"), Store(tmp_path_factory.mktemp("store")), experiments.published_results()


@pytest.mark.parametrize("env", ["cartpole", "acrobot"])
def test_the_controls_comparisons_are_scipys_welch_tests_on_the_published_controls(published, env):
    g, store, results = published
    tickets = experiments.controlled_tickets(env, g, store, results)
    versus = analysis.ticket_vs_controls(tickets).set_index(["mode", "P", "prune_episode", "control"])
    controls = tickets[tickets.control != "l1"].groupby(["mode", "P", "prune_episode", "control"]).ngroups
    assert len(versus) == controls > 0, "every control of every published cell"
    for (mode, fraction, episode, control), row in versus.iterrows():
        cell = tickets[(tickets["mode"] == mode) & (tickets.P == fraction) & (tickets.prune_episode == episode)]
        ticket, other = cell[cell.control == "l1"], cell[cell.control == control]
        assert row.p_return == pytest.approx(
            welch_worse(other.test_return, ticket.test_return, True), rel=1e-9, abs=1e-15
        )
        assert row.p_length == pytest.approx(welch_worse(other.length, ticket.length, False), rel=1e-9, abs=1e-15)
        assert row.beats_return == (row.p_return < 0.05) and row.beats_length == (row.p_length < 0.05)


@pytest.mark.parametrize("env", ["cartpole", "acrobot"])
def test_eb_exploits_lower_return_is_scipys_welch_test(published, env):
    g, store, results = published
    eb, baseline = experiments.eb_exploit(env, g, store, results), experiments.baseline(env, g, store, results)
    summary = analysis.eb_exploit_summary(eb, baseline).set_index("P")
    for fraction, group in eb.groupby("P"):
        expected = welch_worse(group.test_return, baseline.test_return, True)
        assert summary.loc[fraction, "p_return_lower"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
