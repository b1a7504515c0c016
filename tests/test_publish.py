"""`publish` is one transaction: killed (SIGKILL) or failed (EIO) at any of its filesystem
operations, the published tree is, once the next command has run, the complete old set or the
complete new one (every file as results/manifest.json lists it, nothing else), and the next
publish succeeds and leaves nothing behind. Unfinished notebooks are refused; a publish with
nothing new computed keeps results/ as it is. Everything happens in temporary projects."""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pandas as pd
import pytest

from ebnb import publish, published, transaction
from ebnb.identity import RECORDED, kind

ROOT = Path(__file__).resolve().parents[1]
RECORD = {
    "commit": "0123456789abcdef0123-dirty",
    "lock_sha256": "ab" * 32,
    "wall_s": 1.0,
    "command": "all",
    "steps": [{"computed": 3}],
}
NOTEBOOKS, ENVS = ("01_mask_similarity", "02_retrain"), ("cartpole",)


def executed_notebook(text: str, **run) -> str:
    """An executed notebook as papermill leaves a finished run (`run`: its metadata changed)."""
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(f"print({text!r})", outputs=[nbformat.v4.new_output("stream", text=text)])
    cell.metadata["papermill"] = {"status": "completed", "exception": False}
    notebook.cells.append(cell)
    notebook.metadata["papermill"] = {
        "start_time": "2026-01-01T00:00:00",
        "end_time": "2026-01-01T00:01:00",
        "exception": None,
        **run,
    }
    return nbformat.writes(notebook)


@kind("unit")
@dataclass(frozen=True)
class Unit:
    seed: int


def _results_set(version: int) -> tuple[dict[str, bytes], dict]:
    """(results/ but its manifest, the manifest): two units' table tagged with `version`, a run record."""
    results = {
        "CartPole-v0": {
            "retrain": {Unit(s): {"result": pd.DataFrame({"seed": [s], "version": [version]})} for s in (0, 1)}
        }
    }
    files, layout = published.tables(results)
    files[published.RUN_RECORD] = published.record_bytes({**RECORD, "wall_s": float(version)})
    return files, published.manifest(files, layout, results, {"grid": version}, RECORD)


def _targets(root: Path, version: int) -> dict[str, dict[str, bytes]]:
    """The complete published set number `version`: results/, figures/ (a hidden file kept, a
    figure replaced, one only in each version), notebooks/executed/ (and full_sparse/) and
    tests/notebooks/, with results/manifest.json listing all of it."""
    files, manifest = _results_set(version)
    notebook = executed_notebook(f"version {version}").encode()
    targets = {
        publish.RESULTS: files,
        publish.FIGURES: {".gitkeep": b"", "fig3_3_a.png": b"a%d" % version, f"only_{version}.png": b"x"},
        publish.EXECUTED: {f"{n}-cartpole.ipynb": notebook for n in NOTEBOOKS}
        | {"full_sparse/05_controls-cartpole.ipynb": notebook},
        publish.NBVAL: {"01_mask_similarity-cartpole.ipynb": notebook},
    }
    files[published.MANIFEST] = publish.manifest_bytes(root, targets, manifest)
    return targets


