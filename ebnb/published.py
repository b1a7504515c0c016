"""The published results: the full-profile results committed in ``results/``, so that a reader
reruns every notebook's analysis without training.

Layout::

    results/manifest.json        sha256 and size of every file below, the grid, the commit and
                                 lock-file hash of the run that made the results, unit counts;
                                 under "published", those of every file of figures/,
                                 notebooks/executed/ and tests/notebooks/ (`ebnb.publish`)
    results/run_record.json      that run's record (ebnb.accounting)
    results/<env id>/<table>     one tidy table per protocol step and part

A table holds what the notebooks read of each unit (`ebnb.experiments.published_view`), one
unit after another, keyed by the unit's config hash (`ebnb.store.config_hash`): DataFrame
parts as parquet with a first column ``unit``; dicts of arrays (the dense runs' mask
disagreement counts) as ``.npz`` with keys ``<unit>.<name>``. A unit is taken from here only
if its hash is listed, so a grid that differs from the published one in any setting finds
the units it shares and computes the rest. Every file is checked against the manifest before
it is read; a damaged file is an error that names it, never data.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ebnb.store import CorruptResultError, config_hash, file_entry, npz_bytes

MANIFEST = "manifest.json"
RUN_RECORD = "run_record.json"
UNIT = "unit"
SCHEMAS = b"ebnb.unit_schemas"  # parquet metadata: each unit's columns and dtypes, where units differ


def table_name(step: str, part: str, arrays: bool) -> str:
    """File name of a step's part: ``retrain.parquet`` (the part "result"),
    ``dense_runs_episodes.parquet``, ``dense_runs_disagreements.npz``."""
    stem = step.replace(" ", "_") + ("" if part == "result" else f"_{part}")
    return stem + (".npz" if arrays else ".parquet")


def _schema(frame: pd.DataFrame) -> list[list[str]]:
    """[[column, dtype], ...] of `frame`, as `SCHEMAS` records it."""
    return [[str(column), str(dtype)] for column, dtype in frame.dtypes.items()]


def _encode(step: str, results: Mapping[str, dict]) -> dict[str, tuple[str, bytes]]:
    """{part: (file name, bytes)} of one step's results ({unit hash: parts}), a file per part.
    Units of one table normally share their columns. Where they do not (units computed before
    and after a column was added, e.g. ``post_prune_env_steps``), the table holds the union
    of the columns, and its parquet metadata (`SCHEMAS`) each unit's own columns and dtypes,
    so that every unit reads back exactly as it was written."""
    first = next(iter(results.values()))
    files = {}
    for part, value in first.items():
        if isinstance(value, pd.DataFrame):
            frames = {h: r[part] for h, r in results.items()}
            table = pd.concat(frames.values(), ignore_index=True)
            table.insert(0, UNIT, np.repeat(list(frames), [len(frame) for frame in frames.values()]))
            buffer = io.BytesIO()
            schemas = [_schema(frame) for frame in frames.values()]
            if all(schema == schemas[0] for schema in schemas):
                table.to_parquet(buffer, engine="pyarrow", index=False)
            else:
                distinct: list = []
                for schema in schemas:
                    if schema not in distinct:
                        distinct.append(schema)
                units = {h: distinct.index(schema) for h, schema in zip(frames, schemas)}
                arrow = pa.Table.from_pandas(table, preserve_index=False)
                metadata = {
                    **(arrow.schema.metadata or {}),
                    SCHEMAS: json.dumps({"schemas": distinct, "units": units}).encode(),
                }
                pq.write_table(arrow.replace_schema_metadata(metadata), buffer)
            files[part] = table_name(step, part, arrays=False), buffer.getvalue()
        else:
            arrays = {f"{h}.{key}": array for h, r in results.items() for key, array in r[part].items()}
            files[part] = table_name(step, part, arrays=True), npz_bytes(arrays)
    return files


def _decode(data: bytes, arrays: bool) -> dict[str, object]:
    """{unit hash: part} from a table's bytes."""
    if arrays:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            out: dict[str, dict] = {}
            for key in npz.files:
                unit, name = key.split(".", 1)
                out.setdefault(unit, {})[name] = npz[key]
            return out
    table = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    own = (pq.read_schema(io.BytesIO(data)).metadata or {}).get(SCHEMAS)
    if own is None:
        return _units(table)
    own = json.loads(own)
    schema_of = table[UNIT].map(own["units"]).to_numpy()
    units = {}
    for i, schema in enumerate(dict(schema) for schema in own["schemas"]):  # one cast per schema, not per unit
        units.update(_units(table[schema_of == i][[UNIT, *schema]].astype(schema)))
    return {unit: units[unit] for unit in table[UNIT].unique()}


