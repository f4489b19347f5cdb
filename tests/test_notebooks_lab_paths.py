"""Every notebook's ``lab``-only code paths run, on a CPU, at tiny sizes.

CI executes the notebooks in the ``smoke`` profile, which skips whatever a notebook guards with
``if profile.name != "smoke"`` (extra models, sweeps, the lab "what you should see" checks). Those branches
would otherwise first run on a borrowed GPU, where a typo costs minutes of device time. Here each notebook's
``.py`` twin runs as a plain script with ``RADLIB_PROFILE=lab`` and ``RADLIB_PROFILE_OVERRIDES`` shrinking the
sizes. The asserts run (no ``python -O``): checks that hold at any size must pass here, and the numeric claims
are skipped by the notebooks themselves (``profile.asserts_claims`` is False for an overridden profile: their
numbers need real sizes). Any exception fails the test. The notebooks of ``test_notebooks_cpu.CPU_NOTEBOOKS`` are
left out: they run in the real ``cpu`` profile, whose claims are guarded by ``profile.asserts_claims`` like
``lab``'s, so every branch a tiny ``lab`` run would take runs there with real numbers.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_notebooks_cpu import CPU_NOTEBOOKS  # these run in the real cpu profile instead: every branch of theirs

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SCRIPTS = [p for p in sorted(NB_DIR.glob("[0-9][0-9]_*.py")) if p.stem not in CPU_NOTEBOOKS]
TINY_LAB = ("image_size=32,low_res_size=32,n_train=48,n_test=32,max_train=64,max_test=48,epochs=1,batch_size=16,"
            "warmup_epochs=0,width=16,train_attack_steps=1,eval_steps=2,eval_samples=1")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_lab_code_paths_run(script):
    env = {**os.environ, "RADLIB_PROFILE": "lab", "RADLIB_PROFILE_OVERRIDES": TINY_LAB, "RADLIB_DEVICE": "cpu",
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}
    env.pop("CI", None)
    proc = subprocess.run([sys.executable, str(script)], cwd=NB_DIR, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, (f"{script.name} failed in its lab code paths:\n{proc.stdout[-3000:]}\n"
                                  f"{proc.stderr[-5000:]}")
    assert "profile 'lab'" in proc.stdout and "overridden" in proc.stdout