def _tree(root: Path) -> dict[str, str]:
    """{path: sha256} of every file under `root` (leftovers and journals included)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@contextmanager
def _memory_folder(fallback: Path):
    """A new folder in memory (/dev/shm: an fsync costs microseconds, not milliseconds),
    removed afterwards; `fallback` where there is none."""
    if not os.access("/dev/shm", os.W_OK):
        yield fallback
        return
    folder = Path(tempfile.mkdtemp(prefix="ebnb-test-publish-", dir="/dev/shm"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)  # the folder made above, nothing else


@pytest.fixture
def scratch(tmp_path):
    with _memory_folder(tmp_path) as folder:
        yield folder


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """(a project holding published set 1, the tree of set 1, set 2's targets, the tree of
    set 2, the number of operations a publish of set 2 makes)."""
    with _memory_folder(tmp_path_factory.mktemp("sets")) as base:
        yield _sets(base)


def _sets(base: Path):
    old = base / "old"
    old.mkdir()
    transaction.transact(old, _targets(old, 1))
    new = base / "new"
    shutil.copytree(old, new)
    operations, targets = [], _targets(new, 2)
    transaction.OPERATIONS.before = lambda name, path: operations.append(name)
    try:
        transaction.transact(new, targets)
    finally:
        del transaction.OPERATIONS.before
    assert publish.verify(old) == [] and publish.verify(new) == []
    assert {"mkdir", "write", "fsync", "rename", "unlink", "rmtree"} <= set(operations)
    return old, _tree(old), targets, _tree(new), len(operations)


def _killed_at(k: int, call) -> None:
    """Run `call` in a forked child that SIGKILLs itself just before its k-th filesystem
    operation (after its (k-1)-th)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            count = 0

            def before(name, path):
                nonlocal count
                count += 1
                if count == k:
                    os.kill(os.getpid(), signal.SIGKILL)

            transaction.OPERATIONS.before = before
            call()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _failing_at(k: int):
    """A hook raising OSError(EIO) at the k-th filesystem operation, once."""
    count = 0

    def before(name, path):
        nonlocal count
        count += 1
        if count == k:
            raise OSError(errno.EIO, "injected I/O error", str(path))

    return before


@pytest.mark.parametrize("fault", ["kill", "eio"])
def test_a_publish_killed_or_failed_at_any_operation_leaves_the_old_set_or_the_new_one(
    sets, scratch, monkeypatch, fault
):
    """For every k: the publish of set 2 over set 1 is killed after its k-th operation (or its
    k-th fails with EIO); the next command's `recover` leaves exactly set 1 or set 2 (no
    leftover, manifest-verified), and publishing set 2 then gives exactly set 2. Both outcomes
    occur: before the journal, the old set; after it, the new."""
    old, old_tree, targets, new_tree, operations = sets
    seen = set()
    for k in range(1, operations + 1):
        root = scratch / f"k{k}"
        shutil.copytree(old, root)
        if fault == "kill":
            _killed_at(k, lambda: transaction.transact(root, targets))  # noqa: B023 (called at once)
        else:
            monkeypatch.setattr(transaction.OPERATIONS, "before", _failing_at(k), raising=False)
            with pytest.raises(OSError, match="injected"):
                transaction.transact(root, targets)
            monkeypatch.delattr(transaction.OPERATIONS, "before")
        transaction.recover(root)
        tree = _tree(root)
        assert tree in (old_tree, new_tree), (k, sorted(set(tree.items()) ^ set(old_tree.items()))[:5])
        assert publish.verify(root) == [], k
        seen.add("old" if tree == old_tree else "new")
        transaction.transact(root, targets)
        assert _tree(root) == new_tree, k
        shutil.rmtree(root)
    assert seen == {"old", "new"}


def test_recover_does_nothing_without_an_interrupted_publish(sets, tmp_path):
    """No journal, no leftover: nothing changes; folders with a transaction's name that hold
    anything a transaction does not are not touched."""
    old, _old_tree, *_ = sets
    root = tmp_path / "project"
    shutil.copytree(old, root)
    (root / ".publish-notmine").mkdir()  # not a name a transaction has: not touched
    (root / ".publish-0123456789abcdef").mkdir()
    (root / ".publish-0123456789abcdef" / "mine.tex").write_text("x")  # holds what no transaction holds
    before = _tree(root)
    transaction.recover(root)
    assert _tree(root) == before and (root / ".publish-notmine").exists()


def _fake_project(root: Path, version: int) -> None:
    """A project holding set 1, and the quick notebooks of outputs/quick/ (`version`)."""
    for notebook in NOTEBOOKS:
        path = root / "outputs" / "quick" / f"{notebook}-cartpole.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(executed_notebook(f"quick {version}"))


