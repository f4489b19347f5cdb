"""The ``surfaces`` defects (scratch, crack, hole, stain, fray, contamination): each rasterised for a batch of
images of one defect type, returning the defective images and the exact masks of the changed pixels.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .surface_textures import pixel_grid01, value_noise, value_noise1d, rotate_coords, smoothstep, uniform

__all__ = ["DEFECT_FNS"]


# ----------------------------------------------------------------------------------------------- defects
def _pixel_grid(s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in pixel units: X (1, 1, S), Y (1, S, 1)."""
    c = torch.arange(s, dtype=torch.float32) + 0.5
    return c.view(1, 1, s), c.view(1, s, 1)


def polyline_distance(points: torch.Tensor, s: int) -> torch.Tensor:
    """Distance (n, S, S) in pixels from every pixel centre to a polyline; points (n, m, 2) in pixels (x, y)."""
    X, Y = _pixel_grid(s)
    best: torch.Tensor | None = None
    for j in range(points.shape[1] - 1):  # loop over segments (a handful), batched over images and pixels
        ax, ay = points[:, j, 0].view(-1, 1, 1), points[:, j, 1].view(-1, 1, 1)
        dx = (points[:, j + 1, 0] - points[:, j, 0]).view(-1, 1, 1)
        dy = (points[:, j + 1, 1] - points[:, j, 1]).view(-1, 1, 1)
        t = (((X - ax) * dx + (Y - ay) * dy) / (dx * dx + dy * dy).clamp_min(1e-6)).clamp(0, 1)
        d = torch.hypot(X - ax - t * dx, Y - ay - t * dy)
        best = d if best is None else torch.minimum(best, d)
    if best is None:
        raise ValueError(f"a polyline needs at least 2 points, got {points.shape[1]}")
    return best


def _bezier(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, m: int) -> torch.Tensor:
    """Quadratic Bezier sampled at m+1 points: (n, m+1, 2) from control points (n, 2)."""
    t = torch.linspace(0, 1, m + 1).view(1, -1, 1)
    return ((1 - t) ** 2) * p0[:, None] + 2 * (1 - t) * t * p1[:, None] + t * t * p2[:, None]


