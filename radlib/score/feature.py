"""Feature scores: kNN distance (MSC-style) and Mahalanobis distance to the normal-train features.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn
import torch.nn.functional as F

from ..features import FeatureName, model_features
from ..gaussian import gaussian_fit
from ..knn import check_chunk_size, knn_distance
from .base import AnomalyScore, check_fit_images

__all__ = ["KNNScore", "MahalanobisScore"]


# --------------------------------------------------------------------------------------------- kNN
class KNNScore(AnomalyScore):
    """Mean cosine distance to the ``k`` nearest normalised training features (Mean-Shifted Contrastive style).

    ``self(x)``: float (N, C, H, W) in [0, 1] -> float32 (N,) in [0, 2]. The training bank is stored
    L2-normalised (M, d); see :func:`knn_distance`.
    """

    name = "knn"
    _tensor_attrs = ("bank",)

    def __init__(self, model: nn.Module, bank: torch.Tensor, *, k: int = 2, feature: FeatureName = "features",
                 chunk_size: int = 4096) -> None:
        super().__init__(model)
        if feature not in ("features", "projection"):
            raise ValueError(f"feature must be 'features' or 'projection', got {feature!r}")
        if bank.dim() != 2:
            raise ValueError(f"bank must be (M, d), got {tuple(bank.shape)}")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= bank.shape[0]:
            raise ValueError(f"k must be an int in [1, {bank.shape[0]}] (number of training images), got {k!r}")
        self.bank = F.normalize(bank.float(), dim=1)
        self.k = k
        self.feature = feature
        self.chunk_size = check_chunk_size(chunk_size)

    @classmethod
    def fit(cls, model: nn.Module, train_images: torch.Tensor, *, k: int = 2, feature: FeatureName = "features",
            batch_size: int = 256, chunk_size: int = 4096,
            device: torch.device | str | None = None) -> "KNNScore":
        """Store the normalised ``feature`` of every training image (uint8/float (M, C, H, W))."""
        if feature not in ("features", "projection"):
            raise ValueError(f"feature must be 'features' or 'projection', got {feature!r}")
        train_images, shape = check_fit_images(train_images)
        bank = model_features(model, train_images, feature, batch_size=batch_size, device=device)
        score = cls(model, bank, k=k, feature=feature, chunk_size=chunk_size)
        score.input_shape = shape
        return score

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = getattr(self.model(x), self.feature).float()
        return knn_distance(f, self.bank, self.k, self.chunk_size)


# --------------------------------------------------------------------------------------------- Mahalanobis
class MahalanobisScore(AnomalyScore):
    """Mahalanobis distance of the penultimate (or projection) features to a Gaussian fitted on training data.

    ``score(x) = sqrt((f(x) - mu)^T P (f(x) - mu))`` with the precision ``P`` of the shrunk covariance
    ``(1 - a) S + a * trace(S)/d * I`` (S the maximum-likelihood covariance, as sklearn). ``a`` is the
    Ledoit-Wolf estimate (``shrinkage="ledoit_wolf"``, sklearn's ``ledoit_wolf_shrinkage``) or a fixed
    float in [0, 1]. ``P`` is computed once, in float64, at fit time (pseudo-inverse, so ``a = 0`` with
    fewer images than dimensions still works). ``self(x)``: float (N, C, H, W) -> float32 (N,) >= 0.
    """

    name = "mahalanobis"
    _tensor_attrs = ("mean", "precision")

    def __init__(self, model: nn.Module, mean: torch.Tensor, precision: torch.Tensor, *,
                 feature: FeatureName = "features", shrinkage_used: float = float("nan")) -> None:
        super().__init__(model)
        if feature not in ("features", "projection"):
            raise ValueError(f"feature must be 'features' or 'projection', got {feature!r}")
        d = mean.shape[-1]
        if mean.shape != (d,) or precision.shape != (d, d):
            raise ValueError(f"mean must be (d,) and precision (d, d), got {tuple(mean.shape)} / "
                             f"{tuple(precision.shape)}")
        self.mean = mean.float()
        self.precision = precision.float()
        self.feature = feature
        self.shrinkage_used = float(shrinkage_used)

    @classmethod
    def fit(cls, model: nn.Module, train_images: torch.Tensor, *, feature: FeatureName = "features",
            shrinkage: float | Literal["ledoit_wolf"] = "ledoit_wolf", batch_size: int = 256,
            device: torch.device | str | None = None) -> "MahalanobisScore":
        """Fit mean and shrunk precision on the ``feature`` of the training images (M >= 2)."""
        if feature not in ("features", "projection"):
            raise ValueError(f"feature must be 'features' or 'projection', got {feature!r}")
        train_images, shape = check_fit_images(train_images)
        if train_images.shape[0] < 2:
            raise ValueError(f"train_images needs at least 2 images, got {train_images.shape[0]}")
        f = model_features(model, train_images, feature, batch_size=batch_size, device=device).double()
        mean, precision, a = gaussian_fit(f, shrinkage)
        score = cls(model, mean, precision, feature=feature, shrinkage_used=a)
        score.input_shape = shape
        return score

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = getattr(self.model(x), self.feature).float()
        diff = f - self.mean
        d2 = ((diff @ self.precision) * diff).sum(dim=1)
        return d2.clamp_min(1e-12).sqrt()
