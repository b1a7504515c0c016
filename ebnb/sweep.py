"""EB Exploit, swept: when each setting of a grid of detectors would draw its ticket.

Until it prunes, an EB Exploit agent is its seed's dense run (same random streams; early
stopping only ends a run), so where any setting draws its ticket follows from the dense run's
global-L1 mask after every episode (`ebnb.experiments.MaskTrace`). A setting is

- ``xi``: the Hamming-distance threshold (a distance below it counts as settled);
- ``window``: a mask is drawn every `window` episodes from the search's first episode on;
- ``detector``: ``"last_two"``, the thesis' algorithm 3.1 (the distance between the last two
  masks drawn is below xi), or ``"queue"``, You et al.'s EB-Train queue (ICLR 2020) as issue
  13 words it: settled once the distances among the last `QUEUE` masks drawn, every pair of
  them, are all below xi (their code compares only the newest with each older one:
  docs/protocol.md);
- ``start``: ``"after_exploration"``, the first mask at the first episode end at which epsilon
  is at its floor (as `ebnb.experiments.eb_exploit`), or ``"episode_1"``, the first mask at the
  end of episode 1.

A ticket is drawn at the episode of the mask that settles it, if that is no later than the
episode at which the dense run early-stops (or the episode cap); else the run ends unpruned.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from ebnb.config import check_fraction, check_positive_int

DETECTORS = ("last_two", "queue")
STARTS = ("after_exploration", "episode_1")
QUEUE = 5  # You et al.'s queue length (epoch_keep)
DEFAULTS = {"xis": (0.02, 0.05, 0.1, 0.2), "windows": (1, 2, 5), "detectors": DETECTORS, "starts": STARTS}
SETTING = ("xi", "window", "detector", "start")  # the columns naming a setting in every table


def grid(
    xis=DEFAULTS["xis"], windows=DEFAULTS["windows"], detectors=DEFAULTS["detectors"], starts=DEFAULTS["starts"]
) -> dict[str, tuple]:
    """The sweep grid as tuples, checked: each a non-empty list without repeats; xis in (0, 1),
    windows integers >= 1, detectors in `DETECTORS`, starts in `STARTS`; else ValueError."""
    given = {"xis": xis, "windows": windows, "detectors": detectors, "starts": starts}
    for name, values in given.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(
                f"{name}: must be a non-empty list, e.g. {name}={list(DEFAULTS[name][:2])}, got {values!r}"
            )
        if len(set(values)) != len(values):
            raise ValueError(f"{name}: {list(values)} names a value twice")
    for xi in xis:
        check_fraction("xis", xi)
    for window in windows:
        check_positive_int("windows", window)
    for name, allowed in (("detectors", DETECTORS), ("starts", STARTS)):
        for value in given[name]:
            if value not in allowed:
                raise ValueError(f"{name}: unknown {value!r}; allowed: {', '.join(allowed)}")
    return {name: tuple(float(v) if name == "xis" else v for v in values) for name, values in given.items()}


def settings(sweep: dict[str, tuple]) -> list[tuple]:
    """Every (xi, window, detector, start) of a `grid`, in grid order."""
    return [
        (x, w, d, s)
        for x in sweep["xis"]
        for w in sweep["windows"]
        for d in sweep["detectors"]
        for s in sweep["starts"]
    ]


def search_start(epsilon: np.ndarray, floor: float, start: str) -> int | None:
    """The episode of a search's first mask: `epsilon[e]` is epsilon after episode e (index 0:
    before training). "after_exploration": the first e >= 1 with epsilon at `floor` (None if
    never); "episode_1": 1."""
    if start == "episode_1":
        return 1
    at_floor = np.flatnonzero(np.asarray(epsilon)[1:] <= floor)
    return int(at_floor[0]) + 1 if len(at_floor) else None


def distances(packed: np.ndarray, n_weights: int):
    """distance(i, j): the normalized Hamming distance between the masks after episodes i and
    j of packed flat masks `packed[episode]` (`ebnb.masks.pack`) of `n_weights` weights
    (each pair computed once)."""

    @functools.cache
    def distance(i: int, j: int) -> float:
        return int(np.unpackbits(packed[i] ^ packed[j]).sum()) / n_weights

    return distance


def detect(distance, first: int | None, last: int, window: int, xi: float, detector: str) -> int | None:
    """The episode at which a search drawing masks at episodes first, first + window, ... (no
    later than `last`, the episode at which the run stops) finds its ticket, or None."""
    if first is None:
        return None
    drawn: list[int] = []
    for episode in range(first, last + 1, window):
        drawn.append(episode)
        if settled(distance, drawn, xi, detector):
            return episode
    return None


def settled(distance, drawn: list[int], xi: float, detector: str) -> bool:
    """Whether the masks drawn at episodes `drawn` (oldest first) settle a search: "last_two",
    the distance between the last two is below xi; "queue", the distances among the last
    `QUEUE`, every pair of them, are. `distance(i, j)`: the normalized Hamming distance between
    the masks drawn at episodes i and j. The one detector of the sweep (`detect`) and of the
    online EB Exploit search (`ebnb.experiments.exploit`)."""
    size = 2 if detector == "last_two" else QUEUE
    return len(drawn) >= size and all(distance(i, j) < xi for i, j in itertools.combinations(drawn[-size:], 2))


# ---- the sweep's statistics: one hypothesis per distinct schedule, paired savings, Holm ----------

FRESH_SEEDS = tuple(range(10, 30))  # profile sweep_fresh: seeds no setting was chosen on
TOP_K = 2  # hypotheses per env and P taken to fresh seeds (`hypotheses`)
SAVINGS = {"env_steps": "relative_env_steps", "updates": "relative_updates"}


def schedules(results):
    """Per P and setting of a sweep table (`ebnb.experiments.eb_exploit_sweep`): its schedule,
    the (seed, prune episode) of every seed (-1 where no ticket was drawn), as an id
    `schedule` numbered per P in grid order, and `merged`: how many settings share it. Settings
    with one schedule draw the same tickets, so they are one hypothesis, not several."""
    import pandas as pd

    keyed = results.assign(drawn=results["prune_episode"].where(results["found"], -1)).sort_values("seed")
    rows = []
    for (fraction, *setting), group in keyed.groupby(["P", *SETTING], sort=False):
        rows.append(
            {
                "P": fraction,
                **dict(zip(SETTING, setting)),
                "key": tuple(zip(group["seed"].tolist(), group["drawn"].tolist())),
            }
        )
    table = pd.DataFrame(rows)
    table["schedule"] = table.groupby("P", sort=False)["key"].transform(lambda k: pd.factorize(k)[0])
    table["merged"] = table.groupby(["P", "schedule"])["key"].transform("size")
    return table.drop(columns="key")


def savings(results, baseline, env_id: str, alpha: float = 0.05):
    """One row per P and distinct schedule (`schedules`; its first setting in grid order names
    it, `merged` says how many share it): per seed the saving 1 - relative cost (env steps,
    gradient updates; relative to the same seed's unpruned run, so paired by seed) and the
    test return's difference from that seed's unpruned return. For each saving: the mean over
    seeds, its two-sided Student-t (1 - alpha) interval, the one-sided paired t-test p-value of
    'saves' (H0 mean saving <= 0), the exact Wilcoxon signed-rank p-value beside it, and Holm's
    adjusted p over all distinct schedules of the table (every P: one family per env);
    `saves`: adjusted p < alpha. The return difference: mean and t interval, and criterion 1's
    test paired by seed: non-inferiority at criterion 1's margin (`ebnb.analysis.ni_margin`
    of the unpruned returns: `return_margin`; `return_bound`, the one-sided bound) and the
    one-sided test of 'worse', each Holm over the same family, in three states
    (`return_state`, `ebnb.analysis.STATES`)."""
    import pandas as pd
    from scipy import stats as scipy_stats

    from ebnb import analysis, stats

    merged = schedules(results)
    first = merged.groupby(["P", "schedule"], sort=False).head(1)
    unpruned = baseline.set_index("seed")["test_return"]
    return_margin = analysis.ni_margin(unpruned, True, analysis.WORST_RETURN[env_id])
    rows = []
    for setting in first.itertuples(index=False):
        chosen = results[
            (results.P == setting.P)
            & np.logical_and.reduce([results[name] == getattr(setting, name) for name in SETTING])
        ].sort_values("seed")
        row = {
            "P": setting.P,
            **{name: getattr(setting, name) for name in SETTING},
            "schedule": setting.schedule,
            "merged": setting.merged,
            "seeds": len(chosen),
            "found": chosen["found"].mean(),
        }
        for name, column in SAVINGS.items():
            saving = 1.0 - chosen[column].to_numpy()
            mean, low, high = stats.t_interval(saving, 1 - alpha)
            spread = saving.std(ddof=1) > 0
            p = (
                float(scipy_stats.ttest_1samp(saving, 0.0, alternative="greater").pvalue)
                if spread
                else (0.0 if mean > 0 else 1.0)
            )
            row.update(
                {
                    f"saving_{name}": mean,
                    f"saving_{name}_low": low,
                    f"saving_{name}_high": high,
                    f"p_{name}": p,
                    f"p_{name}_wilcoxon": stats.paired_wilcoxon(saving, 0 * saving, "greater"),
                }
            )
        ticket, reference = chosen["test_return"].to_numpy(), unpruned.loc[chosen["seed"]].to_numpy()
        row["return_difference"], row["return_difference_low"], row["return_difference_high"] = stats.t_interval(
            ticket - reference, 1 - alpha
        )
        ni = stats.paired_non_inferiority(ticket, reference, return_margin, True, alpha)
        row.update(
            {
                "return_margin": return_margin,
                "return_bound": ni.bound,
                "p_return_ni": ni.p,
                "p_return_worse": stats.paired_worse(ticket, reference, True, alpha).p,
            }
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    for name in SAVINGS:
        table[f"p_{name}_holm"] = stats.holm(table[f"p_{name}"])
        table[f"saves_{name}"] = table[f"p_{name}_holm"] < alpha
    table["p_return_ni_holm"], table["p_return_worse_holm"] = (
        stats.holm(table.p_return_ni),
        stats.holm(table.p_return_worse),
    )
    table["return_state"] = np.select(
        [table.p_return_ni_holm < alpha, table.p_return_worse_holm < alpha],
        [analysis.SHOWN_NI, analysis.SHOWN_WORSE],
        analysis.NEITHER,
    )
    return table


def hypotheses(saved, k: int = TOP_K):
    """The settings to confirm on fresh seeds, chosen by a rule fixed before they are run: per
    P, the `k` distinct schedules of `savings` with the largest mean saving in env steps (ties:
    in updates, then grid order), among those that save at all (mean > 0), each named by its
    first setting in grid order. A list of (P, xi, window, detector, start)."""
    ranked = saved[saved["saving_env_steps"] > 0].sort_values(
        ["P", "saving_env_steps", "saving_updates"], ascending=[True, False, False], kind="stable"
    )
    chosen = ranked.groupby("P", sort=True).head(k)
    return [(row.P, float(row.xi), int(row.window), row.detector, row.start) for row in chosen.itertuples()]
