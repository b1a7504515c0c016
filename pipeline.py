"""Run the thesis notebooks through papermill: every notebook x environment, or one of them.

    python pipeline.py all                      # the thesis (full profile), figures 3.3-3.8
    python pipeline.py quick                    # the same grid at the quick profile (minutes)
    python pipeline.py run 02_retrain --env acrobot -p fractions=[0.2] -p episodes=100
    python pipeline.py list                     # the grid and what is already cached

Executed notebooks go to notebooks/executed/<notebook>-<env>.ipynb and figures to figures/
(quick profile: notebooks/executed/quick/ and figures/quick/); results go to the store
(default store/), named by a hash of their config: a rerun loads what is finished and
computes only what is missing. The kernel is the interpreter running this script (no kernel
registration needed).
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
NOTEBOOKS = ("01_mask_similarity", "02_retrain", "03_finetune", "04_eb_exploit")
ENVS = ("cartpole", "acrobot")
SOURCE = ROOT / "notebooks"
EXECUTED = SOURCE / "executed"


class UsageError(ValueError):
    """Bad command-line input: reported in one line with exit status 2."""


def parse_overrides(pairs: list[str], notebook: str) -> dict:
    """`name=value` pairs checked against the notebook's parameters cell; values are Python
    literals (numbers, lists, True/None) or else strings."""
    import papermill

    declared = papermill.inspect_notebook(str(SOURCE / f"{notebook}.ipynb"))
    overrides = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"-p: expected name=value, got {pair!r}")
        if name not in declared or name in ("env", "profile"):
            allowed = sorted(set(declared) - {"env", "profile"})
            raise UsageError(f"-p {name}: not a parameter of {notebook}; allowed: {', '.join(allowed)}")
        try:
            overrides[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[name] = text
    return overrides


def check_overrides(overrides: dict, profile: str) -> None:
    """Grid overrides must make a valid grid before any notebook starts."""
    from ebnb import experiments

    grid_fields = {k: v for k, v in overrides.items() if k in experiments.Grid.__dataclass_fields__}
    try:
        experiments.grid(profile, **grid_fields)
    except ValueError as error:
        raise UsageError(str(error)) from None


def executed_path(notebook: str, env: str, profile: str, root: Path = EXECUTED) -> Path:
    """<root>/<notebook>-<env>.ipynb for the full profile, <root>/<profile>/... otherwise."""
    folder = root if profile == "full" else root / profile
    return folder / f"{notebook}-{env}.ipynb"


def execute(notebook: str, env: str, profile: str, overrides: dict, store: Path | None, out: Path) -> float:
    """Run one notebook for one env; return its wall time in seconds."""
    import papermill

    output = executed_path(notebook, env, profile, out)
    output.parent.mkdir(parents=True, exist_ok=True)
    parameters = {"env": env, "profile": profile, **overrides}
    if store is not None:
        parameters["store_dir"] = str(store.resolve())
    start = time.perf_counter()
    print(f"[pipeline] {notebook} {env} ({profile}) -> {output}", flush=True)
    try:
        papermill.execute_notebook(str(SOURCE / f"{notebook}.ipynb"), str(output), parameters=parameters,
                                   kernel_name="python3", cwd=str(SOURCE), progress_bar=False)  # fmt: skip
    except papermill.PapermillExecutionError as error:
        raise RuntimeError(
            f"{notebook} ({env}) failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
            f"see the executed notebook {output}"
        ) from None
    return time.perf_counter() - start


def run_grid(notebooks, envs, profile: str, overrides: dict, store: Path | None, out: Path) -> None:
    """Execute notebooks x envs in order and print wall times."""
    times = {}
    for notebook in notebooks:
        for env in envs:
            times[(notebook, env)] = execute(notebook, env, profile, overrides, store, out)
    print("\n[pipeline] wall time per notebook")
    for (notebook, env), seconds in times.items():
        print(f"  {notebook:<20} {env:<9} {seconds:8.1f} s")
    print(f"  {'total':<30} {sum(times.values()):8.1f} s")


def list_grid(store: Path | None, out: Path) -> None:
    """The grid (profile x env x notebook) with the cache status of each protocol step."""
    from ebnb import experiments
    from ebnb.store import Store

    cache = Store(store or experiments.default_store())
    for profile in ("quick", "full"):
        for env in ENVS:
            status = experiments.cache_status(env, experiments.PROFILES[profile], cache)
            steps = ", ".join(f"{name} {done}/{total}" for name, (done, total) in status.items())
            executed = [n for n in NOTEBOOKS if executed_path(n, env, profile, out).exists()]
            print(f"{profile:<6} {env:<9} cached: {steps}")
            print(f"{'':<16} executed notebooks: {', '.join(executed) or 'none'}")


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
    run = commands.add_parser("run", help="one notebook for one env, with parameter overrides")
    run.add_argument("notebook", help=f"one of: {', '.join(NOTEBOOKS)}")
    run.add_argument("--env", default="cartpole", help=f"{', '.join(ENVS)} (or a gymnasium id)")
    run.add_argument("--profile", default="quick", help="quick (default) or full")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a notebook parameter (repeatable), e.g. -p xi=0.05")  # fmt: skip
    commands.add_parser("list", help="the grid and its cache status")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    store = Path(args.store) if args.store else None
    try:
        if args.command == "list":
            list_grid(store, Path(args.out))
            return 0
        if args.command == "run":
            if args.notebook not in NOTEBOOKS:
                raise UsageError(f"notebook: unknown {args.notebook!r}; allowed: {', '.join(NOTEBOOKS)}")
            if args.profile not in ("quick", "full"):
                raise UsageError(f"--profile: unknown {args.profile!r}; allowed: quick, full")
            from ebnb.envs import resolve_env_id

            resolve_env_id(args.env)
            overrides = parse_overrides(args.param, args.notebook)
            check_overrides(overrides, args.profile)
            plan = ([args.notebook], [args.env], args.profile, overrides)
        else:
            plan = (NOTEBOOKS, args.env or ENVS, "full" if args.command == "all" else "quick", {})
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.force:
        from ebnb.experiments import default_store

        shutil.rmtree(store or default_store(), ignore_errors=True)
    try:
        run_grid(*plan, store, Path(args.out))
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
