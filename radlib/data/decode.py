"""Decoding image and mask files to uint8 arrays, for every folder loader (:mod:`radlib.data.folder`).

JPEGs are decoded with ``Image.draft`` straight to a reduced scale close to ``image_size``, then resized with an
antialiasing filter. Every image mode is converted: grey, RGBA (alpha ignored), palette, 16-bit grey (fractions
of 65535), float (values in [0, 1] are fractions of white; see :func:`read_image` for the exact rules). Masks are
binarised on their raw stored values (any non-zero pixel is a defect, whatever the bit depth), must have the size
of their image, and are resized with a box filter so that small defects never vanish at low resolution.

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from radlib.data.decode import read_image
    >>> p = Path(tempfile.mkdtemp()) / "a.png"
    >>> Image.fromarray(np.full((20, 30), 200, dtype=np.uint8)).save(p)
    >>> a = read_image(p, 16, 3)
    >>> a.shape, a.dtype, int(a.max())
    ((3, 16, 16), dtype('uint8'), 200)
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .base import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "read_image", "read_mask", "list_images", "decode_all"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def _open(path: Path, draft_mode: str | None, size: int | None):  # -> PIL.Image.Image (loaded)
    from PIL import Image

    try:
        im = Image.open(path)
        if draft_mode is not None and size is not None and im.format == "JPEG":
            im.draft(draft_mode, (size, size))
        im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(f"cannot decode image file {path}: {err}") from err
    return im


def _to_8bit(im, path: Path):  # PIL image of any mode -> mode "L", "RGB" or "RGBA"
    from PIL import Image

    if im.mode in ("L", "RGB", "RGBA"):
        return im
    if im.mode.startswith("F"):  # 32-bit float grey
        a = np.asarray(im, dtype=np.float64)
        if np.isnan(a).any():
            raise DatasetError(f"image file {path} holds NaN pixel values; a float image must hold numbers "
                               f"in [0, 1] or [0, 255]")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            a = a * 255.0  # fractions of white
        elif not (lo >= 0.0 and hi <= 255.0):  # also catches +-inf
            raise DatasetError(f"float image file {path} holds values in [{lo:g}, {hi:g}]; radlib reads float images "
                               f"with values in [0, 1] (fractions of white) or in [0, 255] (8-bit grey levels): "
                               f"rescale it to [0, 1]")
        return Image.fromarray(np.rint(a).astype(np.uint8), "L")
    if im.mode.startswith("I;16"):  # 16-bit grey: fractions of 65535 (the container's depth)
        a = np.asarray(im, dtype=np.float64)
        hi = float(a.max(initial=0))
        if 0 < hi < 4096:
            warnings.warn(f"{path}: 16-bit image whose largest value is {hi:.0f} of 65535 (at most 12 of its 16 bits "
                          f"used); it decodes as a dark image (largest grey level {round(hi / 257)} of 255). If it "
                          f"holds 10- or 12-bit data, scale the values to the full 16-bit range (PNG's rule: multiply "
                          f"12-bit data by 16) before loading", RuntimeWarning, stacklevel=3)
        return Image.fromarray(np.rint(a / 257.0).astype(np.uint8), "L")
    if im.mode.startswith("I"):  # 32-bit integer grey
        a = np.asarray(im, dtype=np.float64)
        if a.max(initial=0) > 255:
            a = a / 257.0
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        return im.convert("RGBA")
    if im.mode in ("1", "LA", "La"):
        return im.convert("L")
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX ...


def read_image(path: str | os.PathLike[str], image_size: int, channels: int) -> np.ndarray:
    """Decode one image file to uint8 (channels, image_size, image_size).

    Grey sources are replicated to 3 channels, colour sources converted to luminance for 1 channel (PIL "L",
    ITU-R 601), alpha is ignored. Pixel values become 8-bit grey levels 0..255 as follows:

    * 8-bit images (grey, RGB, RGBA, palette): as stored.
    * 16-bit grey images (PNG, TIFF: PIL mode "I;16"): a value v becomes round(v / 257), i.e. v is a fraction of
      65535, the container's depth, as the PNG specification requires even when an sBIT chunk declares fewer
      significant bits (a conforming writer scales 12-bit data to the full 16-bit range). 12-bit data left in
      the low bits (largest value below 4096) therefore decodes dark (4095 -> 16): a RuntimeWarning names the
      file and says how to scale it. 16-bit colour PNGs are reduced by PIL to their high byte (the same scale).
    * 32-bit integer grey images (PIL mode "I"): values taken as 8-bit levels when the largest is at most 255,
      else divided by 257 (16-bit data); then clipped to 0..255.
    * 32-bit float images (PIL mode "F", e.g. float TIFFs): when every value lies in [0, 1] the values are
      fractions of white and v becomes round(255 v); otherwise, when every value lies in [0, 255], they are taken
      as 8-bit grey levels and rounded. The choice is made per image. NaN, infinite, negative values or values
      above 255 raise :class:`DatasetError` naming the file.

    Raises :class:`DatasetError` naming the file when it cannot be decoded.
    """
    from PIL import Image

    path = Path(path)
    im = _to_8bit(_open(path, "L" if channels == 1 else "RGB", image_size), path)
    im = im.convert("L" if channels == 1 else "RGB")
    if min(im.size) * 8 < image_size:
        warnings.warn(f"{path}: {im.size[0]}x{im.size[1]} px is upsampled more than 8x to {image_size} px; it will "
                      f"carry almost no detail", RuntimeWarning, stacklevel=2)
    if im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)  # PIL's filters antialias when shrinking
    a = np.asarray(im, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _defect_pixels(im, path: Path) -> np.ndarray:
    """Boolean (H, W): True where the mask's raw stored value is non-zero (any colour channel; alpha ignored)."""
    if im.mode == "P":
        im = im.convert("RGBA")  # a palette index means its colour
    elif not (im.mode in ("1", "L", "LA", "La", "RGB", "RGBA", "RGBa") or im.mode.startswith(("I", "F"))):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV ...: non-zero in RGB
    a = np.asarray(im)
    if a.dtype.kind == "f" and np.isnan(a).any():
        raise DatasetError(f"mask file {path} holds NaN pixel values")
    if a.ndim == 3:
        a = a[..., :1] if im.mode in ("LA", "La") else a[..., :3]
        return (a != 0).any(axis=2)
    return a != 0


