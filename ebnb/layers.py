"""The fused kernel's layers: forward and backward passes of one agent's minibatch, every sum
in a fixed order (the rules are in `ebnb.kernel`'s docstring). `ebnb.kernel` builds acting
and the DQN update from these; tools/layer_bench.py times them one by one."""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

WIDE = 16  # a layer this wide or wider loops over its units innermost, a thinner one over the minibatch
THIN = 8  # a layer with at most this many inputs sums them all in one pass
FEW = 4  # a layer with at most this many outputs takes its gradient below in one pass
JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False)


@numba.njit(**JIT)
def _nonzero(matrix, row, index, coef):
    """Write the positions and values of the nonzero entries of `matrix[row]` to `index` and
    `coef`; return how many there are. Branch-free: every entry is written at the next free
    position, which only a nonzero one advances (ReLU zeros fall at random)."""
    count = 0
    for i in range(matrix.shape[1]):
        value = matrix[row, i]
        index[count] = i
        coef[count] = value
        count += value != 0
    return count


@numba.njit(**JIT)
def _accumulate(acc, coef, index, count, rows):
    """acc = (..((acc + coef[0] * rows[index[0]]) + coef[1] * rows[index[1]]) + ..), in this
    order, for the first `count` terms: a sequential sum for each element of `acc`.

    Four terms per pass keep `acc` in registers; the parentheses fix the order, so the bits
    are those of adding one term at a time. Callers leave out zero terms: added to a sum that
    started at +0.0 (which never becomes -0.0) a zero changes no bit. Rows are indexed, not
    sliced: a slice of a shared array costs an atomic reference count, which two threads
    contend for."""
    n = acc.shape[0]
    g = 0
    while g + 4 <= count:
        c0, c1, c2, c3 = coef[g], coef[g + 1], coef[g + 2], coef[g + 3]
        i0, i1, i2, i3 = index[g], index[g + 1], index[g + 2], index[g + 3]
        for o in range(n):
            acc[o] = (((acc[o] + c0 * rows[i0, o]) + c1 * rows[i1, o]) + c2 * rows[i2, o]) + c3 * rows[i3, o]
        g += 4
    while g < count:
        c, i = coef[g], index[g]
        for o in range(n):
            acc[o] += c * rows[i, o]
        g += 1


# An 8 x 8 tile transposed in registers: eight row loads, three rounds of shuffles (pairs of
# elements, pairs of pairs, halves), eight row stores. Data movement only, so no bit depends on
# the vector width LLVM lowers it to (SSE2 included).
_TILE = 8
_SHUFFLES = (
    ((0, 8, 1, 9, 4, 12, 5, 13), (2, 10, 3, 11, 6, 14, 7, 15)),  # interleave two rows
    ((0, 1, 8, 9, 4, 5, 12, 13), (2, 3, 10, 11, 6, 7, 14, 15)),  # interleave pairs
    ((0, 1, 2, 3, 8, 9, 10, 11), (4, 5, 6, 7, 12, 13, 14, 15)),  # join halves
)
_COLUMN_ORDER = (0, 2, 1, 3, 4, 6, 5, 7)  # the column of `a` each register holds after them


