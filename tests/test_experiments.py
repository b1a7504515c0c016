"""Experiment steps on a tiny grid: shapes, protocol semantics, caching, bad parameters."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ebnb import agent as agent_module
from ebnb import analysis, experiments, published
from ebnb.agent import AgentState, fresh_agent
from ebnb.config import dqn_config
from ebnb.envs import OBSERVATION_NAMES
from ebnb.experiments.dense_training import compute_dense
from ebnb.population import Population
from ebnb.store import Store, config_hash

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(seeds=(0, 1), fractions=(0.5,), prune_episodes=(2, 4), episodes=6, test_episodes=3)


def numpy_global_l1_mask(weights, fraction) -> np.ndarray:
    """Global unstructured L1 mask over weight matrices [out, in] (True = kept), flat in the
    protocol's order (layers in order, row-major); round(P * N) pruned, ties by flat index."""
    flat = np.concatenate([np.asarray(w).ravel() for w in weights])
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(np.abs(flat), kind="stable")[: round(fraction * flat.size)]] = False
    return keep


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("store"))


def stored_dense_runs(store, g, env="cartpole") -> list[dict]:
    """The dense runs' complete stored results (snapshots and masks, which the notebooks'
    view `experiments.dense_runs` leaves out), computed if missing."""
    experiments.dense_runs(env, g, store)
    return [store.load("dense", unit) for unit in experiments.steps(env, g)["dense runs"].units]


@pytest.fixture(scope="module")
def grid():
    return experiments.grid("quick", **TINY)


def test_dense_runs_record_masks_snapshots_and_baseline(store, grid):
    runs = stored_dense_runs(store, grid)
    assert len(runs) == 2
    run = runs[0]
    assert run["masks"]["episodes"].tolist() == [0, 2, 4, 6]
    assert run["masks"]["P0.5"].shape[0] == 4
    assert {"theta0.params.0", "e2.params.0", "e4.params.0", "converged.params.0"} <= set(run["snapshots"])
    assert run["episodes"]["episode"].tolist() == list(range(1, 7))
    assert run["baseline"]["converged_episode"].iloc[0] == 6  # 6 episodes: never converges, cap counts
    # the masks stored for episodes 0, 2, 4 and 6 are the global L1 masks of the recorded
    # weights at those episodes, recomputed here with numpy (not with ebnb.masks)
    for row, name in enumerate(["theta0", "e2", "e4", "converged"]):
        state = experiments.states.state_from(run["snapshots"], name)
        assert state.episodes == 2 * row
        expected = numpy_global_l1_mask(state.params[0::2], 0.5)
        stored = np.unpackbits(run["masks"]["P0.5"][row])[: expected.size].astype(bool)
        assert np.array_equal(stored, expected), name


def test_input_survival_is_the_kept_share_of_each_inputs_outgoing_weights(store, grid):
    """At every episode a mask was drawn (here θ0 and the snapshot at episode 4), the share of
    each input's first-layer column that the L1 mask of that state keeps."""
    table = experiments.input_survival("cartpole", grid, store)
    for seed, run in zip(grid.seeds, stored_dense_runs(store, grid)):
        for name, episode in (("theta0", 0), ("e4", 4)):
            state = experiments.states.state_from(run["snapshots"], name)
            for fraction in grid.fractions:
                rows = table[(table.seed == seed) & (table.P == fraction) & (table.episode == episode)]
                assert tuple(rows.feature) == OBSERVATION_NAMES["CartPole-v0"]
                first_layer = layer_mask(numpy_global_l1_mask(state.params[0::2], fraction), state.params)[0]
                np.testing.assert_array_equal(rows.kept.to_numpy(), first_layer.mean(axis=0))
    assert sorted(table.episode.unique()) == list(range(0, grid.episodes + 1, grid.mask_every))


def test_steps_load_from_the_store_instead_of_recomputing(store, grid):
    experiments.retrain("cartpole", grid, store)
    computed = store.computed
    saved = len(list(store.root.rglob("manifest.json")))
    again = experiments.retrain("cartpole", grid, store)
    assert store.computed == computed and len(list(store.root.rglob("manifest.json"))) == saved
    assert list(again.columns) == [
        "seed",
        "P",
        "prune_episode",
        "post_prune_env_steps",
        "post_prune_updates",
        "length",
        "converged",
        "test_return",
        "state_sha256",
    ]
    assert len(again) == 2 * 1 * 2


