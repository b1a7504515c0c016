"""Run the thesis notebooks through papermill: every notebook x environment, or one of them.

    python pipeline.py all                      # every notebook (full profile): compute what is missing, then the figures
    python pipeline.py all --thesis             # only the thesis' notebooks 01-04: figures 3.3-3.8
    python pipeline.py quick                    # the same grid at the quick profile (minutes)
    python pipeline.py run 02_retrain --env acrobot -p fractions=[0.2] -p episodes=100
    python pipeline.py run 02_retrain --arithmetic torch --dqn lr=0.001   # how the agents train
    python pipeline.py quick --device cuda      # on a GPU (torch arithmetic): docs/exactness.md
    python pipeline.py list                     # the grid, what is cached and its size on disk
    python pipeline.py compute all --scheduler local   # fill the store only (Dask), no notebooks
    python pipeline.py publish [--nbval]        # make the working outputs the published ones
    python pipeline.py report                   # a static HTML site of the published outputs
    python pipeline.py clean                    # remove the store and the working outputs

Each run writes its executed notebooks to outputs/<run>/<notebook>-<env>.ipynb and its figures
to outputs/<run>/figures/, <run> naming the profile and the overrides (e.g. full, quick,
full-seeds=0_1); outputs/ is a working folder, not committed. Results go to the store (default
store/), named by a hash of their config: a rerun loads what is finished and computes only what
is missing. Units the store lacks are taken from the published results in results/ where their
config hashes match (--recompute: computed instead). What is published (results/, figures/,
notebooks/executed/, and nbval's references in tests/notebooks/) changes only by `publish`.
The kernel is the interpreter running this script (no kernel registration needed).
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
NOTEBOOKS = ("01_mask_similarity", "02_retrain", "03_finetune", "04_eb_exploit", "05_controls", "06_eb_exploit_sweep")
THESIS = NOTEBOOKS[:4]  # figures 3.3-3.8; 05 and 06 go beyond the thesis


def declared_steps(path: Path) -> tuple[str, ...]:
    """The protocol steps (`ebnb.experiments.STEP_NAMES`) whose results the notebook at `path`
    reads, as its setup call declares them: ``notebook.setup(..., steps=(...))``."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "setup":
                    for keyword in node.keywords:
                        if keyword.arg == "steps":
                            return tuple(ast.literal_eval(keyword.value))
    raise ValueError(f"{path.name}: its notebook.setup(...) call declares no steps=(...)")


EB_EXPLOIT_PARAMETERS = ("xi", "window", "rewind", "xis", "windows", "detectors", "starts")  # the last four: its sweep
ENVS = ("cartpole", "acrobot")
SOURCE = ROOT / "notebooks"
# the steps each notebook reads, which the pipeline computes before it runs
NOTEBOOK_STEPS = {notebook: declared_steps(SOURCE / f"{notebook}.ipynb") for notebook in NOTEBOOKS}
PUBLISHED_NOTEBOOKS = SOURCE / "executed"
PUBLISHED_FIGURES = ROOT / "figures"
NOTEBOOK_OPTIONS = ("store_dir", "figures_dir", "use_published")
FOLDER_OPTIONS = {  # the pipeline sets these two itself, so that it and the notebooks use the same folders
    "store_dir": "-p store_dir: give the pipeline --store DIR instead (it fills that store, then the notebooks read it)",
    "figures_dir": "-p figures_dir: give the pipeline --out DIR instead (figures go to DIR/<run>/figures)",
}
RUN_OPTIONS = ("device", "arithmetic", "dqn")  # notebook parameters the pipeline takes as options of its own


class UsageError(ValueError):
    """Bad command-line input: reported in one line with exit status 2."""


