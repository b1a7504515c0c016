"""Disk usage of stored results and outputs, and guarded removal of them.

`clean` deletes whole directories (the store, executed notebooks, figures). It refuses
anything that looks like a mistake (``--store .``, ``--store ~``): a filesystem root, the home
directory or one containing it, a directory containing the current directory, a project root
(``.git`` or ``pyproject.toml`` inside), a symbolic link, or a file. A directory is first
renamed aside to ``.<name>-deleting-<pid>`` and then removed, so a crash never leaves a
half-deleted directory under its original name; leftovers of such crashes are removed by the
next `clean` of the same target.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ebnb.store import Store

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_STORE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def directory_size(path: Path) -> int:
    """Total bytes of the regular files under `path` (0 if absent); symlinks are not followed."""
    if os.path.islink(path):
        return 0
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:
                continue  # removed while we walked
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def result_sizes(store: Store, steps: Mapping[str, tuple[str, Sequence]]) -> dict[str, tuple[int, int]]:
    """For each step (name -> (kind, unit configs)): (valid results stored, their bytes on disk)."""
    sizes = {}
    for step, (kind, units) in steps.items():
        directories = {store.path(kind, unit): unit for unit in units}
        stored = [path for path, unit in directories.items() if store.exists(kind, unit)]
        sizes[step] = (len(stored), sum(directory_size(path) for path in stored))
    return sizes


def human_size(n: int) -> str:
    """`n` bytes in binary units: "512 B", "1.5 KiB", "12.0 MiB"."""
    value, unit = float(n), 0
    while round(value, 1) >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{n} B" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def clean(targets: Mapping[str, Path], dry_run: bool = False) -> dict[str, int]:
    """Remove the named directories; bytes freed per name (would be freed, if `dry_run`).

    Every target is checked before anything is deleted: ValueError naming the first unsafe one.
    Missing targets free 0 bytes.
    """
    for name, path in targets.items():
        reason = _refusal(Path(path))
        if reason:
            raise ValueError(f"refusing to delete {name} at {path}: {reason}")
    return {name: _remove(Path(path).resolve(), dry_run) for name, path in targets.items()}


def _refusal(path: Path) -> str | None:
    """Why deleting `path` is refused, or None if it is safe."""
    if path.is_symlink():
        return "it is a symbolic link"
    real = path.resolve()
    if real.exists() and not real.is_dir():
        return "it is not a directory"
    if real == real.parent:
        return "it is a filesystem root"
    if Path.home().resolve().is_relative_to(real):
        return "it is or contains the home directory"
    if Path.cwd().resolve().is_relative_to(real):
        return "it is or contains the current directory"
    markers = [marker for marker in (".git", "pyproject.toml") if os.path.lexists(real / marker)]
    if markers:
        return f"it looks like a project root (contains {' and '.join(markers)})"
    return None


def _remove(path: Path, dry_run: bool) -> int:
    """Bytes of `path` and of its crash leftovers, which are deleted unless `dry_run`."""
    leftovers = list(path.parent.glob(glob.escape(f".{path.name}") + "-deleting-*"))
    freed = sum(directory_size(p) for p in [path, *leftovers])
    if dry_run:
        return freed
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
    aside = path.with_name(f".{path.name}-deleting-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return freed  # absent, or removed meanwhile
    shutil.rmtree(aside)
    return freed


_STORE_ENTRY = re.compile(r"[0-9a-f]{16}|\.tmp-.*|.*\.lock|.*\.pt")
_RUN_RECORD = re.compile(r"(\.tmp-)?[0-9T:+-]+\.json(-\d+)?")


def foreign_files(path: Path, belongs: Callable[[Path], bool]) -> list[Path]:
    """Files under `path` (relative to it) for which `belongs` is False, e.g. a user's own
    files in a folder given as --store by mistake."""
    if not os.path.isdir(path):
        return []
    found = []
    for directory, _, files in os.walk(path):
        for name in files:
            relative = Path(directory, name).relative_to(path)
            if not belongs(relative):
                found.append(relative)
    return sorted(found)


def in_store(relative: Path) -> bool:
    """Whether a file at `relative` inside a store root is one the store writes: result
    files (`<kind>/<hash>/...`, temporary `.tmp-*` dirs), `lock/*.lock`, `checkpoint/*.pt`,
    run records `runs/<start time>.json` and the compute probe `.probe-*`."""
    parts = relative.parts
    if len(parts) == 1:
        return parts[0].startswith(".probe-")
    if parts[0] == "runs":
        return len(parts) == 2 and bool(_RUN_RECORD.fullmatch(parts[1]))
    return bool(_STORE_NAME.fullmatch(parts[0])) and bool(_STORE_ENTRY.fullmatch(parts[1]))

