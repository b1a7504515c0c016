"""Pruning masks: counts, global (not per-layer) magnitude order, ties, seeds, distances."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ebnb import masks

K = 3
ARCHITECTURES = {"cartpole": (4, 128, 128, 2), "acrobot": (6, 128, 3)}


def population(sizes, k=K, seed=0):
    """Random stacked weights [k, out_l, in_l] (the engine's layout) of a network with layer widths `sizes`."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(k, n_out, n_in, generator=generator) for n_in, n_out in itertools.pairwise(sizes)]


def n_weights(weights):
    return sum(w[0].numel() for w in weights)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.8, 0.95])
def test_magnitude_masks_prune_exactly_round_p_n(arch, fraction):
    weights = population(ARCHITECTURES[arch])
    mask = masks.global_magnitude_masks(weights, fraction)
    assert [m.shape for m in mask] == [w.shape for w in weights]
    assert all(m.dtype == torch.bool for m in mask)
    n = n_weights(weights)
    assert (~masks.flatten(mask)).sum(dim=1).tolist() == [round(fraction * n)] * K
    assert masks.sparsity(mask).tolist() == [round(fraction * n) / n] * K


def test_n_pruned_rounds_half_to_even():
    assert masks.n_pruned(0.5, 3) == 2  # 1.5 -> 2
    assert masks.n_pruned(0.5, 5) == 2  # 2.5 -> 2
    assert masks.n_pruned(0.3, 10) == 3


def test_magnitude_pruning_is_global_not_per_layer():
    small_w1, large_w2 = population((6, 128, 3))
    weights = [small_w1 * 1e-3, large_w2.sign() * (1.0 + large_w2.abs())]
    mask = masks.global_magnitude_masks(weights, 0.5)  # 576 of 1152 = 768 + 384 weights
    w1_pruned = (~mask[0]).float().mean(dim=(1, 2))
    assert w1_pruned.tolist() == [0.75] * K  # 576 / 768: all pruning lands in the small layer
    assert mask[1].all()


def test_pruned_weights_are_the_smallest_magnitudes_signs_ignored():
    weights = [torch.tensor([[[0.5, -3.0], [0.1, -0.2]]]), torch.tensor([[[-0.05], [2.0]]])]
    mask = masks.global_magnitude_masks(weights, 0.5)  # 3 of 6
    assert mask[0].tolist() == [[[True, True], [False, False]]]
    assert mask[1].tolist() == [[[False], [True]]]


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.9])
def test_ties_prune_lowest_flat_indices_first(fraction):
    weights = [torch.full(w.shape, -0.7) for w in population(ARCHITECTURES["cartpole"])]
    flat = masks.flatten(masks.global_magnitude_masks(weights, fraction))
    n = flat.shape[1]
    expected = torch.arange(n) >= round(fraction * n)
    assert torch.equal(flat, expected.expand(K, n))


def test_magnitude_masks_are_batch_invariant():
    weights = population(ARCHITECTURES["cartpole"], seed=3)
    mask = masks.global_magnitude_masks(weights, 0.7)
    for k in range(K):
        alone = masks.global_magnitude_masks([w[k : k + 1] for w in weights], 0.7)
        assert all(torch.equal(m[k : k + 1], a) for m, a in zip(mask, alone))


def test_magnitude_masks_of_parameters_requiring_grad():
    weights = [torch.nn.Parameter(w) for w in population((4, 8, 2))]
    assert masks.sparsity(masks.global_magnitude_masks(weights, 0.5)).tolist() == [0.5] * K


