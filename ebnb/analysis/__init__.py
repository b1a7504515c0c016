"""The thesis' claims as computations on results: the four Early-Bird ticket criteria (3.4),
finetune vs retrain, EB Exploit vs unpruned, the controls, mask similarity and the EB Exploit
sweep's summary.

Criteria 1-3 are decided at seed level by non-inferiority (NI, `ebnb.stats`): a criterion is
*shown non-inferior* only if the NI test at its margin rejects after Holm's adjustment over
the cells of a figure, *shown worse* if the one-sided Welch test of "worse" does (Holm), and
*not shown either way* otherwise (docs/protocol.md, "Statistics"). Criterion 4 is judged per
seed. `criteria_table` gives per cell the estimates, bounds, p-values and verdicts.

Modules: `criteria` (the EB criteria, their power, finetune vs retrain), `exploit` (EB Exploit
and its sweep), `controls` (the ticket against its controls), `mask_agreement` (similarity and
kappa of masks), `winning` (IMP winning tickets against one-shot ones); their public names are
re-exported here.
"""

from ebnb.analysis.controls import control_findings, iqm_table, ticket_vs_controls
from ebnb.analysis.criteria import (
    ALPHA,
    CELL_COLUMNS,
    COMPARISONS,
    FAILS_4,
    NEITHER,
    NI_LENGTH_MARGIN,
    NI_RETURN_MARGIN,
    SHOWN_NI,
    SHOWN_WORSE,
    STATES,
    VERDICT_CRITERIA,
    WORST_RETURN,
    criteria_table,
    earlier_per_seed,
    early_bird_verdicts,
    finetune_vs_retrain,
    ni_margin,
    ni_tests,
    power_lines,
    verdict_counts,
    verdict_lines,
)
from ebnb.analysis.exploit import (
    eb_exploit_by_xi,
    eb_exploit_hypotheses,
    eb_exploit_power,
    eb_exploit_summary,
    eb_exploit_sweep_summary,
)
from ebnb.analysis.mask_agreement import (
    KAPPA_SETTLED,
    kappa_matrices,
    mask_kappa_summary,
    mask_similarity_summary,
    settle_episode,
)
from ebnb.analysis.winning import IMP_HIGHER, IMP_LOWER, imp_lines, imp_vs_one_shot, one_shot_and_imp

__all__ = [
    "ALPHA",
    "CELL_COLUMNS",
    "COMPARISONS",
    "FAILS_4",
    "IMP_HIGHER",
    "IMP_LOWER",
    "KAPPA_SETTLED",
    "NEITHER",
    "NI_LENGTH_MARGIN",
    "NI_RETURN_MARGIN",
    "SHOWN_NI",
    "SHOWN_WORSE",
    "STATES",
    "VERDICT_CRITERIA",
    "WORST_RETURN",
    "control_findings",
    "criteria_table",
    "earlier_per_seed",
    "early_bird_verdicts",
    "eb_exploit_by_xi",
    "eb_exploit_hypotheses",
    "eb_exploit_power",
    "eb_exploit_summary",
    "eb_exploit_sweep_summary",
    "finetune_vs_retrain",
    "imp_lines",
    "imp_vs_one_shot",
    "iqm_table",
    "kappa_matrices",
    "mask_kappa_summary",
    "mask_similarity_summary",
    "ni_margin",
    "ni_tests",
    "one_shot_and_imp",
    "power_lines",
    "settle_episode",
    "ticket_vs_controls",
    "verdict_counts",
    "verdict_lines",
]
