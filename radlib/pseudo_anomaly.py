"""Pseudo-anomalies ("hard" transforms) and the K-chunk :class:`Policy` that feeds COBRA's K-way head.

All transforms take a float batch ``x`` of shape (N, C, H, W) with values in [0, 1] and return a tensor of the
same shape, dtype and device, values in [0, 1]. They are fully batched (no Python loop over samples; loops
over the 4 rotation values are the only loops) and draw **per-sample** random parameters from an explicit
``torch.Generator`` (CPU or ``x``'s device; parameters are drawn on the generator's device and moved).

Transforms (registry names in quotes, see :data:`TRANSFORMS`):

- ``"identity"``, ``"rot90"``, ``"rot180"``, ``"rot270"``: :func:`rotate` (exact ``torch.rot90``, counter-
  clockwise, dims (H, W)).
- ``"cutperm"``: :func:`cut_permute` with a random non-identity permutation of the 2x2 quadrants (the
  official code uses CSI's 4 half-swaps; radlib uses all 23 non-identity quadrant permutations).
- ``"cutpaste"`` / ``"scar"``: :func:`cutpaste`, following the official COBRA code (``CutPasteLayer``).
- ``"cutout"``: :func:`cutout` (black rectangle, as the official ``apply_cutout``).
- ``"elastic"``: :func:`elastic` (the field torchvision's ``ElasticTransform(200, 7)`` draws).

Official mix (design notes): CIFAR-like data use K=4 rotations; MVTec-like data use K=2 with CutPaste.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .augment import (bernoulli, check_images, color_jitter, rand, randint, random_grayscale, rgb_to_grayscale,
                      uniform)

__all__ = [
    "PERMUTATIONS",
    "INVERSE_PERMUTATION",
    "rotate",
    "cut_permute",
    "cutpaste",
    "cutout",
    "elastic",
    "gaussian_blur",
    "TRANSFORMS",
    "available_transforms",
    "apply_transform",
    "Policy",
    "ROTATION_POLICY",
    "CUTPASTE_POLICY",
    "CUTPASTE_UNION_POLICY",
    "policy_for",
    "GaussianFilter",
    "filter_pseudo_anomalies",
]

Generator = torch.Generator | None

#: (24, 4) int64: every permutation of the 4 quadrants (0 = top-left, 1 = top-right, 2 = bottom-left,
#: 3 = bottom-right). Row 0 is the identity. Output quadrant j shows input quadrant ``PERMUTATIONS[p, j]``.
PERMUTATIONS = torch.tensor(list(itertools.permutations(range(4))), dtype=torch.long)
#: (24,) int64: ``INVERSE_PERMUTATION[p]`` is the index of the permutation that undoes permutation p.
INVERSE_PERMUTATION = torch.tensor(
    [PERMUTATIONS.tolist().index(torch.argsort(row).tolist()) for row in PERMUTATIONS], dtype=torch.long)

_REF_SIZE = 224.0  # resolution at which the official pixel settings are stated


def _scale(x: torch.Tensor) -> float:
    """Image size relative to the official 224 px (min of H and W)."""
    return min(x.shape[-2], x.shape[-1]) / _REF_SIZE


def _pixel_centres(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous pixel-centre coordinates (1, H, W) each: x = col + 0.5, y = row + 0.5 (image spans [0, W])."""
    ys = torch.arange(h, device=device, dtype=torch.float32).add_(0.5).view(1, h, 1).expand(1, h, w)
    xs = torch.arange(w, device=device, dtype=torch.float32).add_(0.5).view(1, 1, w).expand(1, h, w)
    return xs, ys


