"""A patch-level score: PatchCore-style nearest-neighbour distance of *local* features, max over positions.

The global scores (:class:`~radlib.score.KNNScore`, the ensemble score) pool the last feature map into one vector
per image, so a defect that covers a few per cent of the image moves the score by a few per cent. PatchCore
(Roth et al., *Towards Total Recall in Industrial Anomaly Detection*, CVPR 2022) scores every position of an
intermediate feature map against a memory bank of all normal-train positions and takes the worst position, which
is why it leads MVTec AD's texture categories. radlib's version, on any radlib network (trained or not):

- local features: the feature map after residual stage ``stage`` (default 3), each position averaged over its
  3x3 neighbourhood (PatchCore's local aggregation; ``count_include_pad=False`` at the border);
- memory bank: every position of every normal training image, L2-normalised, optionally a seeded random subset of
  ``max_bank`` rows (PatchCore uses a greedy coreset; a random subset is the simple, seeded stand-in);
- score: mean cosine distance of each position to its ``k`` nearest bank rows, **max over positions**.

Both the nearest neighbour and the max are computed exactly and are differentiable almost everywhere (their
subgradient passes through the winning bank row and the winning position), so PGD and APGD attack it like any
other score; ``radlib.checks.masking_checks`` is how to check that on your model.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from ..features import eval_mode, model_device
from ..images import float_batches
from ..knn import check_chunk_size, knn_distance, max_cosine
from .base import AnomalyScore, check_fit_images

__all__ = ["PatchKNNScore", "local_features"]


def local_features(model: nn.Module, x: torch.Tensor, stage: int = 3) -> torch.Tensor:
    """Local features of float images (N, C, H, W) in [0, 1]: the stage-``stage`` feature map of ``model``
    (a :class:`radlib.models.ResNet18AD`), 3x3-neighbourhood averaged. Returns float32 (N, h, w, d), differentiable."""
    if not hasattr(model, "feature_map"):
        raise TypeError(f"the patch score needs a radlib ResNet18AD (with .feature_map), got {type(model).__name__}")
    feature_map: Any = model.feature_map  # ResNet18AD.feature_map (checked above)
    fmap = feature_map(x, stage).float()
    fmap = F.avg_pool2d(fmap, 3, stride=1, padding=1, count_include_pad=False)
    return fmap.permute(0, 2, 3, 1)


class PatchKNNScore(AnomalyScore):
    """Max over positions of the mean cosine distance of a local feature to its ``k`` nearest normal-train local
    features (PatchCore-style; module docstring).

    ``self(x)``: float (N, C, H, W) in [0, 1] -> float32 (N,) in [0, 2]. ``bank``: L2-normalised (M, d) local
    features of the normal training images.
    """

    name = "patch"
    _tensor_attrs = ("bank",)

    def __init__(self, model: nn.Module, bank: torch.Tensor, *, stage: int = 3, k: int = 1,
                 chunk_size: int = 4096) -> None:
        super().__init__(model)
        if bank.dim() != 2 or bank.shape[0] == 0:
            raise ValueError(f"bank must be a non-empty (M, d) tensor, got {tuple(bank.shape)}")
        if isinstance(stage, bool) or stage not in (1, 2, 3, 4):
            raise ValueError(f"stage must be 1, 2, 3 or 4, got {stage!r}")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= bank.shape[0]:
            raise ValueError(f"k must be an int in [1, {bank.shape[0]}] (bank rows), got {k!r}")
        self.bank = F.normalize(bank.float(), dim=1)
        self.stage = stage
        self.k = k
        self.chunk_size = check_chunk_size(chunk_size)

    @classmethod
    def fit(cls, model: nn.Module, train_images: torch.Tensor, *, stage: int = 3, k: int = 1,
            max_bank: int | None = None, seed: int = 0, batch_size: int = 128, chunk_size: int = 4096,
            device: torch.device | str | None = None) -> "PatchKNNScore":
        """Bank every local feature of the normal training images (uint8/float (M, C, H, W)); ``max_bank``: keep a
        seeded random subset of that many rows (None: all)."""
        train_images, shape = check_fit_images(train_images)
        if max_bank is not None and (isinstance(max_bank, bool) or not isinstance(max_bank, int) or max_bank < 1):
            raise ValueError(f"max_bank must be None or a positive int, got {max_bank!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(stage, bool) or stage not in (1, 2, 3, 4):
            raise ValueError(f"stage must be 1, 2, 3 or 4, got {stage!r}")
        dev = torch.device(device) if device is not None else model_device(model)
        parts = []
        with eval_mode(model), torch.no_grad():
            for _, xb in float_batches(train_images, batch_size, dev):  # a loop over batches, not images
                f = local_features(model, xb, stage)
                parts.append(F.normalize(f.reshape(-1, f.shape[-1]), dim=1))
        bank = torch.cat(parts)
        if max_bank is not None and bank.shape[0] > max_bank:
            g = torch.Generator().manual_seed(seed)
            bank = bank[torch.randperm(bank.shape[0], generator=g)[:max_bank].to(bank.device)]
        score = cls(model, bank, stage=stage, k=k, chunk_size=chunk_size)
        score.input_shape = shape
        return score

    def position_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Per-position distances (N, h, w) of float images (N, C, H, W) in [0, 1] (an anomaly map at the feature
        map's resolution; upsample to the image size to overlay it). Call under ``eval_mode`` / via ``self``."""
        f = local_features(self.model, x, self.stage)
        n, h, w, d = f.shape
        q = f.reshape(-1, d)
        if self.k == 1:  # the same distance; a running max instead of a running top-k: ~3x faster on a CPU
            return (1.0 - max_cosine(q, self.bank, self.chunk_size)).reshape(n, h, w)
        return knn_distance(q, self.bank, self.k, self.chunk_size).reshape(n, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.position_scores(x).flatten(1).amax(dim=1)