def _line_alpha(dist: torch.Tensor, half_width: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of a line of per-image half-width (n,) given distances (n, S, S)."""
    return (half_width.view(-1, 1, 1) + 0.5 - dist).clamp(0, 1)


def _scratch(img: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, s, _ = img.shape
    mid = uniform(g, n, 0.25, 0.75, 2) * s
    length = uniform(g, n, 0.3, 0.6) * s
    ang = uniform(g, n, 0, math.pi)
    d = torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    perp = torch.stack([-d[:, 1], d[:, 0]], 1)
    p0, p2 = mid - d * length[:, None] / 2, mid + d * length[:, None] / 2
    p1 = mid + perp * (uniform(g, n, -0.3, 0.3) * length)[:, None]
    dist = polyline_distance(_bezier(p0, p1, p2, 12), s)
    half = uniform(g, n, 0.3, 0.7) * max(1.0, s / 64)
    alpha = _line_alpha(dist, half)
    # intensity varies along the scratch (it fades in and out)
    alpha = alpha * (0.6 + 0.4 * (value_noise(g, n, s, 3) * 0.5 + 0.5))
    sign = torch.where(torch.rand(n, generator=g) < 0.6, 1.0, -1.0).view(-1, 1, 1, 1)
    amp = uniform(g, n, 0.18, 0.3).view(-1, 1, 1, 1)
    out = img + sign * amp * alpha.unsqueeze(1)
    return out, alpha > 0


def _crack(img: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, s, _ = img.shape
    m, mb = 10, 4
    start = uniform(g, n, 0.25, 0.75, 2) * s
    step = uniform(g, n, 0.3, 0.5) * s / m
    heading = uniform(g, n, 0, 2 * math.pi)[:, None] + torch.cumsum(torch.randn((n, m), generator=g) * 0.45, 1)
    steps = torch.stack([torch.cos(heading), torch.sin(heading)], 2) * step.view(-1, 1, 1)
    main = torch.cat([start[:, None], start[:, None] + torch.cumsum(steps, 1)], 1)  # (n, m+1, 2)
    k = torch.randint(2, m - 2, (n,), generator=g)
    root = main[torch.arange(n), k]
    side = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, -1.0)
    bh = heading[torch.arange(n), k][:, None] + side[:, None] * uniform(g, n, 0.5, 1.1)[:, None] \
        + torch.cumsum(torch.randn((n, mb), generator=g) * 0.4, 1)
    bsteps = torch.stack([torch.cos(bh), torch.sin(bh)], 2) * (0.8 * step).view(-1, 1, 1)
    branch = torch.cat([root[:, None], root[:, None] + torch.cumsum(bsteps, 1)], 1)
    scale = max(1.0, s / 64)
    a_main = _line_alpha(polyline_distance(main, s), uniform(g, n, 0.25, 0.55) * scale)
    a_branch = _line_alpha(polyline_distance(branch, s), uniform(g, n, 0.1, 0.35) * scale)
    alpha = torch.maximum(a_main, a_branch)
    amp = uniform(g, n, 0.45, 0.65).view(-1, 1, 1, 1)
    out = img * (1 - amp * alpha.unsqueeze(1))
    return out, alpha > 0


def _hole(img: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, s, _ = img.shape
    X, Y = _pixel_grid(s)
    c = uniform(g, n, 0.15, 0.85, 2) * s
    dx, dy = X - c[:, 0].view(-1, 1, 1), Y - c[:, 1].view(-1, 1, 1)
    d = torch.hypot(dx, dy)
    ang = torch.atan2(dy, dx)
    r = (uniform(g, n, 0.035, 0.06) * s).clamp_min(1.5).view(-1, 1, 1)
    r = r * (1 + 0.12 * torch.sin(3 * ang + uniform(g, n, 0, 2 * math.pi).view(-1, 1, 1)))
    rim = 0.4 * r
    pit = (r + 0.5 - d).clamp(0, 1)  # anti-aliased pit coverage
    light_dir = uniform(g, n, 0, 2 * math.pi).view(-1, 1, 1)
    # inside: dark, deepest in the centre, lit on the side facing away from the light
    shade = 0.22 + 0.25 * (d / r).clamp(0, 1) ** 2 + 0.1 * torch.cos(ang - light_dir) * (d / r).clamp(0, 1)
    rim_w = torch.sin(math.pi * ((d - r) / rim).clamp(0, 1)) * (d > r) * (d < r + rim)
    rim_gain = 1 + uniform(g, n, 0.1, 0.2).view(-1, 1, 1) * rim_w * (0.6 - 0.4 * torch.cos(ang - light_dir))
    factor = (1 - pit) * rim_gain + pit * shade
    out = img * factor.unsqueeze(1)
    return out, (d < r + rim) | (pit > 0)


def _blob(g: torch.Generator, n: int, s: int, rx: torch.Tensor, ry: torch.Tensor, roughness: float,
          margin: float = 0.2) -> torch.Tensor:
    """Normalised radius (n, S, S) of a rotated noisy ellipse: < 1 inside. rx, ry (n,) in pixels."""
    X, Y = _pixel_grid(s)
    c = uniform(g, n, margin, 1 - margin, 2) * s
    th = uniform(g, n, 0, math.pi).view(-1, 1, 1)
    dx, dy = X - c[:, 0].view(-1, 1, 1), Y - c[:, 1].view(-1, 1, 1)
    u = (torch.cos(th) * dx + torch.sin(th) * dy) / rx.view(-1, 1, 1)
    v = (-torch.sin(th) * dx + torch.cos(th) * dy) / ry.view(-1, 1, 1)
    return torch.sqrt(u * u + v * v) + roughness * value_noise(g, n, s, 6)


def _stain(img: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, s, _ = img.shape
    rx = uniform(g, n, 0.08, 0.14) * s
    ry = rx * uniform(g, n, 0.5, 1.0)
    rn = _blob(g, n, s, rx, ry, 0.25)
    w = smoothstep((1 - rn) / 0.45)
    # slightly darker "coffee ring" at the boundary
    w = w + 0.4 * smoothstep((1 - rn) / 0.15) * (1 - smoothstep((1 - rn) / 0.45))
    mean = img.mean(dim=(2, 3), keepdim=True)
    tint = torch.stack([torch.ones(n), uniform(g, n, 0.8, 0.95), uniform(g, n, 0.55, 0.8)], 1).view(-1, 3, 1, 1)
    colour = mean * uniform(g, n, 0.5, 0.75).view(-1, 1, 1, 1) * tint
    strength = uniform(g, n, 0.4, 0.6).view(-1, 1, 1, 1)
    a = (strength * w.unsqueeze(1)).clamp(0, 1)
    out = img * (1 - a) + colour * a
    return out, rn < 1


def _fray(img: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, s, _ = img.shape
    rx = uniform(g, n, 0.1, 0.17) * s
    ry = rx * uniform(g, n, 0.3, 0.55)
    rn = _blob(g, n, s, rx, ry, 0.2)
    w = smoothstep((1 - rn) / 0.3)
    k = max(3, (s // 8) | 1)
    # separable box blur (two 1-D passes): the local mean, i.e. the surface with its pattern removed
    local_mean = F.avg_pool2d(F.pad(img, (k // 2, k // 2, 0, 0), mode="replicate"), (1, k), stride=1)
    local_mean = F.avg_pool2d(F.pad(local_mean, (0, 0, k // 2, k // 2), mode="replicate"), (k, 1), stride=1)
    loose = value_noise1d(g, rotate_coords(*pixel_grid01(s), uniform(g, n, 0, math.pi))[1] * s * 0.8, s + 1)  # loose fibres
    repl = local_mean * uniform(g, n, 0.75, 0.9).view(-1, 1, 1, 1) * (1 + 0.08 * loose.unsqueeze(1))
    a = w.unsqueeze(1)
    return img * (1 - a) + repl * a, rn < 1


_FOREIGN = torch.tensor([[0.08, 0.08, 0.08], [0.75, 0.38, 0.10], [0.15, 0.50, 0.20], [0.15, 0.25, 0.75],
                         [0.97, 0.96, 0.90], [0.70, 0.10, 0.10]])


def _contamination(img: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, s, _ = img.shape
    X, Y = _pixel_grid(s)
    c = uniform(g, n, 0.2, 0.8, 2) * s
    p = 3
    offs = torch.randn((n, p, 2), generator=g) * 0.05 * s
    offs[:, 0] = 0
    centres = c[:, None] + offs
    radii = (uniform(g, n, 0.012, 0.03, p) * s).clamp_min(0.9)
    count = torch.randint(1, p + 1, (n,), generator=g)
    radii = torch.where(torch.arange(p)[None] < count[:, None], radii, torch.full_like(radii, -2.0))
    alpha = torch.zeros(n, s, s)
    for j in range(p):  # a handful of particles, batched over images
        d = torch.hypot(X - centres[:, j, 0].view(-1, 1, 1), Y - centres[:, j, 1].view(-1, 1, 1))
        alpha = torch.maximum(alpha, (radii[:, j].view(-1, 1, 1) + 0.5 - d).clamp(0, 1))
    # an optional short curved fibre starting near the cluster
    has_fibre = (torch.rand(n, generator=g) < 0.5).view(-1, 1, 1)
    length = uniform(g, n, 0.1, 0.2) * s
    ang = uniform(g, n, 0, 2 * math.pi)
    dvec = torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    p0 = c + torch.randn((n, 2), generator=g) * 0.03 * s
    p2 = p0 + dvec * length[:, None]
    p1 = (p0 + p2) / 2 + torch.stack([-dvec[:, 1], dvec[:, 0]], 1) * (uniform(g, n, -0.4, 0.4) * length)[:, None]
    fibre = _line_alpha(polyline_distance(_bezier(p0, p1, p2, 6), s), uniform(g, n, 0.2, 0.4) * max(1.0, s / 64))
    alpha = torch.maximum(alpha, fibre * has_fibre)
    colour = _FOREIGN[torch.randint(0, len(_FOREIGN), (n,), generator=g)].view(-1, 3, 1, 1)
    opacity = uniform(g, n, 0.75, 0.95).view(-1, 1, 1, 1)
    a = alpha.unsqueeze(1) * opacity
    return img * (1 - a) + colour * a, alpha > 0


DEFECT_FNS = {"scratch": _scratch, "crack": _crack, "hole": _hole, "stain": _stain, "fray": _fray,
               "contamination": _contamination}
