"""Experiment steps on a tiny grid: shapes, protocol semantics, caching, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest

from ebnb import analysis, experiments, masks
from ebnb.store import Store

TINY = dict(seeds=(0, 1), fractions=(0.5,), prune_episodes=(2, 4), episodes=6, test_episodes=3)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def grid():
    return experiments.grid("quick", **TINY)


def test_dense_runs_record_masks_snapshots_and_baseline(store, grid):
    runs = experiments.dense_runs("cartpole", grid, store)
    assert len(runs) == 2
    run = runs[0]
    assert run["masks"]["episodes"].tolist() == [0, 2, 4, 6]
    assert run["masks"]["P0.5"].shape[0] == 4
    assert {"theta0.params.0", "e2.params.0", "e4.params.0", "converged.params.0"} <= set(run["snapshots"])
    assert run["episodes"]["episode"].tolist() == list(range(1, 7))
    assert run["baseline"]["converged_episode"].iloc[0] == 6  # 6 episodes: never converges, cap counts
    # the mask stored for episode 2 is the global L1 mask of the episode-2 snapshot
    state = experiments._state_from(run["snapshots"], "e2")
    expected = masks.flatten([m for m in masks.global_magnitude_masks(experiments._weights(state), 0.5)])[0].numpy()
    n = expected.size
    assert np.array_equal(masks.unpack(run["masks"]["P0.5"][1], n), expected)


def test_steps_load_from_the_store_instead_of_recomputing(store, grid):
    experiments.retrain("cartpole", grid, store)
    computed = store.computed
    saved = len(list(store.root.rglob("manifest.json")))
    again = experiments.retrain("cartpole", grid, store)
    assert store.computed == computed and len(list(store.root.rglob("manifest.json"))) == saved
    assert list(again.columns) == ["seed", "P", "prune_episode", "length", "converged", "test_return"]
    assert len(again) == 2 * 1 * 2


def test_finetune_continues_the_dense_run_and_retrain_starts_fresh(store, grid):
    finetune = experiments.finetune("cartpole", grid, store)
    retrain = experiments.retrain("cartpole", grid, store)
    winning = experiments.winning_tickets("cartpole", grid, store)
    for table in (finetune, retrain, winning):
        assert table["length"].between(1, grid.episodes).all()
        assert np.isfinite(table["test_return"]).all()
    assert (winning["prune_episode"] == grid.episodes).all()  # never converged in 6 episodes: mask at the cap
    criteria = analysis.early_bird_criteria(finetune, experiments.baseline("cartpole", grid, store), winning)
    assert set(criteria["prune_episode"]) == {2, 4}


def test_mask_similarity_is_a_mean_of_per_seed_matrices(store, grid):
    similarity = experiments.mask_similarity("cartpole", grid, store)
    matrix = similarity[0.5]
    assert matrix.shape == (4, 4) and list(matrix.index) == [0, 2, 4, 6]
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix.to_numpy(), matrix.to_numpy().T)
    summary = analysis.mask_similarity_summary(similarity)
    assert summary.loc[0, "first_vs_last"] == matrix.iloc[0, -1]


def test_eb_exploit_reports_each_seed_and_fraction(store):
    # Acrobot's epsilon reaches its floor after ~4,600 steps (~10 early episodes); a loose xi finds tickets
    g = experiments.grid("quick", seeds=(0,), fractions=(0.2, 0.8), prune_episodes=(2,), episodes=14, test_episodes=2)
    results = experiments.eb_exploit("acrobot", g, store, xi=0.5, window=1)
    assert len(results) == 2
    assert results["found"].any()
    assert set(results.columns) >= {"found", "prune_episode", "search_length", "finetune_length", "test_return"}
    found = results[results.found]
    assert (found["prune_episode"] == found["search_length"]).all()
    assert (results.loc[~results.found, "finetune_length"] == 0).all()


@pytest.mark.parametrize(
    "call, parameter",
    [
        (lambda: experiments.grid("huge"), "profile"),
        (lambda: experiments.grid("quick", learning_rate=0.1), "learning_rate"),
        (lambda: experiments.grid("quick", seeds=()), "seeds"),
        (lambda: experiments.grid("quick", fractions=(0.2, 1.2)), "fractions"),
        (lambda: experiments.grid("quick", prune_episodes=(0,)), "prune_episodes"),
        (lambda: experiments.grid("quick", episodes=10, prune_episodes=(20,)), "prune_episodes"),
        (lambda: experiments.grid("quick", episodes=0), "episodes"),
        (lambda: experiments.eb_exploit("cartpole", experiments.grid("quick"), None, xi=1.5), "xi"),
    ],
)
def test_bad_parameters_are_rejected_before_compute(call, parameter):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value).startswith(parameter)


def test_full_profile_is_the_thesis_grid():
    full = experiments.PROFILES["full"]
    assert full.seeds == tuple(range(10)) and full.fractions == (0.2, 0.4, 0.6, 0.8)
    assert full.prune_episodes == (5, 20, 30, 40, 50, 75, 100, 130, 180, 250, 400, 500)
    assert (full.episodes, full.test_episodes, full.mask_every) == (500, 100, 2)


def test_eb_exploit_reports_convergence_of_the_finetune_phase(tmp_path, monkeypatch):
    # With epsilon halving per episode it reaches its floor at episode 7, the ticket is found
    # at episode 9, and 12 episodes of finetuning are too few to converge: not converged.
    fast_decay = experiments.dqn_config

    monkeypatch.setattr(experiments, "dqn_config", lambda env, **kw: fast_decay(env, eps_decay=0.5, **kw))
    g = experiments.grid("quick", seeds=(0,), fractions=(0.5,), episodes=12, test_episodes=1)
    result = experiments.eb_exploit("cartpole", g, Store(tmp_path)).iloc[0]
    assert result["found"] and result["prune_episode"] == 9 and result["finetune_length"] == 12
    assert not result["converged"]
