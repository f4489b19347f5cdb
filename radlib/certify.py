"""Certified robustness: a model-free pixel-space kNN detector, and the AUROC a score provably keeps under
*any* attack of a given size.

Why this belongs in a robust-evaluation library: a robust AUROC measured with an attack is an *upper* bound
on the true robust AUROC (a stronger attack might do better). When each score can be bounded over the whole
threat region, there is also a *lower* bound: raise every normal image's score to its worst case, lower every
anomaly's to its best case, and compute the AUROC. It holds against every attack, adaptive or not.

Two sources of bounds:

* :func:`lipschitz_bounds`: any score that is ``L``-Lipschitz in the L2 norm of the input moves by at most
  ``L * r``, with ``r = eps * sqrt(D)`` for an L-inf ball of size eps on D values (``r = eps`` for L2).
* :meth:`PixelKNNScore.bounds`: exact per-neighbour bounds for the pixel kNN distance under an L-inf ball
  clipped to [0, 1] (much tighter than the Lipschitz ones).

Two uses:

* **A baseline with a guarantee.** :class:`PixelKNNScore` (mean Euclidean distance to the ``k`` nearest
  normal training images, in pixels) needs no training and, on homogeneous industrial images, is a strong
  detector on the real ``casting`` images and weak on textures (``surfaces``), where a detector has to learn
  (``benchmarks/RESULTS.md``, "Measurements behind the docstrings").
  A trained "robust" detector that does not beat it has not learned robustness.
* **A check on the attack** (:func:`radlib.checks.certificate_checks`). PGD on a certified score must land between the
  certified bound and the clean AUROC. Below the bound means a bug (the attack left its eps-ball, or the
  score is not what it claims); the distance above the bound (the *slack*) is the most a stronger attack could
  still take away: a few points for radlib's PGD-20 on the pixel kNN at 4/255.
  :func:`radlib.checks.masking_checks` runs it for every score that has ``bounds``.

Scores follow radlib's conventions: float (N, C, H, W) in [0, 1] in, float32 (N,) out, higher = more
anomalous, differentiable in the input so :mod:`radlib.attacks` can attack them.

Example (well separated images: the AUROC is certified whatever the attack at 4/255):
    >>> import torch
    >>> from radlib.certify import PixelKNNScore, certified_auroc
    >>> g = torch.Generator().manual_seed(0)
    >>> train = torch.rand(20, 1, 4, 4, generator=g) * 0.2
    >>> test = torch.cat([torch.rand(5, 1, 4, 4, generator=g) * 0.2, 0.8 + torch.rand(5, 1, 4, 4, generator=g) * 0.2])
    >>> lo, hi = PixelKNNScore.fit(train).bounds(test, 4 / 255)
    >>> certified_auroc(lo, hi, torch.tensor([0] * 5 + [1] * 5))
    100.0
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np
import torch

from .images import to_float
from .knn import check_chunk_size, topk_euclidean
from .metrics import auroc
from .score.base import AnomalyScore, check_fit_images, check_score_images
from .validate import check_eps, check_input_shape, check_pixel_range

__all__ = ["PixelKNNScore", "l2_radius", "lipschitz_bounds", "certified_auroc"]


class _NoModel(torch.nn.Module):
    """Stands in for a network in a model-free score (the base class wants a module to set modes on)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never called
        return x


