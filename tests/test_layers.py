"""The kernel's layers (`ebnb.layers`) bit for bit against the rule they implement: every sum a
sequential one from +0.0 in the order of its index, here written out in plain Python (float32
arithmetic through numpy scalars), and transposes equal to numpy's."""

from __future__ import annotations

import numpy as np
import pytest

from ebnb import layers
from tools.layer_bench import layer_inputs  # the inputs the layer benchmark times


def _sequential(terms) -> np.float32:
    """((+0.0 + t0) + t1) + ..., each addition rounded to float32; zero terms left out."""
    total = np.float32(0)
    for term in terms:
        if term != 0:
            total = np.float32(total + term)
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 128), (128, 128), (64, 6), (13, 21), (8, 8), (16, 9), (3, 64), (1, 1), (0, 5)])
def test_transpose_equals_numpys(shape, dtype):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    assert np.array_equal(layers._transpose(a), a.T)
    assert layers._transpose(a).flags.c_contiguous


def test_transpose_of_strided_and_offset_views():
    base = np.random.default_rng(1).standard_normal((3, 40, 56)).astype(np.float32)
    for view in (base[1], base[2, 3:27, 5:45], base[0, :, ::2]):
        assert np.array_equal(layers._transpose(view), view.T)


@pytest.mark.parametrize("n_in, n_out", [(4, 128), (6, 128), (128, 2), (128, 3), (128, 4), (128, 128)])
@pytest.mark.parametrize("n", [64, 32, 7])
@pytest.mark.parametrize("one_per_sample", [True, False], ids=["action-only", "dense"])
def test_backward_is_the_sequential_sums_bit_for_bit(n_in, n_out, n, one_per_sample):
    """Weight and bias gradients are sums over the minibatch in sample order, the gradient below
    a sum over the outputs in output order, masked where the input is not positive."""
    a = layer_inputs(n_in, n_out, n, np.random.default_rng(n_in * 1000 + n_out + n), one_per_sample)
    weight, x, delta = a["weight"], a["x"], a["delta"]
    grad_weight, grad_bias, below = np.empty_like(weight), np.empty((n_out, 1), np.float32), np.empty_like(x)
    layers._backward(weight, delta, x, grad_weight, grad_bias, below, True)
    for o in range(n_out):
        assert grad_bias[o, 0] == _sequential(delta[:, o])
        for i in range(n_in):
            assert grad_weight[o, i] == _sequential(delta[j, o] * x[j, i] for j in range(n))
    for j in range(n):
        for i in range(n_in):
            expected = _sequential(delta[j, o] * weight[o, i] for o in range(n_out)) if x[j, i] > 0 else 0
            assert below[j, i] == expected


@pytest.mark.parametrize("n_in, n_out", [(4, 128), (6, 128), (128, 2), (128, 3), (128, 128)])
@pytest.mark.parametrize("n", [64, 32, 1])
def test_forward_is_the_sequential_sums_bit_for_bit(n_in, n_out, n):
    """Each output the sum over the inputs in input order from +0.0, then the bias, then ReLU;
    batch-major and unit-major alike."""
    a = layer_inputs(n_in, n_out, n, np.random.default_rng(n_in * 1000 + n_out + n))
    weight, bias, x = a["weight"], a["bias"], a["x"]
    out = np.empty((n, n_out), np.float32)
    layers._layer(weight, bias, x, out, True)
    out_t = np.empty((n_out, n), np.float32)
    layers._layer_unit_major(weight, bias, np.ascontiguousarray(x.T), out_t, True)
    for j in range(n):
        for o in range(n_out):
            value = np.float32(_sequential(weight[o, i] * x[j, i] for i in range(n_in)) + bias[o, 0])
            expected = max(0, value)
            assert out[j, o] == expected
            assert out_t[o, j] == expected
