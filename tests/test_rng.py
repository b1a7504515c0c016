"""ebnb.rng: counter-based SplitMix64 streams, checked against an independent implementation.

The reference below uses plain Python integers (arbitrary precision, masked to 64 bits),
not numpy's uint64 arithmetic; its mixing function is checked against SplitMix64's published
outputs (Vigna's splitmix64.c: seed 0 and seed 1234567).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from ebnb import rng

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64_mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def splitmix64_outputs(state: int, n: int) -> list[int]:
    """The first n outputs of the SplitMix64 generator seeded with `state`."""
    out = []
    for _ in range(n):
        state = (state + GOLDEN) & MASK64
        out.append(splitmix64_mix(state))
    return out


def reference_bits(seed: int, stream: int, counter: int) -> int:
    """rng.bits as documented: output number `counter` of a SplitMix64 generator whose state
    is a key hashed from (seed, stream)."""
    key = splitmix64_mix((splitmix64_mix((seed * GOLDEN + stream) & MASK64) + GOLDEN) & MASK64)
    return splitmix64_mix((key + counter * GOLDEN) & MASK64)


def test_the_python_reference_is_splitmix64():
    assert splitmix64_outputs(0, 4) == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC]
    assert splitmix64_outputs(1234567, 3) == [6457827717110365317, 3203168211198807973, 9817491932198370423]


SEEDS = [0, 1, 2, 7, 123456789, 2**40 + 3]
COUNTERS = [0, 1, 2, 31, 32, 1000, 2**33 + 5]


@pytest.mark.parametrize("stream", list(rng.Stream))
def test_bits_equal_the_independent_implementation(stream):
    seeds, counters = np.meshgrid(SEEDS, COUNTERS, indexing="ij")
    got = rng.bits(seeds, stream, counters)
    expected = [[reference_bits(s, int(stream), c) for c in COUNTERS] for s in SEEDS]
    assert got.dtype == np.uint64
    assert [[int(x) for x in row] for row in got] == expected


def test_uniform_integers_and_seeds_are_derived_from_the_bits():
    seed, stream, counter = 9, rng.Stream.REPLAY, np.arange(50)
    raw = [reference_bits(seed, int(stream), int(c)) for c in counter]
    assert rng.uniform(seed, stream, counter).tolist() == [(b >> 11) / 2**53 for b in raw]
    assert rng.integers(seed, stream, counter, 7).tolist() == [int((b >> 11) / 2**53 * 7) for b in raw]
    assert rng.seed63(seed, stream, counter).tolist() == [b >> 1 for b in raw]
    assert rng.seed32(seed, stream, counter).tolist() == [b >> 32 for b in raw]


def test_a_stream_continues_splitmix64_from_its_key():
    """Counters 1, 2, ... are the successive outputs of one SplitMix64 generator."""
    seed, stream = 5, rng.Stream.COIN
    key = splitmix64_mix((splitmix64_mix((seed * GOLDEN + int(stream)) & MASK64) + GOLDEN) & MASK64)
    assert [int(b) for b in rng.bits(seed, stream, np.arange(1, 6))] == splitmix64_outputs(key, 5)


def test_distinct_seeds_and_purposes_give_distinct_streams():
    counter = np.arange(1000)
    draws = {(seed, stream): rng.bits(seed, stream, counter) for seed in range(4) for stream in rng.Stream}
    for (a, x), (b, y) in itertools.combinations(draws.items(), 2):
        assert np.mean(x == y) == 0.0, (a, b)
    # nor are they shifted copies of each other (one stream's counter c is another's c + d)
    everything = np.concatenate(list(draws.values()))
    assert len(np.unique(everything)) == len(everything)


def test_streams_are_uncorrelated_across_seeds_purposes_and_neighbouring_counters():
    counter = np.arange(20000)
    a = rng.uniform(3, rng.Stream.COIN, counter)
    for other in (
        rng.uniform(4, rng.Stream.COIN, counter),
        rng.uniform(3, rng.Stream.ACTION, counter),
        rng.uniform(3, rng.Stream.COIN, counter + 1),
    ):
        assert abs(np.corrcoef(a, other)[0, 1]) < 0.05  # |r| ~ 0.007 expected at n = 20,000


@pytest.mark.parametrize("stream", list(rng.Stream))
def test_uniform_is_uniform(stream):
    sample = rng.uniform(11, stream, np.arange(100_000))
    assert sample.min() >= 0.0 and sample.max() < 1.0
    assert stats.kstest(sample, "uniform").pvalue > 1e-4
    counts = np.bincount((sample * 100).astype(int), minlength=100)
    assert stats.chisquare(counts).pvalue > 1e-4
    # the same holds across seeds at a fixed counter (what a population draws in one step)
    across = rng.uniform(np.arange(100_000), stream, 17)
    assert stats.kstest(across, "uniform").pvalue > 1e-4


@pytest.mark.parametrize("high", [1, 2, 3, 7, 1000])
def test_integers_cover_exactly_their_range(high):
    draws = rng.integers(2, rng.Stream.ACTION, np.arange(50_000), high)
    assert draws.dtype == np.int64 and draws.min() == 0 and draws.max() == high - 1
    counts = np.bincount(draws, minlength=high)
    if high > 1:
        assert stats.chisquare(counts).pvalue > 1e-4


def test_integers_take_a_high_per_element():
    highs = np.array([1, 2, 5, 1000])
    draws = rng.integers(np.arange(4)[:, None], rng.Stream.REPLAY, np.arange(500)[None, :], highs[:, None])
    assert draws.shape == (4, 500)
    assert (draws >= 0).all() and (draws < highs[:, None]).all()
    assert [len(np.unique(row)) for row in draws[:3]] == [1, 2, 5]


def test_seed_helpers_are_in_range():
    assert (rng.seed63(np.arange(1000), rng.Stream.TEST, 0) >= 0).all()
    s32 = rng.seed32(np.arange(1000), rng.Stream.TEST, 0)
    assert (s32 >= 0).all() and (s32 < 2**32).all() and s32.max() > 2**31


def test_an_element_does_not_depend_on_the_batch_around_it():
    """A draw computed alone equals the same draw inside any broadcast shape."""
    seeds = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    counters = np.array([0, 10, 200, 3000, 2**20, 7])
    block = rng.uniform(seeds[:, None], rng.Stream.COIN, counters[None, :])
    transposed = rng.uniform(seeds[None, :], rng.Stream.COIN, counters[:, None])
    for i, seed in enumerate(seeds):
        for j, counter in enumerate(counters):
            alone = rng.uniform(int(seed), rng.Stream.COIN, int(counter))
            assert alone.shape == () and alone == block[i, j] == transposed[j, i]
    assert np.array_equal(rng.bits(seeds, rng.Stream.RESET, 5), [rng.bits(s, rng.Stream.RESET, 5) for s in seeds])
    assert np.array_equal(
        rng.integers(seeds[::-1], rng.Stream.ACTION, 9, 3)[::-1], rng.integers(seeds, rng.Stream.ACTION, 9, 3)
    )
