"""Data-parallel training: one run on W processes (``torchrun``), each holding a shard of every batch.

**Layout.** radlib's training batches are grouped (see :mod:`radlib.losses`): N images -> K pseudo-anomaly chunks
(row ``k*N + i``) -> V views, view-major. Rank r holds n = N / W images of every group; the *global* batch is the
one a single process would hold, where group g is [rank 0's n rows, rank 1's n rows, ...]. :func:`gather_rows`
builds it from the shards, and the rank's own rows keep their autograd graph. So every loss radlib computes sees
exactly the single-process batch: each NT-Xent anchor has the negatives of the whole global batch (as CSI's
multi-GPU code, which all-gathers the projections before its similarity matrix), the opposite-pair term its
pairs, the K-way head its labels.

**What a step computes on W ranks** (:class:`radlib.step.TrainStep` with a :class:`Shards`), and why it equals
one process on the concatenated batch:

- the training attacks gather the projections at every PGD step, so each image climbs the single-process attack
  objective (ATNT's chunk cycle is drawn once, on rank 0, and shared);
- BatchNorm statistics are those of the global batch (:class:`SyncBatchNorm2d` on the CPU, where
  ``torch.nn.SyncBatchNorm`` refuses; torch's own on CUDA). ``sync_batchnorm=False`` keeps per-rank statistics
  instead: the step then equals one process that normalises each shard on its own ("ghost" batches of n
  images), and rank 0's running statistics are broadcast before every step so that the eval-mode training
  attacks and a resumed run see the same buffers on every rank;
- each rank differentiates the global loss through its own rows only; summed over ranks that is the gradient of
  the global loss, and DistributedDataParallel averages, so the trainer scales the loss by W.

What differs from one process: the random draws (flips, pseudo-anomalies, augmentation, attack starts) are made
per rank from that rank's generator (:func:`rank_generator`), so a W-rank run is a different sample of the same
recipe, exactly reproducible for a given W (a resumed run ends bitwise where an uninterrupted one does; resuming
with another W is refused). ``tests/test_distributed.py`` checks all of this with 2 gloo processes in float64.

One process needs none of this: :func:`radlib.train.train` uses it only with ``distributed=True``.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

__all__ = ["Shards", "init_from_env", "gather_rows", "interleave_rows", "all_gather_grad", "SyncBatchNorm2d",
           "convert_sync_batchnorm", "rank_generator", "launched_by_torchrun", "data_parallel", "free_port",
           "local_env"]


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` with more than one process (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a whole number (torchrun sets it)") from None


@dataclass(frozen=True)
class Shards:
    """This process's place in a data-parallel run.

    Attributes:
        rank, world_size: this process and the number of processes (``torch.distributed``'s).
        group: the process group of radlib's own collectives (the gathers and the BatchNorm statistics), kept apart
            from the default group that DistributedDataParallel's gradient all-reduce runs on.
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (CUDA).
        sync_batchnorm: BatchNorm statistics over the global batch (True) or per rank (False).
    """

    rank: int
    world_size: int
    group: Any
    backend: str
    sync_batchnorm: bool = True

    @property
    def main(self) -> bool:
        """Rank 0: the one process that prints and writes the run record."""
        return self.rank == 0

    def gather(self, t: Tensor, groups: int) -> Tensor:
        """The global batch of a sharded tensor: see :func:`gather_rows`."""
        return gather_rows(t, groups, self)

    def share(self, t: Tensor) -> Tensor:
        """Rank 0's value of ``t`` on every rank (a broadcast; ``t`` must have the same shape everywhere)."""
        import torch.distributed as dist
        out = t.detach().clone().contiguous()
        dist.broadcast(out, 0, group=self.group)
        return out

    def all_equal(self, text: str) -> bool:
        """Whether every rank passed the same ``text`` (e.g. the SHA-256 of its training images)."""
        import torch.distributed as dist
        got: list[Any] = [None] * self.world_size
        dist.all_gather_object(got, text, group=self.group)
        return all(g == got[0] for g in got)

    def record(self) -> dict[str, Any]:
        """What the run record says about the distribution (:mod:`radlib.record`)."""
        return {"world_size": self.world_size, "backend": self.backend, "sync_batchnorm": self.sync_batchnorm}


def free_port() -> int:
    """A free TCP port on this machine, for a process group started by hand (:func:`local_env`)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_env(rank: int, world_size: int, port: int) -> dict[str, str]:
    """The variables ``torchrun`` would set for process ``rank`` of ``world_size`` on this machine: for a group
    started by ``torch.multiprocessing.spawn`` (the tests, ``benchmarks/bench_ddp.py``), ``os.environ.update`` it
    before :func:`init_from_env`."""
    return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world_size),
            "LOCAL_RANK": str(rank)}


def init_from_env(device: torch.device, sync_batchnorm: bool = True, timeout_s: float = 600.0) -> Shards:
    """Join the process group ``torchrun`` describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) with
    gloo on the CPU or NCCL on CUDA (once per process), and make a group for radlib's own collectives (one per call:
    every rank must call it, in the same order, as every collective); returns the :class:`Shards`.

    Raises ValueError (one line) when the variables are missing, or when ``device`` is CUDA and the rank's GPU
    (``LOCAL_RANK``) is not ``device``.
    """
    import torch.distributed as dist
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing and not dist.is_initialized():
        raise ValueError(f"distributed training needs torchrun (or its variables: {', '.join(missing)} are not set); "
                         f"run: torchrun --nproc_per_node=2 -m radlib train ...")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.index is not None and device.index != local:
            raise ValueError(f"rank with LOCAL_RANK={local} was given {device}; each rank trains on cuda:LOCAL_RANK")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    world = dist.get_world_size()
    group = dist.new_group(list(range(world)), backend=backend)
    return Shards(rank=dist.get_rank(), world_size=world, group=group, backend=backend, sync_batchnorm=sync_batchnorm)


def interleave_rows(parts: list[Tensor] | tuple[Tensor, ...], groups: int) -> Tensor:
    """Merge per-rank shards into the global batch: each part is (groups * n, ...) laid out as ``groups`` blocks
    of n rows; the result is (groups * W * n, ...) where block g holds part 0's n rows of block g, then part 1's, ...

    >>> a, b = torch.tensor([0, 1, 10, 11]), torch.tensor([2, 3, 12, 13])  # 2 groups of 2 rows per rank
    >>> interleave_rows([a, b], groups=2).tolist()
    [0, 1, 2, 3, 10, 11, 12, 13]
    """
    if groups < 1 or any(p.shape[0] % groups or p.shape != parts[0].shape for p in parts):
        raise ValueError(f"every part must have the same shape, with rows divisible by groups={groups}; got "
                         f"{[tuple(p.shape) for p in parts]}")
    n, rest = parts[0].shape[0] // groups, parts[0].shape[1:]
    return torch.stack([p.reshape(groups, n, *rest) for p in parts], dim=1).reshape(-1, *rest)


def gather_rows(t: Tensor, groups: int, shards: Shards) -> Tensor:
    """All-gather a sharded tensor into the global batch (:func:`interleave_rows` of every rank's ``t``).

    ``t``: (groups * n, ...) on this rank, the same shape on every rank. The rows of this rank keep autograd
    (the others are detached copies): the gradient of a loss of the result flows to this rank's rows only. Summed
    over ranks, that is the gradient of the loss (each rank computes the same loss of the same global batch).
    """
    import torch.distributed as dist
    parts = [torch.empty_like(t) for _ in range(shards.world_size)]
    dist.all_gather(parts, t.detach().contiguous(), group=shards.group)
    parts[shards.rank] = t
    return interleave_rows(parts, groups)


class _AllGather(torch.autograd.Function):
    """Every rank's tensor, stacked, on every rank; differentiable: the gradient w.r.t. this rank's input is the sum
    over ranks of the gradients w.r.t. its slot (an all-reduce, then this rank's slot)."""

    @staticmethod
    def forward(ctx: Any, t: Tensor, group: Any, rank: int, world: int) -> Tensor:
        import torch.distributed as dist
        ctx.group, ctx.rank = group, rank
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t.contiguous(), group=group)
        return torch.stack(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        import torch.distributed as dist
        total = grad.clone().contiguous()
        dist.all_reduce(total, group=ctx.group)
        return total[ctx.rank], None, None, None


def all_gather_grad(t: Tensor, shards: Shards) -> Tensor:
    """(W, *t.shape): every rank's ``t`` on every rank, with autograd across ranks (unlike :func:`gather_rows`, whose
    other ranks' rows are constants: use this where every rank's output depends on every rank's input)."""
    return _AllGather.apply(t, shards.group, shards.rank, shards.world_size)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch, on any device and backend.

    ``torch.nn.SyncBatchNorm`` runs on CUDA only; this one gathers every rank's per-channel count, mean and sum of
    squared deviations with the differentiable :func:`all_gather_grad` (one collective forward, one backward) and
    combines them as torch's does, so its output, gradients and running statistics equal BatchNorm2d's on the concatenated batch up to
    float rounding (``tests/test_distributed.py``). In eval mode, or outside a run, it is BatchNorm2d.
    """

    shards: Shards | None = None

    def forward(self, x: Tensor) -> Tensor:
        shards = self.shards
        if not self.training or shards is None or shards.world_size == 1:
            return super().forward(x)
        c, out_dtype = x.shape[1], x.dtype
        x = x.to(torch.promote_types(x.dtype, torch.float32))  # statistics in float32 at least (autocast: bf16 in)
        # one collective per direction: every rank's (count, mean, sum of squared deviations), combined as Chan et
        # al.'s parallel variance (each rank's two-pass statistics: no cancellation), as torch's SyncBatchNorm does
        local_mean = x.mean(dim=(0, 2, 3))
        local_m2 = (x - local_mean.reshape(1, c, 1, 1)).pow(2).sum(dim=(0, 2, 3))
        count = torch.full((1,), x.numel() // c, dtype=x.dtype, device=x.device)
        stats = all_gather_grad(torch.cat([count, local_mean, local_m2]), shards)  # (W, 1 + 2c)
        counts, means, m2s = stats[:, :1], stats[:, 1:c + 1], stats[:, c + 1:]
        n = counts.sum()
        mean = (counts * means).sum(dim=0) / n
        var = (m2s + counts * (means - mean).pow(2)).sum(dim=0) / n
        dev = x - mean.reshape(1, c, 1, 1)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                tracked = self.num_batches_tracked
                assert tracked is not None  # track_running_stats
                tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                unbiased = var.detach() * (n.detach() / (n.detach() - 1))
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        y = dev * torch.rsqrt(var + self.eps).reshape(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.reshape(1, c, 1, 1) + self.bias.reshape(1, c, 1, 1)
        return y.to(out_dtype)


def convert_sync_batchnorm(model: nn.Module, shards: Shards) -> nn.Module:
    """Make every BatchNorm2d of ``model`` compute global-batch statistics (in place; returns the model).

    CUDA: ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` over radlib's group. Otherwise each BatchNorm2d becomes a
    :class:`SyncBatchNorm2d` with the same parameters and buffers (the state dict keeps its keys and values, so a
    checkpoint loads into a plain model). ``shards.sync_batchnorm=False``: the model is returned unchanged.
    """
    if not shards.sync_batchnorm or shards.world_size == 1:
        return model
    if next(model.parameters()).device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group=shards.group)
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = SyncBatchNorm2d
            cast(SyncBatchNorm2d, module).shards = shards
    return model


def rank_generator(seed: int, epoch: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of rank ``rank >= 1``'s random draws in epoch ``epoch`` (rank 0 goes on with the epoch's
    shared generator, after the data order: so one process with ``distributed=True`` draws what a plain run does).
    """
    from .device import make_generator
    if rank < 1:
        raise ValueError(f"rank 0 draws from the epoch's generator; rank_generator is for ranks >= 1, got {rank}")
    return make_generator((seed * 1_000_003 + epoch) * 1_009 + rank, device)


def data_parallel(model: nn.Module, shards: Shards, find_unused_parameters: bool) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel (gradients averaged over ranks, on the default group), without
    buffer syncs at forward time: SyncBatchNorm keeps the buffers equal, and per-rank BatchNorm takes rank 0's before
    every step (:meth:`radlib.train.TrainStep.share_buffers`). ``find_unused_parameters``: some parameters get no
    gradient (the K-way head of a method that does not train it)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel
    dev = next(model.parameters()).device
    # torch >= 2.11 names the switch forward_sync_buffers (and deprecates broadcast_buffers); 2.2 knows the old one
    sync_kw = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(
        DistributedDataParallel.__init__).parameters else "broadcast_buffers"
    kwargs: dict[str, Any] = {sync_kw: False}
    return DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                   find_unused_parameters=find_unused_parameters, **kwargs)
