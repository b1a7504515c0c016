"""pipeline.py: bad input is refused with exit status 2; one notebook runs end to end;
source notebooks are committed without outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def pipeline(*args, **kwargs):
    return subprocess.run(
        [sys.executable, str(ROOT / "pipeline.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        **kwargs,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "07_nothing"], "notebook"),
        (["run", "02_retrain", "--env", "nosuchenv"], "env"),
        (["run", "02_retrain", "-p", "bogus=1"], "-p bogus"),
        (["run", "02_retrain", "-p", "fractions=[0.2,1.5]"], "fractions"),
        (["run", "02_retrain", "-p", "seeds=[]"], "seeds"),
        (["run", "04_eb_exploit", "--profile", "huge"], "--profile"),
        (["run", "02_retrain", "-p", "seeds=0,1"], "seeds: a list goes in brackets: seeds=[0,1], not seeds=0,1"),
        (["run", "02_retrain", "-p", "seeds=[0]", "-p", "seeds=[1]"], "-p seeds: given twice"),
        (
            ["run", "02_retrain", "-p", "use_published=maybe"],
            "use_published: must be True or False (or the text 'true'/'false'), got 'maybe'",
        ),
        (["run", "04_eb_exploit", "-p", "xi=2"], "xi"),
        (["run", "02_retrain", "--dqn", "lr2=1"], "--dqn: 'lr2' is not a DQN config field; allowed: hidden, lr,"),
        (["run", "02_retrain", "--dqn", "lr=0.1", "--dqn", "lr=0.2"], "--dqn lr: given twice"),
        (["run", "02_retrain", "--dqn", "learning_starts=8"], "--dqn: learning_starts must be >= batch_size (32)"),
        (
            ["run", "02_retrain", "--dqn", "arithmetic=torch"],
            "--dqn arithmetic: give the pipeline --arithmetic instead",
        ),
        (["compute", "02_retrain", "-p", "device=cuda"], "-p device: give the pipeline --device instead"),
        (["publish"], "publish: "),
    ],
)
def test_bad_input_exits_2_with_one_line_and_nothing_written(tmp_path, capsys, args, message):
    """`pipeline.main` in this process (the command line's own exit status: below and in
    tests/test_bad_inputs.py)."""
    import pipeline as pipeline_module

    status = pipeline_module.main(["--store", str(tmp_path / "store"), "--out", str(tmp_path / "outputs"), *args])
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines
    assert list(tmp_path.iterdir()) == [], "no kernel started, nothing written"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", [["run", "02_retrain"], ["quick"], ["compute", "all"]])
def test_cuda_on_a_machine_without_it_exits_2_before_anything_runs(tmp_path, capsys, command):
    import pipeline as pipeline_module

    where = ["--store", str(tmp_path / "store"), "--out", str(tmp_path / "outputs")]
    assert pipeline_module.main([*where, *command, "--device", "cuda"]) == 2
    assert capsys.readouterr().err == "error: --device: 'cuda' is not available on this machine (no CUDA); use cpu\n"
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_exits_2_on_bad_input(tmp_path):
    result = pipeline("--store", str(tmp_path / "store"), "--out", str(tmp_path / "outputs"), "run", "05_nothing")
    assert result.returncode == 2 and result.stderr.startswith("error: notebook: unknown '05_nothing'"), result.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_lists_every_command():
    result = pipeline("--help")
    assert result.returncode == 0
    for command in ("all", "quick", "run", "list", "compute", "publish", "report", "clean", "--force", "--store"):
        assert command in result.stdout
    for command in ("all", "quick", "run", "compute"):
        assert "--recompute" in pipeline(command, "--help").stdout


def test_the_steps_each_notebook_reads_are_those_its_setup_call_declares(tmp_path):
    """`pipeline.NOTEBOOK_STEPS` is read from each notebook's ``notebook.setup(..., steps=...)``;
    a notebook that declares none is an error naming it."""
    import nbformat.v4

    import pipeline as pipeline_module
    from ebnb import experiments, publish

    assert pipeline_module.NOTEBOOK_STEPS == {
        "01_mask_similarity": ("dense runs",),
        "02_retrain": ("dense runs", "retrain", "winning tickets"),
        "03_finetune": ("dense runs", "retrain", "winning tickets", "finetune"),
        "04_eb_exploit": ("dense runs", "eb_exploit"),
        # what profile full_sparse publishes beside the full one: all that notebook 05 reads
        "05_controls": tuple(s.name for s in publish.SIDE_PROFILES["full_sparse"].steps("cartpole", None, None)),
        "06_eb_exploit_sweep": ("dense runs", "eb_exploit sweep"),
    }
    assert list(experiments.steps("cartpole", experiments.grid("quick"))) == list(experiments.STEP_NAMES)
    cell = 'x = notebook.setup(env, profile, steps=("dense runs", "finetune"))'
    declaring, silent = (tmp_path / "declaring.ipynb", tmp_path / "silent.ipynb")
    for path, source in ((declaring, cell), (silent, cell.replace(', steps=("dense runs", "finetune")', ""))):
        notebook = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_markdown_cell("# x"), nbformat.v4.new_code_cell(source)]
        )
        nbformat.write(notebook, path)
    assert pipeline_module.declared_steps(declaring) == ("dense runs", "finetune")
    with pytest.raises(ValueError, match=r"silent.ipynb: its notebook.setup\(...\) call declares no steps="):
        pipeline_module.declared_steps(silent)


def test_every_profile_is_described_in_the_docs():
    """--profile's help points at docs/pipeline.md for the profiles (listing
    ebnb.experiments.PROFILES there would import torch for every --help)."""
    from ebnb import experiments

    text = (ROOT / "docs" / "pipeline.md").read_text()
    assert "docs/pipeline.md" in pipeline("run", "--help").stdout.replace("\n", "").replace(" ", "")
    assert [name for name in experiments.PROFILES if f"`{name}`" not in text] == []


def test_run_one_notebook_into_a_folder_named_by_its_overrides_then_list_shows_it_cached(tmp_path):
    where = ["--store", str(tmp_path / "store"), "--out", str(tmp_path / "outputs")]
    # seed 0 of the quick profile: `list` then shows one of its two dense runs cached
    result = pipeline(*where, "run", "01_mask_similarity", "--env", "cartpole", "-p", "seeds=[0]")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "outputs" / "quick-seeds=0"
    notebook = nbformat.read(run / "01_mask_similarity-cartpole.ipynb", as_version=4)
    assert not [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert "[pipeline] 01_mask_similarity cartpole (quick): computing what it reads" in result.stdout
    assert re.search(r"^\[shard 1/1\] cartpole dense runs: 1 of its 1 units to compute$", result.stdout, re.MULTILINE)
    assert "wall time per notebook" in result.stdout
    assert "without encryption" not in result.stderr, "the kernel talks over Unix sockets, not TCP"
    assert "KeyboardInterrupt" not in result.stderr, "the kernel is shut down without SIGINT (ebnb.jupyter)"
    loaded = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "dense runs: loaded 1 units from the store" in loaded and "0%|" not in loaded, "computed before, loaded here"
    figures = [
        "fig3_3_mask_kappa_cartpole-v0.pdf",
        "fig3_3_mask_kappa_cartpole-v0.png",
        "fig3_3_mask_similarity_cartpole-v0.pdf",
        "fig3_3_mask_similarity_cartpole-v0.png",
    ]
    assert sorted(p.name for p in (run / "figures").iterdir()) == [".ebnb-owned", *figures]
    assert sorted((run / "figures" / ".ebnb-owned").read_text().splitlines()[1:]) == figures, "each file recorded"
    listing = pipeline(*where, "list")
    assert listing.returncode == 0, listing.stderr
    quick_cartpole = re.search(r"^quick\s+cartpole\n((?:\s+.*\n)+?)\S", listing.stdout, re.MULTILINE).group(1)
    assert re.search(r"^\s+dense runs\s+1/2\s+cached\s+[1-9][0-9.]* [KM]?i?B$", quick_cartpole, re.MULTILINE), (
        listing.stdout
    )
    assert re.search(r"^\s+retrain\s+0/8\s+cached", quick_cartpole, re.MULTILINE), listing.stdout


def test_a_quick_run_with_torch_arithmetic_trains_and_reads_the_torch_units_end_to_end(tmp_path):
    """`--arithmetic torch` (the arithmetic CUDA uses, here on the CPU) reaches every unit's
    config, so its key, and the notebook: the pipeline computes exactly the torch units of the
    quick grid, none of the fused ones, and the notebook, run into its own folder, loads them."""
    from ebnb import experiments
    from ebnb.store import config_hash

    where = ["--store", str(tmp_path / "store"), "--out", str(tmp_path / "outputs")]
    result = pipeline(*where, "run", "02_retrain", "--env", "cartpole", "--profile", "quick", "--arithmetic", "torch")
    assert result.returncode == 0, result.stderr
    notebook = nbformat.read(
        tmp_path / "outputs" / "quick-arithmetic=torch" / "02_retrain-cartpole.ipynb", as_version=4
    )
    assert not [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    for step, units in (("dense runs", 2), ("retrain", 8), ("winning tickets", 4)):
        assert f"{step}: loaded {units} units from the store" in printed, printed
    stored = {(p.parent.parent.name, p.parent.name) for p in (tmp_path / "store").glob("*/*/manifest.json")}

    def keys(g):
        return {
            (s.kind, config_hash(u))
            for name, s in experiments.steps("cartpole", g).items()
            if name in ("dense runs", "retrain", "winning tickets")
            for u in s.units
        }

    torch_units = keys(experiments.grid("quick", dqn={"arithmetic": "torch"}))
    assert stored == torch_units and not stored & keys(experiments.grid("quick"))
    configs = [json.loads(p.read_text()) for p in (tmp_path / "store").glob("*/*/config.json")]
    assert {(c.get("dense", c).get("dqn")["arithmetic"]) for c in configs} == {"torch"}


def _sigint_at_shutdown(manager_class, marker: Path) -> bool:
    """Whether a kernel started and shut down by `manager_class` was sent SIGINT on the way."""
    import asyncio

    code = (
        "import pathlib, signal\n"
        f"def handler(*_): pathlib.Path({str(marker)!r}).write_text('SIGINT')\n"
        "signal.signal(signal.SIGINT, handler)\n"
        "get_ipython().kernel.saved_sigint_handler = handler  # what ipykernel restores after this cell"
    )

    async def run():
        manager = manager_class(kernel_name="python3")
        await manager.start_kernel()
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=120)
            reply = await client.execute_interactive(code, timeout=120)
            assert reply["content"]["status"] == "ok", reply["content"]
        finally:
            client.stop_channels()
            await manager.shutdown_kernel()

    asyncio.run(run())
    return marker.exists()


def test_the_pipeline_shuts_its_kernels_down_without_sigint(tmp_path):
    """jupyter_client interrupts a kernel before asking it to shut down, and a kernel then still
    in a message handler logs 'KeyboardInterrupt caught in kernel.' after a successful run; the
    pipeline's kernel manager does not (if the first assert fails, jupyter_client stopped doing so
    and ebnb.jupyter.ShutdownKernelManager can go)."""
    from jupyter_client.manager import AsyncKernelManager

    from ebnb.jupyter import ShutdownKernelManager

    assert _sigint_at_shutdown(AsyncKernelManager, tmp_path / "plain")
    assert not _sigint_at_shutdown(ShutdownKernelManager, tmp_path / "pipeline")


def test_clean_removes_the_store_and_outputs_and_nothing_else(tmp_path):
    """What the package made (ebnb.ownership) goes; a user's folder stays (more: test_ownership.py)."""
    import numpy as np

    from ebnb import ownership
    from ebnb.store import Store

    Store(tmp_path / "store").save("dense", {"a": 1}, {"x": np.zeros(100, np.uint8)})
    for file in ("outputs/quick/01.ipynb", "outputs/quick/figures/fig.png"):
        ownership.new_file(tmp_path / file, "outputs").write_bytes(b"x" * 1000)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "file").write_bytes(b"x" * 1000)
    where = ["--store", str(tmp_path / "store"), "--out", str(tmp_path / "outputs")]
    cleaned = pipeline(*where, "clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert re.search(r"^\[clean\] store .*: \d+ B removed$", cleaned.stdout, re.MULTILINE), cleaned.stdout
    assert re.search(r"^\[clean\] outputs .*: 2\.\d KiB removed$", cleaned.stdout, re.MULTILINE), cleaned.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["mine"] and (tmp_path / "mine" / "file").read_bytes() == b"x" * 1000
    (tmp_path / "mine" / "pyproject.toml").write_text("")  # --store pointing at a project: refused
    refused = pipeline("--store", str(tmp_path / "mine"), "--out", str(tmp_path / "outputs"), "clean")
    assert refused.returncode == 2 and refused.stderr.startswith("error: refusing to delete store")
    assert (tmp_path / "mine" / "file").exists()


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_source_notebooks_are_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") for c in code)
    assert not any(c.get("execution_count") for c in code)
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code)


