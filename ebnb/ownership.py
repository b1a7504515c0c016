"""What the package may delete: only folders it can prove it made and filled.

Every folder the package creates for a store, a run's outputs or a report gets a marker file
``.ebnb-owned``: a first line ``{"kind": "store" | "outputs" | "report"}``, then, for outputs
and report folders, the name of each file the package wrote there, one a line (appended as
it writes them, so concurrent writers do not lose each other's lines). A folder that already
existed is marked only if it was empty; a folder holding files of someone else's is never
marked. `remove` is the one guarded deletion (`pipeline.py clean`, `report --to`): a folder
is removable only if it is empty, or has the marker of the expected kind (a store made before markers
existed: every file accounted for by the store's layout, and at least one result) and every
file in it is accounted for: in a store by the store's own layout (results listed in their
manifests, lock files, checkpoints, run records), elsewhere by its folder's marker. Otherwise
it refuses, naming an example file, and deletes nothing. It also refuses anything that looks
like a mistake whatever it holds: a filesystem root, the home directory or one containing it,
a directory containing the current directory, a project root (``.git`` or ``pyproject.toml``
inside), a symbolic link, a file. A folder is first renamed aside to
``.<name>-deleting-<pid>`` and then removed, so a crash never leaves a half-deleted folder
under its own name; the next removal of the same folder finishes such leftovers.
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path

MARKER = ".ebnb-owned"
KINDS = ("store", "outputs", "report")

_HASH = r"[0-9a-f]{16}"
_STORE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_STORE_ROOT_FILE = re.compile(r"\.probe-[0-9a-f]{12}")
_LOCK = re.compile(_HASH + r"\.lock")
_CHECKPOINT = re.compile(rf"(\.tmp-)?{_HASH}\.pt(-\d+-[0-9a-f]{{8}})?")
_RUN_RECORD = re.compile(r"(\.tmp-)?[0-9T:+-]+\.json(-\d+)?")
_UNIT = re.compile(_HASH)
_UNIT_TMP = re.compile(rf"\.tmp-{_HASH}-\d+-[0-9a-f]{{8}}")
_UNIT_FILE = re.compile(r"config\.json|manifest\.json|[A-Za-z0-9_-]+\.(parquet|npz)")


def claim(folder: str | Path, kind: str) -> Path:
    """`folder`, created with its missing parents; each folder created now, and `folder`
    itself if it was empty, is marked as the package's (`kind`)."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
    folder.mkdir(parents=True, exist_ok=True)
    for path in missing:
        _mark(path, kind)
    if not missing and not os.path.lexists(folder / MARKER) and not any(folder.iterdir()):
        _mark(folder, kind)
    return folder


def _mark(folder: Path, kind: str) -> None:
    """Write the marker atomically, unless one is there (a concurrent claim wrote it)."""
    temporary = folder / f"{MARKER}.{os.getpid()}-{secrets.token_hex(4)}"
    temporary.write_text(json.dumps({"kind": kind}) + "\n")
    try:
        os.link(temporary, folder / MARKER)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def new_file(path: str | Path, kind: str) -> Path:
    """`path`, about to be written by the package: its folder claimed (`claim`) and the file
    recorded in the folder's marker, if the folder is the package's."""
    path = Path(path)
    marker = claim(path.parent, kind) / MARKER
    if os.path.lexists(marker):
        with open(marker, "a") as file:  # one short write: concurrent appends do not interleave
            file.write(path.name + "\n")
    return path


