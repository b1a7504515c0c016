"""Training the shared dense runs: one population of unpruned agents, each to its episode
cap, with masks drawn and snapshots kept as it goes."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ebnb.agent import AgentState, fresh_agent
from ebnb.checkpoint import Checkpoint
from ebnb.evaluate import greedy_returns
from ebnb.experiments.states import draw_masks, stacked_weights, state_arrays
from ebnb.experiments.units import DenseRun
from ebnb.population import Population
from ebnb.store import Store


def compute_dense(store: Store, units: list[DenseRun], checkpoint: Checkpoint, progress: bool, save) -> None:
    saved = checkpoint.load()
    if saved:
        units = saved["job"]["units"]
    first = units[0]
    cfg = first.dqn
    n_masks = first.episodes // first.mask_every + 1
    snapshot_at = set(first.snapshot_episodes)
    agents = [fresh_agent(cfg, u.seed) for u in units]
    job = (
        saved["job"]
        if saved
        else {
            "drawn": {i: {p: [] for p in first.fractions} for i in range(len(units))},
            "snapshots": {i: {"theta0": agents[i]} for i in range(len(units))},
            "units": units,
        }
    )
    drawn: dict[int, dict[float, list]] = job["drawn"]
    snapshots: dict[int, dict[str, AgentState]] = job["snapshots"]
    draw = functools.partial(draw_masks, drawn, first.fractions)
    if not saved:
        draw(range(len(units)), stacked_weights(agents))

    def on_episode_end(population: Population, ends):
        due = ends.agents[ends.episodes % first.mask_every == 0]
        if len(due):
            draw(due, population.weights(due))
        for agent, episode, converged in zip(ends.agents, ends.episodes, ends.converged):
            if episode in snapshot_at or converged or episode == first.episodes:
                state = population.snapshot([agent])[0]
                if episode in snapshot_at:
                    snapshots[int(agent)][f"e{episode}"] = state
                if converged:
                    snapshots[int(agent)]["converged"] = state
                if episode == first.episodes:
                    snapshots[int(agent)]["last"] = state

    if saved:
        population = Population.restore(saved["population"], callback=on_episode_end, progress=progress)
    else:
        population = Population(
            cfg, agents, early_stop=False, max_episodes=first.episodes, callback=on_episode_end, progress=progress
        )
    result = checkpoint.run(population, "train", job)
    converged_at = result.agents["converged_episode"].to_numpy()
    baseline_states = [snapshots[i].get("converged", snapshots[i]["last"]) for i in range(len(units))]
    tests = greedy_returns(cfg, [s.params for s in baseline_states], [u.seed for u in units], first.test_episodes)
    for i, unit in enumerate(units):
        log = result.episodes[result.episodes.agent == i].drop(columns="agent").reset_index(drop=True)
        never = converged_at[i] < 0
        baseline = pd.DataFrame(
            {
                "seed": [unit.seed],
                "converged": [not never],
                "converged_episode": [int(first.episodes if never else converged_at[i])],
                "test_return": [float(tests[i].mean())],
            }
        )
        states = {}
        for name, state in snapshots[i].items():
            if name != "last":
                states.update(state_arrays(name, state))
        if never:
            states.update(state_arrays("converged", snapshots[i]["last"]))
        mask_arrays = {f"P{p}": np.stack(drawn[i][p]) for p in first.fractions}
        mask_arrays["episodes"] = np.arange(n_masks) * first.mask_every
        save(unit, {"episodes": log, "baseline": baseline, "snapshots": states, "masks": mask_arrays})
