"""Run the thesis notebooks through papermill: every notebook x environment, or one of them.

    python pipeline.py all                      # the thesis (full profile): compute, then figures 3.3-3.8
    python pipeline.py quick                    # the same grid at the quick profile (minutes)
    python pipeline.py run 02_retrain --env acrobot -p fractions=[0.2] -p episodes=100
    python pipeline.py list                     # the grid, what is cached and its size on disk
    python pipeline.py compute all --scheduler local   # fill the store only (Dask), no notebooks
    python pipeline.py clean [--keep-figures]   # remove the store and the pipeline's outputs

Executed notebooks go to notebooks/executed/<notebook>-<env>.ipynb and figures to figures/
(quick profile: notebooks/executed/quick/ and figures/quick/); results go to the store
(default store/), named by a hash of their config: a rerun loads what is finished and
computes only what is missing. The kernel is the interpreter running this script (no kernel
registration needed).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent
NOTEBOOKS = ("01_mask_similarity", "02_retrain", "03_finetune", "04_eb_exploit")
# the protocol steps (ebnb.experiments.steps) whose results each notebook reads
NOTEBOOK_STEPS = {
    "01_mask_similarity": ("dense runs",),
    "02_retrain": ("dense runs", "retrain", "winning tickets"),
    "03_finetune": ("dense runs", "retrain", "winning tickets", "finetune"),
    "04_eb_exploit": ("dense runs", "eb_exploit"),
}
EB_EXPLOIT_PARAMETERS = ("xi", "window", "rewind")
ENVS = ("cartpole", "acrobot")
SOURCE = ROOT / "notebooks"
EXECUTED = SOURCE / "executed"


class UsageError(ValueError):
    """Bad command-line input: reported in one line with exit status 2."""


def parse_overrides(pairs: list[str], notebooks: list[str], allowed: set[str] | None = None) -> dict:
    """`name=value` pairs checked against the notebooks' parameters cells (and `allowed`,
    if given); values are Python literals (numbers, lists, True/None) or else strings."""
    import papermill

    declared = set().union(*(papermill.inspect_notebook(str(SOURCE / f"{n}.ipynb")) for n in notebooks))
    if allowed is not None:
        declared &= allowed
    notebook = ", ".join(notebooks)
    overrides = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"-p: expected name=value, got {pair!r}")
        if name not in declared or name in ("env", "profile"):
            allowed = sorted(set(declared) - {"env", "profile"})
            raise UsageError(f"-p {name}: not a parameter of {notebook}; allowed: {', '.join(allowed)}")
        if name in overrides:
            raise UsageError(f"-p {name}: given twice; give each parameter once")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        overrides[name] = list(value) if isinstance(value, tuple) else value  # seeds=0,1 means [0, 1]
    return overrides


def check_overrides(overrides: dict, profile: str) -> None:
    """Grid overrides must make a valid grid before any notebook starts."""
    from ebnb import experiments

    grid_fields = {k: v for k, v in overrides.items() if k in experiments.Grid.__dataclass_fields__}
    eb_exploit = {"xi": 0.1, "window": 2, "rewind": False}
    eb_exploit.update({k: v for k, v in overrides.items() if k in EB_EXPLOIT_PARAMETERS})
    try:
        experiments.grid(profile, **grid_fields)
        experiments.check_eb_exploit(**eb_exploit)
    except ValueError as error:
        raise UsageError(str(error)) from None


def executed_path(notebook: str, env: str, profile: str, root: Path = EXECUTED) -> Path:
    """<root>/<notebook>-<env>.ipynb for the full profile, <root>/<profile>/... otherwise."""
    folder = root if profile == "full" else root / profile
    return folder / f"{notebook}-{env}.ipynb"


def execute(notebook: str, env: str, profile: str, overrides: dict, store: Path | None, out: Path) -> float:
    """Run one notebook for one env; return its wall time in seconds."""
    import papermill
    from traitlets.config import Config

    output = executed_path(notebook, env, profile, out)
    output.parent.mkdir(parents=True, exist_ok=True)
    parameters = {"env": env, "profile": profile, **overrides}
    if store is not None:
        parameters["store_dir"] = str(store.resolve())
    start = time.perf_counter()
    print(f"[pipeline] {notebook} {env} ({profile}) -> {output}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="ebnb-kernel-") as sockets:
            # the kernel talks over Unix sockets in a private folder, not unencrypted TCP on localhost
            ipc = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
            papermill.execute_notebook(str(SOURCE / f"{notebook}.ipynb"), str(output), parameters=parameters,
                                       kernel_name="python3", cwd=str(SOURCE), progress_bar=False, config=ipc)  # fmt: skip
    except papermill.PapermillExecutionError as error:
        raise RuntimeError(
            f"{notebook} ({env}) failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
            f"see the executed notebook {output}"
        ) from None
    finally:
        if output.exists():
            relative_paths(output)
    return time.perf_counter() - start


def relative_paths(executed: Path) -> None:
    """Rewrite the project's absolute paths in an executed notebook (papermill's input and
    output paths, printed figure paths) relative to the project root, so that it reads the
    same whichever machine or folder ran it. Atomic: a temporary file renamed into place."""
    prefix = json.dumps(str(ROOT) + os.sep)[1:-1]  # as it appears inside the notebook's JSON strings
    text = executed.read_text()
    if prefix in text:
        temporary = executed.with_name(executed.name + ".tmp")
        temporary.write_text(text.replace(prefix, ""))
        os.replace(temporary, executed)


def run_grid(notebooks, envs, profile: str, overrides: dict, store: Path | None, out: Path) -> dict:
    """Execute notebooks x envs in order, print and return their wall times."""
    times = {}
    for notebook in notebooks:
        for env in envs:
            times[(notebook, env)] = execute(notebook, env, profile, overrides, store, out)
    print("\n[pipeline] wall time per notebook")
    for (notebook, env), seconds in times.items():
        print(f"  {notebook:<20} {env:<9} {seconds:8.1f} s")
    print(f"  {'total':<30} {sum(times.values()):8.1f} s")
    return times


def list_grid(store: Path | None, out: Path) -> None:
    """The grid (profile x env x notebook) with the cache status and disk size of each
    protocol step, and the store's total size."""
    from ebnb import disk, experiments
    from ebnb.store import Store

    cache = Store(store or experiments.default_store())
    for profile in ("quick", "full"):
        for env in ENVS:
            grid_steps = experiments.steps(env, experiments.PROFILES[profile])
            sizes = disk.result_sizes(cache, {name: (step.kind, step.units) for name, step in grid_steps.items()})
            print(f"{profile:<6} {env}")
            for name, step in grid_steps.items():
                done, size = sizes[name]
                print(f"  {name:<16} {done:>4}/{len(step.units):<4} cached  {disk.human_size(size):>10}")
            executed = [n for n in NOTEBOOKS if executed_path(n, env, profile, out).exists()]
            print(f"  executed notebooks: {', '.join(executed) or 'none'}")
    checkpoints = disk.directory_size(cache.root / "checkpoint")
    print(f"store {cache.root}: {disk.human_size(disk.directory_size(cache.root))} in all, "
          f"{disk.human_size(checkpoints)} of it checkpoints of unfinished shards")  # fmt: skip


