"""Tests for ebnb.envs: gymnasium equivalence, the SAME_STEP contract, batch invariance."""

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.vector import AutoresetMode

from ebnb import envs, rng
from ebnb.rng import Stream

pytestmark = pytest.mark.filterwarnings("ignore:.*CartPole-v0 is out of date")

VECTORIZED = ["CartPole-v0", "Acrobot-v1"]
FALLBACK = ["MountainCar-v0", "CartPole-v1"]


def _gym_start(ref, env_id, seed, episode):
    """Start a single gymnasium env (TimeLimit included) at our episode; its first observation."""
    if env_id not in VECTORIZED:
        return ref.reset(seed=int(rng.seed32(seed, Stream.RESET, episode)))[0]
    ref.reset()
    ref.unwrapped.state = envs.reset_state(env_id, seed, episode)
    if env_id == "Acrobot-v1":
        return ref.unwrapped._get_ob()
    return np.array(ref.unwrapped.state, dtype=np.float32)


def _actions(env_id, obs, gen, long):
    """Actions for a batch; rows flagged `long` tend to reach the time limit, others to terminate."""
    random = gen.integers(0, 3 if env_id == "Acrobot-v1" else 2, len(obs))
    if env_id == "CartPole-v0":  # a balancing controller survives the 200 steps
        balance = obs[:, 2] + 0.5 * obs[:, 3] + 0.01 * obs[:, 0] + 0.1 * obs[:, 1] > 0
        return np.where(long, balance.astype(np.int64), random)
    if env_id == "Acrobot-v1":  # pumping energy with the second joint swings the tip up
        pump = np.where(obs[:, 5] > 0, 2, 0)
        return np.where(long | (gen.random(len(obs)) < 0.1), random, pump)
    return random


@pytest.mark.parametrize(
    "env_id, num_steps, expected_ends",
    [
        ("CartPole-v0", 1000, {"terminated", "truncated"}),
        ("Acrobot-v1", 1200, {"terminated", "truncated"}),
        ("MountainCar-v0", 450, {"truncated"}),
        ("CartPole-v1", 300, {"terminated"}),
    ],
)
def test_matches_single_gymnasium_envs(env_id, num_steps, expected_ends):
    seeds = [11, 12, 13, 14]
    long = np.array([True, False, True, False])
    vec = envs.make(env_id, len(seeds), seeds)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    refs = [gymnasium.make(env_id) for _ in seeds]
    limit = refs[0].spec.max_episode_steps
    obs, _ = vec.reset()
    ref_obs = np.stack([_gym_start(ref, env_id, s, 0) for ref, s in zip(refs, seeds)])
    np.testing.assert_array_equal(obs, ref_obs)

    gen = np.random.default_rng(0)
    episodes, lengths, ends = np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64), []
    ours = {"obs": [], "last": [], "step": [], "state": []}
    theirs = {key: [] for key in ours}
    for _ in range(num_steps):
        actions = _actions(env_id, obs, gen, long)
        obs, reward, terminated, truncated, info = vec.step(actions)
        assert info["final_obs"].dtype == np.float32 and obs.dtype == np.float32
        lengths += 1
        for i, ref in enumerate(refs):
            r_obs, r_reward, r_terminated, r_truncated, _ = ref.step(int(actions[i]))
            ours["step"].append((reward[i], terminated[i], truncated[i], info["_final_obs"][i]))
            theirs["step"].append((r_reward, r_terminated, r_truncated, r_terminated or r_truncated))
            if r_terminated or r_truncated:
                ours["last"].append(info["final_obs"][i])
                theirs["last"].append(r_obs)
                ends.append((lengths[i], "terminated" if r_terminated else "truncated"))
                episodes[i] += 1
                lengths[i] = 0
                r_obs = _gym_start(ref, env_id, seeds[i], episodes[i])
                np.testing.assert_array_equal(obs[i], r_obs)  # the next episode's first obs
            ours["obs"].append(obs[i])
            theirs["obs"].append(r_obs)
            if env_id in VECTORIZED:
                ours["state"].append(vec.state[:, i].copy())
                theirs["state"].append(np.asarray(ref.unwrapped.state, dtype=np.float64))
        np.testing.assert_array_equal(vec.episodes, episodes)

    np.testing.assert_array_equal(np.array(ours["step"]), np.array(theirs["step"]))
    for key, atol in [("obs", 1e-6), ("last", 1e-6), ("state", 1e-9)]:
        np.testing.assert_allclose(np.array(ours[key]), np.array(theirs[key]), rtol=0, atol=atol, err_msg=key)
    assert {kind for _, kind in ends} == expected_ends
    assert all(length == limit for length, kind in ends if kind == "truncated")
    assert all(length < limit for length, kind in ends if kind == "terminated")


