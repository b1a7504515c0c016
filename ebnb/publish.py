"""`pipeline.py publish`: the working outputs become the published ones, in one transaction.

Published, under a project root: results/ (`ebnb.published`; the full profile's units and
those of the side profiles of `SIDE_PROFILES`), figures/, notebooks/executed/ and nbval's
references in tests/notebooks/. results/manifest.json lists the sha256 of every
file of all four (``files``: results/; ``published``: the others), so that `verify` can tell
whether the tree is one complete set.

A publish replaces the folders all at once or not at all (`ebnb.transaction`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from ebnb import transaction
from ebnb.side_profiles import SIDE_PROFILES

RESULTS, FIGURES, EXECUTED, NBVAL = "results", "figures", "notebooks/executed", "tests/notebooks"


class PublishError(ValueError):
    """A publish refused before anything was written (exit status 2)."""


def verify(root: Path) -> list[str]:
    """How the published tree at `root` differs from results/manifest.json: files missing,
    changed, or not listed (none: the tree is exactly the set the manifest describes)."""
    from ebnb.published import MANIFEST
    from ebnb.store import file_entry

    manifest = json.loads((Path(root) / RESULTS / MANIFEST).read_text())
    listed = {RESULTS: manifest["files"], **manifest.get("published", {})}
    problems = []
    for target, files in listed.items():
        found = _files(Path(root) / target)
        found.pop(MANIFEST, None) if target == RESULTS else None
        problems += [f"{target}/{name}: missing" for name in files if name not in found]
        problems += [f"{target}/{name}: not listed" for name in found if name not in files]
        problems += [
            f"{target}/{name}: changed"
            for name, data in found.items()
            if name in files and file_entry(data) != files[name]
        ]
    return sorted(problems)


def _files(folder: Path) -> dict[str, bytes]:
    """{path relative to `folder`: bytes} of every file below it ({} if it does not exist)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def publish(root: Path, store: Path, out: Path, notebooks: Sequence[str], envs: Sequence[str], nbval: bool) -> None:
    """The store's full-profile results (units it lacks: the published ones) become
    <root>/results/, with the full run's record (the published one if the store adds none of
    its units, else that of the newest `all` in the store that computed); the executed
    `notebooks` x `envs` and figures of <out>/full/ become notebooks/executed/ and figures/.
    Each side profile (`SIDE_PROFILES`) whose units are all in the store or published, or whose
    notebooks are executed in <out>/<profile>/ for every env it is defined for (`Side.envs`), joins them: its units the tables
    of results/ (by config hash, each once), its grid the manifest, the records of runs at it
    that computed results/run_records/<profile>.json, its notebooks and figures the
    <profile>/ folders of notebooks/executed/ and figures/. If the results equal the published
    ones (nothing new was computed), results/ stays as it is. With `nbval`, the quick notebooks
    of <out>/quick/ become nbval's references instead. Checks everything first
    (PublishError), then replaces all the folders or none (RuntimeError if the machine fails
    it)."""
    from ebnb import published

    root = Path(root)
    with transaction.locked(root):
        transaction.recover_locked(root)
        if nbval:
            executed = _finished(_executed_outputs(out / "quick", notebooks, envs), "pipeline.py quick")
            targets = {NBVAL: _mirrored(root / NBVAL, {"": executed})}
            files, manifest = _current_results(root)
            if files is not None:
                targets[RESULTS] = files
            results, said = None, [f"[publish] {len(executed)} notebooks from {out / 'quick'} to {NBVAL}/"]
        else:
            targets, manifest, results, said = _published_outputs(root, Path(store), out, notebooks, envs)
        if manifest is not None:
            targets[RESULTS][published.MANIFEST] = manifest_bytes(root, targets, manifest)
        try:
            transaction.transact(
                root, targets, None if results is None else lambda new: published.check_readback(new / RESULTS, results)
            )
        except OSError as error:
            then = (
                "the next pipeline command completes it"
                if (root / transaction.JOURNAL).exists()
                else "nothing published changed; publish again"
            )
            raise RuntimeError(f"publish failed: {error}; {then}") from None
        problems = verify(root) if manifest is not None else []
    if problems:
        raise RuntimeError(f"publish: the published tree does not match {RESULTS}/manifest.json: {problems[0]}")
    print("\n".join(said))


RUN_RECORDS = "run_records"  # results/run_records/<side profile>.json: the records of the runs that computed its units


