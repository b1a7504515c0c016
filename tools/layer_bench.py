"""Per-layer speed of the fused kernel: G multiply-adds per second against the core's peak.

    python tools/layer_bench.py [--repeats 7] [--reps 2000]

For each layer shape of the thesis networks (4->128, 128->128, 128->2 for CartPole; 6->128,
128->3 for Acrobot) at the batch its env trains with and the other (32 and 64), times on one
thread, inside compiled code (no per-call dispatch):

- forward: `layers._layer` (batch-major, as the online network runs);
- weight gradient: `layers._backward` without the gradient below (weight and bias gradients);
- backward: the gradient below alone (`layers._backward` with it, less the weight gradient).

Inputs look like training's: a hidden layer's inputs are ReLU outputs (about half zero), a
first layer's are dense; weights carry a random 20% pruning mask; the output layer's
gradients have one nonzero entry per sample (the action taken), a hidden layer's about half
(its ReLU). G multiply-adds/s count every multiply-add of the dense layer (n * in * out), so
skipped zeros count as done. The peak is measured, not looked up: independent sums
`acc[o] = acc[o] + c * row[o]` (a multiply, then an add: no FMA, as in the kernel) over 128
lanes held in L1, four terms per pass (the kernel's own inner loop at its best: no cache
misses, no overhead around it), the most this core does of the kernel's arithmetic as
compiled. A first layer's backward is not timed: no gradient is taken below it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

from ebnb import layers

SHAPES = [(4, 128), (128, 128), (128, 2), (6, 128), (128, 3)]  # (in, out)
BATCHES = (32, 64)


@numba.njit(fastmath=False)
def _peak_loop(rows, coef, reps):
    acc = np.zeros(rows.shape[1], rows.dtype)
    for _ in range(reps):
        c0, c1, c2, c3 = coef[0], coef[1], coef[2], coef[3]
        for o in range(acc.shape[0]):
            acc[o] = (((acc[o] + c0 * rows[0, o]) + c1 * rows[1, o]) + c2 * rows[2, o]) + c3 * rows[3, o]
    return acc


@numba.njit(fastmath=False)
def _forward_loop(weight, bias, x, out, relu, reps):
    for _ in range(reps):
        layers._layer(weight, bias, x, out, relu)


@numba.njit(fastmath=False)
def _backward_loop(weight, delta, x, grad_weight, grad_bias, below, with_below, reps):
    for _ in range(reps):
        layers._backward(weight, delta, x, grad_weight, grad_bias, below, with_below)


def _seconds(function, repeats: int) -> float:
    """Median CPU seconds of this thread over `repeats` calls of `function` (one untimed call
    first): the wall time on an idle core, and less disturbed by other work than the wall."""
    function()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        function()
        times.append(time.thread_time() - start)
    return statistics.median(times)


def peak_gmacs(repeats: int) -> float:
    """G multiply-adds/s of register- and L1-resident independent sums, no FMA (see above)."""
    rows, coef = np.full((4, 128), 0.5, np.float32), np.full(4, 1e-3, np.float32)
    reps = 400_000
    return 4 * 128 * reps / _seconds(lambda: _peak_loop(rows, coef, reps), repeats) / 1e9


def layer_inputs(n_in: int, n_out: int, batch: int, rng, one_per_sample: bool = True) -> dict:
    """A layer's weight (a random 20% pruned), bias, inputs and output gradients as training
    has them: a hidden layer's inputs (more than `layers.THIN`) are ReLU outputs, about half
    zero; a Q-value head's gradients (at most `layers.FEW` outputs) have one nonzero entry per
    sample, the action's, unless not `one_per_sample`; other gradients are about half zero."""
    weight = rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.1
    weight *= rng.random(weight.shape) >= 0.2
    x = rng.standard_normal((batch, n_in)).astype(np.float32)
    if n_in > layers.THIN:
        x = np.maximum(x, 0)  # ReLU outputs
    if n_out <= layers.FEW and one_per_sample:
        delta = np.zeros((batch, n_out), np.float32)
        delta[np.arange(batch), rng.integers(0, n_out, batch)] = rng.standard_normal(batch)
    else:
        delta = rng.standard_normal((batch, n_out)).astype(np.float32) * (rng.random((batch, n_out)) < 0.5)
    return dict(weight=weight, bias=rng.standard_normal((n_out, 1)).astype(np.float32), x=x, delta=delta)


def layer_us(n_in: int, n_out: int, batch: int, reps: int, repeats: int) -> dict:
    """{part: microseconds per call} of one layer's forward, weight gradient and backward."""
    a = layer_inputs(n_in, n_out, batch, np.random.default_rng(0))
    out = np.empty((batch, n_out), np.float32)
    grad_weight, grad_bias, below = np.empty_like(a["weight"]), np.empty_like(a["bias"]), np.empty_like(a["x"])
    relu = n_out > 3
    forward = _seconds(lambda: _forward_loop(a["weight"], a["bias"], a["x"], out, relu, reps), repeats)
    weight_grad = _seconds(
        lambda: _backward_loop(a["weight"], a["delta"], a["x"], grad_weight, grad_bias, below, False, reps), repeats
    )
    if n_in <= layers.THIN:
        return {"forward": 1e6 * forward / reps, "weight gradient": 1e6 * weight_grad / reps}
    both = _seconds(
        lambda: _backward_loop(a["weight"], a["delta"], a["x"], grad_weight, grad_bias, below, True, reps), repeats
    )
    return {
        "forward": 1e6 * forward / reps,
        "weight gradient": 1e6 * weight_grad / reps,
        "backward": 1e6 * max(both - weight_grad, 0.0) / reps,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--reps", type=int, default=2000, help="calls per timed repeat, inside compiled code")
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    peak = peak_gmacs(args.repeats)
    print(f"peak (independent multiply-then-add sums, one thread): {peak:.1f} G multiply-adds/s")
    print(f"{'layer':>9} {'batch':>5} {'part':>16} {'us':>8} {'GMAC/s':>7} {'of peak':>7}")
    for n_in, n_out in SHAPES:
        for batch in BATCHES:
            macs = batch * n_in * n_out
            for part, us in layer_us(n_in, n_out, batch, args.reps, args.repeats).items():
                rate = macs / us / 1e3 if us > 0 else float("nan")
                print(f"{n_in:>4}->{n_out:<4} {batch:>5} {part:>16} {us:8.2f} {rate:7.1f} {rate / peak:7.0%}")


if __name__ == "__main__":
    main()