def kind_of(folder: Path) -> str | None:
    """The kind named by `folder`'s marker; None without a (readable) marker."""
    try:
        kind = json.loads((folder / MARKER).read_text().partition("\n")[0])["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return kind if kind in KINDS else None


def refusal(folder: str | Path, kind: str) -> str | None:
    """Why removing `folder` as a `kind` folder is refused, or None if it may be removed
    (also if it does not exist)."""
    folder = Path(folder)
    reason = _unsafe(folder)
    if reason or not folder.exists() or not any(folder.iterdir()):
        return reason  # an empty folder holds nothing to lose
    found = kind_of(folder)
    if found is None and os.path.lexists(folder / MARKER):
        return f"its marker {MARKER} is unreadable"
    if found is not None and found != kind:
        return f"it is a{'n' if found[0] in 'aeiou' else ''} {found} folder, not a{'n' if kind[0] in 'aeiou' else ''} {kind}"
    if found is None and kind != "store":
        example = next(_files(folder), None)
        held = f" and holds files the pipeline did not write, e.g. {example}" if example else ""
        return f"it has no {MARKER} marker (the pipeline did not make it){held}"
    stray = _unaccounted(folder, kind)
    if stray is not None:
        return f"it holds files the pipeline did not write, e.g. {stray}"
    if found is None and not any(_UNIT.fullmatch(p.name) for d in folder.iterdir() if d.is_dir() for p in d.iterdir()):
        return f"it has no {MARKER} marker and holds no stored result"
    return None


def remove(targets: Mapping[str, tuple[str | Path, str]], dry_run: bool = False) -> dict[str, int]:
    """Remove the named folders (name -> (path, kind)); bytes freed per name (would be
    freed, if `dry_run`). Every target is checked first: ValueError naming the first one
    refused, and nothing is deleted. Missing targets free 0 bytes."""
    for name, (path, kind) in targets.items():
        reason = refusal(path, kind)
        if reason:
            raise ValueError(f"refusing to delete {name} at {path}: {reason}")
    return {name: _remove(Path(path).resolve(), dry_run) for name, (path, _) in targets.items()}


def _unsafe(path: Path) -> str | None:
    """Why deleting `path` is refused whatever it holds, or None."""
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


def _files(folder: Path):
    """Every file and empty directory under `folder`, relative to it, sorted per level."""
    for directory, dirs, files in os.walk(folder):
        dirs.sort()
        here = Path(directory)
        if not dirs and not files and here != folder:
            yield here.relative_to(folder)
        for name in sorted(files):
            yield (here / name).relative_to(folder)


def _unaccounted(folder: Path, kind: str) -> Path | None:
    """The first file (or directory) under `folder` that the package cannot show it wrote."""
    if kind == "store":
        return next((p for p in _files(folder) if not _in_store(folder, p)), None)
    for directory, dirs, files in os.walk(folder):
        dirs.sort()
        here = Path(directory)
        if os.path.lexists(here / MARKER) and kind_of(here) == "store":
            stray = _unaccounted(here, "store")
            dirs.clear()
            if stray is not None:
                return here.relative_to(folder) / stray
            continue
        written = set(_recorded(here))
        for name in sorted(files):
            if name != MARKER and name not in written:
                return (here / name).relative_to(folder)
        if MARKER not in files and here != folder:
            return here.relative_to(folder)
        for name in dirs:
            if os.path.islink(here / name):
                return (here / name).relative_to(folder)
    return None


def _recorded(folder: Path) -> list[str]:
    """The file names `folder`'s marker records (none without a marker)."""
    if kind_of(folder) is None:
        return []
    return (folder / MARKER).read_text().splitlines()[1:]


def _in_store(root: Path, relative: Path) -> bool:
    """Whether the store's layout accounts for the file at `relative` in the store `root`:
    its marker and compute probes; the layout's folders (empty ones too); `lock/<hash>.lock`; `checkpoint/<hash>.pt` (and its
    temporary files); run records `runs/<start time>.json`; results `<kind>/<hash>/<file>`
    listed in the result's manifest (if the manifest is unreadable: a damaged result, any
    file named as results' files are), and the same in temporary `<kind>/.tmp-<hash>-...`."""
    parts, path = relative.parts, root / relative
    if path.is_symlink():
        return False
    if path.is_dir():  # an empty folder of the layout (`_files` yields only empty ones)
        return bool(_STORE_NAME.fullmatch(parts[0])) and (
            len(parts) == 1 or len(parts) == 2 and bool(_UNIT.fullmatch(parts[1]) or _UNIT_TMP.fullmatch(parts[1]))
        )
    if len(parts) == 1:
        return parts[0] == MARKER or bool(_STORE_ROOT_FILE.fullmatch(parts[0]))
    if len(parts) == 2:
        pattern = {"lock": _LOCK, "checkpoint": _CHECKPOINT, "runs": _RUN_RECORD}.get(parts[0])
        return pattern is not None and bool(pattern.fullmatch(parts[1]))
    if len(parts) != 3 or not _STORE_NAME.fullmatch(parts[0]):
        return False
    unit, name = parts[1], parts[2]
    if _UNIT_TMP.fullmatch(unit):
        return bool(_UNIT_FILE.fullmatch(name))
    if not _UNIT.fullmatch(unit):
        return False
    try:
        listed = json.loads((root / parts[0] / unit / "manifest.json").read_bytes())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return bool(_UNIT_FILE.fullmatch(name))
    return name == "manifest.json" or (isinstance(listed, dict) and name in listed)


def _remove(path: Path, dry_run: bool) -> int:
    """Bytes of `path` and of its crash leftovers, which are deleted unless `dry_run`."""
    from ebnb.disk import directory_size

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
