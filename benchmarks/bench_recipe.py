"""The recipe, measured: train methods with a profile's recipe (`cpu`: 2-core laptop; `lab`: GPU) on several data
sets and evaluate clean and in+out PGD-20 AUROC at several eps, over several seeds (mean +- std).

Data: `digits` (sklearn, embedded) and `fashion_mnist` (Debian's dataset-fashion-mnist or a download), one normal
class each; `surfaces` (one category, generated) and `casting` (real castings, ../shared/data). Every data set
also gets a reference row that needs no training: the pixel-space kNN detector of radlib.certify, with its
*certified* AUROC (a lower bound that holds against any attack) in parentheses. A trained "robust" detector that
does not beat that row has not learned robustness.

Prints a table (mean +- std over seeds, training seconds, device) and appends it, with the exact command, to
benchmarks/RESULTS.md when --record is given. --quick runs a tiny CPU version of the same code.

Usage: python benchmarks/bench_recipe.py [--profile cpu] [--data digits fashion_mnist] [--seeds 0 1 2]
       [--methods cobra cobra_no_opposite csi] [--eps 2/255 4/255 8/255] [--scores own knn] [--standard Q]
       [--record] [--quick]
       [FIELD=VALUE ...]   (TrainConfig overrides, e.g. augment_strength=0.5)
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
from radlib.data import DatasetError
from radlib.checks import masking_checks
from radlib.evaluate import evaluate
from radlib.metrics import format_eps, parse_eps
from radlib.specs import AttackSpec
from radlib.specs import standard_attacks
from radlib.pipeline import load_data, run_method
from radlib.score import fit_score
from radlib.reference import reference_rows
from radlib.profiles import get_profile

#: the normal class of each data set (Fashion-MNIST: class 0, T-shirt/top; digits: 0)
NORMAL = {"digits": "0", "fashion_mnist": "T-shirt/top", "surfaces": "metal", "casting": None}


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
    ap.add_argument("--eps", type=parse_eps, nargs="+", default=None,
                    help="eps of the PGD-20 columns (default: the profile's eps for the resolution)")
    ap.add_argument("--scores", nargs="+", default=None, choices=["own", "knn", "patch"],
                    help="scores fitted on each trained model: its own (ensemble / msc kNN) and/or feature kNN "
                         "(default: the profile's score)")
    ap.add_argument("--masking-checks", action="store_true",
                    help="run radlib.checks.masking_checks on each method's first-seed score (first --eps)")
    ap.add_argument("--no-pixel-knn", action="store_true", help="skip the model-free pixel kNN reference row")
    ap.add_argument("--standard", type=int, default=0, metavar="QUERIES",
                    help="also the standard worst-case evaluation (radlib.specs.standard_attacks at the first --eps: "
                         "APGD-20 with 3 restarts, Square with QUERIES queries, PGD-20 transferred from the same "
                         "method trained with the next seed, and their per-sample worst case), in a second table")
    ap.add_argument("--random-init", action="store_true",
                    help="add a row: the untrained network (the first method's config, else csi's) scored by "
                         "the first --scores kind (feature kNN for 'own')")
    ap.add_argument("--casting-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--category", action="append", default=[], metavar="DATA=CLASS",
                    help=f"normal class per data set (default {NORMAL})")
    ap.add_argument("--data", nargs="+", default=["casting", "surfaces"], choices=list(NORMAL))
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
    normal = {**NORMAL, **dict(c.split("=", 1) for c in args.category)}
    args.scores = args.scores or [profile.score]
    checks_lines: list[str] = []
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    steps = 20 if not args.quick else 2
    rows: list[str] = []
    standard_rows: list[str] = []
    for name in args.data:
        kw = {"root": args.casting_root} if name == "casting" else {}
        try:
            datasets = [load_data(name, normal[name], args.image_size, profile, seed=seed, **kw) for seed in seeds]
        except DatasetError as e:
            print(f"skip {name}: {e}", file=sys.stderr)
            continue
        ds0 = datasets[0]
        eps_list = args.eps or [profile.eps_for(ds0.image_size)]
        attacks = [AttackSpec(eps=e, steps=steps) for e in eps_list]
        if not rows or rows[0].count("|") != 7 + len(eps_list):
            rows += ["", "| data | method | score | clean AUROC | " +
                     " | ".join(f"PGD-{steps} @ {format_eps(e)}" for e in eps_list) + " | train s/seed | seeds |",
                     "|---" * (6 + len(eps_list)) + "|"]
        label = f"{name}{'' if ds0.normal == name else '/' + str(ds0.normal)} {ds0.image_size}px n={len(ds0.train.images)}"

        def add_row(method: str, kind: str, clean: list[float], robust: list[list[float]], secs: str,
                    cert: list[list[float]] | None = None) -> None:
            cells = [_fmt(r) + (f" ({_fmt(c)})" if cert else "") for r, c in zip(robust, cert or robust)]
            rows.append(f"| {label} | {method} | {kind} | {_fmt(clean)} | {' | '.join(cells)} | {secs} | {len(clean)} |")
            print(rows[-1], flush=True)

        # the bars every trained detector must clear, with no training (radlib.reference): the pixel kNN with its
        # certificate, and (--random-init) the network training starts from, scored like the trained rows (the
        # first --scores kind; "own" has no trained head to use: feature kNN then)
        init_kind = "knn" if args.scores[0] == "own" else args.scores[0]
        refs = [reference_rows(ds, profile, attacks, device=device, seed=seed, score_kind=init_kind,
                               pixel_knn=not args.no_pixel_knn, untrained_network=args.random_init,
                               method=(args.methods or ["csi"])[0], **overrides)
                for seed, ds in zip(seeds, datasets)]
        for key, kind in (("pixel kNN", "pixel kNN"), ("untrained network", init_kind)):
            if key not in refs[0]:
                continue
            evals = [r[key] for r in refs]
            cert = ([[r.certified_under(s.name) for r in evals] for s in attacks] if key == "pixel kNN" else None)
            row_name = ("none (pixel kNN, k=2; certified)" if key == "pixel kNN" else
                        f"none (random init, width {overrides.get('width', profile.width)})")
            add_row(row_name, kind, [r.eval.clean_auroc for r in evals],
                    [[r.eval.attacks[i].auroc for r in evals] for i in range(len(attacks))], "0", cert)
        trained: list = []
        for method in args.methods:
            clean_by = {k: [] for k in args.scores}
            robust_by = {k: [[] for _ in attacks] for k in args.scores}
            secs = []
            for seed, ds in zip(seeds, datasets):
                run = run_method(method, ds, profile, device=str(device), seed=seed, progress=False,
                                 attacks=attacks, score_kind=args.scores[0], **overrides)
                secs.append(run.train.seconds)
                if args.masking_checks and seed == seeds[0]:
                    checks = masking_checks(run.score, ds.test, eps=attacks[0].eps, steps=steps, device=device,
                                            seed=seed, verbose=False)
                    failed = [c.name for c in checks if not c.passed]
                    checks_lines.append(f"- {label} {method} ({args.scores[0]} score, {format_eps(attacks[0].eps)}): "
                                        f"{len(checks) - len(failed)}/{len(checks)} gradient-masking checks passed"
                                        + (f"; FAILED: {', '.join(failed)}" if failed else ""))
                    print(checks_lines[-1], flush=True)
                for kind in args.scores:
                    if kind == args.scores[0]:
                        res = run.eval
                    else:
                        score = fit_score(run.train, ds.train.images, samples=profile.eval_samples, seed=seed,
                                          kind=kind, augment=profile.eval_augment)
                        res = evaluate(score, ds.test, attacks=attacks, device=device, seed=seed,
                                       precision=profile.eval_precision)
                    clean_by[kind].append(res.clean_auroc)
                    for i in range(len(attacks)):
                        robust_by[kind][i].append(res.attacks[i].auroc)
                    print(f"{name} {method} seed {seed} score {kind}: clean {res.clean_auroc:.1f} robust "
                          f"{' / '.join(f'{a.auroc:.1f}' for a in res.attacks)} ({secs[-1]:.0f} s, "
                          f"{run.train.config.epochs} epochs)", flush=True)
                trained.append((seed, ds, run))
            for kind in args.scores:
                add_row(method, kind, clean_by[kind], robust_by[kind], f"{statistics.mean(secs):.0f}")
            if args.standard:
                standard_rows.append(_standard_row(label, method, trained, args.scores[0], attacks[0].eps, steps,
                                                   args.standard, profile, device))
                print(standard_rows[-1], flush=True)
            trained.clear()
    p = run.eval.protocol if args.methods and "run" in locals() else {}
    head = [f"device: {device_name(device)}; profile `{profile.name}`; torch {torch.__version__}; "
            f"training {p.get('train_precision', '?')}; evaluation {p.get('precision', '?')}, "
            f"test-time augmentation {p.get('score_tta', '?')}",
            f"command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`"]
    rows += [""] + checks_lines if checks_lines else []
    if standard_rows:
        rows += ["", "Standard evaluation (per seed, the transfer attack is crafted on the same method trained with the "
                     "next seed; worst = per-sample worst case of the three):", "",
                 f"| data | method | score | APGD-{steps} x3 restarts | Square-{args.standard} | transfer PGD-{steps} | "
                 f"worst case | Square >= APGD - 1 | transfer >= APGD - 1 |", "|---" * 9 + "|", *standard_rows]
    print("\n".join(head + rows))
    if args.record:
        record("bench_recipe.py", head + rows)


def _standard_row(label: str, method: str, trained: list, kind: str, eps: float, steps: int, queries: int,
                  profile, device) -> str:
    """One row of the standard evaluation over the seeds of ``trained`` ((seed, ds, run) per seed)."""
    cols: dict[str, list[float]] = {"apgd": [], "square": [], "transfer": [], "worst": []}
    passed = {"square": 0, "transfer": 0}
    for i, (seed, ds, run) in enumerate(trained):
        other = trained[(i + 1) % len(trained)][2]
        surrogate = fit_score(other.train, ds.train.images, samples=profile.eval_samples, seed=seed, kind=kind,
                              augment=profile.eval_augment)
        specs = standard_attacks(eps, steps=steps, restarts=3, queries=queries, surrogates=["next seed"])
        res = evaluate(run.score, ds.test, attacks=specs, device=device, seed=seed, precision=profile.eval_precision,
                       surrogates={"next seed": surrogate})
        a = [r.auroc for r in res.attacks]
        for key, value in zip(cols, a):
            cols[key].append(value)
        assert a[3] <= min(a[:3]) + 1e-9, a
        passed["square"] += a[1] >= a[0] - 1
        passed["transfer"] += a[2] >= a[0] - 1
        print(f"{label} {method} seed {seed} standard: " + ", ".join(f"{r.spec.name} {r.auroc:.1f}" for r in res.attacks),
              flush=True)
    n = len(trained)
    return (f"| {label} | {method} | {kind} | " + " | ".join(_fmt(v) for v in cols.values())
            + f" | {passed['square']}/{n} | {passed['transfer']}/{n} |")


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