def _literal(text: str):
    """`text` as a Python literal (number, list, True/None, quoted string), else as it is."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(pairs: list[str], notebooks: list[str], allowed: set[str] | None = None) -> dict:
    """`name=value` pairs checked against the notebooks' parameters cells (and `allowed`,
    if given); values are Python literals (numbers, lists, True/None) or else strings; a
    bracketed list of bare words, as a shell leaves ``['a','b']``, is a list of strings."""
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
        if name in RUN_OPTIONS:
            raise UsageError(
                f"-p {name}: give the pipeline --{name} instead" + (" NAME=VALUE" if name == "dqn" else "")
            )
        if name not in declared or name in ("env", "profile"):
            allowed = sorted(set(declared) - {"env", "profile", *RUN_OPTIONS})
            raise UsageError(f"-p {name}: not a parameter of {notebook}; allowed: {', '.join(allowed)}")
        if name in overrides:
            raise UsageError(f"-p {name}: given twice; give each parameter once")
        value = _literal(text)
        if isinstance(value, str) and text.startswith("[") and text.endswith("]"):  # [a, b]: the shell ate the quotes
            value = [_literal(item.strip()) for item in text[1:-1].split(",")] if text[1:-1].strip() else []
        if isinstance(value, tuple):  # papermill would pass it on as a string
            inside = text[1:-1] if text.startswith("(") and text.endswith(")") else text
            raise UsageError(f"{name}: a list goes in brackets: {name}=[{inside}], not {name}={text}")
        if name in FOLDER_OPTIONS:
            raise UsageError(FOLDER_OPTIONS[name])
        overrides[name] = value
    return overrides


def run_options(args) -> dict:
    """--device, --arithmetic and --dqn NAME=VALUE as the notebook parameters device,
    arithmetic and dqn (those given), checked: the device on this machine, the arithmetic
    possible on it, each --dqn name a DQN config field given once (its value: `check_run_config`)."""
    from ebnb import experiments
    from ebnb.config import placement

    options = {}
    if args.device is not None or args.arithmetic is not None:
        try:
            options = placement(args.device or "cpu", args.arithmetic)
        except ValueError as error:
            raise UsageError(f"--{error}") from None  # "device: ..." -> "--device: ..."
    dqn = {}
    for pair in args.dqn:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--dqn: expected NAME=VALUE, got {pair!r}")
        if name in dqn:
            raise UsageError(f"--dqn {name}: given twice; give each field once")
        if name in ("device", "arithmetic"):
            raise UsageError(f"--dqn {name}: give the pipeline --{name} instead")
        dqn[name] = _literal(text)
    try:
        experiments.check_dqn_overrides(experiments.dqn_pairs(dqn))
    except ValueError as error:
        raise UsageError(f"--{error}") from None
    return {**options, **({"dqn": dqn} if dqn else {})}


def check_run_config(envs, g) -> None:
    """The DQN config of grid `g` (its --dqn overrides' values) valid on each of `envs`."""
    from ebnb import experiments

    for env in envs:
        try:
            experiments.run_config(env, g)
        except ValueError as error:
            raise UsageError(f"--dqn: {error}") from None


def split_overrides(overrides: dict) -> tuple[dict, dict, dict]:
    """(grid fields, EB Exploit parameters and its sweep's, notebook options) of checked
    overrides; `run_options`' device, arithmetic and dqn are the grid's field `dqn`."""
    from ebnb import experiments

    grid_fields = {k: v for k, v in overrides.items() if k in experiments.Grid.__dataclass_fields__ and k != "dqn"}
    placed = {k: overrides[k] for k in ("device", "arithmetic") if k in overrides}
    if placed or "dqn" in overrides:
        grid_fields["dqn"] = {**overrides.get("dqn", {}), **placed}
    eb_exploit = {k: v for k, v in overrides.items() if k in EB_EXPLOIT_PARAMETERS}
    return grid_fields, eb_exploit, {k: v for k, v in overrides.items() if k in NOTEBOOK_OPTIONS}


def check_overrides(overrides: dict, profile: str):
    """The checks the notebooks' Python API makes, made before any notebook starts: the grid
    overrides make a valid grid, EB Exploit's parameters and its sweep grid are valid, the
    notebook options have their types. Returns the run's grid (`ebnb.experiments.Grid`), the
    one every later step of the run is given."""
    from ebnb import experiments, notebook, sweep

    grid_fields, eb_exploit, options = split_overrides(overrides)
    try:
        g = experiments.grid(profile, **grid_fields)
        single = {k: v for k, v in eb_exploit.items() if k in experiments.EB_EXPLOIT_DEFAULTS}
        experiments.check_eb_exploit(**{**experiments.EB_EXPLOIT_DEFAULTS, **single})
        sweep.grid(**{k: v for k, v in eb_exploit.items() if k in sweep.DEFAULTS})
    except ValueError as error:
        raise UsageError(str(error)) from None
    if "use_published" in options:
        notebook.check_bool("use_published", options["use_published"])
    return g


def run_folder(profile: str, g, overrides: dict, out: Path) -> Path:
    """<out>/<run>: the run's outputs folder, <run> naming the profile, its grid `g` and the
    overrides (`ebnb.experiments.run_name`, as the notebooks name their figures folder)."""
    from ebnb import experiments

    _, eb_exploit, _ = split_overrides(overrides)
    return out / experiments.run_name(profile, g, **eb_exploit)


def execute(notebook: str, env: str, profile: str, g, overrides: dict, store: Path | None, out: Path) -> float:
    """Run one notebook for one env into its run folder; return its wall time in seconds."""
    import papermill
    from traitlets.config import Config

    from ebnb import jupyter, ownership
    from ebnb.experiments import default_outputs, shown

    output = ownership.new_file(run_folder(profile, g, overrides, out) / f"{notebook}-{env}.ipynb", "outputs")
    parameters = {"env": env, "profile": profile, **overrides}
    if store is not None:
        parameters["store_dir"] = str(store.resolve())
    if "figures_dir" not in overrides and out.resolve() != default_outputs().resolve():  # else the notebook finds it
        parameters["figures_dir"] = str(output.parent.resolve() / "figures")
    start = time.perf_counter()
    print(f"[pipeline] {notebook} {env} ({profile}) -> {shown(output)}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="ebnb-kernel-") as sockets:
            # the kernel talks over Unix sockets in a private folder, not unencrypted TCP on localhost
            ipc = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
            papermill.execute_notebook(
                str(SOURCE / f"{notebook}.ipynb"),
                str(output),
                parameters=parameters,
                kernel_name="python3",
                cwd=str(SOURCE),
                progress_bar=False,
                config=ipc,
                kernel_manager_class=jupyter.ShutdownKernelManager,
            )
    except papermill.PapermillExecutionError as error:
        raise RuntimeError(
            f"{notebook} ({env}) failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
            f"see the executed notebook {shown(output)}"
        ) from None
    finally:
        if output.exists():
            relative_paths(output)
    return time.perf_counter() - start


def relative_paths(executed: Path) -> None:
    """Rewrite the project's absolute paths in an executed notebook (papermill's input and
    output paths, printed figure paths) relative to the project root, so that it reads the
    same whichever machine or folder ran it. Atomic: a temporary file renamed into place."""
    from ebnb import ownership

    prefix = json.dumps(str(ROOT) + os.sep)[1:-1]  # as it appears inside the notebook's JSON strings
    text = executed.read_text()
    if prefix in text:
        temporary = ownership.new_file(executed.with_name(executed.name + ".tmp"), "outputs")
        temporary.write_text(text.replace(prefix, ""))
        os.replace(temporary, executed)


def kernels_import_this_checkout() -> None:
    """Put this checkout first on the PYTHONPATH the notebook kernels inherit, so that they
    import the `ebnb` beside this pipeline.py, not one installed from another checkout (whose
    default folders would then receive the figures)."""
    others = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path and path != str(ROOT)]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *others])


