"""The CSI/COBRA ensemble score (feature similarity to the normal-train axis + the K-way head's confidence,
summed over the K pseudo-anomaly chunks) and the official test-time augmentation.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Literal, Protocol, runtime_checkable

import torch
from torch import nn
import torch.nn.functional as F

from ..augment import SimCLRAugment, horizontal_flip
from ..images import float_batches
from ..device import make_generator
from ..features import eval_mode, model_device
from ..knn import check_chunk_size, chunked_argmax_dot, gather_dot, topk_dot
from .base import AnomalyScore, check_fit_images

__all__ = ["EnsembleScore", "Augment", "PolicyLike", "official_tta"]

Augment = Callable[..., torch.Tensor]
"""An augmentation ``augment(x, generator=g) -> x'`` on float (N, C, H, W) in [0, 1], same shape, that draws
all its randomness from ``g`` (a ``torch.Generator`` on ``x``'s device)."""


def official_tta(image_size: int) -> tuple[Augment, Augment]:
    """The official evaluation's test-time augmentation, as ``(pre_augment, augment)`` for :class:`EnsembleScore`:
    a random horizontal flip before the pseudo-anomalies, then colour jitter (0.4, 0.4, 0.4, 0.1) p=0.8 and
    greyscale p=0.2 after them, plus a random resized crop fixed at scale 0.54 at low resolution (<= 64 px),
    as CSI's ``ood_pre.py`` evaluates (``resize_factor 0.54, resize_fix``). Average ``samples=10`` of them."""
    def flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return horizontal_flip(x, generator, p=0.5)
    return flip, SimCLRAugment(crop=int(image_size) <= 64, crop_scale=(0.54, 0.54))


@runtime_checkable
class PolicyLike(Protocol):
    """What the ensemble score needs from :class:`radlib.pseudo_anomaly.Policy`."""

    @property
    def K(self) -> int: ...

    def expand(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ...


# --------------------------------------------------------------------------------------------- ensemble
class EnsembleScore(AnomalyScore):
    """The CSI / COBRA ensemble score, negated so that higher = more anomalous.

    For each pseudo-anomaly chunk k (``policy.K`` of them) and each of ``S`` fixed augmentation samples s,
    the image is transformed, ``T_k^s x``, and the model gives the unnormalised projection p and the
    K-way logits l. Averages over the S samples: ``p_k(x) = mean_s p(T_k^s x)``,
    ``l_k(x) = mean_s logit_k(T_k^s x)``. With the M training images x_m::

        axis_k[m] = p_k(x_m) / ||p_k(x_m)||
        w_sim,k   = 1 / mean_m ||p_k(x_m)||
        w_cls,k   = 1 / mean_m l_k(x_m)
        score(x)  = -(1/K) sum_k [ w_sim,k * max_m <p_k(x), axis_k[m]> + w_cls,k * l_k(x) ]

    Faithful to the official code (CSI ``evals/ood_pre.py``, COBRA ``evaluation/eval.py``):

    * the similarity term is the dot product of the *unnormalised* test projection with the normalised
      training projections, i.e. ``||p_k(x)|| * max_m cos(p_k(x), p_k(x_m))`` (CSI's feature-norm factor);
    * ``w_sim,k`` is the inverse *mean training feature norm* (not a mean max-cosine), ``w_cls,k`` the inverse
      mean training logit of the correct transform;
    * the S samples are averaged at the feature level (before the max), not at the score level;
    * sample s uses seed ``seed + s`` (official: ``set_random_seed(s)``), for training and test images alike.

    Changed from the official code, on purpose: the randomness. On **every** call (fit, clean scoring,
    each attack step), sample s draws the ``pre_augment`` (official: random horizontal flip), the policy's
    random pseudo-anomalies (e.g. CutPaste for K=2) and the ``augment`` (official: random resized crop
    at scale 0.54) from a fresh ``torch.Generator`` seeded with ``seed + s`` on the input's device. The
    score is therefore a deterministic function of the batch, and an attack sees exactly the transforms
    of the clean evaluation of that batch (no global RNG is touched). The draws depend on the batch
    composition (image i's draw depends on its position and the batch size), so clean and attacked
    scores must be computed with the same batch partition, which :func:`radlib.evaluate.evaluate` does.

    Use :meth:`fit` to build one. ``self(x)`` takes float (N, C, H, W) in [0, 1] and returns float32 (N,).
    """

    name = "ensemble"
    _tensor_attrs = ("axis", "weight_sim", "weight_cls", "offset")

    def __init__(self, model: nn.Module, policy: PolicyLike, axis: torch.Tensor, weight_sim: torch.Tensor,
                 weight_cls: torch.Tensor, *, offset: torch.Tensor | None = None, samples: int = 1,
                 augment: Augment | None = None, pre_augment: Augment | None = None, seed: int = 0,
                 chunk_size: int = 4096, weighting: str = "standardized") -> None:
        super().__init__(model)
        K = _check_policy(policy)
        if axis.dim() != 3 or axis.shape[0] != K:
            raise ValueError(f"axis must be (K={K}, M, d), got {tuple(axis.shape)}")
        if weight_sim.shape != (K,) or weight_cls.shape != (K,):
            raise ValueError(f"weight_sim / weight_cls must be ({K},), got {tuple(weight_sim.shape)} / "
                             f"{tuple(weight_cls.shape)}")
        # scores place the scar from the generator alone (no branch on the attacked input), see Policy.for_scoring
        for_scoring = getattr(policy, "for_scoring", None)
        self.policy = for_scoring() if callable(for_scoring) else policy
        self.axis = axis
        self.weight_sim = weight_sim
        self.weight_cls = weight_cls
        self.offset = torch.zeros_like(weight_sim) if offset is None else offset
        self.weighting = weighting
        self.samples = _check_samples(samples)
        self.augment = augment
        self.pre_augment = pre_augment
        self.seed = int(seed)
        self.chunk_size = check_chunk_size(chunk_size)

    @property
    def K(self) -> int:
        return int(self.policy.K)

    @classmethod
    def fit(cls, model: nn.Module, train_images: torch.Tensor, policy: PolicyLike, *, batch_size: int = 256,
            samples: int = 1, augment: Augment | None = None, pre_augment: Augment | None = None, seed: int = 0,
            chunk_size: int = 4096, device: torch.device | str | None = None,
            weighting: Literal["standardized", "official"] = "standardized",
            use_head: bool = True) -> "EnsembleScore":
        """Compute the training statistics (axis, weights) of the ensemble score.

        ``weighting`` (how the similarity and classification terms of chunk k are put on one scale):

        * ``"official"``: ``w_sim,k = 1 / mean ||p_k||``, ``w_cls,k = 1 / mean logit_k`` (CSI / COBRA code).
          Correct only when the mean training logit is clearly positive: after a short training run it is
          often ~0 or negative, and the classification term then flips sign or explodes (measured:
          ``benchmarks/RESULTS.md``, "Measurements behind the docstrings").
        * ``"standardized"`` (default, radlib's correction): each term is standardised by its mean and std
          over the normal training images -- the similarity term leave-one-out (each training image's nearest
          *other* training image), so that no image is compared with itself -- i.e.
          ``w_sim,k = 1/std``, ``w_cls,k = 1/std`` and ``offset_k = -(mean_sim/std_sim + mean_cls/std_cls)``.
          Same ingredients and signs as the official score, a scale that stays valid for any training length.

        ``use_head=False`` drops the classification term (``w_cls = 0``): for models whose K-way head was never
        trained (``adv_contrastive``, ``supcon``, ``cobra`` with ``cls_weight=0``), whose logits are noise.

        Args:
            model: a :class:`radlib.models.ResNet18AD` (anything returning ``.projection`` and ``.logits``
                with ``logits.shape[1] >= policy.K``); run in eval mode, its modes restored afterwards.
            train_images: uint8 or float (M, C, H, W) normal training images (any device).
            policy: a :class:`radlib.pseudo_anomaly.Policy` (``.K``, ``.expand(x, generator=)``).
            batch_size: training images per forward pass (the pass holds ``K * batch_size`` images).
            samples: S, fixed augmentation samples averaged (official eval: 10).
            augment: applied to the K-times expanded batch, ``augment(x, generator=g)`` (official: random
                resized crop at scale 0.54). ``pre_augment``: applied before the expansion (official:
                random horizontal flip). Both may be None.
            seed: sample s uses ``torch.Generator`` seeded ``seed + s`` on every call.
            chunk_size: training-bank rows compared at a time when scoring.
            device: default the model's device.
        Returns:
            an :class:`EnsembleScore` on ``device`` holding axis (K, M, d) and weights (K,).
        """
        train_images, shape = check_fit_images(train_images)
        K = _check_policy(policy)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        device = torch.device(device) if device is not None else model_device(model)
        if weighting not in ("standardized", "official"):
            raise ValueError(f"weighting must be 'standardized' or 'official', got {weighting!r}")
        if weighting == "standardized" and train_images.shape[0] < 3:
            raise ValueError("weighting='standardized' needs at least 3 training images")
        self = cls(model, policy, torch.zeros(K, 1, 1), torch.ones(K), torch.ones(K), samples=samples,
                   augment=augment, pre_augment=pre_augment, seed=seed, chunk_size=chunk_size, weighting=weighting)
        self.input_shape = shape
        proj, logit = [], []
        with eval_mode(model), torch.no_grad():
            for _, xb in float_batches(train_images, batch_size, device):
                p, lg = self.chunk_features(xb)
                proj.append(p)
                logit.append(lg)
        p = torch.cat(proj, dim=1)  # (K, M, d)
        lg = torch.cat(logit, dim=1)  # (K, M)
        norms = p.norm(dim=2)  # (K, M)
        self.axis = F.normalize(p, dim=2)
        if weighting == "standardized":
            sim_train = _leave_one_out_sim(p, self.axis, chunk_size)  # (K, M)
            s_mu, s_sd = sim_train.mean(dim=1), sim_train.std(dim=1).clamp_min(1e-8)
            l_mu, l_sd = lg.mean(dim=1), lg.std(dim=1).clamp_min(1e-8)
            self.weight_sim, self.weight_cls = 1.0 / s_sd, (1.0 / l_sd) * float(use_head)
            self.offset = -(s_mu / s_sd + (l_mu / l_sd) * float(use_head))
            return self
        self.weight_sim = 1.0 / norms.mean(dim=1)
        mean_logit = lg.mean(dim=1)
        if use_head and (bool((mean_logit.abs() < 1e-6).any()) or bool((mean_logit <= 0).any())):
            warnings.warn(f"EnsembleScore.fit: the mean training logit of the correct transform is "
                          f"{mean_logit.tolist()}; w_cls = 1/mean is huge or negative (as in the official "
                          f"code). Is the model trained?", RuntimeWarning, stacklevel=2)
        self.weight_cls = 1.0 / mean_logit if use_head else torch.zeros_like(mean_logit)
        return self

    def chunk_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample-averaged per-chunk projection (K, N, d) and correct-transform logit (K, N) of float x (N, C, H, W).

        Differentiable w.r.t. ``x``; the model must already be in the wanted mode (``__call__`` sets eval).
        """
        K, n = self.K, x.shape[0]
        p_sum = None
        l_sum = None
        for s in range(self.samples):
            g = make_generator(self.seed + s, x.device)
            xs = self.pre_augment(x, generator=g) if self.pre_augment is not None else x
            xe, _ = self.policy.expand(xs, generator=g)
            if xe.shape[0] != K * n:
                raise ValueError(f"policy.expand returned {xe.shape[0]} images for {n} inputs; expected K*N = {K * n}")
            if self.augment is not None:
                xe = self.augment(xe, generator=g)
            out = self.model(xe)
            if out.logits.shape[1] < K:
                raise ValueError(f"the model's transform head has {out.logits.shape[1]} outputs, the policy K={K}")
            p = out.projection.float().view(K, n, -1)
            lg = torch.diagonal(out.logits.float().view(K, n, -1)[:, :, :K], dim1=0, dim2=2).T  # (K, N)
            p_sum = p if p_sum is None else p_sum + p
            l_sum = lg if l_sum is None else l_sum + lg
        assert p_sum is not None and l_sum is not None
        return p_sum / self.samples, l_sum / self.samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, lg = self.chunk_features(x)  # (K, N, d), (K, N)
        idx = chunked_argmax_dot(p.detach(), self.axis, self.chunk_size)  # (K, N)
        sim = gather_dot(p, self.axis, idx)  # (K, N) = ||p|| * max cos
        per_chunk = self.weight_sim[:, None] * sim + self.weight_cls[:, None] * lg + self.offset[:, None]
        return -per_chunk.mean(dim=0)


def _leave_one_out_sim(p: torch.Tensor, axis: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """(K, M): ``<p_k(x_m), axis_k[m']>`` for each training image's most similar *other* training image m'."""
    K, M = axis.shape[:2]
    own = torch.arange(M, device=axis.device)
    out = []
    for k in range(K):  # K is 2 or 4
        top = topk_dot(axis[k], axis[k], 2, chunk_size)  # (M, 2)
        other = torch.where(top[:, 0] == own, top[:, 1], top[:, 0])
        out.append((p[k] * axis[k][other]).sum(-1))
    return torch.stack(out)


def _check_policy(policy: Any) -> int:
    K = getattr(policy, "K", None)
    if not isinstance(K, int) or K < 1 or not callable(getattr(policy, "expand", None)):
        raise TypeError(f"policy must have an int .K >= 1 and an .expand(x, generator=) method, got {policy!r}")
    return K


def _check_samples(samples: int) -> int:
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    return samples
