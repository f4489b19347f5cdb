"""Sweeps: a grid of (dataset, category, method, seed) runs fanned out over local workers or a Slurm cluster,
resumable, merged into one table.

Each run is the command line's own ``radlib train`` then ``radlib evaluate --json``, in a process of its own, so a
sweep computes exactly what those commands do and a crash takes one run down, not the sweep. Layout of ``OUT``::

    OUT/<dataset>/<category>/<method>/seed<k>/   the run folder (last.pt, run.json, history.json) and eval_*.json
    OUT/logs/<run id>.log                        what train and evaluate printed, every attempt appended
    OUT/results.md, OUT/results.json             the merged table

**Resumable.** A run whose record is complete and whose evaluation file exists is skipped (nothing is retrained
or re-evaluated); a run killed midway resumes from its last checkpoint (``radlib train`` resumes a run folder of
the same config bitwise on the CPU); a trained but unevaluated run is only evaluated. So the same command, run
again after a kill, a preemption or a failure, finishes the sweep.

**Where runs go.** ``local``: ``workers`` runs at a time on this machine; with ``gpus`` each worker owns one GPU
(``CUDA_VISIBLE_DEVICES``), otherwise the CPU cores are split between the workers (``OMP_NUM_THREADS``).
``slurm``: one Slurm job-array task per run through submitit (``pip install submitit``), then the same merge.
A failed run is retried ``retries`` times (it resumes where it stopped) and reported with the last line it printed.

**The table.** One row per (dataset, category, method): mean ± sample std over the seeds of the clean AUROC and of
the AUROC under the sweep's attack, the number of seeds and of failed gradient-masking checks; then one row per
(dataset, method) averaged over categories, with the paper's number (COBRA, ICLR 2025, Table 1) beside it where the
paper reports that data set and method.

Example:
    >>> from radlib.sweep import SweepSpec
    >>> spec = SweepSpec(datasets=("mvtec_ad",), categories=("bottle", "cable"), methods=("cobra",), seeds=(0, 1))
    >>> [run.id for run in spec.runs()]
    ['mvtec_ad-bottle-cobra-s0', 'mvtec_ad-bottle-cobra-s1', 'mvtec_ad-cable-cobra-s0', 'mvtec_ad-cable-cobra-s1']
    >>> spec.runs()[0].folder(Path("runs/table")).as_posix(), spec.eval_name
    ('runs/table/mvtec_ad/bottle/cobra/seed0', 'eval_pgd_10_8_255_profile_all.json')
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any, Literal, Sequence

__all__ = ["SweepRun", "SweepSpec", "RunOutcome", "run_sweep", "merge_results", "PAPER_AUROC", "run_status"]

#: the paper's Table 1 (clean, PGD-attacked AUROC %, mean over the data set's categories) for radlib's data sets
PAPER_AUROC: dict[tuple[str, str], tuple[float, float]] = {
    ("mvtec_ad", "cobra"): (89.1, 75.1), ("mvtec_ad", "csi"): (63.8, 4.6),
    ("visa", "cobra"): (75.2, 73.8), ("visa", "csi"): (62.5, 0.3),
    ("cifar10", "cobra"): (83.7, 62.3), ("cifar10", "csi"): (94.3, 10.6),
    ("fashion_mnist", "cobra"): (93.1, 89.6), ("fashion_mnist", "csi"): (92.7, 5.8),
    ("mnist", "cobra"): (92.8, 96.4), ("mnist", "csi"): (93.8, 3.4),
}


@dataclass(frozen=True)
class SweepRun:
    """One cell of the grid."""

    dataset: str
    category: str
    method: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.dataset}-{self.category}-{self.method}-s{self.seed}"

    def folder(self, out: Path) -> Path:
        return out / self.dataset / self.category / self.method / f"seed{self.seed}"


@dataclass(frozen=True)
class SweepSpec:
    """The grid and what every run does. ``categories``: the normal classes (one-vs-rest data sets) or categories;
    ``epochs``, ``batch_size``: None = the profile's; ``attack``/``steps``/``eps``/``score``/``max_test``: the
    evaluation (as ``radlib evaluate``); ``root``: the data folder."""

    datasets: tuple[str, ...]
    categories: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    profile: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    attack: str = "pgd"
    steps: int = 10
    eps: str = "8/255"
    score: str | None = None
    max_test: int | None = None
    root: str | None = None

    def __post_init__(self) -> None:
        from .methods import get_method
        for name in ("datasets", "categories", "methods", "seeds"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"a sweep needs at least one of {name}")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice: {list(values)}")
        for m in self.methods:
            get_method(m)
        from .specs import RUN_ATTACKS
        if self.attack not in RUN_ATTACKS:
            raise ValueError(f"attack must be {', '.join(RUN_ATTACKS[:-1])} or {RUN_ATTACKS[-1]}, got {self.attack!r}")

    def runs(self) -> list[SweepRun]:
        """Every run of the grid, dataset-major then category, method, seed."""
        return [SweepRun(d, str(c), m, int(s)) for d in self.datasets for c in self.categories for m in self.methods
                for s in self.seeds]

    @property
    def eval_name(self) -> str:
        """The run folder's evaluation file: one per evaluation setting, so another attack re-evaluates only."""
        eps = self.eps.replace("/", "_")
        return f"eval_{self.attack}_{self.steps}_{eps}_{self.score or 'profile'}_{self.max_test or 'all'}.json"

    def train_command(self, run: SweepRun, out: Path) -> list[str]:
        cmd = [sys.executable, "-m", "radlib", "train", "--data", run.dataset, "--category", run.category,
               "--method", run.method, "--seed", str(run.seed), "--out", str(run.folder(out))]
        for flag, value in (("--profile", self.profile), ("--epochs", self.epochs), ("--batch-size", self.batch_size),
                            ("--root", self.root)):
            if value is not None:
                cmd += [flag, str(value)]
        return cmd

    def evaluate_command(self, run: SweepRun, out: Path) -> list[str]:
        folder = run.folder(out)
        cmd = [sys.executable, "-m", "radlib", "evaluate", "--ckpt", str(folder / "last.pt"), "--attack", self.attack,
               "--steps", str(self.steps), "--eps", self.eps, "--json", str(folder / self.eval_name)]
        for flag, value in (("--score", self.score), ("--max-test", self.max_test), ("--root", self.root)):
            if value is not None:
                cmd += [flag, str(value)]
        return cmd


