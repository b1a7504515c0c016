"""tools/mutants.py still applies: every mutant's original text occurs once in its file, and
every test it names exists. (A reformat or a rename that moved a mutant's original would
otherwise turn it into an `error` that nobody runs until the next mutation check.)"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mutants() -> list[dict]:
    spec = importlib.util.spec_from_file_location("mutants", ROOT / "tools" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MUTANTS


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


@pytest.mark.parametrize("mutant", _mutants(), ids=lambda m: m["name"])
def test_the_mutant_applies_to_its_file_and_names_existing_tests(mutant):
    text = (ROOT / mutant["file"]).read_text()
    assert text.count(mutant["original"]) == 1, (
        f"{mutant['name']}: its original is in {mutant['file']} {text.count(mutant['original'])} times"
    )
    for test in mutant["tests"]:
        file, _, name = test.partition("::")
        assert (ROOT / file).is_file(), f"{mutant['name']}: no test file {file}"
        if name:
            assert name.partition("[")[0] in _test_names(ROOT / file), f"{mutant['name']}: no test {test}"


def test_mutant_names_are_unique():
    names = [m["name"] for m in _mutants()]
    assert len(names) == len(set(names))
