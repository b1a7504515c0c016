"""`pipeline.py publish`: the working outputs become the published ones.

Published, under a project root: results/ (`ebnb.published`), figures/, notebooks/executed/
and nbval's references in tests/notebooks/. The root is a parameter, so that tests publish
into a temporary project.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

RESULTS, FIGURES, EXECUTED, NBVAL = "results", "figures", "notebooks/executed", "tests/notebooks"
SPARSE = "full_sparse"  # the profile whose notebook 05 `publish` adds to the full profile's, if executed


class PublishError(ValueError):
    """A publish refused before anything was written (exit status 2)."""


def publish(root: Path, store: Path, out: Path, notebooks: Sequence[str], envs: Sequence[str], nbval: bool) -> None:
    """The store's full-profile results (units it lacks: the published ones) become
    <root>/results/, with the run record of the newest `all` in the store; the executed
    `notebooks` x `envs` and figures of <out>/full/ become notebooks/executed/ and figures/.
    Where notebook 05 was executed at the `full_sparse` profile too (<out>/full_sparse/, every
    env), its sparser tickets and controls join results/, and its notebooks and figures go to
    the `full_sparse` folders of notebooks/executed/ and figures/. With `nbval`, the quick
    notebooks of <out>/quick/ become nbval's references instead. Checks everything first."""
    from ebnb import experiments, published, sweep
    from ebnb.store import Store, config_json

    root = Path(root)
    if nbval:
        _replace_files(_executed_outputs(out / "quick", notebooks, envs), root / NBVAL, "*.ipynb")
        return
    grid = experiments.grid("full")
    cache, current = Store(store), experiments.published_results(root / RESULTS)
    records = [r for r in sorted((cache.root / "runs").glob("*.json")) if computed_all(json.loads(r.read_text()))]
    if not records:
        raise PublishError(f"publish: no record in {cache.root / 'runs'} of a `pipeline.py all` that computed; "
                           "the published results name the run that made them")  # fmt: skip
    executed = _executed_outputs(out / "full", notebooks, envs)
    sparse_notebooks = _executed_sparse(out / SPARSE, envs)
    grid_json = {"grid": json.loads(config_json(grid)), "eb_exploit": experiments.EB_EXPLOIT_DEFAULTS,
                 "eb_exploit_sweep": json.loads(config_json(sweep.DEFAULTS))}
    if sparse_notebooks:  # the same units as `full`, and sparser tickets and their controls
        grid = experiments.grid(SPARSE)
        grid_json[SPARSE] = json.loads(config_json(grid))
    results = {}
    for env in envs:
        for name, step in experiments.steps(env, grid).items():
            results.setdefault(experiments.env_id(step.units[0]), {})[name] = experiments.collect(cache, step, current)
    published.write(root / RESULTS, results, grid_json, json.loads(records[-1].read_text()))
    for folder, paths, to in ((out / "full", executed, ""), (out / SPARSE, sparse_notebooks, SPARSE)):
        if paths:
            figures = sorted(p for p in (folder / "figures").glob("[!.]*") if p.is_file())
            _replace_files(paths, root / EXECUTED / to, "*.ipynb")
            _replace_files(figures, root / FIGURES / to, "[!.]*")
            print(f"[publish] {len(paths)} notebooks and {len(figures)} figure files from {folder}")
    print(f"[publish] results/ from {cache.root} and the run record {records[-1].name}")


def _executed_sparse(folder: Path, envs: Sequence[str]) -> list[Path]:
    """Notebook 05 executed at the `full_sparse` profile for every env, or [] if for none;
    PublishError naming the first one missing if for some."""
    paths = [folder / f"05_controls-{env}.ipynb" for env in envs]
    missing = [p for p in paths if not p.exists()]
    if missing and len(missing) < len(paths):
        raise PublishError(f"publish: {missing[0]} is missing; run `pipeline.py run 05_controls --profile {SPARSE}` "
                           "for every env, or remove the others to publish without the sparser tickets")  # fmt: skip
    return [] if missing else paths


def computed_all(record: dict) -> bool:
    """A run record of `pipeline.py all` (not `all --thesis`) that computed units (not one that
    only loaded them)."""
    return (record.get("command") == "all" and record.get("target", "all") == "all"
            and any(step["computed"] for step in record["steps"]))  # fmt: skip


def _executed_outputs(folder: Path, notebooks: Sequence[str], envs: Sequence[str]) -> list[Path]:
    """Every notebook x env executed in `folder`; PublishError naming the first one missing."""
    paths = [folder / f"{notebook}-{env}.ipynb" for notebook in notebooks for env in envs]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise PublishError(f"publish: {missing[0]} is missing; run the pipeline for that profile first")
    return paths


def _replace_files(sources: list[Path], folder: Path, pattern: str) -> None:
    """Make `folder`'s files matching `pattern` exactly `sources` (copied atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        temporary = folder / f".{source.name}.tmp"
        shutil.copyfile(source, temporary)
        os.replace(temporary, folder / source.name)
    names = {source.name for source in sources}
    for stale in folder.glob(pattern):
        if stale.is_file() and stale.name not in names:
            stale.unlink()
