"""tools/cuda_check.py: its verdict is EQUIVALENT only when every outcome is shown equivalent
at the protocol's margins, and a device the machine lacks is refused before anything trains."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cuda_check():
    spec = importlib.util.spec_from_file_location("cuda_check", ROOT / "tools" / "cuda_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _arm(rng, length: float, test_return: float, n: int = 60) -> dict:
    return {"length": rng.normal(length, 10, n), "test return": rng.normal(test_return, 2, n)}


def test_the_verdict_needs_every_outcome_shown_equivalent(cuda_check):
    rng = np.random.default_rng(0)
    fused = _arm(rng, 120, 195)
    lines, shown = cuda_check.verdict(fused, _arm(rng, 120, 195), "CartPole-v0", 0.05)
    assert shown and len(lines) == 2 and all(line.endswith("-> equivalent") for line in lines)
    assert "margin +-12.0" in lines[0] and "margin +-9.7" in lines[1]  # 10% of ~120 episodes, 5% of ~195 above 0
    lines, shown = cuda_check.verdict(fused, _arm(rng, 160, 195), "CartPole-v0", 0.05)  # trains 40 episodes longer
    assert not shown and lines[0].endswith("-> not shown equivalent") and lines[1].endswith("-> equivalent")
    few = {name: values[:3] for name, values in _arm(rng, 120, 195).items()}  # too few seeds to tell
    assert not cuda_check.verdict({k: v[:3] for k, v in fused.items()}, few, "CartPole-v0", 0.05)[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_missing_device_is_refused_before_anything_trains(cuda_check, capsys):
    assert cuda_check.main(["--device", "cuda"]) == 2
    assert capsys.readouterr().err == "error: device: 'cuda' is not available on this machine (no CUDA); use cpu\n"
