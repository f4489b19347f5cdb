"""Command line: ``python -m radlib {datasets,train,evaluate,demo}`` (also installed as ``radlib``)."""
from __future__ import annotations

import argparse
import json
import os
import sys
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
    from .pipeline import check_test_split, data_identity, load_data
    from .profiles import get_profile
    from .train import TrainConfig, train
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the checkpoint")
    profile = get_profile(args.profile)
    root = str(Path(args.root).resolve()) if args.root else None  # absolute: evaluate may run from elsewhere
    ds = load_data(args.data, args.category, args.image_size, profile, seed=args.seed, root=root,
                   contamination=args.contamination, contamination_of="train")
    check_test_split(ds)
    purification = None
    if args.purify is not None:
        from .purify import purify
        purification = purify(ds, args.purify, keep=args.keep, profile=profile, seed=args.seed, device=args.device)
        print(purification.to_markdown())
        ds = purification.apply(ds)
    cfg = TrainConfig.from_profile(profile, method=args.method, dataset=args.data, image_size=ds.image_size,
                                   n_train=len(ds.train.images), category=ds.normal, channels=ds.channels,
                                   seed=args.seed, **({"epochs": args.epochs} if args.epochs is not None else {}))
    identity = {**data_identity(ds, root), "profile": profile.name, "seed": args.seed}
    if args.contamination:  # only when used: run folders of clean runs keep their identity
        identity["contamination"] = args.contamination
    if purification is not None:
        identity["purify"] = {"method": args.purify, "keep": args.keep}
    info = out / "data.json"
    if (out / "last.pt").exists() and info.exists():
        old = json.loads(info.read_text())
        if old != identity:
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in identity.items() if old.get(k) != v)
            raise ValueError(f"{out} holds a run on other data ({diff}); use another --out")
    print(ds.summary())
    out.mkdir(parents=True, exist_ok=True)
    info.write_text(json.dumps(identity, indent=1))
    kept_file = out / "purify.json"
    if purification is not None:  # evaluate rebuilds the purified training split (the score's bank) from it
        kept_file.write_text(json.dumps({**purification.summary(), "kept": purification.kept.tolist()}))
    elif kept_file.exists():
        kept_file.unlink()
    res = train(cfg, ds, out=out, device=args.device)
    print(f"trained {cfg.method} for {cfg.epochs} epochs in {res.seconds:.1f} s; checkpoint: {res.checkpoint}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .pipeline import evaluate_checkpoint
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise ValueError(f"--json {args.json}: the folder {Path(args.json).resolve().parent} does not exist")
    result = evaluate_checkpoint(args.ckpt, attack=args.attack, steps=args.steps, eps=args.eps, mode=args.mode,
                                 restarts=args.restarts, device=args.device, max_test=args.max_test,
                                 score_kind=args.score, root=args.root)
    print(result.table())
    print("data: " + ", ".join(f"{k} {result.protocol.get(k)}" for k in ("dataset", "category", "root", "image_size",
                                                                         "n_train")))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    run_demo(out=args.out, profile=args.profile, device=args.device, data=args.data, category=args.category,
             seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .profiles import PROFILES
    from .methods import METHODS
    p = argparse.ArgumentParser(prog="radlib", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("datasets", help="list every dataset radlib can load")
    s.set_defaults(func=_cmd_datasets)

    s = sub.add_parser("train", help="train a detector (writes OUT/last.pt and OUT/history.json)")
    s.add_argument("--data", default="surfaces")
    s.add_argument("--category", default=None, help="normal class / category (dataset default if omitted); several "
                   "comma-separated for the one-vs-rest datasets, e.g. 0,1")
    s.add_argument("--method", default="cobra", choices=sorted(METHODS))
    s.add_argument("--profile", default=None, choices=list(PROFILES))
    s.add_argument("--image-size", type=_positive_int, default=None)
    s.add_argument("--epochs", type=_positive_int, default=None)
    s.add_argument("--root", default=None, help="dataset folder (default $RADLIB_DATA or ./data)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    s.add_argument("--out", required=True)
    s.add_argument("--contamination", type=_fraction, default=0.0,
                   help="share of the training set made of test anomalies moved in (0 = clean; e.g. 0.1)")
    s.add_argument("--purify", nargs="?", const="pixel_knn", default=None, metavar="SCORER",
                   choices=["pixel_knn", *sorted(METHODS)],
                   help="purify the training set first (LLBNAD): sub-models of SCORER (default pixel_knn) on 3 "
                        "disjoint subsets score every image; the --keep lowest are kept")
    s.add_argument("--keep", type=_fraction, default=0.8, help="fraction of the training set --purify keeps")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("evaluate", help="clean and attacked AUROC of a checkpoint")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--attack", default="pgd", choices=["pgd", "apgd", "none"])
    s.add_argument("--steps", type=_positive_int, default=10)
    s.add_argument("--eps", type=parse_eps, default=8 / 255)
    s.add_argument("--root", default=None, help="dataset folder (default: the one stored at training time)")
    s.add_argument("--mode", default="both", choices=["both", "in", "out"])
    s.add_argument("--restarts", type=_positive_int, default=1)
    s.add_argument("--max-test", type=_positive_int, default=None)
    s.add_argument("--score", default=None, choices=["own", "knn", "patch"],
                   help="the method's own score, kNN on backbone features or the patch score (default: the training "
                        "profile's)")
    s.add_argument("--device", default=None)
    s.add_argument("--json", default=None, help="also write the result (with its protocol) as JSON")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("demo", help="CSI vs COBRA vs no training on the profile's teaching data: train, attack at "
                       "several eps, write a report")
    s.add_argument("--out", default="runs/demo")
    s.add_argument("--profile", default=None, choices=list(PROFILES))
    s.add_argument("--data", default=None, help="dataset (default: the profile's teaching data, embedded)")
    s.add_argument("--category", default=None, help="normal class / category (with --data)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    s.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line. Expected errors (bad data, arguments or checkpoints, a diverged run) print one line
    naming the problem and exit with 2; ``--debug`` or ``RADLIB_DEBUG=1`` shows the traceback instead."""
    from .checkpoint import CheckpointError
    from .data import DatasetError
    from .train import TrainingDiverged
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DatasetError, CheckpointError, TrainingDiverged, ValueError, FileNotFoundError) as e:
        if args.debug or os.environ.get("RADLIB_DEBUG", "").lower() in ("1", "true", "yes"):
            raise
        print(f"radlib {args.command}: error: {e} (--debug shows the traceback)", file=sys.stderr)
        return 2


def _fraction(text: str) -> float:
    """argparse type: a number in [0, 1] (range errors beyond that are the command's own, e.g. keep > 0)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


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
