"""Throughput of PGD-10, the Square attack and the standard evaluation on the COBRA/CSI ensemble score vs. the raw
ResNet-18 forward+backward (same run).

Pass-count model. Scoring an image costs K*S forward passes (K chunks, S augmentation samples); one attack step
costs K*S forwards + input-backwards (~2/3 of a full training pass, no weight gradients). For PGD-k plus the clean
and the attacked scoring (forward only, ~1/3 pass each):
    passes(K, S, k) = K * S * (2/3 * k + 2/3)          (K=4, S=1, PGD-10: 29.3; K=2: 14.7)
Square-q costs K * S * (q/3 + 2/3) passes, the standard evaluation (APGD-k x r restarts + Square-q + worst case)
K * S * (r * (2/3 * k + 1/3) + q/3 + 1). limit = raw_img_s / passes; fraction = achieved / limit. Evaluation runs in fp32 (TF32 matmuls allowed on GPU);
--precision bf16 times the same attack under bfloat16 autocast (radlib.evaluate.AutocastScore).

--precision-check answers the issue's rule "bf16 only if robust AUROC stays within 1 point of fp32": it trains
CSI briefly on `surfaces` (32 and 64 px), evaluates the same score in fp32 and in bf16 (clean, PGD-10 at 1/255
and 8/255, in+out), and prints both AUROCs, their largest gap and the verdict.

Usage: python benchmarks/bench_eval.py [--quick] [--record] [--device cuda] [--precision bf16] [--precision-check]
The official COBRA code measured 34.6 img/s (32 px) and 7.0 img/s (224 px) for PGD-10 on one H100.
"""
from __future__ import annotations

import argparse
import warnings

import torch

from _common import (NO_BF16, TABLE_HEADER, bf16_native, device_name, finish, pick_device, radlib_cpu_setting,
                     raw_resnet_throughput, table_row, timed)
from radlib.attacks import attack_score
from radlib.data import load
from radlib.evaluate import AttackSpec, AutocastScore, evaluate
from radlib.specs import standard_attacks
from radlib.models import build_model
from radlib.pipeline import load_data
from radlib.score import fit_score
from radlib.profiles import get_profile
from radlib.pseudo_anomaly import policy_for
from radlib.score import EnsembleScore
from radlib.train import TrainConfig, train


def passes_per_image(K: int, samples: int, steps: int) -> float:
    return K * samples * (2 / 3 * steps + 2 / 3)


def passes_square(K: int, samples: int, queries: int) -> float:
    """Square-q: q forward-only queries (1/3 pass each; the first is the starting stripes), plus the clean and the
    attacked scoring."""
    return K * samples * (queries / 3 + 2 / 3)


def passes_standard(K: int, samples: int, steps: int, restarts: int, queries: int) -> float:
    """The standard evaluation without surrogates: APGD-steps x restarts (2/3 per step, 1/3 per restart to pick the
    best), Square-q, the clean scoring and one attacked scoring per attack (the worst case costs no pass)."""
    return K * samples * (restarts * (2 / 3 * steps + 1 / 3) + queries / 3 + 3 / 3)