def _units(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{unit hash: its rows, without the unit column, indexed from 0}."""
    return {unit: rows.drop(columns=UNIT).reset_index(drop=True) for unit, rows in table.groupby(UNIT, sort=False)}


def _shown(path: Path) -> str:
    from ebnb.experiments import shown  # experiments imports this module

    return shown(path)


RESTORE = "restore it with `git checkout results/`, or pass --recompute (in a notebook: use_published=False)"


class Published:
    """A published results set (read only): the units it holds, by config hash (`key`: another
    hash scheme's, to read a set keyed before the current one: `ebnb.rekey`).
    FileNotFoundError if `root` does not exist; ValueError naming the manifest (and saying
    how to restore it) if it is missing or unreadable."""

    def __init__(self, root: str | Path, key: Callable[[object], str] = config_hash):
        self.root, self.key = Path(root), key
        path = self.root / MANIFEST
        if not self.root.is_dir():
            raise FileNotFoundError(f"no published results at {self.root}")
        try:
            self.manifest = json.loads(path.read_text())
            if not all(isinstance(self.manifest.get(key), dict) for key in ("tables", "files")):
                raise ValueError("no tables or files listed")
        except FileNotFoundError:
            raise ValueError(f"{_shown(path)} is missing; {RESTORE}") from None
        except (OSError, ValueError, AttributeError) as error:
            raise ValueError(f"{_shown(path)} is unreadable ({error}); {RESTORE}") from None
        self._tables: dict[str, dict] = {}

    @property
    def made_by(self) -> str:
        """The commit of the run that made the results, abbreviated (``-dirty`` kept)."""
        commit = self.manifest["commit"]
        return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")

    def parts(self, env_id: str, step: str, units) -> dict:
        """{unit: its parts} for those of `units` the published set holds."""
        layout = self.manifest["tables"].get(env_id, {}).get(step)
        if layout is None:
            return {}
        tables = {part: self._table(f"{env_id}/{name}", name.endswith(".npz")) for part, name in layout.items()}
        found = {}
        for unit in units:
            key = self.key(unit)
            if all(key in table for table in tables.values()):
                found[unit] = {part: table[key] for part, table in tables.items()}
        return found

    def _table(self, name: str, arrays: bool) -> dict:
        if name not in self._tables:
            data = (self.root / name).read_bytes()
            if file_entry(data) != self.manifest["files"].get(name):
                raise CorruptResultError(
                    f"{self.root / name} does not match {self.root / MANIFEST}: the published "
                    "results are damaged; restore them (git checkout) or recompute "
                    "(use_published=False, or pipeline.py --recompute)"
                )
            self._tables[name] = _decode(data, arrays)
        return self._tables[name]


def tables(results: Mapping[str, Mapping[str, Mapping]]) -> tuple[dict[str, bytes], dict]:
    """({file name: bytes}, {env id: {step: {part: file name}}}) of the tables of `results`
    ({env id: {step: {unit: parts}}})."""
    files: dict[str, bytes] = {}
    layout: dict[str, dict] = {}
    for env_id, steps in results.items():
        for step, units in steps.items():
            hashed = {config_hash(unit): parts for unit, parts in units.items()}
            for part, (name, data) in _encode(step, hashed).items():
                layout.setdefault(env_id, {}).setdefault(step, {})[part] = name
                files[f"{env_id}/{name}"] = data
    return files, layout


def record_bytes(run_record: dict) -> bytes:
    """run_record.json's bytes."""
    return (json.dumps(run_record, indent=2) + "\n").encode()


def manifest(files: Mapping[str, bytes], layout: dict, results: Mapping, grid: dict, run_record: dict) -> dict:
    """The manifest of a published set: its `files` (run record included), table `layout`
    (`tables`), unit counts, `grid`, and the commit and lock-file hash of the run."""
    return {
        "commit": run_record["commit"],
        "lock_sha256": run_record["lock_sha256"],
        "grid": grid,
        "units": {env: {step: len(units) for step, units in steps.items()} for env, steps in results.items()},
        "tables": layout,
        "run_record": RUN_RECORD,
        "files": {name: file_entry(data) for name, data in files.items()},
    }


def write(root: str | Path, results: Mapping[str, Mapping[str, Mapping]], grid: dict, run_record: dict) -> Path:
    """Replace the published set at `root` with `results` ({env id: {step: {unit: parts}}}),
    `grid` (what the results cover) and the `run_record` of the run that made them, in one
    transaction (`ebnb.transaction.transact`), checked by reading it back before it replaces
    anything."""
    from ebnb.transaction import transact

    root = Path(root)
    files, layout = tables(results)
    files[RUN_RECORD] = record_bytes(run_record)
    files[MANIFEST] = (json.dumps(manifest(files, layout, results, grid, run_record), indent=2) + "\n").encode()
    root.parent.mkdir(parents=True, exist_ok=True)
    transact(root.parent, {root.name: files}, lambda staged: check_readback(staged / root.name, results))
    return root


def check_readback(root: Path, results: Mapping) -> None:
    """Every unit's parts read back from `root` equal what was written."""
    published = Published(root)
    for env_id, steps in results.items():
        for step, units in steps.items():
            back = published.parts(env_id, step, units)
            for unit, parts in units.items():
                for part, value in parts.items():
                    if isinstance(value, pd.DataFrame):
                        pd.testing.assert_frame_equal(back[unit][part], value)
                    else:
                        assert value.keys() == back[unit][part].keys()
                        for key, array in value.items():
                            np.testing.assert_array_equal(back[unit][part][key], array, strict=True)
