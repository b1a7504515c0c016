"""The protocol steps of docs/protocol.md, each a function of frozen configs, cached in a Store.

Every unit of work (one dense run, one retrained ticket, one EB Exploit run, ...) has a
frozen config that names its result in the store. A `Step` is the units a grid asks for and
how to compute missing ones; it runs in shards (`ebnb.shards`: all missing units of a shard
trained together in one population, checkpointed while running), then the step's function
returns tidy DataFrames. Data flows one way: grid -> units -> shards -> population -> store.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import gymnasium
import numpy as np
import pandas as pd
import torch

from ebnb import controls, masks, published, qnet, shards, sweep
from ebnb.agent import AgentState, fresh_agent
from ebnb.checkpoint import Checkpoint
from ebnb.config import DQNConfig, check_fraction, check_positive_int, check_seed, dqn_config
from ebnb.evaluate import greedy_returns
from ebnb.population import Population
from ebnb.published import Published
from ebnb.store import Store

CONVERGED = -1  # prune_episode of a winning ticket: drawn where early stopping would fire
PROJECT = Path(__file__).resolve().parents[1]


def _folder(variable: str, default: Path) -> Path:
    """The folder $`variable` names (relative: to the project, whichever folder runs the
    kernel), else `default`; set but empty is a ValueError naming the variable."""
    value = os.environ.get(variable)
    if value is None:
        return default
    if not value.strip():
        raise ValueError(f"{variable}: set but empty; unset it for the default {shown(default)}/, or give a folder")
    return PROJECT / Path(value).expanduser()


def default_store() -> Path:
    """Where results are cached: $EBNB_STORE, else store/ in the project."""
    return _folder("EBNB_STORE", PROJECT / "store")


def default_outputs() -> Path:
    """Where runs write executed notebooks and figures: $EBNB_OUTPUTS, else outputs/ in the
    project (a working folder, not committed; `pipeline.py publish` publishes from it)."""
    return _folder("EBNB_OUTPUTS", PROJECT / "outputs")


def default_figures(run: str) -> Path:
    """The figures folder of a run: <outputs>/<run>/figures, `run` as `run_name` gives it."""
    return default_outputs() / run / "figures"


def default_published() -> Path:
    """The published results: $EBNB_RESULTS, else results/ in the project."""
    return _folder("EBNB_RESULTS", PROJECT / "results")


def published_results(root: str | Path | None = None) -> Published | None:
    """The published results at `root` (default `default_published()`); None if there is no
    folder at a `root` given (a project's first publish). A missing default folder, or a
    manifest missing or damaged, is a ValueError naming it and saying how to restore it
    (`ebnb.published.Published`), never silently "no published results"."""
    try:
        return Published(root or default_published())
    except FileNotFoundError:
        if root is None:
            raise ValueError(f"{shown(default_published())}/ is missing: no published results; "
                             f"{published.RESTORE}") from None  # fmt: skip
        return None


def shown(path: str | Path) -> str:
    """`path` relative to the project if it lies inside it (output that reads the same on any
    machine), else as given."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(PROJECT))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Grid:
    """What the experiments cover; `PROFILES["full"]` is the thesis."""

    seeds: tuple[int, ...] = tuple(range(10))
    fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    prune_episodes: tuple[int, ...] = (5, 20, 30, 40, 50, 75, 100, 130, 180, 250, 400, 500)
    episodes: int = 500  # dense-run length, and the cap of every training phase
    test_episodes: int = 100
    mask_every: int = 2  # experiment 1 draws a mask every this many episodes
    # beyond the thesis (notebook 05): controls of each ticket and sparser P, at these of prune_episodes
    control_episodes: tuple[int, ...] = (5, 30, 100, 250)
    sparse_fractions: tuple[float, ...] = ()  # P beyond the thesis' (profile full_sparse: 0.9, 0.95, 0.98)
    controls: tuple[str, ...] = tuple(controls.CONTROLS)

    def __post_init__(self):
        for name in ("seeds", "fractions", "prune_episodes", "control_episodes", "sparse_fractions", "controls"):
            values = getattr(self, name)
            if not isinstance(values, tuple):
                example = getattr(Grid, name)[0]
                raise ValueError(f"{name}: must be a list of values, e.g. {name}=[{example!r}], got {values!r}")
            if not values and name in ("seeds", "fractions", "prune_episodes"):
                raise ValueError(f"{name}: the grid needs at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: {list(values)} names a value twice")
        for seed in self.seeds:
            check_seed("seeds", seed)
        for fraction in self.fractions:
            check_fraction("fractions", fraction)
        check_positive_int("episodes", self.episodes)
        check_positive_int("test_episodes", self.test_episodes)
        check_positive_int("mask_every", self.mask_every)
        for episode in self.prune_episodes:
            if isinstance(episode, bool) or not isinstance(episode, int) or not 1 <= episode <= self.episodes:
                raise ValueError(f"prune_episodes: each must be an integer in [1, episodes={self.episodes}], got {episode!r}")
        for episode in self.control_episodes:
            if episode not in self.prune_episodes:
                raise ValueError(f"control_episodes: each must be one of prune_episodes {list(self.prune_episodes)}, "
                                 f"got {episode!r}")  # fmt: skip
        for fraction in self.sparse_fractions:
            check_fraction("sparse_fractions", fraction)
            if fraction in self.fractions:
                raise ValueError(f"sparse_fractions: {fraction} is already in fractions {list(self.fractions)}")
        for control in self.controls:
            if control not in controls.CONTROLS:
                raise ValueError(f"controls: unknown {control!r}; allowed: {', '.join(controls.CONTROLS)}")


PROFILES = {
    "full": Grid(),
    "quick": Grid(seeds=(0, 1), fractions=(0.2, 0.8), prune_episodes=(2, 6), episodes=10, test_episodes=5,
                  control_episodes=(6,), sparse_fractions=(0.95,)),
    "full15": Grid(seeds=tuple(range(15))),  # the thesis grid with 15 seeds (as Vischer et al. 2022); 0-9 shared
    "full_sparse": Grid(sparse_fractions=(0.9, 0.95, 0.98)),  # the full profile plus sparser tickets and controls
    # fresh seeds for the sweep's hypotheses only (`eb_exploit_sweep_at`, notebook 06's compute_fresh)
    "sweep_fresh": Grid(seeds=sweep.FRESH_SEEDS),
}


EB_EXPLOIT_DEFAULTS = {"xi": 0.1, "window": 2, "rewind": False}  # thesis 3.5; see check_eb_exploit


def _changes(profile: str, g: Grid, eb_exploit: dict) -> list[tuple[str, object]]:
    """(name, value) of each setting of `g` and EB Exploit that differs from the profile."""
    base, defaults = PROFILES[profile], {**EB_EXPLOIT_DEFAULTS, **sweep.DEFAULTS}
    changed = [(f.name, getattr(g, f.name)) for f in fields(Grid) if getattr(g, f.name) != getattr(base, f.name)]
    as_given = {name: tuple(value) if isinstance(value, list) else value for name, value in eb_exploit.items()}
    return changed + [(name, value) for name, value in as_given.items() if value != defaults[name]]


def run_name(profile: str, g: Grid, **eb_exploit) -> str:
    """Name of a run's outputs folder: the profile, then each setting (of the grid, EB Exploit
    and its sweep) that differs from it, e.g. ``full``, ``quick``, ``full-seeds=0_1-xi=0.05``."""
    def text(value):
        return "_".join(map(str, value)) if isinstance(value, tuple) else str(value)

    return "-".join([profile] + [f"{name}={text(value)}" for name, value in _changes(profile, g, eb_exploit)])


def figure_note(profile: str, g: Grid, **eb_exploit) -> str | None:
    """What a figure shows if not the thesis (full profile as it is): None, or e.g.
    'quick profile, not the thesis grid' / 'full profile with seeds=[0, 1]: not the thesis grid'."""
    changes = _changes(profile, g, eb_exploit)
    if profile == "full" and not changes:
        return None
    settings = ", ".join(f"{name}={list(v) if isinstance(v, tuple) else v}" for name, v in changes)
    return f"{profile} profile{' with ' + settings if settings else ''}: not the thesis grid"


def grid(profile: str = "quick", **overrides) -> Grid:
    """The grid of a profile ('full' = the thesis, 'quick'), with fields overridden by name
    (None keeps the profile's value). Overriding prune_episodes alone keeps those of the
    profile's control_episodes that are still prune episodes."""
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown {profile!r}; allowed: {', '.join(PROFILES)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    names = {f.name for f in fields(Grid)}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: not a grid parameter; allowed: {', '.join(sorted(names))}")
    base = PROFILES[profile]
    as_tuple = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in overrides.items()}
    if isinstance(as_tuple.get("prune_episodes"), tuple) and "control_episodes" not in as_tuple:
        # the profile's control episodes that remain prune episodes (none: no controls)
        as_tuple["control_episodes"] = tuple(e for e in base.control_episodes if e in as_tuple["prune_episodes"])
    return Grid(**{**{f.name: getattr(base, f.name) for f in fields(Grid)}, **as_tuple})


# ---- units of work --------------------------------------------------------------------------


@dataclass(frozen=True)
class DenseRun:
    """One unpruned agent trained for `episodes` without early stopping (PROTOCOL: shared runs)."""

    dqn: DQNConfig
    seed: int
    episodes: int
    snapshot_episodes: tuple[int, ...]
    fractions: tuple[float, ...]
    mask_every: int
    test_episodes: int


@dataclass(frozen=True)
class TicketRun:
    """A sparse agent from a dense run: mask from theta at `prune_episode` (CONVERGED: where
    early stopping would fire), then retrained from m * theta_0 or finetuned from m * theta_e."""

    dense: DenseRun
    fraction: float
    prune_episode: int
    mode: str  # "retrain" | "finetune"


class _OfTicket:
    """A unit trained like its field `ticket`: the same dense run, P, prune episode and mode."""

    @property
    def dense(self) -> DenseRun:
        return self.ticket.dense

    @property
    def fraction(self) -> float:
        return self.ticket.fraction

    @property
    def prune_episode(self) -> int:
        return self.ticket.prune_episode

    @property
    def mode(self) -> str:
        return self.ticket.mode


@dataclass(frozen=True)
class ControlRun(_OfTicket):
    """A control of `ticket` (`ebnb.controls`): the same dense run, P, prune episode and mode,
    with the mask or the start weights changed as `control` says."""

    ticket: TicketRun
    control: str


@dataclass(frozen=True)
class EBExploitRun:
    """EB Exploit (thesis algorithm 3.1) for one seed and P."""

    dqn: DQNConfig
    seed: int
    fraction: float
    xi: float
    window: int
    rewind: bool  # False: finetune from m * theta_now (default); True: retrain from m * theta_0
    episodes: int
    test_episodes: int


@dataclass(frozen=True)
class MaskTrace:
    """A dense run trained again (early stopping off, to its cap), recording the global-L1 mask
    of every P of `dense.fractions` after every episode, with epsilon and counters (the search
    of every EB Exploit setting: `ebnb.sweep`)."""

    dense: DenseRun


@dataclass(frozen=True)
class EBSweepRun:
    """EB Exploit of one seed at every setting of a sweep grid (`ebnb.sweep.grid`) and every P
    of its dense run: the search read off the dense run's `MaskTrace`, the rest the
    `SweepTicket` at the episode found."""

    dense: DenseRun
    xis: tuple[float, ...]
    windows: tuple[int, ...]
    detectors: tuple[str, ...]
    starts: tuple[str, ...]


@dataclass(frozen=True)
class SweepTicket(_OfTicket):
    """The rest of an EB Exploit run of the sweep: the finetune `ticket`, at any episode (not
    only a snapshot's), trained and tested as the ticket, its result also recording env steps
    and gradient updates."""

    ticket: TicketRun


SHARD_SIZE = 512  # in-process default: a whole step of the thesis grid in one population


@dataclass(frozen=True)
class Step:
    """One protocol step for one env: its units, the store kind they are saved under, how
    to compute missing ones (`ebnb.shards.Compute`), and the steps whose results it reads."""

    name: str
    kind: str
    units: tuple
    compute: Callable = field(compare=False)
    needs: tuple[str, ...] = ()
    # inputs(store, units): the next Step of inputs that `units` read and the store lacks, or
    # None; for inputs that can only be planned from other stored results (`input_stages`)
    inputs: Callable | None = field(default=None, compare=False)


def expected_steps(unit) -> float:
    """A unit's a-priori cost in agent-steps, for scheduling only (longest first): its
    episodes times the env's episode step limit. Episodes: the cap for dense, EB Exploit and
    retrained units; for a finetuned one, the cap minus its prune episode (a network pruned
    late has mostly learned already); higher P breaks ties."""
    if isinstance(unit, (TicketRun, ControlRun, SweepTicket)):
        start = max(unit.prune_episode, 0) if unit.mode == "finetune" else 0
        episodes = unit.dense.episodes - start + unit.fraction
    else:
        episodes = float(getattr(unit, "dense", unit).episodes)
    return episodes * (gymnasium.spec(env_id(unit)).max_episode_steps or 1000)


def env_id(unit) -> str:
    """The gymnasium id a unit trains on."""
    return getattr(unit, "dense", unit).dqn.env_id


def longest_first(units) -> list:
    """`units` by `expected_steps`, longest first (stable)."""
    return sorted(units, key=expected_steps, reverse=True)


def _inputs(units) -> list:
    """The units of other steps that `units` read (tickets, controls and the sweep read their
    dense run), in order."""
    readers = (TicketRun, ControlRun, SweepTicket, EBSweepRun)
    return list(dict.fromkeys(u.dense for u in units if isinstance(u, readers)))


def input_stages(store: Store, step: Step, units=None) -> Iterator[Step]:
    """The steps of inputs that `units` (default: `step`'s) read and the store lacks, planned
    one at a time by `step.inputs` once the store holds the previous one (the caller stores
    each before asking for the next); nothing for a step without `inputs`."""
    units, previous = tuple(step.units if units is None else units), None
    while step.inputs is not None and (stage := step.inputs(store, units)) is not None:
        if stage == previous:
            raise RuntimeError(f"{step.name}: {stage.name} were computed but are still missing from {store.root}")
        yield stage
        previous = stage


def _compute_missing(store: Store, step: Step, units, progress: bool) -> None:
    """Compute and store those of `units` (of `step`) that are not stored yet, after the
    dense runs and other inputs they read."""
    _store_missing(store, "dense", _compute_dense, _inputs(units), progress)
    for stage in input_stages(store, step, units):
        _store_missing(store, stage.kind, stage.compute, stage.units, progress)
    _store_missing(store, step.kind, step.compute, units, progress)


def _store_missing(store: Store, kind: str, compute: Callable, units, progress: bool) -> None:
    """Compute and store those of `units` (all of `kind`) that are not stored yet, in shards
    (`ebnb.shards`), longest first."""
    for shard in shards.cut(kind, longest_first(units), SHARD_SIZE) if units else ():
        shards.run(store, shard, compute, progress=progress)


def published_view(step: str, result: dict, parts: tuple[str, ...] | None = None) -> dict:
    """What the notebooks read of a stored unit, and so what `ebnb.published` holds of it: a
    dense run's training log, baseline, mask disagreement counts and input survival (not its
    snapshots and masks, which only ticket training reads); any other unit's result as it is.
    `parts`: only these (None: all)."""
    if step != "dense runs":
        return result
    return {name: _DENSE_VIEW[name](result) for name in parts or _DENSE_VIEW}


def _weight_shapes(result: dict) -> list[tuple[int, ...]]:
    """Shapes of a dense run's weight matrices ([out, in] each)."""
    return [w.shape for w in qnet.weights(_state_from(result["snapshots"], "theta0").params)]


def _unpacked_masks(result: dict) -> dict[str, np.ndarray]:
    """A dense run's masks per P ("P0.2": bool [episodes drawn, weights])."""
    n_weights = sum(int(np.prod(shape)) for shape in _weight_shapes(result))
    return {key: masks.unpack(packed, n_weights) for key, packed in result["masks"].items() if key != "episodes"}


def _disagreements(result: dict) -> dict[str, np.ndarray]:
    """A dense run's masks as `masks.disagreement_counts` per P, condensed (scipy's
    `squareform`: the upper triangle), with the episodes they were drawn at and the weight count."""
    from scipy.spatial.distance import squareform

    n_weights = sum(int(np.prod(shape)) for shape in _weight_shapes(result))
    out = {"episodes": result["masks"]["episodes"], "n_weights": np.array(n_weights)}
    for key, drawn in _unpacked_masks(result).items():
        out[key] = squareform(masks.disagreement_counts(drawn).astype(np.min_scalar_type(n_weights)), checks=False)
    return out


def _input_survival(result: dict) -> dict[str, np.ndarray]:
    """Per P ("P0.2"), the share of each input's outgoing first-layer weights that a dense
    run's masks keep, float64 [episodes drawn, inputs], with the episodes ("episodes")."""
    hidden, n_inputs = _weight_shapes(result)[0]
    out = {"episodes": result["masks"]["episodes"]}
    for key, drawn in _unpacked_masks(result).items():
        out[key] = drawn[:, : hidden * n_inputs].reshape(len(drawn), hidden, n_inputs).mean(axis=1)
    return out


_DENSE_VIEW = {"episodes": lambda r: r["episodes"], "baseline": lambda r: r["baseline"], "disagreements": _disagreements,
               "input_survival": _input_survival}  # fmt: skip


def _sources(store: Store, step: Step, published: Published | None) -> tuple[list, dict]:
    """(`step`'s units the store lacks, {unit: parts} of those `published` holds)."""
    missing = [u for u in step.units if not store.exists(step.kind, u)]
    return missing, published.parts(env_id(step.units[0]), step.name, missing) if published and missing else {}


def _results(store: Store, step: Step, published: Published | None, progress: bool,
             parts: tuple[str, ...] | None = None) -> list[dict]:  # fmt: skip
    """`published_view` of each of `step`'s units (`parts` of it), in order: from the store,
    else from `published` (by config hash), else computed and stored. With `progress`, says
    where they came from."""
    missing, found = _sources(store, step, published)
    _compute_missing(store, step, [u for u in missing if u not in found], progress)
    if progress:
        source = f"loaded {{}} units from {shown(published.root)}/ (made by {published.made_by})" if found else ""
        counts = {"loaded {} units from the store": len(step.units) - len(missing), source: len(found),
                  "computed {} units": len(missing) - len(found)}  # fmt: skip
        print(f"{step.name}: " + ", ".join(text.format(n) for text, n in counts.items() if n), flush=True)
    return list(_gather(store, step, found, parts).values())


def collect(store: Store, step: Step, published: Published | None, parts: tuple[str, ...] | None = None) -> dict:
    """{unit: `published_view` (`parts` of it)} of every unit of `step`, from the store, else
    from `published`; computes nothing: ValueError if some unit is in neither."""
    missing, found = _sources(store, step, published)
    lacking = len(missing) - len(found)
    if lacking:
        raise ValueError(f"{step.name}: {lacking} of {len(step.units)} units are neither in the store {store.root} nor "
                         "published; compute them first (pipeline.py compute)")  # fmt: skip
    return _gather(store, step, found, parts)


def _gather(store: Store, step: Step, found: dict, parts: tuple[str, ...] | None) -> dict:
    """{unit: `published_view`} of `step`'s units: those in `found` (published parts) from
    there, every other one loaded from the store."""
    chosen = {u: {p: found[u][p] for p in parts or found[u]} for u in found}
    return {u: chosen[u] if u in chosen else published_view(step.name, store.load(step.kind, u), parts)
            for u in step.units}  # fmt: skip


def to_compute(env_steps: dict[str, Step], names, published: Published | None) -> list[Step]:
    """The steps `names` read (in the order of `env_steps`), each narrowed to the units that
    `published` lacks, plus the dense runs that those tickets read; empty steps dropped."""
    names = [name for name in names if name in env_steps]  # a grid may have no controls or sparse P
    wanted = set(names) | {need for name in names for need in env_steps[name].needs}
    chosen = {name: step for name, step in env_steps.items() if name in wanted}
    if published is not None:
        for name, step in chosen.items():
            held = published.parts(env_id(step.units[0]), name, step.units)
            chosen[name] = dataclasses.replace(step, units=tuple(u for u in step.units if u not in held))
        inputs = _inputs(u for step in chosen.values() for u in step.units)
        dense = chosen.get("dense runs")
        if dense is not None:
            chosen["dense runs"] = dataclasses.replace(dense, units=tuple(dict.fromkeys(dense.units + tuple(inputs))))
    return [step for step in chosen.values() if step.units]


def _state_arrays(prefix: str, state: AgentState) -> dict[str, np.ndarray]:
    return {f"{prefix}.{name}": array for name, array in state.to_arrays().items()}


def _state_from(arrays: dict, prefix: str) -> AgentState:
    head = prefix + "."
    return AgentState.from_arrays({k[len(head):]: v for k, v in arrays.items() if k.startswith(head)})


def state_sha256(state: AgentState) -> str:
    """sha256 of an agent's complete state (`AgentState.to_arrays`: parameters, target, mask,
    Adam moments and step count, replay buffer, epsilon, counters), names, dtypes and shapes
    included. Ticket and EB Exploit results store it (column `state_sha256`) for the final
    network, so byte-identical stored results mean identical trained networks."""
    digest = hashlib.sha256()
    for name, array in sorted(state.to_arrays().items()):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _weights(state: AgentState) -> list[torch.Tensor]:
    return [torch.from_numpy(np.asarray(w))[None] for w in qnet.weights(state.params)]


def _mask(state: AgentState, fraction: float) -> list[np.ndarray]:
    """Global L1 mask of an agent's current weights at P = fraction."""
    return [m[0].numpy() for m in masks.global_magnitude_masks(_weights(state), fraction)]


# ---- shared dense runs ----------------------------------------------------------------------


def _draw(drawn: dict[int, dict[float, list]], fractions, agent_ids, weights) -> None:
    """Append to `drawn[agent][P]` the packed flat global-L1 mask of each agent's `weights`."""
    for fraction in fractions:
        flat = masks.flatten(masks.global_magnitude_masks(weights, fraction)).numpy()
        for row, agent in enumerate(agent_ids):
            drawn[int(agent)][fraction].append(masks.pack(flat[row]))


def _stacked_weights(agents: list[AgentState]) -> list[torch.Tensor]:
    return [torch.cat(w) for w in zip(*[_weights(a) for a in agents])]


def dense_units(env: str, g: Grid) -> list[DenseRun]:
    cfg = dqn_config(env, max_episodes=g.episodes)
    return [DenseRun(cfg, seed, g.episodes, tuple(sorted(set(g.prune_episodes))), g.fractions, g.mask_every,
                     g.test_episodes) for seed in g.seeds]  # fmt: skip


def _compute_dense(store: Store, units: list[DenseRun], checkpoint: Checkpoint, progress: bool, save) -> None:
    saved = checkpoint.load()
    if saved:
        units = saved["job"]["units"]
    first = units[0]
    cfg = first.dqn
    n_masks = first.episodes // first.mask_every + 1
    snapshot_at = set(first.snapshot_episodes)
    agents = [fresh_agent(cfg, u.seed) for u in units]
    job = saved["job"] if saved else {
        "drawn": {i: {p: [] for p in first.fractions} for i in range(len(units))},
        "snapshots": {i: {"theta0": agents[i]} for i in range(len(units))},
        "units": units,
    }  # fmt: skip
    drawn: dict[int, dict[float, list]] = job["drawn"]
    snapshots: dict[int, dict[str, AgentState]] = job["snapshots"]
    draw = functools.partial(_draw, drawn, first.fractions)
    if not saved:
        draw(range(len(units)), _stacked_weights(agents))

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
        population = Population(cfg, agents, early_stop=False, max_episodes=first.episodes,
                                callback=on_episode_end, progress=progress)  # fmt: skip
    result = checkpoint.run(population, "train", job)
    converged_at = result.agents["converged_episode"].to_numpy()
    baseline_states = [snapshots[i].get("converged", snapshots[i]["last"]) for i in range(len(units))]
    tests = greedy_returns(cfg, [s.params for s in baseline_states], [u.seed for u in units], first.test_episodes)
    for i, unit in enumerate(units):
        log = result.episodes[result.episodes.agent == i].drop(columns="agent").reset_index(drop=True)
        never = converged_at[i] < 0
        baseline = pd.DataFrame({
            "seed": [unit.seed], "converged": [not never],
            "converged_episode": [int(first.episodes if never else converged_at[i])],
            "test_return": [float(tests[i].mean())],
        })  # fmt: skip
        states = {}
        for name, state in snapshots[i].items():
            if name != "last":
                states.update(_state_arrays(name, state))
        if never:
            states.update(_state_arrays("converged", snapshots[i]["last"]))
        mask_arrays = {f"P{p}": np.stack(drawn[i][p]) for p in first.fractions}
        mask_arrays["episodes"] = np.arange(n_masks) * first.mask_every
        save(unit, {"episodes": log, "baseline": baseline, "snapshots": states, "masks": mask_arrays})


def dense_runs(env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False,
               parts: tuple[str, ...] | None = None) -> list[dict]:  # fmt: skip
    """The shared dense runs of `g.seeds` as `published_view` gives them (`parts` of it;
    trained together where neither the store nor `published` holds them)."""
    return _results(store, steps(env, g)["dense runs"], published, progress, parts)


def training_curves(env: str, g: Grid, store: Store, published: Published | None = None,
                    progress: bool = False) -> pd.DataFrame:  # fmt: skip
    """Per-episode log of the dense runs: seed, episode, return, length, epsilon."""
    runs = dense_runs(env, g, store, published, progress, ("episodes",))
    return pd.concat([r["episodes"].assign(seed=s) for s, r in zip(g.seeds, runs)], ignore_index=True)


def baseline(env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False) -> pd.DataFrame:
    """Unpruned baseline per seed: converged (bool), converged_episode (its training length;
    the episode cap where it never converged) and test_return (mean greedy return)."""
    runs = dense_runs(env, g, store, published, progress, ("baseline",))
    return pd.concat([r["baseline"] for r in runs], ignore_index=True)


# ---- experiment 1 ---------------------------------------------------------------------------


def mask_similarity(env: str, g: Grid, store: Store, published: Published | None = None,
                    progress: bool = False) -> dict[float, pd.DataFrame]:  # fmt: skip
    """Experiment 1: per P, the seeds' mean similarity (1 - Hamming) between masks drawn at
    episodes 0, mask_every, ...; a square DataFrame indexed by episode on both axes."""
    from scipy.spatial.distance import squareform

    runs = [r["disagreements"] for r in dense_runs(env, g, store, published, progress, ("disagreements",))]
    episodes = runs[0]["episodes"]
    out = {}
    for fraction in g.fractions:
        matrices = [masks.similarity_from_counts(squareform(r[f"P{fraction}"]), int(r["n_weights"])) for r in runs]
        out[fraction] = pd.DataFrame(np.mean(matrices, axis=0), index=episodes, columns=episodes)
    return out


def input_survival(env: str, g: Grid, store: Store, published: Published | None = None,
                   progress: bool = False) -> pd.DataFrame:  # fmt: skip
    """Per seed, P, mask episode and input feature: the share of that input's outgoing
    first-layer weights that the dense run's L1 mask keeps (the masks of experiment 1).
    Columns: seed, P, episode, feature (`envs.observation_names`), kept."""
    from ebnb.envs import observation_names

    runs = dense_runs(env, g, store, published, progress, ("input_survival",))
    gym_id = dqn_config(env).env_id
    rows = []
    for seed, run in zip(g.seeds, runs):
        view = run["input_survival"]
        for fraction in g.fractions:
            kept = view[f"P{fraction}"]
            names = observation_names(gym_id, kept.shape[1])
            rows.append(pd.DataFrame({
                "seed": seed, "P": fraction, "episode": np.repeat(view["episodes"], kept.shape[1]),
                "feature": np.tile(names, len(kept)), "kept": kept.reshape(-1),
            }))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def layer_kept(survival: np.ndarray, hidden: int, n_weights: int, fraction: float) -> tuple[np.ndarray, list[int]]:
    """(kept shares [episodes, 2], layer sizes [2]) of a dense run's masks at P = `fraction`:
    the first weight matrix ([hidden, inputs]: its kept share is the mean of `survival`,
    `input_survival`'s [episodes, inputs]) and all later ones together, whose kept count is the
    mask's, N - round(P N), less the first layer's. Exact for a network of two weight matrices
    (Acrobot); CartPole's last two (128 x 128 and 2 x 128) are pooled."""
    survival = np.asarray(survival, dtype=np.float64)
    first = hidden * survival.shape[1]
    kept_first = np.rint(survival.sum(axis=1) * hidden)
    kept_rest = n_weights - masks.n_pruned(fraction, n_weights) - kept_first
    sizes = [first, n_weights - first]
    return np.stack([kept_first / sizes[0], kept_rest / sizes[1]], axis=1), sizes


def mask_agreement(env: str, g: Grid, store: Store, published: Published | None = None,
                   progress: bool = False) -> dict[float, dict[str, np.ndarray]]:  # fmt: skip
    """Experiment 1 per seed, with the agreement chance alone gives: per P, "episodes" of the
    masks, and per seed [seeds, T, T] "similarity" (1 - Hamming, as `mask_similarity`) and
    "chance", the share two independent masks with the two masks' per-layer densities
    (`layer_kept`) agree on (`masks.chance_agreement`)."""
    from scipy.spatial.distance import squareform

    runs = dense_runs(env, g, store, published, progress, ("disagreements", "input_survival"))
    hidden = dqn_config(env).hidden[0]
    out = {}
    for fraction in g.fractions:
        similarity, chance = [], []
        for run in runs:
            counts, n_weights = run["disagreements"], int(run["disagreements"]["n_weights"])
            similarity.append(masks.similarity_from_counts(squareform(counts[f"P{fraction}"]), n_weights))
            kept, sizes = layer_kept(run["input_survival"][f"P{fraction}"], hidden, n_weights, fraction)
            chance.append(masks.chance_agreement(kept[:, None, :], kept[None, :, :], sizes))
        out[fraction] = {"episodes": runs[0]["disagreements"]["episodes"], "similarity": np.stack(similarity),
                         "chance": np.stack(chance)}  # fmt: skip
    return out


# ---- experiments 2 and 3: tickets -------------------------------------------------------------


POPULATION = 64  # most tickets training at once in one shard: throughput against a straggler's latency


def _compute_tickets(store: Store, units: list[TicketRun], checkpoint: Checkpoint, progress: bool, save,
                     population: int = POPULATION) -> None:  # fmt: skip
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
        return _dense_state(cfg, dense_run(dense)["snapshots"], episode)

    def start_state(unit: TicketRun | ControlRun | SweepTicket) -> AgentState:
        source = dense_state(unit.dense, unit.prune_episode)
        start = fresh_agent(cfg, unit.dense.seed) if unit.mode == "retrain" else source
        mask = _mask(source, unit.fraction)
        if isinstance(unit, ControlRun):
            return controls.control_start(unit.control, start, mask, unit.fraction, unit.prune_episode)
        return start.pruned(mask)

    def save_and_refill(p: Population) -> None:
        stopped = p.retired[job["saved"]:]  # agent ids are unit indices: units enter in order
        if stopped:
            outcomes = [p.outcome(agent) for agent in stopped]
            tests = greedy_returns(cfg, [final.params for final, _, _ in outcomes], [units[a].dense.seed for a in stopped],
                                   first.test_episodes)  # fmt: skip
            for agent, (final, reason, episodes_run), test in zip(stopped, outcomes, tests):
                unit = units[agent]
                prune_episode = unit.prune_episode
                if prune_episode == CONVERGED:
                    prune_episode = int(dense_run(unit.dense)["baseline"]["converged_episode"].iloc[0])
                continued = isinstance(unit, TicketRun) and unit.mode == "finetune"
                before = dense_state(unit.dense, unit.prune_episode) if continued else None
                save(unit, {"result": pd.DataFrame({
                    "seed": [unit.dense.seed], "P": [unit.fraction], "prune_episode": [prune_episode],
                    **_extra_columns(unit, final, before), "length": [episodes_run],
                    "converged": [reason == "early_stop"],
                    "test_return": [float(test.mean())], "state_sha256": [state_sha256(final)],
                })})  # fmt: skip
                p.release(agent)
            job["saved"] += len(stopped)
        waiting = units[job["admitted"] : job["admitted"] + population - p.live]
        if waiting:
            p.admit([start_state(unit) for unit in waiting])
            job["admitted"] += len(waiting)

    if saved:
        pool = Population.restore(saved["population"], progress=progress)
    else:
        pool = Population(cfg, [start_state(u) for u in units[: job["admitted"]]], early_stop=True,
                          max_episodes=first.episodes, progress=progress)  # fmt: skip
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
    return {"post_prune_env_steps": [final.transitions - (before.transitions if before else 0)],
            "post_prune_updates": [final.updates - (before.updates if before else 0)]}  # fmt: skip


def _dense_state(cfg: DQNConfig, snapshots: dict, episode: int) -> AgentState:
    """A dense run's state at the end of `episode` (CONVERGED: where early stopping would
    fire): its snapshot there, else its latest earlier snapshot (theta_0 at the latest) trained
    on without early stopping to `episode`, which continues the dense run bit for bit."""
    if episode == CONVERGED:
        return _state_from(snapshots, "converged")
    at = {name: int(snapshots[f"{name}.episodes"]) for name in sorted({key.split(".", 1)[0] for key in snapshots})}
    nearest = max((name for name in at if at[name] <= episode), key=lambda name: at[name])
    state = _state_from(snapshots, nearest)
    if at[nearest] == episode:
        return state
    return Population(cfg, [state], early_stop=False, max_episodes=episode - at[nearest]).run().final[0]


def _ticket_units(env: str, g: Grid, mode: str, prune_episodes, fractions=None) -> list[TicketRun]:
    return [TicketRun(d, p, e, mode) for d in dense_units(env, g) for p in (g.fractions if fractions is None else fractions)
            for e in prune_episodes]  # fmt: skip


def _control_units(env: str, g: Grid, mode: str) -> list[ControlRun]:
    tickets = _ticket_units(env, g, mode, g.control_episodes, g.fractions + g.sparse_fractions)
    return [ControlRun(t, c) for t in tickets for c in g.controls if mode in controls.CONTROLS[c]]


def _tickets(env: str, g: Grid, store: Store, step: str, published: Published | None, progress: bool) -> pd.DataFrame:
    results = _results(store, steps(env, g)[step], published, progress)
    return pd.concat([r["result"] for r in results], ignore_index=True)


def retrain(env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False) -> pd.DataFrame:
    """Experiment 2: mask from theta_e, retrain m * theta_0 with a fresh agent state.
    Columns: seed, P, prune_episode, post_prune_env_steps and post_prune_updates (made after
    pruning; absent from results published before they were recorded), length (episodes to
    early stopping, or the cap), converged, test_return, state_sha256 (of the final agent
    state: `state_sha256`)."""
    return _tickets(env, g, store, "retrain", published, progress)


def winning_tickets(env: str, g: Grid, store: Store, published: Published | None = None,
                    progress: bool = False) -> pd.DataFrame:  # fmt: skip
    """One-shot magnitude pruning at convergence, retrained (columns as `retrain`;
    prune_episode is the dense run's convergence episode)."""
    return _tickets(env, g, store, "winning tickets", published, progress)


def finetune(env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False) -> pd.DataFrame:
    """Experiment 3: the dense run goes on from m * theta_e keeping epsilon, replay buffer and
    Adam state; length counts from pruning (columns as `retrain`)."""
    return _tickets(env, g, store, "finetune", published, progress)


# ---- beyond the thesis: controls and sparser P ------------------------------------------------


def controlled_tickets(env: str, g: Grid, store: Store, published: Published | None = None,
                       progress: bool = False) -> pd.DataFrame:  # fmt: skip
    """Every ticket of `g.control_episodes` at P in `g.fractions + g.sparse_fractions`, and
    its controls, as one table: the columns of `retrain` plus mode ("retrain" | "finetune")
    and control ("l1" for the ticket itself, else an `ebnb.controls.CONTROLS` name)."""
    tables = []
    for mode in ("retrain", "finetune"):
        l1 = _tickets(env, g, store, mode, published, progress)
        tables.append(l1[l1.prune_episode.isin(g.control_episodes)].assign(mode=mode, control="l1"))
        if g.sparse_fractions:
            tables.append(_tickets(env, g, store, f"sparse {mode}", published, progress).assign(mode=mode, control="l1"))
        if any(mode in controls.CONTROLS[c] for c in g.controls):
            tables.append(_tickets(env, g, store, f"{mode} controls", published, progress).assign(mode=mode))
    columns = ["mode", "control", "seed", "P", "prune_episode", "length", "converged", "test_return", "state_sha256"]
    return pd.concat(tables, ignore_index=True)[columns]


# ---- experiment 4: EB Exploit -----------------------------------------------------------------


def _compute_eb_exploit(store: Store, units: list[EBExploitRun], checkpoint: Checkpoint, progress: bool,
                        save) -> None:  # fmt: skip
    saved = checkpoint.load()
    job = saved["job"] if saved else {"units": units, "last_mask": {}, "found": {}}
    units = job["units"]
    first = units[0]
    cfg = first.dqn
    last_mask: dict[int, tuple[int, list]] = job["last_mask"]
    found: dict[int, tuple[int, AgentState, list]] = job["found"]

    def search(population: Population, ends):
        for agent, episode, epsilon in zip(ends.agents, ends.episodes, ends.epsilon):
            unit = units[int(agent)]
            if epsilon > cfg.eps_floor or agent in found:
                continue
            if int(agent) in last_mask and (episode - last_mask[int(agent)][0]) % unit.window:
                continue
            mask = [m[0] for m in masks.global_magnitude_masks(population.weights([agent]), unit.fraction)]
            previous = last_mask.get(int(agent))
            last_mask[int(agent)] = (int(episode), mask)
            if previous is not None:
                distance = float(masks.hamming_distance([m[None] for m in previous[1]], [m[None] for m in mask])[0])
                if distance < unit.xi:
                    found[int(agent)] = (int(episode), population.snapshot([agent])[0], [m.numpy() for m in mask])
                    population.stop([agent])

    if saved is None or saved["phase"] == "search":
        if saved:
            population = Population.restore(saved["population"], callback=search, progress=progress)
        else:
            population = Population(cfg, [fresh_agent(cfg, u.seed) for u in units], early_stop=True,
                                    max_episodes=first.episodes, callback=search, progress=progress)  # fmt: skip
        job["searched"] = checkpoint.run(population, "search", job)
    searched = job["searched"]
    order = sorted(found)
    finetuned = {}
    if order:
        if saved and saved["phase"] == "finetune":
            population = Population.restore(saved["population"], progress=progress)
        else:
            starts = [(fresh_agent(cfg, units[i].seed) if units[i].rewind else found[i][1]).pruned(found[i][2])
                      for i in order]  # fmt: skip
            population = Population(cfg, starts, early_stop=True, max_episodes=first.episodes, progress=progress)
        tuned = checkpoint.run(population, "finetune", job)
        finetuned = {i: (tuned.final[j], int(tuned.agents.loc[j].episodes_run), tuned.agents.loc[j].stop_reason)
                     for j, i in enumerate(order)}  # fmt: skip
    finals = [finetuned[i][0] if i in finetuned else searched.final[i] for i in range(len(units))]
    tests = greedy_returns(cfg, [s.params for s in finals], [u.seed for u in units], first.test_episodes)
    for i, unit in enumerate(units):
        search_length = found[i][0] if i in found else int(searched.agents.loc[i].episodes_run)
        save(unit, {"result": pd.DataFrame({
            "seed": [unit.seed], "P": [unit.fraction], "found": [i in found],
            "prune_episode": [found[i][0] if i in found else -1], "search_length": [search_length],
            "finetune_length": [finetuned[i][1] if i in finetuned else 0],
            "converged": [(finetuned[i][2] if i in finetuned else searched.agents.loc[i].stop_reason) == "early_stop"],
            "test_return": [float(tests[i].mean())], "state_sha256": [state_sha256(finals[i])],
        })})  # fmt: skip


def check_eb_exploit(xi, window, rewind) -> None:
    """EB Exploit's parameters: 0 < xi < 1, window >= 1, rewind True/False; else ValueError."""
    check_fraction("xi", xi)
    check_positive_int("window", window)
    if not isinstance(rewind, bool):
        raise ValueError(f"rewind: must be True (retrain from theta_0) or False (finetune), got {rewind!r}")


def _eb_units(env: str, g: Grid, xi: float, window: int, rewind: bool) -> list[EBExploitRun]:
    check_eb_exploit(xi, window, rewind)
    cfg = dqn_config(env, max_episodes=g.episodes)
    return [EBExploitRun(cfg, s, p, float(xi), window, bool(rewind), g.episodes, g.test_episodes)
            for s in g.seeds for p in g.fractions]  # fmt: skip


# ---- EB Exploit, swept ------------------------------------------------------------------------


def _compute_traces(store: Store, units: list[MaskTrace], checkpoint: Checkpoint, progress: bool, save) -> None:
    saved = checkpoint.load()
    first = (saved["job"]["units"] if saved else units)[0].dense
    cfg = first.dqn
    agents = [fresh_agent(cfg, u.dense.seed) for u in units]
    job = saved["job"] if saved else {
        "units": units, "drawn": {i: {p: [] for p in first.fractions} for i in range(len(units))},
        "log": {i: [(0, agents[i].epsilon, 0, 0)] for i in range(len(units))},
    }  # fmt: skip
    units = job["units"]
    draw = functools.partial(_draw, job["drawn"], first.fractions)
    if not saved:
        draw(range(len(units)), _stacked_weights(agents))

    def on_episode_end(population: Population, ends):
        draw(ends.agents, population.weights(ends.agents))
        updates = population.updates[population.positions(ends.agents)]
        for row in zip(ends.agents, ends.episodes, ends.epsilon, ends.transitions, updates):
            job["log"][int(row[0])].append((int(row[1]), float(row[2]), int(row[3]), int(row[4])))

    if saved:
        population = Population.restore(saved["population"], callback=on_episode_end, progress=progress)
    else:
        population = Population(cfg, agents, early_stop=False, max_episodes=first.episodes, callback=on_episode_end,
                                progress=progress)  # fmt: skip
    checkpoint.run(population, "train", job)
    n_weights = sum(int(np.prod(w.shape)) for w in qnet.weights(agents[0].params))
    for i, unit in enumerate(units):
        log = pd.DataFrame(job["log"][i], columns=["episode", "epsilon", "env_steps", "updates"])
        mask_arrays = {f"P{p}": np.stack(job["drawn"][i][p]) for p in first.fractions}
        save(unit, {"log": log, "masks": {**mask_arrays, "n_weights": np.array(n_weights)}})


def _searches(unit: EBSweepRun, trace: dict, stop: int) -> dict[tuple, int | None]:
    """{(P, xi, window, detector, start): the episode at which that setting draws its ticket
    (`ebnb.sweep.detect`), or None} for the seed of `unit`, from its `MaskTrace` `trace`;
    `stop`: the episode at which the dense run early-stops (or its cap)."""
    epsilon, floor = trace["log"]["epsilon"].to_numpy(), unit.dense.dqn.eps_floor
    searches = {}
    for fraction in unit.dense.fractions:
        distance = sweep.distances(trace["masks"][f"P{fraction}"], int(trace["masks"]["n_weights"]))
        for xi, window, detector, start in sweep.settings({name: getattr(unit, name) for name in sweep.DEFAULTS}):
            first = sweep.search_start(epsilon, floor, start)
            found = sweep.detect(distance, first, stop, window, xi, detector)
            searches[(fraction, xi, window, detector, start)] = found
    return searches


def _sweep_ticket(unit: EBSweepRun, fraction: float, episode: int) -> SweepTicket:
    return SweepTicket(TicketRun(unit.dense, fraction, episode, "finetune"))


def _sweep_row(unit: EBSweepRun, setting: tuple, ticket: pd.Series | None, log: pd.DataFrame,
               baseline: pd.Series) -> dict:  # fmt: skip
    """One row of `eb_exploit_sweep` for the seed of `unit` at `setting` (P, xi, window,
    detector, start): its `SweepTicket`'s result, or the unpruned run's if it found none."""
    stop = int(baseline["converged_episode"])
    unpruned = log.loc[stop, ["env_steps", "updates"]].to_numpy(dtype=float)
    if ticket is None:
        row = {"found": False, "prune_episode": -1, "episodes": stop, "env_steps": unpruned[0], "updates": unpruned[1],
               "converged": baseline["converged"], "test_return": baseline["test_return"]}  # fmt: skip
    else:
        episode = ticket["prune_episode"]
        row = {"found": True, "prune_episode": episode, "episodes": episode + ticket["length"],
               **{name: ticket[name] for name in ("env_steps", "updates", "converged", "test_return")}}  # fmt: skip
    relative = np.divide([row["env_steps"], row["updates"]], unpruned, out=np.full(2, np.nan), where=unpruned > 0)
    return {"seed": unit.dense.seed, "P": setting[0], **dict(zip(sweep.SETTING, setting[1:])), **row,
            "relative_env_steps": relative[0], "relative_updates": relative[1]}  # fmt: skip


SweepPlan = dict[EBSweepRun, tuple[dict[tuple, SweepTicket | None], pd.DataFrame, pd.Series]]


def _sweep_plan(store: Store, units) -> SweepPlan:
    """{unit: ({(P, xi, window, detector, start): the `SweepTicket` that setting draws, or None},
    its `MaskTrace`'s log, its dense run's baseline)}, read once from the store (`_searches`)."""
    plan = {}
    for unit in units:
        trace = store.load("mask_trace", MaskTrace(unit.dense))
        baseline = store.load("dense", unit.dense)["baseline"].iloc[0]
        drawn = {key: None if episode is None else _sweep_ticket(unit, key[0], episode)
                 for key, episode in _searches(unit, trace, int(baseline["converged_episode"])).items()}  # fmt: skip
        plan[unit] = drawn, trace["log"], baseline
    return plan


def _sweep_inputs(store: Store, units: tuple[EBSweepRun, ...], tickets: Callable) -> Step | None:
    """What the sweep's `units` read, while the store lacks some of it: first their mask traces;
    once those are stored, the sweep tickets their searches draw (computed by `tickets`); then
    None. A stage lists all its units, stored or not, so that a rerun cuts the same shards and
    resumes their checkpoints."""
    traces = tuple(dict.fromkeys(MaskTrace(u.dense) for u in units))
    if not all(store.exists("mask_trace", t) for t in traces):
        return Step("mask traces", "mask_trace", traces, _compute_traces)
    drawn = tuple(dict.fromkeys(t for found, _, _ in _sweep_plan(store, units).values() for t in found.values() if t))
    if all(store.exists("sweep_ticket", t) for t in drawn):
        return None
    return Step("sweep tickets", "sweep_ticket", drawn, tickets, ("dense runs",))


def _compute_eb_sweep(store: Store, units: list[EBSweepRun], checkpoint: Checkpoint, progress: bool, save) -> None:
    """Each setting's search read off its seed's `MaskTrace`, each ticket found continued as
    its `SweepTicket` (both stored before: `_sweep_inputs`; settings that draw the same ticket
    share it); one table per seed (`eb_exploit_sweep`)."""
    plan = _sweep_plan(store, units)
    results = {t: store.load("sweep_ticket", t)["result"].iloc[0]
               for t in dict.fromkeys(t for found, _, _ in plan.values() for t in found.values() if t)}  # fmt: skip
    for unit, (found, log, baseline) in plan.items():
        rows = [_sweep_row(unit, key, None if ticket is None else results[ticket], log, baseline)
                for key, ticket in found.items()]  # fmt: skip
        save(unit, {"result": pd.DataFrame(rows).astype({"found": bool, "converged": bool, "prune_episode": "int64",
                                                         "episodes": "int64", "env_steps": "int64", "updates": "int64",
                                                         "test_return": float})})  # fmt: skip


def _sweep_units(env: str, g: Grid, sweep_grid: dict) -> list[EBSweepRun]:
    return [EBSweepRun(d, **sweep.grid(**sweep_grid)) for d in dense_units(env, g)]


def steps(env: str, g: Grid, xi: float = EB_EXPLOIT_DEFAULTS["xi"], window: int = EB_EXPLOIT_DEFAULTS["window"],
          rewind: bool = EB_EXPLOIT_DEFAULTS["rewind"], population: int = POPULATION,
          **sweep_grid) -> dict[str, Step]:  # fmt: skip
    """The protocol steps for one env and grid that have units, by name, in an order that
    respects `needs` (EB Exploit with the given parameters, its sweep over `sweep_grid`:
    `ebnb.sweep.grid`'s xis, windows, detectors, starts; at most `population` tickets training
    at once in a shard, which changes no result)."""
    if not isinstance(g, Grid):
        raise ValueError(f"grid: expected a Grid (from experiments.grid(profile, ...)), got {type(g).__name__}")
    ticket_needs = ("dense runs",)
    tickets = functools.partial(_compute_tickets, population=check_positive_int("population", population))
    return {step.name: step for step in (
        Step("dense runs", "dense", tuple(dense_units(env, g)), _compute_dense),
        Step("retrain", "ticket", tuple(_ticket_units(env, g, "retrain", g.prune_episodes)), tickets, ticket_needs),
        Step("winning tickets", "ticket", tuple(_ticket_units(env, g, "retrain", (CONVERGED,))), tickets, ticket_needs),
        Step("finetune", "ticket", tuple(_ticket_units(env, g, "finetune", g.prune_episodes)), tickets, ticket_needs),
        Step("eb_exploit", "eb_exploit", tuple(_eb_units(env, g, xi, window, rewind)), _compute_eb_exploit),
        *(Step(f"sparse {mode}", "ticket", tuple(_ticket_units(env, g, mode, g.control_episodes, g.sparse_fractions)),
               tickets, ticket_needs) for mode in ("retrain", "finetune")),
        *(Step(f"{mode} controls", "control", tuple(_control_units(env, g, mode)), tickets, ticket_needs)
          for mode in ("retrain", "finetune")),
        Step("eb_exploit sweep", "eb_sweep", tuple(_sweep_units(env, g, sweep_grid)), _compute_eb_sweep, ticket_needs,
             functools.partial(_sweep_inputs, tickets=tickets)),
    ) if step.units}  # fmt: skip


def cache_status(env: str, g: Grid, store: Store) -> dict[str, tuple[int, int]]:
    """Per protocol step: (units stored, units in the grid); EB Exploit at its defaults."""
    return {name: (sum(store.exists(step.kind, u) for u in step.units), len(step.units))
            for name, step in steps(env, g).items()}  # fmt: skip


def eb_exploit(env: str, g: Grid, store: Store, published: Published | None = None,
               xi: float = EB_EXPLOIT_DEFAULTS["xi"], window: int = EB_EXPLOIT_DEFAULTS["window"],
               rewind: bool = EB_EXPLOIT_DEFAULTS["rewind"], progress: bool = False) -> pd.DataFrame:  # fmt: skip
    """Experiment 4: EB Exploit per seed and P. Columns: seed, P, found (a ticket was found
    before early stopping), prune_episode (-1 if not), search_length, finetune_length,
    converged, test_return, state_sha256 (of the final agent state: `state_sha256`)."""
    results = _results(store, steps(env, g, xi, window, rewind)["eb_exploit"], published, progress)
    return pd.concat([r["result"] for r in results], ignore_index=True)


def _setting_grids(settings: list[tuple]) -> list[dict]:
    """One sweep grid (`ebnb.sweep.grid`'s arguments) per distinct setting of `settings`
    ((P, xi, window, detector, start) each), in order."""
    chosen = list(dict.fromkeys(tuple(setting[1:]) for setting in settings))
    return [dict(zip(("xis", "windows", "detectors", "starts"), ([value] for value in setting))) for setting in chosen]


def sweep_at_steps(env: str, g: Grid, settings: list[tuple]) -> list[Step]:
    """The steps `eb_exploit_sweep_at` reads: the dense runs of `g`, then one sweep of each
    distinct setting of `settings`."""
    return [steps(env, g)["dense runs"]] + [steps(env, g, **grid)["eb_exploit sweep"] for grid in _setting_grids(settings)]


def available(store: Store, wanted: list[Step], published: Published | None) -> bool:
    """Whether the store or `published` holds every unit of the steps `wanted` (nothing is computed)."""
    for step in wanted:
        missing, found = _sources(store, step, published)
        if set(missing) - set(found):
            return False
    return True


def held(env: str, profile: str, store: Store, published: Published | None, names: tuple[str, ...]) -> Grid | None:
    """The grid of `profile` if the store or `published` holds every unit of its steps `names`
    (the step functions then only load it), else None: nothing is computed."""
    g = grid(profile)
    return g if available(store, [s for name, s in steps(env, g).items() if name in names], published) else None


def sweep_hypotheses(env: str, store: Store, published: Published | None) -> list[tuple] | None:
    """`ebnb.sweep.hypotheses` of the full profile's sweep (notebook 06 at its defaults): the
    settings profile `sweep_fresh` runs on fresh seeds; None unless the store or `published`
    holds that sweep and its dense runs (nothing is computed)."""
    g = PROFILES["full"]
    wanted = [steps(env, g)["dense runs"], steps(env, g)["eb_exploit sweep"]]
    if not available(store, wanted, published):
        return None
    saved = sweep.savings(eb_exploit_sweep(env, g, store, published), baseline(env, g, store, published),
                          env_id(wanted[0].units[0]))  # fmt: skip
    return sweep.hypotheses(saved)


def eb_exploit_sweep_at(env: str, g: Grid, store: Store, published: Published | None, settings: list[tuple],
                        compute: bool = True, progress: bool = False) -> pd.DataFrame | None:  # fmt: skip
    """EB Exploit at the (P, xi, window, detector, start) of `settings` only (`ebnb.sweep.hypotheses`),
    per seed of `g`: the rows of `eb_exploit_sweep` for those (P, setting), each setting run as
    a sweep of that one setting (its tickets shared with any other sweep's). With `compute`
    False: None unless the store or `published` holds all of it (the dense runs too)."""
    grids = _setting_grids(settings)
    if not compute and not available(store, sweep_at_steps(env, g, settings), published):
        return None
    if not grids:
        return pd.DataFrame(columns=["seed", "P", *sweep.SETTING])
    table = pd.concat([eb_exploit_sweep(env, g, store, published, progress, **grid) for grid in grids], ignore_index=True)
    keep = {(fraction, *setting) for fraction, *setting in settings}
    return table[[key in keep for key in zip(table["P"], *(table[name] for name in sweep.SETTING))]].reset_index(drop=True)


def eb_exploit_sweep(env: str, g: Grid, store: Store, published: Published | None = None, progress: bool = False,
                     **sweep_grid) -> pd.DataFrame:  # fmt: skip
    """EB Exploit at every setting of `sweep_grid` (`ebnb.sweep.grid`: xis, windows, detectors,
    starts; default `ebnb.sweep.DEFAULTS`), per seed and P. Columns: seed, P, xi, window,
    detector, start, found (a ticket was drawn before early stopping), prune_episode (-1 if
    not), episodes (search + finetune; the unpruned length if not found), env_steps and
    updates (the whole run's env steps and gradient updates), converged, test_return (the
    unpruned network's if not found), relative_env_steps and relative_updates (over the same
    seed's unpruned run up to its early stopping)."""
    results = _results(store, steps(env, g, **sweep_grid)["eb_exploit sweep"], published, progress)
    return pd.concat([r["result"] for r in results], ignore_index=True)
