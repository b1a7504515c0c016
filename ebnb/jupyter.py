"""Jupyter as ebnb uses it.

- `clean_before_save`: Jupyter saves a notebook as git stores it. A pre-save hook of
  jupyter_server's contents manager that passes a notebook through its git clean filter (for
  source notebooks: nbstripout, see .gitattributes and tools/git-filter.sh), so that after a save
  the file on disk is the committed one byte for byte and plain `git status` stays clean.
  tools/git-filter.sh installs it as `ContentsManager.pre_save_hook` in the environment's config.
- `ShutdownKernelManager`: the kernel manager of the pipeline's papermill runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager


def _git(folder: Path, *args: str) -> str:
    """git's answer in `folder`, or '' where it has none (not a repository, no such config)."""
    result = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def clean_filter(file: Path) -> tuple[str, Path] | None:
    """(the clean command of `file`'s git filter, the repository's top folder), or None when git
    stores `file` as it is (outside a repository, no filter attribute, or the filter not set up)."""
    folder = file.parent
    attribute = _git(folder, "check-attr", "filter", "--", file.name).rsplit(": ", 1)[-1]
    if attribute in ("", "unspecified", "unset", "set"):
        return None
    command = _git(folder, "config", "--get", f"filter.{attribute}.clean")
    return (command, Path(_git(folder, "rev-parse", "--show-toplevel"))) if command else None


def clean_before_save(model: dict, path: str, contents_manager, **kwargs) -> None:
    """jupyter_server's pre-save hook: a notebook that git filters is saved as the filter writes it
    (for a source notebook: no outputs, no execution counts), the open notebook keeping its own."""
    if model.get("type") != "notebook" or "content" not in model:
        return
    found = clean_filter(Path(contents_manager.root_dir, path.strip("/")))
    if found is None:
        return
    command, top = found  # git runs it so too: through the shell, in the repository's top folder
    text = nbformat.writes(nbformat.from_dict(model["content"]), version=nbformat.NO_CONVERT)
    cleaned = subprocess.run(
        command, shell=True, cwd=top, input=text, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    model["content"] = nbformat.reads(cleaned, as_version=nbformat.NO_CONVERT)


class ShutdownKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager, except that a kernel asked to shut down is not sent SIGINT
    first (jupyter_client 8 interrupts before its shutdown request: a kernel still in a message
    handler then logs '[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.' after a run that
    succeeded). Interrupts asked for otherwise (nbclient's on a cell timeout) are sent."""

    async def _async_interrupt_kernel(self) -> None:
        if not self.shutting_down:  # set by _async_shutdown_kernel just before its interrupt
            await super()._async_interrupt_kernel()
