"""Counter-based random streams: one independent stream per (agent seed, purpose).

Every random number an agent consumes is a pure function of its seed, the purpose
(exploration coin, random action, replay index, env reset) and a counter the agent owns
(its transition count, update count or episode index). Nothing depends on which other
agents share the batch, so an agent gives the same numbers alone or inside a population,
and a run resumed from a snapshot continues the very same streams.

The hash is SplitMix64 (Steele, Lea & Flood 2014) in uint64 arithmetic, compiled by numba into
numpy ufuncs (integer arithmetic: the same bits on every CPU).
"""

from __future__ import annotations

import enum

import numba
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


@numba.njit(cache=True)
def _mix(x):
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True)
def _bits_of(seed, stream, counter):
    """SplitMix64 of one (seed, stream, counter); uint64 arithmetic wraps as numpy's does."""
    key = _mix(_mix(np.uint64(seed) * _GOLDEN + np.uint64(stream)) + _GOLDEN)
    return _mix(key + np.uint64(counter) * _GOLDEN)


# Compiled ufuncs (numpy broadcasting, one C loop): a few microseconds per call where the
# same arithmetic as numpy expressions cost ~40, which a small population paid every step.
@numba.vectorize(["uint64(int64, int64, int64)"], cache=True)
def _bits(seed, stream, counter):
    return _bits_of(seed, stream, counter)


@numba.njit(cache=True)
def _uniform_of(seed, stream, counter):
    """The top 53 of the 64 bits as a float64 in [0, 1) (exact)."""
    return np.float64(_bits_of(seed, stream, counter) >> np.uint64(11)) * (2.0**-53)


@numba.vectorize(["float64(int64, int64, int64)"], cache=True)
def _uniform(seed, stream, counter):
    return _uniform_of(seed, stream, counter)


@numba.vectorize(["int64(int64, int64, int64, float64)"], cache=True)
def _integers(seed, stream, counter, high):
    return np.int64(np.floor(_uniform_of(seed, stream, counter) * high))


def bits(seed, stream: Stream, counter) -> np.ndarray:
    """64 random bits for each (seed, counter) pair; arrays broadcast against each other."""
    return _bits(np.asarray(seed, dtype=np.int64), int(stream), np.asarray(counter, dtype=np.int64))


def uniform(seed, stream: Stream, counter) -> np.ndarray:
    """Uniform float64 in [0, 1), one per broadcast (seed, counter) pair: the top 53 bits."""
    return _uniform(np.asarray(seed, dtype=np.int64), int(stream), np.asarray(counter, dtype=np.int64))


def integers(seed, stream: Stream, counter, high) -> np.ndarray:
    """Uniform int64 in [0, high): floor(uniform * high); `high` broadcasts too (e.g. per-agent
    buffer sizes)."""
    return _integers(
        np.asarray(seed, dtype=np.int64),
        int(stream),
        np.asarray(counter, dtype=np.int64),
        np.asarray(high, dtype=np.float64),
    )


def seed63(seed, stream: Stream, counter) -> np.ndarray:
    """A non-negative int64 seed derived from (seed, stream, counter)."""
    return (bits(seed, stream, counter) >> np.uint64(1)).astype(np.int64)


def seed32(seed, stream: Stream, counter) -> np.ndarray:
    """A 32-bit seed, for handing to libraries that keep their own generator."""
    return (bits(seed, stream, counter) >> np.uint64(32)).astype(np.int64)
