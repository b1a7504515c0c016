"""Chance-corrected mask similarity: Cohen's kappa against hand-computed examples, the
layer-aware chance level against an exact enumeration, the per-layer densities derived from
the published arrays, the settle rule, and the published numbers (`ebnb.masks`,
`ebnb.analysis.mask_kappa_summary`, `ebnb.experiments.mask_agreement`)."""

from __future__ import annotations

import itertools
import tempfile

import numpy as np
import pandas as pd
import pytest
import torch

from ebnb import analysis, experiments, masks


def test_kappa_of_two_masks_is_cohens_kappa_of_their_two_by_two_table():
    """A worked example: 10 weights, both masks prune P = 0.2; they agree on 6 (p_o = 0.6),
    chance agrees on 0.8^2 + 0.2^2 = 0.68, so kappa = (0.6 - 0.68) / 0.32 = -0.25."""
    a = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
    b = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 1], dtype=bool)
    similarity = masks.similarity_matrix(np.stack([a, b]))[0, 1]
    chance = masks.chance_agreement(a.mean(), b.mean())
    assert similarity == pytest.approx(0.6) and chance == pytest.approx(0.68)
    assert masks.kappa(similarity, chance) == pytest.approx(-0.25)
    # Cohen's formula from the table of counts, masks of different densities
    a = np.array([1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0], dtype=bool)
    b = np.array([1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1], dtype=bool)
    n11, n10, n01, n00 = ((a & b).sum(), (a & ~b).sum(), (~a & b).sum(), (~a & ~b).sum())
    n = len(a)
    observed = (n11 + n00) / n
    expected = ((n11 + n10) * (n11 + n01) + (n01 + n00) * (n10 + n00)) / n**2
    by_hand = (observed - expected) / (1 - expected)
    got = masks.kappa(masks.similarity_matrix(np.stack([a, b]))[0, 1], masks.chance_agreement(a.mean(), b.mean()))
    assert got == pytest.approx(by_hand, rel=1e-12) and by_hand == pytest.approx(1 / 3)


@pytest.mark.parametrize(("fraction", "chance"), [(0.2, 0.68), (0.4, 0.52), (0.5, 0.5), (0.6, 0.52), (0.8, 0.68)])
def test_two_masks_pruning_p_agree_by_chance_on_p_squared_plus_its_complement_squared(fraction, chance):
    assert masks.chance_agreement(1 - fraction, 1 - fraction) == pytest.approx(chance)
    assert masks.kappa(1.0, chance) == 1.0 and masks.kappa(chance, chance) == 0.0


def test_at_p_one_half_the_settle_threshold_is_the_thesis_09_similarity():
    assert masks.kappa(0.9, masks.chance_agreement(0.5, 0.5)) == pytest.approx(analysis.KAPPA_SETTLED)


def test_the_layer_aware_chance_is_the_mean_agreement_over_every_within_layer_arrangement():
    """Exact: for a fixed mask a, every arrangement of mask b's kept weights within each of
    its layers (its per-layer counts fixed), the mean share of weights the two agree on. The
    layers differ in size and in density, so neither the global chance nor an unweighted mean
    over layers gives it."""
    sizes, kept_b = [3, 5], [1, 4]
    a = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)  # kept 2/3 in layer 1, 1/5 in layer 2
    agreements = []
    for first in itertools.combinations(range(3), kept_b[0]):
        for second in itertools.combinations(range(5), kept_b[1]):
            b = np.zeros(8, dtype=bool)
            b[list(first)] = True
            b[[3 + i for i in second]] = True
            agreements.append((a == b).mean())
    exact = float(np.mean(agreements))
    chance = masks.chance_agreement([2 / 3, 1 / 5], [1 / 3, 4 / 5], sizes)
    assert chance == pytest.approx(exact, rel=1e-12)
    assert abs(masks.chance_agreement(a.mean(), 5 / 8) - exact) > 0.05, "the global chance is another number"
    assert masks.chance_agreement([[2 / 3, 1 / 5]], [[1 / 3, 4 / 5]], sizes).shape == (1,)
    with pytest.raises(ValueError, match="2 layers"):
        masks.chance_agreement([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], sizes)


