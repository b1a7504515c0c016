"""Show that the unit tests of issue 9 have teeth: each mutant must make its tests fail.

    python tools/mutants_units.py                 # every mutant
    python tools/mutants_units.py rng-purpose ...  # only these (by name)
    python tools/mutants_units.py --list

The repository is copied into a fresh `tempfile.mkdtemp()` directory; each mutant is a literal
string replacement in one file of that copy (the original text must occur exactly once),
the mutant's pytest node ids run in the copy, and the file is restored. Nothing outside the
copy is ever written: every write and every pytest run is checked to be inside it, and the
copy is checked to import its own `ebnb` (not the editable install of the source tree).
First the named tests run on the unmutated copy: they must pass, or "killed" would mean nothing.

Output: one line per mutant, `killed` (the tests failed), `SURVIVED` (they passed) or
`ERROR` (pytest could not run them: collection error, missing test...). Exit status 1 if any
mutant survived or errored.

The list is plain records (name, file, original, replacement, tests) so that it can be merged
with tools/mutants.py's list. Strings in files that are being rewritten (ebnb/population.py by
the engine work) may stop matching; the script then says so instead of running.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]


class Mutant(NamedTuple):
    name: str
    file: str  # relative to the repository root
    original: str  # must occur exactly once in `file`
    replacement: str
    tests: tuple[str, ...]  # pytest node ids (or files) that must fail


EXP = "tests/test_experiments.py::"
TICKET_START = 'start = fresh_agent(cfg, unit.dense.seed) if unit.mode == "retrain" else source\n'

MUTANTS = [
    Mutant("similarity-first-seed", "ebnb/experiments.py",
           "pd.DataFrame(np.mean(matrices, axis=0), index=episodes",
           "pd.DataFrame(matrices[0], index=episodes",
           (EXP + "test_mask_similarity_equals_the_mean_of_per_seed_matrices_recomputed",)),
    Mutant("retrain-from-theta-e", "ebnb/experiments.py", TICKET_START,
           'start = fresh_agent(cfg, unit.dense.seed).replace(params=source.params, target=source.target)'
           ' if unit.mode == "retrain" else source\n',
           (EXP + "test_retrain_starts_from_masked_theta0_with_a_fresh_state",)),
    Mutant("retrain-from-finetune-snapshot", "ebnb/experiments.py", TICKET_START, "start = source\n",
           (EXP + "test_retrain_starts_from_masked_theta0_with_a_fresh_state",)),
    Mutant("finetune-drops-adam-moments", "ebnb/experiments.py", TICKET_START,
           'start = fresh_agent(cfg, unit.dense.seed) if unit.mode == "retrain" else source.replace('
           'exp_avg=[np.zeros_like(p) for p in source.exp_avg], '
           'exp_avg_sq=[np.zeros_like(p) for p in source.exp_avg_sq])\n',
           (EXP + "test_finetune_continues_the_dense_runs_full_state_at_the_prune_episode",)),
    Mutant("finetune-resets-adam-steps", "ebnb/experiments.py", TICKET_START,
           'start = fresh_agent(cfg, unit.dense.seed) if unit.mode == "retrain" else source.replace(adam_steps=0)\n',
           (EXP + "test_finetune_continues_the_dense_runs_full_state_at_the_prune_episode",)),
    Mutant("finetune-fresh-epsilon", "ebnb/experiments.py", TICKET_START,
           'start = fresh_agent(cfg, unit.dense.seed) if unit.mode == "retrain" else source.replace(epsilon=1.0)\n',
           (EXP + "test_finetune_continues_the_dense_runs_full_state_at_the_prune_episode",)),
    Mutant("pruned-target-not-masked", "ebnb/agent.py",
           "target=apply(self.target), mask=list(mask)", "target=self.target, mask=list(mask)",
           (EXP + "test_finetune_continues_the_dense_runs_full_state_at_the_prune_episode",
            EXP + "test_retrain_starts_from_masked_theta0_with_a_fresh_state")),
    Mutant("dense-mask-largest-pruned", "ebnb/masks.py",
           "torch.argsort(magnitudes, dim=1, stable=True)",
           "torch.argsort(magnitudes, dim=1, stable=True, descending=True)",
           (EXP + "test_dense_runs_record_masks_snapshots_and_baseline",)),
    Mutant("config-lr", "ebnb/config.py", "lr=0.0025,", "lr=0.0025 * 2,",
           ("tests/test_config.py::test_configs_hold_the_thesis_hyperparameters",)),
    Mutant("config-acrobot-epsilon-per-episode", "ebnb/config.py", 'eps_decay_per="step",', 'eps_decay_per="episode",',
           ("tests/test_config.py::test_configs_hold_the_thesis_hyperparameters",)),
    Mutant("config-learning-starts", "ebnb/config.py", "learning_starts=1000,", "learning_starts=500,",
           ("tests/test_config.py::test_configs_hold_the_thesis_hyperparameters",)),
    Mutant("rng-purpose-ignored", "ebnb/rng.py",
           "_mix(seed * _GOLDEN + np.uint64(int(stream)))", "_mix(seed * _GOLDEN)",
           ("tests/test_rng.py::test_bits_equal_the_independent_implementation",
            "tests/test_rng.py::test_distinct_seeds_and_purposes_give_distinct_streams")),
    Mutant("rng-depends-on-batch-size", "ebnb/rng.py",
           "return _mix(key + counter * _GOLDEN)", "return _mix(key + counter * _GOLDEN + np.uint64(np.size(counter)))",
           ("tests/test_rng.py::test_an_element_does_not_depend_on_the_batch_around_it",)),
    Mutant("rng-uniform-half-range", "ebnb/rng.py",
           "(bits(seed, stream, counter) >> np.uint64(11))", "(bits(seed, stream, counter) >> np.uint64(12))",
           ("tests/test_rng.py::test_uniform_is_uniform",)),
    # ebnb/population.py is being rewritten (engine kernels): this string may need updating.
    Mutant("masked-update-keeps-pruned-weights", "ebnb/population.py",
           "if self.mask is not None:\n                for w, m in zip(qnet.weights(self.params), self.mask):",
           "if False:\n                for w, m in zip(qnet.weights(self.params), self.mask):",
           ("tests/test_population.py::test_masked_engine_matches_reference_dqn_with_the_mask",)),
    Mutant("masked-update-uses-chunk-neighbours-mask", "ebnb/population.py",
           "w[agents].mul_(m[agents])", "w[agents].mul_(m[agents.start : agents.start + 1])",
           ("tests/test_population.py::test_masked_agent_alone_equals_it_inside_a_population_bitwise",)),
    Mutant("bad-input-message-changed", "ebnb/experiments.py",
           'f"{name}: the grid needs at least one value"', 'f"{name}: the grid needs a value"',
           ("tests/test_bad_inputs.py::test_readme_table_shows_the_real_message",)),
    Mutant("bad-input-positive-int-message", "ebnb/config.py",
           'f"{name} must be an integer >= 1, got {value!r}"', 'f"{name} must be a positive integer, got {value!r}"',
           ("tests/test_bad_inputs.py::test_readme_table_shows_the_real_message",)),
    Mutant("bench-ignores-steps", "ebnb/__main__.py",
           "benchmark.run(cfgs, counts, args.steps, device=args.device)", "benchmark.run(cfgs, counts, device=args.device)",
           ("tests/test_cli.py::test_cli_bench_json_rows",)),
]


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def make_copy() -> Path:
    """A copy of the repository (sources, tests, notebooks) in a new temporary directory."""
    root = Path(tempfile.mkdtemp(prefix="ebnb-mutants-"))
    if _inside(root, REPO) or _inside(REPO, root):
        raise SystemExit(f"refusing: temporary directory {root} overlaps the repository {REPO}")
    ignore = shutil.ignore_patterns(".git", ".venv", "venv", "store", "__pycache__", ".pytest_cache", "*.egg-info",
                                    "figures")  # fmt: skip
    copy = root / "repo"
    shutil.copytree(REPO, copy, ignore=ignore, symlinks=True)
    return copy


def environment(copy: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(copy), "EBNB_STORE": str(copy.parent / "default-store"),
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    return env


def check_copy_imports_itself(copy: Path) -> None:
    out = subprocess.run([sys.executable, "-c", "import ebnb, sys; print(ebnb.__file__)"], cwd=copy,
                         env=environment(copy), capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    if not _inside(Path(out), copy):
        raise SystemExit(f"refusing: the copy imports ebnb from {out}, not from {copy}")


def pytest(copy: Path, tests, root: Path) -> tuple[int, str, float]:
    if not _inside(copy, root) or Path.cwd().resolve() == REPO.resolve() and _inside(copy, REPO):
        raise SystemExit(f"refusing to run tests outside the temporary copy {root}")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "--override-ini", "addopts=", *tests], cwd=copy, env=environment(copy),
                          capture_output=True, text=True)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, (lines[-1] if lines else done.stderr.strip()[-200:]), time.perf_counter() - start


def write_inside(path: Path, text: str, root: Path) -> None:
    if not _inside(path, root):
        raise SystemExit(f"refusing to write {path}: outside the temporary copy {root}")
    path.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip running the tests on the unmutated copy")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutants: {', '.join(sorted(unknown))}")
    if args.list:
        for m in chosen:
            print(f"{m.name:<38} {m.file:<22} {' '.join(m.tests)}")
        return 0

    copy = make_copy()
    root = copy.parent
    print(f"copy: {copy}", flush=True)
    try:
        check_copy_imports_itself(copy)
        problems = 0
        if not args.no_baseline:
            tests = list(dict.fromkeys(t for m in chosen for t in m.tests))
            code, summary, seconds = pytest(copy, tests, root)
            print(f"baseline (unmutated): {summary} [{seconds:.0f} s]", flush=True)
            if code != 0:
                print("the tests fail without any mutant: fix them first")
                return 1
        for m in chosen:
            path = copy / m.file
            original = path.read_text()
            count = original.count(m.original)
            if count != 1:
                print(f"{m.name:<38} ERROR: the original text occurs {count} times in {m.file} (expected once)")
                problems += 1
                continue
            write_inside(path, original.replace(m.original, m.replacement), root)
            try:
                code, summary, seconds = pytest(copy, m.tests, root)
            finally:
                write_inside(path, original, root)
            verdict = {0: "SURVIVED", 1: "killed"}.get(code, f"ERROR (pytest exit {code})")
            problems += verdict != "killed"
            print(f"{m.name:<38} {verdict:<9} {summary} [{seconds:.0f} s]  {' '.join(m.tests)}", flush=True)
        return 1 if problems else 0
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root)


if __name__ == "__main__":
    sys.exit(main())
