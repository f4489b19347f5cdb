"""ResNet-18 detector: encoder + projection head + K-way transformation head, normalisation inside.

The model takes float images in **[0, 1]** (pixel space) and normalises them internally, so every attack,
eps and clamp in radlib lives in pixel space (the README's conventions).

Faithful to the paper / official code (CSI lineage):
- ResNet-18 trained from scratch; CIFAR stem (3x3 conv, stride 1, no max-pool) for images <= 64 px,
  ImageNet stem (7x7 conv stride 2 + 3x3 max-pool) above;
- projection head Linear(512, 512) - ReLU - Linear(512, 128), L2-normalised by the losses (not here);
- a linear K-way head on the 512-d features predicting which hard transform was applied.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["ModelConfig", "ModelOutput", "ResNet18AD", "build_model"]


@dataclass(frozen=True)
class ModelConfig:
    """Plain-data description of a :class:`ResNet18AD` (stored in checkpoints).

    Attributes:
        num_transforms: K, the size of the transformation head (1 disables it in effect).
        image_size: side of the input images; picks the stem when ``stem="auto"``.
        stem: ``"cifar"`` (3x3, no pool), ``"imagenet"`` (7x7/2 + max-pool) or ``"auto"`` (cifar if <= 64 px).
        width: channels of the first stage (64 for the standard ResNet-18).
        proj_dim: output size of the projection head (128 in the paper).
        in_channels: 3 (or 1 for grey data loaded with ``channels=1``).
        mean, std: per-channel normalisation applied inside ``forward`` (pixel-space inputs).
    """

    num_transforms: int = 4
    image_size: int = 32
    stem: Literal["auto", "cifar", "imagenet"] = "auto"
    width: int = 64
    proj_dim: int = 128
    in_channels: int = 3
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    @property
    def resolved_stem(self) -> str:
        if self.stem != "auto":
            return self.stem
        return "cifar" if self.image_size <= 64 else "imagenet"


class ModelOutput(NamedTuple):
    """What :meth:`ResNet18AD.forward` returns.

    features: (N, 8*width) penultimate features (512 for width 64), after global average pooling.
    projection: (N, proj_dim) output of the projection head, *not* normalised.
    logits: (N, K) transformation-head logits.
    """

    features: torch.Tensor
    projection: torch.Tensor
    logits: torch.Tensor


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class ResNet18AD(nn.Module):
    """ResNet-18 encoder with projection and transformation heads.

    ``forward(x)`` takes float (N, C, H, W) in [0, 1] on the model's device and returns a
    :class:`ModelOutput`. Works with ``channels_last`` inputs/weights and under ``torch.autocast``.
    """

    mean: torch.Tensor  # (1, C, 1, 1) normalisation buffers (not saved: they come from the config)
    std: torch.Tensor

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ModelConfig()
        if len(cfg.mean) != cfg.in_channels or len(cfg.std) != cfg.in_channels:
            raise ValueError(f"mean/std need {cfg.in_channels} entries, got {cfg.mean} / {cfg.std}")
        if cfg.num_transforms < 1:
            raise ValueError(f"num_transforms must be >= 1, got {cfg.num_transforms}")
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, -1, 1, 1), persistent=False)
        w = cfg.width
        if cfg.resolved_stem == "cifar":
            self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w),
                                      nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        layers: list[nn.Module] = []
        c_in = w
        for i, c_out in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stride = 1 if i == 0 else 2
            layers += [_BasicBlock(c_in, c_out, stride), _BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.feature_dim = c_in
        self.projector = nn.Sequential(nn.Linear(c_in, c_in), nn.ReLU(inplace=True), nn.Linear(c_in, cfg.proj_dim))
        self.transform_head = nn.Linear(c_in, cfg.num_transforms)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def feature_map(self, x: torch.Tensor, stage: int = 4) -> torch.Tensor:
        """The feature map after residual stage ``stage`` (1-4) of float images (N, C, H, W) in [0, 1]:
        (N, width * 2**(stage-1), H / s, W / s) with s = 2**(stage-1) for the CIFAR stem (x4 more for the
        ImageNet stem). Stage 4 is what :meth:`encode` pools; the earlier stages keep local detail (the patch
        score, :class:`radlib.score.PatchKNNScore`)."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (N, {self.config.in_channels}, H, W) images, got {tuple(x.shape)}")
        if isinstance(stage, bool) or stage not in (1, 2, 3, 4):
            raise ValueError(f"stage must be 1, 2, 3 or 4, got {stage!r}")
        h = self.stem((x - self.mean) / self.std)
        return self.layers[:2 * stage](h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, 8*width) of float images (N, C, H, W) in [0, 1]."""
        return torch.flatten(F.adaptive_avg_pool2d(self.feature_map(x, 4), 1), 1)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        f = self.encode(x)
        return ModelOutput(f, self.projector(f), self.transform_head(f))


def build_model(config: ModelConfig | dict[str, Any] | None = None, device: torch.device | str | None = None,
                channels_last: bool = False, **overrides: Any) -> ResNet18AD:
    """Build a :class:`ResNet18AD` from a config (dataclass or plain dict from a checkpoint) plus overrides."""
    if isinstance(config, dict):
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        config = ModelConfig(**fields)
    config = config or ModelConfig()
    if overrides:
        config = ModelConfig(**{**asdict(config), **overrides})
    model = ResNet18AD(config)
    if device is not None:
        model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
