"""Bad input at every user-facing entry point is refused before any compute: exit status 2 and
one line naming the parameter on the command line, a ValueError naming it in the Python API,
a PapermillExecutionError naming it in a notebook, and nothing written to the store.

Safety: every store, output folder, figures folder and default store ($EBNB_STORE) points into
pytest's tmp_path; the notebook runners (`run_grid`, `compute_store`, `_train`, `_bench`) are
replaced by stubs that fail the test instead of computing, and `ebnb.ownership.remove` is wrapped so
that it refuses any target outside tmp_path.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import ebnb.__main__ as ebnb_cli
import ebnb.ownership
from ebnb import compute, config, experiments, notebook, shards
from ebnb.checkpoint import Checkpoint
from ebnb.config import dqn_config
from ebnb.store import CorruptResultError, Store

ROOT = Path(__file__).resolve().parents[1]


def _load_pipeline():
    spec = importlib.util.spec_from_file_location("pipeline_under_test", ROOT / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pipeline = _load_pipeline()


def empty_or_absent(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def assert_one_line_naming(code, stderr: str, name: str, usage: bool = False) -> None:
    """Exit 2 and one non-empty stderr line naming `name` (argparse usage errors: the last
    line names it, after argparse's usage lines)."""
    lines = error_lines(stderr)
    assert code == 2, (code, stderr)
    if usage:
        assert lines and "error:" in lines[-1] and name in lines[-1], lines
    else:
        assert len(lines) == 1 and name in lines[0], lines


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Everything a case could write points into tmp_path; compute is replaced by stubs."""
    monkeypatch.setenv("EBNB_STORE", str(tmp_path / "default-store"))
    monkeypatch.setattr(sys, "argv", ["pipeline.py"])  # argparse's prog, as on the command line
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)  # `clean` removes ROOT/figures unless --keep-figures

    def started(*args, **kwargs):
        raise AssertionError("not rejected: the notebook / computation was started")

    for module, name in (
        (pipeline, "run_grid"),
        (pipeline, "compute_store"),
        (ebnb_cli, "_train"),
        (ebnb_cli, "_bench"),
    ):
        monkeypatch.setattr(module, name, started)

    real_remove = ebnb.ownership.remove
    inside = tmp_path.resolve()

    def guarded_remove(targets, dry_run=False):
        for name, (path, _) in targets.items():
            if not Path(path).resolve().is_relative_to(inside):
                raise AssertionError(f"test safety: refusing to let clean touch {name} at {path}")
        return real_remove(targets, dry_run)

    monkeypatch.setattr(ebnb.ownership, "remove", guarded_remove)
    return tmp_path


def call(main, argv, capsys):
    """`main(argv)` in this process: (exit code, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse usage errors
        code = exit.code
    return code, capsys.readouterr().err


# ---- pipeline.py, in process ------------------------------------------------------------------

PIPELINE_CASES = [
    # (argv after --store/--out, name the message must contain, argparse usage error?)
    pytest.param(["run", "02_retrain", "-p", "fractions=[1.5]"], "fractions", False, id="run fractions=[1.5]"),
    pytest.param(["run", "02_retrain", "-p", "episodes=0"], "episodes", False, id="run episodes=0"),
    pytest.param(["run", "02_retrain", "-p", "episodes=ten"], "episodes", False, id="run episodes=ten"),
    pytest.param(["run", "02_retrain", "-p", "colour=red"], "colour", False, id="run colour=red"),
    pytest.param(["run", "02_retrain", "-p", "seeds=[]"], "seeds", False, id="run seeds=[]"),
    pytest.param(["run", "02_retrain", "-p", "seeds"], "-p", False, id="run -p without ="),
    pytest.param(["run", "02_retrain", "-p", "seeds=[0]", "-p", "seeds=[1]"], "-p seeds", False, id="run seeds twice"),
    pytest.param(
        ["compute", "02_retrain", "-p", "episodes=5", "-p", "episodes=6"],
        "-p episodes",
        False,
        id="compute episodes twice",
    ),
    pytest.param(["run", "05_nothing"], "notebook", False, id="run unknown notebook"),
    pytest.param(["run", "02_retrain", "--env", "nosuchenv"], "env", False, id="run unknown env"),
    pytest.param(["run", "02_retrain", "--env", "cartpole", "--env", "acrobot"], "--env", False, id="run two envs"),
    pytest.param(["run", "02_retrain", "--profile", "huge"], "--profile", False, id="run unknown profile"),
    pytest.param(["compute", "all", "--shard-size", "0"], "--shard-size", False, id="compute shard-size=0"),
    pytest.param(
        ["compute", "all", "--checkpoint-every", "0"], "checkpoint_every", False, id="compute checkpoint-every=0"
    ),
    pytest.param(
        ["compute", "all", "--checkpoint-every", "soon"], "--checkpoint-every", True, id="compute checkpoint-every=soon"
    ),
    pytest.param(["compute", "all", "--workers", "0"], "--workers", False, id="compute workers=0"),
    pytest.param(["compute", "all", "--population", "0"], "--population", False, id="compute population=0"),
    pytest.param(["compute", "04_eb_exploit", "-p", "xi=-1"], "xi", False, id="compute xi=-1"),
    pytest.param(["compute", "04_eb_exploit", "-p", "window=0"], "window", False, id="compute window=0"),
    pytest.param(["compute", "04_eb_exploit", "-p", "rewind=yes"], "rewind", False, id="compute rewind=yes"),
    pytest.param(["compute", "02_retrain", "-p", "xi=0.5"], "xi", False, id="compute xi for 02_retrain"),
    pytest.param(["compute", "02_retrain", "-p", "seeds=[]"], "seeds", False, id="compute seeds=[]"),
    # not rejected cleanly today
    pytest.param(["run", "02_retrain", "-p", "seeds=3"], "seeds", False, id="run seeds=3 (scalar)"),
    pytest.param(["compute", "all", "-p", "fractions=0.5"], "fractions", False, id="compute fractions=0.5 (scalar)"),
    pytest.param(["run", "02_retrain", "-p", "seeds=[0,0]"], "seeds", False, id="run seeds=[0,0] (duplicate)"),
    pytest.param(["run", "04_eb_exploit", "-p", "xi=-1"], "xi", False, id="run xi=-1"),
    pytest.param(["run", "04_eb_exploit", "-p", "window=0"], "window", False, id="run window=0"),
    pytest.param(["run", "04_eb_exploit", "-p", "rewind=yes"], "rewind", False, id="run rewind=yes"),
    pytest.param(["run", "02_retrain", "--env", "Blackjack-v1"], "env", False, id="run env without reward_threshold"),
    pytest.param(
        ["run", "02_retrain", "--env", "FrozenLake-v1"], "env", False, id="run env with discrete observations"
    ),
    pytest.param(["compute", "all", "--env", "Blackjack-v1"], "env", False, id="compute env without reward_threshold"),
    pytest.param(["compute", "all", "--scheduler", "tcp://"], "scheduler", False, id="compute scheduler=tcp://"),
    pytest.param(["run", "02_retrain", "-p", f"seeds=[{2**63}]"], "seeds", False, id="run seeds=[2**63]"),
    pytest.param(["compute", "02_retrain", "-p", "seeds=[-1]"], "seeds", False, id="compute seeds=[-1]"),
    pytest.param(["compute", "all", "--workers", "4096"], "--workers", False, id="compute workers=4096"),
    pytest.param(
        ["compute", "all", "--scheduler", "inline", "--workers", "1"],
        "--workers",
        False,
        id="compute workers with scheduler inline",
    ),
]


@pytest.mark.parametrize("argv, name, usage", PIPELINE_CASES)
def test_pipeline_rejects_bad_input(sandbox, capsys, argv, name, usage):
    store = sandbox / "store"
    code, stderr = call(pipeline.main, ["--store", str(store), "--out", str(sandbox / "out"), *argv], capsys)
    assert_one_line_naming(code, stderr, name, usage)
    assert empty_or_absent(store)
    assert empty_or_absent(sandbox / "default-store")


# ---- pipeline.py clean ---------------------------------------------------------------------


def _file(tmp: Path) -> Path:
    (tmp / "results.txt").write_text("not a directory")
    return tmp / "results.txt"


def _symlink(tmp: Path) -> Path:
    (tmp / "real").mkdir()
    (tmp / "real" / "keep.txt").write_text("keep")
    (tmp / "link").symlink_to(tmp / "real")
    return tmp / "link"


def _project(tmp: Path) -> Path:
    (tmp / "project").mkdir()
    (tmp / "project" / "pyproject.toml").write_text("[project]\n")
    return tmp / "project"


def _not_a_store(tmp: Path) -> Path:
    (tmp / "thesis-drafts").mkdir()
    (tmp / "thesis-drafts" / "chapter1.tex").write_text("keep me")
    return tmp / "thesis-drafts"


def _empty_string(tmp: Path) -> str:
    (tmp / "default-store").mkdir()  # what $EBNB_STORE points to in the sandbox
    (tmp / "default-store" / "keep.txt").write_text("keep")
    return ""


CLEAN_CASES = [
    pytest.param(_file, id="--store is a file"),
    pytest.param(_symlink, id="--store is a symlink"),
    pytest.param(_project, id="--store is a project root"),
    pytest.param(_not_a_store, id="--store is not a result store"),
    pytest.param(_empty_string, id="--store '' (e.g. an unset variable)"),
]


@pytest.mark.parametrize("make_target", CLEAN_CASES)
def test_clean_refuses_bad_store(sandbox, capsys, make_target):
    target = make_target(sandbox)
    before = sorted(p.relative_to(sandbox) for p in sandbox.rglob("*"))
    argv = ["--store", str(target), "--out", str(sandbox / "out"), "clean"]
    code, stderr = call(pipeline.main, argv, capsys)
    assert_one_line_naming(code, stderr, "store")
    assert sorted(p.relative_to(sandbox) for p in sandbox.rglob("*")) == before


# ---- python -m ebnb, in process --------------------------------------------------------------

EBNB_CASES = [
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", "0", "--episodes", "0", "--out", "{tmp}/log.csv"],
        "episodes",
        False,
        id="train episodes=0",
    ),
    pytest.param(
        ["train", "--env", "nosuchenv", "--seeds", "0", "--out", "{tmp}/log.csv"], "env", False, id="train unknown env"
    ),
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", "0,0", "--out", "{tmp}/log.csv"], "seeds", False, id="train seeds=0,0"
    ),
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", "0", "--out", "{tmp}/log.txt"], "out", False, id="train out=.txt"
    ),
    pytest.param(["bench", "--agents", "0"], "agents", False, id="bench agents=0"),
    pytest.param(["bench", "--agents", "ten"], "--agents", True, id="bench agents=ten"),
    pytest.param(["bench", "--threads", "0"], "threads", False, id="bench threads=0"),
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", "0", "--device", "gpu", "--out", "{tmp}/log.csv"],
        "device",
        False,
        id="train device=gpu",
    ),
    pytest.param(
        ["train", "--env", "FrozenLake-v1", "--seeds", "0", "--out", "{tmp}/log.csv"],
        "env",
        False,
        id="train env with discrete observations",
    ),
    pytest.param(
        ["train", "--env", "Pendulum-v1", "--seeds", "0-2", "--out", "{tmp}/log.csv"],
        "env",
        False,
        id="train env with continuous actions",
    ),
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", "", "--out", "{tmp}/log.csv"], "seeds", False, id="train seeds empty"
    ),
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", "5-2", "--out", "{tmp}/log.csv"], "seeds", False, id="train seeds=5-2"
    ),
    pytest.param(["bench", "--env", "acrobat"], "env", False, id="bench unknown env"),
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", str(2**63), "--out", "{tmp}/log.csv"],
        "seeds",
        False,
        id="train seeds=2**63",
    ),
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", f"0-{10**30}", "--out", "{tmp}/log.csv"],
        "seeds",
        False,
        id="train seeds=0-10**30",
    ),
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", "0", "--out", "{tmp}/file.txt/log.csv"],
        "out",
        False,
        id="train out in a file",
    ),
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", "0", "--out", "{tmp}/file.txt/sub/log.csv"],
        "out",
        False,
        id="train out below a file",
    ),
    pytest.param(
        ["train", "--env", "cartpole", "--seeds", "0", "--out", "{tmp}/folder.csv"],
        "out",
        False,
        id="train out is a folder",
    ),
]


