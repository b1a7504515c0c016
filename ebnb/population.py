"""The batched DQN engine: K independent agents trained as one computation.

Every per-agent quantity has a leading agent axis: stacked Q-network weights (`ebnb.qnet`),
Adam moments and step counts (`ebnb.optim`), replay buffers (`ebnb.replay`), one
environment per agent (`ebnb.envs`, same-step autoreset), epsilon, counters and random
streams (`ebnb.rng`). Reading `_step` top to bottom is reading DQN (CleanRL's order): act
epsilon-greedily, step the envs, store, learn where due, and at episode ends copy targets,
count, log, call back and stop (`ebnb.episode_end`).

`_step` advances all agents by one step in lockstep: the path of any gymnasium env and of the
torch arithmetic. With the fused kernel on CartPole-v0 or Acrobot-v1, `_advance` runs the
same steps compiled (`ebnb.loop`), each agent on its own until an event Python must see (an
episode end with a callback, a stop), many steps per call; tests/test_loop.py holds the two
paths to the same bits.

Agents leave the batch as soon as they stop (early stopping, episode cap, or a callback's
`stop`), so a population costs what its live agents cost. Every per-agent field is declared
once, in `ebnb.batch` (`LiveAgents`, read and written here by its name: `population.epsilon`;
`AgentRecords`), and admitting and compacting are one operation over all of them. Callbacks
at episode ends see the population and may snapshot the agents that ended an episode, draw
masks from their weights, prune them, or stop them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numba
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ebnb import accounting, arithmetic, dynamics, envs, episode_end, loop, qnet, rng
from ebnb.agent import AgentState, env_dims
from ebnb.batch import AgentRecords, LiveAgents, from_checkpoint, to_checkpoint
from ebnb.config import DQNConfig, check_device, check_positive_int
from ebnb.episode_end import EpisodeEnds

CALL_STEPS = 16384  # agent-steps a compiled call may make in all (`Population._advance`) before Python sees them


@dataclass
class PopulationResult:
    """Per-episode log, per-agent summary, and each agent's state when it stopped."""

    episodes: pd.DataFrame  # agent, episode, return, length, epsilon (at the episode's start)
    agents: pd.DataFrame  # agent, seed, stop_reason, episodes_run, converged_episode
    final: list[AgentState]


Callback = Callable[["Population", EpisodeEnds], None]
_COMPILED_ENVS = {envs.CartPoleV0VectorEnv: dynamics.CARTPOLE_KIND, envs.AcrobotVectorEnv: dynamics.ACROBOT_KIND}