@pytest.mark.parametrize("fraction", [0.3, 0.8])
def test_layer_densities_derived_from_input_survival_are_the_masks_own(fraction):
    """A global L1 mask of a two-layer network (Acrobot's shapes, [out, in]) on weights whose
    layers differ in scale, so the layers' densities differ: `layer_kept` from the first
    layer's input survival (as `ebnb.experiments.step._input_survival` stores it) and the global count
    gives each layer's kept share, counted from the mask."""
    generator = torch.Generator().manual_seed(0)
    hidden, inputs, outputs = 128, 6, 3
    weights = [
        torch.randn(4, hidden, inputs, generator=generator) * 2.0,
        torch.randn(4, outputs, hidden, generator=generator),
    ]
    mask = masks.global_magnitude_masks(weights, fraction)
    flat = masks.flatten(mask).numpy()
    n_weights = flat.shape[1]
    survival = flat[:, : hidden * inputs].reshape(len(flat), hidden, inputs).mean(axis=1)
    kept, sizes = experiments.layer_kept(survival, hidden, n_weights, fraction)
    assert sizes == [hidden * inputs, outputs * hidden]
    counted = np.stack([m.reshape(4, -1).double().mean(dim=1).numpy() for m in mask], axis=1)
    np.testing.assert_allclose(kept, counted, rtol=0, atol=1e-12)
    assert np.abs(kept[:, 0] - kept[:, 1]).min() > 0.1, "a case where the layers' densities differ"


def _agreement(kappas: np.ndarray, fraction: float) -> dict[str, np.ndarray]:
    """A `mask_agreement` entry whose per-seed kappa is `kappas` [seeds, T, T] at global chance."""
    chance = masks.chance_agreement(1 - fraction, 1 - fraction)
    seeds, t, _ = kappas.shape
    return {
        "episodes": np.arange(t) * 2,
        "similarity": chance + kappas * (1 - chance),
        "chance": np.full((seeds, t, t), chance),
    }


def test_the_summary_gives_chance_kappa_and_the_settle_episode_per_seed_with_its_interval():
    # three seeds, 5 masks (episodes 0, 2, ..., 8); kappa with the final mask per seed:
    to_last = np.array(
        [
            [0.1, 0.85, 0.7, 0.9, 1.0],  # settles at episode 6
            [0.2, 0.8, 0.81, 0.95, 1.0],  # at 2 (0.8 counts)
            [0.0, 0.3, 0.5, 0.79, 1.0],
        ]
    )  # at 8
    kappas = np.broadcast_to(to_last[:, :, None], (3, 5, 5)).copy()  # kappas[s, i, -1] = to_last[s, i]
    agreement = {0.2: _agreement(kappas, 0.2), 0.6: _agreement(kappas, 0.6)}
    summary = analysis.mask_kappa_summary(agreement)
    assert summary["chance_global"].round(12).tolist() == [0.68, 0.52]
    np.testing.assert_allclose(summary["kappa_layer"], to_last[:, 0].mean())
    np.testing.assert_allclose(summary["kappa_global"], to_last[:, 0].mean())
    assert summary["settles"].tolist() == [16 / 3] * 2
    assert (summary["settles_low"] >= 2).all() and (summary["settles_high"] <= 8).all()
    assert (summary["settles_low"] < summary["settles"]).all() and (summary["settles"] < summary["settles_high"]).all()
    matrices = analysis.kappa_matrices(agreement)
    np.testing.assert_allclose(matrices[0.2].to_numpy(), kappas.mean(axis=0))
    assert matrices[0.2].index.tolist() == [0, 2, 4, 6, 8]


def test_the_settle_episode_is_where_the_last_value_below_the_threshold_ends():
    episodes = np.array([0, 2, 4, 6])
    assert analysis.settle_episode([0.9, 0.95, 0.99, 1.0], episodes, 0.9) == 0
    assert analysis.settle_episode([0.95, 0.5, 0.99, 1.0], episodes, 0.9) == 4
    assert np.isnan(analysis.settle_episode([0.95, 0.5, 0.99, 0.8], episodes, 0.9))


def test_the_published_first_vs_last_kappa():
    """The full profile's published dense runs: kappa on the chance level from P alone is the
    issue's (CartPole 0.29 / 0.26 / 0.07 / 0.06, Acrobot -0.05 / -0.10 / -0.04 / 0.02); the
    layer-aware chance of Acrobot's first and last masks is below P's (its first layer keeps
    more weights early than late), which lifts its kappa to just above 0."""
    from ebnb.store import Store

    grid, published = experiments.grid("full"), experiments.published_results()
    with tempfile.TemporaryDirectory() as directory:
        summary = {
            env: analysis.mask_kappa_summary(experiments.mask_agreement(env, grid, Store(directory), published))
            for env in ("cartpole", "acrobot")
        }
    assert summary["cartpole"]["kappa_global"].round(2).tolist() == [0.29, 0.26, 0.07, 0.06]
    assert summary["acrobot"]["kappa_global"].round(2).tolist() == [-0.05, -0.10, -0.04, 0.02]
    assert (summary["acrobot"]["chance_layer"] < summary["acrobot"]["chance_global"]).all()
    assert summary["acrobot"]["kappa_layer"].between(0, 0.1).all()
    for table in summary.values():
        assert isinstance(table, pd.DataFrame) and (table["settles_low"] <= table["settles"]).all()
