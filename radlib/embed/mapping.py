"""The 2-D map of an embedding: UMAP (fixed seed, deterministic) or PCA, fitted once on every point.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .sets import EmbeddingSet

__all__ = ["fit_embedding", "exact_knn"]

#: up to this many points, UMAP gets the exact neighbours from :func:`exact_knn` (one matrix product per chunk)
#: instead of building its approximate NN-descent index, whose numba compilation alone costs ~35 s per process on a
#: 2-core CPU (7,000 points: the fit took 45-57 s with NN-descent, 12.6 s with the exact neighbours)
EXACT_KNN_MAX_POINTS = 30_000


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
        method: ``"umap"``, or ``"pca"`` (instant, linear; use it where UMAP's first-call numba compilation
            does not fit, e.g. CPU smoke runs). UMAP falls back to PCA, with a warning, when N < n_neighbors + 2.
            Up to :data:`EXACT_KNN_MAX_POINTS` points UMAP is given the exact neighbours (:func:`exact_knn`) in
            place of its approximate NN-descent index (a departure from UMAP's default that only removes
            approximation error and ~35 s of compilation per process).
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
    k = min(n_neighbors, n - 1)
    knn = None
    if n <= EXACT_KNN_MAX_POINTS:  # exact neighbours (better than approximate) and no NN-descent compilation
        idx, dist = exact_knn(x, k, metric=metric)
        knn = (idx, dist, None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*")  # random_state forces n_jobs=1: intended
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        reducer = umap.UMAP(n_components=2, n_neighbors=k, min_dist=float(min_dist), metric=metric,
                            random_state=seed, transform_seed=seed, n_epochs=n_epochs, precomputed_knn=knn)
        return np.asarray(reducer.fit_transform(x.astype(np.float32)), dtype=np.float32)


def exact_knn(features: Any, k: int, *, metric: str = "cosine", chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest neighbours of every point among all points, the point itself first (UMAP's
    ``precomputed_knn`` layout).

    Args:
        features: (N, d) tensor / array, finite, N >= 2. k: 1 <= k <= N. metric: ``"cosine"`` (1 - cosine
            similarity, rows L2-normalised first) or ``"euclidean"``. chunk: rows per matrix product.
    Returns:
        int64 indices (N, k) and float32 distances (N, k) >= 0, ascending along each row; column 0 is the point
        itself at distance 0 (also where another point coincides with it).
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    x = torch.from_numpy(_as_features(features))
    n = x.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in [1, {n}] (the number of points), got {k!r}")
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    idx, dist = [], []
    for s in range(0, n, chunk):
        rows = torch.arange(s, min(s + chunk, n))
        if metric == "cosine":
            d = (1.0 - x[rows] @ x.T).clamp_min(0.0)
        else:
            d = torch.cdist(x[rows], x)
        d[torch.arange(len(rows)), rows] = -1.0  # the point itself first, whatever coincides with it
        v, i = d.topk(k, dim=1, largest=False)
        idx.append(i)
        dist.append(v.clamp_min(0.0))
    return torch.cat(idx).numpy(), torch.cat(dist).numpy().astype(np.float32)
