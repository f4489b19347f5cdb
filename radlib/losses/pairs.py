"""The pair-matrix diagnostic: which pairs of the canonical batch NT-Xent pulls, pushes rightly, and pushes
wrongly (spurious negatives), and NT-Xent with the spurious negatives removed.
"""
from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import torch
from torch import Tensor

from .contrastive import (check_int, check_positive, contrastive_from_logits, instance_positive_mask, no_autocast,
                          stack_views, unit_rows)

__all__ = ["PairKind", "group_labels", "instance_labels", "pair_matrix", "pair_counts", "spurious_negatives",
           "nt_xent_without_spurious"]


# ----------------------------------------------------------------------------------------------- pair diagnostic
class PairKind(IntEnum):
    """What NT-Xent does with a pair (row, column) of the canonical multi-view batch."""

    SELF = 0               #: the diagonal (excluded from every loss)
    POSITIVE = 1           #: same instance (k, i), different view: pulled together
    NEGATIVE = 2           #: different image, different group: pushed apart, rightly
    SPURIOUS_NEGATIVE = 3  #: different image, same group: NT-Xent pushes them apart although they belong together
    OPPOSITE = 4           #: same image, different group (normal vs its own pseudo-anomaly): COBRA repels them


def _layout_indices(n_images: int, K: int, n_views: int, device: torch.device | str | None) -> tuple[Tensor, ...]:
    check_int(n_images, "n_images", 1)
    check_int(K, "K", 1)
    check_int(n_views, "n_views", 1)
    r = torch.arange(n_views * K * n_images, device=device)
    return r // (K * n_images), (r // n_images) % K, r % n_images  # view, group, image


def group_labels(n_images: int, K: int, n_views: int = 1, device: torch.device | str | None = None) -> Tensor:
    """(V*K*N,) int64: the group k of every row of the canonical layout (the K-way head's CE target)."""
    return _layout_indices(n_images, K, n_views, device)[1]


def instance_labels(n_images: int, K: int, n_views: int = 1, device: torch.device | str | None = None) -> Tensor:
    """(V*K*N,) int64: the instance id ``k*N + i`` of every row (same id = NT-Xent positive)."""
    _, k, i = _layout_indices(n_images, K, n_views, device)
    return k * n_images + i


def pair_matrix(n_images: int, K: int, n_views: int, device: torch.device | str | None = None) -> Tensor:
    """Label every ordered pair of the canonical multi-view batch with its :class:`PairKind`.

    Args:
        n_images: N >= 1; K: groups >= 1; n_views: V >= 1.

    Returns:
        (M, M) int64 with M = V*K*N, symmetric: SELF on the diagonal; POSITIVE = same (k, i), other view;
        OPPOSITE = same image i, different group k, **in any view** (the opposite-pair loss itself only uses the
        same-view ones); SPURIOUS_NEGATIVE = different image, same group (any view); NEGATIVE = different image,
        different group. Per row: 1 self, V-1 positives, V(K-1) opposite, V(N-1) spurious, V(N-1)(K-1) negatives.
    """
    v, k, i = _layout_indices(n_images, K, n_views, device)
    same_v = v[:, None] == v[None, :]
    same_k = k[:, None] == k[None, :]
    same_i = i[:, None] == i[None, :]
    out = torch.full(same_v.shape, int(PairKind.NEGATIVE), dtype=torch.long, device=v.device)
    out[~same_i & same_k] = int(PairKind.SPURIOUS_NEGATIVE)
    out[same_i & ~same_k] = int(PairKind.OPPOSITE)
    out[same_i & same_k & ~same_v] = int(PairKind.POSITIVE)
    out[same_i & same_k & same_v] = int(PairKind.SELF)
    return out


def pair_counts(matrix: Tensor) -> dict[str, int]:
    """Count the ordered pairs of each kind in a :func:`pair_matrix` output.

    Returns:
        ``{"self": .., "positive": .., "negative": .., "spurious_negative": .., "opposite": ..}`` (keys =
        lower-case :class:`PairKind` names, every kind present, counts of ordered pairs, summing to M*M).
    """
    if not isinstance(matrix, Tensor):
        raise TypeError(f"matrix must be a torch.Tensor, got {type(matrix).__name__}")
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square 2-D, got shape {tuple(matrix.shape)}")
    if matrix.is_floating_point() or matrix.dtype == torch.bool:
        raise TypeError(f"matrix must hold integer PairKind codes, got {matrix.dtype}")
    if matrix.numel() and (int(matrix.min()) < 0 or int(matrix.max()) >= len(PairKind)):
        raise ValueError(f"matrix holds codes outside 0..{len(PairKind) - 1}")
    counts = torch.bincount(matrix.reshape(-1).long(), minlength=len(PairKind)).tolist()
    return {kind.name.lower(): int(counts[kind]) for kind in PairKind}


def spurious_negatives(n_images: int, K: int, n_views: int, device: torch.device | str | None = None) -> Tensor:
    """(M, M) bool mask of the SPURIOUS_NEGATIVE pairs (different image, same group) of :func:`pair_matrix`."""
    return pair_matrix(n_images, K, n_views, device) == int(PairKind.SPURIOUS_NEGATIVE)


def nt_xent_without_spurious(
    z: Tensor | Sequence[Tensor], n_views: int | None, K: int, temperature: float = 0.5
) -> Tensor:
    """NT-Xent whose denominator leaves out the spurious negatives (teaching diagnostic).

    Same positives and averaging as :func:`nt_xent` (``reduction="pairs"``) on the canonical layout
    ``z (V*K*N, d)``; the only change is that, for each anchor, the rows of *other images in the same group*
    are dropped from the softmax denominator, so their gradient is exactly zero. Comparing its gradient with
    :func:`nt_xent`'s shows how much of the NT-Xent push comes from spurious negatives.
    """
    t = check_positive(temperature, "temperature")
    k_chunks = check_int(K, "K", 1)
    zc, v, b = stack_views(z, n_views)
    if b % k_chunks != 0:
        raise ValueError(f"rows per view ({b}) are not divisible by K={k_chunks}")
    excluded = spurious_negatives(b // k_chunks, k_chunks, v, zc.device)
    with no_autocast(zc.device):
        u = unit_rows(zc)
        per_anchor = contrastive_from_logits(u @ u.T / t, instance_positive_mask(b, v, zc.device), excluded)
    return per_anchor.sum() / (v * b * (v - 1))
