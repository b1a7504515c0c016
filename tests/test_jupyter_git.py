"""Running a source notebook in Jupyter and saving it leaves `git status` clean (issue 27, item 10).

As a user does it: a fresh clone of this repository, the set-up's `tools/git-filter.sh`, a
kernel that executes the notebook's first cells (parameters and setup: the rest would only
add more outputs), and a save through the contents manager of a Jupyter server configured as
`jupyter lab` is (jupyter_server's own config loader), which writes what JupyterLab's autosave
writes (outputs, execution counts, the kernel's metadata) unless its pre-save hook intervenes.
Jupyter's config, data and runtime folders point into tmp_path.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_server.serverapp import ServerApp
from nbclient import NotebookClient

from ebnb import jupyter

ROOT = Path(__file__).resolve().parents[1]


def git(clone: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """A clone with the set-up done; this process's environment as the set-up leaves a shell's."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    subprocess.run(["bash", str(target / "tools" / "git-filter.sh")], check=True, capture_output=True)
    return target


def _env(tmp_path: Path) -> dict:
    jupyter_folders = {
        "JUPYTER_CONFIG_PATH": "env-config",
        "JUPYTER_CONFIG_DIR": "user-config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
    }
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "EBNB_STORE": str(tmp_path / "store"),
        "EBNB_OUTPUTS": str(tmp_path / "outputs"),
        **{name: str(tmp_path / "jupyter" / folder) for name, folder in jupyter_folders.items()},
    }


def _run_first_cells(clone: Path, path: str) -> nbformat.NotebookNode:
    """The notebook at `path` with its parameters and setup cells executed, as Jupyter holds it."""
    nb = nbformat.read(clone / path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(clone / "notebooks")}})
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"][:2]  # parameters, setup
    with client.setup_kernel():
        nb.metadata["language_info"] = {
            "name": "python",
            "version": sys.version.split()[0],
            "mimetype": "text/x-python",
            "file_extension": ".py",
            "codemirror_mode": {"name": "ipython", "version": 3},
        }
        nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
        for i in code:
            client.execute_cell(nb.cells[i], i)
    assert nb.cells[code[1]].outputs, "the setup cell printed nothing: the test would prove nothing"
    return nb


def _jupyter_contents_manager(root: Path):
    """The contents manager of `jupyter lab` started in `root`: its config files loaded as
    jupyter_server loads them (JupyterApp.load_config_file over config_file_paths), the manager
    made as ServerApp.init_configurables makes it."""
    app = ServerApp(root_dir=str(root))
    app.load_config_file()
    app.init_event_logger()  # a save is an event
    return app.contents_manager_class(parent=app, log=app.log)


def test_a_notebook_run_and_saved_in_jupyter_leaves_git_status_clean(clone):
    assert git(clone, "status", "--porcelain") == ""
    path = "notebooks/02_retrain.ipynb"
    nb = _run_first_cells(clone, path)
    manager = _jupyter_contents_manager(clone)
    assert manager.pre_save_hook is jupyter.clean_before_save, "the set-up configured Jupyter's save"
    asyncio.run(manager.save({"type": "notebook", "format": "json", "content": nb}, path))
    assert (clone / path).read_bytes() == subprocess.run(
        ["git", "-C", str(clone), "show", f"HEAD:{path}"], capture_output=True, check=True
    ).stdout
    assert git(clone, "status", "--porcelain") == ""  # plain: no `git add` needed to see it clean
    assert any(cell.get("outputs") for cell in nb.cells), "the open notebook keeps its outputs"
    # a copy outside notebooks/ (not a source notebook to git) keeps what Jupyter saves
    (clone / "mine").mkdir()
    asyncio.run(manager.save({"type": "notebook", "format": "json", "content": nb}, "mine/02_retrain.ipynb"))
    kept = nbformat.read(clone / "mine" / "02_retrain.ipynb", as_version=4)
    assert [c.outputs for c in kept.cells if c.cell_type == "code"][1] and kept.metadata.language_info.version


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_source_notebooks_are_what_the_filter_writes(path):
    """Else git shows a change in a notebook nobody changed: write them with nbformat (every
    cell with an id) or pass them through `nbstripout --keep-id --extra-keys metadata.language_info`."""
    stripped = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--keep-id", "--extra-keys", "metadata.language_info"],
        input=path.read_text(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert stripped == path.read_text()
