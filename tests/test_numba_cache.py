"""numba's cache of the package's compiled code follows every edit of it (`ebnb.numba_cache`):
a cached function that links in another module's compiled code is compiled again when that
module changes, and loaded from the cache when nothing changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ebnb import numba_cache

# Greedy actions through the kernel (kernel.py), whose layers live in layers.py; prints the
# actions and whether the kernel's entry point came from the cache.
PROBE = """
import json, numpy as np
from ebnb import kernel
rng = np.random.default_rng(0)
params = [rng.standard_normal(s).astype(np.float32) for s in [(1, 16, 4), (1, 16, 1), (1, 2, 16), (1, 2, 1)]]
actions = kernel.greedy_actions(params, rng.standard_normal((1, 32, 4)).astype(np.float32))
print(json.dumps({"actions": actions.tolist(), "cache_hits": sum(kernel._greedy_serial.stats.cache_hits.values())}))
"""


def _copy_package(root: Path) -> Path:
    package = root / "ebnb"
    shutil.copytree(numba_cache.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    return package


def _probe(root: Path) -> dict:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_CACHE")}
    environment["PYTHONPATH"] = str(root)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_stamp_covers_every_module_that_compiles_and_only_those(tmp_path):
    package = _copy_package(tmp_path)
    before = numba_cache.sources_stamp.__wrapped__(package)
    assert before == numba_cache.sources_stamp.__wrapped__(package)
    with open(package / "cost.py", "a") as f:  # no compiled code
        f.write("\n# an edit\n")
    assert numba_cache.sources_stamp.__wrapped__(package) == before
    for module in ("layers.py", "dynamics.py", "rng.py"):
        with open(package / module, "a") as f:
            f.write("\n# an edit\n")
        after = numba_cache.sources_stamp.__wrapped__(package)
        assert after != before, module
        before = after


def test_an_edit_of_the_layers_alone_reaches_the_kernels_cached_code(tmp_path):
    package = _copy_package(tmp_path)
    first = _probe(tmp_path)
    again = _probe(tmp_path)
    assert again == {**first, "cache_hits": again["cache_hits"]} and again["cache_hits"] > 0
    layers = package / "layers.py"
    source = layers.read_text()
    assert "    value = total + bias\n" in source
    layers.write_text(source.replace("    value = total + bias\n", "    value = -(total + bias)\n"))  # flips the argmax
    edited = _probe(tmp_path)
    assert edited["cache_hits"] == 0
    assert edited["actions"] != first["actions"]