NOTEBOOK_WORKERS = min(4, os.cpu_count() or 1)  # notebooks executed at once (each kernel mostly loads and plots)


def run_grid(
    notebooks, envs, profile: str, g, overrides: dict, store: Path | None, out: Path, computes: dict | None = None
) -> dict:
    """Compute what the notebooks x envs of grid `g` read, in order (`computes`: (notebook, env) -> its
    ComputePlans, with progress in the terminal), then execute them, `NOTEBOOK_WORKERS` at a
    time (each in its own kernel; they only read the store by then); print and return their
    wall times."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(notebook, env) for notebook in notebooks for env in envs]
    kernels_import_this_checkout()
    for notebook, env in jobs:
        for plan in computes[(notebook, env)] if computes else ():
            if plan.work:
                print(f"[pipeline] {notebook} {env} ({plan.settings['profile']}): computing what it reads", flush=True)
                compute_store(plan, always_record=False)
    start, workers = time.perf_counter(), min(NOTEBOOK_WORKERS, len(jobs))
    with ThreadPoolExecutor(workers) as pool:
        seconds = pool.map(lambda job: execute(*job, profile, g, overrides, store, out), jobs)
        times = dict(zip(jobs, seconds))
    print("\n[pipeline] wall time per notebook")
    for (notebook, env), each in times.items():
        print(f"  {notebook:<20} {env:<9} {each:8.1f} s")
    print(f"  {f'all, {workers} at a time':<30} {time.perf_counter() - start:8.1f} s")
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
            executed = [
                n
                for n in NOTEBOOKS
                if (run_folder(profile, experiments.PROFILES[profile], {}, out) / f"{n}-{env}.ipynb").exists()
            ]
            print(f"  executed notebooks: {', '.join(executed) or 'none'}")
    checkpoints = disk.directory_size(cache.root / "checkpoint")
    print(
        f"store {cache.root}: {disk.human_size(disk.directory_size(cache.root))} in all, "
        f"{disk.human_size(checkpoints)} of it checkpoints of unfinished shards"
    )


class ComputePlan(NamedTuple):
    """What `compute` will run: (env, step) pairs, the store, the settings for the run
    record, and the call that runs it (yielding shard reports)."""

    work: list
    store: Path
    settings: dict
    run: Callable


def plan_compute(
    notebooks,
    envs,
    profile: str,
    g,
    overrides: dict,
    store: Path | None,
    published,
    options: dict,
    forced: set | None = None,
    work: list | None = None,
):
    """Check the compute options and return what filling the store for `notebooks` x `envs`
    of grid `g` (of `profile`) will run: the units they read that neither the store nor `published` holds (nothing is
    computed yet). `options`: command, target, scheduler, workers, shard_size, population,
    checkpoint_every (None: the defaults), force (recompute the stored units too). `forced`:
    (env, step name) pairs an earlier plan of the same job forces, left out here and added to.
    `work`: these (env, step) pairs instead of the notebooks' steps."""
    from ebnb import compute, experiments
    from ebnb.checkpoint import Checkpoint
    from ebnb.config import check_positive_int

    _, eb_exploit, _ = split_overrides(overrides)
    compute.check_scheduler(options["scheduler"])

    def given(name, default):
        return default if options.get(name) is None else options[name]

    shard_size = check_positive_int("--shard-size", given("shard_size", compute.DEFAULT_SHARD_SIZE))
    population = check_positive_int("--population", given("population", experiments.POPULATION))
    checkpoint_every = given("checkpoint_every", 120.0)
    Checkpoint(None, checkpoint_every)
    workers = options.get("workers")
    if workers is not None:
        compute.check_workers(workers, options["scheduler"])
    step_names = {s for n in notebooks for s in NOTEBOOK_STEPS[n]}
    if work is None:
        work = compute.plan(envs, step_names, g, published, population=population, **eb_exploit)
    if forced is not None:
        work = [(env, step) for env, step in work if (env, step.name) not in forced]
        forced.update((env, step.name) for env, step in work)
    if work:
        compute.check_reachable(options["scheduler"])
    if published is not None:
        asked = sum(len(step.units) for _, step in compute.plan(envs, step_names, g, **eb_exploit))
        left = sum(len(step.units) for _, step in work)
        if left < asked:
            print(
                f"[compute] {asked - left} of {asked} units from {experiments.shown(published.root)}/ (made by "
                f"{published.made_by}); {left} to compute or load from the store",
                flush=True,
            )
    root = store or experiments.default_store()
    settings = {
        "command": options["command"],
        "target": options["target"],
        "profile": profile,
        "scheduler": options["scheduler"],
        "workers": 1 if options["scheduler"] == "inline" else workers or os.cpu_count(),
        "population": population,
        "shard_size": shard_size,
    }
    return ComputePlan(
        work,
        root,
        settings,
        lambda: compute.run(
            root,
            work,
            options["scheduler"],
            shard_size,
            checkpoint_every,
            progress=True,
            workers=workers,
            force=options.get("force", False),
        ),
    )


