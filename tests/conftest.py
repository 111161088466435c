"""Shared pytest fixtures: paths to ../shared (real data, parity fixtures) and small helpers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEBLURKIT_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
PARITY = SHARED / "parity"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"real data folder missing: {DATA} (CI places ../shared beside the checkout)")
    return DATA


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    if not PARITY.is_dir():
        pytest.fail(f"parity fixtures missing: {PARITY}")
    return PARITY
