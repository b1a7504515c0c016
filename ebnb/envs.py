"""Vector environments with same-step autoreset and counter-based reset randomness.

Every environment returned by `make` follows one contract, which the DQN engine relies on:

* Autoreset is SAME_STEP: a sub-env that terminates or truncates in `step` starts its next
  episode within that call. The returned observation is the first one of the new episode,
  `info["final_obs"]` (float32, one row per sub-env, always present) holds the last
  observation of the finished episode in the rows flagged by `info["_final_obs"]`, and the
  reward and flags are those of the finishing transition. So every step is a real transition.
* The initial state of episode `e` of a sub-env with seed `s` is a pure function of (s, e)
  drawn from `ebnb.rng`'s RESET stream: it does not depend on the other sub-envs.
  `reset()` starts every sub-env at its current episode index (`episodes`), and every
  autoreset increments that sub-env's index.
* `select(indices)` keeps only the given sub-envs, in that order; stepping then continues
  seamlessly for them.

CartPole-v0 and Acrobot-v1 are fully vectorized; any other discrete-action gymnasium id
runs its sub-envs one by one.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.vector.utils import batch_space, create_empty_array

from ebnb import dynamics, rng

# The thesis uses CartPole-v0 (200-step episodes) on purpose; gymnasium's notice is noise here.
warnings.filterwarnings("ignore", message=".*The environment CartPole-v0 is out of date.*")
from ebnb.rng import Stream

ENV_ALIASES = {"cartpole": "CartPole-v0", "acrobot": "Acrobot-v1"}
# what each observation dimension is (gymnasium's documentation of the two envs)
OBSERVATION_NAMES = {
    "CartPole-v0": ("cart position", "cart velocity", "pole angle", "pole angular velocity"),
    "Acrobot-v1": ("cos θ1", "sin θ1", "cos θ2", "sin θ2", "θ1 velocity", "θ2 velocity"),
}


def observation_names(env_id: str, n: int) -> tuple[str, ...]:
    """Names of an env's `n` observation dimensions (x0, x1, ... where not known)."""
    return OBSERVATION_NAMES.get(env_id, tuple(f"x{i}" for i in range(n)))


@functools.cache
def _unsupported(env_id: str) -> str | None:
    """Why a DQN of ours cannot run `env_id` (None if it can): it needs discrete actions and
    observations that are one flat vector of numbers."""
    env = gymnasium.make(env_id)
    try:
        if not isinstance(env.action_space, spaces.Discrete):
            space = env.action_space
            return f"has action space {space}; a discrete action space (gymnasium.spaces.Discrete) is required"
        if not isinstance(env.observation_space, spaces.Box) or len(env.observation_space.shape) != 1:
            return f"has observation space {env.observation_space}; a flat Box (a vector of numbers) is required"
        return None
    finally:
        env.close()


def resolve_env_id(name: str) -> str:
    """The gymnasium id for a short name (case-insensitive) or a registered gymnasium id."""
    registered = {env_id.lower(): env_id for env_id in gymnasium.registry}
    key = name.lower() if isinstance(name, str) else None
    env_id = ENV_ALIASES.get(key) or registered.get(key)
    if env_id is None:
        raise ValueError(
            f"env: unknown environment {name!r}; allowed: {', '.join(ENV_ALIASES)}, "
            "or a registered gymnasium id with discrete actions and vector observations"
        )
    reason = None if env_id in _VECTORIZED else _unsupported(env_id)
    if reason:
        raise ValueError(f"env: {env_id!r} {reason}")
    return env_id


def canonical_env(name: str) -> str:
    """The one name of an env, however it was spelled: its short name if it has one
    ('CARTPOLE', 'CartPole-v0' -> 'cartpole'), else its gymnasium id as registered."""
    env_id = resolve_env_id(name)
    return next((short for short, known in ENV_ALIASES.items() if known == env_id), env_id)


def _uniform_states(seeds, episodes, low: float, high: float) -> np.ndarray:
    """Component j of the initial state is low + (high - low) * uniform(seed, RESET, 4e + j)."""
    counters = 4 * np.asarray(episodes, dtype=np.int64)[..., None] + np.arange(4)
    u = rng.uniform(np.asarray(seeds, dtype=np.int64)[..., None], Stream.RESET, counters)
    return low + (high - low) * u


