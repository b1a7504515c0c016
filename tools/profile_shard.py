"""Where a real shard's time goes: env step, acting, replay, update, test episodes, I/O, idle.

    python tools/profile_shard.py --env acrobot --step finetune -p seeds=[0]
    python tools/profile_shard.py --env cartpole --step retrain -p seeds=[0] --population 64

Computes the dense runs the step needs (untimed) in a temporary store, then the step's
units of the full-profile grid (with `-p` overrides) as one shard in this process, with a
clock around each part of the work. A part's time excludes the parts it calls (replay
sampling inside an update counts as replay), except that test episodes include their own
acting and env steps. "update" is the fused kernel call: forward, TD target, backward, Adam
and the mask together. "idle" is wall time the process did not run on a CPU; "other" is the
rest (Python between the parts, admitting units, bookkeeping). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import ast
import tempfile
import time
import types
from pathlib import Path

from ebnb import arithmetic, envs, experiments, shards
from ebnb import population as engine
from ebnb.checkpoint import Checkpoint
from ebnb.replay import StackedReplay
from ebnb.store import Store

TEST = "test episodes"


class Clock:
    """Exclusive time per part: entering a part pauses the one it was called from."""

    def __init__(self):
        self.parts: dict[str, float] = {}
        self._stack: list[tuple[str, float]] = []

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            if self._stack and self._stack[-1][0] == TEST:
                return function(*args, **kwargs)
            now = time.perf_counter()
            if self._stack:
                outer, since = self._stack[-1]
                self.parts[outer] = self.parts.get(outer, 0.0) + now - since
            self._stack.append((name, now))
            try:
                return function(*args, **kwargs)
            finally:
                end = time.perf_counter()
                self.parts[name] = self.parts.get(name, 0.0) + end - self._stack.pop()[1]
                if self._stack:
                    self._stack[-1] = (self._stack[-1][0], end)

        return timed


def _patch(clock: Clock, undo: list) -> None:
    targets = [
        (arithmetic, "greedy_actions", "acting"),
        (envs._SameStepMixin, "step", "env step"),
        (StackedReplay, "add", "replay"),
        (StackedReplay, "slots", "replay"),
        (engine.Population, "_learn", "update (fused: forward, backward, Adam, mask)"),
        # the modules that test trained networks: ebnb.experiments' own (one file before it was a package)
        *(
            (module, "greedy_returns", TEST)
            for module in (experiments, *vars(experiments).values())
            if isinstance(module, types.ModuleType) and hasattr(module, "greedy_returns")
        ),
        (Store, "save", "store and checkpoint I/O"),
        (Store, "load", "store and checkpoint I/O"),
        (Checkpoint, "save", "store and checkpoint I/O"),
    ]
    for owner, attribute, name in targets:
        original = getattr(owner, attribute)
        undo.append((owner, attribute, original))
        setattr(owner, attribute, clock.wrap(name, original))


def profile(env: str, step: str, overrides: dict, population: int | None) -> tuple[dict, float, float, int]:
    """({part: seconds}, wall seconds, CPU seconds, agent-steps) of one shard of `step`."""
    g = experiments.grid("full", **overrides)
    options = {} if population is None else {"population": population}
    grid_steps = experiments.steps(env, g, **options)
    target = grid_steps[step]
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder))
        for need in target.needs:
            for shard in shards.cut(grid_steps[need].kind, grid_steps[need].units, 512):
                shards.run(store, shard, grid_steps[need].compute)
        order = getattr(experiments, "longest_first", list)  # a checkout before it (a "before" profile): as listed
        shard = shards.cut(target.kind, order(target.units), len(target.units))[0]
        clock, undo = Clock(), []
        _patch(clock, undo)
        agent_steps = []
        real_step = engine.Population._step

        def counting_step(population):
            agent_steps.append(len(population.ids))
            return real_step(population)

        engine.Population._step = counting_step
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            shards.run(store, shard, target.compute, checkpoint_every=120.0)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            engine.Population._step = real_step
            for owner, attribute, original in reversed(undo):
                setattr(owner, attribute, original)
    return clock.parts, wall, cpu, sum(agent_steps)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="acrobot")
    parser.add_argument("--step", default="finetune", help="retrain, winning tickets, finetune or eb_exploit")
    parser.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="grid override, e.g. -p seeds=[0]"
    )
    parser.add_argument("--population", type=int, help="most tickets training at once (default: the engine's)")
    args = parser.parse_args(argv)
    overrides = {}
    for pair in args.param:
        name, _, value = pair.partition("=")
        overrides[name] = ast.literal_eval(value)
    parts, wall, cpu, agent_steps = profile(args.env, args.step, overrides, args.population)
    parts["idle (not on a CPU)"] = max(wall - cpu, 0.0)
    parts["other"] = wall - sum(parts.values())
    print(
        f"{args.env} {args.step} {overrides}: {wall:.1f} s wall, {cpu:.1f} s CPU, {agent_steps:,} agent-steps, "
        f"{agent_steps / wall:,.0f} agent-steps/s"
    )
    for name, seconds in sorted(parts.items(), key=lambda item: -item[1]):
        print(f"  {name:<48} {seconds:8.1f} s {100 * seconds / wall:5.1f}%")


if __name__ == "__main__":
    main()
