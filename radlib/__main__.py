"""Command line: ``python -m radlib {datasets,train,evaluate,sweep,demo}`` (also installed as ``radlib``)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

__all__ = ["main", "parse_eps"]


def parse_eps(text: str) -> float:
    """argparse type: ``"8/255"`` -> 0.0313..., ``"0.03"`` -> 0.03 (pixel units); see :func:`radlib.evaluate.parse_eps`."""
    from .evaluate import parse_eps as _parse
    try:
        return _parse(text)
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _cmd_datasets(args: argparse.Namespace) -> int:
    from . import data
    for name, desc in data.available().items():
        print(f"{name:15s} {desc}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .distributed import launched_by_torchrun
    if launched_by_torchrun():  # torchrun --nproc_per_node=N -m radlib train ...: one run on N processes
        return _train_distributed(args)
    return _train(args)


def _train_distributed(args: argparse.Namespace) -> int:
    """Every rank loads the same data and checks the same things; rank 0 alone prints and writes the run."""
    import contextlib
    import io

    import torch.distributed as dist
    rank = int(os.environ.get("RANK", "0"))
    quiet = contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext()
    try:
        with quiet:
            return _train(args, distributed=True)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(args: argparse.Namespace, distributed: bool = False) -> int:
    from .device import select_device
    from .pipeline import check_test_split, load_data
    from .profiles import get_profile
    from .record import Provenance, identity_differences, load_run
    from .train import TrainConfig, check_resume, check_run_folder, train
    if args.keep is not None and args.purify is None:
        raise ValueError("--keep applies to --purify only; add --purify or drop --keep")
    if args.no_sync_batchnorm and not distributed:
        raise ValueError("--no-sync-batchnorm applies to a run on several processes only (torchrun "
                         "--nproc_per_node=N -m radlib train ...)")
    if args.out.strip() == "":
        raise ValueError("--out is empty text; give a folder name")
    device = select_device(args.device)
    out = Path(args.out)
    check_run_folder(out)
    _writable_folder(out, "--out")
    profile = get_profile(args.profile)
    root = str(Path(args.root).resolve()) if args.root else None  # absolute: evaluate may run from elsewhere
    ds = load_data(args.data, args.category, args.image_size, profile, seed=args.seed, root=root,
                   contamination=args.contamination, contamination_of="train")
    check_test_split(ds)
    ckpt = out / "last.pt"
    record = load_run(ckpt)[0] if ckpt.exists() else None
    if record is not None:  # resume only the same run: same profile, same data
        differs = identity_differences(record.data or {}, Provenance.of(ds).data or {})
        if record.profile != asdict(profile):
            old = record.profile or {}
            differs += [f"profile {k} {old.get(k)!r} -> {v!r}" for k, v in asdict(profile).items() if old.get(k) != v]
        if differs:
            raise ValueError(f"{out} holds a run on other data or another profile ({'; '.join(differs)}); use another "
                             f"--out, or delete {out}")
    purification = None
    if args.purify is not None:
        from .purify import purify
        purification = purify(ds, args.purify, keep=0.8 if args.keep is None else args.keep, profile=profile,
                              seed=args.seed, device=device)
        print(purification.to_markdown())
    provenance = Provenance.of(ds, profile, purification)
    if purification is not None:
        ds = purification.apply(ds)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size)) if v is not None}
    cfg = TrainConfig.from_profile(profile, method=args.method, dataset=args.data, image_size=ds.image_size,
                                   n_train=len(ds.train.images), category=ds.normal, channels=ds.channels,
                                   seed=args.seed, **overrides)
    if record is not None:
        from .record import tensor_digest
        check_resume(ckpt, record, cfg, tensor_digest(ds.train.images))
        if record.purification != provenance.purification:
            raise ValueError(f"{out} holds a run with another purification; use another --out, or delete {out}")
    print(ds.summary())
    if record is not None:
        print(f"resuming {out} at epoch {record.epoch} of {cfg.epochs}")
    res = train(cfg, ds, out=out, device=device, provenance=provenance, distributed=distributed,
                sync_batchnorm=not args.no_sync_batchnorm)
    where = "" if res.record is None or res.record.distributed is None else \
        f" on {res.record.distributed['world_size']} processes"
    print(f"trained {cfg.method} for {cfg.epochs} epochs{where} in {res.seconds:.1f} s; checkpoint: {res.checkpoint}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .device import select_device
    from .pipeline import evaluate_checkpoint
    from .record import write_text_atomic
    select_device(args.device)
    json_out = _json_output(args.json, args.ckpt) if args.json is not None else None
    restarts = args.restarts or (3 if args.attack == "standard" else 1)
    result = evaluate_checkpoint(args.ckpt, attack=args.attack, steps=args.steps, eps=args.eps, mode=args.mode,
                                 restarts=restarts, device=args.device, max_test=args.max_test,
                                 score_kind=args.score, root=args.root, other_data=args.other_data,
                                 queries=args.queries, surrogate=args.surrogate)
    print(result.table())
    print("data: " + ", ".join(f"{k} {result.protocol.get(k)}" for k in ("dataset", "category", "root", "image_size",
                                                                         "n_train", "n_test")))
    if not result.protocol["data_matches_training"]:
        print("NOT the training data (--other-data): " + "; ".join(result.protocol["data_differs"]))
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(result.to_dict(), indent=1))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import SweepSpec, merge_results, run_sweep
    if args.out.strip() == "":
        raise ValueError("--out is empty text; give a folder name")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the sweep")
    _writable_folder(out, "--out")
    spec = SweepSpec(datasets=tuple(args.data), categories=tuple(args.categories), methods=tuple(args.methods),
                     seeds=tuple(args.seeds), profile=args.profile, epochs=args.epochs, batch_size=args.batch_size,
                     attack=args.attack, steps=args.steps, eps=args.eps, score=args.score, max_test=args.max_test,
                     root=str(Path(args.root).resolve()) if args.root else None)
    if args.merge_only:
        data = merge_results(spec, out)
        print(f"merged {len(data['runs'])} of {len(spec.runs())} runs: {out / 'results.md'}")
        return 0
    gpus = None
    if args.gpus in (None, "all") and args.launcher == "local":  # default: every visible GPU, else the CPU
        import torch
        gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else None
        if args.gpus == "all" and not gpus:
            raise ValueError("--gpus all: no CUDA GPU is visible; leave --gpus out to run on the CPU")
    elif args.gpus:
        gpus = [int(g) for g in args.gpus.split(",")]
    slurm = {k: v for k, v in (("slurm_partition", args.slurm_partition), ("timeout_min", args.slurm_minutes),
                               ("gpus_per_node", args.slurm_gpus)) if v is not None}
    print(f"sweep: {len(spec.runs())} runs into {out} ({args.launcher}"
          f"{', GPUs ' + ','.join(map(str, gpus)) if gpus else ''}, {args.workers or (len(gpus) if gpus else 1)} "
          f"at a time)", flush=True)
    outcomes = run_sweep(spec, out, workers=args.workers, gpus=gpus, retries=args.retries, launcher=args.launcher,
                         slurm=slurm, log=lambda line: print(line, flush=True))
    counts = {k: sum(o.status == k for o in outcomes) for k in ("done", "skipped", "failed")}
    print(f"{counts['done']} done, {counts['skipped']} skipped (finished before), {counts['failed']} failed; "
          f"table: {out / 'results.md'}")
    return 1 if counts["failed"] else 0


def _eps_text(text: str) -> str:
    """argparse type: an eps radlib evaluate accepts, kept as written (it names the sweep's evaluation files)."""
    parse_eps(text)
    return text


def _gpu_list(text: str) -> str:
    """argparse type: ``all``, or GPU indices separated by commas."""
    if text != "all" and not all(part.strip().isdigit() for part in text.split(",")):
        raise argparse.ArgumentTypeError(f"give 'all' or GPU indices like 0,1,2; got {text!r}")
    return text


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .device import select_device
    out = Path(args.out)
    select_device(args.device)
    if str(args.out).strip() == "":
        raise ValueError("--out is empty text; give a folder name")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.md").exists() and not (out / "cobra").is_dir():
        raise ValueError(f"--out {out} holds files and no radlib demo; give a new or empty folder (the demo never "
                         f"overwrites what is not its own)")
    _writable_folder(out, "--out")
    run_demo(out=out, profile=args.profile, device=args.device, data=args.data, category=args.category,
             seed=args.seed, root=args.root)
    return 0


def _writable_folder(folder: Path, flag: str) -> None:
    """Check, before any work and without creating anything, that ``folder`` (or the nearest existing folder above
    it, where it will be created) can be written; one line naming ``flag`` if not."""
    here = folder.resolve()
    while not here.exists():
        here = here.parent
    if not here.is_dir():
        raise ValueError(f"{flag} {folder}: {here} is a file, not a folder")
    if not os.access(here, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {folder} cannot be written ({here} is read-only or not yours); give a writable "
                         f"folder")


def _json_output(text: str, ckpt: str) -> Path:
    """The ``--json`` path, checked before the evaluation: never the checkpoint, a folder or a file that is not
    JSON (it would be overwritten), and its folder must exist and be writable."""
    path = Path(text)
    if text == "":
        raise ValueError("--json is empty text; give a file name")
    if path.is_dir():
        raise ValueError(f"--json {path} is a folder; give a file name, e.g. {path / 'eval.json'}")
    if path.exists():
        if Path(ckpt).exists() and os.path.samefile(path, ckpt):
            raise ValueError(f"--json {path} is the checkpoint itself; give another file name")
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError, OSError):
            raise ValueError(f"--json {path} exists and is not a JSON file: radlib will not overwrite it; give another "
                             f"file name") from None
    parent = path.resolve().parent
    if not parent.is_dir():
        raise ValueError(f"--json {text}: the folder {parent} does not exist")
    _writable_folder(parent, f"--json {text}: the folder")
    return path


