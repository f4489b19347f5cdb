"""Command line: ``python -m radlib {datasets,train,evaluate,demo}`` (also installed as ``radlib``)."""
from __future__ import annotations

import argparse
import json
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
    from .pipeline import load_data
    from .profiles import get_profile
    from .train import TrainConfig, train
    profile = get_profile(args.profile)
    cfg = TrainConfig.from_profile(profile, method=args.method, dataset=args.data, image_size=args.image_size,
                                   seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    ds = load_data(args.data, args.category, cfg.image_size, profile, seed=args.seed, root=args.root)
    print(ds.summary())
    res = train(cfg, ds, out=args.out, device=args.device)
    print(f"trained {cfg.method} for {cfg.epochs} epochs in {res.seconds:.1f} s; checkpoint: {res.checkpoint}")
    (Path(args.out) / "data.json").write_text(json.dumps(
        {"data": args.data, "category": ds.normal, "image_size": cfg.image_size, "root": args.root,
         "profile": profile.name, "seed": args.seed}, indent=1))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .pipeline import evaluate_checkpoint
    result = evaluate_checkpoint(args.ckpt, attack=args.attack, steps=args.steps, eps=args.eps, mode=args.mode,
                                 restarts=args.restarts, device=args.device, max_test=args.max_test,
                                 score_kind=args.score)
    print(result.table())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    run_demo(out=args.out, profile=args.profile, device=args.device, category=args.category, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .train import METHODS
    p = argparse.ArgumentParser(prog="radlib", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("datasets", help="list every dataset radlib can load")
    s.set_defaults(func=_cmd_datasets)

    s = sub.add_parser("train", help="train a detector (writes OUT/last.pt and OUT/history.json)")
    s.add_argument("--data", default="surfaces")
    s.add_argument("--category", default=None, help="normal class / category (dataset default if omitted)")
    s.add_argument("--method", default="cobra", choices=sorted(METHODS))
    s.add_argument("--profile", default=None, choices=["smoke", "lab", "paper"])
    s.add_argument("--image-size", type=int, default=None)
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--root", default=None, help="dataset folder (default $RADLIB_DATA or ./data)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("evaluate", help="clean and attacked AUROC of a checkpoint")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--attack", default="pgd", choices=["pgd", "apgd", "none"])
    s.add_argument("--steps", type=int, default=10)
    s.add_argument("--eps", type=parse_eps, default=8 / 255)
    s.add_argument("--mode", default="both", choices=["both", "in", "out"])
    s.add_argument("--restarts", type=int, default=1)
    s.add_argument("--max-test", type=int, default=None)
    s.add_argument("--score", default="own", choices=["own", "knn"],
                   help="the method's own score (default) or kNN on backbone features")
    s.add_argument("--device", default=None)
    s.add_argument("--json", default=None, help="also write the result (with its protocol) as JSON")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("demo", help="CSI vs COBRA on surfaces: train, attack, write a report")
    s.add_argument("--out", default="runs/demo")
    s.add_argument("--profile", default=None, choices=["smoke", "lab", "paper"])
    s.add_argument("--category", default="fabric")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    s.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
