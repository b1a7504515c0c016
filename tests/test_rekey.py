"""The published results re-keyed once (`ebnb.rekey`): the set as committed before, keyed by the
old scheme, and the set committed now agree unit for unit, to the bit (the new set may hold
units published since)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ebnb import rekey
from ebnb.cost import POST_PRUNE_COLUMNS
from ebnb.published import MANIFEST, _decode

ROOT = Path(__file__).resolve().parents[1]
OLD = "3e5aef6daa95907d15e299e00ebcf24e9ccdf34c"  # the last commit of results/ keyed by the old scheme


def _git_show(path: str) -> bytes:
    return subprocess.run(["git", "show", f"{OLD}:{path}"], cwd=ROOT, capture_output=True, check=True).stdout


def _has_old_commit() -> bool:
    found = subprocess.run(["git", "cat-file", "-e", f"{OLD}^{{commit}}"], cwd=ROOT, capture_output=True, check=False)
    return found.returncode == 0


@pytest.mark.skipif(not _has_old_commit(), reason=f"no git history holding {OLD} (a shallow clone?)")
def test_the_old_and_the_new_published_sets_agree_unit_for_unit(tmp_path):
    old_root = tmp_path / "results"
    manifest = json.loads(_git_show(f"results/{MANIFEST}"))
    for name in [*manifest["files"], MANIFEST]:
        (old_root / name).parent.mkdir(parents=True, exist_ok=True)
        (old_root / name).write_bytes(_git_show(f"results/{name}"))
    units = rekey.published_units(old_root)
    new_manifest = json.loads((ROOT / "results" / MANIFEST).read_text())
    for profile, grid in rekey.renamed_kinds(manifest["grid"]).items():
        assert new_manifest["grid"][profile] == grid, profile
    compared = 0
    for env_id, steps in manifest["tables"].items():
        for step, layout in steps.items():
            old_to_new = rekey.old_keys(units[env_id][step])
            for name in layout.values():
                arrays = name.endswith(".npz")
                old = _decode((old_root / env_id / name).read_bytes(), arrays)
                new = _decode((ROOT / "results" / env_id / name).read_bytes(), arrays)
                assert set(new) >= {old_to_new[key] for key in old}, f"{env_id}/{name}: units lost"
                for key, part in old.items():
                    after = new[old_to_new[key]]
                    if arrays:
                        assert part.keys() == after.keys()
                        for array in part:
                            np.testing.assert_array_equal(part[array], after[array], strict=True)
                    else:  # the full profile's tickets gained their post-prune counters on 2026-12-07
                        assert set(after.columns) - set(part.columns) <= set(POST_PRUNE_COLUMNS), f"{env_id}/{name}"
                        pd.testing.assert_frame_equal(part, after[list(part.columns)], check_exact=True)
                    compared += 1
    listed = sum(
        manifest["units"][env][step] * len(layout)
        for env, steps in manifest["tables"].items()
        for step, layout in steps.items()
    )
    assert compared == listed > 7000, "every unit of every table compared"
    current = tmp_path / "current" / "results"
    shutil.copytree(ROOT / "results", current)
    assert rekey.results(current) == [], "the committed set is keyed already: re-keying changes nothing"


def test_a_unit_that_sets_an_option_added_since_has_no_old_key(monkeypatch):
    """scaled_observations came after the old scheme: the unit that sets it must not take the
    old key of the run it varies (else re-keying would give that run its table rows)."""
    from dataclasses import replace

    from ebnb import experiments

    dense = next(iter(experiments.steps("acrobot", experiments.grid("quick")).values())).units[0]
    scaled = replace(dense, dqn=replace(dense.dqn, scaled_observations=True))
    assert rekey.legacy_hash(scaled) != rekey.legacy_hash(dense)
    assert rekey.old_keys([dense, scaled]) == {
        rekey.legacy_hash(u): rekey.identity.config_hash(u) for u in (dense, scaled)
    }
    monkeypatch.setitem(rekey.ADDED, type(dense.dqn), ("device", "scaled_observations"))  # left out always
    with pytest.raises(ValueError, match="share the old key"):
        rekey.old_keys([dense, scaled])
