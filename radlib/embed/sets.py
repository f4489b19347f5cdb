"""Embedding sets: the features of named groups of images, with per-point fields, to concatenate and map.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn

from ..features import FeatureName, model_features

__all__ = ["EmbeddingSet", "collect_embeddings", "ANY_STATE", "GROUP_STYLE"]

#: value of the ``state`` field of points shown in *every* state (e.g. pseudo-anomalies, which the test
#: attack does not touch, kept as a fixed reference cloud).
ANY_STATE = "any"

#: colour and marker per well-known group name; other groups cycle through ``EXTRA_STYLES``.
GROUP_STYLE: dict[str, tuple[str, str]] = {
    "normal": ("tab:blue", "o"),
    "pseudo-anomaly": ("tab:orange", "^"),
    "anomaly": ("tab:red", "X"),
    "real anomaly": ("tab:red", "X"),
}
EXTRA_STYLES = [("tab:green", "s"), ("tab:purple", "D"), ("tab:brown", "P"), ("tab:pink", "v"),
                 ("tab:olive", "*"), ("tab:cyan", "h"), ("tab:gray", "<")]


# --------------------------------------------------------------------------------------------- the set
def field_array(values: Any, n: int, name: str) -> np.ndarray:
    """A per-point field: a scalar is broadcast to n points, a sequence must have n entries."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if np.ndim(values) == 0:
        arr = np.empty(n, dtype=object if isinstance(values, str) else np.asarray(values).dtype)
        arr[:] = values
        return arr
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        arr = arr.astype(object)
    if arr.shape != (n,):
        raise ValueError(f"field {name!r} must have one value per point ({n}), got shape {arr.shape}")
    return arr


@dataclass
class EmbeddingSet:
    """Features of many points with their group and optional per-point fields.

    Attributes:
        features: float32 (N, d) on the CPU.
        group: int64 (N,), an index into ``group_names``.
        group_names: the name of every group index, e.g. ``("normal", "pseudo-anomaly", "anomaly")``.
        extra: per-point fields, each a numpy array (N,), e.g. ``state`` ("clean" / "attacked"),
            ``checkpoint`` (epoch), ``method``, ``index`` (position of the image inside its group; set by
            :func:`collect_embeddings`, it pairs the clean and attacked versions of one image).
    """

    features: torch.Tensor
    group: torch.Tensor
    group_names: tuple[str, ...]
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.features, torch.Tensor) or self.features.ndim != 2:
            raise ValueError(f"features must be a 2-D tensor (N, d), got "
                             f"{getattr(self.features, 'shape', type(self.features).__name__)}")
        self.features = self.features.detach().to("cpu", torch.float32)
        n = self.features.shape[0]
        self.group = torch.as_tensor(self.group).detach().to("cpu", torch.int64)
        if self.group.shape != (n,):
            raise ValueError(f"group must have shape ({n},), got {tuple(self.group.shape)}")
        self.group_names = tuple(str(g) for g in self.group_names)
        if len(set(self.group_names)) != len(self.group_names):
            raise ValueError(f"group names must be unique, got {self.group_names}")
        if n and (int(self.group.min()) < 0 or int(self.group.max()) >= len(self.group_names)):
            raise ValueError(f"group indices must be in [0, {len(self.group_names)}), got "
                             f"[{int(self.group.min())}, {int(self.group.max())}]")
        self.extra = {str(k): field_array(v, n, k) for k, v in self.extra.items()}

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def labels(self) -> np.ndarray:
        """The group *name* of every point, (N,) object array."""
        return np.asarray(self.group_names, dtype=object)[self.group.numpy()] if len(self) else \
            np.empty(0, dtype=object)

    def with_fields(self, **fields: Any) -> "EmbeddingSet":
        """A copy with per-point fields added or replaced (scalars are broadcast): ``s.with_fields(state="clean")``."""
        return EmbeddingSet(self.features, self.group, self.group_names, {**self.extra, **fields})

    def subset(self, mask: Any) -> "EmbeddingSet":
        """The points selected by a boolean mask or an index array (group names are kept)."""
        idx = np.arange(len(self))[np.asarray(mask)]
        t = torch.as_tensor(idx, dtype=torch.int64)
        return EmbeddingSet(self.features[t], self.group[t], self.group_names,
                            {k: v[idx] for k, v in self.extra.items()})

    def table(self) -> dict[str, np.ndarray]:
        """Per-point metadata as plain arrays: ``group`` (names) and every extra field."""
        return {"group": self.labels, **self.extra}

    @staticmethod
    def concat(sets: Iterable["EmbeddingSet"]) -> "EmbeddingSet":
        """Concatenate sets. Groups are matched *by name* (the union, in order of first appearance); the
        feature widths and the extra field names must agree."""
        sets = list(sets)
        if not sets:
            raise ValueError("nothing to concatenate")
        for s in sets:
            if not isinstance(s, EmbeddingSet):
                raise TypeError(f"expected EmbeddingSet, got {type(s).__name__}")
        dims = {s.features.shape[1] for s in sets}
        if len(dims) != 1:
            raise ValueError(f"feature widths differ: {sorted(dims)}")
        keys = set(sets[0].extra)
        for s in sets[1:]:
            if set(s.extra) != keys:
                raise ValueError(f"extra fields differ: {sorted(keys)} vs {sorted(s.extra)}")
        names: list[str] = []
        for s in sets:
            names += [g for g in s.group_names if g not in names]
        groups = []
        for s in sets:
            remap = torch.tensor([names.index(g) for g in s.group_names], dtype=torch.int64)
            groups.append(remap[s.group] if len(s) else s.group)
        extra = {k: np.concatenate([s.extra[k] for s in sets]) for k in keys}
        return EmbeddingSet(torch.cat([s.features for s in sets]), torch.cat(groups), tuple(names), extra)

    def __add__(self, other: "EmbeddingSet") -> "EmbeddingSet":
        return EmbeddingSet.concat([self, other])


