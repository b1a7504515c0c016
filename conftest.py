"""Test session setup: every test, and every notebook nbval re-executes, uses a fresh store.

The notebooks (and pipeline.py without --store) find their store through $EBNB_STORE and
write outputs (executed notebooks, figures) under $EBNB_OUTPUTS; both point into one temporary directory this session
creates (and removes at its end), so nbval recomputes every checked table from scratch
instead of loading the working copy's cached results, and nothing outside that directory is
written. Subprocesses (pipeline.py, papermill, nbval's kernels) inherit the variables. Each
pytest-xdist worker is a session of its own here, with its own directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SESSION_DIR: Path | None = None
_SAVED = {}


def pytest_configure(config):
    global _SESSION_DIR
    _SESSION_DIR = Path(tempfile.mkdtemp(prefix="ebnb-test-session-"))
    for name, sub in (("EBNB_STORE", "store"), ("EBNB_OUTPUTS", "outputs")):
        _SAVED[name] = os.environ.get(name)
        os.environ[name] = str(_SESSION_DIR / sub)


def pytest_unconfigure(config):
    for name, value in _SAVED.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if _SESSION_DIR is not None and _SESSION_DIR.name.startswith("ebnb-test-session-"):
        shutil.rmtree(_SESSION_DIR, ignore_errors=True)  # the directory this session made, nothing else
