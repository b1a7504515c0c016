"""A protocol step (the units a grid asks for and how to compute missing ones), and where each
unit's result comes from: the store, else the published results, else computed (in shards,
`ebnb.shards`) and stored."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ebnb import masks, qnet, shards
from ebnb.experiments.dense_training import compute_dense
from ebnb.experiments.paths import shown
from ebnb.experiments.states import state_from
from ebnb.experiments.units import dense_inputs, env_id, longest_first
from ebnb.published import Published
from ebnb.store import Store

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


def to_compute(env_steps: dict[str, Step], names, published: Published | None) -> list[Step]:
    """The steps `names` read (in the order of `env_steps`), each narrowed to the units that
    `published` lacks (or holds recording less: `narrowed`), plus the dense runs that those tickets read; empty steps dropped."""
    names = [name for name in names if name in env_steps]  # a grid may have no controls or sparse P
    wanted = set(names) | {need for name in names for need in env_steps[name].needs}
    chosen = {name: step for name, step in env_steps.items() if name in wanted}
    if published is not None:
        for name, step in chosen.items():
            held = published.parts(env_id(step.units[0]), name, step.units)
            held = {u for u, parts in held.items() if narrowed(name, u, parts) is not None}
            chosen[name] = dataclasses.replace(step, units=tuple(u for u in step.units if u not in held))
        inputs = dense_inputs(u for step in chosen.values() for u in step.units)
        dense = chosen.get("dense runs")
        if dense is not None:
            chosen["dense runs"] = dataclasses.replace(dense, units=tuple(dict.fromkeys(dense.units + tuple(inputs))))
    return [step for step in chosen.values() if step.units]


def _compute_missing(store: Store, step: Step, units, progress: bool) -> None:
    """Compute and store those of `units` (of `step`) that are not stored yet, after the
    dense runs and other inputs they read."""
    _store_missing(store, "dense", compute_dense, dense_inputs(units), progress)
    for stage in input_stages(store, step, units):
        _store_missing(store, stage.kind, stage.compute, stage.units, progress)
    _store_missing(store, step.kind, step.compute, units, progress)


def _store_missing(store: Store, kind: str, compute: Callable, units, progress: bool) -> None:
    """Compute and store those of `units` (all of `kind`) that are not stored yet, in shards
    (`ebnb.shards`), longest first; each recording what all of them and their stored results
    record (`Store.widened`), so that a stored result recording less is replaced, not lost."""
    for shard in shards.cut(kind, longest_first(store.widened(kind, units)), SHARD_SIZE) if units else ():
        shards.run(store, shard, compute, progress=progress)


def published_view(step: str, result: dict, parts: tuple[str, ...] | None = None) -> dict:
    """What the notebooks read of a stored unit, and so what `ebnb.published` holds of it: a
    dense run's training log, baseline, mask disagreement counts and input survival (not its
    snapshots and masks, which only ticket training reads); any other unit's result as it is.
    `parts`: only these (None: all)."""
    if step != "dense runs":
        return result
    return {name: _DENSE_VIEW[name](result) for name in parts or _DENSE_VIEW}


def narrowed(step: str, unit, view: dict) -> dict | None:
    """The `published_view` `view` of a unit of `unit`'s key (which may record more:
    `ebnb.identity.covers`) as `unit` asks for it, or None if it records less: a dense run's
    mask parts at the P of `unit.fractions`, an EB Exploit sweep's rows at them, in that order;
    any other view as it is."""
    if step == "dense runs":
        keys = [f"P{fraction}" for fraction in unit.fractions]
        out = {}
        for name, part in view.items():
            if name in ("disagreements", "input_survival"):
                if not all(key in part for key in keys):
                    return None
                part = {key: array for key, array in part.items() if not key.startswith("P")} | {
                    k: part[k] for k in keys
                }
            out[name] = part
        return out
    if step == "eb_exploit sweep":
        table = view["result"]
        rows = [table[table["P"] == fraction] for fraction in unit.fractions]
        if not all(len(r) for r in rows):
            return None
        return {**view, "result": pd.concat(rows).reset_index(drop=True)}
    return view


def _weight_shapes(result: dict) -> list[tuple[int, ...]]:
    """Shapes of a dense run's weight matrices ([out, in] each)."""
    return [w.shape for w in qnet.weights(state_from(result["snapshots"], "theta0").params)]


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


_DENSE_VIEW = {
    "episodes": lambda r: r["episodes"],
    "baseline": lambda r: r["baseline"],
    "disagreements": _disagreements,
    "input_survival": _input_survival,
}


def _sources(store: Store, step: Step, published: Published | None) -> tuple[list, dict]:
    """(`step`'s units the store lacks, {unit: parts} of those `published` holds, `narrowed`)."""
    missing = [u for u in step.units if not store.exists(step.kind, u)]
    held = published.parts(env_id(step.units[0]), step.name, missing) if published and missing else {}
    found = {u: narrowed(step.name, u, parts) for u, parts in held.items()}
    return missing, {u: parts for u, parts in found.items() if parts is not None}


def step_results(
    store: Store, step: Step, published: Published | None, progress: bool, parts: tuple[str, ...] | None = None
) -> list[dict]:
    """`published_view` of each of `step`'s units (`parts` of it), in order: from the store,
    else from `published` (by config hash), else computed and stored. With `progress`, says
    where they came from."""
    missing, found = _sources(store, step, published)
    _compute_missing(store, step, [u for u in missing if u not in found], progress)
    if progress:
        source = f"loaded {{}} units from {shown(published.root)}/ (made by {published.made_by})" if found else ""
        counts = {
            "loaded {} units from the store": len(step.units) - len(missing),
            source: len(found),
            "computed {} units": len(missing) - len(found),
        }
        print(f"{step.name}: " + ", ".join(text.format(n) for text, n in counts.items() if n), flush=True)
    return list(_gather(store, step, found, parts).values())


def collect(store: Store, step: Step, published: Published | None, parts: tuple[str, ...] | None = None) -> dict:
    """{unit: `published_view` (`parts` of it)} of every unit of `step`, from the store, else
    from `published`; computes nothing: ValueError if some unit is in neither."""
    missing, found = _sources(store, step, published)
    lacking = len(missing) - len(found)
    if lacking:
        raise ValueError(
            f"{step.name}: {lacking} of {len(step.units)} units are neither in the store {store.root} nor "
            "published; compute them first (pipeline.py compute)"
        )
    return _gather(store, step, found, parts)


def _gather(store: Store, step: Step, found: dict, parts: tuple[str, ...] | None) -> dict:
    """{unit: `published_view`} of `step`'s units: those in `found` (published parts) from
    there, every other one loaded from the store."""
    chosen = {u: {p: found[u][p] for p in parts or found[u]} for u in found}
    return {
        u: chosen[u]
        if u in chosen
        else narrowed(step.name, u, published_view(step.name, store.load(step.kind, u), parts))
        for u in step.units
    }


def available(store: Store, wanted: list[Step], published: Published | None) -> bool:
    """Whether the store or `published` holds every unit of the steps `wanted` (nothing is computed)."""
    for step in wanted:
        missing, found = _sources(store, step, published)
        if set(missing) - set(found):
            return False
    return True