def plan_compute(args, store: Path | None):
    """Check `compute`'s arguments and return what to run (nothing is computed yet)."""
    from ebnb import compute, experiments
    from ebnb.checkpoint import Checkpoint
    from ebnb.config import check_positive_int
    from ebnb.envs import resolve_env_id

    notebooks = list(NOTEBOOKS) if args.target == "all" else [args.target]
    if args.target != "all" and args.target not in NOTEBOOKS:
        raise UsageError(f"notebook: unknown {args.target!r}; allowed: all, {', '.join(NOTEBOOKS)}")
    if args.profile not in experiments.PROFILES:
        raise UsageError(f"--profile: unknown {args.profile!r}; allowed: {', '.join(experiments.PROFILES)}")
    envs = args.env or list(ENVS)
    for env in envs:
        resolve_env_id(env)
    allowed = set(experiments.Grid.__dataclass_fields__) | set(EB_EXPLOIT_PARAMETERS)
    overrides = parse_overrides(args.param, notebooks, allowed)
    grid_fields = {k: v for k, v in overrides.items() if k not in EB_EXPLOIT_PARAMETERS}
    eb_exploit = {k: v for k, v in overrides.items() if k in EB_EXPLOIT_PARAMETERS}
    grid = experiments.grid(args.profile, **grid_fields)
    compute.check_scheduler(args.scheduler)
    shard_size = check_positive_int("--shard-size", compute.DEFAULT_SHARD_SIZE if args.shard_size is None else args.shard_size)
    population = check_positive_int("--population", experiments.POPULATION if args.population is None else args.population)
    Checkpoint(None, args.checkpoint_every)
    if args.workers is not None:
        check_positive_int("--workers", args.workers)
    work = compute.plan(envs, {s for n in notebooks for s in NOTEBOOK_STEPS[n]}, grid, population=population,
                        **eb_exploit)  # fmt: skip
    root = store or experiments.default_store()
    workers = 1 if args.scheduler == "inline" else args.workers or os.cpu_count()
    settings = {"command": args.command, "target": args.target, "profile": args.profile, "scheduler": args.scheduler,
                "workers": workers, "population": population, "shard_size": shard_size}  # fmt: skip
    return ComputePlan(work, root, settings, lambda: compute.run(root, work, args.scheduler, shard_size,
                       args.checkpoint_every, progress=True, workers=args.workers))  # fmt: skip


