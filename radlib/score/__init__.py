"""Differentiable anomaly scores: the CSI/COBRA ensemble score, kNN (MSC-style) and Mahalanobis.

Modules: :mod:`.base` (the interface), :mod:`.ensemble` (CSI/COBRA), :mod:`.feature` (kNN, Mahalanobis),
:mod:`.patch` (PatchCore-style local kNN, max over positions),
:mod:`.fit` (a trained method's score: :func:`fit_score`);
the kernels live in :mod:`radlib.knn`, the features in :mod:`radlib.features`, the fit in :mod:`radlib.gaussian`.

Every score maps float images (N, C, H, W) in [0, 1] to a float32 tensor (N,) with **higher = more
anomalous** (radlib's sign everywhere), is batched on the device of its model, and is differentiable
end-to-end with respect to the input images, so :mod:`radlib.attacks` can run PGD / APGD on it.

Memory: the maxima / nearest neighbours over the training bank are found in chunks of ``chunk_size``
bank rows *without* autograd; only the winning bank rows are then re-multiplied with the queries under
autograd. This bounds memory by ``chunk_size`` whatever the bank size, and gives exactly the
(sub)gradient of the max / top-k (the winners are the only rows a max passes gradient to).

Model mode: every call runs the model in eval mode (BatchNorm running statistics, no dropout) and
restores each module's previous mode afterwards.

Example:
    >>> import torch
    >>> from radlib.models import build_model
    >>> from radlib.score import KNNScore
    >>> model = build_model(image_size=16, num_transforms=4, width=4)
    >>> score = KNNScore.fit(model, torch.rand(10, 3, 16, 16))
    >>> score(torch.rand(3, 3, 16, 16)).shape
    torch.Size([3])
"""
from __future__ import annotations

from ..features import eval_mode, model_features
from ..gaussian import gaussian_fit
from ..knn import knn_distance, max_cosine
from .base import AnomalyScore, score_images
from .ensemble import Augment, EnsembleScore, PolicyLike, official_tta
from .feature import KNNScore, MahalanobisScore
from .fit import SCORE_KINDS, ScoreKind, fit_score
from .patch import PatchKNNScore, local_features

__all__ = [
    "AnomalyScore",
    "ScoreKind",
    "SCORE_KINDS",
    "PatchKNNScore",
    "local_features",
    "fit_score",
    "Augment",
    "PolicyLike",
    "EnsembleScore",
    "KNNScore",
    "MahalanobisScore",
    "score_images",
    "max_cosine",
    "knn_distance",
    "model_features",
    "eval_mode",
    "gaussian_fit",
    "official_tta",
]
