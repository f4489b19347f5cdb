"""The one feature extractor: a model's (or any extractor's) features for a set of images, batched, no autograd.

Used by the scores (:mod:`radlib.score`), the pseudo-anomaly filter, the trainer (msc's feature centre) and
the embeddings (:mod:`radlib.embed`).

Example:
    >>> import torch
    >>> from radlib.features import model_features
    >>> model_features(lambda x: x.flatten(1)[:, :3], torch.rand(5, 1, 2, 2), batch_size=2).shape
    torch.Size([5, 3])
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Literal

import torch
from torch import nn

from .images import check_images, float_batches

__all__ = ["model_features", "eval_mode", "model_device", "FeatureName"]

FeatureName = Literal["features", "projection", "logits"]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Context manager: ``model`` in eval mode inside, every submodule's own mode restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def model_device(model: nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); CPU for a module with neither."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def model_features(model: nn.Module | Callable[[torch.Tensor], Any], images: torch.Tensor,
                   feature: FeatureName = "features", *, batch_size: int | None = 256,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """One field of the model output for every image, batched, without autograd.

    Args:
        model: a radlib model (run in eval mode, every submodule's mode restored after), or any callable
            images -> a tensor or an object with the ``feature`` attribute (run as it is: put a module you
            wrap in eval mode yourself).
        images: uint8 or float (N, C, H, W) on any device (moved batch by batch).
        feature: ``"features"`` (penultimate), ``"projection"`` (unnormalised) or ``"logits"``.
        batch_size: images per call; None = all at once.
        device: where to run; default the model's device (a plain callable: the images' device).
    Returns:
        float32 (N, d) on ``device`` (an extractor's (N, ...) output is flattened to (N, d)).
    """
    if feature not in ("features", "projection", "logits"):
        raise ValueError(f"feature must be 'features', 'projection' or 'logits', got {feature!r}")
    check_images(images, "images", uint8="accept", allow_empty=False)  # converted batch by batch below
    step = images.shape[0] if batch_size is None else batch_size
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    ctx: contextlib.AbstractContextManager[Any]
    if isinstance(model, nn.Module):
        dev = torch.device(device) if device is not None else model_device(model)
        ctx = eval_mode(model)
    else:
        dev = torch.device(device) if device is not None else images.device
        ctx = contextlib.nullcontext()
    out = []
    with ctx, torch.no_grad():
        for _, xb in float_batches(images, step, dev):  # a loop over batches, not images
            raw = model(xb)
            res = raw if isinstance(raw, torch.Tensor) else getattr(raw, feature, None)
            if not isinstance(res, torch.Tensor):
                raise TypeError(f"the extractor must return a tensor or an object with .{feature}, got "
                                f"{type(raw).__name__}")
            out.append(res.reshape(res.shape[0], -1).float())
    return torch.cat(out)