def _published_outputs(root: Path, store: Path, out: Path, notebooks: Sequence[str], envs: Sequence[str]):
    """(targets, manifest without its `published` part, results, lines to print) of a full
    publish; PublishError if an input is missing or unfinished."""
    from ebnb import experiments, published, sweep
    from ebnb.store import Store, config_json, file_entry

    executed = {"": _finished(_executed_outputs(out / "full", notebooks, envs), "pipeline.py all")}
    cache, current = Store(store), experiments.published_results(root / RESULTS)
    results: dict = {}
    new: dict[str, int] = {}  # profile: units the store holds that the published results lack or hold otherwise
    grid_json = {
        "grid": _grid_json(experiments.grid("full")),
        "eb_exploit": experiments.EB_EXPLOIT_DEFAULTS,
        "eb_exploit_sweep": json.loads(config_json(sweep.DEFAULTS)),
    }
    full = {env: list(experiments.steps(env, experiments.grid("full")).values()) for env in envs}
    owned = _keys(s for steps in full.values() for s in steps)  # the full profile's units
    chosen, left = {}, {}  # the side profiles published, and those left out: {profile: {env: steps}}
    for profile, side in SIDE_PROFILES.items():
        ran = _executed_side(out / profile, profile, side.notebooks, [env for env in envs if side.runs_on(env)])
        wanted = {env: side.steps(env, cache, current) for env in envs}
        if ran or all(w is not None and experiments.available(cache, w, current) for w in wanted.values()):
            chosen[profile] = wanted
            if ran:
                executed[profile] = _finished(ran, f"pipeline.py run NOTEBOOK --env ENV --profile {profile}")
        else:
            left[profile] = wanted
    claimed = owned | _keys(s for wanted in chosen.values() for steps in wanted.values() for s in steps or ())
    for profile, wanted in left.items():
        _check_unstarted(cache, profile, wanted, claimed)
    for profile, wanted in chosen.items():  # a unit two side profiles share counts for the first
        for env, steps in wanted.items():
            if steps is None:
                raise PublishError(
                    f"publish: {profile} needs the full profile's sweep ({env}), which is neither in the "
                    "store nor published"
                )
            new[profile] = new.get(profile, 0) + _gather(results, cache, steps, current, owned)
            owned = owned | _keys(steps)
        grid_json[profile] = _grid_json(experiments.grid(profile))
    new["full"] = sum(_gather(results, cache, steps, current, set()) for steps in full.values())
    files, layout = published.tables(results)
    figures = {
        to: sorted(p for p in (out / (to or "full") / "figures").glob("[!.]*") if p.is_file()) for to in executed
    }
    said = [
        f"[publish] {len(executed[to])} notebooks and {len(figures[to])} figure files from {out / (to or 'full')}"
        for to in executed
    ]
    previous, _ = _current_results(root)
    previous = previous or {}
    record = _full_record(cache, current, new["full"], said)
    files[published.RUN_RECORD] = (
        previous.get(published.RUN_RECORD) if not new["full"] and previous else (published.record_bytes(record))
    )
    side_records = {}
    for profile in (p for p in SIDE_PROFILES if p in grid_json):
        name = f"{RUN_RECORDS}/{profile}.json"
        records = _side_records(cache, profile, previous.get(name), new.get(profile, 0), said)
        if records:
            files[name] = (json.dumps(records, indent=2) + "\n").encode()
            side_records[profile] = name
    kept = (
        current is not None
        and current.manifest["grid"] == grid_json
        and {n: file_entry(d) for n, d in files.items()} == current.manifest["files"]
    )
    if kept:
        files, manifest = _current_results(root)
        said.append(f"[publish] {RESULTS}/ kept: the store holds nothing the published results lack")
    else:
        manifest = {
            **published.manifest(files, layout, results, grid_json, record),
            **({RUN_RECORDS: side_records} if side_records else {}),
        }
        said.append(f"[publish] {RESULTS}/: " + ", ".join(f"{n} new units of {p}" for p, n in new.items()))
    targets = {
        RESULTS: files,
        EXECUTED: _mirrored(root / EXECUTED, executed),
        FIGURES: _mirrored(root / FIGURES, figures),
    }
    return targets, manifest, results, said


def _grid_json(g) -> dict:
    """A published grid as the manifest describes it: its whole config, less each field of
    `LATER_FIELDS` while it is unset (`dqn` overriding nothing, `imp` off), so a manifest
    reads the same as before the field existed."""
    from ebnb.experiments.grids import LATER_FIELDS
    from ebnb.store import config_json

    described = json.loads(config_json(g))
    for name in LATER_FIELDS:
        if not getattr(g, name):
            del described[name]
    return described


def _keys(steps) -> set[tuple[str, str]]:
    """{(step name, store key)} of the steps' units. A unit of a side profile with the key of
    a full-profile unit (powered's seeds 0-9, which record fewer P) is that unit's store entry."""
    from ebnb.store import config_hash

    return {(step.name, config_hash(u)) for step in steps for u in step.units}