def test_acrobot_constants_and_spaces_match_gymnasium():
    names = ["dt", "LINK_LENGTH_1", "LINK_MASS_1", "LINK_MASS_2", "LINK_COM_POS_1"]
    names += ["LINK_COM_POS_2", "LINK_MOI", "MAX_VEL_1", "MAX_VEL_2"]
    for name in names:
        assert getattr(envs.AcrobotVectorEnv, name) == getattr(AcrobotEnv, name), name
    np.testing.assert_array_equal(envs.AcrobotVectorEnv.AVAIL_TORQUE, AcrobotEnv.AVAIL_TORQUE)
    assert AcrobotEnv.torque_noise_max == 0.0 and AcrobotEnv.book_or_nips == "book"
    for env_id in VECTORIZED:
        vec, single = envs.make(env_id, 3, 0), gymnasium.make(env_id)
        assert vec.single_observation_space == single.observation_space
        assert vec.single_action_space == single.action_space
        assert vec.observation_space.shape == (3, single.observation_space.shape[0])
        assert vec.action_space.shape == (3,)


def test_acrobot_one_step_from_random_states():
    """Wide random states, so that angles wrap and velocities hit their bounds."""
    n = 300
    gen = np.random.default_rng(1)
    high = np.array([np.pi, np.pi, AcrobotEnv.MAX_VEL_1, AcrobotEnv.MAX_VEL_2])
    states = gen.uniform(-high, high, size=(n, 4))
    actions = gen.integers(0, 3, n)
    vec = envs.make("acrobot", n, seed=0)
    vec.reset()
    vec.state = states.T.copy()
    obs, reward, terminated, truncated, info = vec.step(actions)
    last = np.where(info["_final_obs"][:, None], info["final_obs"], obs)

    ref = AcrobotEnv()
    ref_states, ref_steps = [], []
    for state, action in zip(states, actions):
        ref.state = state.copy()
        r_obs, r_reward, r_terminated, _, _ = ref.step(int(action))
        ref_states.append(ref.state)
        ref_steps.append((r_obs, r_reward, r_terminated))
    ref_obs, ref_reward, ref_terminated = (np.array(x) for x in zip(*ref_steps))
    ref_states = np.array(ref_states)

    np.testing.assert_allclose(last, ref_obs, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(reward, ref_reward)
    np.testing.assert_array_equal(terminated, ref_terminated)
    assert not truncated.any() and 0 < terminated.sum() < n
    np.testing.assert_allclose(vec.state.T[~terminated], ref_states[~terminated], rtol=0, atol=1e-9)
    assert np.any(np.abs(ref_states[:, 3]) == AcrobotEnv.MAX_VEL_2)  # a bound was active
    assert np.any(np.abs(states[:, :2] + 0.2 * states[:, 2:]) > np.pi)  # an angle wrapped


@pytest.mark.parametrize("name, num_steps", [("cartpole", 300), ("acrobot", 600), ("MountainCar-v0", 250)])
def test_batch_invariance(name, num_steps):
    alone = envs.make(name, 1, seed=3)
    seeds = list(range(100, 116))
    seeds[9] = 3
    batch = envs.make(name, 16, seed=seeds)
    gen = np.random.default_rng(2)
    obs_alone, _ = alone.reset()
    obs_batch, _ = batch.reset()
    for _ in range(num_steps):
        np.testing.assert_array_equal(obs_batch[9], obs_alone[0])
        actions = gen.integers(0, batch.single_action_space.n, 16)
        *out_alone, info_alone = alone.step(actions[9:10])
        *out_batch, info_batch = batch.step(actions)
        obs_alone, obs_batch = out_alone[0], out_batch[0]
        for a, b in zip(out_alone[1:], out_batch[1:]):
            assert a[0] == b[9]
        if info_alone["_final_obs"][0]:
            np.testing.assert_array_equal(info_alone["final_obs"][0], info_batch["final_obs"][9])
    assert alone.episodes[0] == batch.episodes[9] >= 1


@pytest.mark.parametrize("name", ["CartPole-v0", "Acrobot-v1", "MountainCar-v0"])
def test_select_keeps_trajectories(name):
    seeds = list(range(20, 28))
    full, part = envs.make(name, 8, seeds), envs.make(name, 8, seeds)
    obs_full, _ = full.reset()
    obs_part, _ = part.reset()
    gen = np.random.default_rng(3)
    kept = np.arange(8)
    for t in range(260):
        if t in (40, 150):
            chosen = [6, 1, 3] if t == 40 else [2, 0]
            part.select(chosen)
            kept = kept[chosen]
            n = len(chosen)
            assert part.num_envs == n and part.action_space.shape == (n,)
            assert part.observation_space.shape == (n, part.single_observation_space.shape[0])
            np.testing.assert_array_equal(part.seeds, np.array(seeds)[kept])
        actions = _actions(name, obs_full, gen, long=np.zeros(8, dtype=bool))
        obs_full, *flags_full, info_full = full.step(actions)
        obs_part, *flags_part, info_part = part.step(actions[kept])
        np.testing.assert_array_equal(obs_part, obs_full[kept])
        for a, b in zip(flags_part, flags_full):
            np.testing.assert_array_equal(a, b[kept])
        mask = info_part["_final_obs"]
        np.testing.assert_array_equal(mask, info_full["_final_obs"][kept])
        last_full = info_full["final_obs"][kept]
        np.testing.assert_array_equal(info_part["final_obs"][mask], last_full[mask])
    np.testing.assert_array_equal(part.episodes, full.episodes[kept])
    assert part.episodes.min() >= 1


@pytest.mark.parametrize("name", ["CartPole-v0", "Acrobot-v1", "CartPole-v1"])
def test_start_episodes(name):
    resumed = envs.make(name, 2, seed=[3, 4], start_episodes=[5, 0])
    obs_resumed, _ = resumed.reset()
    np.testing.assert_array_equal(resumed.reset()[0], obs_resumed)  # reset() does not advance
    fresh = envs.make(name, 1, seed=3)
    obs, _ = fresh.reset()
    gen = np.random.default_rng(4)
    while fresh.episodes[0] < 5:
        obs = fresh.step(_actions(name, obs, gen, long=np.array([False])))[0]
    np.testing.assert_array_equal(obs_resumed[0], obs[0])
    if name in VECTORIZED:
        np.testing.assert_array_equal(resumed.state[:, 0], envs.reset_state(name, 3, 5))


def test_reset_state_formula():
    for name, bound in [("cartpole", 0.05), ("acrobot", 0.1)]:
        state = envs.reset_state(name, 3, 5)
        u = rng.uniform(3, Stream.RESET, 4 * 5 + np.arange(4))
        assert state.dtype == np.float64 and state.shape == (4,)
        np.testing.assert_array_equal(state, -bound + 2 * bound * u)
        batch = envs.reset_state(name, np.array([3, 7]), np.array([5, 0]))
        np.testing.assert_array_equal(batch, [state, envs.reset_state(name, 7, 0)])
    many = envs.reset_state("acrobot", np.arange(1000), 0)
    assert np.all(np.abs(many) <= 0.1) and many.std() > 0.05
    with pytest.raises(ValueError, match="env_id"):
        envs.reset_state("MountainCar-v0", 0, 0)


def test_resolve_env_id():
    assert envs.resolve_env_id("cartpole") == "CartPole-v0"
    assert envs.resolve_env_id("ACROBOT") == "Acrobot-v1"
    assert envs.resolve_env_id("Acrobot-v1") == "Acrobot-v1"
    assert envs.resolve_env_id("mountaincar-v0") == "MountainCar-v0"
    assert isinstance(envs.make("CartPole-v1", 2, 0), envs.FallbackVectorEnv)
    for bad in ["foo", "", None]:
        with pytest.raises(ValueError, match="env: unknown environment"):
            envs.resolve_env_id(bad)
    for continuous in ["Pendulum-v1", "MountainCarContinuous-v0"]:
        with pytest.raises(ValueError, match="env: .*discrete action space"):
            envs.make(continuous, 2, 0)


@pytest.mark.parametrize("name", ["cartpole", "acrobot", "MountainCar-v0"])
def test_bad_arguments(name):
    bad_make = [
        ({"num_envs": 0, "seed": 0}, "num_envs"),
        ({"num_envs": 2, "seed": [1, 2, 3]}, "seed"),
        ({"num_envs": 2, "seed": 1.5}, "seed"),
        ({"num_envs": 2, "seed": 0, "start_episodes": [1]}, "start_episodes"),
        ({"num_envs": 2, "seed": 0, "start_episodes": [1, -1]}, "start_episodes"),
    ]
    for kwargs, parameter in bad_make:
        with pytest.raises(ValueError, match=parameter):
            envs.make(name, **kwargs)
    vec = envs.make(name, 3, 0)
    vec.reset()
    with pytest.raises(ValueError, match="seed"):
        vec.reset(seed=1)
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.zeros(2, dtype=np.int64))
    for indices in [[], [0, 0], [3], [-1], [0.5]]:
        with pytest.raises(ValueError, match="indices"):
            vec.select(indices)
