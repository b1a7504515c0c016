"""Ownership: `clean`, `--force` and `report --to` delete only what the package made and wrote.

One test per reproduction of issue 27 (a user's files in a folder given as the store, the
outputs or the report folder), through the flags and through $EBNB_STORE / $EBNB_OUTPUTS;
then the rules themselves (markers, the store's layout, stores made before markers,
unsafe paths). Everything happens inside tmp_path; no training (stores are filled through
`ebnb.store` and a fake shard computation).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import pipeline
from ebnb import compute, ownership, shards
from ebnb.identity import kind
from ebnb.ownership import MARKER
from ebnb.store import Store


def write(path: Path, text: str = "keep me") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_main(argv, capsys) -> tuple[int, list[str]]:
    try:
        code = pipeline.main(argv)
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err.strip().splitlines()


def a_store(root: Path) -> Store:
    """A store as the package leaves it: results, a lock file, a checkpoint, a run record."""
    store = Store(root)
    for a in (1, 2):
        store.save("dense", {"a": a}, {"x": np.arange(3) * a})
    (store.folder("lock") / "0123456789abcdef.lock").touch()
    (store.folder("checkpoint") / "0123456789abcdef.pt").write_bytes(b"checkpoint")
    (store.folder("runs") / "2026-12-03T14-00-00+00-00.json").write_text("{}")
    return store


def some_outputs(out: Path) -> Path:
    """Outputs as a run leaves them: an executed notebook and its figures, each recorded."""
    ownership.new_file(out / "quick" / "01_mask_similarity-cartpole.ipynb", "outputs").write_text("{}")
    for ext in ("png", "pdf"):
        ownership.new_file(out / "quick" / "figures" / f"fig3_3.{ext}", "outputs").write_bytes(b"figure")
    return out


@pytest.fixture
def env(tmp_path, monkeypatch):
    """$EBNB_STORE and $EBNB_OUTPUTS inside tmp_path; no notebook or computation can start."""
    monkeypatch.setenv("EBNB_STORE", str(tmp_path / "env-store"))
    monkeypatch.setenv("EBNB_OUTPUTS", str(tmp_path / "env-outputs"))
    monkeypatch.setattr(sys, "argv", ["pipeline.py"])
    return tmp_path


# ---- the reproductions -------------------------------------------------------------------------


def test_force_run_recomputes_in_place_and_keeps_a_users_file(env, capsys, monkeypatch):
    """`--store /tmp/d --force run 01_mask_similarity` with /tmp/d/ch1.tex: exits 0, ch1.tex
    stays; the units are recomputed (force reaches the computation), no folder is removed."""
    folder = write(env / "d" / "ch1.tex").parent
    forced = []
    monkeypatch.setattr(compute, "run", lambda *args, **kwargs: forced.append(kwargs["force"]) or iter(()))
    monkeypatch.setattr(
        pipeline, "run_grid", lambda *args: [list(plan.run()) for plans in args[-1].values() for plan in plans] and {}
    )
    code, errors = run_main(
        ["--store", str(folder), "--out", str(env / "out"), "--force", "run", "01_mask_similarity"], capsys
    )
    assert (code, errors) == (0, [])
    assert forced == [True]
    assert (folder / "ch1.tex").read_text() == "keep me"


@kind("unit")
@dataclass(frozen=True)
class Unit:
    a: int


def test_force_replaces_the_stored_units_atomically_and_nothing_else(tmp_path):
    store = Store(tmp_path / "d")
    write(store.root / "ch1.tex")
    shard = shards.Shard("dense", (Unit(1), Unit(2)))
    calls = []

    def fake(store, missing, checkpoint, progress, save):
        calls.append(list(missing))
        for unit in missing:
            save(unit, {"x": np.array([unit.a, len(calls)])})

    assert shards.run(store, shard, fake).computed == 2
    assert shards.run(store, shard, fake).computed == 0, "stored: not recomputed"
    checkpoint = store.root / "checkpoint" / f"{store.path('dense', shard).name}.pt"
    write(checkpoint, "stale")
    assert shards.run(store, shard, fake, force=True).computed == 2
    assert calls == [list(shard.units)] * 2
    assert [store.load("dense", u)["x"].tolist() for u in shard.units] == [[1, 2], [2, 2]]
    assert not checkpoint.exists(), "a forced shard starts from scratch"
    assert (store.root / "ch1.tex").read_text() == "keep me"


@pytest.mark.parametrize("through", ["--out", "EBNB_OUTPUTS"])
def test_clean_refuses_outputs_holding_a_users_notebook_and_figure(env, capsys, monkeypatch, through):
    """`--out /tmp/n clean` with /tmp/n/a.ipynb and /tmp/n/s/x.png: refused, both kept."""
    out = env / "n"
    write(out / "a.ipynb"), write(out / "s" / "x.png")
    a_store(env / "store")
    before = listing(env)
    argv = ["--store", str(env / "store"), *(["--out", str(out)] if through == "--out" else []), "clean"]
    if through == "EBNB_OUTPUTS":
        monkeypatch.setenv("EBNB_OUTPUTS", str(out))
    code, errors = run_main(argv, capsys)
    assert code == 2 and len(errors) == 1, errors
    assert errors[0].startswith(f"error: refusing to delete outputs at {out}: it has no {MARKER} marker")
    assert errors[0].endswith("e.g. a.ipynb")
    assert listing(env) == before, "nothing deleted, the store neither"


@pytest.mark.parametrize("through", ["--store", "EBNB_STORE"])
@pytest.mark.parametrize("stray", ["r/w.pt", "bert/train.lock"])
@pytest.mark.parametrize("marked", [True, False], ids=["made by the package", "made before markers"])
def test_clean_refuses_a_store_holding_files_it_did_not_write(env, capsys, monkeypatch, through, stray, marked):
    """`--store /tmp/m clean` with /tmp/m/r/w.pt or /tmp/m/bert/train.lock: refused, kept."""
    store = a_store(env / "m")
    if not marked:
        (store.root / MARKER).unlink()
    write(store.root / stray)
    some_outputs(env / "out")
    before = listing(env)
    argv = [*(["--store", str(store.root)] if through == "--store" else []), "--out", str(env / "out"), "clean"]
    if through == "EBNB_STORE":
        monkeypatch.setenv("EBNB_STORE", str(store.root))
    code, errors = run_main(argv, capsys)
    assert code == 2 and errors == [
        f"error: refusing to delete store at {store.root}: it holds files the pipeline did not write, e.g. {stray}"
    ]
    assert listing(env) == before


def test_report_refuses_a_folder_with_a_users_index_html(env, capsys):
    site = env / "mysite"
    write(site / "index.html", "<h1>my site</h1>")
    code, errors = run_main(["report", "--to", str(site)], capsys)
    assert code == 2 and len(errors) == 1, errors
    assert errors[0].startswith(f"error: refusing to delete report at {site}: it has no {MARKER} marker")
    assert listing(site) == {"index.html": b"<h1>my site</h1>"}


# ---- what is removed --------------------------------------------------------------------------


@pytest.mark.parametrize("through", ["flags", "environment"])
def test_clean_removes_the_store_and_outputs_it_made_and_nothing_beside_them(env, capsys, monkeypatch, through):
    store, out = a_store(env / "store").root, some_outputs(env / "outputs")
    ownership.new_file(out / "report" / "index.html", "report").write_text("<p>")
    write(env / "mine" / "file.txt")
    argv = ["--store", str(store), "--out", str(out), "clean"]
    if through == "environment":
        monkeypatch.setenv("EBNB_STORE", str(store))
        monkeypatch.setenv("EBNB_OUTPUTS", str(out))
        argv = ["clean"]
    code, errors = run_main(argv, capsys)
    assert (code, errors) == (0, [])
    assert sorted(p.name for p in env.iterdir()) == ["mine"]
    assert listing(env) == {"mine/file.txt": b"keep me"}


def test_a_store_made_before_markers_is_adopted_only_if_its_layout_accounts_for_every_file(tmp_path):
    store = a_store(tmp_path / "old")
    (store.root / MARKER).unlink()
    assert ownership.refusal(store.root, "store") is None
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "dense").mkdir()
    assert "holds no stored result" in ownership.refusal(empty, "store")
    assert ownership.remove({"store": (store.root, "store")})["store"] > 0
    assert not store.root.exists() and empty.is_dir()


@pytest.mark.parametrize(
    "stray",
    [
        "dense/0123456789abcdef/notes.txt",
        "dense/notes.txt",
        "notes.txt",
        "runs/notes.txt",
        "lock/mine.lock",
        "checkpoint/w.pt",
    ],
)
def test_the_store_layout_accounts_only_for_what_the_store_writes(tmp_path, stray):
    store = a_store(tmp_path / "s")
    unit = store.path("dense", {"a": 1})
    write(store.root / stray.replace("0123456789abcdef", unit.name))
    assert ownership.refusal(store.root, "store").endswith(stray.replace("0123456789abcdef", unit.name))


def test_a_damaged_result_and_crash_leftovers_are_the_stores_own(tmp_path):
    store = a_store(tmp_path / "s")
    (store.path("dense", {"a": 1}) / "manifest.json").write_text('{"files": ')
    write(store.root / "dense" / f".tmp-{store.path('dense', {'a': 2}).name}-12345-0a1b2c3d" / "x.npz")
    (store.root / "checkpoint" / "0123456789abcdef.pt").unlink()  # an empty checkpoint/ folder
    assert ownership.refusal(store.root, "store") is None


def test_outputs_account_only_for_recorded_files_in_marked_folders(tmp_path):
    out = some_outputs(tmp_path / "outputs")
    assert ownership.refusal(out, "outputs") is None
    write(out / "quick" / "notes.md")
    assert ownership.refusal(out, "outputs").endswith("e.g. quick/notes.md")
    (out / "quick" / "notes.md").unlink()
    write(out / "quick" / ".ipynb_checkpoints" / "01-checkpoint.ipynb")  # opened in Jupyter
    assert ownership.refusal(out, "outputs").endswith("e.g. quick/.ipynb_checkpoints/01-checkpoint.ipynb")


def test_a_folder_that_existed_is_marked_only_if_empty(tmp_path):
    full = write(tmp_path / "full" / "ch1.tex").parent
    ownership.new_file(full / "fig.png", "outputs").write_bytes(b"png")
    assert not (full / MARKER).exists()
    (tmp_path / "empty").mkdir()
    ownership.new_file(tmp_path / "empty" / "fig.png", "outputs").write_bytes(b"png")
    assert ownership.kind_of(tmp_path / "empty") == "outputs"
    assert ownership.refusal(tmp_path / "empty", "outputs") is None


def test_kinds_must_match(tmp_path):
    out = some_outputs(tmp_path / "outputs")
    store = a_store(tmp_path / "store")
    assert ownership.refusal(out, "store") == "it is an outputs folder, not a store"
    assert ownership.refusal(store.root, "report") == "it is a store folder, not a report"
    with pytest.raises(ValueError, match="refusing to delete report at"):
        ownership.remove({"store": (store.root, "store"), "report": (out, "report")})
    assert store.root.exists(), "checked first: nothing deleted"


# ---- whatever a folder holds -------------------------------------------------------------------


@pytest.fixture
def no_deletion(monkeypatch):
    """Call it to make any removal fail from then on, so a broken guard cannot delete real folders."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"ebnb.ownership tried to delete {args}")

    def arm():
        monkeypatch.setattr(ownership.os, "rename", refuse)
        monkeypatch.setattr(ownership.shutil, "rmtree", refuse)

    return arm


