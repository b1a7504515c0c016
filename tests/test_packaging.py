"""The install files agree: pyproject declares what the code imports, the lock pins it, conda and CI install it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def normalise(name: str) -> str:
    """A distribution name per PEP 503: lowercase, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[normalise(name)] = version
    return pins


def third_party_imports(path: Path) -> list[tuple[str, int]]:
    """(top-level name, line) of every absolute import in `path`, at any depth, bar the stdlib and ebnb."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.partition(".")[0]
            if top != "ebnb" and top not in sys.stdlib_module_names:
                found.append((top, node.lineno))
    return found


def test_lock_pins_torch_2_13_0_without_a_local_label():
    assert lock_pins()["torch"] == "2.13.0"


def test_every_dependency_range_is_met_by_the_lock():
    pins = lock_pins()
    requirements = project()["dependencies"] + project()["optional-dependencies"]["test"]
    for text in requirements:
        requirement = Requirement(text)
        name = normalise(requirement.name)
        assert name in pins, f"{name} is a dependency but not pinned in requirements.lock"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {requirement}"


def test_every_third_party_import_of_the_package_and_pipeline_is_a_declared_dependency():
    declared = {normalise(Requirement(text).name) for text in project()["dependencies"]}
    distributions = packages_distributions()
    sources = sorted((ROOT / "ebnb").rglob("*.py")) + [ROOT / "pipeline.py"]
    missing = []
    for path in sources:
        for top, line in third_party_imports(path):
            # an import name with no installed distribution is looked up under its own name
            if not declared & {normalise(d) for d in distributions.get(top, [top])}:
                dists = ", ".join(distributions.get(top, [])) or "no installed distribution"
                missing.append(f"import {top} ({dists}) in {path.relative_to(ROOT)}:{line}")
    assert not missing, "not in pyproject's [project] dependencies:\n" + "\n".join(missing)


def test_environment_yml_installs_the_lock_and_the_package_on_python_3_11():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.11\s*$", text, re.MULTILINE)
    assert re.search(r"^\s*-\s*pip\s*$", text, re.MULTILINE)
    assert re.search(r"^\s*-\s*-r requirements\.lock\s*$", text, re.MULTILINE)
    assert re.search(r"^\s*-\s*-e \.\s*$", text, re.MULTILINE)


def test_ci_installs_from_the_lock_and_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "-r requirements.lock" in ci
    test_command = re.search(r"^python -m pytest.*$", ci, re.MULTILINE).group(0)
    assert test_command in readme


def test_every_subpackage_of_ebnb_is_installed():
    """A wheel (not only an editable install) carries every package of the source tree."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ebnb").rglob("__init__.py")}
    assert found <= listed, f"not in [tool.setuptools] packages: {sorted(found - listed)}"
