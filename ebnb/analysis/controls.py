"""The L1 ticket against its controls (notebook 05)."""

from __future__ import annotations

import pandas as pd

from ebnb import stats as tests
from ebnb.analysis.criteria import ALPHA
from ebnb.stats import iqm


def iqm_table(table: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Interquartile mean over seeds of `columns` per group of `by` (rliable's summary)."""
    return table.groupby(by, sort=True)[columns].agg(iqm)


def ticket_vs_controls(tickets: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per (mode, P, prune_episode, control): does the L1 ticket beat the control?

    `tickets` as `experiments.controlled_tickets` (control "l1" is the ticket). One-sided Welch
    tests over seeds: p_return for 'the control's test return is lower than the ticket's',
    p_length for 'the control trains for more episodes'; beats_return / beats_length when
    p < alpha. Also the IQM of both."""
    rows = []
    for (mode, fraction, episode), group in tickets.groupby(["mode", "P", "prune_episode"], sort=True):
        ticket = group[group.control == "l1"]
        for control, other in group[group.control != "l1"].groupby("control", sort=True):
            p_return = tests.worse(other["test_return"], ticket["test_return"], True, alpha).p
            p_length = tests.worse(other["length"], ticket["length"], False, alpha).p
            rows.append(
                {
                    "mode": mode,
                    "P": fraction,
                    "prune_episode": episode,
                    "control": control,
                    "return_ticket": iqm(ticket["test_return"]),
                    "return_control": iqm(other["test_return"]),
                    "length_ticket": iqm(ticket["length"]),
                    "length_control": iqm(other["length"]),
                    "p_return": p_return,
                    "p_length": p_length,
                    "beats_return": p_return < alpha,
                    "beats_length": p_length < alpha,
                }
            )
    return pd.DataFrame(rows)


def control_findings(versus: pd.DataFrame, alpha: float = ALPHA) -> list[str]:
    """One line per (mode, control, P) of `ticket_vs_controls`: the prune episodes where the
    L1 ticket has a significantly higher test return and a significantly shorter training."""

    def episodes(cells):
        return ", ".join(str(e) for e in cells.prune_episode) or "none"

    lines = [f"The L1 ticket beats a control where a one-sided Welch t-test over seeds gives p < {alpha}."]
    for (mode, control), by_control in versus.groupby(["mode", "control"], sort=True):
        lines.append(
            f"{mode}, vs {control}: higher return in {int(by_control.beats_return.sum())}, shorter training in "
            f"{int(by_control.beats_length.sum())} of {len(by_control)} (P, episode) cells"
        )
        for fraction, cells in by_control.groupby("P", sort=True):
            lines.append(
                f"  P={fraction}: higher return at e = {episodes(cells[cells.beats_return])}; "
                f"shorter training at e = {episodes(cells[cells.beats_length])}"
            )
    return lines