class PixelKNNScore(AnomalyScore):
    """Mean Euclidean distance from the flattened image to its ``k`` nearest normal training images.

    ``self(x)``: float (N, C, H, W) in [0, 1] -> float32 (N,) >= 0, higher = more anomalous. Model-free, no
    training. Each k-th nearest distance is 1-Lipschitz in the L2 norm of ``x``, and so is their mean:
    ``lipschitz_l2 = 1``; :meth:`bounds` gives exact per-neighbour bounds that are tighter. Neighbours are
    searched ``chunk_size`` bank rows at a time without autograd; the distances to the winners are then
    recomputed under autograd (the exact subgradient).
    """

    name = "pixel_knn"
    lipschitz_l2 = 1.0
    _tensor_attrs = ("bank", "bank_sq")

    def __init__(self, bank: torch.Tensor, *, k: int = 2, chunk_size: int = 4096,
                 image_shape: Sequence[int] | None = None) -> None:
        super().__init__(_NoModel())
        if bank.dim() != 2 or bank.shape[0] == 0:
            raise ValueError(f"bank must be a non-empty (M, D) tensor of flattened images, got {tuple(bank.shape)}")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= bank.shape[0]:
            raise ValueError(f"k must be an int in [1, {bank.shape[0]}] (number of training images), got {k!r}")
        self.bank = bank.float()
        self.bank_sq = (self.bank ** 2).sum(dim=1)
        self.k = k
        self.chunk_size = check_chunk_size(chunk_size)
        self.image_shape = tuple(int(v) for v in image_shape) if image_shape is not None else None
        self.input_shape = self.image_shape

    @classmethod
    def fit(cls, train_images: torch.Tensor, *, k: int = 2, chunk_size: int = 4096,
            device: torch.device | str | None = None) -> "PixelKNNScore":
        """Store the normal training images, uint8 or float in [0, 1] (M, C, H, W), flattened as float32 (M, C*H*W)."""
        train_images, _ = check_fit_images(train_images)
        dev = torch.device(device) if device is not None else train_images.device
        bank = to_float(train_images.to(dev)).float().flatten(1)
        return cls(bank, k=k, chunk_size=chunk_size, image_shape=train_images.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.bank.device

    @property
    def dims(self) -> int:
        """D, the number of input values (C*H*W) the score reads."""
        return int(self.bank.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.float().flatten(1)
        if q.shape[1] != self.dims:
            raise ValueError(f"images have {q.shape[1]} values, the training bank {self.dims} "
                             f"(shape {self.image_shape})")
        best_idx = topk_euclidean(q, self.bank, self.k, self.chunk_size, self.bank_sq)
        diff = q.unsqueeze(1) - self.bank[best_idx]  # (N, k, D), under autograd
        dist = (diff ** 2).sum(dim=2).clamp_min(1e-12).sqrt()
        return dist.mean(dim=1)

    def bounds(self, images: torch.Tensor, eps: float, norm: Literal["linf", "l2"] = "linf", *,
               block_values: int = 1 << 24) -> tuple[torch.Tensor, torch.Tensor]:
        """Lowest and highest score any ``norm`` perturbation of size ``eps`` (clipped to [0, 1]) can give.

        L-inf, exactly per training image b: each value may move within ``[lo, hi] = [x - eps, x + eps]``
        clipped to [0, 1], so the distance to b lies between ``|| dist(b, [lo, hi]) ||`` and
        ``|| max(|lo - b|, |hi - b|) ||`` (elementwise). The j-th smallest of the per-neighbour lower (upper)
        bounds bounds the j-th smallest distance from below (above), hence the mean of the k smallest.
        Only candidates are bounded exactly: a training image whose clean distance exceeds the k-th smallest
        by more than ``eps * sqrt(D)`` can be among neither k smallest (each distance moves by at most that),
        so the elementwise work is on a few rows per image, not all M. L2: each distance moves by at most
        eps (1-Lipschitz). No autograd.

        Args:
            images: uint8, or float in [0, 1] (N, C, H, W), finite.
            eps: perturbation size in pixel units: a number, a string like ``"4/255"`` or a 0-dim tensor
                (:func:`radlib.validate.check_eps`: L-inf at most 1).
            block_values: cap on the elements of one (queries, candidates, D) block (memory ~ 4 bytes each).
        Returns:
            (lower, upper), float32 (N,) on the CPU, ``lower <= self(x') <= upper`` for every allowed x'.
        """
        check_score_images(images, "images")
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
        eps = check_eps(eps, norm, self.dims)
        check_input_shape(images, self.input_shape)
        check_pixel_range(images, "images")  # NaN would leave no candidate neighbour (and no meaningful bound)
        if not isinstance(block_values, int) or block_values < 1:
            raise ValueError(f"block_values must be a positive int, got {block_values!r}")
        with torch.no_grad():
            x = to_float(images.to(self.device)).float().flatten(1)
            if x.shape[1] != self.dims:
                raise ValueError(f"images have {x.shape[1]} values, the training bank {self.dims}")
            if norm == "l2":
                d = self.forward(x)
                return (d - eps).clamp_min(0).cpu(), (d + eps).cpu()
            D, M = self.dims, self.bank.shape[0]
            radius = l2_radius(float(eps), "linf", D)
            lowers, uppers = [], []
            # clean distances in float64, so that rounding cannot eat the pruning margin
            bank64, bank_sq64 = self.bank.double(), self.bank_sq.double()
            n_outer = max(1, block_values // (M * 4))
            for qs in range(0, x.shape[0], n_outer):
                q = x[qs:qs + n_outer]
                qd = q.double()
                d = ((qd ** 2).sum(1, keepdim=True) - 2 * qd @ bank64.T + bank_sq64).clamp_min(0).sqrt()
                kth = d.topk(self.k, dim=1, largest=False).values[:, -1:]
                cand = d <= kth + radius + 1e-6 * (1 + kth)
                width = int(cand.sum(1).max())
                # candidate rows first (True sorts before False with descending=True), padded with others
                idx = cand.to(torch.uint8).sort(dim=1, descending=True, stable=True).indices[:, :width]
                valid = cand.gather(1, idx)
                nq = max(1, block_values // (width * D))
                for s in range(0, q.shape[0], nq):
                    qb, ib, vb = q[s:s + nq], idx[s:s + nq], valid[s:s + nq]
                    lo, hi = (qb - eps).clamp(0, 1).unsqueeze(1), (qb + eps).clamp(0, 1).unsqueeze(1)
                    b = self.bank[ib]  # (nq, width, D)
                    gap = torch.maximum(lo - b, b - hi).clamp_min(0)  # distance of b to [lo, hi] per value
                    low_d = (gap ** 2).sum(-1).sqrt()
                    del gap
                    far = torch.maximum((lo - b).abs(), (hi - b).abs())
                    up_d = (far ** 2).sum(-1).sqrt()
                    del far, b
                    inf = torch.tensor(float("inf"), device=low_d.device)
                    low_d, up_d = torch.where(vb, low_d, inf), torch.where(vb, up_d, inf)
                    lowers.append(low_d.topk(self.k, dim=1, largest=False).values.mean(1))
                    uppers.append(up_d.topk(self.k, dim=1, largest=False).values.mean(1))
        return torch.cat(lowers).cpu(), torch.cat(uppers).cpu()


def l2_radius(eps: float, norm: Literal["linf", "l2"], dims: int) -> float:
    """The L2 radius of the smallest ball that holds every ``norm`` perturbation of size ``eps`` on ``dims`` values.

    ``linf``: ``eps * sqrt(dims)`` (all values moved by eps); ``l2``: ``eps``.
    """
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        raise ValueError(f"dims must be a positive int, got {dims!r}")
    eps = check_eps(eps, norm, dims)
    if norm == "linf":
        return eps * math.sqrt(dims)
    if norm == "l2":
        return float(eps)
    raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")


def lipschitz_bounds(clean_scores: torch.Tensor | np.ndarray | Sequence[float], *, eps: float, dims: int,
                     lipschitz_l2: float, norm: Literal["linf", "l2"] = "linf") -> tuple[torch.Tensor, torch.Tensor]:
    """``(s - L r, s + L r)`` for a score that is ``L``-Lipschitz in L2, ``r = l2_radius(eps, norm, dims)``.

    Returns float64 (N,) tensors. Loose for L-inf (it assumes every value moves by eps along the gradient).
    """
    if lipschitz_l2 < 0 or not math.isfinite(lipschitz_l2):
        raise ValueError(f"lipschitz_l2 must be a finite number >= 0, got {lipschitz_l2}")
    s = torch.as_tensor(np.asarray(clean_scores), dtype=torch.float64)
    shift = lipschitz_l2 * l2_radius(eps, norm, dims)
    return s - shift, s + shift


def certified_auroc(lower: torch.Tensor | np.ndarray | Sequence[float], upper: torch.Tensor | np.ndarray | Sequence[float],
                    labels: torch.Tensor | np.ndarray | Sequence[int], clean_scores: torch.Tensor | np.ndarray | Sequence[float] | None = None,
                    *, mode: Literal["both", "in", "out"] = "both") -> float:
    """A lower bound (percent) on the AUROC that any attack within the bounded region can leave.

    The worst case for the defender: every attacked normal image at its ``upper`` bound, every attacked
    anomaly at its ``lower`` bound (``mode`` "in" attacks only normals, "out" only anomalies: the others keep
    their ``clean_scores``, required then).

    Args:
        lower, upper: (N,) bounds on each image's score over the threat region (from :func:`lipschitz_bounds`
            or a score's ``bounds``); labels: (N,) 0 normal / 1 anomaly.
    Returns:
        AUROC in percent (0..100).
    """
    if mode not in ("both", "in", "out"):
        raise ValueError(f"mode must be 'both', 'in' or 'out', got {mode!r}")
    lo = torch.as_tensor(np.asarray(lower), dtype=torch.float64)
    up = torch.as_tensor(np.asarray(upper), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels))
    if lo.dim() != 1 or lo.shape != up.shape or y.shape != lo.shape:
        raise ValueError(f"lower, upper and labels must all be (N,), got {tuple(lo.shape)}, {tuple(up.shape)}, "
                         f"{tuple(y.shape)}")
    if bool((lo > up).any()):
        raise ValueError("lower > upper for some images: not bounds")
    if mode != "both" and clean_scores is None:
        raise ValueError(f"mode={mode!r} leaves some images unattacked: pass their clean_scores")
    worst = torch.as_tensor(np.asarray(clean_scores), dtype=torch.float64).clone() if mode != "both" else lo.clone()
    if mode in ("both", "in"):
        worst[y == 0] = up[y == 0]
    if mode in ("both", "out"):
        worst[y == 1] = lo[y == 1]
    return auroc(worst, y)