def plan_fresh(env: str, overrides: dict, store: Path | None, published, options: dict) -> ComputePlan | None:
    """What notebook 06 with ``compute_fresh=True`` computes, planned as profile `sweep_fresh`
    (so that its run record names that profile, as `publish` requires): its hypotheses on the
    fresh seeds (`ebnb.experiments.sweep_hypotheses`, `sweep_at_steps`), narrowed to the units
    `published` lacks; None unless the notebook runs at the full profile's default grid and the
    full sweep is stored or published (then the notebook computes them itself, unrecorded)."""
    import dataclasses

    from ebnb import experiments, notebook
    from ebnb.store import Store

    grid_fields, eb_exploit, _ = split_overrides(overrides)
    if not notebook.check_bool("compute_fresh", overrides.get("compute_fresh", False)):
        return None
    if experiments.figure_note("full", experiments.grid("full", **grid_fields), **eb_exploit) is not None:
        return None
    cache = Store(store or experiments.default_store())
    settings = experiments.sweep_hypotheses(env, cache, published)
    if settings is None:
        return None
    fresh = experiments.grid("sweep_fresh")
    dense, *sweeps = experiments.sweep_at_steps(env, fresh, settings)
    narrowed = [experiments.to_compute({dense.name: dense, s.name: s}, [s.name], published) for s in sweeps]
    runs = dict.fromkeys(u for steps in narrowed for step in steps if step.name == dense.name for u in step.units)
    work = [(env, dataclasses.replace(dense, units=tuple(runs)))] if runs else []  # the sweeps read them from the store
    work += [(env, step) for steps in narrowed for step in steps if step.name != dense.name]
    return plan_compute([], [env], "sweep_fresh", fresh, {}, store, published, options, work=work)


