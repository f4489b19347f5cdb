"""PGD-20 on the patch score on a CPU: what the allocator and the size of the similarity blocks cost.

The `cpu` profile's attacks run on the patch score (radlib.score.patch): every step compares each local feature
of the batch with the whole memory bank (128 images x 16 positions x 4096 bank rows = one 33.5 MB block with the
old 4096-row chunks). glibc serves blocks over its mmap threshold (32 MiB at most) with a fresh ``mmap`` that the
kernel zero-fills page by page, and by default it returns other freed memory at once, so the same activations are
faulted in again on every step. Two changes, timed here alone and together, each in a fresh process (the allocator
setting cannot be undone inside one), interleaved over ``--rounds`` rounds:

- ``radlib.knn.CPU_BLOCK_ELEMENTS``: on a CPU a chunk holds at most 2**20 query x bank values (4 MiB);
- ``radlib.device.reuse_freed_memory()``: glibc keeps freed blocks up to 32 MiB and up to 1 GiB of free memory.

Pass-count model: PGD-k on the score, plus the clean and the attacked scoring: ``2/3 * k + 2/3`` passes of the
network per image (an input-backward is ~2/3 of a training pass, a forward ~1/3); the network runs only up to the
patch score's stage, so the fraction printed is an upper bound of the true one. The raw ResNet-18 forward+backward
rate is measured in the same process.

Usage: python benchmarks/bench_cpu_memory.py [--quick] [--record] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from _common import TABLE_HEADER, device_name, finish, radlib_cpu_setting, raw_resnet_throughput, table_row

CONFIGS = {  # label -> (reuse freed memory, cap the blocks)
    "default allocator, 4096-row chunks (radlib before)": (False, False),
    "default allocator, capped blocks": (False, True),
    "reuse_freed_memory, 4096-row chunks": (True, False),
    "reuse_freed_memory + capped blocks (radlib now)": (True, True),
}


def child(reuse: bool, cap: bool, quick: bool) -> dict[str, float]:
    """Time PGD-20 (in+out, 4/255) on the patch score of the `cpu` profile's untrained network (the speed does not
    depend on the weights) in this process; returns images/s, the raw rate and the page faults of the timed run."""
    import radlib.knn as knn
    from radlib.device import reuse_freed_memory
    from radlib.evaluate import AttackSpec, evaluate
    from radlib.pipeline import load_data, untrained
    from radlib.profiles import get_profile
    from radlib.score import fit_score
    from radlib.train import TrainConfig
    if reuse:
        reuse_freed_memory()
    if not cap:
        knn.CPU_BLOCK_ELEMENTS = 2 ** 62  # no cap: every chunk is chunk_size rows, as before
    profile = get_profile("cpu")
    sizes = dict(n_train=16, n_test=16) if quick else {}
    ds = load_data(*profile.dataset, None, profile, seed=0, **sizes)
    cfg = TrainConfig.from_profile(profile, method="cobra", dataset=ds.name, image_size=ds.image_size,
                                   n_train=len(ds.train.images), category=ds.normal, channels=ds.channels)
    score = fit_score(untrained(cfg, device="cpu"), ds.train.images, kind="patch", seed=0)
    steps = 2 if quick else profile.eval_steps
    spec = AttackSpec(method="pgd", mode="both", eps=4 / 255, steps=steps)
    evaluate(score, ds.test, attacks=[spec], seed=0)  # warm-up: the first run grows the heap
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    evaluate(score, ds.test, attacks=[spec], seed=0)
    seconds = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    _, bf16, cl = radlib_cpu_setting(torch.device("cpu"))
    raw = raw_resnet_throughput(ds.image_size, 32 if quick else 128, torch.device("cpu"), bf16=bf16,
                                channels_last=cl, width=cfg.width, warmup=1 if quick else 3, iters=2 if quick else 10)
    return {"img_s": len(ds.test) / seconds, "seconds": seconds, "faults": faults, "raw": raw, "steps": steps,
            "n": len(ds.test), "bank": int(score.bank.shape[0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round (a check that the script runs)")
    ap.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the four settings")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        reuse, cap = json.loads(args.child)
        print(json.dumps(child(reuse, cap, args.quick)))
        return
    rounds = 1 if args.quick else args.rounds
    got: dict[str, list[dict[str, float]]] = {label: [] for label in CONFIGS}
    for _ in range(rounds):
        for label, setting in CONFIGS.items():
            cmd = [sys.executable, __file__, "--child", json.dumps(setting)] + (["--quick"] if args.quick else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=dict(os.environ))
            got[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
    first = next(iter(got.values()))[0]
    passes = 2 / 3 * first["steps"] + 2 / 3
    lines = [f"device: {device_name(torch.device('cpu'))}; torch {torch.__version__}; `cpu` profile: PGD-"
             f"{int(first['steps'])} in+out at 4/255 on the patch score, {int(first['n'])} test images, bank "
             f"{int(first['bank'])} rows, batch 128; fp32; median of {rounds} interleaved round(s), each in a fresh "
             f"process", ""]
    lines += [h.format(what="setting") for h in TABLE_HEADER]
    for label, runs in got.items():
        lines.append(table_row(label, statistics.median(r["img_s"] for r in runs),
                               statistics.median(r["raw"] for r in runs), passes))
    lines += ["", "| setting | seconds per evaluation (each round) | page faults per evaluation (median) |",
              "|---|---|---|"]
    for label, runs in got.items():
        secs = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        lines.append(f"| {label} | {secs} | {statistics.median(r['faults'] for r in runs):,.0f} |")
    finish("bench_cpu_memory.py", lines, args.quick, args.record)


if __name__ == "__main__":
    main()
