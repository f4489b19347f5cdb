"""The 2-D map of an embedding: UMAP (fixed seed, deterministic) or PCA, fitted once on every point.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .sets import EmbeddingSet

__all__ = ["fit_embedding"]


# --------------------------------------------------------------------------------------------- 2-D map
def _as_features(features: Any) -> np.ndarray:
    if isinstance(features, EmbeddingSet):
        features = features.features
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, d), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 points to map, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or inf")
    return x


def fit_embedding(features: Any, *, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
             n_epochs: int | None = None, metric: str = "cosine", method: str = "umap") -> np.ndarray:
    """2-D coordinates of every point: UMAP with a fixed ``random_state`` (deterministic), or PCA.

    **Fit once, on the union of all points** (every checkpoint, method and clean/attacked state): separate
    fits have unrelated coordinate systems, so only points mapped by the same fit can be compared.

    Args:
        features: (N, d) tensor / array, or an :class:`EmbeddingSet`.
        n_neighbors, min_dist, n_epochs: UMAP's knobs (``n_neighbors`` is capped at N - 1).
        seed: UMAP's ``random_state`` (same seed + same input = same output; UMAP then runs single-threaded).
        metric: ``"cosine"`` (default: contrastive features are compared by angle) or ``"euclidean"``.
            PCA with ``"cosine"`` runs on L2-normalised rows.
        method: ``"umap"``, or ``"pca"`` (instant, linear; use it where UMAP's ~15-35 s first-call numba JIT
            does not fit, e.g. CPU smoke runs). UMAP falls back to PCA, with a warning, when N < n_neighbors + 2.
    Returns:
        float32 numpy (N, 2).
    """
    if method not in ("umap", "pca"):
        raise ValueError(f"method must be 'umap' or 'pca', got {method!r}")
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if not isinstance(n_neighbors, int) or n_neighbors < 2:
        raise ValueError(f"n_neighbors must be an int >= 2, got {n_neighbors!r}")
    if not 0.0 <= float(min_dist):
        raise ValueError(f"min_dist must be >= 0, got {min_dist!r}")
    x = _as_features(features)
    n = x.shape[0]
    if method == "umap" and n < n_neighbors + 2:
        warnings.warn(f"only {n} points (< n_neighbors + 2 = {n_neighbors + 2}): using PCA instead of UMAP",
                      stacklevel=2)
        method = "pca"
    if method == "pca":
        from sklearn.decomposition import PCA
        if metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        k = min(2, n, x.shape[1])
        out = np.zeros((n, 2), dtype=np.float32)
        out[:, :k] = PCA(n_components=k, svd_solver="full").fit_transform(x)
        return out
    import umap  # slow import (numba); only when asked
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*")  # random_state forces n_jobs=1: intended
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), min_dist=float(min_dist),
                            metric=metric, random_state=seed, transform_seed=seed, n_epochs=n_epochs)
        return np.asarray(reducer.fit_transform(x.astype(np.float32)), dtype=np.float32)
