"""Pseudo-anomalies ("hard" transforms) and the K-chunk :class:`Policy` that feeds COBRA's K-way head.

All transforms take a float batch ``x`` of shape (N, C, H, W) with values in [0, 1] and return a tensor of the
same shape, dtype and device, values in [0, 1]. They are fully batched (no Python loop over samples; loops
over the 4 rotation values are the only loops) and draw **per-sample** random parameters from an explicit
``torch.Generator`` (CPU or ``x``'s device; parameters are drawn on the generator's device and moved).

Transforms (registry names in quotes, see :data:`TRANSFORMS`):

- ``"identity"``, ``"rot90"``, ``"rot180"``, ``"rot270"``: :func:`rotate` (exact ``torch.rot90``, counter-
  clockwise, dims (H, W)).
- ``"cutperm"``: :func:`cut_permute` with a random non-identity permutation of the 2x2 quadrants (the
  official code uses CSI's 4 half-swaps; radlib uses all 23 non-identity quadrant permutations).
- ``"cutpaste"`` / ``"scar"``: :func:`cutpaste`, following the official COBRA code (``CutPasteLayer``).
- ``"cutout"``: :func:`cutout` (black rectangle, as the official ``apply_cutout``).
- ``"elastic"``: :func:`elastic` (the field torchvision's ``ElasticTransform(200, 7)`` draws).

Official mix (the COBRA code): CIFAR-like data use K=4 rotations; MVTec-like data use K=2 with the CutPaste scar.

Example (K=4 rotations: chunk k of the expanded batch is rotation k of every image):
    >>> import torch
    >>> from radlib.pseudo_anomaly import policy_for
    >>> xk, labels = policy_for("cifar10").expand(torch.rand(2, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    >>> tuple(xk.shape), labels.tolist()
    ((8, 3, 8, 8), [0, 0, 1, 1, 2, 2, 3, 3])
"""
from __future__ import annotations

from .filter import GaussianFilter, filter_pseudo_anomalies
from .policy import CUTPASTE_POLICY, CUTPASTE_UNION_POLICY, NAMED_POLICIES, ROTATION_POLICY, Policy, policy_for
from .transforms import (INVERSE_PERMUTATION, PERMUTATIONS, TRANSFORMS, apply_transform, available_transforms,
                         cut_permute, cutout, cutpaste, elastic, gaussian_blur, rotate)

__all__ = [
    "PERMUTATIONS",
    "INVERSE_PERMUTATION",
    "rotate",
    "cut_permute",
    "cutpaste",
    "cutout",
    "elastic",
    "gaussian_blur",
    "TRANSFORMS",
    "available_transforms",
    "apply_transform",
    "Policy",
    "ROTATION_POLICY",
    "CUTPASTE_POLICY",
    "CUTPASTE_UNION_POLICY",
    "NAMED_POLICIES",
    "policy_for",
    "GaussianFilter",
    "filter_pseudo_anomalies",
]