def eval_throughput(image_size: int, dataset: str, device: torch.device, *, n: int, bank: int, steps: int,
                    batch: int, iters: int, width: int, precision: str = "fp32",
                    channels_last: bool = False, kind: str = "pgd", queries: int = 0,
                    restarts: int = 2) -> tuple[float, int]:
    """Images/s of an attack on the ensemble score (``kind``: ``"pgd"`` with ``steps``, ``"square"`` with
    ``queries``, or ``"standard"``: :func:`radlib.specs.standard_attacks` without surrogates), scoring included."""
    policy = policy_for(dataset)
    model = build_model(image_size=image_size, num_transforms=policy.K, width=width, device=device,
                        channels_last=channels_last).eval()
    train = torch.rand(bank, 3, image_size, image_size, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = EnsembleScore.fit(model, train, policy, batch_size=batch)
    if precision == "bf16":
        score = AutocastScore(score, device.type)
    x = torch.rand(n, 3, image_size, image_size, device=device)
    labels = torch.arange(n, device=device) % 2
    gen = torch.Generator(device=device).manual_seed(0)

    def run() -> None:
        if kind == "standard":
            evaluate(score, x, labels, attacks=standard_attacks(8 / 255, steps=steps, restarts=restarts,
                                                                queries=queries), batch_size=batch, device=device)
            return
        adv = attack_score(score, x, labels, eps=8 / 255, steps=queries if kind == "square" else steps,
                           method="square" if kind == "square" else "pgd", generator=gen)
        with torch.no_grad():
            score(adv)

    return n / timed(run, device, warmup=1, iters=iters), policy.K


def precision_check(device: torch.device, *, sizes: list[int], epochs: int, width: int, n_train: int, n_test: int,
                    steps: int) -> list[str]:
    """fp32 vs bf16 AUROCs of one briefly trained CSI score per size (same model, data, attack seeds)."""
    lines = ["| data | clean fp32 / bf16 | PGD-%d 1/255 fp32 / bf16 | PGD-%d 8/255 fp32 / bf16 | max gap | "
             "bf16 img/s / fp32 img/s | within 1 point |" % (steps, steps), "|---|---|---|---|---|---|---|"]
    for size in sizes:
        ds = load("surfaces", normal="metal", image_size=size, n_train=n_train, n_test=n_test, seed=0)
        cfg = TrainConfig(method="csi", dataset="surfaces", category="metal", image_size=size, epochs=epochs,
                          batch_size=64, optimizer="adam", lr=1e-3, warmup_epochs=1, width=width, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = train(cfg, ds, device=device, progress=False)
            score = fit_score(res, ds.train.images)
        # 8/255 is the protocol's eps; 1/255 keeps a non-robust model's AUROC off 0, so the comparison bites
        specs = [AttackSpec(eps=1 / 255, steps=steps), AttackSpec(eps=8 / 255, steps=steps)]
        out = {p: evaluate(score, ds.test, attacks=specs, device=device, seed=0, precision=p)
               for p in ("fp32", "bf16")}
        pairs = [(out["fp32"].clean_auroc, out["bf16"].clean_auroc)] + [
            (out["fp32"].attacks[i].auroc, out["bf16"].attacks[i].auroc) for i in range(len(specs))]
        gap = max(abs(a - b) for a, b in pairs)
        speed = [out[p].attacks[1].protocol["images_per_s"] for p in ("bf16", "fp32")]
        cells = " | ".join(f"{a:.1f} / {b:.1f}" for a, b in pairs)
        lines.append(f"| surfaces/metal {size}px, csi {epochs} ep, width {width} | {cells} | {gap:.2f} | "
                     f"{speed[0]:.0f} / {speed[1]:.0f} | {'yes' if gap <= 1.0 else 'NO'} |")
        print(lines[-1], flush=True)
    return lines


def profile_rows(name: str, device: torch.device, quick: bool) -> list[str]:
    """PGD on the ensemble score at a profile's sizes (K=4 low-resolution data, its width and eval steps), fp32
    NCHW vs bf16 + channels_last, interleaved (best of 3 rounds), with the raw fwd+bwd rate of each setting."""
    p = get_profile(name)
    size, width, steps = p.low_res_size, p.width, p.eval_steps
    n, bank, iters, rounds = (16, 32, 1, 1) if quick else (256, 600, 2, 3)
    label, bf16_now, cl_now = radlib_cpu_setting(device)  # the fastest setting this device allows
    settings = {"fp32 NCHW": ("fp32", False), label: ("bf16" if bf16_now else "fp32", cl_now)}
    best = {k: 0.0 for k in settings}
    raw = {k: 0.0 for k in settings}
    K = 4
    for _ in range(rounds):
        for label, (precision, cl) in settings.items():
            raw[label] = max(raw[label], raw_resnet_throughput(size, 16 if quick else 256, device,
                                                               bf16=precision == "bf16",
                                                               channels_last=cl, iters=max(2, iters), width=width))
            ips, K = eval_throughput(size, "digits", device, n=n, bank=bank, steps=steps, batch=n, iters=iters,
                                     width=width, precision=precision, channels_last=cl)
            best[label] = max(best[label], ips)
    lines = [f"device: {device_name(device)}; torch {torch.__version__}; profile `{name}` sizes ({size} px, width "
             f"{width}, K={K}, bank {bank}, PGD-{steps}); best of {rounds} interleaved rounds", "",
             TABLE_HEADER[0].format(what="attack"), TABLE_HEADER[1]]
    for label in settings:
        lines.append(table_row(f"PGD-{steps} on ensemble score, {size}px K={K} S=1, {label}", best[label], raw[label],
                               passes_per_image(K, 1, steps)))
    lines += ["", f"speed-up of PGD on the score, {label} over fp32 NCHW: {best[label] / best['fp32 NCHW']:.2f}x"]
    # the gradient-free and the standard evaluation, in the faster setting, next to its PGD row
    precision, cl = settings[label]
    queries = 2 if quick else 10 * steps
    lines += ["", TABLE_HEADER[0].format(what="attack"), TABLE_HEADER[1],
              table_row(f"PGD-{steps}, {label}", best[label], raw[label], passes_per_image(K, 1, steps))]
    for kind, passes in (("square", passes_square(K, 1, queries)),
                         ("standard", passes_standard(K, 1, steps, 2, queries))):
        ips, _ = eval_throughput(size, "digits", device, n=n, bank=bank, steps=steps, batch=n, iters=iters,
                                 width=width, precision=precision, channels_last=cl, kind=kind, queries=queries)
        what = (f"Square-{queries} ({ips * queries:.0f} queries/s)" if kind == "square" else
                f"standard: APGD-{steps} x2 + Square-{queries} + worst case")
        lines.append(table_row(f"{what}, {label}", ips, raw[label], passes))
        print(lines[-1], flush=True)
    if not bf16_now:
        lines.append(NO_BF16)
    return lines


def profile_precision_check(name: str, device: torch.device, quick: bool, seeds: list[int]) -> list[str]:
    """fp32 vs bf16 AUROCs (clean and PGD at the profile's eps) of csi and cobra trained with the profile's
    recipe on digits (normal class 0), same model, data and attack seeds: the rule is |gap| <= 1 point."""
    p = get_profile("smoke" if quick else name)
    eps = p.eps_for(p.low_res_size)
    lines = [f"precision check, profile `{p.name}`, digits/0 at {p.low_res_size} px, PGD-{p.eval_steps} at "
             f"{eps * 255:.0f}/255 (training in the profile's own precision)", "",
             "| method | seed | clean fp32 / bf16 | PGD fp32 / bf16 | max gap | within 1 point |", "|---|---|---|---|---|---|"]
    for seed in seeds:
        ds = load_data("digits", "0", None, p, seed=seed)
        for method in ("csi", "cobra"):
            cfg = TrainConfig.from_profile(p, method=method, dataset="digits", image_size=ds.image_size,
                                           n_train=len(ds.train.images),
                                           category="0", channels=ds.channels, seed=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = train(cfg, ds, device=device, progress=False)
                score = fit_score(res, ds.train.images)
            spec = [AttackSpec(eps=eps, steps=p.eval_steps)]
            out = {q: evaluate(score, ds.test, attacks=spec, device=device, seed=seed, precision=q)
                   for q in ("fp32", "bf16")}
            pairs = [(out["fp32"].clean_auroc, out["bf16"].clean_auroc),
                     (out["fp32"].robust_auroc, out["bf16"].robust_auroc)]
            gap = max(abs(a - b) for a, b in pairs)
            lines.append(f"| {method} | {seed} | " + " | ".join(f"{a:.1f} / {b:.1f}" for a, b in pairs) +
                         f" | {gap:.2f} | {'yes' if gap <= 1.0 else 'NO'} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CPU sanity check of the script)")
    ap.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="precision of the timed attack")
    ap.add_argument("--precision-check", action="store_true",
                    help="also compare fp32 and bf16 robust AUROCs on briefly trained CSI models")
    ap.add_argument("--check-epochs", type=int, default=10, help="CSI epochs for --precision-check")
    ap.add_argument("--profile", default=None,
                    help="time PGD on the score at this profile's sizes, fp32 vs bf16 (with --precision-check: "
                         "the AUROC check on csi and cobra trained with that profile)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the profile precision check")
    args = ap.parse_args()
    device = pick_device(args.device)
    bf16_skipped = not bf16_native(device) and (args.precision == "bf16" or args.precision_check)
    if bf16_skipped:
        args.precision, args.precision_check = "fp32", False
        print(NO_BF16, flush=True)
    if args.profile:
        lines = profile_rows(args.profile, device, args.quick)
        if args.precision_check:
            lines += [""] + profile_precision_check(args.profile, device, args.quick, args.seeds)
        lines += [NO_BF16] if bf16_skipped else []
        finish("bench_eval.py --profile " + args.profile, lines, args.quick, args.record)
        return
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # (size, dataset, images attacked, train bank, batch)
    cases = [(32, "cifar10", 2048, 5000, 512), (224, "mvtec_ad", 256, 300, 64)]
    iters, width, steps = 3, 64, 10
    if args.quick:
        cases, iters, width, steps = [(32, "cifar10", 16, 32, 16), (64, "mvtec_ad", 8, 16, 8)], 1, 16, 2
    precision = "bf16 autocast" if args.precision == "bf16" else (
        "fp32" + (" (TF32 matmuls)" if device.type == "cuda" else ""))
    lines = [f"device: {device_name(device)}; torch {torch.__version__}; precision: {precision}", "",
             TABLE_HEADER[0].format(what="attack"), TABLE_HEADER[1]]
    for size, ds, n, bank, batch in cases:
        raw_batch = 16 if args.quick else (256 if size <= 64 else 64)  # quick: bf16 may be emulated (slow) on a CPU
        raw = raw_resnet_throughput(size, raw_batch, device, bf16=args.precision == "bf16",
                                    channels_last=False,
                                    iters=max(3, iters), width=width)
        ips, K = eval_throughput(size, ds, device, n=n, bank=bank, steps=steps, batch=batch, iters=iters, width=width,
                                 precision=args.precision)
        p = passes_per_image(K, 1, steps)
        lines.append(table_row(f"PGD-{steps} on ensemble score, {size}px K={K} S=1", ips, raw, p))
        print(lines[-1], flush=True)
        queries = 2 if args.quick else 10 * steps  # Square and the standard evaluation beside PGD
        for kind, passes in (("square", passes_square(K, 1, queries)),
                             ("standard", passes_standard(K, 1, steps, 2, queries))):
            ips, _ = eval_throughput(size, ds, device, n=n, bank=bank, steps=steps, batch=batch, iters=iters,
                                     width=width, precision=args.precision, kind=kind, queries=queries)
            what = (f"Square-{queries} ({ips * queries:.0f} queries/s)" if kind == "square" else
                    f"standard: APGD-{steps} x2 + Square-{queries} + worst case")
            lines.append(table_row(f"{what}, {size}px K={K} S=1", ips, raw, passes))
            print(lines[-1], flush=True)
    lines += [NO_BF16] if bf16_skipped else []
    if args.precision_check:
        lines.append("")
        if args.quick:
            lines += precision_check(device, sizes=[32], epochs=1, width=16, n_train=32, n_test=24, steps=2)
        else:
            lines += precision_check(device, sizes=[32, 64], epochs=args.check_epochs, width=64, n_train=512,
                                     n_test=400, steps=10)
    finish("bench_eval.py", lines, args.quick, args.record)


if __name__ == "__main__":
    main()
