"""A plain single-agent DQN, CleanRL style, written independently of the ebnb engine.

It shares only the random streams (`ebnb.rng`) and the episode start states
(`ebnb.envs.reset_state`) with the engine, so the two can be compared step by step: same
actions, same parameters up to float rounding. It steps gymnasium's own single environment
and learns with `torch.nn` layers and `torch.optim.Adam`. `python -m ebnb bench` also runs it
as the sequential baseline.
"""

from __future__ import annotations

import copy
import itertools

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ebnb import rng
from ebnb.config import DQNConfig
from ebnb.envs import reset_state


def start_episode(env: gym.Env, env_id: str, seed: int, episode: int) -> np.ndarray:
    """Reset `env` and put it into the engine's start state for this seed and episode."""
    env.reset()
    state = reset_state(env_id, seed, episode)
    env.unwrapped.state = state
    if env_id.startswith("Acrobot"):
        return env.unwrapped._get_ob()
    return np.array(state, dtype=np.float32)


def train(
    cfg: DQNConfig,
    seed: int,
    episodes: int,
    record_actions: list | None = None,
    dtype=torch.float32,
    max_steps=None,
    mask: list[np.ndarray] | None = None,
) -> dict:
    """Train one agent for `episodes` episodes; return its network, returns and step count.

    With `max_steps`, training also ends with the episode in which the step count reaches it.
    The network is initialised in float32 (as nn.Linear does) and then cast to `dtype`.
    With `mask` (one boolean array per weight matrix, `[out, in]`, True = kept), the agent
    starts from m * theta_0 and the pruned weights are zeroed again after every optimiser step
    (docs/protocol.md: pruned weights stay exactly 0; the target network copies the masked weights).
    """
    env = gym.make(cfg.env_id)
    n_obs, n_actions = env.observation_space.shape[0], env.action_space.n
    torch.manual_seed(seed)
    sizes = [n_obs, *cfg.hidden, n_actions]
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    q_network = nn.Sequential(*layers[:-1]).to(dtype)
    linears = [layer for layer in q_network if isinstance(layer, nn.Linear)]

    def apply_mask():
        if mask is not None:
            with torch.no_grad():
                for layer, keep in zip(linears, mask, strict=True):
                    layer.weight.mul_(torch.as_tensor(keep, dtype=dtype))

    apply_mask()
    target_network = copy.deepcopy(q_network)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=cfg.lr, fused=True)

    capacity = cfg.buffer_size
    buffer_obs = np.zeros((capacity, n_obs), dtype=np.float32)
    buffer_next = np.zeros((capacity, n_obs), dtype=np.float32)
    buffer_action = np.zeros(capacity, dtype=np.int64)
    buffer_reward = np.zeros(capacity, dtype=np.float32)
    buffer_done = np.zeros(capacity, dtype=np.float32)

    epsilon, step, updates, returns = cfg.eps_start, 0, 0, []
    for episode in range(episodes):
        obs = start_episode(env, cfg.env_id, seed, episode)
        episode_return, finished = 0.0, False
        while not finished:
            if rng.uniform(seed, rng.Stream.COIN, step) < epsilon:
                action = int(rng.integers(seed, rng.Stream.ACTION, step, n_actions))
            else:
                with torch.no_grad():
                    action = int(q_network(torch.as_tensor(obs, dtype=dtype)[None]).argmax(1)[0])
            if record_actions is not None:
                record_actions.append(action)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            finished = terminated or truncated
            slot = step % capacity
            buffer_obs[slot], buffer_next[slot], buffer_action[slot] = obs, next_obs, action
            buffer_reward[slot] = reward
            buffer_done[slot] = float(finished if cfg.truncation_is_terminal else terminated)
            step += 1
            episode_return += reward
            if cfg.eps_decay_per == "step":
                epsilon = max(epsilon * cfg.eps_decay, cfg.eps_floor)

            if step % cfg.train_freq == 0 and step >= cfg.learning_starts:
                counters = updates * cfg.batch_size + np.arange(cfg.batch_size)
                idx = rng.integers(seed, rng.Stream.REPLAY, counters, min(step, capacity))
                with torch.no_grad():
                    next_max = target_network(torch.as_tensor(buffer_next[idx], dtype=dtype)).max(1).values
                    td_target = torch.as_tensor(buffer_reward[idx]) + cfg.gamma * next_max * (
                        1 - torch.as_tensor(buffer_done[idx])
                    )
                q_taken = q_network(torch.as_tensor(buffer_obs[idx], dtype=dtype)).gather(
                    1, torch.as_tensor(buffer_action[idx])[:, None]
                )
                loss = F.mse_loss(q_taken[:, 0], td_target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                apply_mask()
                updates += 1
            obs = next_obs

        target_network.load_state_dict(q_network.state_dict())
        if cfg.eps_decay_per == "episode":
            epsilon = max(epsilon * cfg.eps_decay, cfg.eps_floor)
        returns.append(episode_return)
        if max_steps is not None and step >= max_steps:
            break
    return {"q_network": q_network, "returns": returns, "steps": step, "epsilon": epsilon}
