"""Execute the notebook series and keep the executed copies, with their figures, for readers (`make docs`).

    python docs/build_notebooks.py [--profile cpu] [--only 00 04] [--out docs/notebooks]

Each ``notebooks/NN_*.ipynb`` runs top to bottom in a fresh kernel (working directory ``notebooks/``, so the
checkpoint cache is the checkout's ``runs/cache`` unless ``$RADLIB_CACHE`` says otherwise), in the order of the
series: a detector trained by one notebook is loaded by the next. The executed copy goes to ``--out`` (the sources
in ``notebooks/`` stay output-free), and ``--out/TIMES.md`` records each notebook's wall time, the profile, the
cache folder and the machine, so `notebooks/README.md` can quote measured numbers. Time a cold series with
``RADLIB_CACHE=$(mktemp -d) make docs``.

A notebook that fails stops the build with one line naming it and its error, and a non-zero exit. So does an
executed copy that fails ``docs/notebook_checks.py`` (a figure drawn but not shown, a number in the prose that the
run did not print): one line per problem.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"


def machine() -> str:
    import torch

    from radlib.device import autocast_dtype
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    bf16 = autocast_dtype(torch.device("cpu")) is not None
    return (f"{cpu}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}, "
            f"bf16 training {'yes' if bf16 else 'no (fp32)'}; torch {torch.__version__}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu", help="RADLIB_PROFILE for every notebook (default cpu)")
    ap.add_argument("--only", nargs="*", default=None, help="notebook numbers to run (default: all, in order)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "notebooks"), help="folder for the executed copies")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    ap.add_argument("--keep-going", action="store_true", help="run the other notebooks after a failure (exit 1)")
    args = ap.parse_args(argv)

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    sys.path.insert(0, str(ROOT / "docs"))
    from notebook_checks import check_notebook

    notebooks = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [p for p in notebooks if p.name[:2] in set(args.only)]
        if not notebooks:
            print(f"error: no notebook numbered {' '.join(args.only)} in {NB_DIR}", file=sys.stderr)
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["RADLIB_PROFILE"] = args.profile
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ.pop("RADLIB_PROFILE_OVERRIDES", None)
    cache = os.environ.get("RADLIB_CACHE") or str(ROOT / "runs" / "cache")
    rows, failed = [], []
    total = 0.0
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(NB_DIR)}})
        t0 = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError as err:
            last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            print(f"error: {path.name} failed in profile {args.profile} after {time.perf_counter() - t0:.0f} s: "
                  f"{last}", file=sys.stderr, flush=True)
            nbformat.write(nb, out / path.name)  # the partial copy shows where it stopped
            if not args.keep_going:
                return 1
            failed.append(path.stem)
            continue
        seconds = time.perf_counter() - t0
        total += seconds
        nbformat.write(nb, out / path.name)
        rows.append((path.stem, seconds))
        print(f"{path.stem:40s} {seconds / 60:5.1f} min", flush=True)  # timed even when a check below fails
        problems = check_notebook(path, nb)
        if problems:
            print("\n".join(f"error: {p}" for p in problems), file=sys.stderr, flush=True)
            if not args.keep_going:
                return 1
            failed.append(path.stem)
    lines = [f"# Executed notebooks: wall times ({dt.date.today().isoformat()})", "",
             f"profile `{args.profile}`; cache `{cache}`; machine: {machine()}", "",
             "| notebook | wall time (m:ss) |", "|---|---|"]
    lines += [f"| {name} | {int(s // 60)}:{int(s % 60):02d} |" for name, s in rows]
    lines += [f"| **total** | **{int(total // 60)}:{int(total % 60):02d}** |", ""]
    if failed:
        print(f"error: {len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.only is None:
        (out / "TIMES.md").write_text("\n".join(lines))
    else:
        print("\n".join(lines))
    size = sum(p.stat().st_size for p in out.glob("*.ipynb")) / 2**20
    print(f"total {total / 60:.1f} min; {len(rows)} notebooks in {out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