class ComputePlan(NamedTuple):
    """What `compute` will run: (env, step) pairs, the store, the settings for the run
    record, and the call that runs it (yielding shard reports)."""

    work: list
    store: Path
    settings: dict
    run: Callable


def compute_store(plan: ComputePlan) -> dict:
    """Run the shards, one line per finished shard, then write the run record to
    <store>/runs/ and print it as a table; return it."""
    from ebnb import accounting

    checkout, start = accounting.machine(), accounting.now()  # the code that computes is the code at the start
    counts = {"computed": 0, "resumed": 0, "stored before": 0}
    computed, costs = {}, {}
    for env, name, report in plan.run():
        state = "stored before" if not report.computed else "resumed" if report.resumed else "computed"
        counts[state] += 1
        units = "" if state == "stored before" else f" ({report.computed} units)"
        computed[(env, name)] = computed.get((env, name), 0) + report.computed
        if report.cost is not None:
            costs.setdefault((env, name), []).append(report.cost)
        print(f"[compute] {env:<9} {name:<16} shard of {len(report.shard.units):>3} units: {state}{units}", flush=True)
    end = accounting.now()
    print(f"[compute] shards: {counts['computed']} computed, {counts['resumed']} resumed from a checkpoint, "
          f"{counts['stored before']} stored before; {(end - start).total_seconds():.1f} s", flush=True)  # fmt: skip
    steps = [(env, step.name, len(step.units), computed.get((env, step.name), 0), costs.get((env, step.name), []))
             for env, step in plan.work]  # fmt: skip
    record = accounting.run_record(steps, start, end, checkout, **plan.settings)
    path = accounting.write(record, plan.store / "runs")
    print(f"[compute] run record: {path}\n{accounting.table(record)}", flush=True)
    return record


def clean_outputs(store: Path | None, out: Path, figures: Path, keep_figures: bool) -> None:
    """`clean`: delete the store (results and checkpoints), the executed notebooks and,
    unless `keep_figures`, the figures; nothing else."""
    from ebnb import disk, experiments

    targets = {"store": store or experiments.default_store(), "executed notebooks": out}
    if not keep_figures:
        targets["figures"] = figures
    belongs = {
        "store": disk.in_store,
        "executed notebooks": lambda path: path.suffix == ".ipynb",
        "figures": lambda path: path.suffix in (".png", ".pdf") or path.name == ".gitkeep",
    }
    for name, path in targets.items():
        foreign = disk.foreign_files(Path(path), belongs[name])
        if foreign:
            raise UsageError(f"refusing to delete {name} at {path}: it holds files the pipeline did not write, "
                             f"e.g. {foreign[0]}")  # fmt: skip
    for name, freed in disk.clean(targets).items():
        print(f"[clean] {name} ({targets[name]}): {disk.human_size(freed)} removed")