def _gather(results: dict, cache, steps: list, current, owned: set) -> int:
    """Add every unit of `steps` (from the store, else `current`) to `results` ({env id:
    {step: {unit: view}}}, a unit listed once); return how many of those not in `owned` the
    store holds and `current` lacks or holds otherwise (PublishError if a unit is in neither)."""
    from ebnb import experiments
    from ebnb.store import config_hash

    count = 0
    for step in steps:
        try:
            views = experiments.collect(cache, step, current)
        except ValueError as error:
            raise PublishError(f"publish: {experiments.env_id(step.units[0])} {error}") from None
        stored = [u for u in step.units if (step.name, config_hash(u)) not in owned and cache.exists(step.kind, u)]
        held = current.parts(experiments.env_id(step.units[0]), step.name, stored) if current and stored else {}
        held = {u: experiments.narrowed(step.name, u, parts) for u, parts in held.items()}
        count += sum(held.get(u) is None or not _same(views[u], held[u]) for u in stored)
        table = results.setdefault(experiments.env_id(step.units[0]), {}).setdefault(step.name, {})
        first = {config_hash(u): u for u in table}  # a key once: e.g. powered's dense runs record fewer P than full's
        for u, view in views.items():
            kept = first.setdefault(config_hash(u), u)
            if kept is u:
                table[u] = view
            elif experiments.narrowed(step.name, u, table[kept]) is None:
                raise PublishError(f"publish: {step.name} {u} records more than the unit of its key listed before it")
    return count


def _same(a: dict, b: dict) -> bool:
    """Whether two published views of a unit are equal (same parts, dtypes and values)."""
    import numpy as np
    import pandas as pd

    if a.keys() != b.keys():
        return False
    for part, value in a.items():
        other = b[part]
        if isinstance(value, pd.DataFrame):
            if not (isinstance(other, pd.DataFrame) and value.dtypes.equals(other.dtypes) and value.equals(other)):
                return False
        elif value.keys() != other.keys() or not all(
            value[k].dtype == other[k].dtype
            and np.array_equal(value[k], other[k], equal_nan=value[k].dtype.kind == "f")
            for k in value
        ):
            return False
    return True


def _check_unstarted(cache, profile: str, wanted: dict, claimed: set) -> None:
    """A side profile left out: PublishError if the store holds some of its own units (not
    `claimed` by the full profile or a side profile published: a computation left half
    done), else nothing."""
    from ebnb.store import config_hash

    for env, steps in wanted.items():
        for step in steps or ():
            if any((step.name, config_hash(u)) not in claimed and cache.exists(step.kind, u) for u in step.units):
                raise PublishError(
                    f"publish: the store holds some of {profile}'s units but not all ({env} {step.name}"
                    f" lacks some); compute the rest (pipeline.py compute ... --profile {profile}), or "
                    "publish from a store without them"
                )


def _full_record(cache, current, new: int, said: list) -> dict:
    """The full profile's run record: the published one if the store adds nothing to its
    units, else the newest `all` in the store that computed (PublishError if none)."""
    if not new and current is not None:
        return json.loads((current.root / current.manifest["run_record"]).read_text())
    records = [r for r in sorted((cache.root / "runs").glob("*.json")) if computed_all(json.loads(r.read_text()))]
    if not records:
        raise PublishError(
            f"publish: no record in {cache.root / 'runs'} of a `pipeline.py all` that computed; "
            "the published results name the run that made them"
        )
    said.append(f"[publish] the full profile's run record: {records[-1].name}")
    return json.loads(records[-1].read_text())


def _side_records(cache, profile: str, published_bytes: bytes | None, new: int, said: list) -> list[dict]:
    """A side profile's run records: those published before, and if the store adds to its
    units, every record in the store of a run at that profile that computed (PublishError if
    none); one per start time, in order."""
    records = {r["start"]: r for r in json.loads(published_bytes)} if published_bytes else {}
    if new:
        found = [json.loads(p.read_text()) for p in sorted((cache.root / "runs").glob("*.json"))]
        found = [r for r in found if r.get("profile") == profile and any(s["computed"] for s in r["steps"])]
        if not found:
            raise PublishError(
                f"publish: the store holds {new} units of {profile} but no record in "
                f"{cache.root / 'runs'} of a run at profile {profile} that computed"
            )
        records.update((r["start"], r) for r in found)
        said.append(f"[publish] {profile}'s run records: {len(found)} from {cache.root / 'runs'}")
    return [records[start] for start in sorted(records)]