# --------------------------------------------------------------------------------------------- collect
def collect_embeddings(model: nn.Module, groups: Mapping[str, torch.Tensor], *, feature: FeatureName = "projection",
                       batch_size: int = 256, device: torch.device | str | None = None,
                       **fields: Any) -> EmbeddingSet:
    """Features of every group of images, in one :class:`EmbeddingSet`.

    Args:
        model: a radlib model (its output has ``features`` / ``projection`` / ``logits``).
        groups: name -> uint8 or float (n, C, H, W) images, e.g. ``{"normal": x0, "anomaly": x1}``;
            the points keep this order, group by group.
        feature: ``"projection"`` (what the contrastive loss and the CSI/COBRA score compare; unnormalised)
            or ``"features"`` (penultimate, 8*width wide).
        batch_size: images per forward pass.
        device: where to run (default: the model's device).
        fields: constant per-point fields for every point, e.g. ``state="clean", checkpoint=3``.
    Returns:
        an :class:`EmbeddingSet` with an ``index`` field (position of each image inside its group).

    No autograd; the model runs in eval mode and every submodule's mode is restored afterwards.
    """
    if feature not in ("projection", "features"):
        raise ValueError(f"feature must be 'projection' or 'features', got {feature!r}")
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a non-empty mapping name -> images")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    feats, group, index = [], [], []
    for g, (name, images) in enumerate(groups.items()):
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"group {name!r}: images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(f"group {name!r}: expected non-empty images (n, C, H, W), got {tuple(images.shape)}")
        f = model_features(model, images, feature, batch_size=batch_size, device=device).cpu()
        feats.append(f)
        group.append(torch.full((f.shape[0],), g, dtype=torch.int64))
        index.append(np.arange(f.shape[0]))
    return EmbeddingSet(torch.cat(feats), torch.cat(group), tuple(groups), {"index": np.concatenate(index), **fields})