def test_ticket_tables_are_well_formed(store, grid):
    """Shapes and ranges only; the start states are checked exactly further down."""
    finetune = experiments.finetune("cartpole", grid, store)
    retrain = experiments.retrain("cartpole", grid, store)
    winning = experiments.winning_tickets("cartpole", grid, store)
    for table in (finetune, retrain, winning):
        assert table["length"].between(1, grid.episodes).all()
        assert np.isfinite(table["test_return"]).all()
    assert (winning["prune_episode"] == grid.episodes).all()  # never converged in 6 episodes: mask at the cap
    criteria = analysis.criteria_table(finetune, experiments.baseline("cartpole", grid, store), winning, "CartPole-v0")
    assert set(criteria["prune_episode"]) == {2, 4}
    assert criteria["1_performance"].isin(analysis.STATES).all() and (criteria.seeds == len(grid.seeds)).all()


def test_mask_similarity_matrices_are_square_symmetric_with_unit_diagonal(store, grid):
    similarity = experiments.mask_similarity("cartpole", grid, store)
    matrix = similarity[0.5]
    assert matrix.shape == (4, 4) and list(matrix.index) == [0, 2, 4, 6]
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix.to_numpy(), matrix.to_numpy().T)
    summary = analysis.mask_similarity_summary(similarity)
    assert summary.loc[0, "first_vs_last"] == matrix.iloc[0, -1]


def test_eb_exploit_reports_each_seed_and_fraction(tmp_path):
    # CartPole with epsilon halving per episode reaches its floor at episode 7; a loose xi finds tickets
    g = experiments.grid(
        "quick",
        seeds=(0,),
        fractions=(0.2, 0.8),
        prune_episodes=(2,),
        episodes=14,
        test_episodes=2,
        dqn={"eps_decay": 0.5},
    )
    results = experiments.eb_exploit("cartpole", g, Store(tmp_path), xi=0.5, window=1)
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


def test_dqn_overrides_reach_every_unit_and_name_the_run():
    """A grid's DQN overrides are the config of every unit of every step (so their keys), and
    name the run's folder and figure note; a default stated names the thesis grid itself."""
    g = experiments.grid("quick", dqn={"lr": 0.001, "hidden": [64], "arithmetic": "torch"})
    assert g.dqn == (("arithmetic", "torch"), ("hidden", (64,)), ("lr", 0.001))
    cfg = experiments.run_config("acrobot", g)
    assert (cfg.lr, cfg.hidden, cfg.arithmetic, cfg.max_episodes) == (0.001, (64,), "torch", g.episodes)
    units = [u for step in experiments.steps("acrobot", g).values() for u in step.units]
    assert len(units) > 40 and {getattr(u, "dense", getattr(u, "ticket", u)) for u in units} >= set(
        experiments.dense_units("acrobot", g)
    )
    assert {experiments.units.env_id(u) for u in units} == {"Acrobot-v1"}
    assert {(u.dqn if hasattr(u, "dqn") else u.dense.dqn) for u in units} == {cfg}
    assert experiments.run_name("quick", g) == "quick-arithmetic=torch-hidden=64-lr=0.001"
    assert experiments.figure_note("quick", g).startswith("quick profile with arithmetic=torch, hidden=[64], lr=0.001")
    stated = experiments.grid("quick", dqn={"device": "cpu", "arithmetic": "fused"})
    assert stated == experiments.PROFILES["quick"] and "dqn" not in repr(stated)
    assert experiments.run_name("quick", stated) == "quick"


def test_the_15_seed_profile_shares_the_thesis_units_of_seeds_0_to_9():
    """full15 computes only seeds 10-14: seeds 0-9 are the full profile's units, config for config."""
    full, full15 = experiments.PROFILES["full"], experiments.PROFILES["full15"]
    assert full15.seeds == tuple(range(15)) and experiments.run_name("full", full15) == "full-seeds=" + "_".join(
        map(str, range(15))
    )
    for env in ("cartpole", "acrobot"):
        thesis, wider = experiments.steps(env, full), experiments.steps(env, full15)
        for name, step in thesis.items():
            assert set(step.units) < set(wider[name].units) and len(wider[name].units) == len(step.units) * 3 // 2


