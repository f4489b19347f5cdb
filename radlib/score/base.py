"""The score interface: :class:`AnomalyScore` (a differentiable (N, C, H, W) -> (N,) map, higher = more
anomalous, in eval mode, movable with ``.to``) and :func:`score_images` (batched, no autograd).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..features import eval_mode, model_device
from ..images import check_images, float_batches
from ..validate import as_float32, check_device, check_input_shape, check_pixel_range, range_checks_enabled

__all__ = ["AnomalyScore", "score_images"]


# --------------------------------------------------------------------------------------------- helpers
def check_score_images(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    return check_images(x, name, uint8="convert", allow_empty=False)


def check_fit_images(x: torch.Tensor, name: str = "train_images") -> tuple[torch.Tensor, tuple[int, ...]]:
    """Validate a score's training images (uint8, or float finite in [0, 1]); return them (float64 as float32)
    and their shape (C, H, W), which the fitted score then requires."""
    check_images(x, name, uint8="accept", allow_empty=False)
    check_pixel_range(x, name)
    return as_float32(x), tuple(int(v) for v in x.shape[1:])


# --------------------------------------------------------------------------------------------- base
class AnomalyScore:
    """Base class of radlib's scores: ``score(x) -> (N,)``, higher = more anomalous, differentiable in ``x``.

    Subclasses implement :meth:`forward`. ``__call__`` validates ``x`` (float or uint8 (N, C, H, W); float64 is
    scored as float32; a score fitted with ``fit`` refuses images of another shape than ``input_shape``; float
    images must be finite and in [0, 1], checked with one host sync when ``x`` does not require grad, so the
    attacks' steps, which differentiate and clamp to [0, 1], skip it), moves it to the score's device
    (differentiably) and runs :meth:`forward` with the model in eval mode.
    """

    name: str = "score"
    #: (C, H, W) of the images the score was fitted on (set by ``fit``); None accepts any shape
    input_shape: tuple[int, ...] | None = None

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    # tensors (other than the model) that ``to`` must move
    _tensor_attrs: tuple[str, ...] = ()

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def to(self, device: torch.device | str) -> "AnomalyScore":
        """Move the model (in place: it is the caller's model) and the fitted statistics to ``device``."""
        check_device(device, "the score")
        self.model.to(device)
        for attr in self._tensor_attrs:
            setattr(self, attr, getattr(self, attr).to(device))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        was_uint8 = isinstance(x, torch.Tensor) and x.dtype == torch.uint8
        x = check_score_images(x)
        check_device(x.device, "x")
        check_device(self.device, "the score")
        check_input_shape(x, self.input_shape)  # before any test-time augmentation changes the batch
        x = as_float32(x)
        if not was_uint8 and not x.requires_grad and range_checks_enabled():
            check_pixel_range(x, "x")
        x = x.to(self.device)
        with eval_mode(self.model):
            s = self.forward(x)
        return s

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device})"


def score_images(score: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 256,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Clean scores of many images without autograd, ``batch_size`` images per call.

    Args:
        score: any ``AnomalyScore`` (or callable float (B, C, H, W) -> (B,)).
        images: uint8 [0, 255] or float [0, 1] (N, C, H, W), on any device.
        device: where the batches go; default ``score.device`` (else the images' device).
    Returns:
        float32 (N,) on the CPU. The batch partition is ``[0:bs], [bs:2bs], ...``: scores with random
        (seeded) transforms depend on it, so compare clean and attacked scores with the same ``batch_size``.
    """
    check_score_images(images, "images")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if device is None:
        device = getattr(score, "device", images.device)
    out = []
    with torch.no_grad():
        for _, xb in float_batches(images, batch_size, device):
            out.append(score(xb).detach().float().cpu())
    return torch.cat(out)
