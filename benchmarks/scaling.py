"""The expected wall time of the paper's MVTec AD table on 1, 8 and 64 GPUs, from measured single-GPU rates.

Arithmetic, not a measurement: each run (class x seed) trains ``n_train(class) * epochs / train_rate`` seconds and
evaluates ``n_test(class) / eval_rate`` seconds; a sweep gives each run one GPU and schedules the longest runs first
(LPT), so its time on G GPUs is the makespan of that schedule. The rates default to what one H200 measured for
radlib's COBRA at 224 px (``benchmarks/RESULTS.md``, 2026-12-04): the training step 150 img/s (B=32, K=2, 3 x PGD-10,
bf16) and PGD-10 on the ensemble score 307 img/s, so PGD-S evaluates at about 307 * 10 / S img/s (the attack's
passes dominate). Process start, data loading and the score fit are left out (seconds per run).

Usage: python benchmarks/scaling.py [--gpus 1 8 64] [--epochs 100] [--seeds 3] [--eval-steps 100]
"""
from __future__ import annotations

import argparse
import heapq

#: MVTec AD's 15 categories: (normal training images, test images), from the data set's paper (Bergmann et al.,
#: CVPR 2019, Table 1); 3,629 and 1,725 in all
MVTEC = {"bottle": (209, 83), "cable": (224, 150), "capsule": (219, 132), "carpet": (280, 117), "grid": (264, 78),
         "hazelnut": (391, 110), "leather": (245, 124), "metal_nut": (220, 115), "pill": (267, 167),
         "screw": (320, 160), "tile": (230, 117), "toothbrush": (60, 42), "transistor": (213, 100), "wood": (247, 79),
         "zipper": (240, 151)}


def run_seconds(n_train: int, n_test: int, *, epochs: int, train_rate: float, eval_rate: float) -> float:
    return n_train * epochs / train_rate + n_test / eval_rate


def makespan(durations: list[float], gpus: int) -> float:
    """Longest-processing-time-first schedule of independent runs on ``gpus`` machines: its finishing time."""
    loads = [0.0] * gpus
    heapq.heapify(loads)
    for d in sorted(durations, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + d)
    return max(loads)


def table(gpus: list[int], *, epochs: int, seeds: int, train_rate: float, eval_rate: float) -> list[str]:
    runs = [run_seconds(tr, te, epochs=epochs, train_rate=train_rate, eval_rate=eval_rate)
            for tr, te in MVTEC.values() for _ in range(seeds)]
    total = sum(runs)
    lines = [f"{len(runs)} runs (15 categories x {seeds} seeds), {epochs} epochs at {train_rate:g} img/s, evaluation "
             f"at {eval_rate:.1f} img/s; the longest run {max(runs):.0f} s, all runs {total:.0f} s", "",
             "| GPUs | sweep time (LPT) | speed-up over 1 GPU | GPUs used | what bounds it |",
             "|---|---|---|---|---|"]
    for g in gpus:
        t = makespan(runs, g)
        bound = "the sum of the runs" if g == 1 else ("the longest run" if t <= max(runs) + 1e-9 else
                                                        "the sum of the runs / GPUs")
        busy = min(g, len(runs))
        lines.append(f"| {g} | {t / 60:.1f} min | {total / t:.1f}x | {busy} of {g} | {bound} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-rate", type=float, default=150.0, help="training img/s of one GPU (measured: H200)")
    ap.add_argument("--eval-rate-pgd10", type=float, default=307.2, help="PGD-10 evaluation img/s (measured: H200)")
    ap.add_argument("--eval-steps", type=int, default=100, help="PGD steps of the evaluation")
    args = ap.parse_args(argv)
    eval_rate = args.eval_rate_pgd10 * 10 / args.eval_steps
    print("\n".join(table(args.gpus, epochs=args.epochs, seeds=args.seeds, train_rate=args.train_rate,
                          eval_rate=eval_rate)))


if __name__ == "__main__":
    main()