@given(
    sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4),
    k=st.integers(1, 3),
    fraction=st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
    seed=st.integers(0, 2**16),
    levels=st.sampled_from([None, 3]),  # None: continuous weights; 3: many ties
)
@settings(max_examples=60, deadline=None)
def test_magnitude_masks_property(sizes, k, fraction, seed, levels):
    weights = population(sizes, k=k, seed=seed)
    if levels is not None:
        weights = [torch.round(w * levels) / levels for w in weights]
    flat_mask = masks.flatten(masks.global_magnitude_masks(weights, fraction))
    magnitude = masks.flatten(weights).abs()
    n = flat_mask.shape[1]
    for kept, size in zip(flat_mask, magnitude):
        assert (~kept).sum().item() == round(fraction * n)
        if 0 < kept.sum() < n:
            assert size[kept].min() >= size[~kept].max()
            # among equal magnitudes at the threshold, pruned indices precede kept ones
            at_threshold = size == size[~kept].max()
            tied_kept = at_threshold & kept
            if tied_kept.any():
                pruned_index = torch.nonzero(at_threshold & ~kept).max()
                assert pruned_index < torch.nonzero(tied_kept).min()


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan")])
def test_fraction_outside_open_interval_is_rejected(fraction):
    weights = population((4, 8, 2))
    with pytest.raises(ValueError, match=r"P \(pruning fraction\) must be in \(0, 1\)"):
        masks.global_magnitude_masks(weights, fraction)
    with pytest.raises(ValueError, match=r"^P "):
        masks.random_masks([w.shape for w in weights], fraction, seeds=[0, 1, 2])


