"""Disk usage: exact byte counts, valid results only (guarded removal: tests/test_ownership.py)."""

from pathlib import Path

import numpy as np
import pytest

from ebnb.disk import directory_size, human_size, result_sizes
from ebnb.store import Store


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