def compute_store(plan: ComputePlan, always_record: bool = True) -> dict | None:
    """Run the shards, one line per shard, then write the run record to <store>/runs/ and
    print it as a table; return it. A run that computed nothing writes no record (a complete
    store is only read); with `always_record` False it is not returned either (None), and shards
    found stored are not reported."""
    from ebnb import accounting, experiments
    from ebnb.store import Store

    checkout, start = accounting.machine(), accounting.now()  # the code that computes is the code at the start
    counts = {"computed": 0, "resumed": 0, "stored before": 0}
    computed, costs, planned = {}, {}, {}
    listed = {(env, step.name) for env, step in plan.work}
    for env, name, report in plan.run():
        if (env, name) not in listed:  # inputs a step planned while running (`experiments.input_stages`)
            planned[(env, name)] = planned.get((env, name), 0) + len(report.shard.units)
        state = "stored before" if not report.computed else "resumed" if report.resumed else "computed"
        counts[state] += 1
        units = "" if state == "stored before" else f" ({report.computed} units)"
        computed[(env, name)] = computed.get((env, name), 0) + report.computed
        if report.cost is not None:
            costs.setdefault((env, name), []).append(report.cost)
        if always_record or report.computed:
            print(
                f"[compute] {env:<9} {name:<16} shard of {len(report.shard.units):>3} units: {state}{units}", flush=True
            )
    if not always_record and not counts["computed"] + counts["resumed"]:
        return None
    end = accounting.now()
    print(
        f"[compute] shards: {counts['computed']} computed, {counts['resumed']} resumed from a checkpoint, "
        f"{counts['stored before']} stored before; {(end - start).total_seconds():.1f} s",
        flush=True,
    )
    steps = [
        (env, step.name, len(step.units), computed.get((env, step.name), 0), costs.get((env, step.name), []))
        for env, step in plan.work
    ]
    steps += [
        (env, name, units, computed[(env, name)], costs.get((env, name), [])) for (env, name), units in planned.items()
    ]
    record = accounting.run_record(steps, start, end, checkout, **plan.settings)
    if not counts["computed"] + counts["resumed"]:
        print("[compute] nothing computed: no run record written", flush=True)
        return record
    path = accounting.write(record, Store(plan.store).folder("runs"))
    print(f"[compute] run record: {experiments.shown(path)}\n{accounting.table(record)}", flush=True)
    return record


