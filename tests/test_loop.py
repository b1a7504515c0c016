"""The compiled loop (`ebnb.loop`) against the step-by-step Python path it replaces: the same
bits for both built-in envs, whatever Python has to see on the way (callbacks, stops, admitted
agents, checkpoints)."""

from __future__ import annotations

import io
import os

import numba
import numpy as np
import pytest
import torch

from ebnb import dynamics, envs, loop, masks
from ebnb import population as engine
from ebnb.agent import fresh_agent
from ebnb.config import ACROBOT, CARTPOLE
from ebnb.population import Population

pytestmark = pytest.mark.usefixtures("one_thread")
# Acrobot learns from transition 1,000 and its episodes last up to 500 steps: shorter runs here
ACROBOT_SHORT = ACROBOT.replace(learning_starts=300, buffer_size=600)


def _agents(cfg):
    """A dense agent, a 50%-pruned one, one resumed out of phase, and two more dense ones."""
    pruned = fresh_agent(cfg, 11)
    shapes = [(1, *w.shape) for w in pruned.params[0::2]]
    pruned = pruned.pruned([m[0].numpy() for m in masks.random_masks(shapes, 0.5, [11])])
    snapshot = {}

    def keep(population, ends):
        if 2 in ends.episodes:
            snapshot["state"] = population.snapshot(ends.agents[ends.episodes == 2])[0]

    Population(cfg, [fresh_agent(cfg, 12)], early_stop=False, max_episodes=2, callback=keep, compiled=False).run()
    return [fresh_agent(cfg, 10), pruned, snapshot["state"], fresh_agent(cfg, 13), fresh_agent(cfg, 14)]


def _both(cfg, agents, **kwargs):
    """The results of the step-by-step path and of the compiled loop, and how often `tick` ran
    in each."""
    results, ticks = [], []
    for compiled in (False, True):
        population = Population(cfg, agents, compiled=compiled, **kwargs)
        count = []
        results.append(population.run(tick=lambda p: count.append(1)))  # noqa: B023 (run calls it before the loop moves on)
        ticks.append(len(count))
    return results, ticks


def _assert_same(a, b):
    assert a.episodes.equals(b.episodes)
    assert a.agents.equals(b.agents)
    for x, y in zip(a.final, b.final, strict=True):
        x, y = x.to_arrays(), y.to_arrays()
        assert sorted(x) == sorted(y)
        for name in x:
            assert x[name].dtype == y[name].dtype and np.array_equal(x[name], y[name]), name


SETTINGS = [
    pytest.param(CARTPOLE, {}, id="cartpole"),  # epsilon per episode
    pytest.param(ACROBOT_SHORT, {}, id="acrobot"),  # epsilon per step
    pytest.param(
        CARTPOLE.replace(truncation_is_terminal=True, solved_return=20.0, solved_streak=3),
        {"early_stop": True},
        id="cartpole-truncation-is-terminal-early-stop",
    ),
    pytest.param(
        ACROBOT_SHORT.replace(truncation_is_terminal=True, solved_return=-500.0, solved_streak=2),
        {"early_stop": True},
        id="acrobot-truncation-is-terminal-early-stop",
    ),
]


@pytest.mark.parametrize("cfg, kwargs", SETTINGS)
def test_the_compiled_loop_gives_the_bits_of_the_python_path(cfg, kwargs):
    """Dense, pruned and out-of-phase agents, without a callback (the loop ends episodes
    itself: target copies, epsilon, streaks, logs) to their episode cap or early stop: the same
    log, summary and final states (networks, Adam, replay, counters) bit for bit, in far fewer
    Python round trips."""
    agents = _agents(cfg)
    kwargs = {"early_stop": False, "max_episodes": 4 if cfg.env_id == "Acrobot-v1" else 40, **kwargs}
    (python, compiled), (python_ticks, compiled_ticks) = _both(cfg, agents, **kwargs)
    _assert_same(python, compiled)
    if kwargs["early_stop"]:
        assert "early_stop" in set(python.agents.stop_reason)
    else:
        assert python.episodes["length"].sum() > 2000 and max(s.updates for s in python.final) > 100
    assert compiled_ticks < python_ticks / 20