@intrinsic
def _transpose_tile(typingctx, a, i0, j0, out):
    """out[j0 + j, i0 + i] = a[i0 + i, j0 + j] for i, j < 8; both 2-D with contiguous rows."""
    if not (isinstance(a, types.Array) and isinstance(out, types.Array) and a.dtype == out.dtype):
        return None

    def codegen(context, builder, signature, args):
        source = context.make_array(signature.args[0])(context, builder, args[0])
        target = context.make_array(signature.args[3])(context, builder, args[3])
        i64 = ir.IntType(64)
        vector = ir.VectorType(context.get_data_type(signature.args[0].dtype), _TILE)
        item = ir.Constant(i64, signature.args[0].dtype.bitwidth // 8)
        first_row = context.cast(builder, args[1], signature.args[1], types.int64)
        first_column = context.cast(builder, args[2], signature.args[2], types.int64)

        def row_pointer(array, row, column):
            offset = builder.add(builder.mul(row, builder.extract_value(array.strides, 0)), builder.mul(column, item))
            address = builder.add(builder.ptrtoint(array.data, i64), offset)
            return builder.inttoptr(address, vector.as_pointer())

        def shuffle(x, y, mask):
            return builder.shuffle_vector(x, y, ir.Constant(ir.VectorType(ir.IntType(32), _TILE), list(mask)))

        rows = [
            builder.load(row_pointer(source, builder.add(first_row, ir.Constant(i64, r)), first_column), align=1)
            for r in range(_TILE)
        ]
        for stage, (low, high) in enumerate(_SHUFFLES):
            span = 1 << stage  # rows 0..7 pair with the row `span` away, within blocks of 2 * span
            paired = [None] * _TILE
            for r in range(_TILE):
                if r & span == 0:
                    paired[r] = shuffle(rows[r], rows[r + span], low)
                    paired[r + span] = shuffle(rows[r], rows[r + span], high)
            rows = paired
        for c, column in enumerate(_COLUMN_ORDER):
            pointer = row_pointer(target, builder.add(first_column, ir.Constant(i64, column)), first_row)
            builder.store(rows[c], pointer, align=1)
        return context.get_dummy_value()

    return types.void(a, i0, j0, out), codegen


@numba.njit(**JIT)
def _transpose(a):
    """A contiguous copy of a.T: whole 8 x 8 tiles in registers (`_transpose_tile`), then the
    ragged edges element by element."""
    n0, n1 = a.shape
    out = np.empty((n1, n0), a.dtype)
    e0, e1 = n0 - n0 % _TILE, n1 - n1 % _TILE
    if a.strides[1] != a.itemsize:
        e0 = e1 = 0
    for i0 in range(0, e0, _TILE):
        for j0 in range(0, e1, _TILE):
            _transpose_tile(a, i0, j0, out)
    for i in range(n0):
        for j in range(e1 if i < e0 else 0, n1):
            out[j, i] = a[i, j]
    return out


@numba.njit(**JIT)
def _dots(weight, x, out):
    """out[o] = sum_i weight[o, i] * x[i], a sequential sum over i from +0.0 for each o; four
    outputs at a time, so that their chains of additions overlap (for a single input row)."""
    n_out, n_in = weight.shape
    o = 0
    while o + 4 <= n_out:
        s0 = s1 = s2 = s3 = x.dtype.type(0)
        for i in range(n_in):
            xi = x[i]
            s0 += weight[o, i] * xi
            s1 += weight[o + 1, i] * xi
            s2 += weight[o + 2, i] * xi
            s3 += weight[o + 3, i] * xi
        out[o], out[o + 1], out[o + 2], out[o + 3] = s0, s1, s2, s3
        o += 4
    while o < n_out:
        s = x.dtype.type(0)
        for i in range(n_in):
            s += weight[o, i] * x[i]
        out[o] = s
        o += 1


@numba.njit(**JIT)
def _layer(weight, bias, x, out, relu):
    """out = x @ weight.T + bias (then ReLU) for batch-major `x: [n, in]`.

    Each output is a sequential sum over the inputs from +0.0, plus the bias. The innermost
    loop runs over independent outputs: the units of a wide layer (skipping inputs that are
    zero), the minibatch for a thin one (`_layer_unit_major`, skipping pruned weights); a
    layer with at most `THIN` inputs adds them all in one pass (`_layer_thin_input`); a single
    row (acting) runs four sums side by side. The bits are the same every way."""
    n_out, n_in = weight.shape
    n = x.shape[0]
    zero = x.dtype.type(0)
    if n_out < WIDE and n >= 4:
        out_t = np.empty((n_out, n), x.dtype)
        _layer_unit_major(weight, bias, _transpose(x), out_t, relu)
        out[:] = out_t.T
        return
    if n < 4:
        for j in range(n):
            _dots(weight, x[j], out[j])
    elif n_in <= THIN:
        _layer_thin_input(weight, bias, x, out, relu)
        return
    else:
        index = np.empty(n_in, np.int64)
        coef = np.empty(n_in, x.dtype)
        weight_t = _transpose(weight)  # [in, out]
        out[:] = 0
        for j in range(n):
            _accumulate(out[j], coef, index, _nonzero(x, j, index, coef), weight_t)
    for j in range(n):
        for o in range(n_out):
            out[j, o] = _finish(out[j, o], bias[o, 0], relu, zero)


@numba.njit(**JIT)
def _finish(total, bias, relu, zero):
    """total + bias, then, if `relu`, ReLU as a select (`zero` unless positive; not a branch:
    ReLU zeros fall at random)."""
    value = total + bias
    return value if not relu or value > zero else zero


@numba.njit(**JIT)
def _layer_thin_input(weight, bias, x, out, relu):
    """`_layer` for batch-major `x: [n, in]` with in <= `THIN`: each output the sequential sum of
    all its inputs' terms from +0.0 in one pass (padded with zero terms to 4, 6 or 8 inputs: the
    same bits for finite numbers), plus the bias; the units innermost."""
    n_out, n_in = weight.shape
    zero = x.dtype.type(0)
    weight_t = np.zeros((THIN, n_out), x.dtype)  # [in, out], zero rows past the inputs
    for o in range(n_out):
        for i in range(n_in):
            weight_t[i, o] = weight[o, i]
    w0, w1, w2, w3 = weight_t[0], weight_t[1], weight_t[2], weight_t[3]
    w4, w5, w6, w7 = weight_t[4], weight_t[5], weight_t[6], weight_t[7]
    bias_row = bias[:, 0].copy()
    inputs = np.zeros(THIN, x.dtype)
    for j in range(x.shape[0]):
        inputs[:n_in] = x[j]
        c0, c1, c2, c3 = inputs[0], inputs[1], inputs[2], inputs[3]
        c4, c5, c6, c7 = inputs[4], inputs[5], inputs[6], inputs[7]
        row = out[j]
        for o in range(n_out):
            total = (((zero + c0 * w0[o]) + c1 * w1[o]) + c2 * w2[o]) + c3 * w3[o]
            if n_in > 4:  # the same for every output: LLVM takes the test out of the loop
                total = (total + c4 * w4[o]) + c5 * w5[o]
                if n_in > 6:
                    total = (total + c6 * w6[o]) + c7 * w7[o]
            row[o] = _finish(total, bias_row[o], relu, zero)


@numba.njit(**JIT)
def _layer_thin_input_unit_major(weight, bias, x_t, out_t, relu):
    """`_layer_unit_major` for in <= `THIN`: the same sums as `_layer_thin_input`, the minibatch
    innermost."""
    n_out, n_in = weight.shape
    n = x_t.shape[1]
    zero = x_t.dtype.type(0)
    padded = np.zeros((THIN, n), x_t.dtype)  # zero rows past the inputs
    padded[:n_in] = x_t
    r0, r1, r2, r3 = padded[0], padded[1], padded[2], padded[3]
    r4, r5, r6, r7 = padded[4], padded[5], padded[6], padded[7]
    coef = np.zeros(THIN, x_t.dtype)
    for o in range(n_out):
        coef[:n_in] = weight[o]
        c0, c1, c2, c3, c4, c5, c6, c7 = coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6], coef[7]
        b = bias[o, 0]
        row = out_t[o]
        for j in range(n):
            total = (((zero + c0 * r0[j]) + c1 * r1[j]) + c2 * r2[j]) + c3 * r3[j]
            if n_in > 4:  # the same for every sample: LLVM takes the test out of the loop
                total = (total + c4 * r4[j]) + c5 * r5[j]
                if n_in > 6:
                    total = (total + c6 * r6[j]) + c7 * r7[j]
            row[j] = _finish(total, b, relu, zero)


