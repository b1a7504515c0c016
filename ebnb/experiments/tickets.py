"""Experiments 2 and 3 and their controls: a ticket's mask drawn from its dense run at the prune
episode, the network retrained from m * theta_0 or finetuned from m * theta_e, trained with
continuous batching, tested and stored."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pandas as pd

from ebnb import controls
from ebnb.agent import AgentState, fresh_agent
from ebnb.checkpoint import Checkpoint
from ebnb.config import DQNConfig
from ebnb.evaluate import greedy_returns
from ebnb.experiments.grids import Grid, check_grid
from ebnb.experiments.states import mask_of, state_from, state_sha256
from ebnb.experiments.step import Step, step_results
from ebnb.experiments.units import CONVERGED, ControlRun, DenseRun, SweepTicket, TicketRun, control_units, ticket_units
from ebnb.population import Population
from ebnb.published import Published
from ebnb.store import Store

POPULATION = 64  # most tickets training at once in one shard: throughput against a straggler's latency


def ticket_start(unit: TicketRun | ControlRun | SweepTicket, dense_state: AgentState) -> AgentState:
    """The agent a ticket starts from (docs/protocol.md), given `dense_state`, its dense run's
    state at the end of the prune episode: the mask m is drawn from that state's weights
    (`ebnb.masks.prune`); retrain starts from m * theta_0 with a fresh agent state (the dense
    run's seed: epsilon 1, empty replay, no Adam state), finetune from m * theta_e with the
    dense run's epsilon, replay buffer, Adam state and counters. A control changes the mask
    or the start weights as `ebnb.controls.control_start` says."""
    start = fresh_agent(unit.dense.dqn, unit.dense.seed) if unit.mode == "retrain" else dense_state
    mask = mask_of(dense_state, unit.fraction)
    if isinstance(unit, ControlRun):
        return controls.control_start(unit.control, start, mask, unit.fraction, unit.prune_episode)
    return start.pruned(mask)


def compute_tickets(
    store: Store, units: list[TicketRun], checkpoint: Checkpoint, progress: bool, save, population: int = POPULATION
) -> None:
    """Tickets, their controls or sweep tickets with continuous batching: at most `population`
    train at once; the moment one stops it is tested and saved, and the next unit takes its
    place."""
    saved = checkpoint.load()
    job = saved["job"] if saved else {"units": units, "admitted": min(population, len(units)), "saved": 0}
    units = job["units"]
    cfg, first = units[0].dense.dqn, units[0].dense

    @functools.cache
    def dense_run(dense: DenseRun) -> dict:
        return store.load("dense", dense)

    @functools.lru_cache(maxsize=64)  # units come longest first: those of one (seed, episode) come close together
    def dense_state(dense: DenseRun, episode: int) -> AgentState:
        return dense_state_at(cfg, dense_run(dense)["snapshots"], episode)

    def start_state(unit: TicketRun | ControlRun | SweepTicket) -> AgentState:
        return ticket_start(unit, dense_state(unit.dense, unit.prune_episode))

    def save_and_refill(p: Population) -> None:
        stopped = p.retired[job["saved"] :]  # agent ids are unit indices: units enter in order
        if stopped:
            outcomes = [p.outcome(agent) for agent in stopped]
            tests = greedy_returns(
                cfg,
                [final.params for final, _, _ in outcomes],
                [units[a].dense.seed for a in stopped],
                first.test_episodes,
            )
            for agent, (final, reason, episodes_run), test in zip(stopped, outcomes, tests):
                unit = units[agent]
                prune_episode = unit.prune_episode
                if prune_episode == CONVERGED:
                    prune_episode = int(dense_run(unit.dense)["baseline"]["converged_episode"].iloc[0])
                continued = isinstance(unit, TicketRun) and unit.mode == "finetune"
                before = dense_state(unit.dense, unit.prune_episode) if continued else None
                save(
                    unit,
                    {
                        "result": pd.DataFrame(
                            {
                                "seed": [unit.dense.seed],
                                "P": [unit.fraction],
                                "prune_episode": [prune_episode],
                                **_extra_columns(unit, final, before),
                                "length": [episodes_run],
                                "converged": [reason == "early_stop"],
                                "test_return": [float(test.mean())],
                                "state_sha256": [state_sha256(final)],
                            }
                        )
                    },
                )
                p.release(agent)
            job["saved"] += len(stopped)
        waiting = units[job["admitted"] : job["admitted"] + population - p.live]
        if waiting:
            p.admit([start_state(unit) for unit in waiting])
            job["admitted"] += len(waiting)

    if saved:
        pool = Population.restore(saved["population"], progress=progress)
    else:
        pool = Population(
            cfg,
            [start_state(u) for u in units[: job["admitted"]]],
            early_stop=True,
            max_episodes=first.episodes,
            progress=progress,
        )
    checkpoint.run(pool, "train", job, tick=save_and_refill)


def _extra_columns(unit, final: AgentState, before: AgentState | None) -> dict[str, list]:
    """What a unit's result adds to a ticket's columns: a control its name; a sweep ticket
    its final agent's lifetime env steps and gradient updates (the dense run's before pruning
    included); a ticket the env steps and updates it made after pruning (`before`: the state
    it continued from, None if it started fresh)."""
    if isinstance(unit, ControlRun):
        return {"control": [unit.control]}
    if isinstance(unit, SweepTicket):
        return {"env_steps": [final.transitions], "updates": [final.updates]}
    return {
        "post_prune_env_steps": [final.transitions - (before.transitions if before else 0)],
        "post_prune_updates": [final.updates - (before.updates if before else 0)],
    }


def dense_state_at(cfg: DQNConfig, snapshots: dict, episode: int) -> AgentState:
    """A dense run's state at the end of `episode` (CONVERGED: where early stopping would
    fire): its snapshot there, else its latest earlier snapshot (theta_0 at the latest) trained
    on without early stopping to `episode`, which continues the dense run bit for bit."""
    if episode == CONVERGED:
        return state_from(snapshots, "converged")
    at = {name: int(snapshots[f"{name}.episodes"]) for name in sorted({key.split(".", 1)[0] for key in snapshots})}
    nearest = max((name for name in at if at[name] <= episode), key=lambda name: at[name])
    state = state_from(snapshots, nearest)
    if at[nearest] == episode:
        return state
    return Population(cfg, [state], early_stop=False, max_episodes=episode - at[nearest]).run().final[0]


# name: (store kind, the units of a grid); every ticket step reads the dense runs
_TICKET_STEPS = {
    "retrain": ("ticket", lambda env, g: ticket_units(env, g, "retrain", g.prune_episodes)),
    "winning tickets": ("ticket", lambda env, g: ticket_units(env, g, "retrain", (CONVERGED,))),
    "finetune": ("ticket", lambda env, g: ticket_units(env, g, "finetune", g.prune_episodes)),
    # beyond the thesis (notebook 05): sparser P, at the control episodes
    "sparse retrain": (
        "ticket",
        lambda env, g: ticket_units(env, g, "retrain", g.control_episodes, g.sparse_fractions),
    ),
    "sparse finetune": (
        "ticket",
        lambda env, g: ticket_units(env, g, "finetune", g.control_episodes, g.sparse_fractions),
    ),
    "retrain controls": ("control", lambda env, g: control_units(env, g, "retrain")),
    "finetune controls": ("control", lambda env, g: control_units(env, g, "finetune")),
}


def ticket_step(env: str, g: Grid, name: str, compute: Callable = compute_tickets) -> Step:
    """The ticket step `name` (a key of `_TICKET_STEPS`) of `g`, its units computed by
    `compute` (`compute_tickets`, perhaps with another `population`)."""
    kind, units = _TICKET_STEPS[name]
    return Step(name, kind, tuple(units(env, check_grid(g))), compute, ("dense runs",))


def _tickets(env: str, g: Grid, store: Store, step: str, published: Published | None, progress: bool) -> pd.DataFrame:
    results = step_results(store, ticket_step(env, g, step), published, progress)
    return pd.concat([r["result"] for r in results], ignore_index=True)


def retrain(
    env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False
) -> pd.DataFrame:
    """Experiment 2: mask from theta_e, retrain m * theta_0 with a fresh agent state.
    Columns: seed, P, prune_episode, post_prune_env_steps and post_prune_updates (made after
    pruning; absent from results published before they were recorded), length (episodes to
    early stopping, or the cap), converged, test_return, state_sha256 (of the final agent
    state: `state_sha256`)."""
    return _tickets(env, g, store, "retrain", published, progress)


def winning_tickets(
    env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False
) -> pd.DataFrame:
    """One-shot magnitude pruning at convergence, retrained (columns as `retrain`;
    prune_episode is the dense run's convergence episode)."""
    return _tickets(env, g, store, "winning tickets", published, progress)


def finetune(
    env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False
) -> pd.DataFrame:
    """Experiment 3: the dense run goes on from m * theta_e keeping epsilon, replay buffer and
    Adam state; length counts from pruning (columns as `retrain`)."""
    return _tickets(env, g, store, "finetune", published, progress)


def controlled_tickets(
    env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False
) -> pd.DataFrame:
    """Every ticket of `g.control_episodes` at P in `g.fractions + g.sparse_fractions`, and
    its controls, as one table: the columns of `retrain` plus mode ("retrain" | "finetune")
    and control ("l1" for the ticket itself, else an `ebnb.controls.CONTROLS` name)."""
    tables = []
    for mode in ("retrain", "finetune"):
        l1 = _tickets(env, g, store, mode, published, progress)
        tables.append(l1[l1.prune_episode.isin(g.control_episodes)].assign(mode=mode, control="l1"))
        if g.sparse_fractions:
            tables.append(
                _tickets(env, g, store, f"sparse {mode}", published, progress).assign(mode=mode, control="l1")
            )
        if any(mode in controls.CONTROLS[c] for c in g.controls):
            tables.append(_tickets(env, g, store, f"{mode} controls", published, progress).assign(mode=mode))
    columns = ["mode", "control", "seed", "P", "prune_episode", "length", "converged", "test_return", "state_sha256"]
    return pd.concat(tables, ignore_index=True)[columns]