@pytest.mark.parametrize("cfg", [CARTPOLE, ACROBOT_SHORT], ids=["cartpole", "acrobot"])
def test_with_a_callback_each_episode_end_is_seen_in_python_with_the_same_bits(cfg):
    """A callback that snapshots, prunes mid-run and stops agents at their episode ends sees
    the same states and gives the same results on both paths."""
    seen = {False: [], True: []}

    def callback(population, ends):
        for agent, episode in zip(ends.agents, ends.episodes):
            seen[population.compiled].append((int(agent), int(episode), population.snapshot([agent])[0].to_arrays()))
            if episode == 2 and agent in (0, 3):
                population.set_mask([agent], masks.global_magnitude_masks(population.weights([agent]), 0.3))
            if episode == 3 and agent == 4:
                population.stop([agent])

    results = [
        Population(cfg, _agents(cfg), early_stop=False, max_episodes=4, callback=callback, compiled=compiled).run()
        for compiled in (False, True)
    ]
    _assert_same(*results)
    assert results[1].agents.stop_reason[4] == "callback"
    assert len(seen[True]) == len(seen[False]) > 10
    for (a, e, x), (b, f, y) in zip(sorted(seen[False], key=lambda r: r[:2]), sorted(seen[True], key=lambda r: r[:2])):
        assert (a, e) == (b, f) and all(np.array_equal(x[name], y[name]) for name in x), (a, e)


def test_a_callback_may_act_only_on_the_agents_that_ended_an_episode():
    """Other agents may be anywhere in their episodes (each runs on its own up to its events):
    acting on them would depend on the batch. (In the compiled loop every agent usually ends
    an episode in each call with a callback; in the step-by-step path few do, so it checks.)"""

    def meddle(population, ends):
        others = [a for a in population.ids if a not in ends.agents]
        population.weights(others)

    population = Population(
        CARTPOLE, [fresh_agent(CARTPOLE, s) for s in range(3)], callback=meddle, max_episodes=3, compiled=False
    )
    with pytest.raises(ValueError, match="agents: a callback may act only on the agents in its EpisodeEnds"):
        population.run()


@pytest.mark.parametrize("cfg", [CARTPOLE, ACROBOT_SHORT], ids=["cartpole", "acrobot"])
def test_a_population_checkpointed_between_calls_resumes_bitwise(cfg, monkeypatch):
    """state_dict between two compiled calls (short ones here), pickled as a checkpoint is,
    then restored and run to the end: the results of the uninterrupted run; agents admitted by
    `tick` as they leave (continuous batching) too."""
    monkeypatch.setattr(engine, "CALL_STEPS", 150)
    episodes = 3 if cfg.env_id == "Acrobot-v1" else 15
    waiting = {False: [], True: []}

    def make(compiled):
        waiting[compiled] = [fresh_agent(cfg, s) for s in (20, 21)]
        return Population(cfg, _agents(cfg)[:3], early_stop=False, max_episodes=episodes, compiled=compiled)

    def refill(p):
        if p.live < 3 and waiting[p.compiled]:
            p.admit([waiting[p.compiled].pop(0)])

    uninterrupted = make(True).run(tick=refill)
    _assert_same(make(False).run(tick=refill), uninterrupted)
    population, calls = make(True), 0
    while calls < 4:
        population._advance(population._loop_threads())
        refill(population)
        calls += 1
    assert population.live == 3 and population.updates.max() > 0
    buffer = io.BytesIO()
    torch.save({"population": population.state_dict(), "waiting": waiting[True]}, buffer)
    saved = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    waiting[True] = saved["waiting"]
    resumed = Population.restore(saved["population"]).run(tick=refill)
    assert len(resumed.final) == 5
    _assert_same(uninterrupted, resumed)


def test_an_agent_whose_log_fills_ends_its_call(monkeypatch):
    """CartPole's first episodes are short: a lone agent fills its LOG_ROWS rows in one call,
    and the next call goes on from there."""
    monkeypatch.setattr(loop, "LOG_ROWS", 3)
    (python, compiled), (_, compiled_ticks) = _both(
        CARTPOLE, [fresh_agent(CARTPOLE, 5)], early_stop=False, max_episodes=12
    )
    _assert_same(python, compiled)
    assert compiled_ticks >= 4


