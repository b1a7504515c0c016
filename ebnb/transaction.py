"""Replacing published folders all at once or not at all (`ebnb.publish`'s transaction).

A publish stages the complete new content of each folder it replaces in
``<root>/.publish-<token>/new/``, fsyncs it, then renames a journal into
``<root>/.publish-journal.json``: from then on the publish is decided. It moves each current
folder to ``.publish-<token>/old/`` and the staged one into its place, removes the journal,
then the transaction's folder. `recover`, which every pipeline command runs first, completes a
decided publish (roll forward) and removes what an undecided one left (roll back: nothing
published was touched yet), and the leftovers of publishes made before this module
(``.results.new-*``, ``.results.old-*``). Every filesystem change goes through `OPERATIONS`,
so that a test can kill a publish, or fail it, at each one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

JOURNAL = ".publish-journal.json"
_TRANSACTION = re.compile(r"\.publish-[0-9a-f]{16}")
_LEGACY = re.compile(
    r"\.results\.(new|old)-[0-9a-f]{8}"
)  # `published.write`'s folders before publish was a transaction
_STAGED = {"new", "old", "journal.json"}  # what a transaction's folder holds


class Operations:
    """The filesystem changes of a publish, one method each; `before(name, path)` runs before
    every one (a test's hook kills the process or raises OSError there)."""

    def before(self, name: str, path: Path) -> None:
        pass

    def mkdir(self, path: Path) -> None:
        self.before("mkdir", path)
        path.mkdir(parents=True, exist_ok=True)

    def write(self, path: Path, data: bytes) -> None:
        self.before("write", path)
        path.write_bytes(data)

    def fsync(self, path: Path) -> None:
        """A file's data, or a folder's entries, to disk."""
        self.before("fsync", path)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def rename(self, source: Path, path: Path) -> None:
        self.before("rename", path)
        os.rename(source, path)

    def unlink(self, path: Path) -> None:
        self.before("unlink", path)
        path.unlink()

    def rmtree(self, path: Path) -> None:
        self.before("rmtree", path)
        shutil.rmtree(path)


OPERATIONS = Operations()


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """An exclusive lock on the project folder itself (no lock file): one publish or recovery
    at a time; a killed holder's lock goes with it."""
    descriptor = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def recover(root: Path) -> None:
    """Complete a publish that was killed after it was decided, remove what any killed publish
    left; nothing is opened for writing if no publish was interrupted (a read-only checkout)."""
    root = Path(root)
    if (root / JOURNAL).exists() or _leftovers(root):
        with locked(root):
            recover_locked(root)


def recover_locked(root: Path) -> None:
    """`recover` for a caller that holds the lock (`locked`)."""
    try:
        if (root / JOURNAL).exists():
            _roll_forward(root)
        for leftover in _leftovers(root):
            OPERATIONS.rmtree(leftover)
    except OSError as error:
        raise RuntimeError(
            f"completing or clearing an interrupted publish in {root} failed: {error}; run the command again"
        ) from None


def _leftovers(root: Path) -> list[Path]:
    """Folders of killed publishes in `root`: a transaction's (holding only what one holds) or
    an old results folder's."""
    found = []
    for path in sorted(root.glob(".*")):
        if (
            path.is_dir()
            and not path.is_symlink()
            and (_TRANSACTION.fullmatch(path.name) and set(os.listdir(path)) <= _STAGED or _LEGACY.fullmatch(path.name))
        ):
            found.append(path)
    return found


def transact(
    root: Path, targets: Mapping[str, Mapping[str, bytes]], check: Callable[[Path], None] | None = None
) -> None:
    """Replace each folder named in `targets` (relative to `root`) by exactly its files
    ({relative path: bytes}), all folders or none; `check(staged)` may refuse the staged
    content (`staged`: a folder holding the targets) before anything published changes."""
    root, ops = Path(root), OPERATIONS
    folder = root / f".publish-{secrets.token_hex(8)}"
    try:
        folders = {folder, folder / "new"}
        for target, files in targets.items():
            for name, data in sorted(files.items()):
                path = folder / "new" / target / name
                folders.update(p for p in path.parents if p.is_relative_to(folder))
                ops.mkdir(path.parent)
                ops.write(path, data)
                ops.fsync(path)
            ops.mkdir(folder / "new" / target)  # a target may have no files
            folders.update(p for p in (folder / "new" / target).parents if p.is_relative_to(folder))
            folders.add(folder / "new" / target)
        for path in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            ops.fsync(path)
        if check is not None:
            check(folder / "new")
        ops.write(folder / "journal.json", json.dumps({"folder": folder.name, "targets": list(targets)}).encode())
        ops.fsync(folder / "journal.json")
        ops.rename(folder / "journal.json", root / JOURNAL)
        ops.fsync(root)
    except BaseException:
        if not (root / JOURNAL).exists():  # undecided: nothing published was touched
            try:
                ops.rmtree(folder)
            except OSError:
                pass  # the next command's `recover` removes it
        raise
    _roll_forward(root)


def _roll_forward(root: Path) -> None:
    """Finish the renames the journal plans (each step can be redone after a kill), then
    remove the journal and the transaction's folder."""
    ops, journal = OPERATIONS, root / JOURNAL
    try:
        plan = json.loads(journal.read_text())
        folder, targets = root / plan["folder"], list(plan["targets"])
        valid = _TRANSACTION.fullmatch(plan["folder"]) and all(
            t and not Path(t).is_absolute() and ".." not in Path(t).parts for t in targets
        )
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise RuntimeError(f"{journal} is not a publish journal this package wrote; move it away and publish again")
    for target in targets:
        new, old, live = folder / "new" / target, folder / "old" / target, root / target
        if not new.exists():
            continue  # in place already
        if live.exists():
            ops.mkdir(old.parent)
            ops.rename(live, old)
        ops.mkdir(live.parent)
        ops.rename(new, live)
        ops.fsync(live.parent)
    ops.unlink(journal)
    ops.fsync(root)
    if folder.exists():
        ops.rmtree(folder)
