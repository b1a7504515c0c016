"""The install files agree: pyproject's ranges, the lock's pins, environment.yml, .ci/run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_lock_pins_torch_2_13_0_without_a_local_label():
    assert lock_pins()["torch"] == "2.13.0"


def test_every_dependency_range_is_met_by_the_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = lock_pins()
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    for text in requirements:
        requirement = Requirement(text)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{name} is a dependency but not pinned in requirements.lock"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {requirement}"


def test_environment_yml_installs_the_lock_and_the_package_on_python_3_11():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.11\s*$", text, re.M)
    assert re.search(r"^\s*-\s*pip\s*$", text, re.M)
    assert re.search(r"^\s*-\s*-r requirements\.lock\s*$", text, re.M)
    assert re.search(r"^\s*-\s*-e \.\s*$", text, re.M)


def test_ci_installs_from_the_lock_and_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "-r requirements.lock" in ci
    test_command = re.search(r"^python -m pytest.*$", ci, re.M).group(0)
    assert test_command in readme
