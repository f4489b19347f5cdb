"""Fit a trained method's anomaly score on its normal training images: the method's own score or the feature kNN.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..methods import get_method
from ..profiles import ScoreKind
from .base import AnomalyScore
from .ensemble import EnsembleScore, official_tta
from .feature import KNNScore
from .patch import PatchKNNScore

if TYPE_CHECKING:
    from ..train import TrainResult

__all__ = ["ScoreKind", "SCORE_KINDS", "fit_score"]

#: every score kind :func:`fit_score` fits
SCORE_KINDS: tuple[str, ...] = ("own", "knn", "patch")
#: rows of the patch score's memory bank (a seeded random subset; PatchCore keeps a 1-10 % coreset). Measured on
#: ``surfaces/metal`` (cpu profile, COBRA, 3 seeds): 4,096 of 16,384 rows score the same (clean 80.0 vs 80.2,
#: PGD-20 at 4/255 27.0 vs 25.8) at about half the attack's cost (``benchmarks/RESULTS.md``, "Learning that earns
#: its place")
PATCH_BANK = 4096


def fit_score(result: "TrainResult", train_images: torch.Tensor, *, samples: int = 1, batch_size: int = 128,
              seed: int = 0, kind: ScoreKind = "own", augment: bool = False) -> AnomalyScore:
    """Fit an anomaly score on the normal training images with the trained model.

    ``kind="own"`` (default): the method's own score (:attr:`radlib.methods.Method.own_score`: kNN on features for
    ``msc``, the CSI/COBRA ensemble score otherwise). The ensemble score uses the K-way head only when the
    method trained it (:attr:`~radlib.methods.Method.head` and ``cls_weight > 0``); otherwise the head's logits
    are noise and the term is dropped. ``kind="knn"``: mean distance to the 2 nearest normal-train backbone
    features, for any method (which is better depends on the data and the training length:
    ``benchmarks/RESULTS.md`` compares both; compare them on your data). ``kind="patch"``: the PatchCore-style
    local score (:class:`~radlib.score.PatchKNNScore`: stage-3 local features, nearest normal-train position,
    max over positions), for any method: a defect covering a few per cent of a texture moves one position's
    feature a lot and the pooled feature a little.

    ``augment=True`` gives the ensemble score the official test-time augmentation (:func:`~radlib.score.official_tta`:
    flip, colour jitter, grey, a 0.54 crop at low resolution), averaged over ``samples`` draws (official: 10);
    False scores the images as they are (``samples`` then only re-draws the pseudo-anomalies).
    """
    if kind not in SCORE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, SCORE_KINDS))}, got {kind!r}")
    cfg = result.config
    method = get_method(cfg.method)
    if kind == "patch":
        return PatchKNNScore.fit(result.model, train_images, batch_size=batch_size, seed=seed, max_bank=PATCH_BANK)
    if method.own_score == "knn" or kind == "knn":
        return KNNScore.fit(result.model, train_images, k=2, feature="features", batch_size=batch_size)
    if result.policy is None:
        raise ValueError(f"method {result.config.method!r} has no pseudo-anomaly policy to score with")
    head_trained = method.head and cfg.cls_weight > 0
    pre, aug = official_tta(cfg.image_size) if augment else (None, None)
    return EnsembleScore.fit(result.model, train_images, result.policy, batch_size=batch_size, samples=samples,
                             seed=seed, use_head=head_trained, pre_augment=pre, augment=aug)
