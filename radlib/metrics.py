"""The metric and the eps strings: AUROC in percent (anomalies positive) and ``"8/255"`` <-> float.

Conventions: scores are higher = more anomalous, anomalies (label 1) are the positive class of the AUROC,
eps is in pixel units (``8/255``) on images in [0, 1].

Example:
    >>> from radlib.metrics import auroc, format_eps, parse_eps
    >>> auroc([0.1, 0.2, 0.9], [0, 0, 1])
    100.0
    >>> parse_eps("8/255") == 8 / 255, format_eps(4 / 255)
    (True, '4/255')
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["auroc", "parse_eps", "format_eps", "mean_std", "format_mean_std"]


def auroc(scores: torch.Tensor | np.ndarray | Sequence[float], labels: torch.Tensor | np.ndarray | Sequence[int]
          ) -> float:
    """Area under the ROC curve **in percent** (0..100), anomalies (label 1) as the positive class.

    Computed once over the full set with ``sklearn.metrics.roc_auc_score`` (ties count 1/2).
    Scores: higher = more anomalous. 100 = perfect, 50 = chance, 0 = perfectly inverted.

    Raises:
        ValueError: shapes differ, labels other than 0/1, only one class present, or non-finite scores.
    """
    from sklearn.metrics import roc_auc_score

    s = _as_numpy(scores, "scores").astype(np.float64).ravel()
    y = _as_numpy(labels, "labels").ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same length, got {s.shape[0]} and {y.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    if y.min(initial=1) == y.max(initial=0) or len(y) == 0:
        raise ValueError("AUROC needs both normal (0) and anomalous (1) samples")
    if not np.isfinite(s).all():
        raise ValueError(f"scores contain {int((~np.isfinite(s)).sum())} non-finite values")
    return float(100.0 * roc_auc_score(y.astype(np.int64), s))


def _as_numpy(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except Exception as e:  # pragma: no cover - defensive
        raise TypeError(f"{name} must be a tensor, array or sequence, got {type(a).__name__}") from e


def parse_eps(value: str | float | int) -> float:
    """``"8/255"`` -> 0.03137..., ``"0.03"`` -> 0.03, ``0`` -> 0.0. Must be finite and >= 0."""
    if isinstance(value, bool):
        raise TypeError(f"eps must be a number or a string like '8/255', got {value!r}")
    if isinstance(value, (int, float)):
        eps = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if "/" in text:
                num, den = text.split("/", 1)
                eps = float(num) / float(den)
            else:
                eps = float(text)
        except (ValueError, ZeroDivisionError) as e:
            raise ValueError(f"cannot parse eps {value!r}: use a number or a fraction like '8/255'") from e
    else:
        raise TypeError(f"eps must be a number or a string like '8/255', got {type(value).__name__}")
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be finite and >= 0, got {value!r}")
    return eps


def format_eps(eps: float) -> str:
    """0.0313725 -> ``"8/255"`` for whole multiples of 1/255 (and ``"0.5/255"``-style halves below 4/255),
    else ``"%g"``. The output is accepted by :func:`parse_eps`."""
    if eps == 0:
        return "0"
    k = eps * 255
    if abs(k - round(k)) < 1e-6:
        return f"{int(round(k))}/255"
    if k < 4 and abs(2 * k - round(2 * k)) < 1e-6:
        return f"{round(2 * k) / 2:g}/255"
    return f"{eps:g}"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``, as ``statistics.stdev``) of per-seed values; the std of
    one value is 0.0. Raises ValueError on an empty sequence or a non-finite value."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    if not np.isfinite(v).all():
        raise ValueError(f"mean_std got a non-finite value: {v.tolist()}")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def format_mean_std(values: Sequence[float], digits: int = 1) -> str:
    """``"98.7 ± 1.0"`` over several seeds, ``"98.7"`` for one (no spread to show); see :func:`mean_std`."""
    values = list(values)
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"
