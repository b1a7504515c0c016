"""Golden runs: short trainings whose sha256 hashes are committed in `golden.json`.

For each env, one population of four agents trains until each has made at least 3,000
transitions: a dense agent, an agent pruned by a random 50% mask, an agent resumed out of
phase from a snapshot of its own earlier run, and a fresh agent that stops early. Then
every final network plays greedy test episodes. The hashes cover the per-episode log, the
final parameters, targets, Adam moments and step counts, and the test returns, so a
difference in any bit of the arithmetic shows.

`python tests/golden.py` prints the hashes as JSON; `--write` stores them in golden.json
(do that only on purpose, when the arithmetic changes by design).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from ebnb import masks
from ebnb.agent import fresh_agent
from ebnb.config import ACROBOT, CARTPOLE
from ebnb.evaluate import greedy_returns
from ebnb.population import Population

STEPS = 3000
TEST_EPISODES = 5


def _sha256(arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _run(cfg) -> dict:
    snapshot = {}

    def keep_episode_3(population, ends):
        if 3 in ends.episodes:
            snapshot["state"] = population.snapshot(ends.agents[ends.episodes == 3])[0]

    Population(cfg, [fresh_agent(cfg, 12)], early_stop=False, max_episodes=3, callback=keep_episode_3).run()
    masked = fresh_agent(cfg, 11)
    shapes = [(1, *w.shape) for w in masked.params[0::2]]
    masked = masked.pruned([m[0].numpy() for m in masks.random_masks(shapes, 0.5, [11])])
    agents = [fresh_agent(cfg, 10), masked, snapshot["state"], fresh_agent(cfg, 13)]

    def stop_after_steps(population, ends):
        done = ends.transitions >= STEPS
        done |= (ends.agents == 3) & (ends.transitions >= STEPS // 2)  # leaves early: compaction
        if done.any():
            population.stop(ends.agents[done])

    result = Population(cfg, agents, early_stop=False, callback=stop_after_steps).run()
    log = result.episodes
    final = result.final
    tests = greedy_returns(cfg, [s.params for s in final], [s.seed for s in final], TEST_EPISODES)
    return {
        "episodes": _sha256([log[c].to_numpy() for c in log.columns]),
        "networks": _sha256([a for s in final for a in [*s.params, *s.target, *s.exp_avg, *s.exp_avg_sq]]),
        "adam_steps": [s.adam_steps for s in final],
        "transitions": [s.transitions for s in final],
        "test_returns": _sha256([tests]),
    }


def hashes() -> dict:
    """{env id: hashes of its golden run}."""
    return {cfg.env_id: _run(cfg) for cfg in (CARTPOLE, ACROBOT)}


if __name__ == "__main__":
    values = hashes()
    if sys.argv[1:] == ["--write"]:
        (Path(__file__).resolve().parent / "golden.json").write_text(json.dumps(values, indent=2) + "\n")
    print(json.dumps(values, indent=2))
