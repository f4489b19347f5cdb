"""The lab-budget recipe, measured: train `cobra` and `csi` with the `lab` profile on `casting` and `surfaces`,
evaluate clean and in+out PGD-20 (eps 4/255 at >= 128 px, 8/255 at <= 64 px), over several seeds.

Every data set also gets a reference row that needs no training: the pixel-space kNN detector of
radlib.certify, with its *certified* AUROC (a lower bound that holds against any attack). A trained "robust"
detector that does not beat that row has not learned robustness.

Prints a table (mean +- std over seeds, training seconds, device) and appends it, with the exact command, to
benchmarks/RESULTS.md when --record is given. Meant for a GPU; --quick runs a tiny CPU version of the same code.

Usage: python benchmarks/bench_recipe.py [--seeds 0 1 2] [--scores own knn] [--casting-root ../shared/data]
       [--record] [--quick] [FIELD=VALUE ...]   (TrainConfig overrides, e.g. augment_strength=0.5)
"""
from __future__ import annotations

import argparse
import ast
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from _common import device_name, pick_device, record
from radlib.certify import PixelKNNScore, certified_auroc
from radlib.data import DatasetError
from radlib.evaluate import AttackSpec, evaluate
from radlib.pipeline import fit_score, load_data, run_method, untrained
from radlib.profiles import get_profile
from radlib.train import TrainConfig


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="lab")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="*", default=["cobra", "csi"], help="none: only the pixel kNN rows")
    ap.add_argument("--image-size", type=int, default=None, help="default: the profile's resolution")
    ap.add_argument("--scores", nargs="+", default=["own"], choices=["own", "knn"],
                    help="scores fitted on each trained model: its own (ensemble / msc kNN) and/or feature kNN")
    ap.add_argument("--no-pixel-knn", action="store_true", help="skip the model-free pixel kNN reference row")
    ap.add_argument("--random-init", action="store_true",
                    help="add a row: the untrained network (the first method's config, else csi's) scored by "
                         "feature kNN")
    ap.add_argument("--casting-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--surfaces-category", default="metal")
    ap.add_argument("--data", nargs="+", default=["casting", "surfaces"], choices=["casting", "surfaces"])
    ap.add_argument("--device", default=None)
    ap.add_argument("--quick", action="store_true", help="smoke profile, one seed (CPU sanity check)")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("overrides", nargs="*", metavar="FIELD=VALUE",
                    help="TrainConfig overrides for every run, e.g. augment_strength=0.5 attack_steps=1")
    args = ap.parse_args()
    profile = get_profile("smoke" if args.quick else args.profile)
    seeds = args.seeds[:1] if args.quick else args.seeds
    device = pick_device(args.device)
    overrides = dict(_parse_override(o) for o in args.overrides)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    tasks = [t for t in [("casting", "ok_front", {"root": args.casting_root}), ("surfaces", args.surfaces_category, {})]
             if t[0] in args.data]
    steps = 20 if not args.quick else 2
    rows = [f"| data | method | score | clean AUROC | PGD-{steps} AUROC | certified AUROC | train s/seed | seeds |",
            "|---|---|---|---|---|---|---|---|"]
    for name, category, kw in tasks:
        try:
            datasets = [load_data(name, None if name == "casting" else category, args.image_size, profile, seed=seed,
                                  **kw)
                        for seed in seeds]
        except DatasetError as e:
            print(f"skip {name}: {e}", file=sys.stderr)
            continue
        normal = datasets[0].normal
        label = f"{name}{'' if normal == name else '/' + str(normal)} {datasets[0].image_size}px"
        eps = 4 / 255 if datasets[0].image_size >= 128 else 8 / 255
        attack = AttackSpec(eps=eps, steps=steps)
        if not args.no_pixel_knn:
            # the bar every trained detector must clear: no training, and a certificate (radlib.certify)
            clean, robust, cert = [], [], []
            for seed, ds in zip(seeds, datasets):
                knn = PixelKNNScore.fit(ds.train.images, k=2, device=device)
                res = evaluate(knn, ds.test, attacks=[attack], device=device, seed=seed)
                lo, up = knn.bounds(ds.test.images, eps)
                clean.append(res.clean_auroc)
                robust.append(res.robust_auroc())
                cert.append(certified_auroc(lo, up, ds.test.labels))
            rows.append(f"| {label} | none (pixel kNN, k=2) | pixel kNN | {_fmt(clean)} | {_fmt(robust)} | "
                        f"{_fmt(cert)} | 0 | {len(clean)} |")
            print(rows[-1], flush=True)
        if args.random_init:
            # training must beat this: the same network at its random initialisation, feature-kNN score
            clean, robust = [], []
            for seed, ds in zip(seeds, datasets):
                cfg = TrainConfig.from_profile(profile, method=(args.methods or ["csi"])[0], dataset=ds.name,
                                               image_size=ds.image_size, category=ds.normal, channels=ds.channels,
                                               seed=seed, **overrides)
                res = evaluate(fit_score(untrained(cfg, device=device), ds.train.images, kind="knn"), ds.test,
                               attacks=[attack], device=device, seed=seed)
                clean.append(res.clean_auroc)
                robust.append(res.robust_auroc())
            rows.append(f"| {label} | none (random init, width {cfg.width}) | knn | {_fmt(clean)} | "
                        f"{_fmt(robust)} | - | 0 | {len(clean)} |")
            print(rows[-1], flush=True)
        for method in args.methods:
            clean_by = {k: [] for k in args.scores}
            robust_by = {k: [] for k in args.scores}
            secs = []
            for seed, ds in zip(seeds, datasets):
                run = run_method(method, ds, profile, device=str(device), seed=seed, progress=False,
                                 attacks=[attack], score_kind=args.scores[0], **overrides)
                secs.append(run.train.seconds)
                for kind in args.scores:
                    if kind == args.scores[0]:
                        res = run.eval
                    else:
                        score = fit_score(run.train, ds.train.images, samples=profile.eval_samples, seed=seed,
                                          kind=kind)
                        res = evaluate(score, ds.test, attacks=[attack], device=device, seed=seed)
                    clean_by[kind].append(res.clean_auroc)
                    robust_by[kind].append(res.robust_auroc())
                    print(f"{name} {method} seed {seed} score {kind}: clean {res.clean_auroc:.1f} "
                          f"robust {res.robust_auroc():.1f} ({secs[-1]:.0f} s)", flush=True)
            for kind in args.scores:
                rows.append(f"| {label} | {method} | {kind} | {_fmt(clean_by[kind])} | {_fmt(robust_by[kind])} | - | "
                            f"{statistics.mean(secs):.0f} | {len(secs)} |")
    head = [f"device: {device_name(device)}; profile `{profile.name}`; torch {torch.__version__}",
            f"command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`", ""]
    print("\n".join(head + rows))
    if args.record:
        record("bench_recipe.py", head + rows)


def _parse_override(text: str) -> tuple[str, object]:
    """``"epochs=10"`` -> ("epochs", 10); values are read as Python literals where they parse, else strings."""
    if "=" not in text:
        raise SystemExit(f"override {text!r} is not FIELD=VALUE")
    key, value = text.split("=", 1)
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")
