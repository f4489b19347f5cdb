"""The ``surfaces`` textures (fabric, metal, wood, tiles, leather), each rendered for a whole batch at once
from vectorised coordinate grids, and the noise helpers they and the defects share.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["TEXTURES"]


# ----------------------------------------------------------------------------------------------- helpers
def uniform(g: torch.Generator, n: int, lo: float, hi: float, *shape: int) -> torch.Tensor:
    """Uniform float32 in [lo, hi), shape (n, *shape)."""
    return torch.rand((n, *shape), generator=g) * (hi - lo) + lo


def pixel_grid01(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised pixel-centre coordinates x (1, 1, S) and y (1, S, 1) in (0, 1)."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    return c.view(1, 1, size), c.view(1, size, 1)


def value_noise(g: torch.Generator, n: int, size: int, cells: int) -> torch.Tensor:
    """Smooth value noise (n, size, size), roughly in [-1, 1], with ``cells`` random knots per side."""
    cells = max(2, min(cells, size))
    knots = torch.rand((n, 1, cells + 1, cells + 1), generator=g) * 2 - 1
    return F.interpolate(knots, size=(size, size), mode="bicubic", align_corners=True)[:, 0]


def _fbm(g: torch.Generator, n: int, size: int, cells: int, octaves: int) -> torch.Tensor:
    """Fractal (multi-octave) value noise (n, size, size), roughly in [-1, 1]."""
    out = torch.zeros(n, size, size)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += amp * value_noise(g, n, size, cells * 2 ** k)
        total += amp
        amp *= 0.5
    return out / total


def value_noise1d(g: torch.Generator, t: torch.Tensor, length: int, smooth: int = 1) -> torch.Tensor:
    """Periodic 1-D value noise looked up at ``t`` (n, H, W) (units: table cells); output in about [-1, 1]."""
    n = t.shape[0]
    table = torch.rand((n, 1, length), generator=g) * 2 - 1
    if smooth > 1:
        k = torch.ones(1, 1, smooth) / smooth
        table = F.conv1d(F.pad(table, (smooth // 2, (smooth - 1) // 2), mode="circular"), k)
        table = table / table.std(dim=-1, keepdim=True).clamp_min(1e-6) * 0.5
    table = table[:, 0]
    flat = t.reshape(n, -1)
    i0 = torch.floor(flat)
    frac = flat - i0
    frac = frac * frac * (3 - 2 * frac)
    i0 = i0.long().remainder(length)
    i1 = (i0 + 1).remainder(length)
    v = torch.gather(table, 1, i0) * (1 - frac) + torch.gather(table, 1, i1) * frac
    return v.view_as(t)


def rotate_coords(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate centred coordinates by per-image angles theta (n,) -> u, v (n, H, W)."""
    c, s = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    xc, yc = x - 0.5, y - 0.5
    return c * xc + s * yc, -s * xc + c * yc


def smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0, 1)
    return t * t * (3 - 2 * t)


