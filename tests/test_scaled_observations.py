"""Observations scaled by the env's bounds (`DQNConfig.scaled_observations`, profile
`acrobot_scaled`, issue 31's variant 6): what the agent sees is the env's observation divided by
its bound, on every path (vector env, compiled loop, greedy test episodes, reference); units
trained without it keep their identity; an env without finite bounds is refused. The compiled
loop against the Python path, bitwise: tests/test_loop.py; the reference and batch invariance:
tests/test_population.py."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

from ebnb import envs, evaluate, experiments
from ebnb.agent import fresh_agent
from ebnb.config import ACROBOT, CARTPOLE, dqn_config
from ebnb.identity import config_hash, identity_json
from ebnb.population import Population

SCALED = ACROBOT.replace(scaled_observations=True)


def test_acrobots_bounds_are_its_observation_spaces():
    bounds = envs.observation_bounds("acrobot")
    assert bounds.dtype == np.float32
    assert bounds.tolist() == np.array([1, 1, 1, 1, 4 * np.pi, 9 * np.pi], np.float32).tolist()
    import gymnasium

    space = gymnasium.make("Acrobot-v1").observation_space
    assert np.array_equal(bounds, np.maximum(np.abs(space.low), np.abs(space.high)))


def test_the_vector_env_divides_every_observation_by_the_bounds_bitwise():
    """Reset, step and final observations: the raw env's, divided in float32 (inside [-1, 1])."""
    raw, scaled = (envs.make("acrobot", 8, list(range(8)), scaled=flag) for flag in (False, True))
    bounds = envs.observation_bounds("acrobot")
    a, b = raw.reset()[0], scaled.reset()[0]
    assert b.dtype == np.float32 and np.array_equal(b, a / bounds)
    gen = np.random.default_rng(1)
    for _ in range(600):  # past the time limit: autoresets
        actions = gen.integers(0, 3, 8)
        (a, *_, info_a), (b, *_, info_b) = raw.step(actions), scaled.step(actions)
        assert np.array_equal(b, a / bounds) and np.array_equal(info_b["final_obs"], info_a["final_obs"] / bounds)
        assert np.abs(b).max() <= 1.0
    assert not np.array_equal(a, b)


def test_the_agent_acts_and_stores_what_the_scaled_env_shows():
    """While both explore (the same coins and random actions), the scaled agent's replay holds
    the unscaled agent's observations divided by the bounds, bit for bit, on the compiled loop
    and on the step-by-step path (and the two paths agree)."""
    bounds = envs.observation_bounds("acrobot")
    runs = {}
    for cfg in (ACROBOT, SCALED):
        for compiled in (True, False):
            population = Population(cfg, [fresh_agent(cfg, 4)], early_stop=False, max_episodes=1, compiled=compiled)
            result = population.run()
            runs[cfg.scaled_observations, compiled] = result.final[0].replay
    for compiled in (True, False):
        raw, scaled = runs[False, compiled], runs[True, compiled]
        same = np.flatnonzero(raw["action"] != scaled["action"])
        first = same[0] if same.size else len(raw["action"])
        assert first > 5
        assert np.array_equal(scaled["obs"][:first], raw["obs"][:first] / bounds)
        assert np.array_equal(scaled["next_obs"][:first], raw["next_obs"][:first] / bounds)
    for name in runs[True, True]:
        assert np.array_equal(runs[True, True][name], runs[True, False][name]), name


def test_greedy_test_episodes_see_scaled_observations(monkeypatch):
    made = []
    make = envs.make

    def recording(*args, **kwargs):
        made.append(kwargs.get("scaled"))
        return make(*args, **kwargs)

    monkeypatch.setattr(evaluate.envs, "make", recording)
    params = [fresh_agent(SCALED, 0).params]
    scaled = evaluate.greedy_returns(SCALED, params, [0], episodes=2)
    raw = evaluate.greedy_returns(ACROBOT, params, [0], episodes=2)
    assert made == [True, False] and scaled.shape == raw.shape == (1, 2)


def test_units_without_it_keep_their_identity():
    """The field at its default is left out of the identity: every unit stored before it existed
    keeps its key, the published ones included; with it, every unit is another."""
    for cfg in (CARTPOLE, ACROBOT):
        assert "scaled_observations" not in identity_json(cfg)
        assert config_hash(cfg.replace(scaled_observations=False)) == config_hash(cfg)
    assert config_hash(SCALED) != config_hash(ACROBOT) and '"scaled_observations":true' in identity_json(SCALED)
    full, scaled = experiments.grid("full"), experiments.grid("acrobot_scaled")
    assert experiments.run_config("acrobot", scaled) == experiments.run_config("acrobot", full).replace(
        scaled_observations=True
    )
    assert experiments.grid("acrobot_scaled", dqn={"scaled_observations": False}) == full