def _profile_and_params(command: argparse.ArgumentParser, profile: str, what: str) -> None:
    command.add_argument("--profile", default=profile, help=f"quick or full (default {profile})")
    command.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                         help=f"override {what} (repeatable), e.g. -p seeds=[0,1]")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="result store directory (default: store/, or $EBNB_STORE)")
    parser.add_argument("--out", default=str(EXECUTED), help="folder for executed notebooks (default: notebooks/executed)")
    parser.add_argument("--force", action="store_true", help="discard the store's cached results first, recompute all")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("all", "every notebook x env, full profile (the thesis)"),
                       ("quick", "every notebook x env, quick profile")):  # fmt: skip
        command = commands.add_parser(name, help=text)
        command.add_argument("--env", choices=ENVS, action="append", help="only this env (repeatable)")
        if name == "all":
            command.add_argument("--scheduler", default="local",
                                 help="how the store is filled before the notebooks run: local (default, a Dask "
                                      "LocalCluster), inline, or tcp://host:port (see compute)")  # fmt: skip
    run = commands.add_parser("run", help="one notebook for one env, with parameter overrides")
    run.add_argument("notebook", help=f"one of: {', '.join(NOTEBOOKS)}")
    run.add_argument("--env", default="cartpole", help=f"{', '.join(ENVS)} (or a gymnasium id)")
    _profile_and_params(run, "quick", "a notebook parameter")
    commands.add_parser("list", help="the grid, its cache status and size on disk")
    compute = commands.add_parser("compute", help="fill the store (shards, checkpoints, Dask); run no notebook")
    compute.add_argument("target", help=f"all, or one of: {', '.join(NOTEBOOKS)} (the results it reads)")
    compute.add_argument("--env", action="append", help=f"{', '.join(ENVS)} or a gymnasium id (repeatable)")
    _profile_and_params(compute, "full", "a grid or EB Exploit parameter")
    compute.add_argument("--scheduler", default="local",
                         help="local (default: a Dask LocalCluster, one worker per core), inline (this process), "
                              "or tcp://host:port of a Dask scheduler; the store must be shared by the workers")  # fmt: skip
    compute.add_argument("--workers", type=int, help="LocalCluster workers (default: one per core)")
    compute.add_argument("--shard-size", type=int, help="units of work per shard (default: ebnb.compute.DEFAULT_SHARD_SIZE)")
    compute.add_argument("--population", type=int,
                         help="most tickets training at once in a shard (default: ebnb.experiments.POPULATION); "
                              "changes speed, never results")  # fmt: skip
    compute.add_argument("--checkpoint-every", type=float, default=120.0,
                         help="seconds between checkpoints of a running shard (default 120)")  # fmt: skip
    clean = commands.add_parser("clean", help="remove the store, executed notebooks and figures")
    clean.add_argument("--keep-figures", action="store_true", help="keep the figures")
    clean.add_argument("--figures", default=str(ROOT / "figures"), help="the figures folder (default: figures/)")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    store = Path(args.store) if args.store else None
    try:
        for option, value in (("--store", args.store), ("--out", args.out)):
            if value is not None and not value.strip():
                raise UsageError(f"{option}: empty path; give a directory")
        if args.command == "list":
            list_grid(store, Path(args.out))
            return 0
        if args.command == "clean":
            clean_outputs(store, Path(args.out), Path(args.figures), args.keep_figures)
            return 0
        if args.command == "compute":
            runs = plan_compute(args, store)
        elif args.command == "run":
            if args.notebook not in NOTEBOOKS:
                raise UsageError(f"notebook: unknown {args.notebook!r}; allowed: {', '.join(NOTEBOOKS)}")
            if args.profile not in ("quick", "full"):
                raise UsageError(f"--profile: unknown {args.profile!r}; allowed: quick, full")
            from ebnb.envs import resolve_env_id

            resolve_env_id(args.env)
            overrides = parse_overrides(args.param, [args.notebook])
            check_overrides(overrides, args.profile)
            plan = ([args.notebook], [args.env], args.profile, overrides)
        else:
            plan = (NOTEBOOKS, args.env or ENVS, "full" if args.command == "all" else "quick", {})
            if args.command == "all":  # fill the store first (shards in parallel), then the notebooks load
                compute_all = argparse.Namespace(command="all", target="all", profile="full", env=args.env, param=[],
                                                 scheduler=args.scheduler, workers=None, shard_size=None,
                                                 population=None, checkpoint_every=120.0)  # fmt: skip
                runs = plan_compute(compute_all, store)
        if args.force:
            from ebnb import disk
            from ebnb.experiments import default_store

            disk.clean({"store": store or default_store()})
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        started = time.perf_counter()
        if args.command in ("compute", "all"):
            record = compute_store(runs)
        if args.command != "compute":
            times = run_grid(*plan, store, Path(args.out))
        if args.command == "all":
            from ebnb import accounting

            record["notebooks"] = [{"notebook": n, "env": e, "wall_s": round(t, 1)} for (n, e), t in times.items()]
            record["all_wall_s"] = round(time.perf_counter() - started, 1)
            path = accounting.write(record, runs.store / "runs")
            print(f"\n[pipeline] all: {record['all_wall_s']:.0f} s wall, {record['wall_s']:.0f} s of it computing; "
                  f"run record {path}\n{accounting.table(record)}")  # fmt: skip
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