def _marked_project(tmp_path: Path) -> Path:
    root = a_store(tmp_path / "proj").root
    write(root / "pyproject.toml")
    return root


@pytest.mark.parametrize(
    ("unsafe", "reason"),
    [
        (_marked_project, "project root"),
        (lambda _: Path("/"), "filesystem root"),
        (lambda _: Path.home(), "home directory"),
        (lambda _: Path("."), "current directory"),
    ],
)
def test_unsafe_folders_are_refused_and_nothing_is_deleted(tmp_path, unsafe, reason, no_deletion):
    store = a_store(tmp_path / "store")
    bad = unsafe(tmp_path)
    no_deletion()
    with pytest.raises(ValueError, match=f"refusing to delete danger at .*{reason}"):
        ownership.remove({"store": (store.root, "store"), "danger": (bad, "store")})
    assert store.root.is_dir()


def test_symlinks_and_files_are_refused(tmp_path, no_deletion):
    store = a_store(tmp_path / "store")
    (tmp_path / "link").symlink_to(store.root, target_is_directory=True)
    no_deletion()
    assert ownership.refusal(tmp_path / "link", "store") == "it is a symbolic link"
    assert ownership.refusal(write(tmp_path / "f"), "store") == "it is not a directory"


def test_a_crashed_removal_is_finished_and_missing_folders_free_nothing(tmp_path):
    store = a_store(tmp_path / "store")
    write(tmp_path / ".store-deleting-999999" / "half.bin", "x" * 11)
    freed = ownership.remove({"store": (store.root, "store"), "none": (tmp_path / "nope", "outputs")})
    assert freed["none"] == 0 and freed["store"] > 11
    assert list(tmp_path.iterdir()) == []