def test_an_env_without_finite_bounds_is_refused_naming_the_field():
    with pytest.raises(ValueError, match=r"scaled_observations: CartPole-v0's observation bounds are not all finite"):
        CARTPOLE.replace(scaled_observations=True)
    with pytest.raises(ValueError, match="scaled_observations"):
        envs.make("cartpole", 1, 0, scaled=True)
    with pytest.raises(ValueError, match="scaled_observations"):
        experiments.run_config("cartpole", experiments.grid("acrobot_scaled"))
    with pytest.raises(ValueError, match="scaled_observations must be True or False"):
        dqn_config("acrobot", scaled_observations="yes")


def test_the_acrobot_scaled_profile_is_notebooks_01_to_03_on_acrobot_only():
    """Its steps train every unit with scaled observations, none a full-profile unit; none on
    CartPole, where publishing expects no executed notebooks either."""
    from ebnb.side_profiles import SIDE_PROFILES

    side = SIDE_PROFILES["acrobot_scaled"]
    assert side.notebooks == ("01_mask_similarity", "02_retrain", "03_finetune")
    assert side.runs_on("Acrobot-v1") and not side.runs_on("cartpole") and side.steps("cartpole", None, None) == []
    assert experiments.run_name("acrobot_scaled", experiments.PROFILES["acrobot_scaled"]) == "acrobot_scaled"
    steps = side.steps("acrobot", None, None)
    assert [s.name for s in steps] == ["dense runs", "retrain", "winning tickets", "finetune"]
    thesis = experiments.steps("acrobot", experiments.grid("full"))
    for step in steps:
        ours, theirs = set(step.units), set(thesis[step.name].units)
        assert len(ours) == len(theirs) and not ours & theirs
        dense = {getattr(u, "dense", getattr(u, "ticket", u)) for u in step.units}
        assert {getattr(d, "dqn", None) or d.dense.dqn for d in dense} == {SCALED}


def test_notebooks_compare_the_readings_only_at_their_own_grids_and_on_acrobot(tmp_path):
    """`replication.readings`: nothing at another grid or on CartPole, nothing unless held."""
    from ebnb import replication
    from ebnb.store import Store

    store, names = Store(tmp_path / "store"), ("dense runs",)
    for env, profile in (("acrobot", "quick"), ("cartpole", "full"), ("cartpole", "acrobot_scaled")):
        g = experiments.PROFILES[profile]
        assert replication.readings(env, profile, g, "acrobot_scaled", store, None, names) is None
    full = experiments.PROFILES["full"]
    assert replication.readings("acrobot", "full", full, "acrobot_scaled", store, None, names) is None  # not held
    held = [full, experiments.PROFILES["acrobot_scaled"]]

    with mock.patch.object(experiments, "held", lambda env, profile, *a: experiments.PROFILES[profile]):
        for profile in ("full", "acrobot_scaled"):
            pair = replication.readings(
                "acrobot", profile, experiments.PROFILES[profile], "acrobot_scaled", store, None, names
            )
            assert list(pair) == held


def test_input_cuts_are_one_minus_the_kept_share_per_reading():
    import pandas as pd

    from ebnb import replication

    survival = pd.DataFrame(
        {
            "seed": [0, 1, 2, 0, 1, 2],
            "P": 0.2,
            "episode": [20, 20, 20, 40, 40, 40],
            "feature": "θ1 velocity",
            "kept": [0.5, 0.6, 0.7, 1.0, 1.0, 1.0],
        }
    )
    cuts = replication.input_cuts({"main": survival, "scaled": survival.assign(kept=1.0)}, (20,))
    assert cuts.reading.tolist() == ["main", "scaled"] and cuts.episode.tolist() == [20, 20]
    assert np.allclose(cuts.pruned, [0.4, 0.0]) and cuts.low[0] < 0.4 < cuts.high[0] and cuts.seeds.tolist() == [3, 3]
    assert replication.first_cut_lines(cuts)[0] == "main, P=0.2, episode 20: θ1 velocity 0.40"