def clean_outputs(store: Path | None, out: Path) -> None:
    """`clean`: delete the store (results and checkpoints) and the working outputs, each only
    if the package made it and wrote everything in it (`ebnb.ownership.remove`); nothing else
    (never a published file)."""
    from ebnb import disk, experiments, ownership

    targets = {"store": (store or experiments.default_store(), "store"), "outputs": (out, "outputs")}
    for name, freed in ownership.remove(targets).items():
        print(f"[clean] {name} ({targets[name][0]}): {disk.human_size(freed)} removed")


def _profile_and_params(command: argparse.ArgumentParser, profile: str, what: str) -> None:
    # not listed from ebnb.experiments.PROFILES: importing it (torch) would make --help take seconds
    command.add_argument(
        "--profile",
        default=profile,
        help=f"full (the thesis), quick (minutes) or another grid of ebnb.experiments.PROFILES, "
        f"see docs/pipeline.md; an unknown name lists them (default {profile})",
    )
    command.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override {what} (repeatable), e.g. -p seeds=[0,1]",
    )


def _recompute(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--recompute",
        action="store_true",
        help="compute the units the store lacks instead of taking them from results/",
    )


def _training(command: argparse.ArgumentParser) -> None:
    # their own options, not -p: the same for every notebook, and --dqn's names are the DQN config's
    command.add_argument("--device", choices=("cpu", "cuda"), help="where the agents train (default cpu)")
    command.add_argument(
        "--arithmetic",
        choices=("fused", "torch"),
        help="fused kernel (the same bits on every CPU) or torch (the CUDA path); "
        "default: fused on cpu, torch on cuda; see docs/exactness.md",
    )
    command.add_argument(
        "--dqn",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a field of the DQN config (ebnb.config.DQNConfig; repeatable), "
        "e.g. --dqn lr=0.001; the units trained so are other units",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="result store directory (default: store/, or $EBNB_STORE)")
    parser.add_argument("--out", help="working outputs folder (default: outputs/, or $EBNB_OUTPUTS)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="recompute the selected units even if stored, replacing them in the store (deletes no folder)",
    )
    parser.add_argument("--debug", action="store_true", help="on failure, show the traceback")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("all", "every notebook x env, full profile (the thesis and beyond)"),
        ("quick", "every notebook x env, quick profile"),
    ):
        command = commands.add_parser(name, help=text)
        _recompute(command)
        _training(command)
        command.add_argument("--env", choices=ENVS, action="append", help="only this env (repeatable)")
        command.add_argument(
            "--thesis",
            action="store_true",
            help=f"only the thesis' notebooks ({THESIS[0]} ... {THESIS[-1]}, figures 3.3-3.8)",
        )
        if name == "all":
            command.add_argument(
                "--scheduler",
                default="local",
                help="how the store is filled before the notebooks run: local (default, a Dask "
                "LocalCluster), inline, or tcp://host:port (see compute)",
            )
    run = commands.add_parser("run", help="one notebook for one env, with parameter overrides")
    run.add_argument("notebook", help=f"one of: {', '.join(NOTEBOOKS)}")
    run.add_argument("--env", action="append", help=f"{', '.join(ENVS)} (or a gymnasium id; default cartpole)")
    _profile_and_params(run, "quick", "a notebook parameter")
    _recompute(run)
    _training(run)
    commands.add_parser("list", help="the grid, its cache status and size on disk")
    compute = commands.add_parser("compute", help="fill the store (shards, checkpoints, Dask); run no notebook")
    compute.add_argument("target", help=f"all, or one of: {', '.join(NOTEBOOKS)} (the results it reads)")
    compute.add_argument("--env", action="append", help=f"{', '.join(ENVS)} or a gymnasium id (repeatable)")
    _profile_and_params(compute, "full", "a grid or EB Exploit parameter")
    _recompute(compute)
    _training(compute)
    compute.add_argument(
        "--scheduler",
        default="local",
        help="local (default: a Dask LocalCluster, one worker per core), inline (this process), "
        "or tcp://host:port of a Dask scheduler; the store must be shared by the workers",
    )
    compute.add_argument("--workers", type=int, help="LocalCluster workers (default: one per core)")
    compute.add_argument(
        "--shard-size", type=int, help="units of work per shard (default: ebnb.compute.DEFAULT_SHARD_SIZE)"
    )
    compute.add_argument(
        "--population",
        type=int,
        help="most tickets training at once in a shard (default: ebnb.experiments.POPULATION); "
        "changes speed, never results",
    )
    compute.add_argument(
        "--checkpoint-every",
        type=float,
        default=120.0,
        help="seconds between checkpoints of a running shard (default 120)",
    )
    publish = commands.add_parser(
        "publish", help="make the working outputs the published ones (results/, figures/, notebooks/executed/)"
    )
    publish.add_argument("--nbval", action="store_true", help="publish outputs/quick/ as nbval's references instead")
    report = commands.add_parser("report", help="build a static HTML site from the published outputs")
    report.add_argument("--to", help="the site's folder (default: <outputs>/report)")
    commands.add_parser("clean", help="remove the store and the working outputs")
    return parser


