"""The contrastive losses on the canonical multi-view batch: NT-Xent, supervised contrastive, COBRA's
opposite-pair term, and the shared validation / layout helpers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["nt_xent", "supcon_loss", "opposite_pair_loss"]


# ----------------------------------------------------------------------------------------------- validation
def check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_matrix(z: object, name: str = "z") -> Tensor:
    if not isinstance(z, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim), got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {z.dtype}")
    if z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(z.shape)}")
    return z


def stack_views(z: Tensor | Sequence[Tensor], n_views: int | None, min_views: int = 2) -> tuple[Tensor, int, int]:
    """Return ``(z (V*B, d), V, B)`` from a view-major tensor or a list of ``V`` tensors ``(B, d)``."""
    if isinstance(z, (list, tuple)):
        if len(z) == 0:
            raise ValueError("z is an empty list; expected V tensors of shape (B, d)")
        views = [check_matrix(t, f"z[{j}]") for j, t in enumerate(z)]
        if any(t.shape != views[0].shape for t in views):
            raise ValueError(f"all views in z must have the same shape, got {[tuple(t.shape) for t in views]}")
        if n_views is not None and n_views != len(views):
            raise ValueError(f"n_views={n_views} disagrees with the {len(views)} tensors passed in z")
        check_int(len(views), "n_views (number of tensors in z)", min_views)
        return torch.cat(views, dim=0), len(views), views[0].shape[0]
    z = check_matrix(z)
    if n_views is None:
        raise ValueError("n_views is required when z is a single (V*B, d) tensor")
    check_int(n_views, "n_views", min_views)
    if z.shape[0] % n_views != 0:
        raise ValueError(f"z has {z.shape[0]} rows, not divisible by n_views={n_views}")
    return z, n_views, z.shape[0] // n_views


def compute_dtype(z: Tensor) -> torch.dtype:
    return torch.float64 if z.dtype == torch.float64 else torch.float32


def unit_rows(z: Tensor) -> Tensor:
    """L2-normalised rows in float32 (float64 kept); call inside an autocast-disabled region."""
    return F.normalize(z.to(compute_dtype(z)), dim=-1)


def no_autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, enabled=False)


def contrastive_from_logits(logits: Tensor, positives: Tensor, excluded: Tensor | None = None) -> Tensor:
    """Per-anchor **sum** over positives of ``-log softmax`` (denominator: every j != a not in ``excluded``).

    logits: (M, M) float; positives: (M, M) bool with a False diagonal; excluded: (M, M) bool or None
    (positives are never excluded). Returns (M,) per-anchor sums (0 for an anchor with no positive).
    """
    m = logits.shape[0]
    drop = torch.eye(m, dtype=torch.bool, device=logits.device)
    if excluded is not None:
        drop = drop | (excluded & ~positives)
    logits = logits.masked_fill(drop, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    picked = torch.where(positives, log_prob, torch.zeros((), dtype=log_prob.dtype, device=log_prob.device))
    return -picked.sum(dim=1)


def instance_positive_mask(b: int, v: int, device: torch.device) -> Tensor:
    """(V*B, V*B) bool: same within-view index, different row."""
    idx = torch.arange(v * b, device=device) % b
    return (idx[:, None] == idx[None, :]) & ~torch.eye(v * b, dtype=torch.bool, device=device)


# ----------------------------------------------------------------------------------------------- NT-Xent
def nt_xent(
    z: Tensor | Sequence[Tensor],
    n_views: int | None = None,
    temperature: float = 0.5,
    *,
    reduction: Literal["pairs", "anchors"] = "pairs",
) -> Tensor:
    """Multi-view NT-Xent (normalised-temperature cross-entropy; SimCLR, CSI, COBRA).

    Args:
        z: (V*B, d) float projections, view-major (row ``v*B + b`` is view ``v`` of sample ``b``), or a list of
            ``V`` tensors (B, d) (then ``n_views`` is implied and may be omitted). Normalised inside.
        n_views: V >= 2 (required for a tensor input).
        temperature: t > 0 (0.5 in CSI / COBRA).
        reduction: ``"pairs"`` (default): the mean over all ordered (anchor a, positive p) pairs of
            ``-log(exp(s_ap/t) / sum_{j != a} exp(s_aj/t))``, s = cosine similarity; the positives of ``a`` are
            the V-1 rows with the same within-view index in the other views. ``"anchors"``: the mean over
            anchors of the **sum** over their V-1 positives, i.e. ``(V-1) x "pairs"``. This is the scale of
            the official CSI/COBRA ``NT_xent(sim, chunk=V)`` (it divides the sum of the 2/6/12 diagonals by
            ``V*B``), so for V=2 both reductions coincide with the official loss, and for V=4 the official
            training loss weighs NT-Xent 3x relative to our default -- pick ``"anchors"`` to reproduce it.

    Returns:
        scalar float32 tensor (float64 for float64 input), >= 0.

    Unlike the official code (``-log(x / (denom + 1e-8) + 1e-8)``) the loss is an exact log-softmax via
    ``logsumexp``: no eps, no overflow for small temperatures.
    """
    t = check_positive(temperature, "temperature")
    if reduction not in ("pairs", "anchors"):
        raise ValueError(f"reduction must be 'pairs' or 'anchors', got {reduction!r}")
    zc, v, b = stack_views(z, n_views)
    with no_autocast(zc.device):
        u = unit_rows(zc)
        per_anchor = contrastive_from_logits(u @ u.T / t, instance_positive_mask(b, v, zc.device))
    denom = v * b * (v - 1) if reduction == "pairs" else v * b
    return per_anchor.sum() / denom


def supcon_loss(z: Tensor, labels: Tensor, temperature: float = 0.5) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, the ``L_out`` form).

    For each anchor a with positive set P(a) = {p != a : labels[p] == labels[a]}:
    ``l_a = -1/|P(a)| sum_{p in P(a)} log(exp(s_ap/t) / sum_{j != a} exp(s_aj/t))``; the loss is the mean of
    ``l_a`` over the anchors with ``|P(a)| >= 1`` (0, still attached to the graph, if there are none).

    In COBRA this is ``L_SupCL`` with ``labels = group_labels(N, K, V)`` (label = group k): every normal
    instance attracts every other normal (all images, all views) and each pseudo-anomaly type attracts its own
    type, so the spurious negatives of NT-Xent (different image, same group) become positives -- the
    "no spurious negatives" variant of the paper's ablation. With ``labels = instance_labels(N, K, V)`` it
    equals :func:`nt_xent` exactly.

    Args:
        z: (M, d) float projections, M >= 2 (normalised inside).
        labels: (M,) integer labels (any device; moved to ``z.device``).
        temperature: t > 0.

    Returns:
        scalar float32 tensor (float64 for float64 input).
    """
    t = check_positive(temperature, "temperature")
    z = check_matrix(z)
    if z.shape[0] < 2:
        raise ValueError(f"z needs at least 2 rows for a contrastive loss, got {z.shape[0]}")
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1 or labels.shape[0] != z.shape[0]:
        raise ValueError(f"labels must have shape ({z.shape[0]},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    labels = labels.to(z.device)
    m = z.shape[0]
    with no_autocast(z.device):
        u = unit_rows(z)
        pos = (labels[:, None] == labels[None, :]) & ~torch.eye(m, dtype=torch.bool, device=z.device)
        n_pos = pos.sum(dim=1)
        per_anchor = contrastive_from_logits(u @ u.T / t, pos) / n_pos.clamp_min(1).to(u.dtype)
        has_pos = (n_pos > 0).to(u.dtype)
        return (per_anchor * has_pos).sum() / has_pos.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------------------------- opposite pairs
def opposite_pair_loss(
    z: Tensor | Sequence[Tensor],
    n_views: int | None,
    K: int,
    margin: float = 0.0,
    temperature: float = 0.1,
    include_anomaly_pairs: bool = False,
) -> Tensor:
    """COBRA's opposite-pair repulsion, in a bounded, smooth-hinge form.

    Within each view ``v`` and for each image ``i``, the normal instance (k=0) and each of its own
    pseudo-anomalies (k>=1) form an *opposite pair*; with ``include_anomaly_pairs=True`` the pairs (k, k') of
    two different pseudo-anomalies of the same image are added. The loss is the mean over all these pairs of::

        t * softplus((cos - margin) / t)            cos = cosine similarity of the pair

    Why this form (radlib's choice, not the paper's):

    * **Bounded**: for cos in [-1, 1] the value lies in ``(0, t*softplus((1 - margin)/t)] <= (1 - margin) +
      t*ln 2``, whatever the inputs. The paper writes the term in an unbounded log form (it explodes, with an
      infinite gradient, when a pair collapses, cos -> 1), and the official code's ``opposite_pair=True`` branch
      *subtracts* the pair's NT-Xent log-ratio, which is unbounded below: the objective can then be lowered
      forever by one term, swamping NT-Xent and the CE head, and adversarial attacks on it never saturate.
    * **Monotone**: strictly increasing in cos, so it falls strictly as the pair's angle grows over [0, pi];
      the gradient w.r.t. cos is ``sigmoid((cos - margin)/t)`` in (0, 1) -- never dead (unlike a hard hinge)
      and never infinite (unlike ``-log(1 - cos)``), even for identical pairs or all-zero rows.
    * **Margin**: it is a smooth ``max(0, cos - margin)`` (exact as t -> 0): pairs already past the margin are
      barely pushed further. The default ``margin=0`` asks for orthogonality rather than antipodes: with K > 2
      all pseudo-anomalies cannot sit antipodal to the normal without collapsing onto each other.

    Args:
        z: (V*K*N, d) float projections in the canonical layout, or a list of V tensors (K*N, d).
        n_views: V >= 1 (pairs are formed within each view; ``None`` for a list input).
        K: number of transform chunks, >= 1. **K = 1 returns 0** (a scalar still attached to the graph, so
            ``backward`` works): there is no pseudo-anomaly, hence no opposite pair.
        margin: in [-1, 1).
        temperature: t > 0, sharpness of the soft hinge (0.1).
        include_anomaly_pairs: also repel pseudo-anomalies of the same image from each other (default off).

    Returns:
        scalar float32 tensor (float64 for float64 input).
    """
    k_chunks = check_int(K, "K", 1)
    t = check_positive(temperature, "temperature")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not -1.0 <= float(margin) < 1.0:
        raise ValueError(f"margin must be a number in [-1, 1), got {margin!r}")
    zc, v, b = stack_views(z, n_views, min_views=1)
    if b % k_chunks != 0:
        raise ValueError(f"rows per view ({b}) are not divisible by K={k_chunks}")
    n = b // k_chunks
    with no_autocast(zc.device):
        u = unit_rows(zc)
        if k_chunks == 1:
            return u.sum() * 0.0
        u = u.reshape(v, k_chunks, n, -1)
        cos = (u[:, :1] * u[:, 1:]).sum(dim=-1).reshape(-1)  # (V*(K-1)*N,)
        if include_anomaly_pairs and k_chunks > 2:
            gram = torch.einsum("vand,vbnd->vabn", u[:, 1:], u[:, 1:])  # (V, K-1, K-1, N)
            a_idx, b_idx = torch.triu_indices(k_chunks - 1, k_chunks - 1, offset=1, device=zc.device)
            cos = torch.cat([cos, gram[:, a_idx, b_idx].reshape(-1)])
        return (t * F.softplus((cos - float(margin)) / t)).mean()