def read_mask(path: str | os.PathLike[str], image_size: int,
              image: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Decode a defect mask to uint8 (1, image_size, image_size) in {0, 1}.

    A pixel is a defect when its stored value is non-zero, tested on the raw values before any conversion: a
    16-bit mask storing 1, a float mask storing 0.5 or an RGB mask storing (1, 0, 0) mark defects (alpha is
    ignored; a palette index counts by its colour). The binary mask is resized with a box filter: an output pixel
    is 1 when its footprint touches the defect. With ``image`` (the mask's image file), a mask whose size differs
    from that image's stored size raises :class:`DatasetError` naming both files and sizes (it would be stretched
    over the wrong pixels).
    """
    from PIL import Image

    path = Path(path)
    im = _open(path, None, None)
    if image is not None:
        try:
            with Image.open(image) as src:
                image_px = src.size
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise DatasetError(f"cannot decode image file {image}: {err}") from err
        if im.size != image_px:
            raise DatasetError(f"mask {path} is {im.size[0]}x{im.size[1]} px but its image {image} is "
                               f"{image_px[0]}x{image_px[1]} px; a mask must have the size of its image")
    small = Image.fromarray(_defect_pixels(im, path).astype(np.uint8) * 255, "L")
    if small.size != (image_size, image_size):
        small = small.resize((image_size, image_size), Image.Resampling.BOX)
    return (np.asarray(small) > 0).astype(np.uint8)[None]


def decode_all(fn: Callable[[Any], np.ndarray], paths: Sequence[Any], shape: tuple[int, ...]) -> torch.Tensor:
    """``fn`` (a reader returning uint8 ``shape``) over ``paths`` in a thread pool, stacked to uint8 (N, *shape)."""
    if not paths:
        return torch.zeros((0, *shape), dtype=torch.uint8)
    workers = max(1, min(8, os.cpu_count() or 1, len(paths)))
    if workers == 1:
        arrays = [fn(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            arrays = list(pool.map(fn, paths))
    return torch.from_numpy(np.stack(arrays))


def list_images(folder: Path, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly inside ``folder`` (case-insensitive extension, hidden files skipped), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions)


# ----------------------------------------------------------------------------------------------- assembly