def _check_target(notebook: str, all_allowed: bool) -> list[str]:
    if all_allowed and notebook == "all":
        return list(NOTEBOOKS)
    if notebook not in NOTEBOOKS:
        allowed = ", ".join((["all"] if all_allowed else []) + list(NOTEBOOKS))
        raise UsageError(f"notebook: unknown {notebook!r}; allowed: {allowed}")
    return [notebook]


def _checked_job(args, store: Path | None, out: Path):
    """(notebooks, envs, profile, its grid, overrides, compute plan for the whole job or None,
    compute plans per notebook x env or None), all checked; nothing runs yet."""
    from ebnb import experiments, notebook
    from ebnb.envs import canonical_env

    if args.command in ("compute", "run"):
        notebooks = _check_target(
            args.target if args.command == "compute" else args.notebook, args.command == "compute"
        )
        if args.profile not in experiments.PROFILES:
            raise UsageError(f"--profile: unknown {args.profile!r}; allowed: {', '.join(experiments.PROFILES)}")
        if args.command == "run" and args.env and len(args.env) > 1:
            raise UsageError(
                f"--env: run takes one env, got {', '.join(args.env)}; for several, use "
                "pipeline.py all --env ... or one run per env"
            )
        envs = args.env or list(ENVS) if args.command == "compute" else args.env or ["cartpole"]
        allowed = set(experiments.Grid.__dataclass_fields__) | set(EB_EXPLOIT_PARAMETERS)
        overrides = parse_overrides(args.param, notebooks, allowed if args.command == "compute" else None)
        profile = args.profile
    else:
        notebooks, envs, overrides = list(THESIS if args.thesis else NOTEBOOKS), args.env or list(ENVS), {}
        profile = "full" if args.command == "all" else "quick"
    envs = list(dict.fromkeys(canonical_env(env) for env in envs))  # --env CARTPOLE: the notebook named cartpole
    overrides = {**overrides, **run_options(args)}
    g = check_overrides(overrides, profile)
    check_run_config(envs, g)
    if args.recompute or "use_published" in overrides:  # the compute plan and the notebooks agree
        overrides = {
            **overrides,
            "use_published": not args.recompute
            and notebook.check_bool("use_published", overrides.get("use_published", True)),
        }
    published = experiments.published_results() if overrides.get("use_published", True) and not args.force else None
    target = getattr(args, "target", "thesis" if getattr(args, "thesis", False) else "all")
    options = {
        "command": args.command,
        "target": target,
        "scheduler": getattr(args, "scheduler", "inline"),
        "workers": getattr(args, "workers", None),
        "shard_size": getattr(args, "shard_size", None),
        "population": getattr(args, "population", None),
        "checkpoint_every": getattr(args, "checkpoint_every", None),
        "force": args.force,
    }
    if args.command in ("compute", "all"):
        return (
            notebooks,
            envs,
            profile,
            g,
            overrides,
            plan_compute(notebooks, envs, profile, g, overrides, store, published, options),
            None,
        )
    forced = set() if args.force else None  # a step several notebooks read is recomputed once
    per_notebook = {
        (n, e): [plan_compute([n], [e], profile, g, overrides, store, published, options, forced)]
        for n in notebooks
        for e in envs
    }
    for (n, e), plans in per_notebook.items():
        fresh = plan_fresh(e, overrides, store, published, options) if n == "06_eb_exploit_sweep" else None
        plans += [fresh] if fresh is not None else []
    return notebooks, envs, profile, g, overrides, None, per_notebook


