"""``surfaces``: procedurally generated industrial surfaces with realistic defects and pixel masks.

Embedded (no download), deterministic per seed, and fast: every texture is rendered for a whole batch at
once from vectorised coordinate grids (no per-image Python loop); defects are rasterised per defect *type*
(a loop over at most six types), each type batched over all of its images.

Categories (the normal class) and what varies between two normal images of the same category:

* ``fabric`` - plain weave of warp/weft threads (bluish denim-like); random phase, orientation jitter,
  thread pitch, thread waviness, fibre noise, warp/weft colour jitter.
* ``metal`` - brushed steel: anisotropic streaks along a jittered direction, broad polishing bands,
  a soft specular highlight, mottling.
* ``wood`` - growth rings around a far-away random centre, distorted by fractal noise, plus fine grain;
  brownish, with colour jitter.
* ``tiles`` - ceramic tiles with grout lines; random offset, small rotation, per-tile shade, speckle and
  bevel shading.
* ``leather`` - pebbled grain (fractal noise with creases), brown/black colour jitter.

On top of every image: a random global brightness, a linear lighting gradient and sensor noise.

Defects (index ``i`` in ``defect_types = ("good", *DEFECTS)``), all sized relative to ``image_size``
(a few per cent of the image area; thin lines are at least ~1 px wide):

* ``scratch`` - thin bright or dark curved (quadratic Bezier) line.
* ``crack`` - thin dark branching polyline (random walk with one side branch).
* ``hole`` - small dark round pit with a lighter rim (blowhole).
* ``stain`` - soft, low-contrast discoloured blob with an irregular boundary.
* ``fray`` - missing material: an elongated irregular region where the pattern is gone (local mean +
  loose-fibre noise, slightly darker).
* ``contamination`` - one to three small foreign particles, sometimes with a short fibre, of a foreign colour.

Masks: 1 exactly on the pixels that the defect changed. Every defect has a compact support, so the
defective image equals its clean twin outside the mask (``generate(..., return_clean=True)``).
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch

from .base import ADDataset, Split, register
from .surface_defects import DEFECT_FNS
from .surface_textures import TEXTURES, pixel_grid01, uniform

__all__ = ["CATEGORIES", "DEFECTS", "DEFECT_TYPES", "generate", "load_surfaces"]

CATEGORIES: tuple[str, ...] = ("fabric", "metal", "wood", "tiles", "leather")
DEFECTS: tuple[str, ...] = ("scratch", "crack", "hole", "stain", "fray", "contamination")
DEFECT_TYPES: tuple[str, ...] = ("good", *DEFECTS)

_MIN_SIZE, _MAX_SIZE = 32, 256
_LUMA = (0.299, 0.587, 0.114)


# ------------------------------------------------------------------------------------------- public API
def _check_size(image_size: int) -> int:
    if (isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral)
            or not _MIN_SIZE <= image_size <= _MAX_SIZE):
        raise ValueError(f"image_size must be an int in [{_MIN_SIZE}, {_MAX_SIZE}], got {image_size!r}")
    return int(image_size)


def _check_category(category: str) -> str:
    if category not in TEXTURES:
        raise ValueError(f"unknown surfaces category {category!r}; valid categories: {', '.join(CATEGORIES)}")
    return category


def _defect_indices(defects: str | Sequence[str] | torch.Tensor | None, n: int) -> torch.Tensor:
    """Per-image defect indices (n,) into DEFECT_TYPES from the forms accepted by :func:`generate`."""
    if defects is None:
        return torch.zeros(n, dtype=torch.long)
    if isinstance(defects, str):
        defects = [defects] * n
    if isinstance(defects, torch.Tensor):
        idx = defects.to(torch.long).flatten()
        if idx.numel() != n:
            raise ValueError(f"defects must have {n} entries, got {idx.numel()}")
        if n and (idx.min() < 0 or idx.max() >= len(DEFECT_TYPES)):
            raise ValueError(f"defect indices must be in [0, {len(DEFECT_TYPES) - 1}] (index into {DEFECT_TYPES})")
        return idx.clone()
    names = list(defects)
    if len(names) != n:
        raise ValueError(f"defects must have {n} entries, got {len(names)}")
    bad = sorted({d for d in names if d not in DEFECT_TYPES})
    if bad:
        raise ValueError(f"unknown defect type(s) {bad}; valid: {', '.join(DEFECT_TYPES)}")
    return torch.tensor([DEFECT_TYPES.index(d) for d in names], dtype=torch.long)


def _quantise(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


def generate(category: str, n: int, image_size: int, *,
             defects: str | Sequence[str] | torch.Tensor | None = None,
             generator: torch.Generator, return_clean: bool = False,
             ) -> tuple[torch.Tensor, ...]:
    """Render ``n`` surface images of one category, optionally with defects (the public building block).

    Args:
        category: one of :data:`CATEGORIES`.
        n: number of images (>= 0).
        image_size: side S in pixels, an int in [32, 256].
        defects: per-image defect assignment: None (all normal), one defect name for all images, a sequence
            of ``n`` names from :data:`DEFECT_TYPES` (``"good"`` = no defect), or an int tensor (n,) of
            indices into :data:`DEFECT_TYPES`.
        generator: CPU ``torch.Generator``; the only source of randomness (same state -> identical output).
        return_clean: also return the same images rendered without their defects.

    Returns:
        ``(images, masks, defect_idx)`` and, with ``return_clean``, ``clean`` as a fourth item:
        images uint8 (n, 3, S, S) in [0, 255]; masks uint8 (n, 1, S, S) in {0, 1}, 1 exactly where the
        defect changed the image (all zero for "good"); defect_idx int64 (n,) indexing :data:`DEFECT_TYPES`;
        clean uint8 (n, 3, S, S), equal to ``images`` outside the mask.
    """
    _check_category(category)
    _check_size(image_size)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise TypeError("generator must be a CPU torch.Generator")
    n = int(n)
    idx = _defect_indices(defects, n)
    s, g = image_size, generator
    base = TEXTURES[category](g, n, s)  # (n, 3, S, S) float32
    img = base.clone()
    mask = torch.zeros(n, 1, s, s, dtype=torch.bool)
    for k, name in enumerate(DEFECTS, start=1):  # loop over defect types, batched over their images
        rows = torch.nonzero(idx == k).flatten()
        if rows.numel() == 0:
            continue
        sub = base[rows]
        new, m = DEFECT_FNS[name](sub, g)
        m = m.unsqueeze(1)
        img[rows] = torch.where(m, new, sub)
        mask[rows] = m
    # lighting (global brightness + linear gradient) and sensor noise, shared by clean and defective renders
    x, y = pixel_grid01(s)
    phi = uniform(g, n, 0, 2 * math.pi).view(-1, 1, 1)
    grad = uniform(g, n, 0.0, 0.3).view(-1, 1, 1)
    light = (1 + uniform(g, n, -0.15, 0.15).view(-1, 1, 1)) * (1 + grad * (torch.cos(phi) * (x - 0.5)
                                                                       + torch.sin(phi) * (y - 0.5)))
    noise = torch.randn((n, 3, s, s), generator=g).mul_(0.015)
    light = light.unsqueeze(1)
    images = _quantise(img * light + noise)
    out: tuple[torch.Tensor, ...] = (images, mask.to(torch.uint8), idx)
    if return_clean:
        out = out + (_quantise(base * light + noise),)
    return out


def _to_luma(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, 1, H, W) luminance (ITU-R BT.601 weights)."""
    w = torch.tensor(_LUMA).view(1, 3, 1, 1)
    return (images.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def _stream(seed: int, category: str, split: int) -> torch.Generator:
    """Independent generator for (seed, category, split) via a fixed integer mix (no global RNG)."""
    h = (int(seed) * 0x9E3779B97F4A7C15 + (CATEGORIES.index(category) + 1) * 0xBF58476D1CE4E5B9
         + (split + 1) * 0x94D049BB133111EB) % (2 ** 63 - 1)
    return torch.Generator().manual_seed(h)


@register("surfaces", "procedural industrial surfaces (fabric, metal, wood, tiles, leather) with 6 defect types "
                      "and masks; embedded, no download", embedded=True, sizes="generated")
def load_surfaces(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
                  seed: int = 0, download: bool = True, channels: int = 3, n_train: int = 400, n_test: int = 200,
                  anomaly_ratio: float = 0.5, defects: tuple[str, ...] | None = None, **unknown) -> ADDataset:
    """Procedural surfaces task: train on normal images of one category, test on normals + defects.

    Args:
        normal: the category (default ``"fabric"``), one of :data:`CATEGORIES`.
        image_size: side in pixels, an int in [32, 256] (default 64).
        root, download: ignored (embedded generator, nothing to download).
        seed: same seed -> identical tensors; train and test use different random streams.
        channels: 3 (RGB) or 1 (luminance, BT.601).
        n_train: number of normal training images (>= 1).
        n_test: number of test images (>= 1).
        anomaly_ratio: fraction of test images that are anomalous, in [0, 1]; the ``round(anomaly_ratio *
            n_test)`` anomalies are spread evenly over the defect types; the test order is shuffled.
        defects: subset of :data:`DEFECTS` to use (default: all). ``defect_types`` is then
            ``("good", *defects)`` and ``Split.defect`` indexes it.

    Returns:
        :class:`ADDataset` with uint8 images (N, channels, S, S) and uint8 masks (N, 1, S, S).

    Raises:
        ValueError: unknown category / defect, bad size, counts or ratio. TypeError: unknown options.
    """
    if unknown:
        raise TypeError(f"surfaces: unknown option(s) {', '.join(sorted(unknown))}; valid: n_train, n_test, "
                        "anomaly_ratio, defects")
    category = _check_category("fabric" if normal is None else str(normal))
    size = _check_size(64 if image_size is None else image_size)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    for name, val in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(val, bool) or not isinstance(val, numbers.Integral) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if not 0.0 <= float(anomaly_ratio) <= 1.0:
        raise ValueError(f"anomaly_ratio must be in [0, 1], got {anomaly_ratio!r}")
    if defects is None:
        chosen = DEFECTS
    else:
        chosen = (defects,) if isinstance(defects, str) else tuple(defects)
        bad = [d for d in chosen if d not in DEFECTS]
        if not chosen or bad or len(set(chosen)) != len(chosen):
            raise ValueError(f"defects must be a non-empty tuple of distinct names from {DEFECTS}, got {defects!r}")

    # --- train: normals only
    n_train, n_test = int(n_train), int(n_test)
    tr_img, tr_mask, tr_def = generate(category, n_train, size, generator=_stream(seed, category, 0))
    # --- test: anomalies spread evenly over the chosen defect types, then shuffled
    g_test = _stream(seed, category, 1)
    n_anom = int(round(float(anomaly_ratio) * n_test))
    per = [n_anom // len(chosen) + (1 if i < n_anom % len(chosen) else 0) for i in range(len(chosen))]
    local = torch.cat([torch.zeros(n_test - n_anom, dtype=torch.long)]
                      + [torch.full((c,), i + 1, dtype=torch.long) for i, c in enumerate(per)])
    local = local[torch.randperm(n_test, generator=g_test)]
    global_idx = torch.tensor([0] + [DEFECT_TYPES.index(d) for d in chosen])[local]
    te_img, te_mask, _ = generate(category, n_test, size, defects=global_idx, generator=g_test)
    if channels == 1:
        tr_img, te_img = _to_luma(tr_img), _to_luma(te_img)
    train = Split(tr_img, torch.zeros(n_train, dtype=torch.long), tr_def, tr_mask)
    test = Split(te_img, (local > 0).long(), local, te_mask)
    meta = {"source": "procedural (radlib)", "licence": "MIT", "category": category, "categories": CATEGORIES,
            "defects": chosen, "image_size": size, "n_train": n_train, "n_test": n_test,
            "anomaly_ratio": float(anomaly_ratio), "seed": seed}
    return ADDataset(name="surfaces", normal=category, train=train, test=test,
                     defect_types=("good", *chosen), meta=meta)
