"""Device choice (cuda -> mps -> cpu, overridable) and seeded generators. No `.cuda()` anywhere in radlib."""
from __future__ import annotations

import ctypes
import os
import sys

import torch

__all__ = ["DeviceError", "DEVICE_TYPES", "select_device", "make_generator", "autocast_dtype", "cpu_has_native_bf16", "uses_channels_last",
           "reuse_freed_memory"]


class DeviceError(ValueError):
    """A device radlib cannot run on (unknown name, or absent here); the message names where it came from."""


#: the device types radlib runs on
DEVICE_TYPES = ("cpu", "cuda", "mps")


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``device`` if given, else ``$RADLIB_DEVICE``, else cuda -> mps -> cpu.

    Raises:
        DeviceError (a ValueError): not a device name, a type radlib does not run on (``xla``, ``meta``, ...), or a
            device absent here (``cuda`` without CUDA, ``cuda:7`` on a machine with fewer GPUs, ``mps`` off a Mac).
    """
    from_env = device is None and bool(os.environ.get("RADLIB_DEVICE"))
    choice = device if device is not None else os.environ.get("RADLIB_DEVICE") or None
    if choice is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    where = f"RADLIB_DEVICE={choice!r}" if from_env else f"device {choice!r}"
    try:
        dev = choice if isinstance(choice, torch.device) else torch.device(choice)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"{where} is not a device name; use cpu, cuda, cuda:N or mps (lower case)") from None
    if dev.type not in DEVICE_TYPES:
        raise DeviceError(f"{where}: radlib runs on cpu, cuda or mps, not {dev.type}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{where} was asked for but CUDA is not available here; use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{where}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"{where} was asked for but MPS (Apple GPU) is not available here; use cpu")
    return dev


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed`` (library code never reseeds globals)."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def cpu_has_native_bf16() -> bool:
    """True when this CPU runs bf16 matrix maths natively through oneDNN (AVX512-BF16 or AMX): there bf16
    autocast roughly doubles ResNet-18 throughput; elsewhere it is emulated and slower than fp32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # older torch without the query: stay in fp32
        return False


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype for training on ``device``, or None (fp32).

    bf16 on CUDA devices with bf16 tensor cores (Ampere and newer) and on CPUs with native bf16
    (:func:`cpu_has_native_bf16`); fp16 on Volta/Turing GPUs (a T4 runs bf16 only emulated, slowly; the trainer
    uses a gradient scaler with fp16); None elsewhere (mps, older GPUs and CPUs), or when ``enabled`` is False.
    """
    if not enabled:
        return None
    if device.type == "cuda":
        try:  # a T4 (sm_75) reports bf16 "supported" through slow emulation: ask for the native kind
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.3 has no emulation path to exclude
            native = torch.cuda.is_bf16_supported()
        if native:
            return torch.bfloat16
        # Volta / Turing (a Colab T4): fp16 tensor cores; the trainer pairs fp16 with a gradient scaler
        return torch.float16 if torch.cuda.get_device_capability(device) >= (7, 0) else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return None


#: the narrowest ResNet width that runs channels_last on a CPU. oneDNN's AVX2 channels_last backward-weights kernels
#: corrupt the heap for 4-channel convolutions (torch 2.14.1 / oneDNN 3.12: "double free or corruption" in
#: ``mkldnn_convolution_backward_weights`` with one thread, non-deterministic losses and hangs with two; widths
#: >= 8 and NCHW are exact and deterministic: ``benchmarks/RESULTS.md``, "Measurements behind the docstrings").
MIN_CPU_CHANNELS_LAST_WIDTH = 8


def uses_channels_last(device: torch.device, enabled: bool = True, width: int | None = None) -> bool:
    """Whether to keep activations NHWC on ``device``: CUDA, and CPUs with oneDNN (faster convolutions), except
    for networks narrower than :data:`MIN_CPU_CHANNELS_LAST_WIDTH` on a CPU (``width``: the ResNet width)."""
    if not enabled:
        return False
    if device.type == "cuda":
        return True
    cpu_ok = width is None or width >= MIN_CPU_CHANNELS_LAST_WIDTH
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and cpu_ok


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def reuse_freed_memory() -> bool:
    """Make this process's C allocator (glibc) keep freed blocks of up to 32 MiB for reuse, and keep up to 1 GiB of
    freed memory instead of handing it back to the system. Returns True where applied (Linux with glibc), False
    elsewhere (nothing changed). Call it once, before the work (the notebooks' first cell, the CLI).

    Why: PyTorch's CPU tensors come from ``malloc``. By default glibc serves large blocks by ``mmap`` and returns
    freed memory at once, so an attack that allocates the same activations every step has the kernel zero-fill
    them again, page by page. Measured on the `cpu` profile (2-core AMD EPYC, AVX2; ``bench_cpu_memory.py``): PGD-20
    on the patch score of 200 test images, together with :data:`radlib.knn.CPU_BLOCK_ELEMENTS`, 8.6-9.8 s -> 6.8-8.8 s
    (medians 9.7 -> 7.3 s) and 1.3 million page faults -> 3 thousand; the whole `cpu` series' system time 308 s ->
    29 s; a training run unchanged (98.3 vs 98.4 s) (``benchmarks/RESULTS.md``, "CPU memory reuse"). The cost: the
    process's resident memory stays near its peak (+ up to 1 GiB) until it ends.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another C library: leave it alone
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 2 ** 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 30))
