"""radlib sweep: a grid of tiny runs on the CPU, killed midway and re-run; failures retried and reported; the merged
table against an independent computation."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from radlib.sweep import PAPER_AUROC, SweepRun, SweepSpec, merge_results, run_status

GRID = ["--data", "digits", "--categories", "0", "--methods", "csi", "cobra", "--seeds", "0", "1",
        "--profile", "smoke", "--epochs", "3", "--steps", "1", "--max-test", "30"]


def _sweep(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "radlib", "sweep", *GRID, "--out", str(out), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "RADLIB_CACHE": "off"}


def _spec() -> SweepSpec:
    return SweepSpec(datasets=("digits",), categories=("0",), methods=("csi", "cobra"), seeds=(0, 1), profile="smoke",
                     epochs=3, steps=1, max_test=30)


def test_a_killed_sweep_completes_on_rerun_without_retraining_finished_runs(tmp_path):
    spec, out = _spec(), tmp_path / "sweep"
    runs = spec.runs()
    assert [r.id for r in runs] == ["digits-0-csi-s0", "digits-0-csi-s1", "digits-0-cobra-s0", "digits-0-cobra-s1"]
    proc = subprocess.Popen(_sweep(out, "--workers", "1"), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, text=True)
    killed_at = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            states = [run_status(r, spec, out) for r in runs]
            if states[:2] == ["evaluated", "evaluated"] and states[2] == "partial" and \
                    (runs[2].folder(out) / "last.pt").exists():
                os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the training it runs, mid-run
                killed_at = states
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed_at is not None, f"the sweep ended before the third run was midway: {proc.stdout.read()}"
    epochs_before = json.loads((runs[2].folder(out) / "run.json").read_text())["epochs_done"]
    assert 1 <= epochs_before < 3
    finished = {r.id: (r.folder(out) / "last.pt").stat().st_mtime_ns for r in runs[:2]}
    evals = {r.id: (r.folder(out) / spec.eval_name).read_bytes() for r in runs[:2]}

    again = subprocess.run(_sweep(out, "--workers", "1"), env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    lines = again.stdout.splitlines()
    assert any(line.startswith("skipped  digits-0-csi-s0") for line in lines)
    assert any(line.startswith("skipped  digits-0-csi-s1") for line in lines)
    assert any(line.startswith("done     digits-0-cobra-s0") for line in lines)
    assert "2 done, 2 skipped (finished before), 0 failed" in again.stdout
    for r in runs[:2]:  # not retrained, not re-evaluated
        assert (r.folder(out) / "last.pt").stat().st_mtime_ns == finished[r.id]
        assert (r.folder(out) / spec.eval_name).read_bytes() == evals[r.id]
    # the killed run resumed from its checkpoint (not from scratch)
    log = (out / "logs" / "digits-0-cobra-s0.log").read_text()
    assert f"at epoch {epochs_before} of 3" in log and log.count(" -m radlib train ") == 2
    history = json.loads((runs[2].folder(out) / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert all(run_status(r, spec, out) == "evaluated" for r in runs)
    table = (out / "results.md").read_text()
    assert "# Sweep results (4 of 4 runs evaluated)" in table
    assert "| digits | 0 | csi | 2 |" in table and "| digits | 0 | cobra | 2 |" in table
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 4 and data["missing"] == [] and data["failed"] == []


def test_a_failing_run_is_retried_then_reported(tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "radlib", "sweep", "--data", "digits", "--categories", "0", "12", "--methods", "csi",
           "--seeds", "0", "--profile", "smoke", "--epochs", "1", "--steps", "1", "--max-test", "30", "--retries", "1",
           "--out", str(out)]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 done, 0 skipped (finished before), 1 failed" in res.stdout
    failed = [line for line in res.stdout.splitlines() if line.startswith("failed   digits-12-csi-s0 after 2 attempts")]
    assert failed and "12" in failed[0], res.stdout
    log = (out / "logs" / "digits-12-csi-s0.log").read_text()
    assert log.count(" -m radlib train ") == 2  # tried twice
    data = json.loads((out / "results.json").read_text())
    assert data["missing"] == ["digits-12-csi-s0"] and [f["run"] for f in data["failed"]] == ["digits-12-csi-s0"]
    assert "digits-12-csi-s0 failed after 2 attempts" in (out / "results.md").read_text()


def test_the_slurm_launcher_runs_a_job_array_through_submitit(tmp_path):
    pytest.importorskip("submitit")
    from radlib.sweep import run_sweep
    spec = SweepSpec(datasets=("digits",), categories=("0",), methods=("msc",), seeds=(0, 1), profile="smoke",
                     epochs=1, steps=1, max_test=30)
    outcomes = run_sweep(spec, tmp_path, launcher="slurm", slurm={"cluster": "local", "timeout_min": 10})
    assert [o.status for o in outcomes] == ["done", "done"]
    assert len(list((tmp_path / "slurm").glob("*_submitted.pkl"))) == 2  # one array task per run
    again = run_sweep(spec, tmp_path, launcher="slurm", slurm={"cluster": "local"})
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert json.loads((tmp_path / "results.json").read_text())["missing"] == []


def _fake_eval(path: Path, clean: float, attacked: float, checks_failed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    checks = [{"name": f"c{i}", "passed": i >= checks_failed, "detail": "", "data": {}} for i in range(2)]
    path.write_text(json.dumps({"clean_auroc": clean, "attacks": [{"name": "pgd-10@8/255", "auroc": attacked}],
                                "checks": checks}))


def test_merged_table_is_mean_and_sample_std_per_row_with_the_paper_beside(tmp_path):
    spec = SweepSpec(datasets=("mvtec_ad",), categories=("bottle", "cable"), methods=("cobra",), seeds=(0, 1, 2))
    rng = np.random.default_rng(0)
    values = {}
    for run in spec.runs():
        c, a = rng.uniform(50, 100), rng.uniform(0, 50)
        values[run.id] = (c, a)
        _fake_eval(run.folder(tmp_path) / spec.eval_name, c, a, checks_failed=1 if run.seed == 2 else 0)
    data = merge_results(spec, tmp_path)
    table = (tmp_path / "results.md").read_text()
    for cat in ("bottle", "cable"):
        c = np.array([values[f"mvtec_ad-{cat}-cobra-s{s}"][0] for s in range(3)])
        a = np.array([values[f"mvtec_ad-{cat}-cobra-s{s}"][1] for s in range(3)])
        row = f"| mvtec_ad | {cat} | cobra | 3 | {c.mean():.1f} ± {c.std(ddof=1):.1f} | {a.mean():.1f} ± " \
              f"{a.std(ddof=1):.1f} | 1 |"
        assert row in table, table
    cat_means = [np.mean([values[f"mvtec_ad-{cat}-cobra-s{s}"][0] for s in range(3)]) for cat in ("bottle", "cable")]
    assert data["summary"][0]["clean"] == pytest.approx(np.mean(cat_means))
    assert data["summary"][0]["paper"] == list(PAPER_AUROC[("mvtec_ad", "cobra")])
    assert f"| {PAPER_AUROC[('mvtec_ad', 'cobra')][0]} / {PAPER_AUROC[('mvtec_ad', 'cobra')][1]} |" in table


def test_run_status_reads_the_record_view(tmp_path):
    spec = _spec()
    run = SweepRun("digits", "0", "csi", 0)
    assert run_status(run, spec, tmp_path) == "new"
    folder = run.folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"x")
    assert run_status(run, spec, tmp_path) == "partial"  # a checkpoint without its view: resume it
    (folder / "run.json").write_text(json.dumps({"epochs_done": 2, "config": {"epochs": 3}}))
    assert run_status(run, spec, tmp_path) == "partial"
    (folder / "run.json").write_text(json.dumps({"epochs_done": 3, "config": {"epochs": 3}, "profile": {"name": "cpu"}}))
    assert run_status(run, spec, tmp_path) == "partial"  # another profile than the sweep's: train decides (refuses)
    (folder / "run.json").write_text(json.dumps({"epochs_done": 3, "config": {"epochs": 3},
                                                 "profile": {"name": "smoke"}}))
    assert run_status(run, spec, tmp_path) == "trained"
    (folder / spec.eval_name).write_text("{broken")
    assert run_status(run, spec, tmp_path) == "trained"  # a damaged evaluation file is redone
    _fake_eval(folder / spec.eval_name, 90, 50)
    assert run_status(run, spec, tmp_path) == "evaluated"


@pytest.mark.parametrize("kwargs,message", [
    (dict(methods=("cobra", "cobra")), "methods lists a value twice"),
    (dict(seeds=()), "a sweep needs at least one of seeds"),
    (dict(methods=("nope",)), "unknown method 'nope'"),
    (dict(attack="fgsm"), "attack must be pgd, apgd, square, standard or none"),
])
def test_bad_sweep_specs_are_refused(kwargs, message):
    base = dict(datasets=("digits",), categories=("0",), methods=("csi",), seeds=(0,))
    with pytest.raises(ValueError, match=message):
        SweepSpec(**{**base, **kwargs})


def test_cli_refuses_a_bad_gpu_list_in_one_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "radlib", "sweep", "--data", "digits", "--categories", "0",
                          "--gpus", "zero", "--out", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 2
    assert "give 'all' or GPU indices like 0,1,2; got 'zero'" in res.stderr and "Traceback" not in res.stderr
