"""Experiment steps on a tiny grid: shapes, protocol semantics, caching, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ebnb import analysis, experiments, masks
from ebnb.agent import fresh_agent
from ebnb.population import Population
from ebnb.store import Store

TINY = dict(seeds=(0, 1), fractions=(0.5,), prune_episodes=(2, 4), episodes=6, test_episodes=3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny populations run several times faster single-threaded on a busy machine (same numbers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    assert list(again.columns) == ["seed", "P", "prune_episode", "length", "converged", "test_return", "state_sha256"]
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
    assert (found["prune_episode"] >= 2).all(), "a ticket needs two masks compared"
    assert found["finetune_length"].between(1, g.episodes).all()
    assert (results.loc[~results.found, "finetune_length"] == 0).all()
    assert (results.loc[~results.found, "prune_episode"] == -1).all()


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


def _learning_from(monkeypatch, transitions: int, **changes) -> None:
    """CartPole configs that learn from `transitions` (not 200), so short runs have Adam state."""
    real = experiments.dqn_config
    monkeypatch.setattr(experiments, "dqn_config",
                        lambda env, **kw: real(env, **{"learning_starts": transitions, **changes, **kw}))  # fmt: skip


def test_ticket_results_hash_the_network_trained_from_the_protocols_start_state(tmp_path, monkeypatch):
    """Each stored ticket's state_sha256 is the hash of an agent trained here from the start
    the protocol prescribes: finetune = the dense run's state at the prune episode (Adam
    moments and step count, target, replay, epsilon) masked; retrain and winning ticket = a
    fresh agent masked, with the mask drawn at the prune episode / at convergence."""
    _learning_from(monkeypatch, 64)
    g = experiments.grid("quick", seeds=(0,), fractions=(0.5,), prune_episodes=(4,), episodes=8, test_episodes=1)
    store = Store(tmp_path)
    cfg = experiments.dqn_config("cartpole", max_episodes=g.episodes)
    snapshots = experiments.dense_runs("cartpole", g, store)[0]["snapshots"]
    at_4, at_end = (experiments._state_from(snapshots, name) for name in ("e4", "converged"))
    assert at_4.adam_steps > 0 and any(m.any() for m in at_4.exp_avg), "pruned after learning started"
    starts = {
        "finetune": at_4.pruned(experiments._mask(at_4, 0.5)),
        "retrain": fresh_agent(cfg, 0).pruned(experiments._mask(at_4, 0.5)),
        "winning tickets": fresh_agent(cfg, 0).pruned(experiments._mask(at_end, 0.5)),
    }
    tables = {"finetune": experiments.finetune, "retrain": experiments.retrain,
              "winning tickets": experiments.winning_tickets}  # fmt: skip
    for name, start in starts.items():
        row = tables[name]("cartpole", g, store).iloc[0]
        trained = Population(cfg, [start], early_stop=True, max_episodes=g.episodes).run()
        assert row["state_sha256"] == experiments.state_sha256(trained.final[0]), name
        assert row["length"] == trained.agents.loc[0, "episodes_run"], name


def test_eb_exploit_finetunes_the_search_state_it_pruned_once_epsilon_is_at_its_floor(tmp_path, monkeypatch):
    """Epsilon halves per episode: 0.5**7 < 0.01, so the first mask at the floor is drawn at
    episode 7 and (window 1, loose xi) the ticket at episode 8. The stored run is the search
    state at episode 8, pruned by its own mask, finetuned keeping its Adam state."""
    _learning_from(monkeypatch, 64, eps_decay=0.5)
    g = experiments.grid("quick", seeds=(0,), fractions=(0.5,), episodes=12, test_episodes=1)
    row = experiments.eb_exploit("cartpole", g, Store(tmp_path), xi=0.9, window=1).iloc[0]
    assert row["found"] and row["prune_episode"] == 8 and row["search_length"] == 8
    cfg = experiments.dqn_config("cartpole", max_episodes=g.episodes)
    searched = Population(cfg, [fresh_agent(cfg, 0)], early_stop=True, max_episodes=8).run()
    state = searched.final[0]
    assert searched.agents.loc[0, "stop_reason"] == "max_episodes" and state.adam_steps > 0
    finetuned = Population(cfg, [state.pruned(experiments._mask(state, 0.5))], early_stop=True,
                           max_episodes=g.episodes).run()  # fmt: skip
    assert row["state_sha256"] == experiments.state_sha256(finetuned.final[0])
    assert row["finetune_length"] == finetuned.agents.loc[0, "episodes_run"]


def test_state_sha256_covers_parameters_target_mask_and_adam_state():
    state = fresh_agent(experiments.dqn_config("cartpole"), 0)
    base = experiments.state_sha256(state)
    assert experiments.state_sha256(state.replace()) == base

    def bumped(arrays):
        return [arrays[0] + 1e-3, *arrays[1:]]

    changed = [state.replace(**{group: bumped(getattr(state, group))})
               for group in ("params", "target", "exp_avg", "exp_avg_sq")]  # fmt: skip
    changed += [state.replace(adam_steps=1), state.replace(epsilon=0.5), state.replace(transitions=1),
                state.pruned([np.ones_like(w, dtype=bool) for w in state.params[::2]])]  # fmt: skip
    hashes = [experiments.state_sha256(s) for s in changed]
    assert base not in hashes and len(set(hashes)) == len(hashes)
