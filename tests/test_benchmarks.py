"""The benchmark scripts run end to end (``--quick``: tiny sizes on the CPU). Their numbers are not checked:
speed is measured by the scripts on a GPU, never asserted in tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, *args], cwd=BENCH, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("args", [["bench_train.py"], ["bench_eval.py", "--precision", "bf16", "--precision-check"],
                                  ["bench_cpu_memory.py"]], ids=["train", "eval-bf16", "cpu-memory"])
def test_throughput_scripts_run(args):
    out = _run(*args, "--quick")
    assert "raw ResNet-18" in out and "fraction of limit" in out
    if "--precision-check" in args:
        assert "Square-2 (" in out and "queries/s)" in out and "standard: APGD-2 x2 + Square-2" in out
        from radlib.device import cpu_has_native_bf16
        if cpu_has_native_bf16():  # bf16 is timed and checked only where radlib would use it
            assert "precision: bf16 autocast" in out and "| within 1 point |" in out
        else:
            assert "no native bf16" in out and "precision: fp32" in out


@pytest.mark.slow
def test_recipe_script_runs_with_every_reference_row():
    out = _run("bench_recipe.py", "--quick", "--data", "surfaces", "--methods", "csi", "--scores", "own", "knn",
               "--random-init", "epochs=1")
    final = out[out.rindex("| data | method |"):]  # rows are printed as they come, then the whole table
    table = [line for line in final.splitlines() if line.startswith("| surfaces")]
    assert len(table) == 4, out  # pixel kNN, random init, csi own, csi knn
    assert "pixel kNN" in table[0] and "random init" in table[1]
    assert "certified" in out and "command: `python benchmarks/bench_recipe.py" in out


def test_recipe_script_rejects_a_bad_override():
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "bench_recipe.py", "--quick", "epochs"], cwd=BENCH, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "FIELD=VALUE" in proc.stderr


def test_gpu_session_script_parses_and_rejects_unknown_stages(tmp_path):
    script = BENCH / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    env = {**os.environ, "OUT": str(tmp_path), "PY": sys.executable}
    proc = subprocess.run(["bash", str(script), "nonsense"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown stage" in proc.stdout


@pytest.mark.slow
def test_fingerprint_is_deterministic(tmp_path):
    """The same code prints the same fingerprint (what makes it a test of a refactor): two runs, one file each."""
    import json

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path in (a, b):
        _run("fingerprint.py", "--profile", "smoke", "--methods", "csi", "msc", "--out", str(path))
    fa, fb = json.loads(a.read_text()), json.loads(b.read_text())
    assert set(fa) == {"csi", "msc"} and len(fa["csi"]["weights_sha256"]) == 16
    for m in fa:
        assert {k: v for k, v in fa[m].items() if k != "seconds"} == {k: v for k, v in fb[m].items() if k != "seconds"}


@pytest.mark.slow
def test_ddp_script_runs_one_and_two_processes():
    out = _run("bench_ddp.py", "--quick")
    assert "| 1 | — |" in out and "| 2 | synchronised |" in out and "| 2 | per process |" in out
    assert "raw ResNet-18 fwd+bwd, same run" in out
