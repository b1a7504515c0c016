"""Hash-named, atomic, resumable results (in the spirit of open_lth's desc/runner).

A result is named by what produced it: ``root/<kind>/<hash>/`` with ``<hash>`` a digest of
the config. The directory holds ``config.json`` (the config, readable), one file per named
part of the result and ``manifest.json`` (each file's sha256 and size, the part types),
which is written last.

Parts are stored as
- pandas DataFrames -> parquet: typed columns (ints, floats, bools, strings, categoricals,
  timestamps round-trip exactly), compressed and columnar, read natively by pandas/pyarrow;
- numpy arrays, or dicts of them -> ``.npz``: plain numpy, no extra dependency, loaded with
  ``allow_pickle=False`` so a file can never execute code. They are written like np.savez
  but with fixed zip timestamps, so equal results give byte-identical files.

Saving is atomic: everything is written and fsynced in a temporary sibling directory
``root/<kind>/.tmp-<hash>-<pid>-<random>`` which is then renamed into place, so a reader sees
either no result or a complete one. A directory whose manifest is missing or does not match
its files (a crash, a truncated copy, bit rot) is treated as absent: removed and recomputed,
never returned as data. Before a key is saved, temporary directories of that key left by
dead processes are swept; liveness is checked by pid on this machine, so one store root
should not be written by several hosts at once. A root the store creates is marked as the
package's (`ebnb.ownership`), which `clean` requires.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ebnb import ownership

log = logging.getLogger("ebnb.store")

HASH_CHARS = 16  # 64 bits of sha256: no collision in any realistic number of configs
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TMP = ".tmp-"
_SUFFIX = {"dataframe": ".parquet", "array": ".npz", "arrays": ".npz"}
_UNREADABLE = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, pa.ArrowException)


class CorruptResultError(Exception):
    """A stored result exists but is incomplete or does not match its manifest."""


# A dataclass field's metadata that leaves it out of the config (and so of its hash) while it
# holds its default: an option added after results were stored re-keys none of them.
UNLESS_DEFAULT = {"config": "unless default"}


def _stated(value, field: dataclasses.Field) -> bool:
    """Whether `field` of the dataclass `value` enters its config."""
    return field.metadata != UNLESS_DEFAULT or getattr(value, field.name) != field.default


def _canonical(value):
    """`value` as plain JSON data; dataclasses carry their class name, enums their member;
    a field marked `UNLESS_DEFAULT` is left out while it holds its default."""
    if isinstance(value, enum.Enum):
        return {"__enum__": f"{type(value).__name__}.{value.name}"}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value) if _stated(value, f)}
        return {"__class__": type(value).__name__, **fields}
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise ValueError(f"config dict keys must be str, got {list(value)!r}")
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ValueError(
        "config must be made of dataclasses, dicts, lists, tuples, str, int, float, bool, "
        f"None and enums, got {type(value).__name__}"
    )


def config_json(config, indent: int | None = None) -> str:
    """Canonical JSON of a config (sorted keys); compact unless `indent` is given."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(_canonical(config), sort_keys=True, indent=indent, separators=separators)


def config_hash(config) -> str:
    """Stable hex digest of a config (a frozen dataclass, possibly nested, or a dict)."""
    return hashlib.sha256(config_json(config).encode()).hexdigest()[:HASH_CHARS]


def check_name(name: str, what: str) -> str:
    """`name` if it is a safe path component (a store kind, a part name), else ValueError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{what} must be letters, digits, '_' or '-', got {name!r}")
    return name


def _serialize(name: str, part) -> tuple[str, bytes]:
    """(type, file bytes) of one result part."""
    if isinstance(part, pd.DataFrame):
        buffer = io.BytesIO()
        part.to_parquet(buffer, engine="pyarrow")
        return "dataframe", buffer.getvalue()
    is_array = isinstance(part, np.ndarray)
    part_type, arrays = ("array", {"array": part}) if is_array else ("arrays", part)
    if not isinstance(arrays, Mapping) or not all(
        isinstance(key, str) and isinstance(a, np.ndarray) and not a.dtype.hasobject for key, a in arrays.items()
    ):
        raise ValueError(
            f"result[{name!r}] must be a DataFrame, a non-object ndarray or a dict of them "
            f"with str keys, got {type(part).__name__}"
        )
    return part_type, npz_bytes(arrays)


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """What np.savez writes, minus its clock-dependent timestamps and reserved key names."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{key}.npy"), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def _deserialize(part_type: str, data: bytes):
    if part_type == "dataframe":
        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return arrays["array"] if part_type == "array" else arrays


