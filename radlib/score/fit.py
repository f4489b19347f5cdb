"""Fit a trained method's anomaly score on its normal training images: the method's own score or the feature kNN.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch

from ..methods import get_method
from .base import AnomalyScore
from .ensemble import EnsembleScore, official_tta
from .feature import KNNScore

if TYPE_CHECKING:
    from ..train import TrainResult

__all__ = ["ScoreKind", "fit_score"]

ScoreKind = Literal["own", "knn"]


def fit_score(result: "TrainResult", train_images: torch.Tensor, *, samples: int = 1, batch_size: int = 128,
              seed: int = 0, kind: ScoreKind = "own", augment: bool = False) -> AnomalyScore:
    """Fit an anomaly score on the normal training images with the trained model.

    ``kind="own"`` (default): the method's own score (:attr:`radlib.methods.Method.score`: kNN on features for
    ``msc``, the CSI/COBRA ensemble score otherwise). The ensemble score uses the K-way head only when the
    method trained it (:attr:`~radlib.methods.Method.head` and ``cls_weight > 0``); otherwise the head's logits
    are noise and the term is dropped. ``kind="knn"``: mean distance to the 2 nearest normal-train backbone
    features, for any method (which is better depends on the data and the training length:
    ``benchmarks/RESULTS.md`` compares both; compare them on your data).

    ``augment=True`` gives the ensemble score the official test-time augmentation (:func:`~radlib.score.official_tta`:
    flip, colour jitter, grey, a 0.54 crop at low resolution), averaged over ``samples`` draws (official: 10);
    False scores the images as they are (``samples`` then only re-draws the pseudo-anomalies).
    """
    if kind not in ("own", "knn"):
        raise ValueError(f"kind must be 'own' or 'knn', got {kind!r}")
    cfg = result.config
    method = get_method(cfg.method)
    if method.score == "knn" or kind == "knn":
        return KNNScore.fit(result.model, train_images, k=2, feature="features", batch_size=batch_size)
    if result.policy is None:
        raise ValueError(f"method {result.config.method!r} has no pseudo-anomaly policy to score with")
    head_trained = method.head and cfg.cls_weight > 0
    pre, aug = official_tta(cfg.image_size) if augment else (None, None)
    return EnsembleScore.fit(result.model, train_images, result.policy, batch_size=batch_size, samples=samples,
                             seed=seed, use_head=head_trained, pre_augment=pre, augment=aug)