def test_tests_and_nbval_use_a_fresh_temporary_store_and_outputs_folder():
    """conftest.py points $EBNB_STORE and $EBNB_OUTPUTS into a directory this test session
    made: nbval recomputes the checked tables instead of loading the project's store/."""
    for name in ("EBNB_STORE", "EBNB_OUTPUTS"):
        path = Path(os.environ[name]).resolve()
        assert path.parent.name.startswith("ebnb-test-session-") and path.is_relative_to(
            Path(tempfile.gettempdir()).resolve()
        ), (name, path)
        assert not path.is_relative_to(ROOT)
    from ebnb import experiments

    assert experiments.default_store() == Path(os.environ["EBNB_STORE"])
    assert experiments.default_figures("quick") == Path(os.environ["EBNB_OUTPUTS"]) / "quick" / "figures"


@pytest.mark.parametrize("path", sorted((ROOT / "tests" / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_nbval_reference_notebooks_take_their_store_and_figures_from_the_environment(path):
    """An injected store_dir or figures_dir would make nbval read or write a fixed path
    instead of the session's fresh store: regenerate with EBNB_STORE=..., not --store."""
    notebook = json.loads(path.read_text())
    injected = [c for c in notebook["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    source = "".join("".join(c["source"]) for c in injected)
    assert injected and "store_dir" not in source and "figures_dir" not in source


PUBLISHED_NOTEBOOKS = sorted((ROOT / "notebooks" / "executed").glob("*.ipynb"))


@pytest.mark.parametrize(
    "path",
    PUBLISHED_NOTEBOOKS + sorted((ROOT / "tests" / "notebooks").glob("*.ipynb")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_executed_notebooks_name_project_files_relative_to_the_project(path):
    """No path of the machine that ran a notebook: papermill's input and output paths and the
    printed figure paths are relative to the project root (`pipeline.relative_paths`)."""
    notebook = json.loads(path.read_text())
    recorded = notebook["metadata"]["papermill"]
    assert not Path(recorded["input_path"]).is_absolute() and not Path(recorded["output_path"]).is_absolute()
    assert "PosixPath('/" not in path.read_text()


def test_relative_paths_rewrites_the_project_root_and_nothing_else(tmp_path):
    sys.path.insert(0, str(ROOT))
    try:
        import pipeline as pipeline_module
    finally:
        sys.path.remove(str(ROOT))
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            outputs=[nbformat.v4.new_output("stream", text=f"{ROOT / 'figures' / 'a.png'} /elsewhere/b.png\n")]
        )
    )
    notebook.metadata["papermill"] = {"input_path": str(ROOT / "notebooks" / "x.ipynb")}
    path = tmp_path / "executed.ipynb"
    nbformat.write(notebook, path)
    pipeline_module.relative_paths(path)
    rewritten = nbformat.read(path, as_version=4)
    assert rewritten.cells[0].outputs[0].text == "figures/a.png /elsewhere/b.png\n"
    assert rewritten.metadata["papermill"]["input_path"] == "notebooks/x.ipynb"
    assert [p.name for p in tmp_path.iterdir()] == ["executed.ipynb"]


def test_notebook_kernels_import_the_ebnb_beside_the_pipeline(tmp_path, monkeypatch):
    """A Python environment installed from another checkout must not run this checkout's
    notebooks with its own `ebnb` (and write their figures there): the kernels, which inherit
    the pipeline's environment, find this checkout first on PYTHONPATH."""
    import pipeline as pipeline_module

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/another/checkout", str(ROOT)]))
    seen = []
    monkeypatch.setattr(pipeline_module, "execute", lambda *args: seen.append(os.environ["PYTHONPATH"]) or 0.0)
    from ebnb import experiments

    pipeline_module.run_grid(
        ["01_mask_similarity"],
        ["cartpole"],
        "quick",
        experiments.PROFILES["quick"],
        {},
        tmp_path / "store",
        tmp_path / "out",
    )
    assert seen == [os.pathsep.join([str(ROOT), "/another/checkout"])]
    assert list(tmp_path.iterdir()) == []


def test_report_builds_the_site_from_the_published_outputs_into_the_outputs_folder(tmp_path, monkeypatch, capsys):
    """`report` hands the published figures, executed notebooks, run record and README to
    `ebnb.report.build` (which tests/test_report.py runs on them) with <outputs>/report/ as the
    site's folder, and says where its index is."""
    import pipeline as pipeline_module
    from ebnb import experiments, report

    calls = []
    monkeypatch.setattr(report, "build", lambda *args: calls.append(args) or args[0] / "index.html")
    assert pipeline_module.main(["--out", str(tmp_path / "outputs"), "report"]) == 0
    site = tmp_path / "outputs" / "report"
    assert calls == [
        (
            site,
            ROOT / "figures",
            ROOT / "notebooks" / "executed",
            experiments.default_published() / "run_record.json",
            ROOT / "README.md",
        )
    ]
    assert capsys.readouterr().out.strip() == f"[report] {site / 'index.html'}"


def test_a_bracketed_list_of_bare_words_is_a_list_of_strings():
    """`-p controls=['reinit']` reaches Python as controls=[reinit] once the shell removed the quotes."""
    import pipeline as pipeline_module

    parsed = pipeline_module.parse_overrides(
        ["controls=[random_mask, reinit]", "seeds=[0,1]", "fractions=[]"], ["05_controls"]
    )
    assert parsed == {"controls": ["random_mask", "reinit"], "seeds": [0, 1], "fractions": []}
    assert pipeline_module.parse_overrides(["controls=['reinit']"], ["05_controls"]) == {"controls": ["reinit"]}


@pytest.mark.parametrize("thesis", [False, True])
def test_all_thesis_plans_only_the_steps_of_notebooks_01_to_04(tmp_path, thesis):
    """`all --thesis` fills the store for figures 3.3-3.8 only: no controls, no sweep; its run
    record is not the one `publish` takes for the whole of `all`."""
    import pipeline as pipeline_module
    from ebnb import publish

    args = pipeline_module._parser().parse_args(["all", "--recompute"] + (["--thesis"] if thesis else []))
    notebooks, _, profile, _, _, plan, _ = pipeline_module._checked_job(args, tmp_path / "store", tmp_path / "outputs")
    steps = {step.name for _, step in plan.work}
    thesis_steps = {"dense runs", "retrain", "winning tickets", "finetune", "eb_exploit"}
    assert profile == "full" and plan.settings["target"] == ("thesis" if thesis else "all")
    if thesis:
        assert notebooks == ["01_mask_similarity", "02_retrain", "03_finetune", "04_eb_exploit"]
        assert steps == thesis_steps
    else:
        assert len(notebooks) == 6 and steps > thesis_steps and "retrain controls" in steps
    record = {"command": "all", "target": plan.settings["target"], "steps": [{"computed": 1}]}
    assert publish.computed_all(record) is not thesis
    assert list(tmp_path.iterdir()) == [], "planning writes nothing"
