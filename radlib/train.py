"""The trainer: one code path for every method of :mod:`radlib.methods`, with atomic checkpoints and exact resume.

The method (what a step computes) is a record of :data:`radlib.methods.METHODS`; :class:`radlib.step.TrainStep`
computes one step and this module runs it: data order, optimiser, schedule, checkpoints, resume, and data-parallel
runs under torchrun (:mod:`radlib.distributed`). NT-Xent uses the official scale (per anchor, the *sum* over its
V-1 positives: ``reduction="anchors"``).

Example:
    >>> import torch
    >>> from radlib.train import TrainConfig, train
    >>> cfg = TrainConfig(method="csi", dataset="digits", image_size=12, width=4, epochs=1, batch_size=8)
    >>> res = train(cfg, torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8), progress=False, device="cpu")
    >>> {"nt_xent", "cls", "loss"} <= set(res.history[0]), res.model.training
    (True, False)
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import losses
from .distributed import init_from_env, rank_generator
from .checkpoint import CheckpointError
from .record import Provenance, RunRecord, data_identity, load_run, save_run, tensor_digest
from .data import ADDataset, Split, to_float
from .features import model_features
# PROFILE_FIELDS and METHODS (homes: radlib.config, radlib.methods), TrainStep and training_views (home: radlib.step)
# stay importable from here for older code and the notebooks
from .config import PROFILE_FIELDS, TrainConfig  # noqa: F401
from .methods import METHODS, Method, get_method  # noqa: F401
from .step import TrainStep, training_views  # noqa: F401
from .device import make_generator, select_device, uses_channels_last
from .models import ResNet18AD, build_model
from .optim import build_optimizer, warmup_cosine
from .pseudo_anomaly import Policy

__all__ = ["TrainResult", "TrainingDiverged", "train", "load_trained", "check_run_folder", "check_resume",
           "RunMismatch"]

class RunMismatch(ValueError):
    """An output folder holds a run of another config or of other training images (resume refused)."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the term, epoch and step."""


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model (eval mode), its config, per-epoch history, timing."""

    model: ResNet18AD
    config: TrainConfig
    history: list[dict[str, float]]
    seconds: float
    checkpoint: Path | None
    center: torch.Tensor | None = None  # msc: the normal-train feature centre used by the loss
    policy: Policy | None = None
    record: RunRecord | None = None  # the run record of ``checkpoint`` (:mod:`radlib.record`), None without one


def _train_images(data: ADDataset | Split | torch.Tensor) -> torch.Tensor:
    if isinstance(data, ADDataset):
        return data.train.images
    if isinstance(data, Split):
        return data.images
    if isinstance(data, torch.Tensor):
        return data
    raise TypeError(f"data must be an ADDataset, a Split or an image tensor, got {type(data).__name__}")


def _msc_center(model: ResNet18AD, images: torch.Tensor) -> torch.Tensor:
    return losses.feature_center(model_features(model, images, "projection", batch_size=256))


def _epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    # one stream per (seed, epoch): resuming at epoch e draws exactly what an uninterrupted run would
    return make_generator(seed * 1_000_003 + epoch, device)


def _check_parameters(model: ResNet18AD, epoch: int) -> None:
    """Refuse to save or return a model with NaN/inf weights (a blow-up on the last step leaves finite losses
    behind: the loss check alone would miss it). One host sync per call."""
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise TrainingDiverged(f"parameters {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} became NaN/inf by "
                               f"epoch {epoch}: lower the learning rate or the attack step size, or disable amp")


def train(config: TrainConfig, data: ADDataset | Split | torch.Tensor, *, out: str | Path | None = None,
          device: str | torch.device | None = None, resume: bool = True, progress: bool = True,
          on_epoch_end: Callable[[int, dict[str, float], ResNet18AD], None] | None = None,
          provenance: Provenance | None = None, distributed: bool = False,
          sync_batchnorm: bool = True) -> TrainResult:
    """Train a detector from scratch on the normal training images of ``data``.

    Args:
        config: a :class:`TrainConfig` (``TrainConfig.from_profile`` gives the profile's sizes).
        data: an :class:`~radlib.data.ADDataset` (its ``train`` split is used), a Split, or uint8/float images
            (N, C, H, W). Labels are never read (one-class training, even on a contaminated split).
        out: a new or empty folder, or a run folder of this config, for the run record ``last.pt``
            (:func:`radlib.record.save_run`, atomic, every ``checkpoint_every`` epochs) and its derived views
            ``history.json`` and ``run.json``; None = no checkpoint. A folder holding other files is refused (a run
            never overwrites what is not its own).
        device: None = :func:`~radlib.device.select_device`.
        resume: if ``out/last.pt`` exists with the same config and the same training images (SHA-256), continue
            from it (bitwise-exact on CPU: every epoch draws from its own generator, and model + optimiser state
            are restored).
        on_epoch_end: callback ``(epoch, epoch_means, model)``, e.g. for live loss curves in a notebook (rank 0
            only in a distributed run).
        provenance: the profile, data identity and purification recorded in the checkpoint
            (:class:`radlib.record.Provenance`); None = the identity of ``data`` when it is an ADDataset.
        distributed: train one run on all the processes ``torchrun`` started (:mod:`radlib.distributed`), with
            DistributedDataParallel: every rank passes the same ``data`` and config; each step's batch of
            ``config.batch_size`` images is split evenly over the ranks (it must divide), the losses are those of
            the whole batch, rank 0 alone writes ``out``, and the record says ``distributed``. Each rank trains
            on ``cuda:LOCAL_RANK`` (NCCL) or the CPU (gloo). ``radlib train`` under torchrun sets it.
        sync_batchnorm: in a distributed run, BatchNorm statistics over the whole batch (as one process); False
            = per rank (see :mod:`radlib.distributed`).

    Raises:
        TrainingDiverged: a loss term became NaN/inf (checked every ``log_every`` steps and at epoch end), or a
            parameter did (checked before every checkpoint write and at the end).
        CheckpointError: ``out/last.pt`` exists but is damaged, tampered with or not a radlib run record.
        ValueError: ``out`` is a file or a folder of other files, or holds a run of another config or other images.
    """
    dev = select_device(device)
    shards = None
    if distributed:
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        shards = init_from_env(dev, sync_batchnorm)
    main = shards is None or shards.main
    if out is not None:
        check_run_folder(Path(out))
    images = _train_images(data)
    if images.ndim != 4 or images.shape[1] != config.channels:
        raise ValueError(f"expected train images (N, {config.channels}, H, W), got {tuple(images.shape)}")
    if images.shape[-1] != config.image_size:
        raise ValueError(f"config.image_size={config.image_size} but the images are {images.shape[-1]} px")
    images = images.to(dev)
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 training images, got {n}")
    policy = config.policy()
    with torch.random.fork_rng(devices=[]):  # seeded weight init without touching the caller's global RNG
        torch.manual_seed(config.seed)
        model = build_model(config.model_config(), device=dev,
                            channels_last=uses_channels_last(dev, config.channels_last, config.width))
    batch = min(config.batch_size, n)
    world, rank = (1, 0) if shards is None else (shards.world_size, shards.rank)
    if batch % world:
        raise ValueError(f"a step's {batch} images do not split evenly over {world} processes; choose a batch size "
                         f"divisible by {world} (--nproc_per_node)")
    local = batch // world  # this rank's rows of every step
    steps = config.steps_per_epoch or max(1, n // batch)
    total = steps * config.epochs
    opt = build_optimizer(model, config.optimizer, config.lr, config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, total, steps * config.warmup_epochs, config.warmup_start))
    history: list[dict[str, float]] = []
    start_epoch, elapsed = 0, 0.0
    ckpt_path = Path(out) / "last.pt" if out is not None else None
    center = _msc_center(model, images) if get_method(config.method).center else None
    trained_sha256 = tensor_digest(images)
    if provenance is None:
        provenance = Provenance(data=data_identity(data)) if isinstance(data, ADDataset) else Provenance()
    if shards is not None and not shards.all_equal(trained_sha256):
        raise RunMismatch("the ranks hold different training images; every rank must load the same data")
    record = None
    if ckpt_path is not None and resume and ckpt_path.exists():
        record, state = load_run(ckpt_path, map_location=dev)
        check_resume(ckpt_path, record, config, trained_sha256)
        here = None if shards is None else shards.record()
        if record.distributed != here:
            raise RunMismatch(f"{ckpt_path} was trained {_how(record.distributed)}, this run is {_how(here)}: a "
                              f"resumed run draws what the first one did only on as many processes; train into "
                              f"another folder or resume it {_how(record.distributed)}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, history, elapsed = record.epoch, record.history, record.seconds
        center = state["center"].to(dev) if state.get("center") is not None else center
    step_fn = TrainStep(config, model, policy, center, shards=shards)  # with shards: global BatchNorm, DDP
    # fp16 (GPUs without native bf16) needs loss scaling against gradient underflow; a no-op otherwise
    scaler = torch.amp.GradScaler(dev.type, enabled=step_fn.amp is torch.float16)
    bar = _progress(total, start_epoch * steps, config.method, progress and main)
    t0 = time.perf_counter()
    model.train()
    for epoch in range(start_epoch, config.epochs):
        gen = _epoch_generator(config.seed, epoch, dev)
        order = torch.cat([torch.randperm(n, generator=gen, device=dev) for _ in range(math.ceil(steps * batch / n))])
        draw = gen if rank == 0 else rank_generator(config.seed, epoch, rank, dev)  # the rank's own draws
        sums: dict[str, torch.Tensor] = {}
        for s in range(steps):
            x = to_float(images[order[s * batch + rank * local:s * batch + (rank + 1) * local]])
            step_fn.share_buffers()
            terms = step_fn(x, draw)
            opt.zero_grad(set_to_none=True)
            # each rank differentiates the global loss through its own rows; DDP averages: world * mean = sum
            scaler.scale(terms["loss"] * world if world > 1 else terms["loss"]).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach()
            if (s + 1) % config.log_every == 0 or s + 1 == steps:
                _check_finite(sums, epoch, s)
                bar.set_postfix(loss=float(sums["loss"]) / (s + 1), refresh=False)
            bar.update(1)
        means = {k: float(v) / steps for k, v in sums.items()}
        means.update(epoch=epoch + 1, lr=float(sched.get_last_lr()[0]), seconds=elapsed + time.perf_counter() - t0)
        history.append(means)
        last = epoch + 1 == config.epochs
        if ckpt_path is not None and main and ((epoch + 1) % config.checkpoint_every == 0 or last):
            _check_parameters(model, epoch + 1)
            record = save_run(ckpt_path, config=config, model=model, optimizer=opt.state_dict(),
                              scheduler=sched.state_dict(), epoch=epoch + 1, history=history,
                              seconds=means["seconds"], center=center, trained_sha256=trained_sha256,
                              profile=provenance.profile, data=provenance.data,
                              purification=provenance.purification,
                              distributed=None if shards is None else shards.record())
        if on_epoch_end is not None and main:
            on_epoch_end(epoch + 1, means, model)
    bar.close()
    _check_parameters(model, config.epochs)
    model.eval()
    seconds = elapsed + time.perf_counter() - t0
    return TrainResult(model, config, history, seconds, ckpt_path, center, policy, record)


def check_run_folder(out: Path) -> None:
    """Refuse an output folder that is a file, or that holds files and no run record (``last.pt``).

    Raises ValueError naming the folder and the fix; nothing is created."""
    if str(out) == "":
        raise ValueError("the output folder is empty text; give a folder name")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder; give a folder for the run (last.pt, history.json)")
    if out.is_dir() and not (out / "last.pt").exists():  # a run writes last.pt first: anything else is not ours
        foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise ValueError(f"{out} holds files that are not a radlib run ({shown}) and no last.pt; train into a "
                             f"new or empty folder (a run never overwrites what is not its own)")


def check_resume(path: Path, record: RunRecord, config: TrainConfig, trained_sha256: str) -> None:
    """Refuse to resume the run at ``path`` with another config or on other training images; the message names
    every differing config field."""
    old, new = asdict(record.config), asdict(config)
    diff = [f"{k} {old.get(k)!r} -> {new[k]!r}" for k in new if old.get(k) != new[k]]
    if diff:
        raise RunMismatch(f"{path} holds a run with another config ({', '.join(diff)}); train into another folder "
                          f"or delete this one")
    if record.trained_sha256 != trained_sha256:
        raise RunMismatch(f"{path} was trained on other images (SHA-256 {record.trained_sha256[:12]} -> "
                         f"{trained_sha256[:12]}): the training data changed since; train into another folder or "
                         f"delete this one")


def _how(distributed: dict[str, Any] | None) -> str:
    if distributed is None:
        return "in one process"
    return f"on {distributed['world_size']} processes (sync_batchnorm={distributed['sync_batchnorm']})"


def _check_finite(sums: dict[str, torch.Tensor], epoch: int, step: int) -> None:
    bad = [k for k, v in sums.items() if not bool(torch.isfinite(v))]  # one host sync per log interval
    if bad:
        raise TrainingDiverged(f"loss term(s) {', '.join(bad)} became NaN/inf at epoch {epoch + 1}, step "
                               f"<= {step + 1}: lower the learning rate or the attack step size, or disable amp")


def _progress(total: int, initial: int, desc: str, enabled: bool):  # tqdm when wanted, a no-op otherwise
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, leave=False)


def load_trained(path: str | Path, device: str | torch.device | None = None) -> TrainResult:
    """Rebuild a :class:`TrainResult` (model in eval mode, ``record`` set) from a run record written by
    :func:`train`; :func:`radlib.record.load_run` verifies it first (digests, finite weights)."""
    dev = select_device(device)
    record, state = load_run(path, map_location=dev)
    cfg = record.config
    try:
        # the memory format training used: the reloaded model computes bitwise what the trained one did
        model = build_model(record.model_config, device=dev,
                            channels_last=uses_channels_last(dev, cfg.channels_last, cfg.width))
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise CheckpointError(f"{path} does not match this radlib version's model or config "
                              f"({type(e).__name__}: {' '.join(lines)[:300]})") from None
    model.eval()
    center = state.get("center")
    return TrainResult(model, cfg, record.history, record.seconds, Path(path),
                       None if center is None else center.to(dev), cfg.policy(), record)
