"""The one image validator and the one uint8 -> float conversion, shared by every module that takes images.

Images are tensors (N, C, H, W): uint8 in [0, 255] as stored, float32 in [0, 1] inside the models, scores
and attacks. The [0, 1] range is *not* checked here (it would cost a device sync on every call): the public entry
points check it once per call (:func:`radlib.validate.check_pixel_range`: evaluate, the scores on inputs that do
not require grad, the fits, the certificates, purify), never inside an attack's step loop.

Example:
    >>> import torch
    >>> from radlib.images import check_images, to_float
    >>> to_float(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)).max().item()
    1.0
    >>> check_images(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), uint8="convert").dtype
    torch.float32
"""
from __future__ import annotations

from typing import Iterator, Literal

import torch

__all__ = ["to_float", "check_images", "float_batches"]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) in [0, 255] -> float32 in [0, 1] on the same device (float input is returned as is)."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.is_floating_point():
        raise TypeError(f"expected uint8 or float images, got {images.dtype}")
    return images


def float_batches(images: torch.Tensor, batch_size: int, device: torch.device | str | None = None
                  ) -> Iterator[tuple[slice, torch.Tensor]]:
    """The one batch partition radlib scores, embeds and fits with: rows ``[0:bs], [bs:2bs], ...`` of ``images``
    (N, C, H, W), each moved to ``device`` (default: where it is) and made float in [0, 1] (:func:`to_float`).
    Yields ``(rows, batch)``; ``rows`` (a slice) cuts the matching labels. Scores with seeded random transforms
    depend on the partition, so every batched loop in radlib goes through this one.

    >>> [(r.start, b.shape[0], b.dtype) for r, b in float_batches(torch.zeros(5, 1, 2, 2, dtype=torch.uint8), 2)]
    [(0, 2, torch.float32), (2, 2, torch.float32), (4, 1, torch.float32)]
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for start in range(0, images.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        part = images[rows]
        yield rows, to_float(part if device is None else part.to(device))


def check_images(x: torch.Tensor, name: str = "x", *, uint8: Literal["reject", "convert", "accept"] = "reject",
                 allow_empty: bool = True) -> torch.Tensor:
    """Validate images (N, C, H, W) and return them (as float, unless ``uint8="accept"``).

    Args:
        x: the images. name: how the error messages call them.
        uint8: ``"reject"`` (pixel-space ops: augmentations and pseudo-anomalies take float in [0, 1] and say how
            to convert), ``"convert"`` (scores: uint8 is converted with :func:`to_float`) or ``"accept"`` (uint8 is
            returned as it is, for callers that convert batch by batch).
        allow_empty: False raises on N = 0 (a score or a certificate of nothing is a mistake).
    Raises:
        TypeError: not a tensor, or an integer dtype that is not accepted. ValueError: not 4-D, or empty.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be images (N, C, H, W), got {x.ndim} dims {tuple(x.shape)}")
    if not allow_empty and x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if x.dtype == torch.uint8 and uint8 != "reject":
        return to_float(x) if uint8 == "convert" else x
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype} "
                        f"(convert uint8 images with radlib.data.to_float)")
    return x
