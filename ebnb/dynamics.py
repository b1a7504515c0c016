"""The built-in envs' dynamics, compiled: one sub-env at a time, in gymnasium's order of
operations, for the vector envs of `ebnb.envs` and for the compiled loop (`ebnb.loop`).

The same arithmetic serves both: `AcrobotVectorEnv.step` loops `_acrobot_advance` over its
sub-envs; `transition`, `restart` and `observe` are one step, one reset and one observation of
one sub-env (tests/test_loop.py holds them to the vector envs bitwise; tests/test_envs.py holds
the vector envs to gymnasium's).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ebnb import rng
from ebnb.rng import Stream

_JIT = dict(cache=True, fastmath=False, error_model="numpy")
# gymnasium's AcrobotEnv constants (test_envs checks them against gymnasium)
ACROBOT_LINK_MASS = 1.0  # both links
ACROBOT_LINK_LENGTH_1 = 1.0
ACROBOT_LINK_COM = 0.5  # both links' centres of mass
ACROBOT_LINK_MOI = 1.0  # both links' moments of inertia
_G = 9.8
ACROBOT_DT = 0.2
ACROBOT_MAX_VEL_1, ACROBOT_MAX_VEL_2 = 4 * np.pi, 9 * np.pi
ACROBOT_TORQUE = (-1.0, 0.0, 1.0)  # per action


@numba.njit(**_JIT)
def _wrap(x: float, low: float, high: float) -> float:
    """gymnasium's acrobot `wrap`: shift by (high - low) until low <= x <= high."""
    diff = high - low
    while x > high:
        x = x - diff
    while x < low:
        x = x + diff
    return x