@pytest.mark.parametrize("argv, name, usage", EBNB_CASES)
def test_ebnb_cli_rejects_bad_input(sandbox, capsys, argv, name, usage):
    (sandbox / "file.txt").write_text("a file")
    (sandbox / "folder.csv").mkdir()
    before = tree(sandbox)
    code, stderr = call(ebnb_cli.main, [a.replace("{tmp}", str(sandbox)) for a in argv], capsys)
    assert_one_line_naming(code, stderr, name, usage)
    assert tree(sandbox) == before


def tree(folder: Path) -> dict:
    """Every path under `folder` with its bytes (None for a folder): a snapshot to compare."""
    return {p.relative_to(folder): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


# ---- failures of the machine: one line, exit 1, nothing half-written; --debug: the traceback ----


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "/full/disk/log.csv")


def _read_only(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system", "/ro/store/lock/x.lock")


def _corrupt(*args, **kwargs):
    raise CorruptResultError("/store/dense/0123456789abcdef: ['log.parquet'] do not match the manifest")


MACHINE_CASES = [
    # (module, function replaced, failure, what the line must contain)
    pytest.param(
        ebnb_cli,
        "_train",
        _no_space,
        "/full/disk/log.csv: No space left on device; free some space",
        id="train: disk full",
    ),
    pytest.param(
        pipeline,
        "compute_store",
        _read_only,
        "/ro/store/lock/x.lock: Read-only file system; the disk is mounted read-only",
        id="compute: read-only store",
    ),
    pytest.param(
        pipeline,
        "compute_store",
        _corrupt,
        "do not match the manifest; delete that folder",
        id="compute: corrupt result",
    ),
]


@pytest.mark.parametrize("module, name, failure, message", MACHINE_CASES)
@pytest.mark.parametrize("debug", [False, True], ids=["", "--debug"])
def test_machine_failure_is_one_line_with_exit_1(sandbox, capsys, monkeypatch, module, name, failure, message, debug):
    monkeypatch.setattr(module, name, failure)
    if module is ebnb_cli:
        main, argv = ebnb_cli.main, ["train", "--env", "cartpole", "--seeds", "0", "--out", str(sandbox / "log.csv")]
    else:
        main, argv = (
            pipeline.main,
            [
                "--store",
                str(sandbox / "store"),
                "compute",
                "01_mask_similarity",
                "--profile",
                "quick",
                "--scheduler",
                "inline",
                "--recompute",
            ],
        )
    if debug:
        with pytest.raises((OSError, CorruptResultError)):
            main(["--debug", *argv])
        return
    code, stderr = call(main, argv, capsys)
    assert code == 1 and error_lines(stderr) == [f"error: {error_lines(stderr)[0][7:]}"], stderr
    assert message in stderr
    assert empty_or_absent(sandbox / "store") and not (sandbox / "log.csv").exists()


def test_unreachable_scheduler_is_one_line_before_any_work(sandbox, capsys):
    """Nothing listens on port 1: refused at once (not after distributed's 30 s), exit 1."""
    argv = [
        "--store",
        str(sandbox / "store"),
        "compute",
        "01_mask_similarity",
        "--profile",
        "quick",
        "--recompute",
        "--scheduler",
        "tcp://127.0.0.1:1",
    ]
    code, stderr = call(pipeline.main, argv, capsys)
    assert code == 1 and len(error_lines(stderr)) == 1, stderr
    assert stderr.startswith("error: --scheduler: cannot reach tcp://127.0.0.1:1")
    assert empty_or_absent(sandbox / "store")


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    """A disk that fills while the log is written: no partial file, no folder made for it."""
    import pandas as pd

    monkeypatch.setattr(pd.DataFrame, "to_csv", _no_space)
    with pytest.raises(OSError):
        ebnb_cli._write(pd.DataFrame({"seed": [0]}), tmp_path / "new" / "deeper" / "log.csv")
    assert list(tmp_path.iterdir()) == []


# ---- Python API ------------------------------------------------------------------------------

quick = experiments.grid("quick")

API_CASES = [
    # (call(store, tmp_path), name the ValueError must contain)
    pytest.param(lambda s, t: experiments.grid("huge"), "profile", id="grid profile=huge"),
    pytest.param(lambda s, t: experiments.grid("quick", colour="red"), "colour", id="grid colour=red"),
    pytest.param(lambda s, t: experiments.grid("quick", seeds=[]), "seeds", id="grid seeds=[]"),
    pytest.param(lambda s, t: experiments.grid("quick", seeds="abc"), "seeds", id="grid seeds='abc'"),
    pytest.param(lambda s, t: experiments.grid("quick", seeds=[-1]), "seeds", id="grid seeds=[-1]"),
    pytest.param(lambda s, t: experiments.grid("quick", fractions=[1.5]), "fractions", id="grid fractions=[1.5]"),
    pytest.param(
        lambda s, t: experiments.grid("quick", fractions=[float("nan")]), "fractions", id="grid fractions=[nan]"
    ),
    pytest.param(
        lambda s, t: experiments.grid("quick", prune_episodes=[11]),
        "prune_episodes",
        id="grid prune_episodes=[11] > episodes",
    ),
    pytest.param(lambda s, t: experiments.grid("quick", episodes=0), "episodes", id="grid episodes=0"),
    pytest.param(lambda s, t: experiments.grid("quick", episodes=2.5), "episodes", id="grid episodes=2.5"),
    pytest.param(lambda s, t: experiments.grid("quick", test_episodes=-1), "test_episodes", id="grid test_episodes=-1"),
    pytest.param(lambda s, t: experiments.grid("quick", mask_every=0), "mask_every", id="grid mask_every=0"),
    pytest.param(lambda s, t: experiments.retrain("nosuchenv", quick, s), "env", id="retrain env=nosuchenv"),
    pytest.param(lambda s, t: experiments.finetune("Pendulum-v1", quick, s), "env", id="finetune env=Pendulum-v1"),
    pytest.param(
        lambda s, t: experiments.mask_similarity("acrobat", quick, s), "env", id="mask_similarity env=acrobat"
    ),
    pytest.param(lambda s, t: experiments.eb_exploit("cartpole", quick, s, xi=-1), "xi", id="eb_exploit xi=-1"),
    pytest.param(lambda s, t: experiments.eb_exploit("cartpole", quick, s, xi=1), "xi", id="eb_exploit xi=1"),
    pytest.param(
        lambda s, t: experiments.eb_exploit("cartpole", quick, s, window=0), "window", id="eb_exploit window=0"
    ),
    pytest.param(
        lambda s, t: experiments.eb_exploit("cartpole", quick, s, rewind="yes"), "rewind", id="eb_exploit rewind='yes'"
    ),
    pytest.param(lambda s, t: dqn_config("nosuchenv"), "env", id="dqn_config env=nosuchenv"),
    pytest.param(lambda s, t: dqn_config("cartpole", lr=0), "lr", id="dqn_config lr=0"),
    pytest.param(lambda s, t: dqn_config("cartpole", batch_size=0), "batch_size", id="dqn_config batch_size=0"),
    pytest.param(
        lambda s, t: dqn_config("cartpole", eps_decay_per="week"), "eps_decay_per", id="dqn_config eps_decay_per=week"
    ),
    pytest.param(lambda s, t: shards.cut("dense", [1, 2], 0), "shard_size", id="cut shard_size=0"),
    pytest.param(lambda s, t: shards.cut("dense", [1, 2], "4"), "shard_size", id="cut shard_size='4'"),
    pytest.param(
        lambda s, t: Checkpoint(s.root / "checkpoint" / "x.pt", 0), "checkpoint_every", id="Checkpoint every=0"
    ),
    pytest.param(
        lambda s, t: Checkpoint(s.root / "checkpoint" / "x.pt", "10"), "checkpoint_every", id="Checkpoint every='10'"
    ),
    pytest.param(lambda s, t: compute.check_scheduler("yarn"), "scheduler", id="check_scheduler yarn"),
    # not rejected cleanly today
    pytest.param(lambda s, t: experiments.grid("quick", seeds=3), "seeds", id="grid seeds=3 (scalar)"),
    pytest.param(lambda s, t: experiments.grid("quick", fractions=0.5), "fractions", id="grid fractions=0.5 (scalar)"),
    pytest.param(
        lambda s, t: experiments.grid("quick", prune_episodes=5), "prune_episodes", id="grid prune_episodes=5 (scalar)"
    ),
    pytest.param(lambda s, t: experiments.grid("quick", seeds=[0, 0]), "seeds", id="grid seeds=[0,0] (duplicate)"),
    pytest.param(lambda s, t: experiments.retrain("cartpole", {"seeds": [0]}, s), "grid", id="retrain grid=dict"),
    pytest.param(lambda s, t: dqn_config("cartpole", colour=1), "colour", id="dqn_config colour=1"),
    pytest.param(lambda s, t: dqn_config("cartpole", lr="fast"), "lr", id="dqn_config lr='fast'"),
    pytest.param(lambda s, t: dqn_config("cartpole", hidden=(0,)), "hidden", id="dqn_config hidden=(0,)"),
    pytest.param(
        lambda s, t: dqn_config("cartpole", solved_return="high"), "solved_return", id="dqn_config solved_return='high'"
    ),
    pytest.param(lambda s, t: shards.cut("bad kind/..", [1, 2], 4), "kind", id="cut kind='bad kind/..'"),
    pytest.param(lambda s, t: compute.check_scheduler(None), "scheduler", id="check_scheduler None"),
    pytest.param(lambda s, t: compute.check_scheduler("tcp://"), "scheduler", id="check_scheduler 'tcp://'"),
]


@pytest.mark.parametrize("bad_call, name", API_CASES)
def test_api_rejects_bad_input(sandbox, bad_call, name):
    store = Store(sandbox / "store")
    with pytest.raises(ValueError) as info:
        bad_call(store, sandbox)
    assert str(info.value).startswith(name)
    assert empty_or_absent(sandbox / "store")
    assert empty_or_absent(sandbox / "default-store")


# ---- a notebook through papermill ------------------------------------------------------------

# One end-to-end case: the other grid values reach the same check, which the API cases test.
PAPERMILL_CASES = [
    pytest.param(
        {"fractions": [1.5]}, "fractions must be a number in the open interval (0, 1), got 1.5", id="fractions=[1.5]"
    ),
    pytest.param(
        {"seeds": "[0]"},
        "seeds: must be a list, got the text '[0]'; papermill's -p passes text, so pass a list with -y \"seeds: [0]\"",
        id="-p seeds [0] (text)",
    ),
]


@pytest.mark.parametrize("parameters, message", PAPERMILL_CASES)
def test_notebook_rejects_bad_grid_value(sandbox, parameters, message):
    import papermill

    store, figures = sandbox / "store", sandbox / "figures"
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(ROOT / "notebooks" / "02_retrain.ipynb"),
            str(sandbox / "out.ipynb"),
            parameters={**parameters, "store_dir": str(store), "figures_dir": str(figures)},
            kernel_name="python3",
            cwd=str(ROOT / "notebooks"),
            progress_bar=False,
        )
    assert info.value.ename == "ValueError", (info.value.ename, info.value.evalue)
    assert info.value.evalue == message
    assert empty_or_absent(store) and empty_or_absent(figures) and empty_or_absent(sandbox / "default-store")


