"""Where a project's results live: the store, the run outputs, the published results."""

from __future__ import annotations

import os
from pathlib import Path

from ebnb import published
from ebnb.published import Published

PROJECT = Path(__file__).resolve().parents[2]


def _folder(variable: str, default: Path) -> Path:
    """The folder $`variable` names (relative: to the project, whichever folder runs the
    kernel), else `default`; set but empty is a ValueError naming the variable."""
    value = os.environ.get(variable)
    if value is None:
        return default
    if not value.strip():
        raise ValueError(f"{variable}: set but empty; unset it for the default {shown(default)}/, or give a folder")
    return PROJECT / Path(value).expanduser()


def default_store() -> Path:
    """Where results are cached: $EBNB_STORE, else store/ in the project."""
    return _folder("EBNB_STORE", PROJECT / "store")


def default_outputs() -> Path:
    """Where runs write executed notebooks and figures: $EBNB_OUTPUTS, else outputs/ in the
    project (a working folder, not committed; `pipeline.py publish` publishes from it)."""
    return _folder("EBNB_OUTPUTS", PROJECT / "outputs")


def default_figures(run: str) -> Path:
    """The figures folder of a run: <outputs>/<run>/figures, `run` as `grids.run_name` gives it."""
    return default_outputs() / run / "figures"


def default_published() -> Path:
    """The published results: $EBNB_RESULTS, else results/ in the project."""
    return _folder("EBNB_RESULTS", PROJECT / "results")


def published_results(root: str | Path | None = None) -> Published | None:
    """The published results at `root` (default `default_published()`); None if there is no
    folder at a `root` given (a project's first publish). A missing default folder, or a
    manifest missing or damaged, is a ValueError naming it and saying how to restore it
    (`ebnb.published.Published`), never silently "no published results"."""
    try:
        return Published(root or default_published())
    except FileNotFoundError:
        if root is None:
            raise ValueError(
                f"{shown(default_published())}/ is missing: no published results; {published.RESTORE}"
            ) from None
        return None


def shown(path: str | Path) -> str:
    """`path` relative to the project if it lies inside it (output that reads the same on any
    machine), else as given."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(PROJECT))
    except ValueError:
        return str(path)
