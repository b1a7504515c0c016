"""Pruning masks over a population of Q-networks.

The engine stores K networks as stacked weight matrices ``W_l`` of shape ``[K, out_l, in_l]``
(``torch.nn.Linear``'s layout per agent: `ebnb.qnet`; biases are never pruned). A mask is a list of ``torch.bool`` tensors with the same shapes:
True = kept, False = pruned. Use :func:`to_float` where a 0/1 multiplier is needed.

Per agent, the weights of all layers are viewed as one flat vector of length N: layers
concatenated in order, each row-major (:func:`flatten`). That order is the one used to break
ties in magnitude pruning and the one in which masks are packed for storage.

The number of pruned weights is ``round(P * N)`` with Python's ``round`` (half to even), the
convention of ``torch.nn.utils.prune``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

Mask = list[Tensor]


def n_pruned(fraction: float, n_weights: int) -> int:
    """How many of `n_weights` a pruning fraction P removes: round(P * N), half to even."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"P (pruning fraction) must be in (0, 1), got {fraction!r}")
    return round(fraction * n_weights)


def _layer_sizes(shapes: Sequence[Sequence[int]]) -> list[int]:
    """Weights per agent in each layer of shape [K, ...]."""
    if not shapes:
        raise ValueError("shapes must hold at least one layer, got an empty sequence")
    return [int(np.prod(shape[1:])) for shape in shapes]


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate per-agent layer tensors [K, ...] into one [K, N] tensor (row-major)."""
    if not tensors:
        raise ValueError("tensors must hold at least one layer, got an empty sequence")
    return torch.cat([t.reshape(t.shape[0], -1) for t in tensors], dim=1)


def unflatten(flat: Tensor, shapes: Sequence[Sequence[int]]) -> Mask:
    """Split a [K, N] tensor back into layer tensors of the given shapes (inverse of flatten)."""
    sizes = _layer_sizes(shapes)
    if sum(sizes) != flat.shape[1]:
        raise ValueError(f"shapes must hold {flat.shape[1]} weights per agent, got {sum(sizes)}")
    return [part.reshape(shape) for part, shape in zip(flat.split(sizes, dim=1), shapes)]


def _prune_first(order: Tensor, n: int, shapes: Sequence[Sequence[int]]) -> Mask:
    """Mask pruning, per agent (row), the first `n` flat indices listed in `order` [K, N]."""
    keep = torch.ones(order.shape, dtype=torch.bool)
    keep.scatter_(1, order[:, :n], False)
    return unflatten(keep, shapes)


def global_magnitude_masks(weights: Sequence[Tensor], fraction: float) -> Mask:
    """Global unstructured L1 pruning per agent: prune the fraction P of smallest |w|.

    All layers of an agent compete together. Among equal |w| the lower flat index is pruned
    first (stable sort), so the result is deterministic; each agent's mask depends only on
    its own weights.
    """
    shapes = [w.shape for w in weights]
    n = n_pruned(fraction, sum(_layer_sizes(shapes)))
    magnitudes = flatten([w.detach() for w in weights]).abs()
    return _prune_first(torch.argsort(magnitudes, dim=1, stable=True), n, shapes)


# The pruning criteria a mask can be drawn by: name -> (per-agent weights, P) -> mask. The
# controls of a ticket (random masks, shuffled layers, ...) change a drawn mask: `ebnb.controls`.
CRITERIA = {"l1": global_magnitude_masks}
CRITERION = "l1"  # the protocol's: global unstructured magnitude pruning (docs/protocol.md)


def prune(weights: Sequence[Tensor], fraction: float, criterion: str = CRITERION) -> Mask:
    """The mask `criterion` (a name in `CRITERIA`) draws from per-agent `weights` [K, out, in]
    at P = `fraction`; every mask of the experiments is drawn here."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion: unknown {criterion!r}; allowed: {', '.join(CRITERIA)}")
    return CRITERIA[criterion](weights, fraction)


