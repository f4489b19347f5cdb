"""Throughput of the COBRA training step vs. the raw ResNet-18 forward+backward, measured in the same run.

Pass-count model (stated so the fraction of the limit means something). Per *normal* image with K chunks:
  - update: forward + backward on 5 chunks (v1, v2, ATPT(v1), ATNT(v2), RTP(v2))      -> 5 full passes
  - each of the 3 training attacks: ``steps`` forward + input-backward passes, which skip the
    weight gradients (~2/3 of a full pass), plus one no-grad forward for its target     -> 3*(2/3*steps + 1/3)
  => passes(K, steps) = K * (5 + 2*steps + 1)      (K=4, PGD-10: 104; K=2, PGD-10: 52)
  The trainer runs the three attacks as one batched PGD (``radlib.attacks.training_attacks``): the same
  passes, stacked, and one shared no-grad target forward instead of two   -> K * (5 + 2*steps + 1/3).
The attack-adjusted limit is raw_img_s / passes: the best a step could do if every pass ran at the raw
ResNet-18 rate. The fraction printed is achieved / limit (1.0 = no overhead at all).

Usage: python benchmarks/bench_train.py [--quick] [--record] [--device cuda] [--profile cpu]
The official COBRA code measured 108 img/s (32 px, B=64, K=4) and 23.6 img/s (224 px, B=32, K=2) on one H100.
``--profile cpu`` times the step at that profile's sizes instead, interleaved: fp32 NCHW with one attack per call
(what radlib ran on CPUs before), then each of the two levers alone and together: the batched attacks, and radlib's
CPU layout/precision (bf16 autocast + channels_last where bf16 is native), and prints the speed-ups.
"""
from __future__ import annotations

import argparse

import torch

from _common import (NO_BF16, TABLE_HEADER, device_name, finish, pick_device, radlib_cpu_setting, raw_resnet_throughput,
                     table_row, timed)
from radlib.train import TrainConfig, TrainStep  # the trainer's own step function
from radlib.models import build_model
from radlib.optim import build_optimizer
from radlib.profiles import get_profile


def passes_per_image(K: int, steps: int, fused: bool = True) -> float:
    return K * (5 + 2 * steps + (1 / 3 if fused else 1))


def step_throughput(image_size: int, batch: int, dataset: str, device: torch.device, *, steps: int, bf16: bool,
                    iters: int, warmup: int, width: int = 64, channels_last: bool | None = None,
                    fused: bool = True) -> tuple[float, int]:
    cl = device.type == "cuda" if channels_last is None else channels_last
    cfg = TrainConfig(method="cobra", dataset=dataset, image_size=image_size, batch_size=batch,
                      attack_steps=steps, amp=bf16, channels_last=cl, width=width,
                      crop=image_size <= 64)
    policy = cfg.policy()
    model = build_model(cfg.model_config(), device=device, channels_last=cfg.channels_last)
    opt = build_optimizer(model, "lars", lr=0.1)
    step_fn = TrainStep(cfg, model, policy, None, fused_attacks=fused)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch, 3, image_size, image_size, device=device)
    model.train()

    def one() -> None:
        terms = step_fn(x, gen)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()

    return batch / timed(one, device, warmup, iters), policy.K


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CPU sanity check of the script)")
    ap.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    ap.add_argument("--profile", default=None, help="time the step at this profile's sizes, fp32 vs bf16")
    args = ap.parse_args()
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.profile:
        finish("bench_train.py --profile " + args.profile, profile_rows(args.profile, device, args.quick),
               args.quick, args.record)
        return
    cases = [(32, 64, "cifar10", 10), (224, 32, "mvtec_ad", 10)]
    iters, warmup, width = 10, 3, 64
    if args.quick:
        cases, iters, warmup, width = [(32, 8, "cifar10", 2), (64, 4, "mvtec_ad", 2)], 2, 1, 16
    bf16 = device.type == "cuda"  # the fixed-size GPU rows; on a CPU radlib's own choice is `--profile cpu`
    lines = [f"device: {device_name(device)}; torch {torch.__version__}; precision: "
             f"{'bf16 autocast + channels_last' if bf16 else 'fp32'}", "",
             TABLE_HEADER[0].format(what="step"), TABLE_HEADER[1]]
    for size, batch, ds, steps in cases:
        raw = raw_resnet_throughput(size, 16 if args.quick else (256 if size <= 64 else 64), device, bf16=bf16,
                                    channels_last=device.type == "cuda", warmup=warmup, iters=iters, width=width)
        ips, K = step_throughput(size, batch, ds, device, steps=steps, bf16=bf16, iters=iters, warmup=warmup,
                                 width=width)
        p = passes_per_image(K, steps)
        lines.append(table_row(f"COBRA {size}px B={batch} K={K} 3xPGD-{steps}", ips, raw, p))
        print(lines[-1], flush=True)
    finish("bench_train.py", lines, args.quick, args.record)


def profile_rows(name: str, device: torch.device, quick: bool) -> list[str]:
    """The step at a profile's sizes (K=4 low-resolution data, its batch, width and attack steps), fp32 NCHW and
    bf16 + channels_last, interleaved (3 rounds, best of each), with the raw fwd+bwd rate of the same setting."""
    p = get_profile(name)
    size, batch, steps, width = p.low_res_size, p.batch_size, p.train_attack_steps, p.width
    iters, rounds = (2, 1) if quick else (6, 3)
    # the first is what radlib ran on CPUs before, the last what it runs on this device now
    label, bf16_now, cl_now = radlib_cpu_setting(device)
    before = "fp32 NCHW, one attack per call"
    settings = {before: (False, False, False), "fp32 NCHW, batched attacks": (False, False, True)}
    if bf16_now or cl_now:
        settings[f"{label}, one attack per call"] = (bf16_now, cl_now, False)
        settings[f"{label}, batched attacks"] = (bf16_now, cl_now, True)
    best: dict[str, float] = {k: 0.0 for k in settings}
    raw: dict[str, float] = {k: 0.0 for k in settings}
    K = 4
    for _ in range(rounds):
        for label, (bf16, cl, fused) in settings.items():
            raw[label] = max(raw[label], raw_resnet_throughput(size, 16 if quick else 256, device, bf16=bf16,
                                                               channels_last=cl,
                                                               warmup=1, iters=iters, width=width))
            ips, K = step_throughput(size, batch, "digits", device, steps=steps, bf16=bf16, iters=iters, warmup=1,
                                     width=width, channels_last=cl, fused=fused)
            best[label] = max(best[label], ips)
    lines = [f"device: {device_name(device)}; torch {torch.__version__}; profile `{name}` sizes "
             f"({size} px, width {width}, B={batch}, K={K}, 3 x PGD-{steps}); best of {rounds} interleaved rounds", "",
             TABLE_HEADER[0].format(what="step"), TABLE_HEADER[1]]
    for label, (_, _, fused) in settings.items():
        lines.append(table_row(f"COBRA {size}px B={batch} K={K} 3xPGD-{steps}, {label}", best[label], raw[label],
                               passes_per_image(K, steps, fused)))
    lines += [""] + [f"speed-up of the step, {label} over {before}: {best[label] / best[before]:.2f}x"
                     for label in list(settings)[1:]]
    if not bf16_now:
        lines.append(NO_BF16)
    return lines


if __name__ == "__main__":
    main()
