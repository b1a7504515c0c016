"""Mutation check: does each test fail when the code it guards is broken?

    python tools/mutants.py                 # every mutant
    python tools/mutants.py NAME [NAME...]  # some of them
    python tools/mutants.py --list

Copies the repository (without .git, .venv, store/) into a fresh directory from
tempfile.mkdtemp, then for each mutant: restores the pristine copy of its file, replaces the
`original` string (which must occur exactly once) by `replacement`, runs the mutant's pytest
node ids in the copy (PYTHONPATH points at the copy, so pipeline.py, papermill kernels and
Dask workers import the mutated code) and reports "killed" (some test failed) or "survived".
It edits and runs nothing outside the copy it made, and refuses to otherwise. Exit status 1
if a mutant survived.

MUTANTS is a plain list of small records (name, file, original, replacement, tests), so lists
from other branches merge by concatenation.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARDS = "tests/test_shards.py::"
CRASH = SHARDS + "test_a_shard_crashed_while_learning_resumes_to_identical_results"
KILL = SHARDS + "test_compute_killed_while_a_checkpoint_exists_resumes_from_it_to_identical_results"
EXPERIMENTS = "tests/test_experiments.py::"
LOAD = "        return torch.load(io.BytesIO(payload), weights_only=False)"

MUTANTS = [
    # issue 9.1: a resume that loses learning state
    dict(name="resume-zeroes-adam", file="ebnb/checkpoint.py", original=LOAD,
         replacement=LOAD.replace("return torch.load", "state = torch.load") + "\n"
         "        opt = state['population']['optimizer']\n"
         "        [t.zero_() for t in opt.exp_avg + opt.exp_avg_sq]\n"
         "        opt.steps.zero_()\n"
         "        return state",
         tests=[f"{CRASH}[{step}]" for step in ("dense runs", "finetune", "retrain", "eb_exploit")]),
    dict(name="resume-sets-target-to-online", file="ebnb/checkpoint.py", original=LOAD,
         replacement=LOAD.replace("return torch.load", "state = torch.load") + "\n"
         "        state['population']['target'] = [p.detach().clone() for p in state['population']['params']]\n"
         "        return state",
         tests=[f"{CRASH}[{step}]" for step in ("dense runs", "finetune", "retrain", "eb_exploit")]),
    dict(name="resume-drops-dense-job-state", file="ebnb/experiments.py",
         original='    job = saved["job"] if saved else {\n        "drawn"', replacement='    job = {\n        "drawn"',
         tests=[f"{CRASH}[dense runs]"]),
    dict(name="resume-drops-eb-exploit-found-tickets", file="ebnb/experiments.py",
         original='    found: dict[int, tuple[int, AgentState, list]] = job["found"]',
         replacement='    found = job["found"] = {} if saved else job["found"]',
         tests=[f"{CRASH}[eb_exploit]"]),
    # issue 9.2: a checkpoint that is never resumed from
    dict(name="checkpoint-ignored-on-resume", file="ebnb/checkpoint.py",
         original="        if self.path is None or not self.path.exists():", replacement="        if True:",
         tests=[KILL]),
    # issue 9.3: stored results that do not identify the trained network
    dict(name="ticket-hash-constant", file="ebnb/experiments.py",
         original='"state_sha256": [state_sha256(result.final[i])]', replacement='"state_sha256": ["0" * 64]',
         tests=[EXPERIMENTS + "test_ticket_results_hash_the_network_trained_from_the_protocols_start_state",
                SHARDS + "test_stored_tickets_and_eb_exploit_runs_carry_the_hash_of_their_trained_network"]),
    dict(name="eb-exploit-hash-constant", file="ebnb/experiments.py",
         original='"state_sha256": [state_sha256(finals[i])]', replacement='"state_sha256": ["0" * 64]',
         tests=[EXPERIMENTS + "test_eb_exploit_finetunes_the_search_state_it_pruned_once_epsilon_is_at_its_floor",
                SHARDS + "test_stored_tickets_and_eb_exploit_runs_carry_the_hash_of_their_trained_network"]),
    dict(name="hash-ignores-adam-state", file="ebnb/experiments.py",
         original="    for name, array in sorted(state.to_arrays().items()):",
         replacement="    for name, array in sorted(kv for kv in state.to_arrays().items() if 'adam' not in kv[0]\n"
                     "                              and not kv[0].startswith('exp_avg')):",
         tests=[EXPERIMENTS + "test_state_sha256_covers_parameters_target_mask_and_adam_state"]),
    dict(name="finetune-start-wipes-adam", file="ebnb/experiments.py",
         original='start = fresh_agent(cfg, unit.dense.seed) if unit.mode == "retrain" else source',
         replacement='start = fresh_agent(cfg, unit.dense.seed) if unit.mode == "retrain" else source.replace('
                     'exp_avg=[0 * a for a in source.exp_avg], exp_avg_sq=[0 * a for a in source.exp_avg_sq], '
                     'adam_steps=0)',
         tests=[EXPERIMENTS + "test_ticket_results_hash_the_network_trained_from_the_protocols_start_state"]),
    dict(name="eb-exploit-finetune-start-wipes-adam", file="ebnb/experiments.py",
         original="(fresh_agent(cfg, units[i].seed) if units[i].rewind else found[i][1])",
         replacement="(fresh_agent(cfg, units[i].seed) if units[i].rewind else found[i][1].replace("
                     "exp_avg=[0 * a for a in found[i][1].exp_avg], adam_steps=0))",
         tests=[EXPERIMENTS + "test_eb_exploit_finetunes_the_search_state_it_pruned_once_epsilon_is_at_its_floor"]),
    # issue 9.6: assertions that could not fail
    dict(name="eb-exploit-compares-masks-before-epsilon-floor", file="ebnb/experiments.py",
         original="            if epsilon > cfg.eps_floor or agent in found:", replacement="            if agent in found:",
         tests=[EXPERIMENTS + "test_eb_exploit_finetunes_the_search_state_it_pruned_once_epsilon_is_at_its_floor"]),
    dict(name="list-reports-nothing-cached", file="pipeline.py",
         original="                done, size = sizes[name]", replacement="                done, size = 0, 0",
         tests=["tests/test_pipeline.py::test_run_one_notebook_then_list_shows_it_cached"]),
    # issue 9.4: nbval against the project's store
    dict(name="tests-use-the-project-store", file="conftest.py",
         original="        os.environ[name] = str(_SESSION_DIR / sub)", replacement="        pass",
         tests=["tests/test_pipeline.py::test_tests_and_nbval_use_a_fresh_temporary_store_and_figures_folder"]),
]

_MARKER = ".ebnb-mutants-copy"


def make_copy() -> Path:
    """A copy of the repository in a new temporary directory, marked as ours."""
    base = Path(tempfile.mkdtemp(prefix="ebnb-mutants-"))
    clone = base / "repo"
    ignore = shutil.ignore_patterns(".git", ".venv", "store", "__pycache__", "*.egg-info", ".pytest_cache")
    shutil.copytree(ROOT, clone, ignore=ignore)
    (clone / _MARKER).write_text(str(base))
    return clone


def check_copy(clone: Path) -> Path:
    """`clone` if it is a copy made by `make_copy`, else refuse (never mutate the real repo)."""
    clone = clone.resolve()
    tmp = Path(tempfile.gettempdir()).resolve()
    marker = clone / _MARKER
    if (clone == ROOT or not clone.is_relative_to(tmp) or not marker.is_file()
            or Path(marker.read_text()).resolve() != clone.parent or not clone.parent.name.startswith("ebnb-mutants-")):
        raise SystemExit(f"refusing to mutate {clone}: not a temporary copy made by this script")
    return clone


def run_mutant(clone: Path, mutant: dict, pristine: dict[str, str]) -> tuple[str, str]:
    clone = check_copy(clone)
    path = (clone / mutant["file"]).resolve()
    if not path.is_relative_to(clone):
        raise SystemExit(f"refusing to edit {path}: outside the copy")
    original = pristine.setdefault(mutant["file"], path.read_text())
    count = original.count(mutant["original"])
    assert count == 1, f"{mutant['name']}: original string found {count} times in {mutant['file']}"
    path.write_text(original.replace(mutant["original"], mutant["replacement"]))
    env = {**os.environ, "PYTHONPATH": str(clone), "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                                *mutant["tests"]], cwd=clone, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        output = process.communicate()[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        path.write_text(original)
    lines = output.splitlines()
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    report = "\n".join(failed + [line for line in lines if line.strip()][-1:])
    # pytest's exit status: 0 all passed, 1 some failed; 2-5 (collection error, interrupted,
    # internal or usage error, no tests) say nothing about the mutant
    verdict = {0: "survived", 1: "killed"}.get(process.returncode, f"error (pytest exit {process.returncode})")
    return verdict, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant['name']:<48} {mutant['file']}")
        return 0
    unknown = set(args.names) - {m["name"] for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutants: {sorted(unknown)}")
    chosen = [m for m in MUTANTS if not args.names or m["name"] in args.names]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the copy is removed on kill too
    clone = make_copy()
    pristine: dict[str, str] = {}
    survived = 0
    try:
        probe = subprocess.run([sys.executable, "-c", "import ebnb; print(ebnb.__file__)"], cwd=clone, text=True,
                               capture_output=True, env={**os.environ, "PYTHONPATH": str(clone)}, check=True)  # fmt: skip
        assert Path(probe.stdout.strip()).resolve().is_relative_to(clone.resolve()), "the copy must import its own ebnb"
        print(f"copy: {clone}", flush=True)
        for mutant in chosen:
            start = time.perf_counter()
            verdict, tail = run_mutant(clone, mutant, pristine)
            survived += verdict != "killed"  # an error counts against the run too
            print(f"{mutant['name']:<48} {verdict:<9} {time.perf_counter() - start:6.1f} s", flush=True)
            print("    " + tail.replace("\n", "\n    "), flush=True)
    finally:
        shutil.rmtree(check_copy(clone).parent)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
