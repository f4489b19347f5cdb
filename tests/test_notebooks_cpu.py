"""The notebooks whose claims are measured in the ``cpu`` profile run in it, with their asserts on.

Each ``.py`` twin runs as a plain script with ``RADLIB_PROFILE=cpu`` (a 2-core laptop's sizes, no overrides), so
its "what you should see" checks, the numeric claims included (COBRA stays robust where CSI collapses), are
executed, not skipped or stripped. The checkpoint cache is a fresh folder: every detector is trained here.
Measured times: ``notebooks/README.md``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
CPU_NOTEBOOKS = ["00_quickstart"]  # the rest: smoke under nbval, lab paths at tiny sizes (see the README)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", CPU_NOTEBOOKS)
def test_notebook_claims_hold_in_cpu(name, tmp_path):
    env = {**os.environ, "RADLIB_PROFILE": "cpu", "RADLIB_DEVICE": "cpu", "RADLIB_CACHE": str(tmp_path / "cache"),
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}
    env.pop("RADLIB_PROFILE_OVERRIDES", None)
    env.pop("CI", None)
    proc = subprocess.run([sys.executable, str(NB_DIR / f"{name}.py")], cwd=NB_DIR, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, f"{name} failed in cpu:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "profile 'cpu'" in proc.stdout and "overridden" not in proc.stdout
    assert "checks passed" in proc.stdout
    assert any((tmp_path / "cache").iterdir()), "the notebook should have trained into the cache"
