"""Result store: stable config hashes, round trips, corruption and crash recovery, races."""

import enum
import json
import logging
import multiprocessing
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ebnb import store as store_module
from ebnb.identity import kind
from ebnb.store import CorruptResultError, Store, config_hash

REPO = Path(__file__).resolve().parents[1]


@kind("schedule")
class Schedule(enum.Enum):
    EPISODE = "episode"
    STEP = "step"


@kind("net")
@dataclass(frozen=True)
class Net:
    hidden: tuple = (128, 128)
    activation: str = "relu"


@kind("run")
@dataclass(frozen=True)
class Run:
    seed: int = 0
    lr: float = 0.0025
    net: Net = field(default_factory=Net)
    schedule: Schedule = Schedule.EPISODE
    note: str | None = None
    dueling: bool = False


@kind("other_run")
@dataclass(frozen=True)
class OtherRun:  # same fields as Run, another kind
    seed: int = 0
    lr: float = 0.0025
    net: Net = field(default_factory=Net)
    schedule: Schedule = Schedule.EPISODE
    note: str | None = None
    dueling: bool = False


def test_same_config_same_hash_and_any_change_changes_it():
    base = config_hash(Run())
    assert base == config_hash(Run()) and len(base) >= 16
    variants = [
        Run(seed=1),
        Run(lr=0.0025000001),
        Run(net=Net(hidden=(128,))),
        Run(net=Net(activation="tanh")),
        Run(schedule=Schedule.STEP),
        Run(note="x"),
        Run(dueling=True),
        OtherRun(),
    ]
    hashes = {config_hash(v) for v in variants}
    assert base not in hashes and len(hashes) == len(variants)


def test_dict_configs_ignore_key_order_and_differ_from_dataclasses():
    assert config_hash({"a": 1, "b": (2, 3)}) == config_hash({"b": [2, 3], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 1.0}) != config_hash({"a": True})
    assert config_hash({"run": Run(), "p": 0.5}) != config_hash({"run": OtherRun(), "p": 0.5})
    assert config_hash(Net()) != config_hash(dict(vars(Net())))


def test_hash_is_pinned():
    # sha256 of '{"kind":"train","p":0.2,"seeds":[0,1],"x":null}': changing the canonical
    # form would silently orphan every stored result
    config = {"kind": "train", "seeds": (0, 1), "p": 0.2, "x": None}
    assert config_hash(config) == "88ba1b390499e4ad"


def test_hash_is_stable_across_processes():
    code = (
        "import enum\n"
        "from dataclasses import dataclass, field\n"
        "from ebnb.identity import kind\n"
        "from ebnb.store import config_hash\n"
        "@kind('schedule')\nclass Schedule(enum.Enum):\n    EPISODE = 'episode'\n    STEP = 'step'\n"
        "@kind('net')\n@dataclass(frozen=True)\nclass Net:\n"
        "    hidden: tuple = (128, 128)\n    activation: str = 'relu'\n"
        "@kind('run')\n@dataclass(frozen=True)\nclass Run:\n"
        "    seed: int = 0\n    lr: float = 0.0025\n    net: Net = field(default_factory=Net)\n"
        "    schedule: Schedule = Schedule.EPISODE\n    note: str | None = None\n"
        "    dueling: bool = False\n"
        "print(config_hash(Run(seed=7, schedule=Schedule.STEP)))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == config_hash(Run(seed=7, schedule=Schedule.STEP))


def test_unsupported_config_values_are_rejected():
    with pytest.raises(ValueError, match="config"):
        config_hash({"a": {1, 2}})
    with pytest.raises(ValueError, match="config dict keys"):
        config_hash({1: "a"})


def sample_result(scale=1.0):
    frame = pd.DataFrame(
        {
            "episode": np.arange(5, dtype=np.int64),
            "return": np.linspace(0, 1, 5) * scale,
            "ret32": np.arange(5, dtype=np.float32),
            "solved": [True, False, True, False, True],
            "env": ["CartPole-v0"] * 5,
            "phase": pd.Categorical(["a", "b", "a", "b", "a"]),
            "when": pd.date_range("2024-01-01", periods=5, freq="h"),
            "maybe": pd.array([1, None, 3, None, 5], dtype="Int64"),
        }
    )
    arrays = {"masks": np.packbits(np.eye(12, dtype=bool), axis=-1), "q": np.ones((2, 3)) * scale}
    return {"log": frame, "weights": np.arange(12.0).reshape(3, 4) * scale, "extras": arrays}


def assert_result_equal(actual, expected):
    assert actual.keys() == expected.keys()
    pd.testing.assert_frame_equal(actual["log"], expected["log"])
    np.testing.assert_array_equal(actual["weights"], expected["weights"])
    assert actual["weights"].dtype == expected["weights"].dtype
    assert actual["extras"].keys() == expected["extras"].keys()
    for key, array in expected["extras"].items():
        np.testing.assert_array_equal(actual["extras"][key], array)
        assert actual["extras"][key].dtype == array.dtype


def test_save_load_round_trip_and_layout(tmp_path):
    store = Store(tmp_path)
    path = store.save("train", Run(), sample_result())
    assert path == store.path("train", Run()) == tmp_path / "train" / config_hash(Run())
    assert store.exists("train", Run()) and not store.exists("train", Run(seed=1))
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "extras.npz",
        "log.parquet",
        "manifest.json",
        "weights.npz",
    ]
    config = json.loads((path / "config.json").read_text())
    assert config["__kind__"] == "run" and config["net"]["hidden"] == [128, 128]
    assert_result_equal(store.load("train", Run()), sample_result())


