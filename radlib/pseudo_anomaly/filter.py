"""The optional accept/reject filter: keep only the pseudo-anomalies that do not look normal in feature space.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..features import model_features
from ..gaussian import gaussian_fit
from ..images import check_images

__all__ = ["GaussianFilter", "filter_pseudo_anomalies"]


@dataclass(frozen=True, eq=False)
class GaussianFilter:
    """A Gaussian fitted to normal-train features; pseudo-anomalies that look normal under it are rejected.

    Attributes (float64, on the features' device): ``mean`` (D,), ``precision`` (D, D) inverse of the shrunk
    covariance, ``train_distances`` (N,) Mahalanobis distances of the training features, ``shrinkage``.
    """

    mean: torch.Tensor
    precision: torch.Tensor
    train_distances: torch.Tensor
    shrinkage: float

    @classmethod
    def fit(cls, features: torch.Tensor, shrinkage: float | None = None) -> "GaussianFilter":
        """Fit on normal-train features (N, D), N >= 2. ``shrinkage`` in [0, 1] towards a scaled identity;
        None = Ledoit-Wolf estimate (as sklearn.covariance.LedoitWolf); :func:`radlib.gaussian.gaussian_fit`."""
        if shrinkage is not None and not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
        mean, precision, shrink = gaussian_fit(features, "ledoit_wolf" if shrinkage is None else shrinkage)
        f = features.detach().double()
        obj = cls(mean, precision, torch.empty(0), shrink)
        object.__setattr__(obj, "train_distances", obj.distance(f))
        return obj

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance (M,) float64 of features (M, D) from the fitted Gaussian."""
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[1] != self.mean.shape[0]:
            raise ValueError(f"features must be (M, {self.mean.shape[0]}), got {tuple(getattr(features, 'shape', ()))}")
        xc = features.detach().to(self.mean.device, torch.float64) - self.mean
        return torch.einsum("md,de,me->m", xc, self.precision, xc).clamp_min(0).sqrt()

    def threshold(self, quantile: float = 0.95) -> torch.Tensor:
        """The ``quantile`` of the normal-train distances (0-dim float64)."""
        if not 0.0 <= quantile <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {quantile}")
        return torch.quantile(self.train_distances, quantile)

    def accept(self, features: torch.Tensor, quantile: float = 0.95) -> torch.Tensor:
        """bool (M,): True where the distance exceeds the normal-train ``quantile`` (does NOT look normal)."""
        return (self.distance(features) > self.threshold(quantile)).to(features.device)


def filter_pseudo_anomalies(extract: Callable[[torch.Tensor], Any], normals: torch.Tensor,
                            candidates: torch.Tensor, quantile: float = 0.95,
                            batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Optional accept/reject step: keep only the pseudo-anomalies that do not look normal.

    Why: a pseudo-anomaly that lands among the normals in feature space (a CutPaste patch of background
    pasted on background, a barely visible scar) is a *spurious* negative — contrasting it against normals
    pushes apart things that are the same, which is exactly the failure COBRA's title is about. This filter
    fits a :class:`GaussianFilter` on ``extract(normals)`` and keeps candidates whose Mahalanobis distance is
    above the normal-train ``quantile``. It is optional (the default pipeline does not use it): it costs a
    feature pass, changes the batch size, and with a weak extractor it may reject good pseudo-anomalies.
    The official code does the same with a downloaded classifier and a 1-component GMM; here ``extract`` is
    any callable images -> features (N, D): the model being trained, or a fixed random-init network (no
    downloaded weights). Put a model in ``eval()`` mode first.

    Args:
        extract: images (B, C, H, W) -> features (B, D) (or an object with ``.features``, like ModelOutput).
        normals: float (N, C, H, W) normal images; candidates: float (M, C, H, W) pseudo-anomalies.
        quantile: in [0, 1]; batch_size: feature-extraction batch size (None = all at once).

    Returns:
        (kept (M', C, H, W) = candidates[mask], mask bool (M,)).
    """
    check_images(normals, "normals")
    check_images(candidates, "candidates")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    filt = GaussianFilter.fit(model_features(extract, normals, batch_size=batch_size, device=normals.device))
    mask = filt.accept(model_features(extract, candidates, batch_size=batch_size, device=candidates.device),
                       quantile).to(candidates.device)
    return candidates[mask], mask
