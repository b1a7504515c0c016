"""How alike masks drawn during training are: similarity and chance-corrected kappa summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ebnb import masks
from ebnb.stats import MIN_CI_SEEDS, bootstrap_interval

KAPPA_SETTLED = 0.8  # "settled": kappa with the final mask at least this (docs/protocol.md)


def settle_episode(to_last, episodes, threshold: float) -> float:
    """The first of `episodes` from which every later value of `to_last` (agreement with the
    final mask, one per episode) is at least `threshold` (NaN if even the last is below)."""
    unsettled = np.flatnonzero(np.asarray(to_last) < threshold)
    if not len(unsettled):
        return episodes[0]
    return episodes[unsettled[-1] + 1] if unsettled[-1] + 1 < len(episodes) else np.nan


def mask_similarity_summary(similarity: dict[float, pd.DataFrame], settled: float = 0.9) -> pd.DataFrame:
    """Per P: similarity of the first mask to the last; mean similarity of consecutive masks in
    the first and last tenth of training; the first episode from which every later mask is at
    least `settled` similar to the final one (the thesis' reading, not corrected for chance:
    `mask_kappa_summary`)."""
    rows = []
    for fraction, matrix in sorted(similarity.items()):
        values, episodes = matrix.to_numpy(), matrix.index.to_numpy()
        consecutive = np.diag(values, 1)
        tenth = max(1, len(consecutive) // 10)
        rows.append(
            {
                "P": fraction,
                "first_vs_last": values[0, -1],
                "consecutive_early": consecutive[:tenth].mean(),
                "consecutive_late": consecutive[-tenth:].mean(),
                f"settles_at_{settled}": settle_episode(values[:, -1], episodes, settled),
            }
        )
    return pd.DataFrame(rows)


def kappa_matrices(agreement: dict[float, dict[str, np.ndarray]]) -> dict[float, pd.DataFrame]:
    """Per P of `experiments.mask_agreement`: the seeds' mean Cohen's kappa between every pair
    of masks (`masks.kappa`, layer-aware chance), a square DataFrame indexed by episode."""
    return {
        fraction: pd.DataFrame(
            masks.kappa(a["similarity"], a["chance"]).mean(axis=0), index=a["episodes"], columns=a["episodes"]
        )
        for fraction, a in sorted(agreement.items())
    }


def mask_kappa_summary(
    agreement: dict[float, dict[str, np.ndarray]], settled: float = KAPPA_SETTLED, confidence: float = 0.95
) -> pd.DataFrame:
    """Per P of `experiments.mask_agreement`, the first mask against the last, mean over seeds:
    the raw similarity; the chance level from P alone, P^2 + (1 - P)^2 (`chance_global`), and
    from the two masks' per-layer densities (`chance_layer`); Cohen's kappa on each
    (`kappa_global`, `kappa_layer`). Then the episode from which every later mask has a
    layer-aware kappa of at least `settled` with the final one, per seed: its mean over seeds
    (`settles`) and percentile-bootstrap interval over seeds (`settles_low`, `settles_high`)."""
    rows = []
    for fraction, a in sorted(agreement.items()):
        similarity, chance, episodes = a["similarity"], a["chance"], a["episodes"]
        chance_global = float(masks.chance_agreement(1 - fraction, 1 - fraction))
        per_seed = masks.kappa(similarity, chance)
        settles = np.array([settle_episode(k[:, -1], episodes, settled) for k in per_seed], dtype=float)
        low, high = bootstrap_interval(settles, np.mean, confidence) if len(settles) >= MIN_CI_SEEDS else (np.nan,) * 2
        rows.append(
            {
                "P": fraction,
                "similarity": similarity[:, 0, -1].mean(),
                "chance_global": chance_global,
                "chance_layer": chance[:, 0, -1].mean(),
                "kappa_global": float(masks.kappa(similarity[:, 0, -1].mean(), chance_global)),
                "kappa_layer": per_seed[:, 0, -1].mean(),
                "settles": settles.mean(),
                "settles_low": low,
                "settles_high": high,
            }
        )
    return pd.DataFrame(rows)
