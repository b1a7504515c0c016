"""The published results (results/): what a reader reruns without training.

A unit is taken from the published set only where its config hash matches; the rest is
computed. From a fresh checkout, every notebook x env of the full profile re-executes from the
committed results with zero training and prints the published notebooks' outputs, and no
tracked file changes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from ebnb import experiments, published
from ebnb.store import CorruptResultError, Store

ROOT = Path(__file__).resolve().parents[1]
TINY = {"seeds": (0, 1), "fractions": (0.5,), "prune_episodes": (2,), "episodes": 4, "test_episodes": 1}
RECORD = {"commit": "0123456789abcdef0123-dirty", "lock_sha256": "ab" * 32, "wall_s": 1.0}


@pytest.fixture(scope="module")
def made(tmp_path_factory, one_thread):
    """A tiny grid computed into a store, and published from it."""
    root = tmp_path_factory.mktemp("published")
    store, g = Store(root / "store"), experiments.grid("quick", **TINY)
    experiments.retrain("cartpole", g, store)
    experiments.finetune("cartpole", g, store)
    experiments.eb_exploit("cartpole", g, store)
    experiments.eb_exploit_sweep("cartpole", g, store)
    steps = experiments.steps("cartpole", g)
    results = {
        "CartPole-v0": {
            name: experiments.collect(store, step, None) for name, step in steps.items() if name != "winning tickets"
        }
    }
    published.write(root / "results", results, {"grid": "tiny"}, RECORD)
    return store, g, root / "results"


def test_published_tables_read_back_equal_to_what_the_store_holds(made):
    store, g, results = made
    pub = published.Published(results)
    for name, step in experiments.steps("cartpole", g).items():
        found = pub.parts("CartPole-v0", name, step.units)
        if name == "winning tickets":
            assert found == {}, "a step that was not published is not found"
            continue
        assert list(found) == list(step.units)
        for unit, parts in found.items():
            stored = experiments.published_view(name, store.load(step.kind, unit))
            assert parts.keys() == stored.keys()
            for part, value in parts.items():
                if hasattr(value, "columns"):
                    assert value.equals(stored[part]) and list(value.dtypes) == list(stored[part].dtypes)
                else:
                    assert value.keys() == stored[part].keys()
                    assert all(
                        (value[k] == stored[part][k]).all() and value[k].dtype == stored[part][k].dtype for k in value
                    )
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["commit"] == RECORD["commit"] and manifest["units"]["CartPole-v0"]["retrain"] == 2
    assert pub.made_by == "0123456789ab-dirty"
    assert json.loads((results / "run_record.json").read_text()) == RECORD
    assert sorted(p.name for p in results.iterdir()) == ["CartPole-v0", "manifest.json", "run_record.json"]


def test_units_with_different_columns_share_a_table_and_read_back_with_their_own(tmp_path):
    """Published tickets computed before a column was added (seeds 0-9 of the full profile)
    and after it (full15's seeds 10-14) go into one table; each reads back with exactly its
    own columns and dtypes, the integers not turned into floats by the other units' NaNs."""
    import io

    import pandas as pd
    import pyarrow.parquet as pq

    old = pd.DataFrame({"seed": [0, 0], "length": [120, 95], "passed": [True, False]})
    new = pd.DataFrame({"seed": [11], "length": [101], "passed": [True], "post_prune_env_steps": [2**40 + 3]})
    parts = {"CartPole-v0": {"retrain": {"old unit": {"result": old}, "new unit": {"result": new}}}}
    files, _layout = published.tables(parts)
    back = published._decode(files["CartPole-v0/retrain.parquet"], arrays=False)
    by_hash = {published.config_hash(unit): frame for unit, frame in (("old unit", old), ("new unit", new))}
    assert back.keys() == by_hash.keys()
    for unit, frame in by_hash.items():
        pd.testing.assert_frame_equal(back[unit], frame)  # columns, order, dtypes and values
    same = {"CartPole-v0": {"retrain": {"a": {"result": old}, "b": {"result": old.assign(seed=1)}}}}
    uniform = published.tables(same)[0]["CartPole-v0/retrain.parquet"]
    assert published.SCHEMAS not in (pq.read_schema(io.BytesIO(uniform)).metadata or {}), (
        "units that share their columns are written as before, so published bytes do not change"
    )


def test_the_analysis_from_published_results_equals_the_analysis_from_the_store(made, tmp_path, capsys):
    store, g, results = made
    empty, pub = Store(tmp_path / "empty"), published.Published(results)
    similarity = experiments.mask_similarity("cartpole", g, empty, pub, progress=True)
    for fraction, matrix in experiments.mask_similarity("cartpole", g, store).items():
        assert matrix.equals(similarity[fraction])
    finetune = experiments.finetune("cartpole", g, empty, pub, progress=True)
    assert finetune.equals(experiments.finetune("cartpole", g, store))
    assert experiments.baseline("cartpole", g, empty, pub).equals(experiments.baseline("cartpole", g, store))
    printed = capsys.readouterr().out
    assert "finetune: loaded 2 units from " in printed and "(made by 0123456789ab-dirty)" in printed
    assert not empty.root.exists(), "nothing trained, nothing written"


def test_units_whose_config_hash_is_not_published_are_computed_and_only_those(made, tmp_path, capsys):
    store, g, results = made
    pub = published.Published(results)
    wider = experiments.grid("quick", **{**TINY, "seeds": (0, 1, 2)})  # seed 2 was not published
    fresh = Store(tmp_path / "fresh")
    retrain = experiments.retrain("cartpole", wider, fresh, pub, progress=True)
    assert (
        f"retrain: loaded 2 units from {results}/ (made by 0123456789ab-dirty), computed 1 units"
        in capsys.readouterr().out
    )
    assert sorted(retrain.seed) == [0, 1, 2]
    assert len(list((fresh.root / "ticket").iterdir())) == 1, "only seed 2's ticket was trained"
    assert len(list((fresh.root / "dense").iterdir())) == 1, "and the dense run it starts from"
    assert retrain[retrain.seed < 2].equals(experiments.retrain("cartpole", g, store))
    plan = experiments.to_compute(experiments.steps("cartpole", wider), ["retrain"], pub)
    seeds = [(s.name, [getattr(u, "dense", u).seed for u in s.units]) for s in plan]
    assert seeds == [("dense runs", [2]), ("retrain", [2])]


def test_a_set_recording_more_P_serves_a_grid_asking_for_fewer_as_if_computed_for_it(tmp_path, one_thread, capsys):
    """Dense runs, mask traces and the sweep record every P of their grid; published (or stored)
    at P 0.3 and 0.6, they serve a grid of P 0.6 alone: nothing is trained, and what it reads
    equals what computing that grid gives."""
    wide, narrow = (experiments.grid("quick", **{**TINY, "fractions": fractions}) for fractions in ((0.3, 0.6), (0.6,)))
    made, direct = Store(tmp_path / "wide"), Store(tmp_path / "narrow")
    reads = ("mask_similarity", "retrain", "eb_exploit_sweep")
    for name in reads:
        getattr(experiments, name)("cartpole", wide, made)
    steps = experiments.steps("cartpole", wide)
    results = {
        "CartPole-v0": {
            name: experiments.collect(made, steps[name], None) for name in ("dense runs", "retrain", "eb_exploit sweep")
        }
    }
    published.write(tmp_path / "results", results, {"grid": "tiny"}, RECORD)
    pub, empty = published.Published(tmp_path / "results"), Store(tmp_path / "empty")
    capsys.readouterr()
    for name in reads:
        expected = getattr(experiments, name)("cartpole", narrow, direct)
        for store, source in ((empty, pub), (made, None)):
            got = getattr(experiments, name)("cartpole", narrow, store, source, progress=True)
            if isinstance(expected, dict):
                assert got.keys() == expected.keys() and all(got[k].equals(expected[k]) for k in got)
            else:
                pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert "computed" not in capsys.readouterr().out
    assert not empty.root.exists(), "nothing trained, nothing written"
    assert experiments.to_compute(experiments.steps("cartpole", narrow), list(results["CartPole-v0"]), pub) == []


@pytest.mark.skipif(not (ROOT / "results" / "manifest.json").exists(), reason="no published results")
def test_the_full_profile_at_fewer_P_has_nothing_to_compute_from_the_published_results():
    """`pipeline.py run 02_retrain --profile full -p fractions=[0.2]` trains nothing, nor does any
    other notebook at a subset of the published P (what they read: `narrowed`)."""
    pub = published.Published(ROOT / "results")
    for env in ("cartpole", "acrobot"):
        for fractions in ([0.2], [0.8, 0.4]):
            steps = experiments.steps(env, experiments.grid("full", fractions=fractions))
            assert experiments.to_compute(steps, list(steps), pub) == [], (env, fractions)
    steps = experiments.steps("cartpole", experiments.grid("full", fractions=[0.3]))
    assert [s.name for s in experiments.to_compute(steps, ["retrain"], pub)] == ["dense runs", "retrain"], (
        "a P not published is computed, with the dense runs it reads"
    )


def test_a_damaged_published_file_is_an_error_naming_it(made, tmp_path):
    _, g, results = made
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    table = copy / "CartPole-v0" / "retrain.parquet"
    table.write_bytes(table.read_bytes()[:-10])
    with pytest.raises(CorruptResultError, match="retrain.parquet does not match"):
        experiments.retrain("cartpole", g, Store(tmp_path / "store"), published.Published(copy))
    assert not (tmp_path / "store").exists()


def test_collect_refuses_units_that_are_neither_stored_nor_published(tmp_path):
    step = experiments.steps("cartpole", experiments.grid("quick", **TINY))["retrain"]
    with pytest.raises(ValueError, match=r"retrain: 2 of 2 units are neither in the store"):
        experiments.collect(Store(tmp_path), step, None)


# ---- a fresh checkout, the full profile, the committed results ------------------------------------


def _fresh_checkout(destination: Path) -> Path:
    """The working tree's tracked files (as they are now) in a new git repository."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *command], cwd=destination, check=True)
    return destination


def _text_outputs(path: Path) -> list[list[str]]:
    """Per code cell, what it printed and displayed as text (not stderr, not images).

    Consecutive prints are one text: the kernel flushes stdout on a timer, so how it splits them
    into stream outputs depends on how fast the cell ran, not on what it printed."""
    cells = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        texts, printing = [], False
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                continue
            if output.output_type == "stream" and printing:
                texts[-1] += output.text
            else:
                texts.append(
                    output.text if output.output_type == "stream" else output.get("data", {}).get("text/plain", "")
                )
            printing = output.output_type == "stream"
        cells.append(texts)
    return cells


@pytest.mark.skipif(not (ROOT / "results" / "manifest.json").exists(), reason="no published results")
def test_a_fresh_checkout_reruns_the_full_profile_from_the_published_results_training_nothing(tmp_path):
    clone = _fresh_checkout(tmp_path / "clone")
    assert (clone / "results" / "manifest.json").exists(), "results/ is not tracked: commit it (git add results)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EBNB_")}  # the clone's own store/ and outputs/
    env["PYTHONPATH"] = str(clone)  # the notebook kernels import the clone's ebnb, not the installed one
    result = subprocess.run(
        [sys.executable, "pipeline.py", "all", "--scheduler", "inline"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[compute] shards: 0 computed, 0 resumed from a checkpoint, 0 stored before" in result.stdout
    assert sorted(p.name for p in (clone / "store").iterdir()) == [".ebnb-owned", "runs"], "no unit trained or stored"
    commit = json.loads((ROOT / "results" / "manifest.json").read_text())["commit"][:12]
    for notebook in sorted((ROOT / "notebooks" / "executed").glob("*.ipynb")):
        rerun = clone / "outputs" / "full" / notebook.name
        printed = "".join(line for cell in _text_outputs(rerun) for line in cell)
        assert f"units from results/ (made by {commit}" in printed, notebook.name
        assert not re.search(r"computed \d+ units|loaded \d+ units from the store", printed), notebook.name
        assert _text_outputs(rerun) == _text_outputs(notebook), f"{notebook.name}: the rerun differs from the published"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", "a normal run changed tracked files"
