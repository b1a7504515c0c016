"""PureJaxRL-style DQN (`make_train` under `jax.vmap` over seeds) with the thesis' hyperparameters,
timed as `python -m ebnb bench` times ebnb: agent-steps per wall second and per CPU second.

    /work/venvs/peer/bin/python tools/peer_bench/purejaxrl_dqn.py --env cartpole --agents 1 16 64 256

Written for this comparison after reading luchris429/purejaxrl's `purejaxrl/dqn.py` (not copied):
one pure training function per agent (flax MLP, optax Adam, a flashbax buffer, gymnax env,
epsilon-greedy acting, `lax.cond` for the update, `lax.scan` over steps),
`jax.jit(jax.vmap(train))` over K seeds. Each agent makes `--steps` transitions (one env each)
with a random 20% mask on its weights, as ebnb's bench does. Per K the function is compiled
ahead of time and run once on other seeds (both untimed: compile and warm-up, as ebnb's bench
leaves out its own), then run once, timed; its CPU seconds are this process's (all threads).
Threads are the caller's choice: XLA_FLAGS and the process's CPU affinity (tools/peer_bench/compare.py).

The work is ebnb's bench except for the differences listed in docs/engine.md ("Against PureJaxRL").
"""

from __future__ import annotations

import argparse
import json
import os
import time

import chex
import flashbax as fbx
import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

# the thesis' hyperparameters (ebnb.config.CARTPOLE / ACROBOT)
THESIS = {
    "cartpole": dict(
        env="CartPole-v1",
        hidden=(128, 128),
        lr=0.0025,
        batch=32,
        buffer=1000,
        learning_starts=200,
        train_freq=4,
        eps_decay=0.95,
        eps_per="episode",
    ),
    "acrobot": dict(
        env="Acrobot-v1",
        hidden=(128,),
        lr=0.001,
        batch=64,
        buffer=2000,
        learning_starts=1000,
        train_freq=1,
        eps_decay=0.999,
        eps_per="step",
    ),
}
GAMMA, EPS_FLOOR = 0.99, 0.01
PRUNED = 0.2  # ebnb's bench trains every agent under a random mask pruning 20% of its weights


class MLP(nn.Module):
    hidden: tuple
    actions: int

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.actions)(x)


@chex.dataclass(frozen=True)
class Transition:
    obs: chex.Array
    action: chex.Array
    reward: chex.Array
    next_obs: chex.Array
    terminated: chex.Array


def random_mask(key, params, fraction: float):
    """Keep-masks for the weight matrices: exactly round(fraction * N) of all N weights pruned,
    chosen at random over the whole network (as `ebnb.masks.random_masks`); biases are kept."""
    flat = traverse_util.flatten_dict(params)
    kernels = [path for path in flat if path[-1] == "kernel"]
    sizes = [flat[path].size for path in kernels]
    n = sum(sizes)
    keep = jax.random.permutation(key, n) >= round(fraction * n)
    pieces = jnp.split(keep, np.cumsum(sizes)[:-1])
    return {path: piece.reshape(flat[path].shape) for path, piece in zip(kernels, pieces, strict=True)}


def apply_mask(params, mask):
    """The pruned weights set to 0 (after every optimiser step, as ebnb keeps them at exactly 0)."""
    flat = traverse_util.flatten_dict(params)
    for path, keep in mask.items():
        flat[path] = jnp.where(keep, flat[path], 0.0)
    return traverse_util.unflatten_dict(flat)


