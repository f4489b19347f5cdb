"""One training step of any method: the two views (:func:`training_views`), the training attacks, the forward pass
and the loss terms (:class:`TrainStep`); :func:`radlib.train.train` runs it in a loop.

Batch layout (see :mod:`radlib.losses`): N images -> K chunks by the policy (row k*N+i) -> V views view-major.
Training attacks run with the model in eval mode (as the official code), the update in train mode.
In a data-parallel run (:mod:`radlib.distributed`) a step holds one rank's shard and computes the losses of the
global batch.

Example:
    >>> import torch
    >>> from radlib.config import TrainConfig
    >>> from radlib.models import build_model
    >>> from radlib.step import TrainStep
    >>> cfg = TrainConfig(method="cobra", dataset="digits", image_size=8, width=2, attack_steps=1)
    >>> step = TrainStep(cfg, build_model(cfg.model_config(), device="cpu"), cfg.policy(), None)
    >>> terms = step(torch.rand(4, 3, 8, 8), torch.Generator().manual_seed(0))
    >>> sorted(terms), step.attack_names
    (['cls', 'loss', 'nt_xent', 'opposite'], ('atpt', 'atnt', 'rtp'))
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch

from . import attacks, losses
from .attacks.training import AttackDraws, training_attack_draws, training_attacks
from .augment import SimCLRAugment, horizontal_flip
from .config import TrainConfig
from .device import autocast_dtype, uses_channels_last
from .distributed import Shards, convert_sync_batchnorm, data_parallel
from .methods import Method, get_method
from .models import ResNet18AD
from .pseudo_anomaly import Policy

__all__ = ["TrainStep", "training_views"]


class TrainStep:
    """One training step of any method; built once per run (holds the policy, augmentation, loss settings)."""

    def __init__(self, cfg: TrainConfig, model: ResNet18AD, policy: Policy | None,
                 center: torch.Tensor | None, fused_attacks: bool = True, shards: Shards | None = None,
                 forward: torch.nn.Module | None = None) -> None:
        """``shards``: a data-parallel run (:mod:`radlib.distributed`): each call gets this rank's shard and the
        losses are those of the global batch; the step makes ``model``'s BatchNorm global (``shards.sync_batchnorm``)
        and runs the training forward pass through DistributedDataParallel. ``forward``: another module for the
        training forward pass (a test's reference); None = ``model`` (or its DDP wrapper). The attacks always run
        on ``model``."""
        self.cfg, self.model, self.policy, self.center = cfg, model, policy, center
        # True: the training attacks as one batched PGD (attacks.training_attacks; the same draws and results up
        # to float rounding); False: one attack per call (the form of the code before; benchmarks compare both)
        self.fused_attacks = fused_attacks
        self.method: Method = get_method(cfg.method)
        self.augment = SimCLRAugment(crop=cfg.crop, strength=cfg.augment_strength)
        self.K = policy.K if policy is not None else 1
        device = next(model.parameters()).device
        self.amp = autocast_dtype(device, cfg.amp)
        self.channels_last = uses_channels_last(device, cfg.channels_last, cfg.width)
        self.device = device
        self.head = self.method.head and cfg.cls_weight > 0 and self.K > 1
        self.attack_names = tuple(a for a in self.method.attacks if a != "rtp" or self.head)  # the registry's order
        if shards is not None and not fused_attacks:
            raise ValueError("a data-parallel step runs the training attacks fused (they gather across ranks)")
        self.shards = shards
        if shards is not None and forward is None:
            convert_sync_batchnorm(model, shards)
            forward = data_parallel(model, shards, find_unused_parameters=not self.head)  # no head loss: unused
        self.forward = model if forward is None else forward

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def _attack_kw(self, gen: torch.Generator | None) -> dict[str, Any]:
        c = self.cfg
        return dict(eps=c.eps, steps=c.attack_steps, alpha=c.attack_alpha, norm=c.attack_norm, generator=gen)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """The loss terms of one step on the float images x (N, C, H, W) in [0, 1] (this rank's shard in a
        data-parallel run), every draw from ``gen``; ``terms["loss"]`` is the total (of the global batch)."""
        v1, v2, labels = training_views(x, self.policy, self.augment, gen)
        draws = None
        if self.cfg.adversarial and self.fused_attacks:
            draws = training_attack_draws(self.attack_names, v1, self.K, self.cfg.eps, self.cfg.attack_norm, gen)
        return self.from_views(v1, v2, labels, gen, draws)

    def from_views(self, v1: torch.Tensor, v2: torch.Tensor, labels: torch.Tensor, gen: torch.Generator | None,
                   draws: AttackDraws | None = None) -> dict[str, torch.Tensor]:
        """The step after the views (:func:`training_views`): the training attacks (from ``draws`` when given,
        else drawn from ``gen``), the forward pass and the loss terms."""
        cfg, model, method, names = self.cfg, self.model, self.method, self.attack_names
        if self.channels_last:
            v1, v2 = v1.contiguous(memory_format=torch.channels_last), v2.contiguous(memory_format=torch.channels_last)
        views, head_inputs = [v1, v2], [v1, v2]
        if cfg.adversarial:
            model.eval()
            with self.autocast():
                kw = self._attack_kw(gen)
                if self.fused_attacks:
                    adv = training_attacks(model, v1, v2, labels, self.K, names, temperature=cfg.temperature,
                                           draws=draws, shards=self.shards, **kw)
                else:
                    adv = {}
                    for name in names:  # each draws from ``gen`` in turn
                        if name == "atpt":
                            adv[name] = attacks.atpt(model, v1, v2, temperature=cfg.temperature, **kw)
                        elif name == "atnt":
                            adv[name] = attacks.atnt(model, v2, self.K, temperature=cfg.temperature, **kw)
                        else:
                            adv[name] = attacks.rtp(model, v2, labels, **kw)
            views += [adv[n] for n in names if n != "rtp"]
            head_inputs += [adv["rtp"]] if "rtp" in adv else []
            model.train()
        n_con = len(views)
        batch = torch.cat(views + head_inputs[2:])
        with self.autocast():
            out = self.forward(batch)
        m = v1.shape[0]
        z = out.projection[: n_con * m].float()
        logits = torch.cat([out.logits[: 2 * m], out.logits[n_con * m:]]).float() if self.head else None
        if self.shards is not None:  # the global batch, as one process holds it (radlib.distributed)
            z, labels = self.shards.gather(z, n_con * self.K), self.shards.gather(labels, self.K)
            logits = None if logits is None else self.shards.gather(logits, len(head_inputs) * self.K)
        terms: dict[str, torch.Tensor] = {method.loss_name: method.loss(z, labels, n_con, cfg, self.center)}
        if method.opposite and cfg.opposite_weight > 0 and self.K > 1:
            terms["opposite"] = cfg.opposite_weight * losses.opposite_pair_loss(z, n_views=n_con, K=self.K)
        if logits is not None:
            terms["cls"] = cfg.cls_weight * losses.transform_ce(logits, labels.repeat(len(head_inputs)))
        terms["loss"] = sum(terms.values())  # type: ignore[assignment]
        return terms

    def share_buffers(self) -> None:
        """Per-rank BatchNorm (``sync_batchnorm=False``): every rank takes rank 0's running statistics, so the
        eval-mode attacks of the next step, and a run resumed from rank 0's record, see the same buffers."""
        if self.shards is not None and not self.shards.sync_batchnorm:
            import torch.distributed as dist
            for b in self.model.buffers():
                dist.broadcast(b, 0, group=self.shards.group)


def training_views(x: torch.Tensor, policy: Policy | None, augment: Callable[..., torch.Tensor],
                   generator: torch.Generator | None, flip_p: float = 0.5
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two training views of a batch, in the official CSI/COBRA order.

    1. each image is flipped horizontally at random, twice independently (``flip_p``): two copies;
    2. each copy is expanded into the K pseudo-anomaly chunks **separately** (two independent draws, as the
       official code makes the pseudo-anomalies of ``images1`` and ``images2`` apart);
    3. each expanded copy gets the SimCLR distortion ``augment`` (which must not flip: see
       :class:`~radlib.augment.SimCLRAugment`).

    Flipping first matters for rotations: hflip(rot90 x) == rot270(hflip x), so a flip after the rotation
    gives the 90 and 270 degree chunks the same inputs and confuses the K-way head.

    Args:
        x: float (N, C, H, W) in [0, 1]. policy: the pseudo-anomaly policy, or None (one chunk, label 0).
        augment: ``augment(x, generator) -> x'``. generator: the source of every draw.
    Returns:
        v1, v2 float (K*N, C, H, W) chunk-major (row k*N + i = transform k of image i) in [0, 1], and the
        int64 labels (K*N,) with value k on chunk k.
    """
    f1, f2 = horizontal_flip(x, generator, p=flip_p), horizontal_flip(x, generator, p=flip_p)
    if policy is None:
        labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        xk1, xk2 = f1, f2
    else:
        xk1, labels = policy.expand(f1, generator=generator)
        xk2, _ = policy.expand(f2, generator=generator)
    return augment(xk1, generator), augment(xk2, generator), labels
