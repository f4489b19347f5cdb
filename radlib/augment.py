"""SimCLR-style image augmentations on the GPU, with **per-sample** random parameters.

Every function takes a float batch ``x`` of shape (N, C, H, W) with values in [0, 1] (C = 1 or 3 where
colour matters) and returns a tensor of the same shape, dtype and device, again in [0, 1]. Randomness
comes from an explicit ``torch.Generator`` (on the CPU or on ``x``'s device; parameters are drawn on the
generator's device and then moved to ``x``'s device); ``generator=None`` uses torch's global RNG of
``x``'s device. Each sample in a batch gets its own parameters — unlike a per-batch draw (which some
library ops do), the SimCLR recipe needs independent distortions per image.

Settings follow the official CSI/COBRA code (its SimCLR augmentation): colour jitter (0.4, 0.4, 0.4, 0.1) with
p=0.8, greyscale p=0.2, random resized crop scale (0.08, 1) for low-resolution data, and **no flip**: the
official code flips each image once *before* the pseudo-anomalies are made (:func:`radlib.train.training_views`),
because a flip after a rotation confuses the rotation labels (hflip(rot90 x) == rot270(hflip x)).

Differences from ``torchvision.transforms.ColorJitter`` (documented on purpose):
- the four jitter ops run in a fixed order (brightness, contrast, saturation, hue) instead of a random one;
- hue is shifted through an exact RGB -> HSV -> RGB round trip (same maths as torchvision's tensor path);
- resized crop uses bilinear ``grid_sample`` without antialiasing; the crop box is never larger than the
  image, so it is only ever *up*-sampled to the output size and aliasing does not arise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .images import check_images
import torch.nn.functional as F

__all__ = [
    "horizontal_flip",
    "random_resized_crop",
    "color_jitter",
    "random_grayscale",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "hsv_to_rgb",
    "SimCLRAugment",
    "two_views",
]

# ITU-R 601-2 luma weights (the ones torchvision and PIL use for greyscale)
_LUMA = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------------------------- helpers
def _check_prob(p: float, name: str = "p") -> None:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")


def rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0, 1) of ``shape`` drawn on the generator's device (or ``device`` if None), returned on ``device``."""
    gdev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gdev, dtype=torch.float32).to(device=device, dtype=dtype)