def random_masks(shapes: Sequence[Sequence[int]], fraction: float, seeds: Sequence[int]) -> Mask:
    """Random masks pruning exactly round(P * N) weights per agent (the usual control).

    `shapes` are the weight shapes [K, out_l, in_l]; agent k's mask is a function of
    `seeds[k]` alone (a torch.Generator per agent), whatever the other agents are.
    """
    n_weights = sum(_layer_sizes(shapes))
    n = n_pruned(fraction, n_weights)
    if len(seeds) != shapes[0][0]:
        raise ValueError(f"seeds must hold one seed per agent ({shapes[0][0]}), got {len(seeds)}")
    order = torch.stack([torch.randperm(n_weights, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    return _prune_first(order, n, shapes)


def to_float(mask: Sequence[Tensor]) -> Mask:
    """The mask as float32 0/1 tensors, for multiplying weights or gradients."""
    return [m.to(torch.float32) for m in mask]


def apply_mask(weights: Sequence[Tensor], mask: Sequence[Tensor]) -> None:
    """Zero the pruned weights in place (they become exactly +0.0, even if NaN or inf)."""
    with torch.no_grad():
        for w, m in zip(weights, mask, strict=True):
            w.masked_fill_(~m, 0.0)


def sparsity(mask: Sequence[Tensor]) -> Tensor:
    """Fraction of pruned weights per agent, float64 [K]."""
    return (~flatten(mask)).mean(dim=1, dtype=torch.float64)


def hamming_distance(mask_a: Sequence[Tensor], mask_b: Sequence[Tensor]) -> Tensor:
    """Normalized Hamming distance per agent, float64 [K]: share of weights whose state differs."""
    return (flatten(mask_a) != flatten(mask_b)).mean(dim=1, dtype=torch.float64)


def disagreement_counts(masks: Tensor | np.ndarray) -> np.ndarray:
    """Number of weights whose state differs, between all pairs of flat masks [..., T, N] ->
    float64 [..., T, T] holding integers.

    With x the 0/1 masks, the number of disagreements between rows i and j is
    |x_i| + |x_j| - 2 x_i . x_j, so one matrix product gives every pair. The counts are
    integers below 2**53, hence exact in float64: exactly symmetric, zero on the diagonal.
    """
    x = np.asarray(masks, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] == 0:
        raise ValueError(f"masks must have shape [..., T, N] with N > 0, got {x.shape}")
    overlap = x @ np.swapaxes(x, -1, -2)
    kept = x.sum(axis=-1)
    return kept[..., :, None] + kept[..., None, :] - 2.0 * overlap


def similarity_from_counts(counts: np.ndarray, n: int) -> np.ndarray:
    """1 - normalized Hamming distance from `disagreement_counts` of masks of `n` weights."""
    return 1.0 - np.asarray(counts, dtype=np.float64) / n


def similarity_matrix(masks: Tensor | np.ndarray) -> np.ndarray:
    """1 - normalized Hamming distance between all pairs of flat masks [..., T, N] -> [..., T, T]
    (exactly symmetric, ones on the diagonal: see `disagreement_counts`)."""
    return similarity_from_counts(disagreement_counts(masks), np.shape(masks)[-1])


def chance_agreement(kept_a, kept_b, sizes=None) -> np.ndarray:
    """The share of weights two independent masks are expected to agree on (both kept or both
    pruned), given each mask's kept share per layer: `kept_a`, `kept_b` [..., layers] (or
    [...] for one layer), `sizes` the layers' weight counts (None: one layer). Within each
    layer the positions are taken as random at the layer's own density (a within-layer
    permutation of a mask, as the `layer_shuffled` control draws): sum over layers of
    n_l / N * (a_l b_l + (1 - a_l)(1 - b_l)). One layer, both masks pruning P: P^2 + (1 - P)^2."""
    a, b = np.asarray(kept_a, dtype=np.float64), np.asarray(kept_b, dtype=np.float64)
    if sizes is None:
        a, b, sizes = a[..., None], b[..., None], [1]
    weights = np.asarray(sizes, dtype=np.float64) / np.sum(sizes)
    if a.shape[-1] != len(weights) or b.shape[-1] != len(weights):
        raise ValueError(f"kept shares must have {len(weights)} layers on their last axis, got {a.shape} and {b.shape}")
    return (weights * (a * b + (1.0 - a) * (1.0 - b))).sum(axis=-1)


def kappa(similarity, chance) -> np.ndarray:
    """Cohen's kappa of two masks: (similarity - chance) / (1 - chance), `similarity` the
    share of weights they agree on (1 - normalized Hamming distance) and `chance` its
    `chance_agreement`. 1: identical; 0: no more alike than chance; < 0: less."""
    similarity, chance = np.asarray(similarity, dtype=np.float64), np.asarray(chance, dtype=np.float64)
    return (similarity - chance) / (1.0 - chance)


def pack(mask_flat: Tensor | np.ndarray) -> np.ndarray:
    """Pack flat boolean masks [..., N] into uint8 [..., ceil(N / 8)] (8 weights per byte)."""
    return np.packbits(np.asarray(mask_flat, dtype=bool), axis=-1)


def unpack(packed: np.ndarray, n: int) -> np.ndarray:
    """Inverse of pack: uint8 [..., ceil(n / 8)] -> bool [..., n]."""
    packed = np.asarray(packed, dtype=np.uint8)
    high = 8 * packed.shape[-1]
    low = max(0, high - 7)
    if not low <= n <= high:
        raise ValueError(f"n must be in [{low}, {high}] for {packed.shape[-1]} bytes, got {n}")
    return np.unpackbits(packed, axis=-1, count=n).astype(bool)
