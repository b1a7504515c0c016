"""Controls of a ticket (`ebnb.controls`): each changes exactly one thing about the L1 ticket,
from the agent's own stream, and the stored control results are agents trained from them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ebnb import analysis, controls, experiments
from ebnb.agent import fresh_agent
from ebnb.config import dqn_config
from ebnb.population import Population
from ebnb.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def ticket():
    """A CartPole agent and the L1 mask (P = 0.6) of a perturbed copy of its weights."""
    cfg = dqn_config("cartpole")
    agent = fresh_agent(cfg, 3)
    perturbed = agent.replace(
        params=[p + np.random.default_rng(0).normal(0, 0.05, p.shape).astype(p.dtype) for p in agent.params]
    )
    return agent, experiments.states.mask_of(perturbed, 0.6)


def kept_weights(state):
    return [state.params[2 * layer][keep] for layer, keep in enumerate(state.mask)]


def test_a_random_mask_prunes_as_many_weights_elsewhere(ticket):
    agent, l1 = ticket
    start = controls.control_start("random_mask", agent, l1, 0.6, 30)
    assert [m.shape for m in start.mask] == [m.shape for m in l1]
    assert sum(int((~m).sum()) for m in start.mask) == sum(int((~m).sum()) for m in l1)
    assert np.mean(np.concatenate([(a != b).ravel() for a, b in zip(start.mask, l1)])) > 0.3
    layer_sparsity = [float((~m).mean()) for m in start.mask]
    assert max(layer_sparsity) - min(layer_sparsity) < 0.05, "uniform positions: every layer about P"


def test_a_layer_shuffled_mask_keeps_each_layers_sparsity_not_its_positions(ticket):
    agent, l1 = ticket
    start = controls.control_start("layer_shuffled", agent, l1, 0.6, 30)
    for shuffled, original in zip(start.mask, l1):
        assert shuffled.shape == original.shape and shuffled.sum() == original.sum()
        assert (shuffled != original).mean() > 0.2


def test_reinit_applies_the_l1_mask_to_weights_from_another_seed(ticket):
    agent, l1 = ticket
    start = controls.control_start("reinit", agent, l1, 0.6, 30)
    assert all(np.array_equal(a, b) for a, b in zip(start.mask, l1))
    assert start.seed == agent.seed, "the agent's random streams stay its own"
    for new, old in zip(start.params, agent.params):
        assert new.shape == old.shape and new.dtype == old.dtype and not np.array_equal(new, old)
    assert all(np.array_equal(p, t) for p, t in zip(start.params, start.target))
    bound = 1 / np.sqrt(agent.params[0].shape[1])
    assert np.abs(start.params[1]).max() <= bound, "drawn like nn.Linear"


def test_permuted_weights_shuffle_the_surviving_values_within_each_layer(ticket):
    agent, l1 = ticket
    start = controls.control_start("permuted_weights", agent, l1, 0.6, 30)
    ticket_start = agent.pruned(l1)
    assert all(np.array_equal(a, b) for a, b in zip(start.mask, l1))
    for permuted, original in zip(kept_weights(start), kept_weights(ticket_start)):
        assert np.array_equal(np.sort(permuted), np.sort(original)) and not np.array_equal(permuted, original)
    for layer, keep in enumerate(l1):
        assert not start.params[2 * layer][~keep].any() and not start.target[2 * layer][~keep].any()
        assert np.array_equal(start.params[2 * layer + 1], agent.params[2 * layer + 1]), "biases unchanged"
    assert all(np.array_equal(p, t) for p, t in zip(start.params, start.target))


@pytest.mark.parametrize("control", list(controls.CONTROLS))
def test_a_control_is_a_function_of_its_agent_p_and_episode(ticket, control):
    agent, l1 = ticket

    def state(seed=3, fraction=0.6, episode=30):
        start = controls.control_start(control, agent.replace(seed=seed), l1, fraction, episode)
        return start.params + start.mask

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b))

    assert same(state(), state())
    assert not same(state(), state(seed=4)) and not same(state(), state(episode=100))
    assert not same(state(), state(fraction=0.95))


def test_bad_controls_are_refused_naming_the_parameter():
    with pytest.raises(ValueError, match="controls: unknown 'shuffle'; allowed: random_mask"):
        experiments.grid("quick", controls=["shuffle"])
    with pytest.raises(ValueError, match="reinit.*applies to retrain tickets, not finetune"):
        controls.check_control("reinit", "finetune")
    with pytest.raises(ValueError, match=r"control_episodes: each must be one of prune_episodes \[2, 6\], got 4"):
        experiments.grid("quick", control_episodes=[4])
    with pytest.raises(ValueError, match=r"sparse_fractions: 0.8 is already in fractions"):
        experiments.grid("quick", sparse_fractions=[0.8])


def test_the_full_profile_runs_every_control_on_the_named_subset():
    assert experiments.PROFILES["full"].sparse_fractions == ()
    g = experiments.PROFILES["full_sparse"]
    assert g.control_episodes == (5, 30, 100, 250) and g.sparse_fractions == (0.9, 0.95, 0.98)
    assert g == dataclasses.replace(experiments.PROFILES["full"], sparse_fractions=g.sparse_fractions)
    steps = experiments.steps("acrobot", g)
    per_ticket = len(g.seeds) * (len(g.fractions) + len(g.sparse_fractions)) * len(g.control_episodes)
    assert len(steps["retrain controls"].units) == 4 * per_ticket
    assert len(steps["finetune controls"].units) == 2 * per_ticket
    assert len(steps["sparse retrain"].units) == len(steps["sparse finetune"].units) == 3 * 10 * 4
    no_extras = experiments.grid("full_sparse", sparse_fractions=[], controls=[])
    assert not {"sparse retrain", "retrain controls"} & set(experiments.steps("acrobot", no_extras))


def test_stored_controls_are_agents_trained_from_the_control_start(tmp_path):
    """Each stored control (computed together in one population) hashes like an agent trained
    alone here from `controls.control_start` of the ticket's own start and L1 mask."""
    g = experiments.grid(
        "quick",
        seeds=(0,),
        fractions=(0.5,),
        prune_episodes=(4,),
        episodes=8,
        test_episodes=1,
        control_episodes=(4,),
        sparse_fractions=(),
        dqn={"learning_starts": 64},
    )
    store = Store(tmp_path)
    cfg = experiments.run_config("cartpole", g)
    assert cfg.learning_starts == 64
    table = experiments.controlled_tickets("cartpole", g, store)
    assert sorted(map(tuple, table[["mode", "control"]].to_numpy())) == sorted(
        [("retrain", "l1"), ("finetune", "l1")] + [(m, c) for c, modes in controls.CONTROLS.items() for m in modes]
    )
    snapshots = store.load("dense", experiments.dense_units("cartpole", g)[0])["snapshots"]
    at_4 = experiments.states.state_from(snapshots, "e4")
    mask = experiments.states.mask_of(at_4, 0.5)
    for row in table[table.control != "l1"].itertuples():
        start = at_4 if row.mode == "finetune" else fresh_agent(cfg, 0)
        trained = Population(
            cfg, [controls.control_start(row.control, start, mask, 0.5, 4)], early_stop=True, max_episodes=g.episodes
        ).run()
        assert row.state_sha256 == experiments.state_sha256(trained.final[0]), (row.mode, row.control)
        assert row.length == trained.agents.loc[0, "episodes_run"]


def test_the_ticket_beats_a_control_only_where_the_seeds_show_it():
    rows = []
    for seed in range(8):
        for control, (ret, length) in {"l1": (100.0, 50), "random_mask": (20.0, 200), "reinit": (100.0, 50)}.items():
            rows.append(
                {
                    "mode": "retrain",
                    "control": control,
                    "seed": seed,
                    "P": 0.8,
                    "prune_episode": 5,
                    "test_return": ret + seed,
                    "length": length + seed,
                }
            )
    versus = analysis.ticket_vs_controls(pd.DataFrame(rows)).set_index("control")
    assert versus.loc["random_mask", "beats_return"] and versus.loc["random_mask", "beats_length"]
    assert not versus.loc["reinit", "beats_return"] and not versus.loc["reinit", "beats_length"]
    lines = analysis.control_findings(versus.reset_index())
    assert "retrain, vs random_mask: higher return in 1, shorter training in 1 of 1 (P, episode) cells" in lines
    assert "retrain, vs reinit: higher return in 0, shorter training in 0 of 1 (P, episode) cells" in lines
    assert "  P=0.8: higher return at e = none; shorter training at e = none" in lines