# ---- read-only stores ---------------------------------------------------------------------------


def tree(root: Path) -> dict[str, tuple[int, float]]:
    """Every path under `root` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in sorted(root.rglob("*"))}


@pytest.fixture
def no_lock(monkeypatch):
    """A lock file opened fails the test (on a read-only disk it would fail with EROFS)."""

    class Refused:
        def __init__(self, path, *args, **kwargs):
            raise AssertionError(f"a lock file was opened: {path}")

    monkeypatch.setattr(shards, "FileLock", Refused)


def test_a_stored_shard_is_read_without_writing(tmp_path, no_lock):
    store = Store(tmp_path / "store")
    shard = shards.Shard("dense", (Unit(1), Unit(2)))
    for unit in shard.units:
        store.save("dense", unit, {"x": np.arange(unit.a)})
    before = tree(store.root)
    for path in [store.root, *store.root.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)  # blocks writes unless running as root
    try:
        report = shards.run(store, shard, lambda *args: pytest.fail("computed a stored shard"))
    finally:
        for path in [store.root, *store.root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert (report.computed, report.resumed) == (0, False)
    assert tree(store.root) == before


def test_pipeline_run_on_a_complete_store_writes_nothing_into_it(env, capsys, monkeypatch, no_lock):
    """`pipeline.py --store S run 01_mask_similarity` where S holds every unit the notebook
    reads: the compute step opens no lock and writes no file (the notebook itself: stubbed)."""
    from ebnb import experiments

    store = Store(env / "store")
    for _, step in compute.plan(
        ["cartpole"], pipeline.NOTEBOOK_STEPS["01_mask_similarity"], experiments.grid("quick", seeds=[0])
    ):
        for unit in step.units:
            store.save(step.kind, unit, {"x": np.zeros(1)})  # a stand-in result: only its presence is read
    before = tree(store.root)
    ran = []
    monkeypatch.setattr(
        pipeline,
        "run_grid",
        lambda *args: (
            ran.extend(
                pipeline.compute_store(plan, always_record=False) for plans in args[-1].values() for plan in plans
            )
            or {}
        ),
    )
    code, errors = run_main(
        [
            "--store",
            str(store.root),
            "--out",
            str(env / "out"),
            "run",
            "01_mask_similarity",
            "-p",
            "seeds=[0]",
            "--recompute",
        ],
        capsys,
    )
    assert (code, errors) == (0, []) and ran == [None], "nothing computed, no run record"
    assert tree(store.root) == before


def _complete_store(root: Path, notebook: str) -> Store:
    """A store holding every unit `notebook` reads at the quick profile, seed 0 (stand-in results)."""
    from ebnb import experiments

    store = Store(root)
    for _, step in compute.plan(["cartpole"], pipeline.NOTEBOOK_STEPS[notebook], experiments.grid("quick", seeds=[0])):
        for unit in step.units:
            store.save(step.kind, unit, {"x": np.zeros(1)})  # a stand-in result: only its presence is read
    return store


@pytest.mark.parametrize("scheduler", ["inline", "local"])
def test_compute_on_a_complete_store_writes_nothing_into_it(env, capsys, monkeypatch, no_lock, scheduler):
    """`compute` where the store holds every unit: no lock, no run record, and on Dask no
    cluster and no probe file (the store may be on a read-only disk)."""
    store = _complete_store(env / "store", "01_mask_similarity")
    before = tree(store.root)
    monkeypatch.setattr(compute, "_run_dask", lambda *args: pytest.fail("Dask started for a complete store"))
    code = pipeline.main(
        [
            "--store",
            str(store.root),
            "compute",
            "01_mask_similarity",
            "--env",
            "cartpole",
            "--profile",
            "quick",
            "-p",
            "seeds=[0]",
            "--recompute",
            "--scheduler",
            scheduler,
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "[compute] shards: 0 computed, 0 resumed from a checkpoint, 1 stored before" in printed
    assert "nothing computed: no run record written" in printed
    assert tree(store.root) == before


# ---- damaged published results ------------------------------------------------------------------

ROOT = Path(pipeline.__file__).resolve().parent


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A copy of the published results/ as $EBNB_RESULTS, inside tmp_path."""
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(ROOT / "results", copy)
    monkeypatch.setenv("EBNB_RESULTS", str(copy))
    return copy


