"""Every loss piece the COBRA / CSI / Mean-Shifted trainers need, plus the pair-matrix diagnostic.

Canonical multi-view batch layout (shared by all of radlib)
----------------------------------------------------------
A batch of ``N`` images is expanded by a pseudo-anomaly policy into ``K`` transform chunks (row ``k*N + i`` is
transform ``k`` of image ``i``; ``k = 0`` is the untouched normal, ``k >= 1`` are pseudo-anomalies), and ``V``
views of that ``(K*N)`` block are concatenated **view-major**::

    row r = v * (K*N) + k * N + i          (M = V*K*N rows)

* *instance* = ``(k, i)``: a transformed image is its own instance (as in CSI, the shifted copies are separate
  instances), so the NT-Xent positives of a row are the rows of the same instance in the other views;
* *image* = ``i``; *group* = ``k`` (0 normal, >= 1 pseudo-anomaly).

All losses take **projections** (unnormalised, any float dtype) and L2-normalise them inside. Similarities are
computed in float32 (float64 inputs stay float64) with autocast disabled, so the losses are safe to call inside
``torch.autocast`` regions. Everything is batched matrix algebra: no Python loops over samples, no host syncs.

Contents
--------
* :func:`nt_xent` -- multi-view NT-Xent (SimCLR / CSI ``NT_xent`` with ``chunk = V``), exact log-softmax.
* :func:`supcon_loss` -- supervised contrastive loss (Khosla et al. 2020, ``L_out``); with group labels this is
  COBRA's ``L_SupCL`` (no spurious negatives).
* :func:`opposite_pair_loss` -- COBRA's opposite-pair repulsion in a **bounded** form (see its docstring).
* :class:`PairKind`, :func:`pair_matrix`, :func:`pair_counts`, :func:`spurious_negatives`,
  :func:`nt_xent_without_spurious` -- the teaching diagnostic of which pairs NT-Xent pulls / pushes.
* :func:`msc_loss`, :func:`feature_center` -- Mean-Shifted Contrastive loss (Reiss & Hoshen, AAAI 2023).
* :func:`transform_ce` -- cross-entropy of the K-way transformation head.
* :func:`group_labels`, :func:`instance_labels` -- per-row labels of the canonical layout.

Example (what NT-Xent does with each pair of a 2-view batch of 2 images and K=2 chunks):
    >>> from radlib.losses import pair_counts, pair_matrix
    >>> pair_counts(pair_matrix(n_images=2, K=2, n_views=2))
    {'self': 8, 'positive': 8, 'negative': 16, 'spurious_negative': 16, 'opposite': 16}
"""
from __future__ import annotations

from .contrastive import nt_xent, opposite_pair_loss, supcon_loss
from .pairs import (PairKind, group_labels, instance_labels, nt_xent_without_spurious, pair_counts, pair_matrix,
                    spurious_negatives)
from .shifted import feature_center, msc_loss, transform_ce

__all__ = [
    "PairKind",
    "feature_center",
    "group_labels",
    "instance_labels",
    "msc_loss",
    "nt_xent",
    "nt_xent_without_spurious",
    "opposite_pair_loss",
    "pair_counts",
    "pair_matrix",
    "spurious_negatives",
    "supcon_loss",
    "transform_ce",
]
