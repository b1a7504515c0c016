"""Moving results keyed by the hash scheme before `ebnb.identity` (until 2026-12: the class name
and every field of a config hashed) to the current keys, their contents unchanged.

`results(root)` re-keys a published set (``results/``): every unit of every table gets its
current key, in the same order, its parts byte for byte the same (checked by reading the new
tables back against the old ones before anything is replaced); the manifest lists the new
files and its grids' kind names. `store(root)` re-keys a store: each result stored under an
old key moves to its current key (`ebnb.store.Store.adopt`: its part files byte for byte,
config.json rewritten), the old directory removed once the new one is complete. Both are
repeatable: what is keyed already is left as it is. `tools/rekey.py` runs them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ebnb import identity
from ebnb.config import DQNConfig
from ebnb.experiments.grids import Grid
from ebnb.experiments.units import ControlRun, DenseRun, EBExploitRun, EBSweepRun, MaskTrace, SweepTicket, TicketRun
from ebnb.store import CorruptResultError, Store, file_entry

# the kind of each class the old scheme named by its class name, and the fields added since
# (left out of an old hash; an old config.json lacks them: they take their defaults)
LEGACY_NAMES = {
    "DenseRun": DenseRun,
    "TicketRun": TicketRun,
    "ControlRun": ControlRun,
    "EBExploitRun": EBExploitRun,
    "MaskTrace": MaskTrace,
    "EBSweepRun": EBSweepRun,
    "SweepTicket": SweepTicket,
    "DQNConfig": DQNConfig,
    "Grid": Grid,
}
ADDED = {MaskTrace: ("fractions",), EBSweepRun: ("fractions",), DQNConfig: ("device",), Grid: ("dqn",)}
# options added after the old scheme's last results: left out at their default; a config that
# sets one is newer than the old scheme and keeps it, so that no old key names it (a scaled
# observations run must not take the key of the run it varies)
LATER_OPTIONS = {EBSweepRun: ("rewind",), DQNConfig: ("scaled_observations",), Grid: ("imp",)}


def _legacy(value):
    """`value` as the old scheme's canonical JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = next(n for n, cls in LEGACY_NAMES.items() if cls is type(value))
        later = LATER_OPTIONS.get(type(value), ())
        fields = {
            f.name: _legacy(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in ADDED.get(type(value), ())
            and not (f.name in later and getattr(value, f.name) == f.default)
        }
        return {"__class__": name, **fields}
    if isinstance(value, dict):
        return {key: _legacy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_legacy(item) for item in value]
    return value


def legacy_hash(config) -> str:
    """A config's key under the old scheme."""
    text = json.dumps(_legacy(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[: identity.HASH_CHARS]


def from_legacy_json(data):
    """The config an old config.json (as JSON data) describes."""
    if isinstance(data, dict) and "__class__" in data:
        cls = LEGACY_NAMES[data["__class__"]]
        return cls(**{key: from_legacy_json(item) for key, item in data.items() if key != "__class__"})
    if isinstance(data, list):
        return tuple(from_legacy_json(item) for item in data)
    return data


def renamed_kinds(data):
    """JSON data (a manifest's grids) with the old scheme's class names as kind names."""
    if isinstance(data, dict):
        if "__class__" in data:
            kind = LEGACY_NAMES[data["__class__"]].__config_kind__
            return {
                ("__kind__" if key == "__class__" else key): (kind if key == "__class__" else renamed_kinds(item))
                for key, item in data.items()
            }
        return {key: renamed_kinds(item) for key, item in data.items()}
    if isinstance(data, list):
        return [renamed_kinds(item) for item in data]
    return data


def published_units(root: Path) -> dict[str, dict[str, list]]:
    """{env id: {step: units}} of every profile `ebnb.publish` publishes (the full one and the
    side ones), planned against the set at `root` (a side profile planned from published
    results, e.g. the fresh sweep's hypotheses, reads them by old key, or by current key in a
    set keyed already)."""
    from ebnb import experiments
    from ebnb.published import Published
    from ebnb.side_profiles import SIDE_PROFILES

    current, keyed = Published(root, key=legacy_hash), Published(root)
    units: dict[str, dict[str, list]] = {}
    with tempfile.TemporaryDirectory() as empty:  # the steps read published results only: nothing is computed
        for env in current.manifest["tables"]:
            steps = list(experiments.steps(env, experiments.grid("full")).values())
            for side in SIDE_PROFILES.values():
                steps += side.steps(env, Store(empty), current) or side.steps(env, Store(empty), keyed) or []
            for step in steps:
                units.setdefault(env, {}).setdefault(step.name, []).extend(step.units)
    return units


def old_keys(units: list) -> dict[str, str]:
    """{old key: current key} of the units of a class the old scheme hashed (a newer class,
    e.g. IMPTicket, had no old key); ValueError if two units share an old key."""
    keys: dict[str, str] = {}
    for unit in units:
        if type(unit) in LEGACY_NAMES.values():
            old, new = legacy_hash(unit), identity.config_hash(unit)
            if keys.setdefault(old, new) != new:
                raise ValueError(
                    f"units {keys[old]} and {new} share the old key {old}: "
                    "an option added since the old scheme is missing from LATER_OPTIONS"
                )
    return keys


def rekeyed_tables(root: Path, units: dict[str, dict[str, list]]) -> dict[str, bytes]:
    """{file name: new bytes} of every table of the published set at `root` that holds a unit
    under an old key: the units under their current keys, in the same order. ValueError if a
    table holds a key that is neither a unit's old one nor its current one, or if two old keys
    become one."""
    from ebnb import published

    manifest = json.loads((root / published.MANIFEST).read_text())
    out = {}
    for env_id, steps in manifest["tables"].items():
        for step, layout in steps.items():
            chosen = units.get(env_id, {}).get(step, [])
            old_to_new = old_keys(chosen)
            current = {identity.config_hash(u) for u in chosen}
            parts = {part: _decoded(root, f"{env_id}/{name}") for part, name in layout.items()}
            keys = list(next(iter(parts.values())))
            if not set(keys) - current:
                continue
            new_keys = []
            for key in keys:
                if key not in old_to_new and key not in current:
                    raise ValueError(f"{env_id}/{step}: unit {key} is not a unit of any published profile")
                new_keys.append(old_to_new.get(key, key))
            if len(set(new_keys)) != len(new_keys):
                raise ValueError(f"{env_id}/{step}: two units get one key; re-key by hand")
            results = {new: {part: table[old] for part, table in parts.items()} for old, new in zip(keys, new_keys)}
            for part, (name, data) in published._encode(step, results).items():
                out[f"{env_id}/{name}"] = data
                _check_same(parts[part], _decoded_bytes(data, name), dict(zip(keys, new_keys)), f"{env_id}/{name}")
    return out


def _decoded(root: Path, name: str) -> dict:
    return _decoded_bytes((root / name).read_bytes(), name)


def _decoded_bytes(data: bytes, name: str) -> dict:
    from ebnb.published import _decode

    return _decode(data, name.endswith(".npz"))


def _check_same(old: dict, new: dict, keys: dict[str, str], name: str) -> None:
    """Every unit of `old` ({key: part}) is in `new` under its new key, the same to the bit."""
    if len(old) != len(new):
        raise AssertionError(f"{name}: {len(old)} units before, {len(new)} after")
    for before, after in keys.items():
        a, b = old[before], new[after]
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        else:
            assert a.keys() == b.keys(), name
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], strict=True)


def results(root: str | Path) -> list[str]:
    """Re-key the published set at `root` (a project's ``results/``) in one transaction
    (`ebnb.transaction.transact`); the files rewritten (none: it was keyed already)."""
    from ebnb import published, transaction
    from ebnb.publish import _files, verify

    root = Path(root)
    with transaction.locked(root.parent):
        transaction.recover_locked(root.parent)
        text = (root / published.MANIFEST).read_text()
        manifest = json.loads(text)
        if json.dumps(manifest, indent=2) + "\n" != text:
            raise ValueError(f"{root / published.MANIFEST} is not as `pipeline.py publish` writes it")
        changed = rekeyed_tables(root, published_units(root))
        grid = renamed_kinds(manifest["grid"])
        if not changed and grid == manifest["grid"]:
            return []
        files = {**_files(root), **changed}
        files.pop(published.MANIFEST)
        listed = {name: file_entry(data) for name, data in files.items()}
        files[published.MANIFEST] = (json.dumps({**manifest, "grid": grid, "files": listed}, indent=2) + "\n").encode()
        transaction.transact(root.parent, {root.name: files})
        problems = [p for p in verify(root.parent) if p.startswith(f"{root.name}/")]
        if problems:
            raise RuntimeError(f"re-keyed {root}, but it does not match its manifest: {problems[0]}")
    return sorted([*changed, published.MANIFEST])


def store(root: str | Path) -> dict[str, list[str]]:
    """Re-key the store at `root`: {"moved": old directories moved to their current keys,
    "kept": old directories left as they are (a result of another key is there already, or
    their config.json names a class the old scheme did not hash)}."""
    from ebnb import ownership

    root = Path(root)
    refused = ownership.refusal(root, "store")
    if refused:
        raise ValueError(f"{root} is not a store of this package: {refused}")
    target = Store(root)
    report: dict[str, list[str]] = {"moved": [], "kept": []}
    for directory in sorted(root.glob("*/[0-9a-f]*")):
        kind = directory.parent.name
        if not directory.is_dir() or kind in ("lock", "checkpoint", "runs"):
            continue
        try:
            record = json.loads((directory / "config.json").read_text())
        except (OSError, ValueError):
            continue  # not a result: `Store` recomputes what it cannot read
        if not (isinstance(record, dict) and "__class__" in record):
            continue  # keyed already
        try:
            config = from_legacy_json(record)
            target.adopt(kind, config, directory)
            report["moved"].append(f"{kind}/{directory.name} -> {identity.config_hash(config)}")
        except (KeyError, TypeError, ValueError, FileExistsError, CorruptResultError) as error:
            report["kept"].append(f"{kind}/{directory.name}: {error}")
    return report