@dataclass
class RunOutcome:
    """What became of one run: ``"skipped"`` (finished before), ``"done"``, ``"failed"``; ``attempts`` made,
    ``message``: the last line the failing command printed."""

    run: SweepRun
    status: Literal["skipped", "done", "failed"]
    attempts: int = 0
    message: str = ""
    seconds: float = 0.0


def run_status(run: SweepRun, spec: SweepSpec, out: Path) -> Literal["evaluated", "trained", "partial", "new"]:
    """Where a run stands: ``evaluated`` (complete record and its evaluation file), ``trained`` (complete record),
    ``partial`` (a checkpoint before the last epoch, or of other settings than the sweep's: ``radlib train`` then
    resumes it or refuses it) or ``new``. Reads ``run.json`` (the record's view, written
    atomically after ``last.pt``); a missing or unreadable one counts as no progress there."""
    folder = run.folder(out)
    try:
        view = json.loads((folder / "run.json").read_text())
        done, total = int(view["epochs_done"]), int(view["config"]["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return "partial" if (folder / "last.pt").exists() else "new"
    if done < total or not _recorded_as(view, spec):
        return "partial"  # radlib train resumes it, or refuses a run of other settings in one line (reported)
    try:
        json.loads((folder / spec.eval_name).read_text())
        return "evaluated"
    except (OSError, ValueError):
        return "trained"


def _recorded_as(view: dict[str, Any], spec: SweepSpec) -> bool:
    """Whether a run's record (its ``run.json`` view) was trained with the sweep's explicit settings."""
    config, profile = view.get("config") or {}, view.get("profile") or {}
    return ((spec.epochs is None or config.get("epochs") == spec.epochs)
            and (spec.batch_size is None or config.get("batch_size") == spec.batch_size)
            and (spec.profile is None or profile.get("name") == spec.profile))


def _execute(cmd: list[str], log: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``cmd`` with output appended to ``log``; returns (exit code, last non-empty output line)."""
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=False).returncode
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return rc, (lines[-1] if lines else "")


def run_one(run: SweepRun, spec: SweepSpec, out: Path, retries: int = 1, env: dict[str, str] | None = None
            ) -> RunOutcome:
    """Train (or resume) and evaluate one run, retrying a failed command up to ``retries`` times."""
    t0 = time.perf_counter()
    state = run_status(run, spec, out)
    if state == "evaluated":
        return RunOutcome(run, "skipped")
    log = out / "logs" / f"{run.id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if env is None else env)
    attempts, message = 0, ""
    while attempts <= retries:
        attempts += 1
        if run_status(run, spec, out) in ("new", "partial"):
            rc, message = _execute(spec.train_command(run, out), log, env)
            if rc != 0:
                continue
        rc, message = _execute(spec.evaluate_command(run, out), log, env)
        if rc == 0:
            return RunOutcome(run, "done", attempts, "", time.perf_counter() - t0)
    return RunOutcome(run, "failed", attempts, message, time.perf_counter() - t0)


def _worker_envs(workers: int, gpus: Sequence[int] | None) -> list[dict[str, str]]:
    """One environment per worker: its own GPU, or its share of the CPU cores."""
    base = dict(os.environ)
    if gpus:
        return [{**base, "CUDA_VISIBLE_DEVICES": str(g)} for g in gpus]
    threads = max(1, (os.cpu_count() or 1) // workers)
    return [{**base, "OMP_NUM_THREADS": str(threads), "RADLIB_DEVICE": base.get("RADLIB_DEVICE", "cpu")}
            for _ in range(workers)]


def run_sweep(spec: SweepSpec, out: str | Path, *, workers: int | None = None, gpus: Sequence[int] | None = None,
              retries: int = 1, launcher: Literal["local", "slurm"] = "local",
              slurm: dict[str, Any] | None = None, log: Any = print) -> list[RunOutcome]:
    """Run every run of ``spec`` not finished yet, then write the merged table (:func:`merge_results`).

    Args:
        out: the sweep folder (created). workers: runs at a time (local; default: one per GPU in ``gpus``, else 1).
        gpus: the GPU indices to use, one worker each (local); None = the CPU.
        retries: further attempts of a failed run (each resumes where the last stopped).
        launcher: ``"local"`` or ``"slurm"`` (submitit; ``slurm`` holds its ``update_parameters`` arguments, e.g.
            ``{"slurm_partition": "gpu", "timeout_min": 120, "gpus_per_node": 1}``, and optionally ``"cluster"``:
            submitit's executor, ``"slurm"`` by default, ``"local"`` to run the same job array here).
        log: called with one line per finished run.
    Returns:
        one :class:`RunOutcome` per run, in grid order.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = spec.runs()
    if launcher == "slurm":
        outcomes = _run_slurm(runs, spec, out, retries, slurm or {})
    elif launcher == "local":
        n = workers or (len(gpus) if gpus else 1)
        if n < 1 or (gpus and n > len(gpus)):
            raise ValueError(f"workers must be >= 1 and at most one per GPU ({list(gpus or [])}), got {n}")
        envs: Queue[dict[str, str]] = Queue()
        for env in _worker_envs(n, gpus):
            envs.put(env)

        def job(run: SweepRun) -> RunOutcome:
            env = envs.get()
            try:
                result = run_one(run, spec, out, retries, env)
            finally:
                envs.put(env)
            log(f"{result.status:8s} {run.id}" + (f" after {result.attempts} attempts: {result.message}"
                                                   if result.status == "failed" else
                                                   f" ({result.seconds:.0f} s)" if result.status == "done" else ""))
            return result

        with ThreadPoolExecutor(max_workers=n) as pool:
            outcomes = list(pool.map(job, runs))
    else:
        raise ValueError(f"launcher must be 'local' or 'slurm', got {launcher!r}")
    merge_results(spec, out, outcomes)
    return outcomes


def _run_slurm(runs: list[SweepRun], spec: SweepSpec, out: Path, retries: int,
               params: dict[str, Any]) -> list[RunOutcome]:
    try:
        import submitit
    except ImportError:
        raise ValueError("the slurm launcher needs submitit: pip install submitit") from None
    params = dict(params)
    cluster = params.pop("cluster", "slurm")  # "local" runs the same job array on this machine (the tests)
    executor = submitit.AutoExecutor(folder=str(out / "slurm"), cluster=cluster)
    executor.update_parameters(**params)
    todo = [r for r in runs if run_status(r, spec, out) != "evaluated"]
    jobs = executor.map_array(lambda r: run_one(r, spec, out, retries), todo) if todo else []
    results = {}
    for r, job in zip(todo, jobs):
        try:
            results[r.id] = job.result()
        except Exception as e:  # the task itself died (time limit, node failure): report it, keep the others
            lines = [line for line in str(e).splitlines() if line.strip()]
            results[r.id] = RunOutcome(r, "failed", 1, f"{type(e).__name__}: {lines[-1] if lines else ''}")
    return [results.get(r.id, RunOutcome(r, "skipped")) for r in runs]


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _cell(values: list[float]) -> str:
    if not values:
        return "—"
    mean, std = _mean_std(values)
    return f"{mean:.1f}" if math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


@dataclass
class _Row:
    clean: list[float] = field(default_factory=list)
    attacked: list[float] = field(default_factory=list)
    failed_checks: int = 0


def merge_results(spec: SweepSpec, out: str | Path, outcomes: Sequence[RunOutcome] = ()) -> dict[str, Any]:
    """Read every run's evaluation file and write ``OUT/results.md`` and ``OUT/results.json``; returns the JSON.

    Rows: (dataset, category, method) with the seeds it has; then (dataset, method) over categories with the
    paper's number where it exists. Runs without an evaluation file are listed as missing (failed or not run)."""
    from .record import write_text_atomic
    out = Path(out)
    rows: dict[tuple[str, str, str], _Row] = {}
    per_run, missing = [], []
    attack_name = None
    for run in spec.runs():
        path = run.folder(out) / spec.eval_name
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            missing.append(run.id)
            continue
        attacks = result.get("attacks") or []
        robust = attacks[-1]["auroc"] if attacks else None
        attack_name = attacks[-1]["name"] if attacks else attack_name
        n_failed = sum(1 for c in result.get("checks", []) if not c.get("passed", True))
        row = rows.setdefault((run.dataset, run.category, run.method), _Row())
        row.clean.append(float(result["clean_auroc"]))
        if robust is not None:
            row.attacked.append(float(robust))
        row.failed_checks += n_failed
        per_run.append({**asdict(run), "clean": result["clean_auroc"], "attacked": robust, "failed_checks": n_failed})
    head = f"AUROC % under {attack_name}" if attack_name else "attacked AUROC %"
    lines = [f"# Sweep results ({len(per_run)} of {len(spec.runs())} runs evaluated)", "",
             f"Mean ± sample std over seeds; attacked: {head}; evaluation file `{spec.eval_name}`.", "",
             "| dataset | category | method | seeds | clean | attacked | failed masking checks |",
             "|---|---|---|---|---|---|---|"]
    for (d, c, m), row in rows.items():
        lines.append(f"| {d} | {c} | {m} | {len(row.clean)} | {_cell(row.clean)} | {_cell(row.attacked)} | "
                     f"{row.failed_checks} |")
    lines += ["", "Averaged over categories (each category's seed mean), beside the paper's Table 1:", "",
              "| dataset | method | categories | clean | attacked | paper clean / attacked |", "|---|---|---|---|---|---|"]
    summary = []
    for d in spec.datasets:
        for m in spec.methods:
            cats = [row for (dd, _, mm), row in rows.items() if dd == d and mm == m]
            if not cats:
                continue
            clean = [_mean_std(r.clean)[0] for r in cats]
            attacked = [_mean_std(r.attacked)[0] for r in cats if r.attacked]
            paper = PAPER_AUROC.get((d, m))
            paper_txt = "—" if paper is None else f"{paper[0]} / {paper[1]}"
            lines.append(f"| {d} | {m} | {len(cats)} | {_cell(clean)} | {_cell(attacked)} | {paper_txt} |")
            summary.append({"dataset": d, "method": m, "categories": len(cats), "clean": _mean_std(clean)[0],
                            "attacked": _mean_std(attacked)[0] if attacked else None,
                            "paper": None if paper is None else list(paper)})
    failed = [o for o in outcomes if o.status == "failed"]
    if missing or failed:
        lines += ["", f"Missing ({len(missing)}): " + ", ".join(missing)]
        lines += [f"- {o.run.id} failed after {o.attempts} attempts: {o.message}" for o in failed]
    data = {"spec": asdict(spec), "runs": per_run, "summary": summary, "missing": missing,
            "failed": [{"run": o.run.id, "attempts": o.attempts, "message": o.message} for o in failed]}
    write_text_atomic(out / "results.md", "\n".join(lines) + "\n")
    write_text_atomic(out / "results.json", json.dumps(data, indent=1))
    return data
