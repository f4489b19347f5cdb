"""Throughput of the data-parallel COBRA step (radlib.distributed): 1 process vs W processes, SyncBatchNorm or not.

Each setting runs the trainer's own step (``radlib.step.TrainStep``; under W > 1 with its shards and the
DistributedDataParallel wrapper) on synthetic images at a profile's sizes, the global batch fixed, and prints images/s
(global batch / step time), the speed-up over one process, and the raw ResNet-18 forward+backward rate of the same run
with the fraction of the pass-count limit (``bench_train.py`` states the pass model). W processes share the machine's
cores (``cores // W`` threads each), so on one CPU the speed-up says what the gathers, the synchronised BatchNorm and
the gradient all-reduce cost; on W GPUs (``--device cuda``, one per process) it is the scaling itself.

Usage: python benchmarks/bench_ddp.py [--profile cpu] [--world 1 2] [--rounds 3] [--quick] [--record]
Settings are interleaved round by round; mean ± std over the rounds.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bf16_native, finish, raw_resnet_throughput, timed  # noqa: E402
from radlib.distributed import free_port  # noqa: E402


def _worker(rank: int, world: int, port: int, sync: bool, sizes: dict, device: str, out: str) -> None:
    import radlib.distributed as rd
    from radlib.config import TrainConfig
    from radlib.models import build_model
    from radlib.optim import build_optimizer
    from radlib.step import TrainStep
    threads = max(1, (os.cpu_count() or 1) // world) if device == "cpu" else 1
    torch.set_num_threads(threads)
    dev = torch.device(device if device == "cpu" else f"cuda:{rank}")
    cfg = TrainConfig(method="cobra", dataset=sizes["dataset"], image_size=sizes["size"], batch_size=sizes["batch"],
                      attack_steps=sizes["steps"], width=sizes["width"], crop=sizes["crop"], amp=sizes["bf16"],
                      channels_last=sizes["channels_last"])
    torch.manual_seed(0)
    model = build_model(cfg.model_config(), device=dev, channels_last=cfg.channels_last)
    shards = None
    if world > 1:
        os.environ.update(rd.local_env(rank, world, port))
        shards = rd.init_from_env(dev, sync_batchnorm=sync)
    step = TrainStep(cfg, model, cfg.policy(), None, shards=shards)  # with shards: global BatchNorm and DDP
    opt = build_optimizer(model, "adam", lr=1e-3)
    gen = torch.Generator(device=dev).manual_seed(rank)
    x = torch.rand(sizes["batch"] // world, 3, sizes["size"], sizes["size"], device=dev)
    model.train()

    def one() -> None:
        step.share_buffers()
        terms = step(x, gen)
        opt.zero_grad(set_to_none=True)
        (terms["loss"] * world).backward()
        opt.step()

    seconds = timed(one, dev, sizes["warmup"], sizes["iters"])
    if rank == 0:
        Path(out).write_text(str(sizes["batch"] / seconds))
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()


def measure(world: int, sync: bool, sizes: dict, device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ips")
        mp.spawn(_worker, args=(world, free_port(), sync, sizes, device, out), nprocs=world, join=True)
        return float(Path(out).read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="the sizes: the profile's teaching data, its image size, batch, "
                    "width, training attack steps")
    ap.add_argument("--world", type=int, nargs="+", default=[1, 2], help="process counts to time")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a sanity check of the script)")
    ap.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    from radlib.device import uses_channels_last
    from radlib.profiles import get_profile
    p = get_profile(args.profile)
    dev = torch.device(args.device)
    bf16 = bf16_native(dev)
    from radlib.config import TrainConfig
    cfg = TrainConfig.from_profile(p, "cobra", dataset=p.dataset[0])  # the profile's teaching data and its sizes
    sizes = dict(dataset=cfg.dataset, size=cfg.image_size, batch=cfg.batch_size, width=cfg.width,
                 steps=cfg.attack_steps, crop=cfg.crop, bf16=bf16, iters=6, warmup=2)
    if args.quick:
        sizes.update(size=8, batch=4, width=4, steps=1, iters=1, warmup=1)
        args.rounds = 1
    # decided at the width that runs: --quick's width 4 must not run channels_last on an AVX2 CPU (radlib.device)
    sizes["channels_last"] = uses_channels_last(dev, True, sizes["width"])
    settings = [(1, True)] + [(w, s) for w in args.world if w > 1 for s in (True, False)]
    got: dict[tuple[int, bool], list[float]] = {k: [] for k in settings}
    for _ in range(args.rounds):  # interleaved: a drift in the machine's speed hits every setting alike
        for world, sync in settings:
            got[(world, sync)].append(measure(world, sync, sizes, args.device))
    torch.set_num_threads(os.cpu_count() or 1)
    raw = raw_resnet_throughput(sizes["size"], 16 if args.quick else 256, dev, bf16=bf16,
                                channels_last=sizes["channels_last"], warmup=1, iters=2 if args.quick else 6,
                                width=sizes["width"])
    policy = cfg.policy()
    K = policy.K if policy is not None else 1
    passes = K * (5 + 2 * sizes["steps"] + 1 / 3)
    base = statistics.mean(got[(1, True)])
    lines = [f"device: {args.device} ({os.cpu_count()} cores); torch {torch.__version__}; profile `{args.profile}` sizes "
             f"({sizes['dataset']}, {sizes['size']} px, width {sizes['width']}, global B={sizes['batch']}, K={K}, 3 x PGD-{sizes['steps']}, "
             f"{'bf16' if bf16 else 'fp32'}); {args.rounds} interleaved rounds, mean ± std", "",
             "| processes | BatchNorm | img/s | speed-up over 1 process | fraction of the pass-count limit |",
             "|---|---|---|---|---|"]
    for world, sync in settings:
        v = got[(world, sync)]
        mean, std = statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)
        bn = "—" if world == 1 else ("synchronised" if sync else "per process")
        lines.append(f"| {world} | {bn} | {mean:.1f} ± {std:.1f} | {mean / base:.2f} | {mean / (raw / passes):.2f} |")
    lines += ["", f"raw ResNet-18 fwd+bwd, same run, all cores: {raw:.0f} img/s; pass-count limit {raw / passes:.1f} "
              f"img/s ({passes:.1f} passes per image)"]
    finish("bench_ddp.py --profile " + args.profile, lines, args.quick, args.record)


if __name__ == "__main__":
    main()