def _int_array(name: str, value, num_envs: int) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != (num_envs,) or array.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected {num_envs} ints (one per sub-env), got {value!r}")
    return array.astype(np.int64)


class _SameStepMixin:
    """SAME_STEP autoreset, stream-seeded resets, `select` and `extend`, on top of a vector env.

    Subclasses provide `_transition(actions)` (one step, no resets), `_reset_envs(idx)`
    (start episode `episodes[idx]` of sub-envs `idx`, return their observations), `_keep(idx)`
    (keep only the per-sub-env state of `idx`) and `_append(other)` (append the per-sub-env
    state of another env of the same class).
    """

    def _init_streams(self, num_envs: int, seed, start_episodes) -> None:
        is_int = isinstance(num_envs, (int, np.integer)) and not isinstance(num_envs, bool)
        if not is_int or num_envs < 1:
            raise ValueError(f"num_envs: must be an int >= 1, got {num_envs!r}")
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seed = seed + np.arange(num_envs)
        self.seeds = _int_array("seed", seed, num_envs)
        if start_episodes is None:
            start_episodes = np.zeros(num_envs, dtype=np.int64)
        self.episodes = _int_array("start_episodes", start_episodes, num_envs)
        if np.any(self.episodes < 0):
            raise ValueError(f"start_episodes: must be >= 0, got {start_episodes!r}")

    def reset(self, *, seed=None, options=None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every sub-env at its current episode index (seeds are fixed by `make`)."""
        if seed is not None:
            raise ValueError("seed: not accepted by reset(); pass the seeds to make()")
        if options is not None:
            raise ValueError("options: not supported; must be None")
        return self._reset_envs(np.arange(self.num_envs)), {}

    def step(self, actions):
        """One transition for every sub-env; finished sub-envs restart within this call."""
        actions = np.asarray(actions)
        n_actions = self.single_action_space.n
        if (
            actions.shape != (self.num_envs,)
            or actions.dtype.kind not in "iu"
            or not ((actions >= 0) & (actions < n_actions)).all()
        ):
            raise ValueError(
                f"actions: expected {self.num_envs} ints in [0, {self.single_action_space.n}), got {actions!r}"
            )
        obs, reward, terminated, truncated, info = self._transition(actions)
        done = terminated | truncated
        info = {**info, "final_obs": np.array(obs, dtype=np.float32), "_final_obs": done}
        finished = np.flatnonzero(done)
        if finished.size:
            self.episodes[finished] += 1
            obs[finished] = self._reset_envs(finished)
        return obs, reward, terminated, truncated, info

    def select(self, indices: Sequence[int]) -> None:
        """Keep only the sub-envs `indices` (distinct, at least one), in that order."""
        idx = np.asarray(indices)
        if (
            idx.ndim != 1
            or idx.size == 0
            or idx.dtype.kind not in "iu"
            or np.unique(idx).size != idx.size
            or idx.min() < 0
            or idx.max() >= self.num_envs
        ):
            raise ValueError(f"indices: expected distinct ints in [0, {self.num_envs}), at least one; got {indices!r}")
        self.seeds = self.seeds[idx]
        self.episodes = self.episodes[idx]
        self._keep(idx)
        self._set_num_envs(idx.size)

    def extend(self, other: _SameStepMixin) -> None:
        """Append the sub-envs of `other` (same class, already reset) after this env's own,
        each going on exactly where it is."""
        if type(other) is not type(self):
            raise ValueError(f"other: expected a {type(self).__name__}, got {type(other).__name__}")
        self.seeds = np.concatenate([self.seeds, other.seeds])
        self.episodes = np.concatenate([self.episodes, other.episodes])
        self._append(other)
        self._set_num_envs(self.num_envs + other.num_envs)

    def _set_num_envs(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)


class _ArrayStateMixin(_SameStepMixin):
    """Resets and `select` for envs keeping a float64 `state` [4, num_envs] and `steps` [num_envs].

    Subclasses set `reset_bounds` (the initial state is uniform in it, see `reset_state`)
    and `_observe(state)` (observations [n, obs_dim] float32 of state columns).
    """

    reset_bounds: tuple[float, float]

    def _reset_envs(self, idx: np.ndarray) -> np.ndarray:
        states = _uniform_states(self.seeds[idx], self.episodes[idx], *self.reset_bounds)
        self.state[:, idx] = states.T
        self.steps[idx] = 0
        return self._observe(self.state[:, idx])

    def _keep(self, idx: np.ndarray) -> None:
        self.state = self.state[:, idx]
        self.steps = self.steps[idx]

    def _append(self, other: _ArrayStateMixin) -> None:
        self.state = np.concatenate([self.state, other.state], axis=1)
        self.steps = np.concatenate([self.steps, other.steps])


class CartPoleV0VectorEnv(_ArrayStateMixin, CartPoleVectorEnv):
    """CartPole-v0 (200 steps): gymnasium's CartPoleVectorEnv dynamics, our resets and autoreset."""

    metadata = {**CartPoleVectorEnv.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012 (gymnasium reads it from the class)
    reset_bounds = (-0.05, 0.05)

    def __init__(self, num_envs: int = 1, seed=0, start_episodes=None):
        self._init_streams(num_envs, seed, start_episodes)
        super().__init__(num_envs=num_envs, max_episode_steps=200)
        self.state = np.zeros((4, num_envs))

    def _transition(self, actions):
        # Finished sub-envs were reset in their finishing step: the parent must not reset again.
        self.prev_done = np.zeros(self.num_envs, dtype=np.bool_)
        return CartPoleVectorEnv.step(self, actions)

    @staticmethod
    def _observe(state: np.ndarray) -> np.ndarray:
        return state.T.astype(np.float32)


class AcrobotVectorEnv(_ArrayStateMixin, VectorEnv):
    """Acrobot-v1 (500 steps): gymnasium's AcrobotEnv dynamics for all sub-envs at once.

    Same constants, "book" dynamics without torque noise (gymnasium's defaults), one rk4 step
    of dt computed in gymnasium's order of operations (`dynamics.acrobot_rk4`, compiled by numba
    without fast-math: a loop over sub-envs, no numpy call per operation); the state is kept
    in float64.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012 (gymnasium reads it from the class)
    reset_bounds = (-0.1, 0.1)
    max_episode_steps = 500

    dt = dynamics.ACROBOT_DT
    LINK_LENGTH_1 = dynamics.ACROBOT_LINK_LENGTH_1
    LINK_MASS_1 = dynamics.ACROBOT_LINK_MASS
    LINK_MASS_2 = dynamics.ACROBOT_LINK_MASS
    LINK_COM_POS_1 = dynamics.ACROBOT_LINK_COM
    LINK_COM_POS_2 = dynamics.ACROBOT_LINK_COM
    LINK_MOI = dynamics.ACROBOT_LINK_MOI
    MAX_VEL_1 = dynamics.ACROBOT_MAX_VEL_1
    MAX_VEL_2 = dynamics.ACROBOT_MAX_VEL_2
    AVAIL_TORQUE = np.array(dynamics.ACROBOT_TORQUE)

    def __init__(self, num_envs: int = 1, seed=0, start_episodes=None):
        self._init_streams(num_envs, seed, start_episodes)
        high = np.array([1.0, 1.0, 1.0, 1.0, self.MAX_VEL_1, self.MAX_VEL_2], dtype=np.float32)
        self.single_observation_space = spaces.Box(low=-high, high=high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(3)
        self._set_num_envs(num_envs)
        self.state = np.zeros((4, num_envs))
        self.steps = np.zeros(num_envs, dtype=np.int64)

    def _transition(self, actions):
        ns = dynamics.acrobot_rk4(self.state, self.AVAIL_TORQUE[actions])
        self.state = ns
        self.steps += 1
        terminated = -np.cos(ns[0]) - np.cos(ns[1] + ns[0]) > 1.0
        reward = np.where(terminated, 0.0, -1.0)
        truncated = self.steps >= self.max_episode_steps
        return self._observe(ns), reward, terminated, truncated, {}

    @staticmethod
    def _observe(state: np.ndarray) -> np.ndarray:
        s0, s1, s2, s3 = state
        obs = np.stack((np.cos(s0), np.sin(s0), np.cos(s1), np.sin(s1), s2, s3), axis=1)
        return obs.astype(np.float32)


class FallbackVectorEnv(_SameStepMixin, SyncVectorEnv):
    """Any discrete-action gymnasium id: `gymnasium.make(env_id)` sub-envs stepped one by one.

    Slower than the vectorized envs. Episode `e` of a sub-env with seed `s` starts with
    `reset(seed=rng.seed32(s, RESET, e))`. Observations must be numpy arrays (e.g. a Box).
    """

    def __init__(self, env_id: str, num_envs: int = 1, seed=0, start_episodes=None):
        self._init_streams(num_envs, seed, start_episodes)
        super().__init__(
            [functools.partial(gymnasium.make, env_id)] * num_envs,
            autoreset_mode=AutoresetMode.DISABLED,
        )
        self.metadata["autoreset_mode"] = AutoresetMode.SAME_STEP

    def _transition(self, actions):
        return SyncVectorEnv.step(self, actions)

    def _reset_envs(self, idx: np.ndarray) -> np.ndarray:
        seeds = rng.seed32(self.seeds[idx], Stream.RESET, self.episodes[idx])
        obs = [self.envs[i].reset(seed=int(s))[0] for i, s in zip(idx, seeds)]
        self._autoreset_envs[idx] = False
        return np.stack(obs)

    def _keep(self, idx: np.ndarray) -> None:
        kept = set(idx.tolist())
        for i, env in enumerate(self.envs):
            if i not in kept:
                env.close()
        self._set_sub_envs([self.envs[i] for i in idx], [self.env_fns[i] for i in idx], [self._env_obs[i] for i in idx])

    def _append(self, other: FallbackVectorEnv) -> None:
        self._set_sub_envs(self.envs + other.envs, self.env_fns + other.env_fns, self._env_obs + other._env_obs)

    def _set_sub_envs(self, sub_envs: list, env_fns: list, env_obs: list) -> None:
        self.envs, self.env_fns, self._env_obs = sub_envs, env_fns, env_obs
        # SyncVectorEnv's step buffers: all entries are rewritten on every step.
        n = len(sub_envs)
        self._observations = create_empty_array(self.single_observation_space, n=n, fn=np.zeros)
        self._rewards = np.zeros(n)
        self._terminations = np.zeros(n, dtype=np.bool_)
        self._truncations = np.zeros(n, dtype=np.bool_)
        self._autoreset_envs = np.zeros(n, dtype=np.bool_)


_VECTORIZED = {"CartPole-v0": CartPoleV0VectorEnv, "Acrobot-v1": AcrobotVectorEnv}


def make(env_id: str, num_envs: int, seed, *, start_episodes=None) -> VectorEnv:
    """A SAME_STEP vector env of `num_envs` sub-envs (see the module docstring); call reset() first.

    `seed` is an int (sub-env i gets seed + i) or one int per sub-env; `start_episodes`
    (default all 0) is the episode index each sub-env starts at.
    """
    env_id = resolve_env_id(env_id)
    if env_id in _VECTORIZED:
        return _VECTORIZED[env_id](num_envs, seed, start_episodes)
    return FallbackVectorEnv(env_id, num_envs, seed, start_episodes)


def reset_state(env_id: str, seed, episode) -> np.ndarray:
    """The float64 state [4] in which a sub-env with `seed` starts episode `episode`.

    For CartPole-v0 and Acrobot-v1; assign it to a single gymnasium env's `unwrapped.state`
    to reproduce the vector env's episode. Arrays of seeds/episodes broadcast to [..., 4].
    """
    env_id = resolve_env_id(env_id)
    if env_id not in _VECTORIZED:
        raise ValueError(f"env_id: reset_state supports {', '.join(_VECTORIZED)}; got {env_id!r}")
    return _uniform_states(seed, episode, *_VECTORIZED[env_id].reset_bounds)