def test_the_compiled_envs_step_as_the_vector_envs():
    """`dynamics.transition`, `restart` and `observe`, sub-env by sub-env, give the vector envs'
    rewards, flags, observations (final and first) and states bit for bit, from wide random
    states (angles that wrap, velocities at their bounds, poles that fall)."""
    gen = np.random.default_rng(0)
    for name, kind in (("cartpole", dynamics.CARTPOLE_KIND), ("acrobot", dynamics.ACROBOT_KIND)):
        n = 64
        vec = envs.make(name, n, list(range(n)))
        vec.reset()
        high = (
            np.array([2.0, 2.0, 0.2, 2.0])
            if kind == dynamics.CARTPOLE_KIND
            else np.array([np.pi, np.pi, 4 * np.pi, 9 * np.pi])
        )
        vec.state = gen.uniform(-high, high, size=(n, 4)).T.copy()
        state, steps, episodes = vec.state.copy(), vec.steps.copy(), vec.episodes.copy()
        row, ends = np.empty(vec.single_observation_space.shape[0], np.float32), 0
        for _ in range(520):  # past Acrobot's time limit
            actions = gen.integers(0, vec.single_action_space.n, n)
            obs, reward, terminated, truncated, info = vec.step(actions)
            for i in range(n):
                assert dynamics.transition(kind, state, steps, i, int(actions[i])) == (
                    reward[i],
                    terminated[i],
                    truncated[i],
                )
                dynamics.observe(kind, state, i, row)
                assert np.array_equal(row, info["final_obs"][i])
                if terminated[i] or truncated[i]:
                    episodes[i] += 1
                    ends += 1
                    dynamics.restart(kind, state, steps, i, int(vec.seeds[i]), int(episodes[i]))
                    dynamics.observe(kind, state, i, row)
                assert np.array_equal(row, obs[i])
            assert np.array_equal(state, vec.state) and np.array_equal(steps, vec.steps)
        assert ends >= n


def test_the_step_by_step_path_stays_for_other_envs_and_the_torch_arithmetic():
    assert Population(CARTPOLE, [fresh_agent(CARTPOLE, 0)])._compiles()
    assert not Population(CARTPOLE, [fresh_agent(CARTPOLE, 0)], compiled=False)._compiles()
    assert not Population(CARTPOLE.replace(arithmetic="torch"), [fresh_agent(CARTPOLE, 0)])._compiles()
    other = CARTPOLE.replace(env_id="CartPole-v1")
    assert not Population(other, [fresh_agent(other, 0)])._compiles()
    assert set(engine._COMPILED_ENVS) == {envs.CartPoleV0VectorEnv, envs.AcrobotVectorEnv}


def test_a_compiled_run_keeps_torch_on_one_thread_and_its_loop_on_the_cpus_it_may_use(monkeypatch):
    """Between compiled calls torch runs on one thread (its OpenMP team would wait for a
    partner that another process holds off the CPU), the loop on as many threads as torch
    had, at most the CPUs this process may run on; torch gets its threads back afterwards."""
    torch.set_num_threads(2)
    seen = []
    callback = lambda population, ends: seen.append(torch.get_num_threads())
    Population(
        CARTPOLE, [fresh_agent(CARTPOLE, s) for s in (0, 1)], early_stop=False, max_episodes=2, callback=callback
    ).run()
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2
    assert Population._loop_threads() == min(2, numba.config.NUMBA_NUM_THREADS, len(os.sched_getaffinity(0)))
    monkeypatch.setattr(engine.os, "sched_getaffinity", lambda pid: {0})
    assert Population._loop_threads() == 1
    seen.clear()
    Population(
        CARTPOLE, [fresh_agent(CARTPOLE, 0)], early_stop=False, max_episodes=1, callback=callback, compiled=False
    ).run()
    assert set(seen) == {2}, "the step-by-step path keeps torch's threads"