@numba.njit(**JIT)
def _layer_unit_major(weight, bias, x_t, out_t, relu):
    """out_t = (x @ weight.T + bias).T (then ReLU) for unit-major `x_t: [in, n]`, into `out_t:
    [out, n]`: each output a sequential sum over the inputs from +0.0 (skipping pruned
    weights), plus the bias, the minibatch innermost; the same bits as `_layer`."""
    n_out, n_in = weight.shape
    if n_in <= THIN:
        _layer_thin_input_unit_major(weight, bias, x_t, out_t, relu)
        return
    zero = x_t.dtype.type(0)
    index = np.empty(n_in, np.int64)
    coef = np.empty(n_in, x_t.dtype)
    for o in range(n_out):
        row = out_t[o]
        row[:] = 0
        _accumulate(row, coef, index, _nonzero(weight, o, index, coef), x_t)
        b = bias[o, 0]
        for j in range(row.shape[0]):
            row[j] = _finish(row[j], b, relu, zero)


@numba.njit(**JIT)
def _forward(params, k, x):
    """Every layer's output of agent k's network for batch-major inputs `x: [n, obs_dim]`
    (after ReLU for hidden layers); the last is the Q-values `[n, n_actions]`."""
    n_layers = len(params) // 2
    outputs = [x]
    for layer in range(n_layers):
        weight = params[2 * layer][k]
        out = np.empty((x.shape[0], weight.shape[0]), x.dtype)
        _layer(weight, params[2 * layer + 1][k], outputs[-1], out, layer < n_layers - 1)
        outputs.append(out)
    return outputs


