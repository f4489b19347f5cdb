"""Shared benchmark helpers: timing with device sync, the raw ResNet-18 reference, result recording."""
from __future__ import annotations

import datetime as _dt
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from radlib.device import cpu_has_native_bf16, select_device, uses_channels_last
from radlib.models import build_model

RESULTS = Path(__file__).with_name("RESULTS.md")


def bf16_native(device: torch.device) -> bool:
    """Whether bf16 is worth timing on ``device``: CUDA, or a CPU with native bf16 (elsewhere it is emulated, many
    times slower than fp32, and radlib never uses it: :func:`radlib.device.autocast_dtype`)."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


NO_BF16 = "this CPU has no native bf16 (radlib trains and evaluates in fp32 here): bf16 rows skipped"


def radlib_cpu_setting(device: torch.device) -> tuple[str, bool, bool]:
    """What radlib runs on this device: (label, bf16 autocast, channels_last)."""
    bf16, cl = bf16_native(device), uses_channels_last(device)
    label = ("bf16" if bf16 else "fp32") + (" + channels_last" if cl else " NCHW")
    return label, bf16, cl


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per call of ``fn`` (after ``warmup`` calls), device-synchronised."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / iters


def raw_resnet_throughput(image_size: int, batch: int, device: torch.device, *, bf16: bool, channels_last: bool,
                          warmup: int = 3, iters: int = 10, width: int = 64) -> float:
    """Images/s of a plain ResNet-18 forward + backward + SGD step (the ceiling every method is compared with)."""
    model = build_model(image_size=image_size, num_transforms=4, width=width, device=device,
                        channels_last=channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 3, image_size, image_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step() -> None:
        with amp:
            out = model(x)
            loss = out.projection.float().pow(2).mean() + out.logits.float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch / timed(step, device, warmup, iters)


TABLE_HEADER = ["| {what} | img/s | raw ResNet-18 fwd+bwd img/s | passes/img | limit img/s | fraction of limit |",
                "|---|---|---|---|---|---|"]


def table_row(label: str, ips: float, raw: float, passes: float) -> str:
    """One results row: achieved img/s, the raw reference, the pass-count limit raw/passes and the fraction."""
    limit = raw / passes
    return f"| {label} | {ips:.1f} | {raw:.0f} | {passes:.1f} | {limit:.1f} | {ips / limit:.2f} |"


def finish(script: str, lines: list[str], quick: bool, record_it: bool) -> None:
    """Print the whole table and, with ``--record``, append it to RESULTS.md."""
    print("\n".join(lines))
    if record_it:
        record(script + (" --quick" if quick else ""), lines)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def record(section: str, lines: list[str]) -> None:
    """Append a dated block to benchmarks/RESULTS.md."""
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    with RESULTS.open("a") as fh:
        fh.write(f"\n### {section} — {stamp}\n\n" + "\n".join(lines) + "\n")


def pick_device(name: str | None) -> torch.device:
    return select_device(name)