def test_fraction_error_message_shows_the_value():
    with pytest.raises(ValueError, match=r"got 1\.5$"):
        masks.global_magnitude_masks(population((4, 8, 2)), 1.5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_random_masks_prune_same_count_and_depend_only_on_seed(arch):
    shapes = [w.shape for w in population(ARCHITECTURES[arch])]
    mask = masks.random_masks(shapes, 0.6, seeds=[11, 12, 13])
    assert [m.shape for m in mask] == shapes
    n = sum(s[1] * s[2] for s in shapes)
    assert (~masks.flatten(mask)).sum(dim=1).tolist() == [round(0.6 * n)] * K
    reordered = masks.random_masks(shapes, 0.6, seeds=[13, 99, 11])
    alone = masks.random_masks([(1, *s[1:]) for s in shapes], 0.6, seeds=[12])
    for m, r, a in zip(mask, reordered, alone):
        assert torch.equal(m[0], r[2]) and torch.equal(m[2], r[0])
        assert torch.equal(m[1], a[0])
        assert not torch.equal(m[0], m[1])


def test_random_masks_need_one_seed_per_agent():
    shapes = [w.shape for w in population((4, 8, 2))]
    with pytest.raises(ValueError, match="seeds"):
        masks.random_masks(shapes, 0.5, seeds=[1, 2])


def test_hamming_distance_identical_complement_and_hand_example():
    mask = masks.random_masks([(K, 4, 8), (K, 8, 2)], 0.3, seeds=[1, 2, 3])
    complement = [~m for m in mask]
    assert masks.hamming_distance(mask, mask).tolist() == [0.0] * K
    assert masks.hamming_distance(mask, complement).tolist() == [1.0] * K
    a = [torch.tensor([[[True, False], [True, True]]]), torch.tensor([[[False], [False]]])]
    b = [torch.tensor([[[True, True], [True, True]]]), torch.tensor([[[False], [True]]])]
    assert masks.hamming_distance(a, b).tolist() == [2 / 6]


def test_similarity_matrix_matches_pairwise_hamming():
    shapes = [(1, 6, 16), (1, 16, 3)]
    history = [masks.random_masks(shapes, p, seeds=[s]) for s, p in enumerate([0.2, 0.5, 0.5, 0.8])]
    flat = torch.cat([masks.flatten(m) for m in history])  # [T=4, N]
    similarity = masks.similarity_matrix(flat)
    assert similarity.shape == (4, 4)
    np.testing.assert_array_equal(similarity, similarity.T)
    np.testing.assert_array_equal(np.diag(similarity), np.ones(4))
    for i, mask_i in enumerate(history):
        for j, mask_j in enumerate(history):
            expected = 1.0 - masks.hamming_distance(mask_i, mask_j).item()
            assert similarity[i, j] == pytest.approx(expected, abs=1e-12)


def test_similarity_matrix_accepts_numpy_and_a_batch_axis():
    rng = np.random.default_rng(0)
    batch = rng.random((K, 251, 300)) < 0.5
    similarity = masks.similarity_matrix(batch)
    assert similarity.shape == (K, 251, 251)
    np.testing.assert_allclose(similarity[1], masks.similarity_matrix(batch[1]))
    assert similarity[2, 3, 7] == pytest.approx(np.mean(batch[2, 3] == batch[2, 7]))


def test_apply_mask_zeroes_exactly_the_pruned_weights():
    weights = population(ARCHITECTURES["acrobot"])
    weights[0][0, 0, 0] = float("nan")
    original = [w.clone() for w in weights]
    mask = masks.global_magnitude_masks(weights, 0.4)
    mask[0][0, 0, 0] = False
    masks.apply_mask(weights, mask)
    for w, o, m in zip(weights, original, mask):
        assert torch.equal(w[m], o[m])
        assert torch.equal(w[~m], torch.zeros(int((~m).sum())))
        assert not torch.signbit(w[~m]).any()


def test_apply_mask_works_on_parameters_and_to_float_multiplies_alike():
    weights = [torch.nn.Parameter(w) for w in population((4, 8, 2))]
    mask = masks.random_masks([w.shape for w in weights], 0.5, seeds=[0, 1, 2])
    products = [w.detach() * f for w, f in zip(weights, masks.to_float(mask))]
    assert all(f.dtype == torch.float32 for f in masks.to_float(mask))
    masks.apply_mask(weights, mask)
    assert all(torch.equal(w.detach(), p) for w, p in zip(weights, products))


@pytest.mark.parametrize("n", [1, 7, 8, 9, 17152])
def test_pack_unpack_round_trip(n):
    flat = np.random.default_rng(n).random((2, 5, n)) < 0.3
    packed = masks.pack(flat)
    assert packed.dtype == np.uint8 and packed.shape == (2, 5, -(-n // 8))
    np.testing.assert_array_equal(masks.unpack(packed, n), flat)


def test_pack_accepts_a_torch_mask_and_unflatten_inverts_flatten():
    mask = masks.random_masks([(K, 4, 8), (K, 8, 2)], 0.5, seeds=[5, 6, 7])
    flat = masks.flatten(mask)
    restored = torch.from_numpy(masks.unpack(masks.pack(flat), flat.shape[1]))
    back = masks.unflatten(restored, [m.shape for m in mask])
    assert all(torch.equal(a, b) for a, b in zip(back, mask))


@pytest.mark.parametrize(
    "call, parameter",
    [
        (lambda: masks.global_magnitude_masks([], 0.5), "shapes"),
        (lambda: masks.flatten([]), "tensors"),
        (lambda: masks.unflatten(torch.ones(2, 10, dtype=torch.bool), [(2, 3, 3)]), "shapes"),
        (lambda: masks.similarity_matrix(np.ones(5, dtype=bool)), "masks"),
    ],
)
def test_malformed_inputs_are_rejected(call, parameter):
    with pytest.raises(ValueError, match=f"^{parameter} "):
        call()


def test_unpack_rejects_an_impossible_length():
    with pytest.raises(ValueError, match="n must be in"):
        masks.unpack(np.zeros((3, 2), dtype=np.uint8), 17)


def test_every_mask_is_drawn_by_the_criterion_the_registry_names():
    """`masks.prune` draws with the protocol's criterion (global L1) unless told another one
    `masks.CRITERIA` holds; an unknown name is an error listing the known ones."""
    weights = population(ARCHITECTURES["cartpole"])
    assert masks.CRITERION == "l1"
    for name, criterion in masks.CRITERIA.items():
        drawn = masks.prune(weights, 0.5, name)
        assert all(torch.equal(a, b) for a, b in zip(drawn, criterion(weights, 0.5), strict=True)), name
    default = masks.prune(weights, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(default, masks.global_magnitude_masks(weights, 0.5), strict=True))
    with pytest.raises(ValueError, match="criterion: unknown 'l2'; allowed: l1"):
        masks.prune(weights, 0.5, "l2")
