"""The pseudo-anomaly transforms: exact rotations and quadrant permutations, CutPaste/scar, cutout, elastic.

All take a float batch (N, C, H, W) in [0, 1] and return the same shape, dtype and device, values in [0, 1],
fully batched, with per-sample random parameters from an explicit ``torch.Generator``. The registry
:data:`TRANSFORMS` names them for the :class:`~radlib.pseudo_anomaly.Policy`.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..augment import (bernoulli, check_images, color_jitter, rand, randint, random_grayscale, rgb_to_grayscale,
                      uniform)

__all__ = ["PERMUTATIONS", "INVERSE_PERMUTATION", "rotate", "cut_permute", "cutpaste", "cutout", "elastic",
           "gaussian_blur", "TRANSFORMS", "available_transforms", "apply_transform", "Generator"]


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


def _rotation(k: int) -> Callable[[torch.Tensor, Generator], torch.Tensor]:
    def rot(x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
        return rotate(x, k)
    return rot


def _cutpaste(variant: str) -> Callable[[torch.Tensor, Generator], torch.Tensor]:
    def paste(x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
        out = cutpaste(x, generator, variant=variant)
        assert isinstance(out, torch.Tensor)  # no mask asked for
        return out
    return paste


def _cutout(x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    out = cutout(x, generator)
    assert isinstance(out, torch.Tensor)  # no mask asked for
    return out


TRANSFORMS: dict[str, Callable[[torch.Tensor, Generator], torch.Tensor]] = {
    "identity": _identity,
    "rot90": _rotation(1),
    "rot180": _rotation(2),
    "rot270": _rotation(3),
    "cutperm": _random_cutperm,
    "cutpaste": _cutpaste("normal"),
    "scar": _cutpaste("scar"),
    "cutout": _cutout,
    "elastic": elastic,
}
"""Named pseudo-anomaly transforms: ``fn(x, generator) -> x'`` (float (N, C, H, W) in [0, 1])."""


def available_transforms() -> tuple[str, ...]:
    """Names accepted by :func:`apply_transform` and :class:`Policy`."""
    return tuple(TRANSFORMS)


def check_transform_name(name: str) -> None:
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")


def apply_transform(name: str, x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """Apply the registered transform ``name`` to the batch ``x`` (float (N, C, H, W) in [0, 1])."""
    check_transform_name(name)
    check_images(x)
    return TRANSFORMS[name](x, generator)
