"""The one Gaussian fit: mean, Ledoit-Wolf (or fixed) shrunk covariance and its precision, in float64.

Used by :class:`radlib.score.MahalanobisScore` and the pseudo-anomaly filter
(:class:`radlib.pseudo_anomaly.GaussianFilter`). The Ledoit-Wolf shrinkage is computed in torch (any device,
no sklearn at run time) and is tested against ``sklearn.covariance.LedoitWolf``.

Example:
    >>> import torch
    >>> from radlib.gaussian import gaussian_fit
    >>> f = torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> mean, precision, a = gaussian_fit(f)
    >>> mean.shape, precision.shape, 0.0 <= a <= 1.0
    (torch.Size([4]), torch.Size([4, 4]), True)
"""
from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = ["ledoit_wolf_shrinkage", "shrunk_covariance", "gaussian_fit"]

Shrinkage = float | Literal["ledoit_wolf"]


def ledoit_wolf_shrinkage(xc: torch.Tensor) -> float:
    """The Ledoit-Wolf shrinkage in [0, 1] of centred data (N, D) (as ``sklearn.covariance.ledoit_wolf_shrinkage``
    with ``assume_centered=True``), towards ``trace(S) / D * I``."""
    xc = xc.double()
    n, d = xc.shape
    emp = xc.T @ xc / n
    mu = torch.trace(emp) / d
    x2 = xc ** 2
    beta_ = (x2.T @ x2).sum()
    delta_ = (emp ** 2).sum()
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2 * mu * torch.trace(emp) + d * mu ** 2) / d
    beta = torch.minimum(beta, delta)
    return 0.0 if float(delta) == 0.0 else float(beta / delta)


def shrunk_covariance(xc: torch.Tensor, shrinkage: Shrinkage = "ledoit_wolf") -> tuple[torch.Tensor, float]:
    """``(1 - a) S + a * trace(S) / D * I`` for centred data (N, D), S the maximum-likelihood covariance;
    ``a`` = the Ledoit-Wolf estimate or the given float in [0, 1]. Returns (cov (D, D) float64, a)."""
    if isinstance(shrinkage, str):
        if shrinkage != "ledoit_wolf":
            raise ValueError(f"shrinkage must be 'ledoit_wolf' or a float in [0, 1], got {shrinkage!r}")
        a = ledoit_wolf_shrinkage(xc)
    else:
        a = float(shrinkage)
        if not (0.0 <= a <= 1.0) or math.isnan(a):
            raise ValueError(f"shrinkage must be 'ledoit_wolf' or a float in [0, 1], got {shrinkage!r}")
    xc = xc.double()
    n, d = xc.shape
    cov = xc.T @ xc / n
    mu = torch.trace(cov) / d
    return (1.0 - a) * cov + a * mu * torch.eye(d, dtype=cov.dtype, device=cov.device), a


def gaussian_fit(f: torch.Tensor, shrinkage: Shrinkage = "ledoit_wolf") -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mean (D,), precision (D, D) (pseudo-inverse of the shrunk covariance: rank-deficient features work) and
    the shrinkage used, for features f (N, D), N >= 2, all float64."""
    if not isinstance(f, torch.Tensor) or f.ndim != 2:
        raise ValueError(f"features must be a (N, D) tensor, got {getattr(f, 'shape', type(f))}")
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature rows to fit, got {f.shape[0]}")
    f = f.detach().double()
    mean = f.mean(dim=0)
    cov, a = shrunk_covariance(f - mean, shrinkage)
    precision = torch.linalg.pinv(cov, hermitian=True)
    return mean, precision, a