def test_publish_nbval_killed_at_any_operation_then_published_again(sets, scratch):
    """The whole verb (lock, recovery, checks, transaction, verification) on nbval's
    references: killed after each operation in turn, the project is the old set or the new one
    once recovered, and the next `publish --nbval` succeeds and leaves no leftover."""
    old, _old_tree, *_ = sets
    template = scratch / "template"
    shutil.copytree(old, template)
    _fake_project(template, 2)

    def run(root):
        publish.publish(root, root / "store", root / "outputs", NOTEBOOKS, ENVS, nbval=True)

    done = scratch / "done"
    shutil.copytree(template, done)
    operations = []
    transaction.OPERATIONS.before = lambda name, path: operations.append(name)
    try:
        run(done)
    finally:
        del transaction.OPERATIONS.before
    before, after = _tree(template), _tree(done)
    assert before != after and publish.verify(done) == []
    assert sorted(p.name for p in (done / publish.NBVAL).iterdir()) == [f"{n}-cartpole.ipynb" for n in NOTEBOOKS]
    for k in range(1, len(operations) + 1):
        root = scratch / f"k{k}"
        shutil.copytree(template, root)
        _killed_at(k, lambda: run(root))  # noqa: B023 (called at once)
        transaction.recover(root)
        assert _tree(root) in (before, after), k
        run(root)
        assert _tree(root) == after, k
        shutil.rmtree(root)


@pytest.mark.parametrize(
    "run, cell, outputs, problem",
    [
        ({"end_time": None}, {}, [], "papermill's end_time is empty"),
        ({"exception": True}, {}, [], "papermill recorded an exception"),
        ({}, {"status": "running"}, [], "cell 1 is running"),
        ({}, {}, [nbformat.v4.new_output("error", ename="E", evalue="v", traceback=[])], "cell 1 has an error output"),
    ],
)
def test_publish_refuses_a_notebook_that_did_not_finish_and_changes_nothing(
    sets, tmp_path, run, cell, outputs, problem
):
    old, _old_tree, *_ = sets
    root = tmp_path / "project"
    shutil.copytree(old, root)
    _fake_project(root, 2)
    half = root / "outputs" / "quick" / "02_retrain-cartpole.ipynb"
    notebook = nbformat.reads(executed_notebook("half", **run), as_version=4)
    notebook.cells[0].metadata.papermill.update(cell)
    notebook.cells[0].outputs += outputs
    nbformat.write(notebook, half)
    before = _tree(root)
    with pytest.raises(publish.PublishError) as refused:
        publish.publish(root, root / "store", root / "outputs", NOTEBOOKS, ENVS, nbval=True)
    message = str(refused.value)
    assert message.startswith(f"publish: {half} did not finish ({problem}"), message
    assert message.endswith("); rerun `pipeline.py quick`, then publish") and "\n" not in message
    assert _tree(root) == before


# ---- the full publish, from a copy of the committed results -----------------------------------------


def _pipeline():
    """The module pipeline.py."""
    sys.path.insert(0, str(ROOT))
    try:
        import pipeline
    finally:
        sys.path.remove(str(ROOT))
    return pipeline