def test_load_of_a_missing_result_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        Store(tmp_path).load("train", Run())


@pytest.mark.parametrize("kind", ["", "a/b", "..", ".tmp", "a b", None])
def test_kind_must_be_a_simple_identifier(tmp_path, kind):
    with pytest.raises(ValueError, match="kind"):
        Store(tmp_path).path(kind, Run())


@pytest.mark.parametrize(
    "result",
    [
        [np.ones(2)],
        {"x": [1, 2]},
        {"x": np.array([object()])},
        {"x": {"a": 1}},
        {"../x": np.ones(2)},
    ],
)
def test_unsupported_results_are_rejected_before_writing(tmp_path, result):
    with pytest.raises(ValueError, match="result"):
        Store(tmp_path).save("train", Run(), result)
    assert not (tmp_path / "train").exists()


def test_get_or_compute_computes_once_then_loads(tmp_path, caplog):
    store, calls = Store(tmp_path), []

    def compute():
        calls.append(1)
        return sample_result()

    with caplog.at_level(logging.INFO, logger="ebnb.store"):
        first = store.get_or_compute("train", Run(), compute)
        second = store.get_or_compute("train", Run(), compute)
        again = Store(tmp_path).get_or_compute("train", Run(), compute)
    assert len(calls) == 1 and (store.computed, store.loaded) == (1, 1)
    for result in (first, second, again):
        assert_result_equal(result, sample_result())
    where = f"train/{config_hash(Run())}"
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [f"computed {where}", f"loaded {where}", f"loaded {where}"]


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_bytes(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def rewrite_manifest_for(directory, name, data):
    """Replace a file and forge a matching manifest: only reading the file can tell."""
    (directory / name).write_bytes(data)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"][name] = store_module.file_entry(data)
    (directory / "manifest.json").write_text(json.dumps(manifest))


DAMAGE = {
    "truncate parquet": lambda d: truncate(d / "log.parquet"),
    "truncate npz": lambda d: truncate(d / "extras.npz"),
    "flip bytes": lambda d: flip_bytes(d / "weights.npz"),
    "flip config": lambda d: flip_bytes(d / "config.json"),
    "delete manifest": lambda d: (d / "manifest.json").unlink(),
    "truncate manifest": lambda d: truncate(d / "manifest.json"),
    "delete part": lambda d: (d / "log.parquet").unlink(),
    "garbage parquet, forged manifest": lambda d: rewrite_manifest_for(d, "log.parquet", b"PAR1"),
    "garbage npz, forged manifest": lambda d: rewrite_manifest_for(d, "extras.npz", b"PK\x03\x04"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_results_are_detected_and_recomputed(tmp_path, damage):
    store = Store(tmp_path)
    store.save("train", Run(), sample_result(scale=-1.0))
    DAMAGE[damage](store.path("train", Run()))
    with pytest.raises(CorruptResultError):
        store.load("train", Run())
    if "forged" not in damage:
        assert not store.exists("train", Run())
    result = store.get_or_compute("train", Run(), lambda: sample_result(scale=2.0))
    assert store.computed == 1 and store.loaded == 0
    assert_result_equal(result, sample_result(scale=2.0))
    assert_result_equal(store.load("train", Run()), sample_result(scale=2.0))
    assert os.listdir(tmp_path / "train") == [config_hash(Run())]


def test_stale_tmp_dir_of_a_dead_process_is_ignored_and_swept(tmp_path):
    store = Store(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "train" / f".tmp-{config_hash(Run())}-{dead.pid}-0badc0de"
    stale.mkdir(parents=True)
    (stale / "log.parquet").write_bytes(b"half a file")
    assert not store.exists("train", Run())
    result = store.get_or_compute("train", Run(), sample_result)
    assert store.computed == 1
    assert_result_equal(result, sample_result())
    assert os.listdir(tmp_path / "train") == [config_hash(Run())]


def test_tmp_dir_of_a_live_process_is_left_alone(tmp_path):
    live = tmp_path / "train" / f".tmp-{config_hash(Run())}-{os.getppid()}-0badc0de"
    live.mkdir(parents=True)
    Store(tmp_path).get_or_compute("train", Run(), sample_result)
    assert live.is_dir()


def test_force_recomputes_and_replaces(tmp_path):
    store = Store(tmp_path)
    store.get_or_compute("train", Run(), sample_result)
    result = store.get_or_compute("train", Run(), lambda: sample_result(scale=3.0), force=True)
    assert store.computed == 2 and store.loaded == 0
    assert_result_equal(result, sample_result(scale=3.0))
    assert_result_equal(store.load("train", Run()), sample_result(scale=3.0))


def test_save_keeps_an_existing_valid_result_and_replaces_an_invalid_one(tmp_path):
    store = Store(tmp_path)
    store.save("train", Run(), sample_result())
    store.save("train", Run(), sample_result(scale=5.0))  # another process finished first
    assert_result_equal(store.load("train", Run()), sample_result())
    (store.path("train", Run()) / "manifest.json").unlink()
    store.save("train", Run(), sample_result(scale=5.0))
    assert_result_equal(store.load("train", Run()), sample_result(scale=5.0))


def test_losing_the_rename_race_keeps_the_winner(tmp_path, monkeypatch):
    store, rival = Store(tmp_path), Store(tmp_path)
    real_rename = os.rename

    def rival_finishes_first(src, dst):
        monkeypatch.setattr(store_module.os, "rename", real_rename)
        rival.save("train", Run(), sample_result(scale=9.0))
        real_rename(src, dst)

    monkeypatch.setattr(store_module.os, "rename", rival_finishes_first)
    store.save("train", Run(), sample_result())
    assert_result_equal(store.load("train", Run()), sample_result(scale=9.0))
    assert os.listdir(tmp_path / "train") == [config_hash(Run())]


def test_failing_compute_leaves_nothing_and_next_call_computes(tmp_path):
    store = Store(tmp_path)

    def crash():
        raise RuntimeError("killed mid-run")

    with pytest.raises(RuntimeError, match="killed"):
        store.get_or_compute("train", Run(), crash)
    assert not store.exists("train", Run()) and store.computed == 0
    assert_result_equal(store.get_or_compute("train", Run(), sample_result), sample_result())


def test_crash_during_save_leaves_no_visible_result(tmp_path, monkeypatch):
    store = Store(tmp_path)

    def rename_crash(src, dst):
        raise OSError("disk vanished")

    with monkeypatch.context() as patch:
        patch.setattr(store_module.os, "rename", rename_crash)
        with pytest.raises(OSError, match="disk vanished"):
            store.get_or_compute("train", Run(), sample_result)
    assert not store.path("train", Run()).exists()
    assert os.listdir(tmp_path / "train") == []
    result = store.get_or_compute("train", Run(), sample_result)
    assert store.computed == 1
    assert_result_equal(result, sample_result())


def test_crash_while_writing_a_part_leaves_no_visible_result(tmp_path, monkeypatch):
    store = Store(tmp_path)
    written = []

    def write_then_crash(path, data):
        if written:
            raise OSError("killed after the first file")
        written.append(path)
        path.write_bytes(data)

    with monkeypatch.context() as patch:
        patch.setattr(store_module, "_write_synced", write_then_crash)
        with pytest.raises(OSError, match="killed"):
            store.save("train", Run(), sample_result())
    assert not store.exists("train", Run())
    assert os.listdir(tmp_path / "train") == []


def _race_worker(root, barrier, queue):
    store = Store(root)

    def compute():
        barrier.wait(timeout=30)  # both processes compute before either saves
        return sample_result(scale=7.0)

    store.get_or_compute("race", Run(), compute)
    queue.put(store.computed)


def test_concurrent_saves_of_one_key_end_with_one_valid_result(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_race_worker, args=(tmp_path, barrier, queue)) for _ in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in workers) == [1, 1]
    assert os.listdir(tmp_path / "race") == [config_hash(Run())]
    store = Store(tmp_path)
    assert store.exists("race", Run())
    assert_result_equal(store.load("race", Run()), sample_result(scale=7.0))