def uniform(shape: tuple[int, ...], low: float | torch.Tensor, high: float | torch.Tensor,
            generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[low, high) float32 of ``shape`` on ``device`` (``low``/``high`` may broadcast)."""
    return low + (high - low) * rand(shape, generator, device)


def randint(shape: tuple[int, ...], high: int, generator: torch.Generator | None,
            device: torch.device) -> torch.Tensor:
    """Integers in [0, high) (int64) of ``shape`` drawn on the generator's device, returned on ``device``."""
    gdev = generator.device if generator is not None else device
    return torch.randint(0, high, shape, generator=generator, device=gdev).to(device)


def bernoulli(n: int, p: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Bool (n,) with P(True) = p."""
    return rand((n,), generator, device) < p


def _as_rows(v: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N, 1, 1, 1) for broadcasting over images."""
    return v.view(-1, 1, 1, 1)


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma (0.299 R + 0.587 G + 0.114 B); (N, 1, H, W) is returned as is."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"x must have 1 or 3 channels, got {x.shape[1]}")
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, H, W) in [0, 1] -> HSV (..., 3, H, W), hue in [0, 1) (fraction of a full turn)."""
    r, g, b = x.unbind(-3)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    grey = delta == 0
    ones = torch.ones_like(maxc)
    s = delta / torch.where(maxc == 0, ones, maxc)
    d = torch.where(grey, ones, delta)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(grey, torch.zeros_like(h), h)
    h = torch.remainder(h / 6.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV (..., 3, H, W) with hue in [0, 1) -> RGB (..., 3, H, W) in [0, 1].

    Uses the closed form channel_n = V - V S clamp(min(k, 4 - k), 0, 1) with k = (n + 6 H) mod 6 and
    n = 5, 3, 1 for R, G, B (equivalent to the six-sector table, without materialising it).
    """
    h, s, v = x.unbind(-3)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(3, 1, 1)
    k = torch.remainder(n + 6.0 * h.unsqueeze(-3), 6.0)
    t = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return (v.unsqueeze(-3) - (v * s).unsqueeze(-3) * t).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------- geometric ops
def horizontal_flip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right independently with probability ``p``. Exact (no resampling)."""
    check_images(x)
    _check_prob(p)
    flip = bernoulli(x.shape[0], p, generator, x.device)
    return torch.where(_as_rows(flip), x.flip(-1), x)


def random_resized_crop(x: torch.Tensor, generator: torch.Generator | None = None,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        attempts: int = 10) -> torch.Tensor:
    """Per-sample random crop of area ``scale`` x image area and aspect ratio (w/h) log-uniform in ``ratio``,
    resized back to (H, W) with one batched ``affine_grid`` + bilinear ``grid_sample``.

    As in torchvision, ``attempts`` candidate boxes are drawn per sample and the first that fits inside the
    image is used; a sample with no fitting candidate falls back to the largest centred box whose ratio is
    clamped to ``ratio``. Box sizes and positions are continuous (sub-pixel), not rounded.
    """
    check_images(x)
    lo, hi = float(scale[0]), float(scale[1])
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"scale must satisfy 0 < scale[0] <= scale[1] <= 1, got {scale}")
    rlo, rhi = float(ratio[0]), float(ratio[1])
    if not 0.0 < rlo <= rhi:
        raise ValueError(f"ratio must satisfy 0 < ratio[0] <= ratio[1], got {ratio}")
    n, _, hgt, wid = x.shape
    dev = x.device
    area = uniform((n, attempts), lo, hi, generator, dev) * (hgt * wid)
    logr = uniform((n, attempts), math.log(rlo), math.log(rhi), generator, dev)
    aspect = torch.exp(logr)
    cw = torch.sqrt(area * aspect)
    ch = torch.sqrt(area / aspect)
    fits = (cw <= wid + 1e-6) & (ch <= hgt + 1e-6)
    # index of the first fitting attempt (argmax of a bool picks the first True); none fits -> fallback
    first = fits.float().argmax(dim=1, keepdim=True)
    any_fit = fits.any(dim=1)
    cw = cw.gather(1, first).squeeze(1)
    ch = ch.gather(1, first).squeeze(1)
    in_ratio = wid / hgt
    if in_ratio < rlo:
        fw, fh = float(wid), wid / rlo
    elif in_ratio > rhi:
        fw, fh = hgt * rhi, float(hgt)
    else:
        fw, fh = float(wid), float(hgt)
    cw = torch.where(any_fit, cw, torch.full_like(cw, fw)).clamp(max=wid)
    ch = torch.where(any_fit, ch, torch.full_like(ch, fh)).clamp(max=hgt)
    u = rand((n, 2), generator, dev)
    left = u[:, 0] * (wid - cw)
    top = u[:, 1] * (hgt - ch)
    # normalised (align_corners=False) centre and half-extent of the box
    cx = (left + cw / 2) / wid * 2 - 1
    cy = (top + ch / 2) / hgt * 2 - 1
    theta = torch.zeros(n, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = cw / wid
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = ch / hgt
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------------------- colour ops
def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor * a + (1 - factor) * b, clamped to [0, 1]; factor (N,) per sample."""
    f = _as_rows(factor).to(a.dtype)
    return (f * a + (1 - f) * b).clamp(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """x * factor (per sample), clamped to [0, 1]."""
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Blend each image with its mean grey level (per sample factor), clamped to [0, 1].

    ``weight`` (N, 1, H, W), optional: compute the mean grey level over this region only (used by CutPaste
    to jitter a patch with the patch's own statistics, as jittering the cut-out patch would).
    """
    grey = rgb_to_grayscale(x)
    if weight is None:
        mean = grey.mean(dim=(1, 2, 3), keepdim=True)
    else:
        w = weight.to(x.dtype)
        mean = (grey * w).sum(dim=(1, 2, 3), keepdim=True) / w.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return _blend(x, mean.expand_as(x), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each RGB image with its greyscale version (per sample factor); 1-channel input unchanged."""
    if x.shape[1] == 1:
        return x
    return _blend(x, rgb_to_grayscale(x).expand_as(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each RGB image by ``shift`` (N,) in [-0.5, 0.5] turns (HSV round trip)."""
    if x.shape[1] == 1:
        return x
    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1).to(x.dtype), 1.0)
    return hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), dim=1)).clamp(0.0, 1.0)


def color_jitter(x: torch.Tensor, generator: torch.Generator | None = None, brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1, p: float = 0.8,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    """SimCLR colour jitter with per-sample factors, applied to each sample with probability ``p``.

    Factors: brightness, contrast, saturation ~ U[max(0, 1 - m), 1 + m]; hue shift ~ U[-hue, hue] turns
    (hue <= 0.5). Order is fixed: brightness, contrast, saturation, hue (torchvision randomises it).
    Hue uses an exact RGB <-> HSV round trip (not a YIQ rotation). For 1-channel input only brightness and
    contrast apply. ``weight`` (N, 1, H, W), optional: region for the contrast mean (see
    :func:`adjust_contrast`). Input/output: float (N, C, H, W) in [0, 1], C in {1, 3}.
    """
    check_images(x)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"color_jitter needs 1 or 3 channels, got {x.shape[1]}")
    for name, m in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
        if m < 0:
            raise ValueError(f"{name} must be >= 0, got {m}")
    if not 0.0 <= hue <= 0.5:
        raise ValueError(f"hue must be in [0, 0.5], got {hue}")
    _check_prob(p)
    n, dev = x.shape[0], x.device
    u = rand((n, 5), generator, dev)
    apply = u[:, 4] < p

    def factor(col: int, m: float) -> torch.Tensor:
        f = max(0.0, 1.0 - m) + (1.0 + m - max(0.0, 1.0 - m)) * u[:, col]
        return torch.where(apply, f, torch.ones_like(f))

    out = x
    if brightness > 0:
        out = adjust_brightness(out, factor(0, brightness))
    if contrast > 0:
        out = adjust_contrast(out, factor(1, contrast), weight)
    if x.shape[1] == 3:
        if saturation > 0:
            out = adjust_saturation(out, factor(2, saturation))
        if hue > 0:
            shift = torch.where(apply, (2 * u[:, 3] - 1) * hue, torch.zeros_like(u[:, 3]))
            out = adjust_hue(out, shift)
    return out


def random_grayscale(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.2) -> torch.Tensor:
    """Replace each RGB image by its luma (repeated on 3 channels) with probability ``p``.

    1-channel input is returned unchanged (it is already grey), but the generator is still advanced.
    """
    check_images(x)
    _check_prob(p)
    pick = bernoulli(x.shape[0], p, generator, x.device)
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"random_grayscale needs 1 or 3 channels, got {x.shape[1]}")
    return torch.where(_as_rows(pick), rgb_to_grayscale(x).expand_as(x), x)


# ------------------------------------------------------------------------------------------ composition
@dataclass(frozen=True)
class SimCLRAugment:
    """The SimCLR view distortion used by CSI/COBRA, as one batched callable ``aug(x, generator) -> x'``.

    Order: random resized crop (if ``crop``) -> horizontal flip (if ``flip_p > 0``) -> colour jitter -> random
    greyscale.

    ``flip_p`` defaults to 0, as the official CSI/COBRA ``simclr_aug``: their flip happens once per image,
    *before* the pseudo-anomaly transforms (see :func:`radlib.train.training_views`). Flipping after them is a
    bug for rotations: hflip(rot90 x) == rot270(hflip x), so the 90 and 270 degree chunks receive the same
    inputs and the K-way head learns contradictory labels (measured: ``benchmarks/RESULTS.md``, "Measurements
    behind the docstrings"; ``tests/test_faithful.py`` checks the head tells 90 from 270 degrees).

    Attributes:
        crop: use the random resized crop. The paper uses it for low-resolution data only
            (see :meth:`for_resolution`).
        strength: multiplies the four jitter magnitudes (SimCLR's colour-distortion strength ``s``);
            1.0 gives the design-note settings (0.4, 0.4, 0.4, 0.1). Hue is capped at 0.5.
        flip_p, jitter, jitter_p, grayscale_p, crop_scale, crop_ratio: the individual settings.
    """

    crop: bool = True
    strength: float = 1.0
    flip_p: float = 0.0
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        if self.strength < 0:
            raise ValueError(f"strength must be >= 0, got {self.strength}")
        if len(self.jitter) != 4:
            raise ValueError(f"jitter must be (brightness, contrast, saturation, hue), got {self.jitter}")
        for name in ("flip_p", "jitter_p", "grayscale_p"):
            _check_prob(getattr(self, name), name)

    @classmethod
    def for_resolution(cls, size: int, **kwargs: object) -> "SimCLRAugment":
        """The paper's choice: resized crop on for low-resolution images (size <= 64 px), off otherwise."""
        return cls(crop=int(size) <= 64, **kwargs)  # type: ignore[arg-type]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """float (N, C, H, W) in [0, 1] -> distorted batch of the same shape/dtype/device, in [0, 1]."""
        check_images(x)
        if self.crop:
            x = random_resized_crop(x, generator, scale=self.crop_scale, ratio=self.crop_ratio)
        if self.flip_p > 0:
            x = horizontal_flip(x, generator, p=self.flip_p)
        b, c, s, h = (m * self.strength for m in self.jitter)
        x = color_jitter(x, generator, brightness=b, contrast=c, saturation=s, hue=min(h, 0.5), p=self.jitter_p)
        return random_grayscale(x, generator, p=self.grayscale_p)


def two_views(x: torch.Tensor, generator: torch.Generator | None = None,
              augment: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently distorted views (v1, v2) of the batch ``x`` (each (N, C, H, W), in [0, 1]).

    ``augment`` defaults to ``SimCLRAugment()``; any callable ``(x, generator) -> x'`` works.
    """
    check_images(x)
    aug = augment if augment is not None else SimCLRAugment()
    return aug(x, generator), aug(x, generator)
