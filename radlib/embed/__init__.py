"""Embeddings for teaching: collect features per group, map them to 2-D once, explore them with widgets.

The path is ``model -> collect_embeddings -> EmbeddingSet (concatenate many) -> fit_embedding -> EmbeddingExplorer``:

* :func:`collect_embeddings` runs a model (no grad, eval mode, the caller's mode restored) on named groups of
  images ("normal", "pseudo-anomaly", "anomaly", ...) and returns an :class:`EmbeddingSet`: one (N, d) float32
  CPU tensor, the group of every point, and optional per-point fields (``state`` clean/attacked,
  ``checkpoint`` epoch, ``method``, ...).
* :func:`fit_embedding` maps the features to 2-D. **Fit it once, on the union of every point you want to compare**
  (all checkpoints, methods, clean and attacked states): UMAP (like t-SNE) has no shared coordinate system
  between two separate fits, so positions from different fits cannot be compared; one fit makes a point's move
  between widget states mean something. UMAP gets the exact neighbours (up to 30,000 points), which spares the
  ~35 s of numba compilation of its approximate index per process; its first fit in a process still compiles
  for ~6 s on a CPU. ``method="pca"`` is the instant, linear alternative (and the automatic fallback for tiny sets).
* :class:`EmbeddingExplorer` shows a cached table of 2-D coordinates with ipywidgets (checkpoint slider,
  clean/attacked toggle, group check boxes, method selector). Its callback only *re-draws*; it never computes
  an embedding. ``explorer.update(...)`` / ``explorer.draw(...)`` run the same code without a frontend (CI).

Example:
    >>> import numpy as np
    >>> from radlib.embed import fit_embedding
    >>> fit_embedding(np.random.default_rng(0).normal(size=(10, 5)), method="pca").shape
    (10, 2)
"""
from __future__ import annotations

from .explorer import EmbeddingExplorer
from .mapping import fit_embedding
from .sets import ANY_STATE, GROUP_STYLE, EmbeddingSet, collect_embeddings

__all__ = ["EmbeddingSet", "collect_embeddings", "fit_embedding", "EmbeddingExplorer", "ANY_STATE", "GROUP_STYLE"]
