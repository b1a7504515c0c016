"""Disk usage of stored results and outputs (what may be removed: `ebnb.ownership`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from ebnb.store import Store

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


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
