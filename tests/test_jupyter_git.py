"""Running a source notebook in Jupyter and saving it leaves `git status` clean (issue 27, item 10).

As a user does it: a fresh clone of this repository, the set-up's `tools/git-filter.sh`, a
kernel that executes the notebook's first cells (parameters and setup: the rest would only
add more outputs), and a save through jupyter_server's contents API, which writes what
JupyterLab's autosave writes (outputs, execution counts, the kernel's metadata).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_server.services.contents.filemanager import FileContentsManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def git(clone: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def clone(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    subprocess.run(["bash", str(target / "tools" / "git-filter.sh")], check=True, env={**_env(tmp_path)})
    return target


def _env(tmp_path: Path) -> dict:
    import os

    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "EBNB_STORE": str(tmp_path / "store"), "EBNB_OUTPUTS": str(tmp_path / "outputs")}  # fmt: skip


def test_a_notebook_run_and_saved_in_jupyter_leaves_git_status_clean(clone, tmp_path, monkeypatch):
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)
    assert git(clone, "status", "--porcelain") == ""
    path = "notebooks/02_retrain.ipynb"
    nb = nbformat.read(clone / path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(clone / "notebooks")}})
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"][:2]  # parameters, setup
    with client.setup_kernel():
        nb.metadata["language_info"] = {"name": "python", "version": sys.version.split()[0], "mimetype": "text/x-python",
                                        "file_extension": ".py", "codemirror_mode": {"name": "ipython", "version": 3}}
        nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
        for i in code:
            client.execute_cell(nb.cells[i], i)
    assert nb.cells[code[1]].outputs, "the setup cell printed nothing: the test would prove nothing"
    FileContentsManager(root_dir=str(clone)).save({"type": "notebook", "format": "json", "content": nb}, path)
    saved = nbformat.read(clone / path, as_version=4)
    assert saved.cells[code[1]].outputs and saved.metadata.language_info.get("version")  # the file did change
    assert git(clone, "diff", "--stat") == ""  # through the filter, the saved file is the committed one
    # git compares sizes before contents, so `git status` lists the file until the index learns its new size;
    # `git add` stages nothing and records it (a limit of every git clean filter: see docs/reliability.md)
    git(clone, "add", "-A")
    assert git(clone, "status", "--porcelain") == ""


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_source_notebooks_are_what_the_filter_writes(path):
    """Else git shows a change in a notebook nobody changed: write them with nbformat (every
    cell with an id) or pass them through `nbstripout --keep-id --extra-keys metadata.language_info`."""
    stripped = subprocess.run([sys.executable, "-m", "nbstripout", "--keep-id", "--extra-keys", "metadata.language_info"],
                              input=path.read_text(), capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert stripped == path.read_text()