def _colourise(v: torch.Tensor, dark: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Map intensity v (n, H, W) in ~[0, 1] to RGB (n, 3, H, W) between per-image colours (n, 3)."""
    v = v.unsqueeze(1)
    return dark.view(-1, 3, 1, 1) + (light - dark).view(-1, 3, 1, 1) * v


def _jitter_colour(g: torch.Generator, n: int, base: Sequence[float], amount: float) -> torch.Tensor:
    """Base RGB colour (n, 3) with a shared brightness jitter and a smaller per-channel jitter."""
    b = torch.tensor(base, dtype=torch.float32).view(1, 3)
    return (b * (1 + uniform(g, n, -amount, amount, 1)) + uniform(g, n, -amount / 2, amount / 2, 3) * b).clamp(0, 1)


# ---------------------------------------------------------------------------------------------- textures
def _fabric(g: torch.Generator, n: int, s: int) -> torch.Tensor:
    x, y = pixel_grid01(s)
    theta = uniform(g, n, -0.12, 0.12)
    u, v = rotate_coords(x, y, theta)
    pitch = min(16.0, s / 3.5) * uniform(g, n, 0.9, 1.1).view(-1, 1, 1)  # threads per image side
    a = u * pitch + uniform(g, n, 0, 2).view(-1, 1, 1) + 0.12 * value_noise(g, n, s, 4)
    b = v * pitch + uniform(g, n, 0, 2).view(-1, 1, 1) + 0.12 * value_noise(g, n, s, 4)
    fa, fb = a - torch.floor(a), b - torch.floor(b)
    across_a, across_b = torch.sin(math.pi * fa), torch.sin(math.pi * fb)
    warp_on_top = (torch.floor(a) + torch.floor(b)).remainder(2) < 1
    warp = across_a.sqrt() * (0.65 + 0.35 * across_b)
    weft = across_b.sqrt() * (0.65 + 0.35 * across_a)
    fibres = value_noise1d(g, torch.where(warp_on_top, b, a) * 6.0, 257)  # along the thread that is on top
    val = torch.where(warp_on_top, warp, weft) * (0.9 + 0.1 * fibres) + 0.06 * _fbm(g, n, s, 4, 2)
    warp_c = _jitter_colour(g, n, (0.30, 0.38, 0.55), 0.12)
    weft_c = warp_c * uniform(g, n, 0.85, 1.1, 1) + uniform(g, n, -0.03, 0.03, 3)
    col = torch.where(warp_on_top.unsqueeze(1), warp_c.view(-1, 3, 1, 1), weft_c.view(-1, 3, 1, 1))
    return col * (0.35 + 0.85 * val.unsqueeze(1))


def _metal(g: torch.Generator, n: int, s: int) -> torch.Tensor:
    x, y = pixel_grid01(s)
    theta = uniform(g, n, -0.08, 0.08) + (torch.rand(n, generator=g) < 0.5) * (math.pi / 2)
    u, v = rotate_coords(x, y, theta)
    fine = value_noise1d(g, v * (2.0 * s) + 0.05 * s * value_noise(g, n, s, 3), 2 * s + 1)
    broad = value_noise1d(g, v * 24.0, 24, smooth=3)
    mottling = _fbm(g, n, s, 3, 2)
    centre = uniform(g, n, -0.4, 0.4).view(-1, 1, 1)
    width = uniform(g, n, 0.15, 0.35).view(-1, 1, 1)
    highlight = torch.exp(-(((u * 0.4 + v) - centre) / width) ** 2) * uniform(g, n, 0.05, 0.2).view(-1, 1, 1)
    val = 0.55 + 0.07 * fine * (1 + 0.5 * mottling) + 0.05 * broad + 0.05 * mottling + highlight
    tint = _jitter_colour(g, n, (0.96, 0.98, 1.0), 0.08)
    return val.unsqueeze(1) * tint.view(-1, 3, 1, 1)


def _wood(g: torch.Generator, n: int, s: int) -> torch.Tensor:
    x, y = pixel_grid01(s)
    phi = uniform(g, n, 0, 2 * math.pi)
    dist = uniform(g, n, 1.2, 3.0)
    cx = (0.5 + dist * torch.cos(phi)).view(-1, 1, 1)
    cy = (0.5 + dist * torch.sin(phi)).view(-1, 1, 1)
    r = torch.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    freq = min(9.0, s / 5.0) * uniform(g, n, 0.8, 1.2).view(-1, 1, 1)
    t = r * freq + 0.35 * _fbm(g, n, s, 3, 3) * freq / 6 + uniform(g, n, 0, 1).view(-1, 1, 1)
    ring = t - torch.floor(t)
    late = smoothstep((ring - 0.55) / 0.35) * (1 - smoothstep((ring - 0.92) / 0.08))
    # fine grain: streaks along the rings (1-D noise of the ring coordinate at high frequency)
    grain = value_noise1d(g, t * 12.0, 12 * 16 + 1)
    val = 0.85 - 0.55 * late + 0.06 * grain + 0.05 * _fbm(g, n, s, 4, 2)
    light = _jitter_colour(g, n, (0.80, 0.60, 0.40), 0.12)
    dark = light * torch.tensor([0.55, 0.48, 0.40])
    return _colourise(val.clamp(0, 1), dark, light)


def _tiles(g: torch.Generator, n: int, s: int) -> torch.Tensor:
    x, y = pixel_grid01(s)
    theta = uniform(g, n, -0.04, 0.04)
    u, v = rotate_coords(x, y, theta)
    per_side = uniform(g, n, 3.2, 4.5).view(-1, 1, 1)
    a = u * per_side + uniform(g, n, 0, 1).view(-1, 1, 1)
    b = v * per_side + uniform(g, n, 0, 1).view(-1, 1, 1)
    fa, fb = a - torch.floor(a), b - torch.floor(b)
    # distance to the nearest tile edge in pixels
    period_px = s / per_side
    edge = torch.minimum(torch.minimum(fa, 1 - fa), torch.minimum(fb, 1 - fb)) * period_px
    grout_half = torch.clamp(0.05 * period_px, min=0.6)
    grout = 1 - smoothstep(edge - grout_half + 0.5)
    bevel = smoothstep(edge / (2.5 * grout_half + 1.0))
    ia = torch.floor(a).long().remainder(8)
    ib = torch.floor(b).long().remainder(8)
    shades = uniform(g, n, -0.06, 0.06, 64)
    shade = torch.gather(shades, 1, (ia * 8 + ib).reshape(n, -1)).view_as(a)
    speckle = value_noise(g, n, s, s // 2) * 0.04 + _fbm(g, n, s, 4, 2) * 0.03
    tile_val = (0.82 + shade + speckle) * (0.9 + 0.1 * bevel)
    tile_c = _jitter_colour(g, n, (0.90, 0.86, 0.78), 0.08)
    grout_c = _jitter_colour(g, n, (0.45, 0.44, 0.42), 0.1)
    tile = tile_val.unsqueeze(1) * tile_c.view(-1, 3, 1, 1)
    grout_rgb = grout_c.view(-1, 3, 1, 1) * (1 + 0.1 * speckle.unsqueeze(1))
    w = grout.unsqueeze(1)
    return tile * (1 - w) + grout_rgb * w


def _leather(g: torch.Generator, n: int, s: int) -> torch.Tensor:
    # pebbled grain: ridged noise makes crease-like valleys between pebbles
    pebbles = value_noise(g, n, s, max(4, s // 5))
    creases = 1 - _fbm(g, n, s, 5, 2).abs()
    val = 0.6 + 0.16 * pebbles + 0.18 * (creases ** 3 - 0.3) + 0.05 * _fbm(g, n, s, 2, 2)
    base = _jitter_colour(g, n, (0.66, 0.45, 0.30), 0.15)
    return val.unsqueeze(1) * base.view(-1, 3, 1, 1)


TEXTURES = {"fabric": _fabric, "metal": _metal, "wood": _wood, "tiles": _tiles, "leather": _leather}