class Population:
    """K DQN agents sharing one config, trained in lockstep until each one stops.

    `agents` are starting states (fresh from `ebnb.agent.fresh_agent`, or snapshots to resume).
    `max_episodes` counts from each agent's start; with `early_stop` an agent stops after
    `cfg.solved_streak` solved episodes in a row (the streak counts from the start of this run).
    `cfg.arithmetic` picks who does the network arithmetic: `ebnb.kernel` ("fused": fixed order,
    the same bits on every CPU) or torch (`ebnb.qnet` + `ebnb.optim`: the reference, and CUDA);
    `cfg.device` where it trains (`device`: a device of that type, e.g. "cuda:1"; default `cfg.device`).
    """

    def __init__(
        self,
        cfg: DQNConfig,
        agents: Sequence[AgentState],
        *,
        early_stop: bool = True,
        max_episodes: int | None = None,
        callback: Callback | None = None,
        device: str | torch.device | None = None,
        progress: bool = False,
        chunk_size: int = 128,
        compiled: bool = True,
    ):
        if not agents:
            raise ValueError("agents: a population needs at least one agent")
        max_episodes = check_positive_int("max_episodes", cfg.max_episodes if max_episodes is None else max_episodes)
        self.cfg, self.early_stop, self.callback, self.max_episodes = cfg, early_stop, callback, max_episodes
        self.compiled = bool(compiled)
        self.device = torch.device(check_device("device", cfg.device if device is None else device))
        self.chunk_size = check_positive_int("chunk_size", chunk_size)
        if self.device.type != cfg.device:
            raise ValueError(
                f"device: {device!r} is not the config's device {cfg.device!r}; "
                f"train on {cfg.device} or use cfg.replace(device={self.device.type!r})"
            )
        self.obs_dim, self.n_actions = env_dims(cfg.env_id)
        self.batch = LiveAgents.from_states(cfg, agents, max_episodes, self.device)
        self.records = AgentRecords.fresh(self.batch.seeds)
        self.dtype = self.params[0].dtype
        self._acting_views, self._learning_views = arithmetic.NumpyViews(), arithmetic.NumpyViews()
        self._callback_agents: set | None = None  # during a callback: the agents it may act on
        self.retired: list[int] = []  # agent ids in the order they stopped
        self._log: list[tuple] = []
        self._progress = self._progress_bar(progress, done=0)

    # ---- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly where it is (between two steps):
        networks, Adam, replay buffers, environments, counters and logs. The callback is not
        part of it: it belongs to the caller, who passes it again to `restore`. The per-agent
        fields go one key each (`ebnb.batch.to_checkpoint`)."""
        unsaved = ("callback", "_progress", "batch", "records")
        state = {name: value for name, value in vars(self).items() if name not in unsaved}
        state.update(to_checkpoint(self.batch, self.records))
        state["progress_done"] = self._progress.n
        return state

    @classmethod
    def restore(cls, state: dict, *, callback: Callback | None = None, progress: bool = False) -> Population:
        """The population saved by `state_dict`; it goes on bitwise as if never stopped."""
        population = cls.__new__(cls)
        population.__dict__.update({"compiled": True, "_callback_agents": None})  # checkpoints made before they existed
        state = dict(state)
        population.batch, population.records = from_checkpoint(state)  # takes their keys out of `state`
        population.__dict__.update({k: v for k, v in state.items() if k != "progress_done"})
        population.callback = callback
        population._progress = population._progress_bar(progress, done=state["progress_done"])
        return population

    def _progress_bar(self, enabled: bool, done: int) -> tqdm:
        total = int(self.max_episodes * len(self.records))
        bar = tqdm(total=total, initial=done, unit="episode", disable=not enabled, smoothing=0.05)
        bar.set_postfix(live=len(self.ids))
        return bar

    # ---- the public surface for callbacks -------------------------------------------------

    def positions(self, agents) -> np.ndarray:
        """Batch positions of live agent ids.

        A callback may act only on the agents that have just ended an episode: the others may
        be at any step of theirs (the compiled loop runs each agent on its own up to its next
        event), so their state there would depend on the batch."""
        agents = [int(a) for a in np.atleast_1d(agents)]
        if self._callback_agents is not None and not self._callback_agents.issuperset(agents):
            others = sorted(set(agents) - self._callback_agents)
            raise ValueError(f"agents: a callback may act only on the agents in its EpisodeEnds, not on {others}")
        where = {agent: position for position, agent in enumerate(self.ids)}
        return np.array([where[a] for a in agents], dtype=np.int64)

    def weights(self, agents) -> list[torch.Tensor]:
        """Current weight matrices `[k, out, in]` of live `agents` (copies; for drawing masks)."""
        index = torch.from_numpy(self.positions(agents)).to(self.device)
        return [w.detach().index_select(0, index) for w in qnet.weights(self.params)]

    def snapshot(self, agents) -> list[AgentState]:
        """Full states of live `agents` (copies), e.g. to resume them later."""
        return [self.batch.state_at(int(p)) for p in self.positions(agents)]

    def set_mask(self, agents, mask: Sequence[torch.Tensor]) -> None:
        """Prune live `agents` with `mask` (`[k, out, in]` per weight matrix) from now on."""
        positions = self.positions(agents)
        index = torch.from_numpy(positions).to(self.device)
        self.mask = self._masks()
        self.pruned[positions] = True
        with torch.no_grad():
            for layer, m in enumerate(mask):
                self.mask[layer][index] = m.to(self.device, self.dtype)
                for tensors in (self.params, self.target):
                    tensors[2 * layer][index] *= self.mask[layer][index]

    @property
    def live(self) -> int:
        """How many agents are training."""
        return len(self.ids)

    def admit(self, agents: Sequence[AgentState]) -> np.ndarray:
        """Add agents to the running population (continuous batching); return their ids.

        They start from the given states (as agents passed to the constructor do, with the
        same `max_episodes`, `early_stop` and callback); since every agent's numbers are
        independent of the batch, an admitted agent trains exactly as it would alone.
        """
        new = Population(
            self.cfg,
            agents,
            early_stop=self.early_stop,
            max_episodes=self.max_episodes,
            device=self.device,
            chunk_size=self.chunk_size,
        )
        new.ids += len(self.records)
        if self.mask is not None or new.mask is not None:
            self.mask, new.mask = self._masks(), new._masks()
        with torch.no_grad():
            self.batch.extend(new.batch)
        self.records.extend(new.records)
        self._progress.total += new._progress.total
        self._progress.set_postfix(live=self.live)
        return new.ids

    def learning_views(self) -> tuple[tuple[np.ndarray, ...], ...]:
        """numpy views of what the fused update reads and writes: (params, target, exp_avg,
        exp_avg_sq, masks (none if unpruned), (Adam steps,), replay fields)."""
        optimizer = self.optimizer
        return self._learning_views(
            self.params,
            self.target,
            optimizer.exp_avg,
            optimizer.exp_avg_sq,
            self.mask or (),
            (optimizer.steps,),
            self.replay.data.values(),
        )

    def _masks(self) -> list[torch.Tensor]:
        """The live agents' masks (all ones for an unpruned population)."""
        return self.mask if self.mask is not None else [torch.ones_like(w.detach()) for w in qnet.weights(self.params)]

    def outcome(self, agent: int) -> tuple[AgentState, str, int]:
        """A stopped agent's final state, stop reason and episodes run (in this population)."""
        records = self.records
        return records.final[agent], records.stop_reason[agent], int(records.episodes_run[agent])

    def release(self, agent: int) -> None:
        """Forget a stopped agent's final state (its caller has stored it): keeps long runs
        with continuous batching, and their checkpoints, small."""
        self.records.final[agent] = None

    def stop(self, agents) -> None:
        """Stop live `agents` (reason 'callback'): from a callback, at the end of the episode
        they have just ended; otherwise at the end of their current episode."""
        self.stop_requested[self.positions(agents)] = True

    # ---- the loop ---------------------------------------------------------------------------

    def run(self, tick: Callable[[Population], None] | None = None) -> PopulationResult:
        """Train until every agent has stopped; return logs and final states. `tick` is
        called between steps, at least once after every step in which an agent stopped and
        after at most `CALL_STEPS` agent-steps (e.g. to save a checkpoint with `state_dict`,
        or to admit agents).

        A compiled population runs its loop on `_loop_threads` threads of its own and torch on
        one: torch's few operations between calls (episode ends, compaction) gain nothing from
        a second thread, and its OpenMP team waits for a partner that another process may
        hold off the CPU (with one core busy, a two-thread run made 7.6k CartPole agent-steps/s
        against 13.9k on one thread; see docs/engine.md)."""
        compiled = self._compiles()
        threads = self._loop_threads()
        torch_threads = torch.get_num_threads()
        if compiled:
            torch.set_num_threads(1)
        try:
            while len(self.ids):
                if compiled:
                    self._advance(threads)
                else:
                    self._step()
                if tick is not None:
                    tick(self)
        finally:
            if compiled:
                torch.set_num_threads(torch_threads)
        self._progress.close()
        columns = ["agent", "episode", "return", "length", "epsilon"]
        log = pd.DataFrame(
            {c: np.concatenate([row[i] for row in self._log]) if self._log else [] for i, c in enumerate(columns)}
        ).sort_values(["agent", "episode"], kind="stable", ignore_index=True)
        records = self.records
        agents = pd.DataFrame(
            {
                "agent": np.arange(len(records)),
                "seed": records.seed,
                "stop_reason": records.stop_reason.tolist(),
                "episodes_run": records.episodes_run,
                "converged_episode": records.converged_episode,
            }
        )
        return PopulationResult(episodes=log, agents=agents, final=records.final.tolist())

    def _step(self) -> None:
        cfg = self.cfg
        accounting.TALLY.population_steps += 1
        accounting.TALLY.agent_steps += len(self.ids)
        greedy = arithmetic.greedy_actions(cfg, self.params, self.obs[:, None, :], self._acting_views)[:, 0]
        explore = rng.uniform(self.seeds, rng.Stream.COIN, self.transitions) < self.epsilon
        random_action = rng.integers(self.seeds, rng.Stream.ACTION, self.transitions, self.n_actions)
        action = np.where(explore, random_action, greedy)

        next_obs, reward, terminated, truncated, info = self.env.step(action)
        done = terminated | truncated
        stored_next = next_obs
        if done.any():
            stored_next = np.where(done[:, None], info["final_obs"], next_obs)
        bootstrap_cut = done if cfg.truncation_is_terminal else terminated
        self.replay.add(
            self.transitions,
            obs=self.obs,
            action=action,
            reward=np.asarray(reward, dtype=np.float32),
            next_obs=np.asarray(stored_next, dtype=np.float32),
            done=bootstrap_cut.astype(np.float32),
        )
        self.transitions += 1
        self.episode_return += reward
        self.episode_length += 1
        if cfg.eps_decay_per == "step":
            self.epsilon = np.maximum(self.epsilon * cfg.eps_decay, cfg.eps_floor)

        due = (self.transitions % cfg.train_freq == 0) & (self.transitions >= cfg.learning_starts)
        if due.any():
            self._learn(np.flatnonzero(due))
        self.obs = next_obs
        if done.any():
            episode_end.end_episodes(self, np.flatnonzero(done))

    def _compiles(self) -> bool:
        """Whether `_advance` (the compiled loop, `ebnb.loop`) runs this population: the fused
        kernel on a built-in env, unless `compiled=False` asked for the step-by-step path."""
        return self.compiled and self.cfg.arithmetic == "fused" and type(self.env) in _COMPILED_ENVS

    @staticmethod
    def _loop_threads() -> int:
        """Threads for the compiled loop: as many as torch uses (1 in a single-threaded worker),
        at most numba's and the CPUs this process may run on."""
        return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS, len(os.sched_getaffinity(0))))

    def _advance(self, threads: int) -> None:
        """Every agent on its own for up to CALL_STEPS / K steps, stopping at its next event
        (`ebnb.loop.advance_population`, on up to `threads` threads)."""
        loop.advance_population(self, threads, -(-CALL_STEPS // len(self.ids)), _COMPILED_ENVS[type(self.env)])

    def _learn(self, positions: np.ndarray) -> None:
        """One gradient step for each agent at batch `positions`, on its own minibatch."""
        if self.cfg.arithmetic == "fused":
            arithmetic.learn_fused(self, positions)
        else:
            arithmetic.learn_torch(self, positions)
        self.updates[positions] += 1
        accounting.TALLY.updates += len(positions)

    @property
    def params(self) -> list[torch.Tensor]:
        """The live agents' online networks, stacked (`optimizer.params`)."""
        return self.batch.optimizer.params


def _live_field(name: str) -> property:
    return property(
        lambda population: getattr(population.batch, name),
        lambda population, value: setattr(population.batch, name, value),
        doc=f"The live agents' `{name}`, in batch order (`LiveAgents.{name}`).",
    )


for _field in fields(LiveAgents):  # population.epsilon is population.batch.epsilon
    setattr(Population, _field.name, _live_field(_field.name))
