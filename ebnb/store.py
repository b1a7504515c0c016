"""Hash-named, atomic, resumable results (in the spirit of open_lth's desc/runner).

A result is named by what produced it: ``root/<kind>/<hash>/`` with ``<hash>`` the
config's `ebnb.identity.config_hash` (what changes the result, not what it merely records).
The directory holds ``config.json`` (the whole config, readable), one file per named part of
the result and ``manifest.json`` (each file's sha256 and size, the part types), which is
written last. A stored result serves a config of its key whose recorded fields it covers
(`ebnb.identity.covers`); one that records less is recomputed and replaced, recording the
union (`Store.widened`).

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
from ebnb.identity import config_hash, config_json, covers, recorded, union

log = logging.getLogger("ebnb.store")

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TMP = ".tmp-"
_SUFFIX = {"dataframe": ".parquet", "array": ".npz", "arrays": ".npz"}
_UNREADABLE = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, pa.ArrowException)


class CorruptResultError(Exception):
    """A stored result exists but is incomplete or does not match its manifest."""


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


def _record_in(directory: Path, files: Mapping[str, bytes]) -> dict:
    """The config.json among a stored result's `files` (of `directory`), as JSON data."""
    try:
        return json.loads(files["config.json"])
    except (KeyError, ValueError) as error:
        raise CorruptResultError(f"{directory}: no readable config.json ({error!r})") from error


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
        """True if a complete result whose files match its manifest is stored, and it covers
        `config`'s recorded fields (`covers`)."""
        return self._serves(self.path(kind, config), config)

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
        """The stored result (it may record more than `config` asks: `covers`);
        FileNotFoundError if absent or if it records less, CorruptResultError if damaged."""
        directory = self.path(kind, config)
        parts, files = self._verified_files(directory)
        if not covers(_record_in(directory, files), config):
            raise FileNotFoundError(f"the result at {directory} records less than {config_json(config)} asks")
        return self._decoded(directory, parts, files)

    def widened(self, kind: str, configs) -> list:
        """`configs`, one per key (the first of each), each recording the union of what all of
        them and the valid stored results of their keys record: what a computation should
        store, so that it replaces stored results without losing anything they record, and
        so that the units it trains together record alike."""
        configs, unique = list(configs), {}
        for config in configs:
            unique.setdefault(config_hash(config), config)
        if not any(recorded(config) for config in unique.values()):
            return list(unique.values())
        records = [json.loads(config_json(config)) for config in configs]
        for key in unique:
            try:
                records.append(self._record(self.root / check_name(kind, "kind") / key))
            except (FileNotFoundError, CorruptResultError):
                pass
        widened = []
        for config in unique.values():
            for record in records:
                config = union(config, record)
            widened.append(config)
        return widened

    def save(self, kind: str, config, result: Mapping, overwrite: bool = False) -> Path:
        """Store `result` atomically and return its directory.

        If a valid result that covers `config` is already there (another process finished
        first), ours is discarded unless `overwrite`; an invalid one, or one that records less,
        is replaced.
        """
        final = self.path(kind, config)
        files, parts = self._encode(config, result)
        self.folder(final.parent.name)
        self._sweep_stale(final)
        tmp = self._tmp_sibling(final)
        try:
            tmp.mkdir()
            self._write_dir(tmp, files, parts)
            self._publish(tmp, final, config, overwrite)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def adopt(self, kind: str, config, directory: Path) -> Path:
        """Store the valid result in `directory` (of this store's `kind`, under another key:
        a hash scheme's before) as `config`'s, its part files byte for byte and its config.json
        rewritten, atomically; then remove `directory`. If `config`'s key holds a valid result
        already, `directory` is removed only if its parts are the same bytes (else
        FileExistsError, and nothing changes). Returns the result's directory."""
        parts, files = self._verified_files(directory)
        files = {name: data for name, data in files.items() if name != "config.json"}
        final = self.path(kind, config)
        if not self._is_valid(final):
            self.folder(kind)
            self._sweep_stale(final)
            tmp = self._tmp_sibling(final)
            try:
                tmp.mkdir()
                self._write_dir(tmp, {"config.json": (config_json(config, indent=2) + "\n").encode(), **files}, parts)
                self._publish(tmp, final, config, overwrite=False)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        held = self._verified_files(final)[1]
        if any(held.get(name) != data for name, data in files.items()):
            raise FileExistsError(f"{final} holds another result than {directory}; both are kept")
        self._remove(directory)
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

    def _publish(self, tmp: Path, final: Path, config, overwrite: bool) -> None:
        """Rename `tmp` to `final`, replacing an invalid result, one that does not cover
        `config` (or, if `overwrite`, any)."""
        if final.exists() and (overwrite or not self._serves(final, config)):
            self._remove(final)
        try:
            os.rename(tmp, final)
        except OSError:
            if not self._serves(final, config):
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

    def _record(self, directory: Path) -> dict:
        """The config.json of the valid stored result in `directory`, as JSON data."""
        return _record_in(directory, self._verified_files(directory)[1])

    def _serves(self, directory: Path, config) -> bool:
        """Whether `directory` holds a valid result that covers `config`."""
        try:
            return covers(self._record(directory), config)
        except (FileNotFoundError, CorruptResultError):
            return False

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

    def _decoded(self, directory: Path, parts: dict[str, str], files: dict[str, bytes]) -> dict:
        try:
            return {name: _deserialize(t, files[name + _SUFFIX[t]]) for name, t in parts.items()}
        except _UNREADABLE as error:
            raise CorruptResultError(f"{directory}: unreadable part ({error!r})") from error