def _sample(src: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Bilinear read of ``src`` (N, C, H, W) at continuous pixel coordinates qx, qy (N, H, W)."""
    h, w = src.shape[-2:]
    grid = torch.stack((qx / w * 2 - 1, qy / h * 2 - 1), dim=-1).to(src.dtype)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False)


# --------------------------------------------------------------------------------------------- exact ones
def rotate(x: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """Rotate by ``k`` quarter turns counter-clockwise (``torch.rot90(x, k, dims=(2, 3))``), exactly.

    Args:
        x: float (N, C, H, W). Odd ``k`` needs H == W (the shape is kept); a tensor ``k`` always needs H == W.
        k: an int for the whole batch, or an integer tensor (N,) with one count per sample (taken mod 4).
    """
    check_images(x)
    h, w = x.shape[-2:]
    if isinstance(k, torch.Tensor):
        if k.shape != (x.shape[0],) or k.is_floating_point() or k.dtype == torch.bool:
            raise ValueError(f"k must be an int or an integer tensor of shape ({x.shape[0]},), "
                             f"got {k.dtype} {tuple(k.shape)}")
        if h != w:
            raise ValueError(f"per-sample rotation needs square images, got H={h}, W={w}")
        kk = torch.remainder(k.to(x.device), 4).view(-1, 1, 1, 1)
        out = x
        for r in (1, 2, 3):  # loop over the rotation values, not the samples
            out = torch.where(kk == r, torch.rot90(x, r, dims=(2, 3)), out)
        return out
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int or an integer tensor, got {type(k).__name__}")
    if k % 2 == 1 and h != w:
        raise ValueError(f"an odd number of quarter turns needs square images, got H={h}, W={w}")
    return torch.rot90(x, k % 4, dims=(2, 3))


def cut_permute(x: torch.Tensor, perm_index: int | torch.Tensor) -> torch.Tensor:
    """Permute the 2x2 quadrants of each image by ``PERMUTATIONS[perm_index]``, exactly.

    Quadrants are (H//2, W//2) blocks at the four corners. With an odd H (or W) the middle row (or column)
    is not part of any quadrant and stays in place, so every quadrant has the same size and the permutation
    is exact. ``perm_index`` is an int in [0, 24) or an integer tensor (N,) (index 0 = identity);
    :data:`INVERSE_PERMUTATION` gives the index that undoes it.
    """
    check_images(x)
    n, _, h, w = x.shape
    if isinstance(perm_index, torch.Tensor):
        if perm_index.shape != (n,) or perm_index.is_floating_point() or perm_index.dtype == torch.bool:
            raise ValueError(f"perm_index must be an int or an integer tensor of shape ({n},), "
                             f"got {perm_index.dtype} {tuple(perm_index.shape)}")
        idx = PERMUTATIONS.to(x.device)[perm_index.to(x.device)]
    else:
        if isinstance(perm_index, bool) or not isinstance(perm_index, int):
            raise TypeError(f"perm_index must be an int or an integer tensor, got {type(perm_index).__name__}")
        if not 0 <= perm_index < len(PERMUTATIONS):
            raise ValueError(f"perm_index must be in [0, {len(PERMUTATIONS)}), got {perm_index}")
        idx = PERMUTATIONS[perm_index].to(x.device).expand(n, 4)
    qh, qw = h // 2, w // 2
    if qh == 0 or qw == 0:
        raise ValueError(f"cut_permute needs H, W >= 2, got {(h, w)}")
    rows = (slice(0, qh), slice(0, qh), slice(h - qh, h), slice(h - qh, h))
    cols = (slice(0, qw), slice(w - qw, w), slice(0, qw), slice(w - qw, w))
    quads = torch.stack([x[:, :, r, c] for r, c in zip(rows, cols)], dim=1)  # (N, 4, C, qh, qw)
    moved = quads[torch.arange(n, device=x.device).unsqueeze(1), idx]       # (N, 4, C, qh, qw)
    out = x.clone()
    for j, (r, c) in enumerate(zip(rows, cols)):  # 4 quadrants, not samples
        out[:, :, r, c] = moved[:, j]
    return out


# ------------------------------------------------------------------------------------------- blur helper
def gaussian_blur(x: torch.Tensor, sigma: float | torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding; ``sigma`` a float or a per-sample tensor (N,) in pixels.

    Kernel taps: 2 * radius + 1 (radius clamped to H-1, W-1 as reflect padding needs). float (N, C, H, W).
    """
    n, c, h, w = x.shape
    radius = int(max(0, min(radius, h - 1, w - 1)))
    if radius == 0:
        return x
    sig = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).clamp_min(1e-3).reshape(-1, 1)
    sig = sig.expand(n, 1)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32).view(1, -1)
    k = torch.exp(-0.5 * (t / sig) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).to(x.dtype)           # (N, taps)
    k = k.repeat_interleave(c, dim=0)                           # (N*C, taps)
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k.view(n * c, 1, -1, 1), groups=n * c)
    return y.reshape(n, c, h, w)


