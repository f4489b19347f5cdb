"""Shared test fixtures: small thread count, the real-data folder, and tiny models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RADLIB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def cpu_cache(tmp_path_factory) -> Path:
    """One fresh checkpoint cache for the whole session: the ``cpu`` notebooks (tests/test_notebooks_cpu.py) and
    the robust-gap test train the same detectors (the profile's surfaces/metal, seed 0, the ``cpu`` recipe), so they
    train once."""
    return tmp_path_factory.mktemp("radlib_cpu_cache")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests using it skip with a message when it is absent."""
    if not (SHARED_DATA / "casting").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}/casting (the ../shared folder beside the repo)")
    return SHARED_DATA