def main(argv=None) -> int:
    """The command line: 0, or the exit status of a failure told in one line (`ebnb.errors`)."""
    args = _parser().parse_args(argv)
    from ebnb import errors

    return errors.run(lambda: _main(args), args.debug)


def _main(args) -> None:
    """Every input checked, then the command run."""
    from ebnb import errors, experiments, publish, transaction

    for option, value in (("--store", args.store), ("--out", args.out)):
        if value is not None and not value.strip():
            raise UsageError(f"{option}: empty path; give a directory")
    store = Path(args.store) if args.store else None
    out = Path(args.out) if args.out else experiments.default_outputs()
    transaction.recover(ROOT)  # a publish killed after it was decided is completed first
    if args.command == "list":
        list_grid(store, out)
        return
    if args.command == "clean":
        clean_outputs(store, out)
        return
    if args.command == "publish":
        publish.publish(ROOT, store or experiments.default_store(), out, NOTEBOOKS, ENVS, args.nbval)
        return
    if args.command == "report":
        from ebnb import ownership, report

        if not args.to:
            ownership.claim(out, "outputs")
        index = report.build(
            Path(args.to) if args.to else out / "report",
            PUBLISHED_FIGURES,
            PUBLISHED_NOTEBOOKS,
            experiments.default_published() / "run_record.json",
            ROOT / "README.md",
        )
        print(f"[report] {experiments.shown(index)}")
        return
    errors.check_writable_folder("--store", store or experiments.default_store(), writable=False)
    if args.command != "compute":
        errors.check_writable_folder("--out", out)
    notebooks, envs, profile, g, overrides, whole, per_notebook = _checked_job(args, store, out)
    started = time.perf_counter()
    if whole is not None:
        record = compute_store(whole)
    if args.command != "compute":
        times = run_grid(notebooks, envs, profile, g, overrides, store, out, per_notebook)
    if args.command == "all":
        from ebnb import accounting
        from ebnb.store import Store

        record["notebooks"] = [{"notebook": n, "env": e, "wall_s": round(t, 1)} for (n, e), t in times.items()]
        record["all_wall_s"] = round(time.perf_counter() - started, 1)
        path = accounting.write(record, Store(whole.store).folder("runs"))
        command = "all --thesis" if args.thesis else "all"
        print(
            f"\n[pipeline] {command}: {record['all_wall_s']:.0f} s wall, {record['wall_s']:.0f} s of it computing; "
            f"run record {experiments.shown(path)}\n{accounting.table(record)}"
        )


if __name__ == "__main__":
    sys.exit(main())