# ---------------------------------------------------------------------------------------------- cutpaste
def _box_means(grey: torch.Tensor, left: torch.Tensor, top: torch.Tensor, bw: torch.Tensor,
               bh: torch.Tensor) -> torch.Tensor:
    """Mean of ``grey`` (N, 1, H, W) over integer boxes (N, M) given by left/top/width/height (via an integral
    image, all boxes at once)."""
    n, _, h, w = grey.shape
    ii = F.pad(grey[:, 0].cumsum(1).cumsum(2), (1, 0, 1, 0))     # (N, H+1, W+1)
    flat = ii.reshape(n, -1)
    x0 = left.clamp(0, w)
    y0 = top.clamp(0, h)
    x1 = (left + bw).clamp(0, w)
    y1 = (top + bh).clamp(0, h)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return flat.gather(1, yy * (w + 1) + xx)

    total = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)
    area = ((x1 - x0) * (y1 - y0)).clamp_min(1)
    return total / area


def cutpaste(x: torch.Tensor, generator: Generator = None, variant: str = "normal",
             return_mask: bool = False, alter: bool = True, placement: str = "intensity"
             ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """CutPaste: copy a patch of each image, alter it and paste it at another random place in the same image.

    ``variant="normal"`` (CutPaste paper / official ``CutPasteNormal``): an axis-aligned rectangle of area
    U(0.02, 0.15) x H x W and aspect ratio w/h log-uniform in (0.3, 1/0.3), rounded to whole pixels; source
    and destination corners are uniform integer positions inside the image (the copy is exact); the patch is
    colour-jittered with (0.1, 0.1, 0.1, 0.1) as in the official ``CutPasteNormal``.

    ``variant="scar"`` (official COBRA ``CutPasteLayer.scar``): a thin rectangle of width U(7, 40) px and
    height U(10, 40) px at 224 px (scaled by min(H, W) / 224, at least 1 px), rotated by U(0, 360) degrees;
    the patch is colour-jittered (0.8, 0.8, 0.8, 0.2), made grey with p=0.1, Gaussian-blurred (sigma
    U(0.1, 5) px at 224 px, scaled), mirrored with p=0.5, and replaced by black with p=0.15. The destination is
    the first of 20 random positions whose mean grey level under the (unrotated) rectangle lies in
    (0.15, 0.8) (else the 20th), as the official rejection loop does. Differences from the official code:
    the patch is rotated about its own centre (the official code rotates the whole canvas about the *image*
    centre, which moves the patch away from the checked position), and jitter contrast uses the patch's own
    mean grey level (as jittering the cut-out patch does).

    Args:
        x: float (N, C, H, W) in [0, 1], C in {1, 3} (1 channel: brightness/contrast jitter only).
        generator: torch.Generator (CPU or x's device) or None for the global RNG.
        variant: "normal" or "scar".
        return_mask: also return the bool (N, 1, H, W) mask of the pasted region; pixels outside it are
            unchanged (bit-exact).
        alter: False skips the patch alterations (jitter, grey, blur, mirror, black) and pastes a plain copy
            (for teaching and tests; the geometry and its random draws are the same).
        placement: ``"intensity"`` (training; official) picks the scar's destination by the grey-level test
            above, which reads the input; ``"random"`` takes the first random candidate, so the destination
            depends on the generator only. Scores use ``"random"`` (:meth:`Policy.for_scoring`): with the test,
            an attack that changes the grey level under a candidate box makes the paste jump elsewhere, a
            discontinuity in the score that gradients cannot see (radlib's correction; the draws are the same
            in both modes). Ignored for ``variant="normal"``, whose destination is always random.

    Returns:
        float (N, C, H, W) in [0, 1] [, bool mask (N, 1, H, W)].
    """
    check_images(x)
    if variant not in ("normal", "scar"):
        raise ValueError(f"variant must be 'normal' or 'scar', got {variant!r}")
    if placement not in ("intensity", "random"):
        raise ValueError(f"placement must be 'intensity' or 'random', got {placement!r}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"cutpaste needs 1 or 3 channels, got {x.shape[1]}")
    n, _, h, w = x.shape
    dev = x.device
    px, py = _pixel_centres(h, w, dev)
    if variant == "normal":
        area = uniform((n,), 0.02, 0.15, generator, dev) * (h * w)
        aspect = torch.exp(uniform((n,), math.log(0.3), -math.log(0.3), generator, dev))
        pw = torch.sqrt(area * aspect).round().clamp(1, w)
        ph = torch.sqrt(area / aspect).round().clamp(1, h)
        u = rand((n, 4), generator, dev)
        sx = torch.floor(u[:, 0] * (w - pw + 1)) + pw / 2       # integer corners -> exact pixel copy
        sy = torch.floor(u[:, 1] * (h - ph + 1)) + ph / 2
        dx = torch.floor(u[:, 2] * (w - pw + 1)) + pw / 2
        dy = torch.floor(u[:, 3] * (h - ph + 1)) + ph / 2
        cos, sin = torch.ones_like(pw), torch.zeros_like(pw)
        mirror = torch.ones_like(pw)
        src_region = ((px - sx.view(-1, 1, 1)).abs() < pw.view(-1, 1, 1) / 2) & \
                     ((py - sy.view(-1, 1, 1)).abs() < ph.view(-1, 1, 1) / 2)
        src = color_jitter(x, generator, 0.1, 0.1, 0.1, 0.1, p=1.0, weight=src_region.unsqueeze(1)) if alter else x
    else:
        s = _scale(x)
        pw = (uniform((n,), 7.0, 40.0, generator, dev) * s).clamp(1, w)
        ph = (uniform((n,), 10.0, 40.0, generator, dev) * s).clamp(1, h)
        angle = uniform((n,), 0.0, 2 * math.pi, generator, dev)
        cos, sin = torch.cos(angle), torch.sin(angle)
        mirror = torch.where(bernoulli(n, 0.5, generator, dev), -1.0, 1.0)
        u = rand((n, 2), generator, dev)
        sx = pw / 2 + u[:, 0] * (w - pw)
        sy = ph / 2 + u[:, 1] * (h - ph)
        # destination: half-extent of the rotated rectangle's bounding box keeps the patch inside the image
        bx = ((cos.abs() * pw + sin.abs() * ph) / 2).clamp(max=w / 2)
        by = ((sin.abs() * pw + cos.abs() * ph) / 2).clamp(max=h / 2)
        m = 20
        v = rand((n, m, 2), generator, dev)
        cand_x = bx.unsqueeze(1) + v[..., 0] * (w - 2 * bx).unsqueeze(1)    # (N, M) centres
        cand_y = by.unsqueeze(1) + v[..., 1] * (h - 2 * by).unsqueeze(1)
        bw = pw.round().clamp_min(1).long().unsqueeze(1).expand(n, m)
        bh = ph.round().clamp_min(1).long().unsqueeze(1).expand(n, m)
        if placement == "intensity":
            means = _box_means(rgb_to_grayscale(x).float(), (cand_x - bw / 2).round().long(),
                               (cand_y - bh / 2).round().long(), bw, bh)
            ok = (means > 0.15) & (means < 0.8)
            pick = torch.where(ok.any(1), ok.float().argmax(1), torch.full_like(ok[:, 0], m - 1, dtype=torch.long))
        else:
            pick = torch.zeros(n, dtype=torch.long, device=dev)
        dx = cand_x.gather(1, pick.unsqueeze(1)).squeeze(1)
        dy = cand_y.gather(1, pick.unsqueeze(1)).squeeze(1)
        src_region = ((px - sx.view(-1, 1, 1)).abs() < pw.view(-1, 1, 1) / 2) & \
                     ((py - sy.view(-1, 1, 1)).abs() < ph.view(-1, 1, 1) / 2)
        if alter:
            src = color_jitter(x, generator, 0.8, 0.8, 0.8, 0.2, p=1.0, weight=src_region.unsqueeze(1))
            src = random_grayscale(src, generator, p=0.1)
            sigma = uniform((n,), 0.1, 5.0, generator, dev) * s
            src = gaussian_blur(src, sigma.clamp_min(0.1), radius=max(1, round(4 * s)))
            black = bernoulli(n, 0.15, generator, dev)
            src = torch.where(black.view(-1, 1, 1, 1), torch.zeros_like(src), src)
        else:
            src, mirror = x, torch.ones_like(mirror)
    # local patch coordinates of every output pixel: u = R(-angle) (p - d)
    ox = px - dx.view(-1, 1, 1)
    oy = py - dy.view(-1, 1, 1)
    c_, s_ = cos.view(-1, 1, 1), sin.view(-1, 1, 1)
    ux = c_ * ox + s_ * oy
    uy = -s_ * ox + c_ * oy
    mask = (ux.abs() < pw.view(-1, 1, 1) / 2) & (uy.abs() < ph.view(-1, 1, 1) / 2)   # (N, H, W)
    patch = _sample(src, sx.view(-1, 1, 1) + mirror.view(-1, 1, 1) * ux, sy.view(-1, 1, 1) + uy)
    mask = mask.unsqueeze(1)
    out = torch.where(mask, patch.clamp(0.0, 1.0), x)
    return (out, mask) if return_mask else out


def cutout(x: torch.Tensor, generator: Generator = None,
           return_mask: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Fill one rectangle per image with **black** (0), as the official ``apply_cutout``.

    Rectangle height is an integer in [H//6, H//4] and width in [W//6, W//4] (at least 1 px), at a uniform
    integer position fully inside the image. Returns float (N, C, H, W) [, bool mask (N, 1, H, W)].
    """
    check_images(x)
    n, _, h, w = x.shape
    dev = x.device
    lo_h, hi_h = max(1, h // 6), max(1, h // 4)
    lo_w, hi_w = max(1, w // 6), max(1, w // 4)
    u = rand((n, 4), generator, dev)
    ch = lo_h + torch.floor(u[:, 0] * (hi_h - lo_h + 1)).clamp(max=hi_h - lo_h)
    cw = lo_w + torch.floor(u[:, 1] * (hi_w - lo_w + 1)).clamp(max=hi_w - lo_w)
    top = torch.floor(u[:, 2] * (h - ch + 1)).clamp(max=h - ch)
    left = torch.floor(u[:, 3] * (w - cw + 1)).clamp(max=w - cw)
    rows = torch.arange(h, device=dev, dtype=torch.float32).view(1, h, 1)
    cols = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, w)
    mask = ((rows >= top.view(-1, 1, 1)) & (rows < (top + ch).view(-1, 1, 1))
            & (cols >= left.view(-1, 1, 1)) & (cols < (left + cw).view(-1, 1, 1))).unsqueeze(1)
    out = torch.where(mask, torch.zeros((), dtype=x.dtype, device=dev), x)
    return (out, mask) if return_mask else out


def elastic(x: torch.Tensor, generator: Generator = None, alpha: float | None = None,
            sigma: float | None = None) -> torch.Tensor:
    """Elastic deformation: a per-sample random displacement field, Gaussian-smoothed, applied by grid_sample.

    The field is the one torchvision's ``ElasticTransform`` (used by the official code) draws: U(-1, 1) noise
    per pixel and axis, blurred with a Gaussian of ``sigma`` px (kernel int(8 sigma + 1), reflect padding),
    giving a displacement of ``alpha / 2 * noise`` pixels. Defaults are the official alpha=200, sigma=7 at
    224 px; at another size s = min(H, W) / 224 they become sigma = 7 s and alpha = 200 s^2. The smoothed
    noise's amplitude falls as 1 / sigma, so the displacement grows as alpha / sigma = s * (200 / 7): the
    warp is the *same picture* at every resolution (scaling alpha linearly instead would keep the shift at
    ~2.3 px while the smoothing shrinks, turning the warp into pixel noise at 32 px). Out-of-image reads use the border value (torchvision fills black, which would give the
    classifier a trivial dark-edge cue). alpha=0 is the identity (up to float rounding).

    Returns float (N, C, H, W) in [0, 1].
    """
    check_images(x)
    s = _scale(x)
    alpha = 200.0 * s * s if alpha is None else float(alpha)
    sigma = 7.0 * s if sigma is None else float(sigma)
    if alpha < 0 or sigma < 0:
        raise ValueError(f"alpha and sigma must be >= 0, got alpha={alpha}, sigma={sigma}")
    n, _, h, w = x.shape
    dev = x.device
    noise = rand((n, 2, h, w), generator, dev) * 2 - 1
    if sigma > 0:
        taps = int(8 * sigma + 1)
        taps += 1 - taps % 2
        noise = gaussian_blur(noise, sigma, radius=taps // 2)
    disp = noise * (alpha / 2)
    px, py = _pixel_centres(h, w, dev)
    out = _sample(x, px + disp[:, 0], py + disp[:, 1], padding="border")
    return out.clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------------------------- registry
def _random_cutperm(x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """A random non-identity quadrant permutation per sample."""
    return cut_permute(x, 1 + randint((x.shape[0],), len(PERMUTATIONS) - 1, generator, x.device))


def _identity(x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    return x


TRANSFORMS: dict[str, Callable[[torch.Tensor, Generator], torch.Tensor]] = {
    "identity": _identity,
    "rot90": lambda x, g=None: rotate(x, 1),
    "rot180": lambda x, g=None: rotate(x, 2),
    "rot270": lambda x, g=None: rotate(x, 3),
    "cutperm": _random_cutperm,
    "cutpaste": lambda x, g=None: cutpaste(x, g, variant="normal"),
    "scar": lambda x, g=None: cutpaste(x, g, variant="scar"),
    "cutout": lambda x, g=None: cutout(x, g),
    "elastic": lambda x, g=None: elastic(x, g),
}
"""Named pseudo-anomaly transforms: ``fn(x, generator) -> x'`` (float (N, C, H, W) in [0, 1])."""


def available_transforms() -> tuple[str, ...]:
    """Names accepted by :func:`apply_transform` and :class:`Policy`."""
    return tuple(TRANSFORMS)


def _check_name(name: str) -> None:
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")


def apply_transform(name: str, x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """Apply the registered transform ``name`` to the batch ``x`` (float (N, C, H, W) in [0, 1])."""
    _check_name(name)
    check_images(x)
    return TRANSFORMS[name](x, generator)


# ------------------------------------------------------------------------------------------------ policy
Chunk = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Policy:
    """K chunks of pseudo-anomaly transforms; chunk k is the K-way head's class k.

    ``chunks[0]`` is always ``(("identity", 1.0),)``. Chunk k >= 1 is one transform ``(("rot90", 1.0),)`` or a
    *mixture* ``(("cutpaste", 0.5), ("scar", 0.5))`` from which every sample draws its own transform.

    **Chunk k always holds transform k, so the K-way labels are always true.** This corrects the official
    code, which draws a random transform per batch item from a mixture and then labels it with the rotation
    index k — with K=4 and non-rotation transforms in the mix, its labels do not match the images.
    """

    chunks: tuple[Chunk, ...]
    #: ``"intensity"`` (training) or ``"random"`` (scoring): the scar's destination rule, see :func:`cutpaste`.
    placement: str = "intensity"

    def __post_init__(self) -> None:
        if self.placement not in ("intensity", "random"):
            raise ValueError(f"placement must be 'intensity' or 'random', got {self.placement!r}")
        try:
            chunks = tuple(tuple((str(nm), float(p)) for nm, p in chunk) for chunk in self.chunks)
        except (TypeError, ValueError) as err:
            raise TypeError(f"chunks must be a sequence of sequences of (name, probability) pairs: {err}") from None
        if len(chunks) < 2:
            raise ValueError(f"a policy needs K >= 2 chunks (identity + at least one transform), got {len(chunks)}")
        if chunks[0] != (("identity", 1.0),):
            raise ValueError(f"chunk 0 must be (('identity', 1.0),), got {chunks[0]}")
        for k, chunk in enumerate(chunks):
            if not chunk:
                raise ValueError(f"chunk {k} is empty")
            for nm, p in chunk:
                _check_name(nm)
                if not p > 0:
                    raise ValueError(f"chunk {k}: probability of {nm!r} must be > 0, got {p}")
            total = sum(p for _, p in chunk)
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"chunk {k}: probabilities must sum to 1, got {total}")
        object.__setattr__(self, "chunks", chunks)

    @property
    def K(self) -> int:  # noqa: N802 (the paper's symbol)
        """Number of chunks = classes of the K-way head."""
        return len(self.chunks)

    def describe(self) -> str:
        """One line per chunk, e.g. ``chunk 1: cutpaste 50% | scar 50%``."""
        lines = [f"Policy with K={self.K} chunks (label k = chunk k):"]
        for k, chunk in enumerate(self.chunks):
            lines.append(f"  chunk {k}: " + " | ".join(
                nm if len(chunk) == 1 else f"{nm} {100 * p:.0f}%" for nm, p in chunk))
        return "\n".join(lines)

    def for_scoring(self) -> "Policy":
        """This policy with input-independent scar placement (``placement="random"``), for anomaly scores: the
        score then has no branch that depends on the (attacked) input. Same transforms, same random draws."""
        return dataclasses.replace(self, placement="random")

    def _run(self, name: str, x: torch.Tensor, generator: Generator) -> torch.Tensor:
        if name == "scar":
            return cutpaste(x, generator, variant="scar", placement=self.placement)
        return TRANSFORMS[name](x, generator)

    def apply_chunk(self, k: int, x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
        """Chunk k's transform applied to every image of ``x`` (mixtures: one draw per sample).

        Each transform of a mixture is run on the whole batch and the per-sample choice selects rows
        (a handful of transforms, no per-sample loop, no host sync).
        """
        check_images(x)
        chunk = self.chunks[k]
        if len(chunk) == 1:
            return self._run(chunk[0][0], x, generator)
        probs = torch.tensor([p for _, p in chunk], device=x.device)
        edges = probs.cumsum(0)[:-1]
        choice = torch.bucketize(rand((x.shape[0],), generator, x.device), edges, right=True)
        out = x
        for j, (nm, _) in enumerate(chunk):
            out = torch.where((choice == j).view(-1, 1, 1, 1), self._run(nm, x, generator), out)
        return out

    def expand(self, x: torch.Tensor, generator: Generator = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, H, W) -> (K*N, C, H, W) chunk-major (row k*N + i = transform k of image i) and int64 labels
        (K*N,) with value k on chunk k. Same dtype/device as x; values in [0, 1]."""
        check_images(x)
        n = x.shape[0]
        out = torch.cat([x] + [self.apply_chunk(k, x, generator) for k in range(1, self.K)], dim=0)
        labels = torch.arange(self.K, device=x.device).repeat_interleave(n)
        return out, labels


#: K=4 rotations 0/90/180/270 (official setting for CIFAR-like, low-resolution natural images).
ROTATION_POLICY = Policy(((("identity", 1.0),), (("rot90", 1.0),), (("rot180", 1.0),), (("rot270", 1.0),)))
#: K=2, chunk 1 = CutPaste scar 100%: what the official COBRA code trains for MVTec-like data (its live path,
#: ``CutPasteLayer.forward``, always pastes a scar; ``CutPasteUnion`` is imported but never used).
CUTPASTE_POLICY = Policy(((("identity", 1.0),), (("scar", 1.0),)))
#: K=2, chunk 1 = CutPaste normal 50% / scar 50% (the CutPaste paper's union, the official ``CutPasteUnion``).
CUTPASTE_UNION_POLICY = Policy(((("identity", 1.0),), (("cutpaste", 0.5), ("scar", 0.5))))

_POLICIES: dict[str, Policy] = {
    **{name: ROTATION_POLICY for name in ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn")},
    **{name: CUTPASTE_POLICY for name in ("surfaces", "folder", "casting", "mvtec_ad", "visa", "mtd")},
}


def policy_for(dataset: str) -> Policy:
    """The default policy for a radlib dataset name.

    Natural / low-resolution images (digits, mnist, fashion_mnist, cifar10, cifar100, svhn): K=4 rotations.
    Industrial images (surfaces, folder, casting, mvtec_ad, visa, mtd): K=2 with the CutPaste scar, as the
    official code trains (:data:`CUTPASTE_UNION_POLICY` is the 50/50 normal/scar mix of the CutPaste paper) —
    rotation is a poor pseudo-anomaly for rotation-invariant textures and top-down parts (a rotated normal
    texture is still normal), so it would teach the head a spurious task. ``surfaces`` (synthetic textures)
    is treated as industrial for that reason. Cutout/elastic are available for custom policies but are not in
    the defaults, which follow the official MVTec configuration.
    """
    key = str(dataset).lower()
    if key not in _POLICIES:
        raise ValueError(f"no pseudo-anomaly policy for dataset {dataset!r}; known: {', '.join(sorted(_POLICIES))}")
    return _POLICIES[key]


# ---------------------------------------------------------------------------------- accept/reject filter
def _ledoit_wolf(xc: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Ledoit-Wolf shrunk covariance of centred float64 data (N, D) -> (cov (D, D), shrinkage in [0, 1])."""
    n, d = xc.shape
    emp = xc.T @ xc / n
    mu = torch.trace(emp) / d
    x2 = xc ** 2
    beta_ = (x2.T @ x2).sum()
    delta_ = (emp ** 2).sum()
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2 * mu * torch.trace(emp) + d * mu ** 2) / d
    beta = torch.minimum(beta, delta)
    shrink = 0.0 if float(delta) == 0.0 else float(beta / delta)
    eye = torch.eye(d, dtype=xc.dtype, device=xc.device)
    return (1 - shrink) * emp + shrink * mu * eye, shrink


@dataclass(frozen=True, eq=False)
class GaussianFilter:
    """A Gaussian fitted to normal-train features; pseudo-anomalies that look normal under it are rejected.

    Attributes (float64, on the features' device): ``mean`` (D,), ``precision`` (D, D) inverse of the shrunk
    covariance, ``train_distances`` (N,) Mahalanobis distances of the training features, ``shrinkage``.
    """

    mean: torch.Tensor
    precision: torch.Tensor
    train_distances: torch.Tensor
    shrinkage: float

    @classmethod
    def fit(cls, features: torch.Tensor, shrinkage: float | None = None) -> "GaussianFilter":
        """Fit on normal-train features (N, D), N >= 2. ``shrinkage`` in [0, 1] towards a scaled identity;
        None = Ledoit-Wolf estimate (as sklearn.covariance.LedoitWolf)."""
        if not isinstance(features, torch.Tensor) or features.ndim != 2:
            raise ValueError(f"features must be a (N, D) tensor, got {getattr(features, 'shape', type(features))}")
        if features.shape[0] < 2:
            raise ValueError(f"need at least 2 feature rows to fit, got {features.shape[0]}")
        f = features.detach().double()
        mean = f.mean(0)
        xc = f - mean
        if shrinkage is None:
            cov, shrink = _ledoit_wolf(xc)
        else:
            if not 0.0 <= shrinkage <= 1.0:
                raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
            n, d = xc.shape
            emp = xc.T @ xc / n
            mu = torch.trace(emp) / d
            cov = (1 - shrinkage) * emp + shrinkage * mu * torch.eye(d, dtype=f.dtype, device=f.device)
            shrink = float(shrinkage)
        ridge = 1e-9 * torch.trace(cov).clamp_min(1e-12)   # keeps Cholesky alive for rank-deficient features
        cov = cov + ridge * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        precision = torch.cholesky_inverse(torch.linalg.cholesky(cov))
        obj = cls(mean, precision, torch.empty(0), shrink)
        object.__setattr__(obj, "train_distances", obj.distance(f))
        return obj

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance (M,) float64 of features (M, D) from the fitted Gaussian."""
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[1] != self.mean.shape[0]:
            raise ValueError(f"features must be (M, {self.mean.shape[0]}), got {tuple(getattr(features, 'shape', ()))}")
        xc = features.detach().to(self.mean.device, torch.float64) - self.mean
        return torch.einsum("md,de,me->m", xc, self.precision, xc).clamp_min(0).sqrt()

    def threshold(self, quantile: float = 0.95) -> torch.Tensor:
        """The ``quantile`` of the normal-train distances (0-dim float64)."""
        if not 0.0 <= quantile <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {quantile}")
        return torch.quantile(self.train_distances, quantile)

    def accept(self, features: torch.Tensor, quantile: float = 0.95) -> torch.Tensor:
        """bool (M,): True where the distance exceeds the normal-train ``quantile`` (does NOT look normal)."""
        return (self.distance(features) > self.threshold(quantile)).to(features.device)


def _features(extract: Callable[[torch.Tensor], Any], images: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    parts = []
    step = images.shape[0] if batch_size is None else int(batch_size)
    if step <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    with torch.no_grad():
        for start in range(0, images.shape[0], step):  # loop over batches, not images
            out = extract(images[start:start + step])
            out = getattr(out, "features", out)   # radlib ModelOutput -> its (N, 512) features
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"extract must return a tensor (or an object with .features), got {type(out).__name__}")
            parts.append(out.reshape(out.shape[0], -1))
    return torch.cat(parts)


def filter_pseudo_anomalies(extract: Callable[[torch.Tensor], Any], normals: torch.Tensor,
                            candidates: torch.Tensor, quantile: float = 0.95,
                            batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Optional accept/reject step: keep only the pseudo-anomalies that do not look normal.

    Why: a pseudo-anomaly that lands among the normals in feature space (a CutPaste patch of background
    pasted on background, a barely visible scar) is a *spurious* negative — contrasting it against normals
    pushes apart things that are the same, which is exactly the failure COBRA's title is about. This filter
    fits a :class:`GaussianFilter` on ``extract(normals)`` and keeps candidates whose Mahalanobis distance is
    above the normal-train ``quantile``. It is optional (the default pipeline does not use it): it costs a
    feature pass, changes the batch size, and with a weak extractor it may reject good pseudo-anomalies.
    The official code does the same with a downloaded classifier and a 1-component GMM; here ``extract`` is
    any callable images -> features (N, D): the model being trained, or a fixed random-init network (no
    downloaded weights). Put a model in ``eval()`` mode first.

    Args:
        extract: images (B, C, H, W) -> features (B, D) (or an object with ``.features``, like ModelOutput).
        normals: float (N, C, H, W) normal images; candidates: float (M, C, H, W) pseudo-anomalies.
        quantile: in [0, 1]; batch_size: feature-extraction batch size (None = all at once).

    Returns:
        (kept (M', C, H, W) = candidates[mask], mask bool (M,)).
    """
    check_images(normals, "normals")
    check_images(candidates, "candidates")
    filt = GaussianFilter.fit(_features(extract, normals, batch_size))
    mask = filt.accept(_features(extract, candidates, batch_size), quantile).to(candidates.device)
    return candidates[mask], mask
