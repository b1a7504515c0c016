"""Counter-based random streams: one independent stream per (agent seed, purpose).

Every random number an agent consumes is a pure function of its seed, the purpose
(exploration coin, random action, replay index, env reset) and a counter the agent owns
(its transition count, update count or episode index). Nothing depends on which other
agents share the batch, so an agent gives the same numbers alone or inside a population,
and a run resumed from a snapshot continues the very same streams.

The hash is SplitMix64 (Steele, Lea & Flood 2014) applied to numpy uint64 arrays.
"""

from __future__ import annotations

import enum

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


class Stream(enum.IntEnum):
    """What a random number is for; each purpose has a stream of its own."""

    COIN = 1  # epsilon-greedy: explore if u < epsilon
    ACTION = 2  # the random action when exploring
    REPLAY = 3  # replay-buffer indices of a minibatch
    RESET = 4  # initial state of an episode
    TEST = 5  # the seed of an agent's test episodes (kept apart from its training episodes)
    CONTROL = 6  # the shuffles and re-initialisation of a control ticket (ebnb.controls)


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def bits(seed, stream: Stream, counter) -> np.ndarray:
    """64 random bits for each (seed, counter) pair; arrays broadcast against each other."""
    seed = np.asarray(seed, dtype=np.int64).astype(np.uint64)
    counter = np.asarray(counter, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        key = _mix(_mix(seed * _GOLDEN + np.uint64(int(stream))) + _GOLDEN)
        return _mix(key + counter * _GOLDEN)


def uniform(seed, stream: Stream, counter) -> np.ndarray:
    """Uniform float64 in [0, 1), one per broadcast (seed, counter) pair."""
    return (bits(seed, stream, counter) >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def integers(seed, stream: Stream, counter, high) -> np.ndarray:
    """Uniform int64 in [0, high); `high` broadcasts too (e.g. per-agent buffer sizes)."""
    draw = np.floor(uniform(seed, stream, counter) * np.asarray(high, dtype=np.float64))
    return draw.astype(np.int64)


def seed63(seed, stream: Stream, counter) -> np.ndarray:
    """A non-negative int64 seed derived from (seed, stream, counter)."""
    return (bits(seed, stream, counter) >> np.uint64(1)).astype(np.int64)


def seed32(seed, stream: Stream, counter) -> np.ndarray:
    """A 32-bit seed, for handing to libraries that keep their own generator."""
    return (bits(seed, stream, counter) >> np.uint64(32)).astype(np.int64)