def _publishing(tmp_path, monkeypatch):
    """pipeline, with its project root at `tmp_path`; a store holding only the run record of
    an `all`; executed notebooks in outputs/full/ and one new figure; and a copy of results/
    (what the store lacks comes from there) with nbval's references, which its manifest lists
    once a `publish --nbval` has run. Returns (pipeline, its arguments)."""
    pipeline = _pipeline()
    (tmp_path / "store" / "runs").mkdir(parents=True)
    (tmp_path / "store" / "runs" / "2026-01-01T00-00-00+00-00.json").write_text(json.dumps(RECORD))
    (tmp_path / "out" / "full" / "figures").mkdir(parents=True)
    for notebook in pipeline.NOTEBOOKS:
        for env in pipeline.ENVS:
            (tmp_path / "out" / "full" / f"{notebook}-{env}.ipynb").write_text(executed_notebook(f"{notebook} {env}"))
    (tmp_path / "out" / "full" / "figures" / "fig3_3_a.png").write_text("new figure")
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    shutil.copytree(ROOT / "results", tmp_path / "results")
    shutil.copytree(ROOT / "tests" / "notebooks", tmp_path / "tests" / "notebooks")
    return pipeline, ["--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "publish"]


needs_results = pytest.mark.skipif(not (ROOT / "results" / "manifest.json").exists(), reason="no published results")


@needs_results
def test_publish_without_new_results_keeps_results_and_mirrors_the_outputs(tmp_path, monkeypatch, capsys):
    """`publish` from a store that lacks every unit takes them all from the current results/,
    which it keeps as they are (tables and run record byte for byte; the manifest gains the
    list of the other published files); notebooks and figures mirror outputs/full/, hidden
    files kept. Notebook 05 at the sparse profile, executed for one env only, is refused
    before anything is written; for both, its notebooks and figures go to full_sparse/
    folders, its units taken from the current results/ like the rest."""
    pipeline, args = _publishing(tmp_path, monkeypatch)
    published_figures = tmp_path / "figures"
    published_figures.mkdir()
    (published_figures / ".gitkeep").write_text("")
    (published_figures / "fig3_3_old_name.png").write_text("stale")
    sparse = tmp_path / "out" / "full_sparse"
    (sparse / "figures").mkdir(parents=True)
    (sparse / "figures" / "controls_retrain_cartpole-v0.png").write_text("sparse figure")
    (sparse / "05_controls-cartpole.ipynb").write_text(executed_notebook("05 cartpole, sparse"))
    assert pipeline.main(args) == 2
    assert "05_controls-acrobot.ipynb is missing" in capsys.readouterr().err
    assert not (tmp_path / "notebooks" / "executed").exists() and (published_figures / "fig3_3_old_name.png").exists()
    assert (tmp_path / "results" / "manifest.json").read_bytes() == (ROOT / "results" / "manifest.json").read_bytes()

    (sparse / "05_controls-acrobot.ipynb").write_text(executed_notebook("05 acrobot, sparse"))
    assert pipeline.main(args) == 0
    assert "[publish] results/ kept" in capsys.readouterr().out
    for path in (ROOT / "results").rglob("*"):
        if path.is_file() and path.name != "manifest.json":
            assert (tmp_path / path.relative_to(ROOT)).read_bytes() == path.read_bytes(), path
    before = json.loads((ROOT / "results" / "manifest.json").read_text())
    after = json.loads((tmp_path / "results" / "manifest.json").read_text())
    assert {k: v for k, v in after.items() if k != "published"} == {k: v for k, v in before.items() if k != "published"}
    assert sorted(after["published"]) == sorted({"figures", "notebooks/executed", *before.get("published", {})})
    assert publish.verify(tmp_path) == []
    assert sorted(p.name for p in published_figures.iterdir()) == [".gitkeep", "fig3_3_a.png", "full_sparse"]
    assert len(list((tmp_path / "notebooks" / "executed").glob("*.ipynb"))) == len(pipeline.NOTEBOOKS) * len(
        pipeline.ENVS
    )
    assert sorted(p.name for p in (tmp_path / "notebooks" / "executed" / "full_sparse").iterdir()) == [
        "05_controls-acrobot.ipynb",
        "05_controls-cartpole.ipynb",
    ]
    assert [p.name for p in (published_figures / "full_sparse").iterdir()] == ["controls_retrain_cartpole-v0.png"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary folder left"


@needs_results
def test_new_results_take_the_run_record_and_an_interrupted_publish_is_completed(tmp_path, monkeypatch, capsys):
    """Results that differ from the published ones (here: one full-profile unit in the store holds
    another test return) take the run record of the newest `all` that computed. A publish
    failing with EIO at its first rename (after its journal) exits 1 saying so; the next
    command completes it, and a rerun of publish finds every unit (never "neither in the store
    nor published")."""
    from ebnb import experiments
    from ebnb.store import Store

    pipeline, args = _publishing(tmp_path, monkeypatch)
    step = experiments.steps("cartpole", experiments.grid("full"))["retrain"]
    parts = published.Published(tmp_path / "results").parts("CartPole-v0", "retrain", step.units[:1])[step.units[0]]
    changed = parts["result"].assign(test_return=parts["result"]["test_return"] + 1.0)
    Store(tmp_path / "store").save(step.kind, step.units[0], {**parts, "result": changed})
    renames = []

    def before(name, path):
        renames.append(name == "rename")
        if renames.count(True) == 2:  # the first is the journal's
            raise OSError(errno.EIO, "injected I/O error", str(path))

    monkeypatch.setattr(transaction.OPERATIONS, "before", before, raising=False)
    assert pipeline.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: publish failed: [Errno 5] injected I/O error")
    assert err[0].endswith("the next pipeline command completes it"), err
    monkeypatch.delattr(transaction.OPERATIONS, "before")
    assert (tmp_path / transaction.JOURNAL).exists()
    assert pipeline.main(["--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "list"]) == 0
    assert not (tmp_path / transaction.JOURNAL).exists() and publish.verify(tmp_path) == []
    assert json.loads((tmp_path / "results" / "run_record.json").read_text()) == RECORD
    after = json.loads((tmp_path / "results" / "manifest.json").read_text())
    assert after["commit"] == RECORD["commit"] and "full_sparse" in after["grid"]
    back = published.Published(tmp_path / "results").parts("CartPole-v0", "retrain", step.units[:1])[step.units[0]]
    pd.testing.assert_frame_equal(back["result"], changed)
    capsys.readouterr()
    assert pipeline.main(args) == 0, capsys.readouterr().err
    assert "neither in the store" not in capsys.readouterr().err
    assert publish.verify(tmp_path) == [] and [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ---- side profiles, on a tiny computed grid ---------------------------------------------------------

TINY = {"seeds": (0, 1), "fractions": (0.5,), "prune_episodes": (2,), "episodes": 4, "test_episodes": 1}
HYPOTHESIS = (0.5, 0.1, 1, "last_two", "episode_1")  # (P, xi, window, detector, start)


def _record(profile: str, start: str) -> dict:
    return {**RECORD, "command": "compute", "target": "03_finetune", "profile": profile, "start": start}


@pytest.fixture
def tiny(tmp_path, monkeypatch, one_thread):
    """A project whose `full` profile is a tiny grid (cartpole only), published from a store
        that computed it; `full15` adds seed 2, `sweep_fresh` is seeds 2-3 at one fixed hypothesis
    (seed 2's dense run shared with full15), `sweep_rewind` seeds 0-3 at it with rewind.
        Returns (root, run a publish from a store, the tiny side grids)."""
    from ebnb import experiments, sweep
    from ebnb.store import Store

    grids = {
        "full": experiments.grid("quick", **TINY),
        "full15": experiments.grid("quick", **{**TINY, "seeds": (0, 1, 2)}),
        "sweep_fresh": experiments.grid("quick", **{**TINY, "seeds": (2, 3)}),
        "sweep_rewind": experiments.grid("quick", **{**TINY, "seeds": (0, 1, 2, 3)}),
    }
    for profile, g in {**grids, "full_sparse": grids["full"]}.items():
        monkeypatch.setitem(experiments.PROFILES, profile, g)
    monkeypatch.setattr(sweep, "hypotheses", lambda saved, k=sweep.TOP_K: [HYPOTHESIS])
    root = tmp_path / "project"
    (root / "out" / "full" / "figures").mkdir(parents=True)
    for notebook in NOTEBOOKS:
        (root / "out" / "full" / f"{notebook}-cartpole.ipynb").write_text(executed_notebook(notebook))
    full = Store(tmp_path / "full-store")
    for step in experiments.steps("cartpole", grids["full"]).values():
        experiments.step.step_results(full, step, None, progress=False)
    (full.folder("runs") / "2026-01-01T00-00-00+00-00.json").write_text(json.dumps(RECORD))

    def run(store: Path) -> None:
        publish.publish(root, store, root / "out", NOTEBOOKS, ENVS, nbval=False)

    run(full.root)
    return root, run, grids


def _units(root: Path) -> dict[str, int]:
    return json.loads((root / "results" / "manifest.json").read_text())["units"]["CartPole-v0"]


def test_a_side_profile_joins_results_from_a_store_of_its_new_units_only(tiny, tmp_path, capsys):
    """full15 computed into an empty store with the published results as the source (only seed
    2 is trained) and published from that store: results/ holds the union (seed 2 added, no
    unit twice), the full run's run_record.json unchanged, the compute's record in
    run_records/full15.json, full15's grid in the manifest; every unit reads back. Published
    again from an empty store, results/ is kept byte for byte. sweep_fresh (notebook 06's
    hypotheses on fresh seeds), which `run 06_eb_exploit_sweep -p compute_fresh=True` computes
    before the notebook starts (a run record at profile sweep_fresh), joins the same way."""
    from ebnb import experiments
    from ebnb.store import Store

    root, run, grids = tiny
    before, record = _units(root), (root / "results" / "run_record.json").read_bytes()
    assert (
        before["dense runs"] == 2
        and "full15" not in json.loads((root / "results" / "manifest.json").read_text())["grid"]
    )
    side = Store(tmp_path / "side-store")
    current = experiments.published_results(root / "results")
    names = ("dense runs", "retrain", "winning tickets", "finetune", "eb_exploit")
    assert experiments.held("cartpole", "full15", Store(tmp_path / "empty"), current, names) is None
    for step in ("retrain", "winning tickets", "finetune", "eb_exploit"):
        experiments.step.step_results(
            side, experiments.steps("cartpole", grids["full15"])[step], current, progress=False
        )
    assert len(list((side.root / "dense").rglob("manifest.json"))) == 1, "only seed 2's dense run was trained"
    (side.folder("runs") / "a.json").write_text(json.dumps(_record("full15", "2026-02-01T00:00:00+00:00")))
    (side.folder("runs") / "b.json").write_text(json.dumps(_record("quick", "2026-02-02T00:00:00+00:00")))
    capsys.readouterr()
    run(side.root)
    assert "full15" in capsys.readouterr().out
    after = _units(root)
    assert after == {**before, **{name: n * 3 // 2 for name, n in before.items() if name != "eb_exploit sweep"}}
    assert (root / "results" / "run_record.json").read_bytes() == record
    assert json.loads((root / "results" / "run_records" / "full15.json").read_text()) == [
        _record("full15", "2026-02-01T00:00:00+00:00")
    ]
    manifest = json.loads((root / "results" / "manifest.json").read_text())
    assert manifest["run_records"] == {"full15": "run_records/full15.json"} and "full15" in manifest["grid"]
    assert publish.verify(root) == []
    empty = Store(tmp_path / "empty")
    assert (
        experiments.held("cartpole", "full15", empty, experiments.published_results(root / "results"), names)
        == (grids["full15"])
    )  # every unit published: the notebooks' n = 15 cells load it
    tree = _tree(root / "results")
    capsys.readouterr()
    run(empty.root)
    assert "results/ kept" in capsys.readouterr().out and _tree(root / "results") == tree

    fresh, current = Store(tmp_path / "fresh-store"), experiments.published_results(root / "results")
    assert (
        experiments.eb_exploit_sweep_at("cartpole", grids["sweep_fresh"], fresh, current, [HYPOTHESIS], compute=False)
        is None
    )
    pipeline = _pipeline()  # `run 06_eb_exploit_sweep -p compute_fresh=True` computes first what the notebook reads
    options = {"command": "run", "target": "06_eb_exploit_sweep", "scheduler": "inline", "force": False}
    assert pipeline.plan_fresh("cartpole", {}, fresh.root, current, options) is None
    pipeline.compute_store(
        pipeline.plan_fresh("cartpole", {"compute_fresh": True}, fresh.root, current, options), False
    )
    assert [json.loads(p.read_text())["profile"] for p in (fresh.root / "runs").glob("*.json")] == ["sweep_fresh"]
    assert (
        experiments.eb_exploit_sweep_at("cartpole", grids["sweep_fresh"], fresh, current, [HYPOTHESIS], compute=False)
        is not None
    )
    run(fresh.root)
    assert _units(root) == {**after, "dense runs": 4, "eb_exploit sweep": 4}  # seed 2's dense run is full15's too
    assert sorted(json.loads((root / "results" / "manifest.json").read_text())["run_records"]) == [
        "full15",
        "sweep_fresh",
    ]
    assert (
        experiments.eb_exploit_sweep_at(
            "cartpole",
            grids["sweep_fresh"],
            empty,
            experiments.published_results(root / "results"),
            [HYPOTHESIS],
            compute=False,
        )
        is not None
    )
    assert publish.verify(root) == [] and [p for p in root.iterdir() if p.name.startswith(".")] == []


def test_sweep_rewind_computed_before_notebook_06_joins_results_and_reads_back(tiny, tmp_path):
    """sweep_rewind (notebook 06's hypotheses with rewind=True), which `run 06_eb_exploit_sweep
    -p compute_rewind=True` computes before the notebook starts (a run record at profile
    sweep_rewind, not sweep_fresh), joins results/ from a store of its units: its sweep units
    (rewind=True: keys of their own) and its dense runs; an empty store then reads it from there."""
    from ebnb import experiments
    from ebnb.store import Store

    root, run, grids = tiny
    before, current = _units(root), experiments.published_results(root / "results")
    side = Store(tmp_path / "rewind-store")
    pipeline = _pipeline()
    options = {"command": "run", "target": "06_eb_exploit_sweep", "scheduler": "inline", "force": False}
    assert (
        pipeline.plan_fresh("cartpole", {"compute_fresh": True}, side.root, current, options, "compute_rewind") is None
    )
    plan = pipeline.plan_fresh("cartpole", {"compute_rewind": True}, side.root, current, options, "compute_rewind")
    pipeline.compute_store(plan, False)
    assert [json.loads(p.read_text())["profile"] for p in (side.root / "runs").glob("*.json")] == ["sweep_rewind"]
    at = functools.partial(experiments.eb_exploit_sweep_at, "cartpole", grids["sweep_rewind"])
    rewound = at(side, current, [HYPOTHESIS], compute=False, rewind=True)
    assert rewound is not None and rewound.found.any() and sorted(rewound.seed) == [0, 1, 2, 3]
    run(side.root)
    assert _units(root) == {**before, "dense runs": 4, "eb_exploit sweep": before["eb_exploit sweep"] + 4}
    manifest = json.loads((root / "results" / "manifest.json").read_text())
    assert "sweep_rewind" in manifest["run_records"] and "sweep_rewind" in manifest["grid"]
    again = at(Store(tmp_path / "empty"), experiments.published_results(root / "results"), [HYPOTHESIS], compute=False)
    assert again is None, "the finetune's hypotheses at these seeds are other units"
    again = at(
        Store(tmp_path / "empty"), experiments.published_results(root / "results"), [HYPOTHESIS], False, rewind=True
    )
    pd.testing.assert_frame_equal(again, rewound)
    assert publish.verify(root) == [] and not (tmp_path / "empty").exists()


def test_a_side_profile_without_its_run_record_or_half_computed_is_refused(tiny, tmp_path):
    """A store holding all of full15's new units but no record of a full15 run that computed,
    or only some of them: PublishError, nothing changed."""
    from ebnb import experiments
    from ebnb.store import Store

    root, run, grids = tiny
    tree, side = _tree(root), Store(tmp_path / "side-store")
    current = experiments.published_results(root / "results")
    experiments.step.step_results(
        side, experiments.steps("cartpole", grids["full15"])["retrain"], current, progress=False
    )
    with pytest.raises(publish.PublishError, match="some of full15's units but not all"):
        run(side.root)
    for step in ("winning tickets", "finetune", "eb_exploit"):
        experiments.step.step_results(
            side, experiments.steps("cartpole", grids["full15"])[step], current, progress=False
        )
    (side.folder("runs") / "b.json").write_text(json.dumps(_record("full", "2026-02-02T00:00:00+00:00")))
    with pytest.raises(publish.PublishError, match="no record .* of a run at profile full15 that computed"):
        run(side.root)
    assert _tree(root) == tree


@kind("recording_unit")
@dataclass(frozen=True)
class RecordingUnit:
    seed: int
    fractions: tuple[float, ...] = field(default=(), metadata=RECORDED)


def test_a_side_profiles_unit_with_a_full_units_store_key_is_the_full_profiles():
    """powered's dense runs at seeds 0-9 record fewer P than full's: other units, the same store
    key, so the same stored result. A store that recomputed the full profile holds it, and it
    is claimed by the full profile, not a side profile left half computed."""
    full_unit, side_unit = RecordingUnit(0, (0.2, 0.4)), RecordingUnit(0, (0.2,))
    assert full_unit != side_unit
    full = SimpleNamespace(name="dense runs", kind="recording_unit", units=[full_unit])
    side = SimpleNamespace(name="dense runs", kind="recording_unit", units=[side_unit, RecordingUnit(1)])
    stored = SimpleNamespace(exists=lambda kind, unit: unit.seed == 0)
    publish._check_unstarted(stored, "powered", {"cartpole": [side]}, publish._keys([full]))
    with pytest.raises(publish.PublishError, match="some of powered's units but not all"):
        publish._check_unstarted(stored, "powered", {"cartpole": [side]}, publish._keys([]))
