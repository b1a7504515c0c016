"""One function per figure, drawn from the tidy results of `ebnb.experiments`: the thesis'
3.3-3.8, then the figures beyond it (controls, input survival, the EB criteria, the EB Exploit
sweep).

Every line of a thesis figure is a mean over seeds with a 95% Student-t confidence band
(`mean_ci`; none for fewer than 3 seeds): with 10 seeds a percentile bootstrap of the mean
under-covers (issue 28.9). The figures beyond the thesis show interquartile means with a
percentile-bootstrap band (`ebnb.stats.iqm_ci`), as rliable does; their captions say so.
Axes are labelled in words. `save` writes a figure as PNG and PDF under `figures/`.
"""

from ebnb.plots.beyond import (
    CRITERION_LABELS,
    STATE_COLORS,
    criteria_heatmap,
    eb_exploit_sweep,
    input_survival,
    tickets_vs_controls,
)
from ebnb.plots.common import BASELINE, CONTROL_STYLES, ENV_NAMES, P_COLORS, figure_name, mean_ci, save, summarize
from ebnb.plots.thesis import (
    AGREEMENTS,
    eb_exploit,
    retrain_vs_finetune,
    similarity_heatmaps,
    tickets_vs_prune_episode,
)

__all__ = [
    "AGREEMENTS",
    "BASELINE",
    "CONTROL_STYLES",
    "CRITERION_LABELS",
    "ENV_NAMES",
    "P_COLORS",
    "STATE_COLORS",
    "criteria_heatmap",
    "eb_exploit",
    "eb_exploit_sweep",
    "figure_name",
    "input_survival",
    "mean_ci",
    "retrain_vs_finetune",
    "save",
    "similarity_heatmaps",
    "summarize",
    "tickets_vs_controls",
    "tickets_vs_prune_episode",
]