def make_train(h: dict, steps: int):
    env, params = gymnax.make(h["env"])
    if h["env"] == "CartPole-v1":  # gymnax has no CartPole-v0: v1's dynamics with v0's 200-step limit
        params = params.replace(max_steps_in_episode=200)
    n_actions = env.action_space(params).n
    net = MLP(h["hidden"], n_actions)
    tx = optax.adam(h["lr"])
    # whole transitions, sampled uniformly with replacement from those stored (as ebnb's replay)
    buffer = fbx.make_item_buffer(max_length=h["buffer"], min_length=h["batch"], sample_batch_size=h["batch"])

    def train(key):
        key, k_env, k_net, k_mask = jax.random.split(key, 4)
        obs, state = env.reset(k_env, params)
        online = net.init(k_net, obs)
        mask = random_mask(k_mask, online, PRUNED)
        online = apply_mask(online, mask)
        target = online
        opt = tx.init(online)
        item = Transition(obs=obs, action=jnp.int32(0), reward=jnp.float32(0), next_obs=obs, terminated=jnp.float32(0))
        memory = buffer.init(item)

        def learn(online, target, opt, memory, key):
            batch = buffer.sample(memory, key).experience
            next_q = net.apply(target, batch.next_obs).max(-1)
            y = batch.reward + GAMMA * (1.0 - batch.terminated) * next_q

            def loss(p):
                q = net.apply(p, batch.obs)
                return jnp.mean((jnp.take_along_axis(q, batch.action[:, None], -1)[:, 0] - y) ** 2)

            grads = jax.grad(loss)(online)
            updates, opt = tx.update(grads, opt, online)
            return apply_mask(optax.apply_updates(online, updates), mask), opt

        def step(carry, t):
            online, target, opt, memory, obs, state, eps, key = carry
            key, k_coin, k_act, k_env, k_learn = jax.random.split(key, 5)
            greedy = jnp.argmax(net.apply(online, obs))
            action = jnp.where(jax.random.uniform(k_coin) < eps, jax.random.randint(k_act, (), 0, n_actions), greedy)
            next_obs, state, reward, terminated, truncated, info = env.step(k_env, state, action, params)
            # a time limit is not terminal (as ebnb's default): store `terminated`, and the
            # observation the step reached (gymnax's `next_obs` is already the next episode's start)
            transition = Transition(
                obs=obs,
                action=action.astype(jnp.int32),
                reward=reward.astype(jnp.float32),
                next_obs=info["final_observation"],
                terminated=terminated.astype(jnp.float32),
            )
            memory = buffer.add(memory, transition)
            # `t` is the same for every agent, so under vmap this stays a branch (not both sides)
            due = (t + 1 >= h["learning_starts"]) & ((t + 1) % h["train_freq"] == 0)
            online, opt = jax.lax.cond(
                due, learn, lambda o, tg, op, m, k: (o, op), online, target, opt, memory, k_learn
            )
            done = terminated | truncated
            target = jax.tree.map(lambda o, tg: jnp.where(done, o, tg), online, target)  # ebnb copies at episode ends
            decay = (h["eps_per"] == "step") | done
            eps = jnp.where(decay, jnp.maximum(eps * h["eps_decay"], EPS_FLOOR), eps)
            return (online, target, opt, memory, next_obs, state, eps, key), reward

        carry = (online, target, opt, memory, obs, state, jnp.float32(1.0), key)
        carry, rewards = jax.lax.scan(step, carry, jnp.arange(steps))
        return rewards.sum()

    return train


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(THESIS), required=True)
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args(argv)
    h = THESIS[args.env]
    run = jax.jit(jax.vmap(make_train(h, args.steps)))
    for k in args.agents:
        keys = jax.random.split(jax.random.PRNGKey(0), k)
        start = time.perf_counter()
        compiled = run.lower(keys).compile()
        compile_s = time.perf_counter() - start
        jax.block_until_ready(compiled(jax.random.split(jax.random.PRNGKey(1), k)))  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(compiled(keys))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        made = k * args.steps
        row = {
            "env": h["env"],
            "agents": k,
            "peer": "purejaxrl-style",
            "jax": jax.__version__,
            "cpus": len(os.sched_getaffinity(0)),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "compile_s": round(compile_s, 1),
            "agent_steps_per_s": round(made / wall, 1),
            "agent_steps_per_cpu_s": round(made / cpu, 1),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