# ---- real subprocesses (started together in the background, checked at the end) ---------------

SUBPROCESS_CASES = {
    # id: (command after the interpreter, name, argparse usage error?)
    "pipeline run seeds=abc": (["pipeline.py", "run", "02_retrain", "-p", "seeds=abc"], "seeds", False),
    "pipeline compute scheduler=yarn": (["pipeline.py", "compute", "all", "--scheduler", "yarn"], "scheduler", False),
    "pipeline compute shard-size=ten": (["pipeline.py", "compute", "all", "--shard-size", "ten"], "--shard-size", True),
    "pipeline run seeds=3": (["pipeline.py", "run", "02_retrain", "-p", "seeds=3"], "seeds", False),
    "ebnb train seeds=''": (
        ["-m", "ebnb", "train", "--env", "cartpole", "--seeds", "", "--out", "{tmp}/log.csv"],
        "seeds",
        False,
    ),
    "ebnb train episodes=ten": (
        ["-m", "ebnb", "train", "--env", "cartpole", "--seeds", "0", "--episodes", "ten", "--out", "{tmp}/log.csv"],
        "--episodes",
        True,
    ),
}


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    """Start every subprocess case at once (each costs seconds of interpreter start-up); the
    tests further down wait for their own."""
    base = tmp_path_factory.mktemp("subprocess")
    env = {**os.environ, "EBNB_STORE": str(base / "default-store")}
    started = {}
    for i, (case, (command, _, _)) in enumerate(SUBPROCESS_CASES.items()):
        tmp = base / f"case{i}"
        tmp.mkdir()
        argv = [a.replace("{tmp}", str(tmp)) for a in command]
        if argv[0] == "pipeline.py":
            argv = [str(ROOT / "pipeline.py"), "--store", str(tmp / "store"), "--out", str(tmp / "out"), *argv[1:]]
        with open(tmp / "stdout", "w") as out, open(tmp / "stderr", "w") as err:
            process = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=out, stderr=err, text=True, env=env)
        started[case] = (process, tmp)
    yield started, base
    for process, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module", autouse=True)
