"""radlib: adversarially robust anomaly detection (COBRA, ICLR 2025) for teaching and research.

Submodules, each with one job (the README's library map): ``data``, ``images``, ``pseudo_anomaly``, ``augment``,
``models``, ``features``, ``losses``, ``attacks``, ``methods``, ``config``, ``train``, ``knn``, ``gaussian``,
``score``, ``metrics``, ``specs``, ``results``, ``evaluate``, ``checks``, ``certify``, ``embed``, ``viz``,
``pipeline``, ``profiles``, ``device``, ``checkpoint``, ``record``, ``cache``, ``optim``, ``purify``, ``reference``,
``validate``.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("data", "images", "pseudo_anomaly", "augment", "models", "features", "losses", "attacks", "methods",
               "config", "train", "knn", "gaussian", "score", "metrics", "specs", "results", "evaluate", "checks",
               "certify", "embed", "pipeline", "viz", "optim", "profiles", "device", "checkpoint", "cache", "purify",
               "reference", "record", "validate", "exercises")

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:  # lazy: `import radlib` stays cheap, `radlib.data` loads on first use
    if name in _SUBMODULES:
        return importlib.import_module(f"radlib.{name}")
    raise AttributeError(f"module 'radlib' has no attribute {name!r}")