def file_entry(data: bytes) -> dict:
    """{"sha256", "size"} of a file's bytes, as manifests list them."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    return True


class Store:
    """Results under ``root/<kind>/<hash>/``, saved atomically and verified when read."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.computed = 0
        self.loaded = 0

    def path(self, kind: str, config) -> Path:
        """Directory of the result of `kind` for `config` (whether or not it exists)."""
        return self.root / check_name(kind, "kind") / config_hash(config)

    def folder(self, *parts: str) -> Path:
        """``root/<parts>``, created if missing; a root created now is marked as a store
        (`ebnb.ownership`)."""
        ownership.claim(self.root, "store")
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def exists(self, kind: str, config) -> bool:
        """True if a complete result whose files match its manifest is stored."""
        return self._is_valid(self.path(kind, config))

    def damage(self, kind: str, config) -> str | None:
        """What is wrong with the stored result of `kind` for `config`: None if it is valid
        or absent, else the reason (naming its directory) it would be discarded."""
        try:
            self._verified_files(self.path(kind, config))
        except FileNotFoundError:
            return None
        except CorruptResultError as error:
            return str(error)
        return None

    def load(self, kind: str, config) -> dict:
        """The stored result; FileNotFoundError if absent, CorruptResultError if damaged."""
        return self._read(self.path(kind, config))

    def save(self, kind: str, config, result: Mapping, overwrite: bool = False) -> Path:
        """Store `result` atomically and return its directory.

        If a valid result is already there (another process finished first), ours is
        discarded unless `overwrite`; an invalid one is replaced.
        """
        final = self.path(kind, config)
        files, parts = self._encode(config, result)
        self.folder(final.parent.name)
        self._sweep_stale(final)
        tmp = self._tmp_sibling(final)
        try:
            tmp.mkdir()
            self._write_dir(tmp, files, parts)
            self._publish(tmp, final, overwrite)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def get_or_compute(self, kind: str, config, compute: Callable[[], Mapping], force: bool = False) -> dict:
        """The stored result, or compute(), saved, then returned as loaded from disk.

        A damaged result is discarded and recomputed; `force` recomputes and replaces.
        """
        where = f"{kind}/{config_hash(config)}"
        if not force:
            try:
                result = self.load(kind, config)
            except FileNotFoundError:
                pass
            except CorruptResultError as error:
                log.warning("discarding corrupt %s: %s", where, error)
                self._remove(self.path(kind, config))
            else:
                self.loaded += 1
                log.info("loaded %s", where)
                return result
        self.save(kind, config, compute(), overwrite=force)
        self.computed += 1
        log.info("computed %s", where)
        return self.load(kind, config)

    def _encode(self, config, result: Mapping) -> tuple[dict[str, bytes], dict[str, str]]:
        """File contents (config.json and one file per part) and the type of each part."""
        if not isinstance(result, Mapping):
            raise ValueError(f"result must be a dict of named parts, got {type(result).__name__}")
        files = {"config.json": (config_json(config, indent=2) + "\n").encode()}
        parts = {}
        for name, part in result.items():
            check_name(name, "result part names")
            parts[name], data = _serialize(name, part)
            files[name + _SUFFIX[parts[name]]] = data
        return files, parts

    def _write_dir(self, directory: Path, files: dict[str, bytes], parts: dict[str, str]) -> None:
        """Write and fsync every file, then the manifest, then the directory entry."""
        for filename, data in files.items():
            _write_synced(directory / filename, data)
        manifest = {"parts": parts, "files": {f: file_entry(d) for f, d in files.items()}}
        _write_synced(directory / "manifest.json", json.dumps(manifest, indent=2).encode())
        _fsync_dir(directory)

    def _publish(self, tmp: Path, final: Path, overwrite: bool) -> None:
        """Rename `tmp` to `final`, replacing an invalid (or, if `overwrite`, any) result."""
        if final.exists() and (overwrite or not self._is_valid(final)):
            self._remove(final)
        try:
            os.rename(tmp, final)
        except OSError:
            if not self._is_valid(final):
                raise
            return  # a valid result appeared meanwhile: ours is redundant
        _fsync_dir(final.parent)

    def _remove(self, directory: Path) -> None:
        """Delete a result directory, first renaming it aside so it vanishes atomically."""
        aside = self._tmp_sibling(directory)
        try:
            os.rename(directory, aside)
        except FileNotFoundError:
            return  # another process removed it first
        shutil.rmtree(aside)

    def _tmp_sibling(self, final: Path) -> Path:
        return final.parent / f"{_TMP}{final.name}-{os.getpid()}-{secrets.token_hex(4)}"

    def _sweep_stale(self, final: Path) -> None:
        """Remove temporary directories of this key left by processes no longer running."""
        for tmp in final.parent.glob(f"{_TMP}{final.name}-*-*"):
            pid = tmp.name.split("-")[2]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)

    def _is_valid(self, directory: Path) -> bool:
        try:
            self._verified_files(directory)
        except (FileNotFoundError, CorruptResultError):
            return False
        return True

    def _verified_files(self, directory: Path) -> tuple[dict[str, str], dict[str, bytes]]:
        """(part types, file contents) after checking every file against the manifest."""
        if not directory.is_dir():
            raise FileNotFoundError(f"no stored result at {directory}")
        try:
            manifest = json.loads((directory / "manifest.json").read_bytes())
            files = {name: (directory / name).read_bytes() for name in manifest["files"]}
            parts = dict(manifest["parts"])
            damaged = [n for n, d in files.items() if file_entry(d) != manifest["files"][n]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            reason = f"unreadable manifest or file ({error!r})"
            raise CorruptResultError(f"{directory}: {reason}") from error
        if damaged:
            raise CorruptResultError(f"{directory}: {damaged} do not match the manifest")
        return parts, files

    def _read(self, directory: Path) -> dict:
        parts, files = self._verified_files(directory)
        try:
            return {name: _deserialize(t, files[name + _SUFFIX[t]]) for name, t in parts.items()}
        except _UNREADABLE as error:
            raise CorruptResultError(f"{directory}: unreadable part ({error!r})") from error