def _start_background_early(background):
    """Autouse: the subprocesses run while the in-process tests run."""


@pytest.mark.parametrize("case", [pytest.param(case, id=case) for case in SUBPROCESS_CASES])
def test_subprocess_rejects_bad_input(background, case):
    started, base = background
    process, tmp = started[case]
    process.wait(timeout=300)
    _, name, usage = SUBPROCESS_CASES[case]
    assert_one_line_naming(process.returncode, (tmp / "stderr").read_text(), name, usage)
    assert empty_or_absent(tmp / "store") and not (tmp / "log.csv").exists()
    assert empty_or_absent(base / "default-store")


# ---- the README's table of messages is what users see ----------------------------------------


def readme_bad_input_rows() -> list[tuple[str, str, str, int | None]]:
    """(where, input, message, exit status or None) for each row of the "Bad input" table in docs/reliability.md."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    section = text[text.index("## Bad input") :]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if not line.startswith("| ") or line.startswith(("| where", "|---")):
            continue
        where, given, shown = (cell.strip() for cell in line.strip().strip("|").split(" | "))
        match = re.fullmatch(r"`(.*)`(?: \(exit (\d+)\))?", shown)
        assert match and given.startswith("`") and given.endswith("`"), line
        rows.append((where, given[1:-1], match[1], int(match[2]) if match[2] else None))
    return rows


README_ROWS = readme_bad_input_rows()


def test_readme_table_has_every_entry_point():
    assert len(README_ROWS) >= 25
    assert {where for where, *_ in README_ROWS} == {"pipeline.py", "python -m ebnb", "Python API", "notebook"}


@pytest.mark.parametrize("where, given, message, status", README_ROWS, ids=[f"{w}: {g}" for w, g, _, _ in README_ROWS])
def test_readme_table_shows_the_real_message(sandbox, capsys, monkeypatch, where, given, message, status):
    """Each row of the README's table, run: the message is the table's, word for word."""
    monkeypatch.setenv("HOME", str(sandbox))  # `~/thesis-drafts` is a folder in the sandbox
    monkeypatch.chdir(sandbox)
    (sandbox / "thesis-drafts").mkdir()
    (sandbox / "thesis-drafts" / "ch1.tex").write_text("keep me")
    if where in ("Python API", "notebook"):
        store = Store(sandbox / "store")
        with pytest.raises(ValueError) as info:
            eval(
                given,
                {"experiments": experiments, "dqn_config": config.dqn_config, "store": store, "notebook": notebook},
            )
        assert f"ValueError: {info.value}" == message
        assert empty_or_absent(sandbox / "store")
        return
    argv = [os.path.expanduser(a) for a in shlex.split(given)]
    if where == "pipeline.py":
        store = [] if "--store" in argv else ["--store", str(sandbox / "store")]
        code, stderr = call(pipeline.main, [*store, "--out", str(sandbox / "out"), *argv], capsys)
    else:
        code, stderr = call(ebnb_cli.main, argv, capsys)
    lines = error_lines(stderr.replace(str(sandbox), "~"))
    assert (code, lines) == (status, [message])
    assert (sandbox / "thesis-drafts" / "ch1.tex").read_text() == "keep me"
    assert empty_or_absent(sandbox / "store") and not (sandbox / "x.csv").exists()


def test_a_tuple_of_values_is_refused_with_the_list_it_means():
    """`-p seeds=0,1` reads as a Python tuple, which papermill would inject as a string that
    the notebook refuses after it started: refused up front, showing the list it means."""
    with pytest.raises(
        pipeline.UsageError, match=re.escape("seeds: a list goes in brackets: seeds=[0,1], not seeds=0,1")
    ):
        pipeline.parse_overrides(["seeds=0,1"], ["02_retrain"])


# ---- the notebooks' own parameters (ebnb.notebook.setup), and what pipeline.py makes of them ----


def test_use_published_text_false_means_false_and_folders_are_relative_to_the_project(sandbox):
    run = notebook.setup("CartPole-v0", "quick", "mystore", "myfigs", "FALSE")
    assert run.published is None and run.env == "cartpole" and run.env_id == "CartPole-v0"
    assert run.store.root == experiments.PROJECT / "mystore" and run.figures == experiments.PROJECT / "myfigs"
    assert notebook.setup("cartpole", "quick", use_published="True").published is not None


@pytest.mark.parametrize("variable", ["EBNB_STORE", "EBNB_OUTPUTS"])
def test_an_empty_folder_variable_is_an_error_naming_it(sandbox, capsys, monkeypatch, variable):
    monkeypatch.setenv(variable, "")
    before = tree(sandbox)
    with pytest.raises(ValueError, match=f"^{variable}: set but empty"):
        notebook.setup("cartpole", "quick")
    code, stderr = call(pipeline.main, ["run", "02_retrain"], capsys)
    assert code == 2 and error_lines(stderr) == [error_lines(stderr)[0]] and variable in stderr
    assert tree(sandbox) == before


def test_env_names_are_one_name_and_use_published_reaches_the_compute_plan(sandbox, capsys, monkeypatch):
    """`--env CARTPOLE` runs the notebook named cartpole; `-p use_published=false` plans with no
    published results (the notebook would otherwise compute what the pipeline left to it)."""
    seen = {}

    def run_grid(notebooks, envs, profile, g, overrides, store, out, computes=None):
        seen.update(envs=envs, overrides=overrides, work=[len(p.work) for plans in computes.values() for p in plans])

    monkeypatch.setattr(pipeline, "run_grid", run_grid)
    base = ["--store", str(sandbox / "store"), "--out", str(sandbox / "out"), "run", "02_retrain", "--profile", "full"]
    assert call(pipeline.main, [*base, "--env", "CARTPOLE"], capsys)[0] == 0
    assert seen["envs"] == ["cartpole"] and seen["work"] == [0]  # the full profile is published
    assert call(pipeline.main, [*base, "-p", "use_published=false"], capsys)[0] == 0
    assert seen["overrides"]["use_published"] is False and seen["work"][0] > 0
    assert empty_or_absent(sandbox / "store")