def test_the_gym_terminal_profile_is_the_thesis_grid_with_time_limits_as_terminal_in_every_unit():
    """gym_terminal is the full grid with `truncation_is_terminal=True` (issue 31's variant 1):
    every unit of notebooks 01-04's steps trains so, none is a full-profile unit, and a
    notebook's own DQN overrides (its device, arithmetic, dqn) add to the profile's instead of
    dropping them; stating the default again gives the full grid back."""
    from ebnb.side_profiles import SIDE_PROFILES

    full, gym = experiments.PROFILES["full"], experiments.PROFILES["gym_terminal"]
    assert gym == experiments.grid("full", dqn={"truncation_is_terminal": True})
    assert experiments.run_name("gym_terminal", gym) == "gym_terminal"
    notebook_grid = experiments.grid("gym_terminal", dqn={"device": "cpu", "arithmetic": "fused", "lr": 0.001})
    assert notebook_grid.dqn == (("lr", 0.001), ("truncation_is_terminal", True))
    assert experiments.grid("gym_terminal", dqn={"truncation_is_terminal": False}) == full
    side = SIDE_PROFILES["gym_terminal"]
    assert side.notebooks == ("01_mask_similarity", "02_retrain", "03_finetune", "04_eb_exploit")
    for env in ("cartpole", "acrobot"):
        steps = side.steps(env, None, None)
        assert [s.name for s in steps] == ["dense runs", "retrain", "winning tickets", "finetune", "eb_exploit"]
        thesis = experiments.steps(env, full)
        for step in steps:
            ours, theirs = set(step.units), set(thesis[step.name].units)
            assert len(ours) == len(theirs) and not ours & theirs
            dense = {getattr(u, "dense", getattr(u, "ticket", u)) for u in step.units}
            assert {getattr(d, "dqn", None) or d.dense.dqn for d in dense} == {
                experiments.run_config(env, full).replace(truncation_is_terminal=True)
            }


def test_eb_exploit_reports_convergence_of_the_finetune_phase(tmp_path):
    # With epsilon halving per episode it reaches its floor at episode 7, the ticket is found
    # at episode 9, and 12 episodes of finetuning are too few to converge: not converged.
    g = experiments.grid("quick", seeds=(0,), fractions=(0.5,), episodes=12, test_episodes=1, dqn={"eps_decay": 0.5})
    result = experiments.eb_exploit("cartpole", g, Store(tmp_path)).iloc[0]
    assert result["found"] and result["prune_episode"] == 9 and result["finetune_length"] == 12
    assert not result["converged"]


# ---- exact start states of retrained and finetuned tickets ----------------------------------


def assert_same_state(actual: AgentState, expected: AgentState, what: str) -> None:
    """Every field of two agent states bitwise equal (arrays, dtypes, counters, mask)."""
    a, e = actual.to_arrays(), expected.to_arrays()
    assert sorted(a) == sorted(e), what
    for name in e:
        assert a[name].dtype == e[name].dtype and np.array_equal(a[name], e[name]), f"{what}: {name}"


def linear_init(cfg, seed) -> list[np.ndarray]:
    """theta_0 as torch.nn.Linear draws it after torch.manual_seed(seed) (the reference DQN's
    init), in the engine's layout: W [out, in], b [out, 1]."""
    torch.manual_seed(seed)
    sizes = [agent_module.env_dims(cfg.env_id)[0], *cfg.hidden, agent_module.env_dims(cfg.env_id)[1]]
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layer = torch.nn.Linear(fan_in, fan_out)
        params += [layer.weight.detach().numpy().copy(), layer.bias.detach().numpy()[:, None].copy()]
    return params


def layer_mask(flat: np.ndarray, params) -> list[np.ndarray]:
    shapes = [w.shape for w in params[0::2]]
    parts = np.split(flat, np.cumsum([int(np.prod(s)) for s in shapes])[:-1])
    return [part.reshape(shape) for part, shape in zip(parts, shapes)]


