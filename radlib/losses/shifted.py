"""Mean-Shifted Contrastive loss (Reiss & Hoshen, AAAI 2023) with its feature centre, and the K-way
transformation head's cross-entropy.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .contrastive import nt_xent, check_matrix, check_positive, compute_dtype, no_autocast, stack_views, unit_rows

__all__ = ["feature_center", "msc_loss", "transform_ce"]


# ----------------------------------------------------------------------------------------------- Mean-Shifted
def feature_center(features: Tensor, normalize: bool = True) -> Tensor:
    """Centre of the normal training features for :func:`msc_loss`.

    Args:
        features: (N, d) float features of normal training images (N >= 1).
        normalize: True (default): the L2-normalised mean of the L2-normalised features (a unit vector; what
            the paper and the official code use with the angular loss). False: the plain mean of the normalised
            features (the official code's centre without ``--angular``).

    Returns:
        (d,) float32 tensor (float64 for float64 input), on ``features.device``.
    """
    features = check_matrix(features, "features")
    with no_autocast(features.device):
        c = unit_rows(features).mean(dim=0)
        return F.normalize(c, dim=0) if normalize else c


def msc_loss(
    z: Tensor | Sequence[Tensor],
    center: Tensor,
    n_views: int | None = 2,
    temperature: float = 0.25,
    angular_weight: float = 0.0,
) -> Tensor:
    """Mean-Shifted Contrastive loss (Reiss & Hoshen, "Mean-Shifted Contrastive Loss for Anomaly Detection").

    ``u = normalize(z)``; ``w = normalize(u - center)`` (the mean shift); loss = ``nt_xent(w, n_views, t)``
    (``reduction="pairs"``; identical to the official two-view ``contrastive_loss`` for V = 2) plus
    ``angular_weight * L_angular`` with the paper's angular centre loss
    ``L_angular = -mean_rows <normalize(z), normalize(center)>``.

    The official code implements the angular term as ``||u1 - c||^2 + ||u2 - c||^2`` (batch means, unit u and
    c), i.e. ``4 - 4 * mean cos``: the same gradient as ``angular_weight = 4`` here, so use 4.0 to reproduce
    it and 1.0 for the paper's equation.

    Args:
        z: (V*B, d) float features, view-major (or a list of V tensors (B, d), then ``n_views=None``).
        center: (d,) the normal-train centre, used **as given** in the shift (build it with
            :func:`feature_center`); normalised for the angular term.
        n_views: V >= 2.
        temperature: t > 0 (0.25 in the paper).
        angular_weight: >= 0.

    Returns:
        scalar float32 tensor (float64 for float64 input).
    """
    t = check_positive(temperature, "temperature")
    if isinstance(angular_weight, bool) or not isinstance(angular_weight, (int, float)) \
            or not math.isfinite(float(angular_weight)) or float(angular_weight) < 0.0:
        raise ValueError(f"angular_weight must be a finite number >= 0, got {angular_weight!r}")
    zc, v, _ = stack_views(z, n_views)
    if not isinstance(center, Tensor):
        raise TypeError(f"center must be a torch.Tensor, got {type(center).__name__}")
    if center.shape != (zc.shape[1],):
        raise ValueError(f"center must have shape ({zc.shape[1]},), got {tuple(center.shape)}")
    with no_autocast(zc.device):
        u = unit_rows(zc)
        c = center.to(device=u.device, dtype=u.dtype)
        loss = nt_xent(u - c, v, t)
        if angular_weight > 0.0:
            loss = loss - float(angular_weight) * (u @ F.normalize(c, dim=0)).mean()
    return loss


# ----------------------------------------------------------------------------------------------- K-way head
def transform_ce(logits: Tensor, labels: Tensor, reduction: Literal["mean", "sum", "none"] = "mean") -> Tensor:
    """Cross-entropy of the K-way transformation head (float32, autocast-safe).

    Args:
        logits: (M, K) float head outputs. labels: (M,) int64 targets in [0, K) (e.g. :func:`group_labels`).
        reduction: as in :func:`torch.nn.functional.cross_entropy`.
    """
    logits = check_matrix(logits, "logits")
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    with no_autocast(logits.device):
        return F.cross_entropy(logits.to(compute_dtype(logits)), labels.to(logits.device).long(),
                               reduction=reduction)
