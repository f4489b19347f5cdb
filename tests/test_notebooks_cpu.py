"""The notebooks whose claims are measured in the ``cpu`` profile run in it, with their asserts on.

Each notebook runs in a fresh kernel (nbclient, as ``make docs`` runs it) with ``RADLIB_PROFILE=cpu`` (a 2-core
laptop's sizes, no overrides), so its "what you should see" checks, the numeric claims included (COBRA stays robust
where CSI collapses), are executed, not skipped or stripped; its executed copy then passes
``docs/notebook_checks.py`` (every figure shown, no number in the prose that the run did not print). They share one fresh checkpoint cache, in this order, as a reader running the
series would: 00 trains CSI and COBRA (seed 0), 04 adds seeds 1-2 and COBRA without opposite pairs, 06 reloads
00's detectors, 09 reuses all of them and trains its other rows. ``make test`` leaves these four out of the smoke
nbval run and of the tiny-size lab-path run (the cpu run executes every branch those would). Measured times:
``notebooks/README.md``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
sys.path.insert(0, str(NB_DIR.parent / "docs"))
from notebook_checks import check_notebook  # noqa: E402
# the notebooks that carry the central claims; the rest: smoke under nbval, lab paths at tiny sizes (README)
CPU_NOTEBOOKS = ["00_quickstart", "04_opposite_pairs", "06_robust_evaluation", "09_baselines_and_ablations"]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", CPU_NOTEBOOKS)
def test_notebook_claims_hold_in_cpu(name, cpu_cache, monkeypatch):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    before = {p.name for p in cpu_cache.iterdir()}
    # the kernel inherits this environment
    for key, value in {"RADLIB_PROFILE": "cpu", "RADLIB_DEVICE": "cpu", "RADLIB_CACHE": str(cpu_cache),
                       "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RADLIB_PROFILE_OVERRIDES", raising=False)
    monkeypatch.delenv("CI", raising=False)
    path = NB_DIR / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}})
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{name} failed in cpu:\n{str(err)[-5000:]}")
    stdout = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")
    assert "profile 'cpu'" in stdout and "overridden" not in stdout
    assert "checks passed" in stdout
    assert check_notebook(path, nb) == [], "the executed copy must show its figures and print its numbers"
    after = {p.name for p in cpu_cache.iterdir()}
    assert after >= before and after, "the notebook should train into (or load from) the shared cache"
    if name == "00_quickstart" and not before:  # two trained entries, and the reference rows' folder
        runs = sorted(n for n in after if not n.startswith("reference-"))
        assert len(runs) == 2 and after - set(runs) == {"reference-surfaces-metal"}, \
            f"00 trains CSI and COBRA into a fresh cache and keeps its reference rows: {sorted(after)}"
    if name == "06_robust_evaluation" and before:  # after 00 (the order of this module): nothing new to train
        assert after == before, f"06 should reload 00's detectors, it trained {sorted(after - before)}"


def test_make_test_runs_these_in_cpu_not_smoke():
    """The Makefile's list (left out of the smoke nbval and lab-path runs) is this module's list."""
    make = (NB_DIR.parent / "Makefile").read_text()
    line = next(ln for ln in make.splitlines() if ln.startswith("CPU_NOTEBOOKS"))
    assert line.split(":=", 1)[1].split() == CPU_NOTEBOOKS