@numba.njit(**_JIT)
def _dsdt(theta1: float, theta2: float, dtheta1: float, dtheta2: float, a: float) -> tuple:
    """Time derivative of one state under torque a (gymnasium's `_dsdt`, "book" dynamics, in
    its order of operations)."""
    m1 = m2 = ACROBOT_LINK_MASS
    l1, lc1, lc2 = ACROBOT_LINK_LENGTH_1, ACROBOT_LINK_COM, ACROBOT_LINK_COM
    I1 = I2 = ACROBOT_LINK_MOI
    g = _G
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * np.cos(theta2)) + I1 + I2
    d2 = m2 * (lc2**2 + l1 * lc2 * np.cos(theta2)) + I2
    phi2 = m2 * lc2 * g * np.cos(theta1 + theta2 - np.pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * np.sin(theta2)
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * np.sin(theta2)
        + (m1 * lc1 + m2 * l1) * g * np.cos(theta1 - np.pi / 2)
        + phi2
    )
    ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * np.sin(theta2) - phi2) / (
        m2 * lc2**2 + I2 - d2**2 / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return dtheta1, dtheta2, ddtheta1, ddtheta2


@numba.njit(**_JIT)
def _acrobot_advance(state: np.ndarray, out: np.ndarray, i: int, a: float) -> None:
    """out[:, i] = the state after one rk4 step of `ACROBOT_DT` from state[:, i] under torque a
    (gymnasium's order of operations; angles wrapped, velocities clipped). `out` may be `state`."""
    dt, dt2 = ACROBOT_DT, ACROBOT_DT / 2.0
    s0, s1, s2, s3 = state[0, i], state[1, i], state[2, i], state[3, i]
    k1 = _dsdt(s0, s1, s2, s3, a)
    k2 = _dsdt(s0 + dt2 * k1[0], s1 + dt2 * k1[1], s2 + dt2 * k1[2], s3 + dt2 * k1[3], a)
    k3 = _dsdt(s0 + dt2 * k2[0], s1 + dt2 * k2[1], s2 + dt2 * k2[2], s3 + dt2 * k2[3], a)
    k4 = _dsdt(s0 + dt * k3[0], s1 + dt * k3[1], s2 + dt * k3[2], s3 + dt * k3[3], a)
    n0 = s0 + dt / 6.0 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
    n1 = s1 + dt / 6.0 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    n2 = s2 + dt / 6.0 * (k1[2] + 2 * k2[2] + 2 * k3[2] + k4[2])
    n3 = s3 + dt / 6.0 * (k1[3] + 2 * k2[3] + 2 * k3[3] + k4[3])
    out[0, i] = _wrap(n0, -np.pi, np.pi)
    out[1, i] = _wrap(n1, -np.pi, np.pi)
    out[2, i] = min(max(n2, -ACROBOT_MAX_VEL_1), ACROBOT_MAX_VEL_1)
    out[3, i] = min(max(n3, -ACROBOT_MAX_VEL_2), ACROBOT_MAX_VEL_2)


@numba.njit(**_JIT)
def acrobot_rk4(state: np.ndarray, torque: np.ndarray) -> np.ndarray:
    """The next states [4, n] of all sub-envs (`_acrobot_advance` of each)."""
    out = np.empty_like(state)
    for i in range(state.shape[1]):
        _acrobot_advance(state, out, i, torque[i])
    return out


# gymnasium's CartPoleVectorEnv constants, in its own expressions (test_envs checks them)
_CP_GRAVITY, _CP_MASSCART, _CP_MASSPOLE, _CP_LENGTH, _CP_FORCE_MAG, _CP_TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
_CP_TOTAL_MASS = _CP_MASSPOLE + _CP_MASSCART
_CP_POLEMASS_LENGTH = _CP_MASSPOLE * _CP_LENGTH
_CP_THETA_THRESHOLD = 12 * 2 * math.pi / 360
_CP_X_THRESHOLD = 2.4


@numba.njit(**_JIT)
def _cartpole_advance(state: np.ndarray, i: int, action: int) -> bool:
    """CartPoleVectorEnv's Euler step of sub-env i, in place, in gymnasium's order of
    operations; whether it terminated."""
    x, x_dot, theta, theta_dot = state[0, i], state[1, i], state[2, i], state[3, i]
    force = (1.0 if action > 0.5 else -1.0) * _CP_FORCE_MAG  # np.sign(action - 0.5) * force_mag
    costheta = np.cos(theta)
    sintheta = np.sin(theta)
    temp = (force + _CP_POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / _CP_TOTAL_MASS
    thetaacc = (_CP_GRAVITY * sintheta - costheta * temp) / (
        _CP_LENGTH * (4.0 / 3.0 - _CP_MASSPOLE * (costheta * costheta) / _CP_TOTAL_MASS)
    )
    xacc = temp - _CP_POLEMASS_LENGTH * thetaacc * costheta / _CP_TOTAL_MASS
    x = x + _CP_TAU * x_dot
    x_dot = x_dot + _CP_TAU * xacc
    theta = theta + _CP_TAU * theta_dot
    theta_dot = theta_dot + _CP_TAU * thetaacc
    state[0, i], state[1, i], state[2, i], state[3, i] = x, x_dot, theta, theta_dot
    return x < -_CP_X_THRESHOLD or x > _CP_X_THRESHOLD or theta < -_CP_THETA_THRESHOLD or theta > _CP_THETA_THRESHOLD


# The built-in envs as compiled functions of one sub-env, for `ebnb.loop` (the same arithmetic
# as the vector envs' `step`; tests/test_loop.py holds them to each other bitwise).
CARTPOLE_KIND, ACROBOT_KIND = 0, 1
_RESET = int(Stream.RESET)


@numba.njit(**_JIT)
def transition(kind: int, state: np.ndarray, steps: np.ndarray, i: int, action: int) -> tuple:
    """One step of sub-env i (no reset): (reward, terminated, truncated)."""
    steps[i] += 1
    if kind == CARTPOLE_KIND:
        terminated = _cartpole_advance(state, i, action)
        return 1.0, terminated, steps[i] >= 200
    _acrobot_advance(state, state, i, ACROBOT_TORQUE[action])
    terminated = -np.cos(state[0, i]) - np.cos(state[1, i] + state[0, i]) > 1.0
    return 0.0 if terminated else -1.0, terminated, steps[i] >= 500


@numba.njit(**_JIT)
def restart(kind: int, state: np.ndarray, steps: np.ndarray, i: int, seed: int, episode: int) -> None:
    """Start episode `episode` of sub-env i: the state `reset_state` gives, step count 0."""
    low, high = (-0.05, 0.05) if kind == CARTPOLE_KIND else (-0.1, 0.1)
    for j in range(4):
        state[j, i] = low + (high - low) * rng._uniform_of(seed, _RESET, 4 * episode + j)
    steps[i] = 0


@numba.njit(**_JIT)
def observe(kind: int, state: np.ndarray, i: int, out: np.ndarray) -> None:
    """Sub-env i's observation into `out` (float32)."""
    if kind == CARTPOLE_KIND:
        for j in range(4):
            out[j] = state[j, i]
        return
    out[0], out[1] = np.cos(state[0, i]), np.sin(state[0, i])
    out[2], out[3] = np.cos(state[1, i]), np.sin(state[1, i])
    out[4], out[5] = state[2, i], state[3, i]
