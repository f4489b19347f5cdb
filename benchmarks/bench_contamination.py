"""Contaminated training data, measured: what anomalies in the training set cost a detector (clean and under
attack), and how much learning-bias purification (LLBNAD, radlib.purify) gives back.

For every data set, contamination level (a share of the *training set*: 5 % = 5 of every 100 training images
are anomalies moved out of the test split) and seed, each method is trained three ways on the same split:
(a) `contaminated`: on the contaminated training set as it is;
(b) `purified`: on what radlib.purify keeps (`--purifier`, default the model-free pixel kNN; `--keep`);
(c) `oracle`: on the training set without the injected anomalies (the flags a real line never has).
All three are tested on the same test split, with clean and in+out PGD-20 AUROC. Level 0 trains once (the
clean reference). The purification rows give the filter's precision (share of the dropped images that were
anomalies) and recall (share of the anomalies it dropped). "recovered" = (b - a) / (c - a): the share of what
contamination cost that purification gives back (1 = all of it), per seed, then mean +- std.

Prints the table (mean +- std over seeds) and appends it, with the exact command, to benchmarks/RESULTS.md when
--record is given. --quick runs a tiny CPU version of the same code.

Usage: python benchmarks/bench_contamination.py [--profile cpu] [--data digits] [--levels 0.1]
       [--methods cobra csi] [--seeds 0 1 2] [--purifier pixel_knn] [--keep 0.8] [--record] [--quick]
       python benchmarks/bench_contamination.py --filter-sweep [--keeps 0.5 0.8] [--aggregates mean max]
           (the filter alone: precision / recall for each choice, no detector trained; seconds with pixel_knn)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from _common import device_name, pick_device, record
from radlib.data import DatasetError
from radlib.metrics import format_eps, parse_eps
from radlib.specs import AttackSpec
from radlib.pipeline import load_data, run_method
from radlib.profiles import get_profile
from radlib.purify import purify

NORMAL = {"digits": "0", "fashion_mnist": "T-shirt/top", "casting": None}


def _fmt(values: list[float], scale: float = 1.0) -> str:
    v = [x * scale for x in values if x is not None]
    if not v:
        return "-"
    return f"{v[0]:.1f}" if len(v) == 1 else f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--data", nargs="+", default=["digits"], choices=list(NORMAL))
    ap.add_argument("--levels", type=float, nargs="+", default=[0.1], help="contamination shares of the train set")
    ap.add_argument("--methods", nargs="+", default=["cobra", "csi"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--purifier", default="pixel_knn", help="radlib.purify method: pixel_knn or a radlib method")
    ap.add_argument("--keep", type=float, default=0.8)
    ap.add_argument("--variants", nargs="+", default=["contaminated", "purified", "oracle"],
                    choices=["contaminated", "purified", "oracle"],
                    help="which training sets to train on (e.g. only `purified` after a change of the filter)")
    ap.add_argument("--eps", type=parse_eps, default=None, help="PGD-20 eps (default: the profile's recipe eps)")
    ap.add_argument("--casting-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--device", default=None)
    ap.add_argument("--quick", action="store_true", help="smoke profile, one seed, tiny sizes (CPU sanity check)")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--filter-sweep", action="store_true",
                    help="only the filter: precision / recall for every --keeps x --aggregates x own/unseen choice "
                         "(no detector is trained)")
    ap.add_argument("--keeps", type=float, nargs="+", default=[0.2, 0.5, 0.7, 0.8, 0.9])
    ap.add_argument("--aggregates", nargs="+", default=["mean", "max", "max_var"])
    args = ap.parse_args()
    if args.filter_sweep:
        return filter_sweep(args)
    profile = get_profile("smoke" if args.quick else args.profile)
    seeds = args.seeds[:1] if args.quick else args.seeds
    device = pick_device(args.device)
    steps = 2 if args.quick else 20
    over = {"epochs": 1, "width": 4} if args.quick else {}
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    rows = ["| data | contamination | method | training set | n train | clean AUROC | PGD-{s} @ {e} | filter precision | "
            "filter recall | recovered clean | recovered PGD | train s | seeds |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    protocol: dict = {}
    for name in args.data:
        kw = {"root": args.casting_root} if name == "casting" else {}
        for level in args.levels:
            cells: dict[tuple[str, str], dict[str, list]] = {}
            for seed in seeds:
                try:
                    ds = load_data(name, NORMAL[name], None, profile, seed=seed, contamination=level,
                                   contamination_of="train", **kw)
                except DatasetError as e:
                    print(f"skip {name}: {e}", file=sys.stderr)
                    break
                eps = args.eps or profile.eps_for(ds.image_size)
                attacks = [AttackSpec(eps=eps, steps=steps)]
                variants = {"contaminated": (ds, None)}
                if level > 0:  # (--variants picks among them below)
                    p = purify(ds, args.purifier, keep=args.keep, profile=profile, seed=seed, device=device, **over)
                    variants["purified"] = (p.apply(ds), p)
                    oracle = torch.nonzero(~ds.train.contaminated).flatten()
                    variants["oracle"] = (replace(ds, train=ds.train.subset(oracle)), None)
                variants = {k: v for k, v in variants.items() if k in args.variants or level == 0}
                for method in args.methods:
                    for variant, (data, pur) in variants.items():
                        run = run_method(method, data, profile, device=str(device), seed=seed, progress=False,
                                         attacks=attacks, **over)
                        protocol = run.eval.protocol
                        c = cells.setdefault((method, variant), {k: [] for k in
                                                                 ("clean", "pgd", "prec", "rec", "secs", "n")})
                        c["clean"].append(run.eval.clean_auroc)
                        c["pgd"].append(run.eval.attacks[0].auroc)
                        c["prec"].append(None if pur is None else pur.precision)
                        c["rec"].append(None if pur is None else pur.recall)
                        c["secs"].append(run.train.seconds + (0 if pur is None else pur.seconds))
                        c["n"].append(len(data.train))
                        print(f"{name} {level:g} {method} {variant} seed {seed}: clean {c['clean'][-1]:.1f} PGD "
                              f"{c['pgd'][-1]:.1f} (n={len(data.train)}, {c['secs'][-1]:.0f} s)"
                              + (f" filter P {pur.precision:.2f} R {pur.recall:.2f}" if pur else ""), flush=True)
            if not cells:
                continue
            label = f"{name}/{ds.normal} {ds.image_size}px"
            for method in args.methods:
                for variant in ("contaminated", "purified", "oracle"):
                    if (method, variant) not in cells:
                        continue
                    c = cells[(method, variant)]
                    rec_clean, rec_pgd = ["-"], ["-"]
                    if variant == "purified" and {"contaminated", "oracle"} <= set(args.variants):
                        a, o = cells[(method, "contaminated")], cells[(method, "oracle")]
                        rec_clean = [_recovered(a["clean"][i], c["clean"][i], o["clean"][i]) for i in range(len(seeds))]
                        rec_pgd = [_recovered(a["pgd"][i], c["pgd"][i], o["pgd"][i]) for i in range(len(seeds))]
                    rows.append(f"| {label} | {level:.0%} | {method} | {variant if level else 'clean'} | "
                                f"{statistics.mean(c['n']):.0f} | {_fmt(c['clean'])} | {_fmt(c['pgd'])} | {_fmt(c['prec'], 100)} | "
                                f"{_fmt(c['rec'], 100)} | {_rfmt(rec_clean)} | {_rfmt(rec_pgd)} | "
                                f"{statistics.mean(c['secs']):.0f} | {len(c['clean'])} |")
                    print(rows[-1], flush=True)
    e = format_eps(args.eps or profile.eps_for(16 if args.quick else profile.low_res_size))
    rows[0] = rows[0].format(s=steps, e=e)
    head = [f"device: {device_name(device)}; profile `{profile.name}`; torch {torch.__version__}; training "
            f"{protocol.get('train_precision', '?')}; evaluation {protocol.get('precision', '?')}; purifier "
            f"`{args.purifier}`, 3 subsets, mean, keep {args.keep:g}; contamination = share of the training set",
            f"command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`", ""]
    print("\n".join(head + rows))
    if args.record:
        record("bench_contamination.py", head + rows)


def filter_sweep(args: argparse.Namespace) -> None:
    """Precision / recall / score AUROC of the purification alone, mean +- std over seeds, for each choice."""
    profile = get_profile("smoke" if args.quick else args.profile)
    device = pick_device(args.device)
    over = {"epochs": 1, "width": 4} if args.quick else {}
    rows = ["| data | contamination | purifier | aggregate | own score | keep | precision | recall | score AUROC | "
            "seeds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in args.data:
        kw = {"root": args.casting_root} if name == "casting" else {}
        for level in [v for v in args.levels if v > 0]:
            try:
                sets = [load_data(name, NORMAL[name], None, profile, seed=s, contamination=level,
                                  contamination_of="train", **kw) for s in args.seeds]
            except (DatasetError, ValueError) as e:
                print(f"skip {name} {level}: {e}", file=sys.stderr)
                continue
            for agg in args.aggregates:
                for exclude in (False, True):
                    for keep in args.keeps:
                        ps = [purify(d, args.purifier, keep=keep, aggregate=agg, exclude_own=exclude,
                                     profile=profile, seed=s, device=device, **over)
                              for s, d in zip(args.seeds, sets)]
                        rows.append(f"| {name}/{sets[0].normal} n={len(sets[0].train)} | {level:.0%} | "
                                    f"{args.purifier} | {agg} | {'excluded' if exclude else 'included'} | {keep:g} | "
                                    f"{_fmt([p.precision for p in ps], 100)} | {_fmt([p.recall for p in ps], 100)} | "
                                    f"{_fmt([p.auroc for p in ps])} | {len(ps)} |")
                        print(rows[-1], flush=True)
    head = [f"profile `{profile.name}` data sizes; purification only (no detector trained); contamination = share "
            f"of the training set; precision = dropped that were injected, recall = injected that were dropped",
            f"command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`", ""]
    print("\n".join(head + rows))
    if args.record:
        record("bench_contamination.py --filter-sweep", head + rows)


def _recovered(contaminated: float, purified: float, oracle: float) -> float | None:
    cost = oracle - contaminated
    return None if abs(cost) < 1e-9 else (purified - contaminated) / cost


def _rfmt(values: list) -> str:
    if values == ["-"]:
        return "-"
    v = [x for x in values if x is not None]
    if not v:
        return "no cost"
    return f"{v[0]:.2f}" if len(v) == 1 else f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}"


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f} s")