@numba.njit(**JIT)
def _unit_major_fits(params, k) -> bool:
    """True if every layer of agent k's network has a thin input or a thin output (fewer than
    `WIDE` units): then a unit-major forward pass needs no transposed activations or weights
    and costs no more than `_forward`; false for a wide-to-wide layer (e.g. 128 -> 128), where
    batch-major skips ReLU zeros instead of only pruned weights."""
    for layer in range(len(params) // 2):
        n_out, n_in = params[2 * layer][k].shape
        if n_in >= WIDE and n_out >= WIDE:
            return False
    return True


@numba.njit(**JIT)
def _q_values(params, k, x):
    """Agent k's Q-values `[n, n_actions]` for batch-major inputs `x: [n, obs_dim]`, by
    `_forward` or, where `_unit_major_fits`, layer by layer unit-major (one small transpose of
    `x` instead of one of each wide activation); the same bits either way."""
    if not _unit_major_fits(params, k):
        return _forward(params, k, x)[-1]
    n_layers = len(params) // 2
    activations = _transpose(x)  # [obs_dim, n]
    for layer in range(n_layers):
        weight = params[2 * layer][k]
        out_t = np.empty((weight.shape[0], x.shape[0]), x.dtype)
        _layer_unit_major(weight, params[2 * layer + 1][k], activations, out_t, layer < n_layers - 1)
        activations = out_t
    return _transpose(activations)


@numba.njit(**JIT)
def _backward(weight, delta, x, grad_weight, grad_bias, below, with_below):
    """Gradients of one layer for output gradients `delta: [n, out]` and its inputs `x: [n, in]`
    (both batch-major): weight and bias gradients and, `with_below`, `below` = delta @ weight,
    the gradient w.r.t. x before the ReLU that made it (zeroed where x is not positive).

    Gradients are sequential sums over the minibatch, `below` over the outputs."""
    n_out, n_in = weight.shape
    n = x.shape[0]
    if n_in <= THIN:
        _gradients_thin_input(delta, x, grad_weight, grad_bias)
    else:
        size = max(n, n_in, n_out)
        index = np.empty(size, np.int64)
        coef = np.empty(size, x.dtype)
        grad_weight[:] = 0
        delta_t = _transpose(delta)  # [out, n]
        for o in range(n_out):
            _accumulate(grad_weight[o], coef, index, _nonzero(delta_t, o, index, coef), x)
        grad_bias[:] = 0
        ones = np.ones(n, x.dtype)
        column = np.zeros(n_out, x.dtype)
        for j in range(n):
            index[j] = j
        _accumulate(column, ones, index, n, delta)
        grad_bias[:, 0] = column
    if not with_below:
        return
    if n_out <= FEW:
        _below_few_outputs(weight, delta, x, below)
        return
    index = np.empty(n_out, np.int64)
    coef = np.empty(n_out, x.dtype)
    below[:] = 0
    zero = x.dtype.type(0)
    for j in range(n):
        _accumulate(below[j], coef, index, _nonzero(delta, j, index, coef), weight)
        for i in range(n_in):
            below[j, i] = below[j, i] if x[j, i] > zero else zero


@numba.njit(**JIT)
def _gradients_thin_input(delta, x, grad_weight, grad_bias):
    """`_backward`'s weight and bias gradients for a layer with at most `THIN` inputs: each a
    sequential sum over the minibatch from +0.0 of all its terms (zero terms included: the same
    bits for finite numbers), four samples per pass over the outputs; every input's sums and the
    bias's take their pass while the four rows of `delta` are in L1 (`delta` is read once)."""
    n, n_out = delta.shape
    n_in = x.shape[1]
    sums = np.zeros((n_in + 1, n_out), delta.dtype)  # a row per input, then the bias
    bias = sums[n_in]
    j = 0
    while j + 4 <= n:
        d0, d1, d2, d3 = delta[j], delta[j + 1], delta[j + 2], delta[j + 3]
        for i in range(n_in):
            c0, c1, c2, c3 = x[j, i], x[j + 1, i], x[j + 2, i], x[j + 3, i]
            row = sums[i]
            for o in range(n_out):
                row[o] = (((row[o] + c0 * d0[o]) + c1 * d1[o]) + c2 * d2[o]) + c3 * d3[o]
        for o in range(n_out):
            bias[o] = (((bias[o] + d0[o]) + d1[o]) + d2[o]) + d3[o]
        j += 4
    while j < n:
        d = delta[j]
        for i in range(n_in):
            c, row = x[j, i], sums[i]
            for o in range(n_out):
                row[o] += c * d[o]
        for o in range(n_out):
            bias[o] += d[o]
        j += 1
    for o in range(n_out):
        for i in range(n_in):
            grad_weight[o, i] = sums[i, o]
        grad_bias[o, 0] = bias[o]


@numba.njit(**JIT)
def _below_few_outputs(weight, delta, x, below):
    """`_backward`'s `below` for a layer with at most `FEW` outputs (a Q-value head): each element
    the sequential sum over the outputs of all their terms from +0.0 (padded with zero terms:
    the same bits for finite numbers) in one pass over the inputs, with the ReLU mask of `x`."""
    n_out, n_in = weight.shape
    zero = x.dtype.type(0)
    rows = np.zeros((FEW, n_in), x.dtype)  # zero rows past the outputs
    rows[:n_out] = weight
    w0, w1, w2, w3 = rows[0], rows[1], rows[2], rows[3]
    coef = np.zeros(FEW, x.dtype)
    for j in range(x.shape[0]):
        coef[:n_out] = delta[j]
        c0, c1, c2, c3 = coef[0], coef[1], coef[2], coef[3]
        out, inputs = below[j], x[j]
        for i in range(n_in):
            total = (((zero + c0 * w0[i]) + c1 * w1[i]) + c2 * w2[i]) + c3 * w3[i]
            out[i] = total if inputs[i] > zero else zero