def _current_results(root: Path) -> tuple[dict[str, bytes] | None, dict | None]:
    """(files but the manifest, manifest) of the published results as they are (None, None if
    there are none); PublishError naming a file that does not match the manifest."""
    from ebnb.published import MANIFEST

    if not (root / RESULTS / MANIFEST).exists():
        return None, None
    manifest = json.loads((root / RESULTS / MANIFEST).read_text())
    files = _files(root / RESULTS)
    files.pop(MANIFEST)
    damaged = [p for p in verify(root) if p.startswith(f"{RESULTS}/")]
    if damaged:
        raise PublishError(
            f"publish: {root / damaged[0].split(':')[0]} does not match {RESULTS}/{MANIFEST} "
            f"({damaged[0].split(': ')[1]}); restore it (git checkout {RESULTS}/) first"
        )
    return files, manifest


def manifest_bytes(root: Path, targets: Mapping[str, Mapping[str, bytes]], manifest: dict) -> bytes:
    """results/manifest.json: `manifest` with the sha256 of every file of figures/,
    notebooks/executed/ and tests/notebooks/ as they will be (those not replaced: as listed
    before, or as they are if they were not listed)."""
    from ebnb.store import file_entry

    listed = manifest.get("published", {})
    section = {}
    for target in (FIGURES, EXECUTED, NBVAL):
        if target in targets:
            section[target] = {name: file_entry(data) for name, data in sorted(targets[target].items())}
        elif target in listed or (root / target).exists():
            section[target] = listed.get(target) or {n: file_entry(d) for n, d in _files(root / target).items()}
    return (json.dumps({**manifest, "published": section}, indent=2) + "\n").encode()


def _mirrored(live: Path, replaced: Mapping[str, Sequence[Path]]) -> dict[str, bytes]:
    """The new content of the folder `live`: its files as they are, except the visible ones
    directly in each subfolder `replaced` names ("": `live` itself), which become the files
    listed for it."""

    def replaced_here(name: str) -> bool:
        parent = Path(name).parent
        return ("" if parent == Path(".") else str(parent)) in replaced and not Path(name).name.startswith(".")

    files = {name: data for name, data in _files(live).items() if not replaced_here(name)}
    for to, sources in replaced.items():
        files.update({str(Path(to) / source.name): source.read_bytes() for source in sources})
    return files


def _finished(paths: list[Path], rerun: str) -> list[Path]:
    """`paths`, each an executed notebook that ran to its end; else PublishError naming it."""
    for path in paths:
        problem = _unfinished(path)
        if problem:
            raise PublishError(f"publish: {path} did not finish ({problem}); rerun `{rerun}`, then publish")
    return paths


def _unfinished(path: Path) -> str | None:
    """Why the executed notebook at `path` is not a complete run (None if it is): papermill's
    end time missing or an exception recorded, a cell not completed, an error output."""
    try:
        notebook = json.loads(path.read_bytes())
        run = notebook["metadata"]["papermill"]
    except (ValueError, KeyError, TypeError):
        return "no papermill metadata: not a notebook the pipeline executed"
    if not run.get("end_time"):
        return "papermill's end_time is empty: the run was interrupted"
    if run.get("exception"):
        return "papermill recorded an exception"
    for number, cell in enumerate(notebook.get("cells", []), 1):
        if cell.get("cell_type") == "code":
            status = cell.get("metadata", {}).get("papermill", {}).get("status", "completed")
            if status != "completed":
                return f"cell {number} is {status}"
            if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
                return f"cell {number} has an error output"
    return None


def _executed_side(folder: Path, profile: str, notebooks: Sequence[str], envs: Sequence[str]) -> list[Path]:
    """`notebooks` executed at the side `profile` in `folder` for every env, or [] if for none;
    PublishError naming the first one missing if for some."""
    paths = [folder / f"{notebook}-{env}.ipynb" for notebook in notebooks for env in envs]
    missing = [p for p in paths if not p.exists()]
    if missing and len(missing) < len(paths):
        raise PublishError(
            f"publish: {missing[0]} is missing; run `pipeline.py run {missing[0].stem.rsplit('-', 1)[0]} "
            f"--profile {profile}` for every env, or remove the others to publish without them"
        )
    return [] if missing else paths


def computed_all(record: dict) -> bool:
    """A run record of `pipeline.py all` (not `all --thesis`) that computed units (not one that
    only loaded them)."""
    return (
        record.get("command") == "all"
        and record.get("target", "all") == "all"
        and any(step["computed"] for step in record["steps"])
    )


def _executed_outputs(folder: Path, notebooks: Sequence[str], envs: Sequence[str]) -> list[Path]:
    """Every notebook x env executed in `folder`; PublishError naming the first one missing."""
    paths = [folder / f"{notebook}-{env}.ipynb" for notebook in notebooks for env in envs]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise PublishError(f"publish: {missing[0]} is missing; run the pipeline for that profile first")
    return paths
