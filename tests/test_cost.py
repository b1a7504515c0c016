"""A ticket's whole cost (`ebnb.cost`): the formulas against the engine's own counters on a tiny
computed grid, where every column is recorded, and the published tables, where some are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ebnb import cost, experiments
from ebnb.config import dqn_config
from ebnb.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """CartPole, 2 seeds, 14 episodes, learning from transition 32: updates before and after
    every prune episode (4, 10)."""
    g = experiments.grid(
        "quick",
        seeds=(0, 1),
        fractions=(0.5,),
        prune_episodes=(4, 10),
        episodes=14,
        test_episodes=2,
        dqn={"learning_starts": 32},
    )
    store = Store(tmp_path_factory.mktemp("store"))
    tables = {
        name: getattr(experiments, name)("cartpole", g, store)
        for name in ("baseline", "training_curves", "retrain", "finetune")
    }
    return experiments.run_config("cartpole", g), tables


def test_updates_follow_from_env_steps_by_the_engines_rule():
    cfg = dqn_config("cartpole")  # learning_starts 200, train_freq 4
    assert cost.updates_at(cfg, [0, 199, 200, 203, 204, 1000]).tolist() == [0, 0, 1, 1, 2, 201]
    acrobot = dqn_config("acrobot")  # learning_starts 1000, train_freq 1
    assert cost.updates_at(acrobot, [999, 1000, 1500]).tolist() == [0, 1, 501]


def test_multiply_adds_of_a_forward_pass_and_an_update():
    cartpole, acrobot = dqn_config("cartpole"), dqn_config("acrobot")
    assert cost.forward_macs(cartpole) == 4 * 128 + 128 * 128 + 128 * 2
    assert cost.forward_macs(acrobot) == 6 * 128 + 128 * 3
    assert cost.update_macs(cartpole) == 32 * (4 * cost.forward_macs(cartpole) - 4 * 128)
    assert cost.update_macs(acrobot) == acrobot.batch_size * (4 * (6 * 128 + 128 * 3) - 6 * 128)


def test_the_cost_before_pruning_is_the_dense_runs_and_after_it_the_tickets_own_counters(tiny):
    """Finetune continues the dense run: its updates after pruning are the rule's count from the
    dense run's env steps at e to e + its own, which holds only if the dense steps at e (the
    summed episode lengths) are the dense agent's transition count. Retrain starts fresh."""
    cfg, t = tiny
    finetune = cost.ticket_costs(t["finetune"], t["training_curves"], cfg, "finetune")
    retrain = cost.ticket_costs(t["retrain"], t["training_curves"], cfg, "retrain")
    assert (finetune.counted == cost.RECORDED).all() and (retrain.counted == cost.RECORDED).all()
    assert (finetune.updates_before > 0).all() and (finetune.updates_after > 0).all()
    total = finetune.env_steps_before + finetune.env_steps_after
    assert (
        finetune.updates_after == cost.updates_at(cfg, total) - cost.updates_at(cfg, finetune.env_steps_before)
    ).all()
    assert (retrain.updates_after == cost.updates_at(cfg, retrain.env_steps_after)).all()
    assert (retrain.env_steps_before == finetune.env_steps_before).all(), "the same dense run to e"
    assert (finetune.episodes == finetune.prune_episode + t["finetune"].length).all()
    forward, update = cost.forward_macs(cfg), cost.update_macs(cfg)
    row = finetune.iloc[0]
    assert row.macs_before == row.env_steps_before * forward + row.updates_before * update
    assert row.macs_after == pytest.approx(0.5 * (row.env_steps_after * forward + row.updates_after * update))
    unpruned = cost.unpruned_costs(t["baseline"], t["training_curves"], cfg)
    assert (unpruned.episodes == t["baseline"].converged_episode).all() and (unpruned.macs_after == 0).all()
    summary = cost.cost_summary(finetune, unpruned)
    assert len(summary) == 2 and summary.env_steps_relative.notna().all()
    first = summary.iloc[0]
    assert first.env_steps_relative == pytest.approx(first.env_steps / unpruned.env_steps.mean())


def test_tickets_without_counters_count_episodes_only_after_pruning(tmp_path):
    """The published full profile's tickets carry their post-prune counters and count them.
    Tickets without them (computed before commit 01397f7) get NaN there, never an estimate, and
    each row says what is counted; the dense run's part is still counted."""
    g, published = experiments.grid("full"), experiments.published_results()
    store = Store(tmp_path)
    curves = experiments.training_curves("acrobot", g, store, published)
    recorded = experiments.finetune("acrobot", g, store, published)
    cfg = dqn_config("acrobot")
    counted = cost.ticket_costs(recorded, curves, cfg, "finetune")
    assert (counted.counted == cost.RECORDED).all() and counted.env_steps_after.notna().all()
    tickets = recorded.drop(columns=list(cost.POST_PRUNE_COLUMNS))
    costs = cost.ticket_costs(tickets, curves, cfg, "finetune")
    assert (costs.counted == cost.EPISODES_ONLY).all()
    assert costs.env_steps_after.isna().all() and costs.macs.isna().all() and costs.episodes.notna().all()
    lengths = curves[(curves.seed == 0) & (curves.episode <= 30)].length.sum()
    assert costs[(costs.seed == 0) & (costs.prune_episode == 30)].env_steps_before.iloc[0] == lengths
    eb = cost.eb_exploit_costs(experiments.eb_exploit("acrobot", g, store, published), curves, cfg)
    assert (eb.counted[eb.found] == cost.EPISODES_ONLY).all() and (eb.counted[~eb.found] == cost.RECORDED).all()
    assert eb.loc[~eb.found, "macs"].notna().all() and eb.loc[eb.found, "macs"].isna().all()
    with pytest.raises(ValueError, match="mode"):
        cost.ticket_costs(tickets, curves, cfg, "rewind")


def test_cost_lines_give_each_totals_range_and_say_what_is_not_recorded():
    summary = pd.DataFrame(
        {
            "P": [0.2, 0.2, 0.8],
            "episodes_relative": [1.1, 1.5, 2.0],
            "env_steps_relative": [1.2, 1.4, np.nan],
            "updates_relative": [1.3, 1.3, np.nan],
            "macs_relative": [0.9, 1.0, np.nan],
            "counted": [cost.RECORDED, cost.RECORDED, cost.EPISODES_ONLY],
        }
    )
    assert cost.cost_lines(summary) == [
        (
            f"P=0.2: x unpruned, episodes 1.10-1.50, env steps 1.20-1.40, updates 1.30, multiply-adds 0.90-1.00 "
            f"(counted: {cost.RECORDED})"
        ),
        (
            f"P=0.8: x unpruned, episodes 2.00, env steps not recorded after pruning, updates not recorded after pruning, "
            f"multiply-adds not recorded after pruning "
            f"(counted: {cost.EPISODES_ONLY})"
        ),
    ]
