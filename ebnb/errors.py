"""Failures as one line for the command lines, and checks that an output can be written.

Both command lines (`pipeline.py`, `python -m ebnb`) end a failed run with one line
`error: ...` naming the file or parameter and what to do, and exit status 2 for what the
user gave (a ValueError) or 1 for what the machine did (a full or read-only disk, an
unreachable scheduler, a damaged result); the traceback only with `--debug`.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ebnb.store import CorruptResultError

USER, MACHINE = 2, 1  # exit statuses
_ADVICE = {
    errno.ENOSPC: "free some space, or point --store/--out at another disk",
    errno.EDQUOT: "free some space, or point --store/--out at another disk",
    errno.EROFS: "the disk is mounted read-only; point --store/--out at a writable folder",
    errno.EACCES: "check its permissions, or point --store/--out at a folder you own",
    errno.EPERM: "check its permissions, or point --store/--out at a folder you own",
}


def describe(error: BaseException) -> tuple[str, int]:
    """(the one line after `error: `, exit status) for a failure a user or machine caused."""
    if isinstance(error, ValueError):
        return str(error), USER
    if isinstance(error, CorruptResultError):
        return f"{error}; delete that folder and rerun to recompute it", MACHINE
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        reason = error.strerror or str(error) or type(error).__name__
        advice = _ADVICE.get(error.errno, "")
        return f"{where}{reason}" + (f"; {advice}" if advice else ""), MACHINE
    return str(error) or type(error).__name__, MACHINE


def run(job: Callable[[], object], debug: bool) -> int:
    """Run `job`; 0 if it returns, else print its failure in one line and return the exit
    status (`describe`). With `debug`, failures propagate with their traceback."""
    try:
        job()
    except (ValueError, OSError, CorruptResultError, RuntimeError) as error:
        if debug:
            raise
        message, status = describe(error)
        print(f"error: {message}", file=sys.stderr)
        return status
    return 0


def check_writable_file(name: str, path: Path) -> Path:
    """`path` as a file that can be written: not a folder, and its nearest existing ancestor a
    writable folder (folders missing in between are made when it is written); else a
    ValueError naming `name`."""
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a folder; give a file name, e.g. {path / 'log.csv'}")
    check_writable_folder(name, path.parent)
    return path


def check_writable_folder(name: str, path: Path, writable: bool = True) -> Path:
    """`path` as a folder that exists or can be made (and, if `writable`, written: a store
    that is only read may be read-only); else a ValueError naming `name`."""
    existing = path
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{name}: {existing} is a file, not a folder; give a folder")
    if writable and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write into {existing} (read-only or not yours); give a writable folder")
    return path
