"""Disk usage and guarded cleaning: exact byte counts, valid results only, refusals delete nothing."""

import os
from pathlib import Path

import numpy as np
import pytest

from ebnb import disk
from ebnb.disk import clean, directory_size, human_size, result_sizes
from ebnb.store import Store


@pytest.fixture
def no_deletion(monkeypatch):
    """Make any removal by ebnb.disk fail, so a broken guard cannot delete real directories."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"ebnb.disk tried to delete {args}")

    monkeypatch.setattr(disk.os, "rename", refuse)
    monkeypatch.setattr(disk.shutil, "rmtree", refuse)


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def tree(root: Path) -> Path:
    """A directory holding 100 + 23 + 4000 bytes in nested files."""
    write(root / "a.bin", 100)
    write(root / "sub" / "b.bin", 23)
    write(root / "sub" / "deeper" / "c.bin", 4000)
    return root


def test_directory_size_counts_bytes_exactly(tmp_path):
    assert directory_size(tree(tmp_path / "d")) == 4123
    assert directory_size(tmp_path / "missing") == 0
    (tmp_path / "empty").mkdir()
    assert directory_size(tmp_path / "empty") == 0


def test_directory_size_does_not_follow_symlinks(tmp_path):
    outside = tree(tmp_path / "outside")
    inside = tmp_path / "d"
    write(inside / "own.bin", 7)
    (inside / "link-dir").symlink_to(outside, target_is_directory=True)
    (inside / "link-file").symlink_to(outside / "a.bin")
    assert directory_size(inside) == 7
    (tmp_path / "link").symlink_to(inside, target_is_directory=True)
    assert directory_size(tmp_path / "link") == 0


def test_result_sizes_counts_only_valid_results(tmp_path):
    store = Store(tmp_path)
    for unit in ({"a": 1}, {"a": 2}, {"a": 3}):
        store.save("train", unit, {"x": np.arange(3)})
    store.save("prune", {"a": 1}, {"x": np.arange(1000), "y": np.ones((4, 4))})
    truncated = store.path("train", {"a": 3}) / "x.npz"
    truncated.write_bytes(truncated.read_bytes()[:10])
    steps = {
        "train": ("train", [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}, {"a": 1}]),
        "prune": ("prune", [{"a": 1}, {"a": 2}]),
        "nothing": ("train", []),
    }
    sizes = result_sizes(store, steps)
    train_bytes = sum(directory_size(store.path("train", {"a": a})) for a in (1, 2))
    assert sizes["train"] == (2, train_bytes)
    assert sizes["prune"] == (1, directory_size(store.path("prune", {"a": 1})))
    assert sizes["nothing"] == (0, 0)
    assert train_bytes > 0


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2 - 1, "1.0 MiB"),
        (12 * 1024**2, "12.0 MiB"),
        (int(3.2 * 1024**3), "3.2 GiB"),
        (2048 * 1024**5, "2048.0 PiB"),
    ],
)
def test_human_size(n, text):
    assert human_size(n) == text


def outputs(tmp_path: Path) -> dict[str, Path]:
    """A project-like folder with a store, notebooks and figures next to files to keep."""
    project = tmp_path / "project"
    tree(project / "store")
    write(project / "notebooks" / "executed" / "nb.ipynb", 50)
    write(project / "notebooks" / "source.ipynb", 60)
    tree(project / "figures")
    write(project / "keep.txt", 5)
    write(project / "other" / "keep.bin", 9)
    return {
        "store": project / "store",
        "executed notebooks": project / "notebooks" / "executed",
        "figures": project / "figures",
    }


def listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def test_clean_removes_only_the_named_targets(tmp_path):
    targets = outputs(tmp_path)
    project = tmp_path / "project"
    freed = clean(targets)
    assert freed == {"store": 4123, "executed notebooks": 50, "figures": 4123}
    assert not any(path.exists() for path in targets.values())
    assert listing(project) == {"keep.txt": 5, "notebooks/source.ipynb": 60, "other/keep.bin": 9}
    assert sorted(p.name for p in project.iterdir()) == ["keep.txt", "notebooks", "other"]


def test_clean_dry_run_deletes_nothing(tmp_path):
    targets = outputs(tmp_path)
    before = listing(tmp_path)
    freed = clean(targets, dry_run=True)
    assert freed == {"store": 4123, "executed notebooks": 50, "figures": 4123}
    assert listing(tmp_path) == before


def test_clean_missing_targets_free_nothing(tmp_path):
    assert clean({"store": tmp_path / "nope", "figures": tmp_path / "a" / "b"}) == {"store": 0, "figures": 0}
    assert list(tmp_path.iterdir()) == []


def test_clean_finishes_a_crashed_removal(tmp_path):
    targets = outputs(tmp_path)
    write(tmp_path / "project" / ".store-deleting-999999" / "half.bin", 11)
    assert clean({"store": targets["store"]}) == {"store": 4123 + 11}
    assert not (tmp_path / "project" / ".store-deleting-999999").exists()
    assert targets["figures"].exists()


def project_root(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    write(root / "pyproject.toml", 3)
    return root


def git_checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root / ".git" / "HEAD", 3)
    return root


def git_worktree(tmp_path: Path) -> Path:
    root = tmp_path / "worktree"
    write(root / ".git", 3)  # a worktree's .git is a file
    return root


@pytest.mark.parametrize(
    ("unsafe", "reason"),
    [
        (project_root, "project root"),
        (git_checkout, "project root"),
        (git_worktree, "project root"),
        (lambda _: Path("/"), "filesystem root"),
        (lambda _: Path.home(), "home directory"),
        (lambda _: Path("."), "current directory"),
    ],
)
def test_clean_refuses_unsafe_targets_and_deletes_nothing(tmp_path, unsafe, reason, no_deletion):
    targets = outputs(tmp_path)
    bad = unsafe(tmp_path)
    before = listing(tmp_path)
    with pytest.raises(ValueError, match=f"refusing to delete danger at .*{reason}"):
        clean({**targets, "danger": bad})
    with pytest.raises(ValueError, match=f"refusing to delete danger at .*{reason}"):
        clean({"danger": bad, **targets})
    assert listing(tmp_path) == before


def test_clean_refuses_the_parent_of_the_current_directory(tmp_path, monkeypatch, no_deletion):
    targets = outputs(tmp_path)
    monkeypatch.chdir(targets["store"])
    with pytest.raises(ValueError, match="current directory"):
        clean({"store": Path("..") / "store"})
    with pytest.raises(ValueError, match="current directory"):
        clean({"project": Path("../..")})
    assert targets["store"].is_dir()


def test_clean_refuses_symlinks_and_files(tmp_path, no_deletion):
    targets = outputs(tmp_path)
    link = tmp_path / "store-link"
    link.symlink_to(targets["store"], target_is_directory=True)
    with pytest.raises(ValueError, match="symbolic link"):
        clean({"store": link})
    with pytest.raises(ValueError, match="not a directory"):
        clean({"store": tmp_path / "project" / "keep.txt"})
    assert directory_size(targets["store"]) == 4123
    assert os.path.islink(link)