def build_parser() -> argparse.ArgumentParser:
    from .profiles import PROFILES
    from .methods import METHODS
    from .specs import RUN_ATTACKS
    p = argparse.ArgumentParser(prog="radlib", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("datasets", help="list every dataset radlib can load")
    s.set_defaults(func=_cmd_datasets)

    s = sub.add_parser("train", help="train a detector (writes OUT/last.pt and OUT/history.json); under torchrun "
                       "--nproc_per_node=N, one run on N processes (DistributedDataParallel)")
    s.add_argument("--data", default="surfaces")
    s.add_argument("--category", default=None, help="normal class / category (dataset default if omitted); several "
                   "comma-separated for the one-vs-rest datasets, e.g. 0,1")
    s.add_argument("--method", default="cobra", choices=sorted(METHODS))
    s.add_argument("--profile", default=None, choices=list(PROFILES))
    s.add_argument("--image-size", type=_positive_int, default=None)
    s.add_argument("--epochs", type=_positive_int, default=None)
    s.add_argument("--batch-size", type=_positive_int, default=None,
                   help="images per step (default: the profile's); under torchrun, over all processes together")
    s.add_argument("--no-sync-batchnorm", action="store_true",
                   help="under torchrun: BatchNorm statistics per process instead of over the whole batch")
    s.add_argument("--root", default=None, help="dataset folder (default $RADLIB_DATA or ./data)")
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default $RADLIB_DEVICE, else the best "
                   "available)")
    s.add_argument("--out", required=True, help="a new or empty folder, or the folder of this run (resumes it)")
    s.add_argument("--contamination", type=_fraction, default=0.0,
                   help="share of the training set made of test anomalies moved in (0 = clean; e.g. 0.1)")
    s.add_argument("--purify", nargs="?", const="pixel_knn", default=None, metavar="SCORER",
                   choices=["pixel_knn", *sorted(METHODS)],
                   help="purify the training set first (LLBNAD): sub-models of SCORER (default pixel_knn) on 3 "
                        "disjoint subsets score every image; the --keep lowest are kept")
    s.add_argument("--keep", type=_fraction, default=None,
                   help="fraction of the training set --purify keeps (default 0.8; only with --purify)")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("evaluate", help="clean and attacked AUROC of a checkpoint")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--attack", default="pgd", choices=RUN_ATTACKS,
                   help="standard: APGD (--steps, --restarts) + Square (--queries) + a transfer attack from "
                        "--surrogate, and their per-sample worst case")
    s.add_argument("--steps", type=_positive_int, default=10)
    s.add_argument("--queries", type=_positive_int, default=1000, help="Square's query budget")
    s.add_argument("--surrogate", default=None, metavar="CKPT",
                   help="another run's last.pt: transfer attacks are crafted on its score")
    s.add_argument("--eps", type=parse_eps, default=8 / 255)
    s.add_argument("--root", default=None, help="dataset folder (default: the one stored at training time)")
    s.add_argument("--mode", default="both", choices=["both", "in", "out"])
    s.add_argument("--restarts", type=_positive_int, default=None, help="random restarts (default 1; 3 for standard)")
    s.add_argument("--max-test", type=_positive_int, default=None)
    s.add_argument("--score", default=None, choices=["own", "knn", "patch"],
                   help="the method's own score, kNN on backbone features or the patch score (default: the training "
                        "profile's)")
    s.add_argument("--device", default=None)
    s.add_argument("--other-data", action="store_true",
                   help="evaluate even when the rebuilt data differs from the training data (the protocol says so)")
    s.add_argument("--json", default=None, help="also write the result (with its protocol) as JSON")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("sweep", help="a grid of runs (data x categories x methods x seeds), each trained and "
                       "evaluated in its own process, over local workers or Slurm; re-run to resume; merged table")
    s.add_argument("--data", nargs="+", required=True, help="one or more data sets")
    s.add_argument("--categories", nargs="+", required=True, help="normal classes / categories, e.g. 0 1 2")
    s.add_argument("--methods", nargs="+", default=["cobra"], choices=sorted(METHODS))
    s.add_argument("--seeds", nargs="+", type=_seed, default=[0, 1, 2])
    s.add_argument("--profile", default=None, choices=list(PROFILES))
    s.add_argument("--epochs", type=_positive_int, default=None)
    s.add_argument("--batch-size", type=_positive_int, default=None)
    s.add_argument("--attack", default="pgd", choices=RUN_ATTACKS)
    s.add_argument("--steps", type=_positive_int, default=10)
    s.add_argument("--eps", type=_eps_text, default="8/255", help="as radlib evaluate's --eps")
    s.add_argument("--score", default=None, choices=["own", "knn", "patch"])
    s.add_argument("--max-test", type=_positive_int, default=None)
    s.add_argument("--root", default=None, help="dataset folder (default $RADLIB_DATA or ./data)")
    s.add_argument("--out", required=True, help="the sweep folder (the same folder resumes the sweep)")
    s.add_argument("--workers", type=_positive_int, default=None,
                   help="runs at a time (default: one per GPU of --gpus, else 1)")
    s.add_argument("--gpus", type=_gpu_list, default=None, help="'all' or indices like 0,1: one worker per GPU "
                   "(default: every visible GPU, else the CPU)")
    s.add_argument("--retries", type=int, choices=range(0, 10), default=1, metavar="{0..9}",
                   help="further attempts of a failed run (it resumes where it stopped)")
    s.add_argument("--launcher", default="local", choices=["local", "slurm"])
    s.add_argument("--slurm-partition", default=None)
    s.add_argument("--slurm-minutes", type=_positive_int, default=None, help="time limit of each Slurm task")
    s.add_argument("--slurm-gpus", type=int, choices=range(0, 9), default=1, metavar="{0..8}",
                   help="GPUs per Slurm task (default 1; 0 for CPU nodes)")
    s.add_argument("--merge-only", action="store_true", help="only (re)write the merged table")
    s.set_defaults(func=_cmd_sweep)

    s = sub.add_parser("demo", help="CSI vs COBRA vs no training on the profile's teaching data: train, attack at "
                       "several eps, write a report")
    s.add_argument("--out", default="runs/demo")
    s.add_argument("--profile", default=None, choices=list(PROFILES))
    s.add_argument("--data", default=None, help="dataset (default: the profile's teaching data, embedded)")
    s.add_argument("--category", default=None, help="normal class / category (with --data)")
    s.add_argument("--root", default=None, help="dataset folder (with --data; default $RADLIB_DATA or ./data)")
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--device", default=None)
    s.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line. Expected errors (bad data, arguments or checkpoints, a diverged run) print one line
    naming the problem and exit with 2, all checked before the work starts where they can be (devices, output
    folders, ``--json``); Ctrl-C prints one line and exits with 130; ``--debug`` or ``RADLIB_DEBUG=1`` shows the
    traceback instead."""
    from .checkpoint import CheckpointError
    from .data import DatasetError
    from .train import TrainingDiverged
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("RADLIB_DEBUG", "").lower() in ("1", "true", "yes")
    from .device import reuse_freed_memory
    reuse_freed_memory()  # the command's process: a CPU reuses freed memory (attacks ~25 % faster)
    try:
        if args.command != "train":
            from .distributed import launched_by_torchrun
            if launched_by_torchrun():
                raise ValueError(f"{args.command} runs in one process; under torchrun only train spreads one run over "
                                 f"processes (run python -m radlib {args.command} ..., or radlib sweep for many runs)")
        return int(args.func(args) or 0)
    except (DatasetError, CheckpointError, TrainingDiverged, ValueError, OSError) as e:
        if debug:
            raise
        print(f"radlib {args.command}: error: {e} (--debug shows the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        tail = " (the last checkpoint is kept: the same command resumes)" if args.command == "train" else ""
        print(f"radlib {args.command}: interrupted{tail}", file=sys.stderr)
        return 130


def _fraction(text: str) -> float:
    """argparse type: a number in [0, 1] (range errors beyond that are the command's own, e.g. keep > 0)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _seed(text: str) -> int:
    """argparse type: a seed, an int in [0, 2**32 - 1]."""
    from .data.base import check_seed
    try:
        return check_seed(int(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e) if "must be" in str(e) else f"{text!r} is not an integer") from None


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1 (0 would silently mean "the default" elsewhere)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