def masked(params, mask):
    return [p * mask[i // 2] if i % 2 == 0 else p.copy() for i, p in enumerate(params)]


@pytest.fixture(scope="module")
def ticket_starts(tmp_path_factory):
    """The start state (`experiments.ticket_start`) of every retrain, finetune and winning
    ticket of a tiny CartPole grid, from its dense run's stored state at its prune episode.
    The dense runs learn from transition 32 (the grid's DQN override), so that they have Adam
    moments and steps by episode 2 (a finetune must carry them)."""
    g = experiments.grid(
        "quick",
        seeds=(0, 1),
        fractions=(0.5, 0.8),
        prune_episodes=(2, 4),
        episodes=6,
        test_episodes=1,
        dqn={"learning_starts": 32},
    )
    cfg = experiments.run_config("cartpole", g)
    units = tuple(experiments.dense_units("cartpole", g))
    assert {unit.dqn for unit in units} == {dqn_config("cartpole", learning_starts=32, max_episodes=g.episodes)}
    store = Store(tmp_path_factory.mktemp("tickets"))
    experiments.step.step_results(store, experiments.Step("dense runs", "dense", units, compute_dense), None, False)
    dense = [store.load("dense", unit) for unit in units]
    tickets = [
        experiments.TicketRun(unit, fraction, episode, mode)
        for unit in units
        for fraction in g.fractions
        for mode, episodes in (("retrain", g.prune_episodes + (experiments.CONVERGED,)), ("finetune", g.prune_episodes))
        for episode in episodes
    ]
    starts = {}
    for ticket, run in ((ticket, dense[units.index(ticket.dense)]) for ticket in tickets):
        state = experiments.tickets.dense_state_at(cfg, run["snapshots"], ticket.prune_episode)
        starts[ticket] = experiments.ticket_start(ticket, state)
    return cfg, g, dense, starts, store


def dense_rerun(cfg, seed, episodes) -> dict[int, AgentState]:
    """The dense run of `seed` trained again alone: its state at the end of every episode."""
    states = {}

    def keep(population, ends):
        states[int(ends.episodes[0])] = population.snapshot(ends.agents)[0]

    Population(cfg, [fresh_agent(cfg, seed)], early_stop=False, max_episodes=episodes, callback=keep).run()
    return states


def test_retrain_starts_from_masked_theta0_with_a_fresh_state(ticket_starts):
    """Retrain (and winning tickets): mask m from theta_e, start m * theta_0 (online and target),
    epsilon 1.0, empty replay, zero Adam moments and steps, zero counters, the dense run's seed."""
    cfg, g, _dense, starts = ticket_starts[:4]
    retrained = {u: s for u, s in starts.items() if u.mode == "retrain"}
    assert len(retrained) == len(g.seeds) * len(g.fractions) * (len(g.prune_episodes) + 1)
    reruns = {seed: dense_rerun(cfg, seed, g.episodes) for seed in g.seeds}
    for unit, start in retrained.items():
        seed = unit.dense.seed
        theta0 = linear_init(cfg, seed)
        episode = g.episodes if unit.prune_episode == experiments.CONVERGED else unit.prune_episode
        theta_e = reruns[seed][episode].params
        assert not all(np.array_equal(a, b) for a, b in zip(theta0, theta_e)), "theta_e must differ from theta_0"
        mask = layer_mask(numpy_global_l1_mask(theta_e[0::2], unit.fraction), theta0)
        expected = AgentState(
            seed=seed,
            params=masked(theta0, mask),
            target=masked(theta0, mask),
            exp_avg=[np.zeros_like(p) for p in theta0],
            exp_avg_sq=[np.zeros_like(p) for p in theta0],
            adam_steps=0,
            replay={name: np.zeros_like(array) for name, array in start.replay.items()},
            epsilon=1.0,
            transitions=0,
            updates=0,
            episodes=0,
            mask=mask,
        )
        assert start.replay["obs"].shape == (cfg.buffer_size, 4)
        assert_same_state(start, expected, f"retrain {unit.fraction} {unit.prune_episode} seed {seed}")


def test_finetune_continues_the_dense_runs_full_state_at_the_prune_episode(ticket_starts):
    """Finetune: the dense run's state at the end of episode e (epsilon, replay, Adam moments and
    step count, counters) with m * theta_e in the online and in the target network."""
    cfg, g, _dense, starts = ticket_starts[:4]
    finetuned = {u: s for u, s in starts.items() if u.mode == "finetune"}
    assert len(finetuned) == len(g.seeds) * len(g.fractions) * len(g.prune_episodes)
    reruns = {seed: dense_rerun(cfg, seed, g.episodes) for seed in g.seeds}
    for unit, start in finetuned.items():
        state = reruns[unit.dense.seed][unit.prune_episode]
        assert state.adam_steps > 0 and any(m.any() for m in state.exp_avg), "the test needs Adam state to carry"
        assert state.epsilon < 1.0 and state.transitions > 0 and state.updates > 0
        mask = layer_mask(numpy_global_l1_mask(state.params[0::2], unit.fraction), state.params)
        expected = state.replace(params=masked(state.params, mask), target=masked(state.target, mask), mask=mask)
        assert_same_state(start, expected, f"finetune {unit.fraction} {unit.prune_episode} seed {unit.dense.seed}")


def test_dense_runs_record_theta0_and_the_state_at_each_prune_episode(ticket_starts):
    """The recorded snapshots are the dense run's real states (checked against a rerun alone)."""
    cfg, g, dense = ticket_starts[:3]
    for seed, run in zip(g.seeds, dense):
        rerun = dense_rerun(cfg, seed, g.episodes)
        theta0 = experiments.states.state_from(run["snapshots"], "theta0")
        assert all(np.array_equal(a, b) for a, b in zip(theta0.params, linear_init(cfg, seed)))
        assert_same_state(theta0, fresh_agent(cfg, seed), "theta0")
        for episode in g.prune_episodes:
            assert_same_state(
                experiments.states.state_from(run["snapshots"], f"e{episode}"), rerun[episode], f"e{episode}"
            )
        log = run["episodes"]
        assert rerun[4].transitions == log["length"].iloc[:4].sum() and rerun[4].epsilon == log["epsilon"].iloc[4]


def test_mask_similarity_equals_the_mean_of_per_seed_matrices_recomputed(ticket_starts):
    """Experiment 1's matrix is np.mean over seeds of each seed's matrix, each recomputed here
    from the stored masks: the share of weights on which two masks agree."""
    _cfg, g, dense, _, store = ticket_starts
    computed = store.computed
    similarity = experiments.mask_similarity("cartpole", g, store)
    assert store.computed == computed  # the dense runs of the fixture, loaded
    n = 4 * 128 + 128 * 128 + 128 * 2
    for fraction in g.fractions:
        per_seed = []
        for run in dense:
            flat = np.unpackbits(run["masks"][f"P{fraction}"], axis=-1)[:, :n].astype(bool)
            per_seed.append((flat[:, None, :] == flat[None, :, :]).mean(axis=-1))
        assert not np.allclose(per_seed[0], per_seed[1]), "the test needs seeds whose matrices differ"
        assert list(similarity[fraction].index) == list(similarity[fraction].columns) == [0, 2, 4, 6]
        np.testing.assert_allclose(similarity[fraction].to_numpy(), np.mean(per_seed, axis=0), rtol=0, atol=1e-12)


def test_ticket_results_hash_the_network_trained_from_the_protocols_start_state(tmp_path):
    """Each stored ticket's state_sha256 is the hash of an agent trained here from the start
    the protocol prescribes: finetune = the dense run's state at the prune episode (Adam
    moments and step count, target, replay, epsilon) masked; retrain and winning ticket = a
    fresh agent masked, with the mask drawn at the prune episode / at convergence."""
    # learning from transition 64 (not 200): Adam state by episode 4
    g = experiments.grid(
        "quick",
        seeds=(0,),
        fractions=(0.5,),
        prune_episodes=(4,),
        episodes=8,
        test_episodes=1,
        dqn={"learning_starts": 64},
    )
    store = Store(tmp_path)
    cfg = experiments.run_config("cartpole", g)
    snapshots = stored_dense_runs(store, g)[0]["snapshots"]
    at_4, at_end = (experiments.states.state_from(snapshots, name) for name in ("e4", "converged"))
    assert at_4.adam_steps > 0 and any(m.any() for m in at_4.exp_avg), "pruned after learning started"
    starts = {
        "finetune": at_4.pruned(experiments.states.mask_of(at_4, 0.5)),
        "retrain": fresh_agent(cfg, 0).pruned(experiments.states.mask_of(at_4, 0.5)),
        "winning tickets": fresh_agent(cfg, 0).pruned(experiments.states.mask_of(at_end, 0.5)),
    }
    tables = {
        "finetune": experiments.finetune,
        "retrain": experiments.retrain,
        "winning tickets": experiments.winning_tickets,
    }
    for name, start in starts.items():
        row = tables[name]("cartpole", g, store).iloc[0]
        trained = Population(cfg, [start], early_stop=True, max_episodes=g.episodes).run()
        assert row["state_sha256"] == experiments.state_sha256(trained.final[0]), name
        assert row["length"] == trained.agents.loc[0, "episodes_run"], name
        final = trained.final[0]
        assert row["post_prune_env_steps"] == final.transitions - start.transitions > 0, name
        assert row["post_prune_updates"] == final.updates - start.updates > 0, name


def test_eb_exploit_finetunes_the_search_state_it_pruned_once_epsilon_is_at_its_floor(tmp_path):
    """Epsilon halves per episode: 0.5**7 < 0.01, so the first mask at the floor is drawn at
    episode 7 and (window 1, loose xi) the ticket at episode 8. The stored run is the search
    state at episode 8, pruned by its own mask, finetuned keeping its Adam state."""
    g = experiments.grid(
        "quick",
        seeds=(0,),
        fractions=(0.5,),
        episodes=12,
        test_episodes=1,
        dqn={"learning_starts": 64, "eps_decay": 0.5},
    )
    row = experiments.eb_exploit("cartpole", g, Store(tmp_path), xi=0.9, window=1).iloc[0]
    assert row["found"] and row["prune_episode"] == 8 and row["search_length"] == 8
    cfg = experiments.run_config("cartpole", g)
    searched = Population(cfg, [fresh_agent(cfg, 0)], early_stop=True, max_episodes=8).run()
    state = searched.final[0]
    assert searched.agents.loc[0, "stop_reason"] == "max_episodes" and state.adam_steps > 0
    finetuned = Population(
        cfg, [state.pruned(experiments.states.mask_of(state, 0.5))], early_stop=True, max_episodes=g.episodes
    ).run()
    assert row["state_sha256"] == experiments.state_sha256(finetuned.final[0])
    assert row["finetune_length"] == finetuned.agents.loc[0, "episodes_run"]


def test_state_sha256_covers_parameters_target_mask_and_adam_state():
    state = fresh_agent(dqn_config("cartpole"), 0)
    base = experiments.state_sha256(state)
    assert experiments.state_sha256(state.replace()) == base

    def bumped(arrays):
        return [arrays[0] + 1e-3, *arrays[1:]]

    changed = [
        state.replace(**{group: bumped(getattr(state, group))})
        for group in ("params", "target", "exp_avg", "exp_avg_sq")
    ]
    changed += [
        state.replace(adam_steps=1),
        state.replace(epsilon=0.5),
        state.replace(transitions=1),
        state.pruned([np.ones_like(w, dtype=bool) for w in state.params[::2]]),
    ]
    hashes = [experiments.state_sha256(s) for s in changed]
    assert base not in hashes and len(set(hashes)) == len(hashes)


@pytest.mark.skipif(not (ROOT / "results" / "manifest.json").exists(), reason="no published results")
def test_every_published_unit_is_one_the_code_asks_for_and_the_full_profiles_are_published_whole(tmp_path):
    """The units the code builds now for the published profiles (the manifest's grids: full,
    and the side profiles beside it, by their grids and by their `publish.SIDE_PROFILES` steps,
    e.g. small_xi's sweep of EB Exploit's own setting) match every published unit by config
    hash, and every step of full_sparse (the thesis grid plus sparser tickets and controls) is
    published whole: splitting or moving code re-keys nothing (a unit's hash covers its class
    name and fields, not its module)."""
    from ebnb import publish

    held = published.Published(ROOT / "results")
    profiles = ["full"] + [name for name in held.manifest["grid"] if name in experiments.PROFILES]
    asked: dict[tuple[str, str], dict] = {}
    for env in ("cartpole", "acrobot"):
        for profile in profiles:
            if profile in publish.SIDE_PROFILES and not publish.SIDE_PROFILES[profile].runs_on(env):
                continue  # e.g. acrobot_scaled on CartPole: its grid has no config there
            steps = list(experiments.steps(env, experiments.PROFILES[profile]).values())
            if profile in publish.SIDE_PROFILES:
                steps += publish.SIDE_PROFILES[profile].steps(env, Store(tmp_path / "empty"), held) or []
            for step in steps:
                units = asked.setdefault((experiments.env_id(step.units[0]), step.name), {})
                for unit in step.units:  # a key once: powered's dense runs record fewer P than full's, same key
                    units.setdefault(config_hash(unit), unit)
        for name, step in experiments.steps(env, experiments.PROFILES["full_sparse"]).items():
            env_id = experiments.env_id(step.units[0])
            assert len(held.parts(env_id, name, step.units)) == len(step.units), (env_id, name)
    assert "full_sparse" in profiles
    for env_id, counts in held.manifest["units"].items():
        for name, count in counts.items():
            assert len(held.parts(env_id, name, asked[(env_id, name)].values())) == count, (env_id, name)


def imp_grid_at(fractions) -> experiments.Grid:
    """IMP rounds at `fractions` on two seeds; learning from transition 32, so that every
    round's network trains away from theta_0 and the rounds' masks differ from one-shot ones."""
    return experiments.grid(
        "quick",
        seeds=(0, 1),
        fractions=fractions,
        prune_episodes=(2,),
        episodes=8,
        test_episodes=2,
        dqn={"learning_starts": 32},
        imp=True,
        sparse_fractions=(),  # quick's 0.95 would add a round and a one-shot ticket there
    )


@pytest.fixture(scope="module")
def imp_grid():
    return imp_grid_at((0.5, 0.2, 0.8))  # rounds go by increasing P, whatever the grid's order


def test_imp_rounds_follow_the_grids_fractions_nest_their_masks_and_retrain_from_masked_theta0(tmp_path, imp_grid):
    """Issue 31's variant 7: round 1 is the one-shot winning ticket at the smallest P, bit for
    bit; round k's mask prunes round(P_k * N) weights, all of round k - 1's among them, drawn
    from round k - 1's final network; its start is a fresh agent (the dense run's seed) at
    m * theta_0, trained with early stopping, as a winning ticket is."""
    g, store = imp_grid, Store(tmp_path)
    imp = experiments.imp_tickets("cartpole", g, store)
    assert imp[["seed", "round", "P"]].values.tolist() == [
        [s, k, p] for s in (0, 1) for k, p in ((1, 0.2), (2, 0.5), (3, 0.8))
    ]
    winning = experiments.winning_tickets("cartpole", g, store)
    first = imp[imp["round"] == 1].drop(columns="round").reset_index(drop=True)
    pd.testing.assert_frame_equal(first, winning[winning.P == 0.2].reset_index(drop=True))
    one_shot = winning.set_index(["seed", "P"])["state_sha256"]
    assert all(row.state_sha256 != one_shot[(row.seed, row.P)] for row in imp[imp["round"] > 1].itertuples())
    cfg = experiments.run_config("cartpole", g)
    units = experiments.steps("cartpole", g)["imp tickets"].units
    finals = {u: experiments.states.state_from(store.load("imp_ticket", u)["final"], "final") for u in units}
    for unit, row in zip(units, imp.itertuples()):
        final = finals[unit]
        kept = np.concatenate([m.ravel() for m in final.mask])
        assert row.state_sha256 == experiments.state_sha256(final)
        assert (~kept).sum() == round(unit.fraction * kept.size)
        assert not np.concatenate([p.ravel() for p in final.params[::2]])[~kept].any()  # pruned weights are 0
        if unit.previous is None:
            continue
        before = finals[unit.previous]
        assert not (kept & ~np.concatenate([m.ravel() for m in before.mask])).any()  # nested
        start = fresh_agent(cfg, unit.dense.seed).pruned(experiments.states.mask_of(before, unit.fraction))
        trained = Population(cfg, [start], early_stop=True, max_episodes=g.episodes).run()
        assert experiments.state_sha256(trained.final[0]) == row.state_sha256
        assert trained.agents.loc[0, "episodes_run"] == row.length


def test_imp_rounds_are_named_by_their_rounds_and_computed_one_round_after_another(tmp_path, imp_grid):
    """A round's config names every P before it, so no two rounds share a key; only a grid with
    `imp` has them (profile imp: the full grid, sharing every other unit with it); the rounds a
    step reads are planned one at a time, earliest first, from what the store holds (published
    rounds hold no final state: they are trained again); a store holding the first rounds
    computes only the rest, and a complete one nothing."""
    full = experiments.PROFILES["full"]
    assert experiments.PROFILES["imp"] == experiments.grid("full", imp=True)
    assert "imp=" not in repr(full) and experiments.run_name("imp", experiments.PROFILES["imp"]) == "imp"
    for env in ("cartpole", "acrobot"):
        steps, thesis = experiments.steps(env, experiments.PROFILES["imp"]), experiments.steps(env, full)
        assert "imp tickets" not in thesis and set(steps) - set(thesis) == {"imp tickets"}
        assert all(steps[name].units == step.units for name, step in thesis.items())
        rounds = steps["imp tickets"].units
        assert [u.fractions for u in rounds[:4]] == [(0.2,), (0.2, 0.4), (0.2, 0.4, 0.6), (0.2, 0.4, 0.6, 0.8)]
        assert len({config_hash(u) for u in rounds}) == len(rounds) == 40
    step = experiments.steps("cartpole", imp_grid)["imp tickets"]
    store = Store(tmp_path)
    first = next(experiments.input_stages(store, step))
    assert first.name == "imp round 1" and [u.fractions for u in first.units] == [(0.2,), (0.2,)]
    experiments.dense_runs("cartpole", imp_grid, store)  # recording every P: the two-round grid's serve it
    experiments.imp_tickets("cartpole", imp_grid_at((0.2, 0.5)), store)
    assert next(experiments.input_stages(store, step), None) is None  # rounds 1 and 2 stored: round 3 reads them
    computed = store.computed
    table = experiments.imp_tickets("cartpole", imp_grid, store)
    assert store.computed == computed + 2 and len(table) == 6
    experiments.imp_tickets("cartpole", imp_grid, store)
    assert store.computed == computed + 2
    assert set(experiments.published_view("imp tickets", store.load("imp_ticket", step.units[0]))) == {"result"}
    with pytest.raises(ValueError, match="increasing"):
        experiments.IMPTicket(step.units[0].dense, (0.5, 0.2))


def test_imp_sparse_adds_a_round_at_a_sparse_p_and_the_one_shot_ticket_there(tmp_path):
    """Profile imp_sparse: imp's four rounds (the same keys), a fifth at P = 0.9 and the one-shot
    winning ticket at 0.9 (a round 1 there), which equals the winning ticket a grid with 0.9
    among its fractions draws, bit for bit; `analysis.one_shot_and_imp` tells the two apart."""
    for env in ("cartpole", "acrobot"):
        imp = experiments.steps(env, experiments.PROFILES["imp"])["imp tickets"].units
        sparse = experiments.steps(env, experiments.PROFILES["imp_sparse"])["imp tickets"].units
        assert {config_hash(u) for u in imp} < {config_hash(u) for u in sparse}
        assert sorted({u.fractions for u in sparse if u not in imp}) == [(0.2, 0.4, 0.6, 0.8, 0.9), (0.9,)]
        assert len(sparse) == 60
    g = dataclasses.replace(imp_grid_at((0.2, 0.5)), sparse_fractions=(0.8,))
    store = Store(tmp_path)
    table = experiments.imp_tickets("cartpole", g, store)
    assert table[["seed", "round", "P"]].values.tolist() == [
        [s, k, p] for s in (0, 1) for k, p in ((1, 0.2), (2, 0.5), (3, 0.8))
    ] + [[s, 1, 0.8] for s in (0, 1)]
    winning = experiments.winning_tickets("cartpole", imp_grid_at((0.2, 0.5, 0.8)), store)
    one_shot, chains = analysis.one_shot_and_imp(winning[winning.P < 0.8], table)
    drawn = winning[winning.P == 0.8].set_index("seed")
    assert one_shot[one_shot.P == 0.8].set_index("seed").state_sha256.equals(drawn.state_sha256)
    assert chains[["seed", "round", "P"]].values.tolist() == table[["seed", "round", "P"]].values.tolist()[:6]