@pytest.mark.parametrize("damage", ["deleted", "truncated", "not a manifest", "results/ deleted"])
def test_damaged_published_results_are_one_line_before_any_compute(env, results, capsys, monkeypatch, damage):
    import shutil

    manifest = results / "manifest.json"
    if damage == "deleted":
        manifest.unlink()
    elif damage == "truncated":
        manifest.write_bytes(manifest.read_bytes()[:5000])
    elif damage == "not a manifest":
        manifest.write_text("[]")
    else:
        shutil.rmtree(results)
    monkeypatch.setattr(compute, "run", lambda *args, **kwargs: pytest.fail("computed"))
    argv = ["--store", str(env / "store"), "--out", str(env / "out"), "run", "01_mask_similarity"]
    code, errors = run_main(argv, capsys)
    assert code == 2 and len(errors) == 1, errors
    what = "results/ is missing" if damage == "results/ deleted" else "manifest.json is "
    assert what in errors[0] and errors[0].startswith(f"error: {results}"), errors
    assert errors[0].endswith(
        "restore it with `git checkout results/`, or pass --recompute (in a notebook: use_published=False)"
    )
    assert not (env / "store").exists()
    monkeypatch.setattr(pipeline, "run_grid", lambda *args: {})  # computes nothing, runs no notebook
    assert run_main([*argv, "--recompute"], capsys) == (0, []), "--recompute does not read results/"


def test_a_damaged_stored_unit_is_recomputed_with_a_warning_naming_it(tmp_path, caplog):
    store = Store(tmp_path / "store")
    shard = shards.Shard("dense", (Unit(1), Unit(2)))
    for unit in shard.units:
        store.save("dense", unit, {"x": np.arange(3)})
    damaged = store.path("dense", Unit(2))
    (damaged / "x.npz").write_bytes(b"rot")

    def fake(store, missing, checkpoint, progress, save):
        assert missing == [Unit(2)]
        save(Unit(2), {"x": np.arange(3)})

    with caplog.at_level("WARNING", logger="ebnb.shards"):
        assert shards.run(store, shard, fake).computed == 1
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(f"warning: recomputing a damaged stored result: {damaged}: ")
    assert store.exists("dense", Unit(2))
