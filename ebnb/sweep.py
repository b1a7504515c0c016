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


def grid(xis=DEFAULTS["xis"], windows=DEFAULTS["windows"], detectors=DEFAULTS["detectors"],
         starts=DEFAULTS["starts"]) -> dict[str, tuple]:  # fmt: skip
    """The sweep grid as tuples, checked: each a non-empty list without repeats; xis in (0, 1),
    windows integers >= 1, detectors in `DETECTORS`, starts in `STARTS`; else ValueError."""
    given = {"xis": xis, "windows": windows, "detectors": detectors, "starts": starts}
    for name, values in given.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"{name}: must be a non-empty list, e.g. {name}={list(DEFAULTS[name][:2])}, got {values!r}")
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
    return [(x, w, d, s) for x in sweep["xis"] for w in sweep["windows"] for d in sweep["detectors"]
            for s in sweep["starts"]]  # fmt: skip


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
    size = 2 if detector == "last_two" else QUEUE
    drawn: list[int] = []
    for episode in range(first, last + 1, window):
        drawn.append(episode)
        if len(drawn) >= size and all(distance(i, j) < xi for i, j in itertools.combinations(drawn[-size:], 2)):
            return episode
    return None
