"""What names a result (`ebnb.identity`): kind names, defaults left out, recorded fields; a
stored result that records more serves a request for less (`ebnb.store`), and old-keyed
stores move to the current keys (`ebnb.rekey`)."""

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from ebnb import experiments, ownership, rekey
from ebnb.identity import RECORDED, config_hash, config_json, covers, kind
from ebnb.store import Store


@kind("trial")
@dataclass(frozen=True)
class Trial:
    seed: int
    fractions: tuple[float, ...] = field(metadata=RECORDED)
    lr: float = 0.01


@kind("trial")
@dataclass(frozen=True)
class RenamedTrial:  # Trial, renamed
    seed: int
    fractions: tuple[float, ...] = field(metadata=RECORDED)
    lr: float = 0.01


@kind("trial")
@dataclass(frozen=True)
class TrialWithOption:  # Trial with a new option, at its default
    seed: int
    fractions: tuple[float, ...] = field(metadata=RECORDED)
    lr: float = 0.01
    dueling: bool = False


@kind("of_trial")
@dataclass(frozen=True)
class OfTrial:
    trial: Trial
    mode: str


def test_the_kind_name_not_the_class_name_enters_the_hash():
    assert config_hash(RenamedTrial(3, (0.2,))) == config_hash(Trial(3, (0.2,)))

    @dataclass(frozen=True)
    class Unnamed:
        seed: int = 0

    with pytest.raises(ValueError, match="Unnamed has no kind"):
        config_hash(Unnamed())
    with pytest.raises(ValueError, match="has no kind"):
        config_hash({"run": Unnamed()})


def test_a_new_option_at_its_default_rekeys_nothing_and_any_other_value_does():
    assert config_hash(TrialWithOption(3, (0.2,))) == config_hash(Trial(3, (0.2,)))
    assert config_hash(TrialWithOption(3, (0.2,), dueling=True)) != config_hash(Trial(3, (0.2,)))
    assert config_hash(Trial(3, (0.2,), lr=0.02)) != config_hash(Trial(3, (0.2,)))
    assert config_hash(Trial(3, (0.2,), lr=1)) != config_hash(Trial(3, (0.2,), lr=1.0)), "1 and 1.0 differ"
    assert '"lr":0.01' in config_json(Trial(3, (0.2,))), "config.json records every field"


def test_recorded_fields_name_nothing_at_any_depth():
    assert config_hash(Trial(3, (0.2,))) == config_hash(Trial(3, (0.2, 0.4)))
    assert config_hash(OfTrial(Trial(3, (0.2,)), "a")) == config_hash(OfTrial(Trial(3, (0.8,)), "a"))
    assert config_hash(Trial(4, (0.2,))) != config_hash(Trial(3, (0.2,)))


def test_a_record_covers_a_config_recording_less_and_not_more():
    record = json.loads(config_json(Trial(3, (0.2, 0.4))))
    assert covers(record, Trial(3, (0.4,))) and covers(record, Trial(3, (0.4, 0.2)))
    assert not covers(record, Trial(3, (0.2, 0.6)))
    assert covers(record, OfTrial(Trial(3, (0.8,)), "a")), "a nested config's records do not count"


def _result(config) -> dict:
    return {"masks": {f"P{p}": np.full(2, p) for p in config.fractions}, "log": pd.DataFrame({"seed": [config.seed]})}


def test_a_stored_result_serves_a_request_for_less_and_one_for_more_is_widened(tmp_path):
    store = Store(tmp_path)
    store.save("trial", Trial(3, (0.2, 0.4)), _result(Trial(3, (0.2, 0.4))))
    assert store.exists("trial", Trial(3, (0.4,)))
    assert list(store.load("trial", Trial(3, (0.4,)))["masks"]) == ["P0.2", "P0.4"]
    wider = Trial(3, (0.6,))
    assert not store.exists("trial", wider)
    with pytest.raises(FileNotFoundError, match="records less"):
        store.load("trial", wider)
    widened = store.widened("trial", [wider, Trial(3, (0.8,)), Trial(5, (0.2,))])
    assert widened == [Trial(3, (0.2, 0.4, 0.6, 0.8)), Trial(5, (0.2, 0.4, 0.6, 0.8))], (
        "one per key, each recording the union of all: units trained together record alike"
    )
    store.save("trial", widened[0], _result(widened[0]))
    assert all(store.exists("trial", Trial(3, (p,))) for p in (0.2, 0.4, 0.6, 0.8)), "replaced, nothing lost"
    narrower = Trial(3, (0.2,))
    store.save("trial", narrower, _result(narrower))
    assert store.exists("trial", Trial(3, (0.8,))), "a result recording more is not replaced by one recording less"


def test_a_dense_run_recording_more_P_serves_a_grid_asking_for_fewer():
    full, fewer = experiments.grid("full"), experiments.grid("full", fractions=[0.2])
    assert [config_hash(u) for u in experiments.dense_units("cartpole", fewer)] == [
        config_hash(u) for u in experiments.dense_units("cartpole", full)
    ]
    tickets = experiments.steps("cartpole", full)["retrain"].units
    assert {config_hash(u) for u in experiments.steps("cartpole", fewer)["retrain"].units} <= {
        config_hash(u) for u in tickets
    }
    more_tests = experiments.grid("full", test_episodes=200)
    assert config_hash(experiments.dense_units("cartpole", more_tests)[0]) != config_hash(
        experiments.dense_units("cartpole", full)[0]
    ), "the mean test return is over test_episodes"


def test_an_old_keyed_store_moves_to_the_current_keys_byte_for_byte(tmp_path):
    root = tmp_path / "store"
    store = Store(root)
    unit = experiments.dense_units("cartpole", experiments.grid("quick"))[0]
    new = store.save("dense", unit, _result(unit))
    old = root / "dense" / rekey.legacy_hash(unit)
    new.rename(old)  # as the old scheme stored it: its key, its config.json
    legacy = json.dumps(rekey._legacy(unit), sort_keys=True, indent=2) + "\n"
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "config.json").write_text(legacy)
    manifest["files"]["config.json"] = {
        "sha256": hashlib.sha256(legacy.encode()).hexdigest(),
        "size": len(legacy.encode()),
    }
    (old / "manifest.json").write_text(json.dumps(manifest))
    parts = {p.name: p.read_bytes() for p in old.iterdir() if p.name not in ("config.json", "manifest.json")}
    assert not store.exists("dense", unit)
    assert ownership.kind_of(root) == "store"
    report = rekey.store(root)
    assert report == {"moved": [f"dense/{old.name} -> {config_hash(unit)}"], "kept": []}
    assert not old.exists() and store.exists("dense", unit)
    assert {n: (new / n).read_bytes() for n in parts} == parts
    assert rekey.store(root) == {"moved": [], "kept": []}, "repeatable"


def test_rekeying_refuses_a_folder_that_is_not_a_store(tmp_path):
    (tmp_path / "mine.txt").write_text("not a result")
    with pytest.raises(ValueError, match="not a store"):
        rekey.store(tmp_path)
    assert (tmp_path / "mine.txt").exists()
