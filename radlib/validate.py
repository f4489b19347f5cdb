"""The checks on the library API's arguments that several modules share: attack sizes, labels, pixel range, device.

One function per kind of argument, so that :class:`radlib.specs.AttackSpec`, :func:`radlib.attacks.attack_score`,
:func:`radlib.evaluate.evaluate`, the scores (:class:`radlib.score.AnomalyScore`), the certificates
(:mod:`radlib.certify`) and :func:`radlib.purify.purify` refuse the same inputs with the same one-line message.
Bad values raise ValueError, wrong types TypeError; each message names the argument and the fix.

The pixel range costs one host sync, so it is checked once per call on clean inputs, never inside an attack's
step loop: the attacks call the score with inputs that require grad (skipped) and evaluate their iterates inside
:func:`trusted_pixels` (skipped); every iterate is clamped to [0, 1] there anyway.

Example:
    >>> import torch
    >>> from radlib.validate import check_attack_args, check_labels
    >>> check_attack_args("8/255", steps=10, norm="linf").eps == 8 / 255
    True
    >>> check_labels([0, 1.0, 1], 3).tolist()
    [0, 1, 1]
    >>> check_attack_args(2.0, steps=10, norm="linf")
    Traceback (most recent call last):
    ...
    ValueError: eps 2 is larger than the whole [0, 1] pixel range (L-inf): did you mean 2/255?
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch

from .metrics import parse_eps

__all__ = ["AttackArgs", "check_eps", "check_attack_args", "check_labels", "check_pixel_range", "check_device",
           "check_input_shape", "as_float32", "trusted_pixels", "range_checks_enabled"]


# ------------------------------------------------------------------------------------------------ numbers
def _number(value: Any, name: str) -> float:
    """A plain float from a Python/numpy number, a one-element tensor or a string like ``"8/255"``."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex():
            raise TypeError(f"{name} must be one number (a float, a string like '8/255' or a 0-dim tensor), "
                            f"got a tensor of shape {tuple(value.shape)}")
        if value.device.type == "meta":
            raise ValueError(f"{name} is a tensor on the meta device, which holds no value: pass a number")
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number or a string like '8/255', got {value!r}")
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_eps(value)
        except ValueError as e:  # parse_eps speaks of eps; say which argument it was
            if name == "eps":
                raise
            raise ValueError(f"{name} must be a finite number > 0 or a fraction like '1/255', got {value!r}") from e
    raise TypeError(f"{name} must be a number or a string like '8/255', got {type(value).__name__}")


def _int(value: Any, name: str, low: int, hint: str = "") -> int:
    """An int >= ``low``: TypeError for a non-int (bool, float, str), ValueError below ``low``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {low}, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}{hint}")
    return int(value)


def check_eps(eps: Any, norm: str = "linf", dims: int | None = None) -> float:
    """The attack radius as a float: a number, a string like ``"8/255"`` or a 0-dim tensor, finite and >= 0.

    L-inf: at most 1 (the whole [0, 1] pixel range). L2: at most ``sqrt(dims)`` (the diagonal of the [0, 1] cube
    of ``dims`` values) when ``dims`` is given.
    """
    e = _number(eps, "eps")
    if not math.isfinite(e) or e < 0:
        raise ValueError(f"eps must be a finite number >= 0 (pixel units, e.g. 8/255), got {eps!r}")
    if norm == "linf" and e > 1:
        raise ValueError(f"eps {e:g} is larger than the whole [0, 1] pixel range (L-inf): did you mean {e:g}/255?")
    if norm == "l2" and dims is not None and e > math.sqrt(dims):
        raise ValueError(f"eps {e:g} is larger than the diagonal of the [0, 1] pixel cube of {dims} values "
                         f"(L2: sqrt({dims}) = {math.sqrt(dims):.4g}): use a smaller eps")
    return e


class AttackArgs(NamedTuple):
    """The validated size of an attack (eps and alpha as floats)."""

    eps: float
    steps: int
    alpha: float | None
    restarts: int


def check_attack_args(eps: Any, *, steps: Any, norm: str = "linf", alpha: Any = None, restarts: Any = 1,
                      dims: int | None = None) -> AttackArgs:
    """Check an attack's eps (:func:`check_eps`), steps (int >= 1; 0 only with eps 0, the identity "attack"),
    alpha (None, or finite and > 0) and restarts (int >= 1); return them as plain Python numbers."""
    e = check_eps(eps, norm, dims)
    s = _int(steps, "steps", 0 if e == 0 else 1,
             " (0 steps is random noise, not an attack: use radlib.attacks.random_noise for that)")
    a = None
    if alpha is not None:
        a = _number(alpha, "alpha")
        if not math.isfinite(a) or a <= 0:
            raise ValueError(f"alpha (the PGD step size) must be a finite number > 0 or None (2.5 * eps / steps), "
                             f"got {alpha!r}")
    r = _int(restarts, "restarts", 1)
    return AttackArgs(e, s, a, r)


# ------------------------------------------------------------------------------------------------ labels
def check_labels(labels: Any, n: int, name: str = "labels") -> torch.Tensor:
    """Labels as int64 (n,): every value exactly 0 (normal) or 1 (anomaly), checked *before* any cast (0.5 is
    refused, not truncated to 0). A tensor keeps its device; anything else (list, array) lands on the CPU."""
    if isinstance(labels, torch.Tensor):
        t = labels.detach()
    else:
        try:
            arr = np.asarray(labels)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name} must be a sequence of 0 (normal) or 1 (anomaly) numbers, got "
                            f"{type(labels).__name__} that is not one ({e})") from e
        if arr.dtype.kind not in "biuf":
            first = arr.flat[0] if arr.size else None
            first = first.item() if isinstance(first, np.generic) else first
            kind = type(first).__name__ if arr.size else str(arr.dtype)
            example = f" such as {first!r}" if arr.size else ""
            raise TypeError(f"{name} must be 0 (normal) or 1 (anomaly) numbers, got {kind} values{example}: "
                            f"convert them, e.g. [int(v) for v in {name}]")
        t = torch.as_tensor(arr)
    if t.is_complex():
        raise TypeError(f"{name} must be 0 (normal) or 1 (anomaly) numbers, got dtype {t.dtype}")
    t = t.reshape(-1)
    if t.shape[0] != n:
        raise ValueError(f"{name} has {t.shape[0]} entries for {n} images")
    if t.dtype != torch.bool and t.numel() and not bool(((t == 0) | (t == 1)).all()):
        bad = t[(t != 0) & (t != 1)][:3].tolist()
        raise ValueError(f"{name} must be 0 (normal) or 1 (anomaly), got other values such as {bad}")
    return t.long()


# ------------------------------------------------------------------------------------------------ images
_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("radlib_trusted_pixels", default=False)


@contextlib.contextmanager
def trusted_pixels() -> Iterator[None]:
    """Inside, scores skip the [0, 1] range check (one host sync each): for an attack's loop, whose iterates are
    clamped to [0, 1] by construction."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def range_checks_enabled() -> bool:
    """False inside :func:`trusted_pixels`."""
    return not _TRUSTED.get()


def check_device(device: torch.device | str, what: str = "images") -> None:
    """Refuse the meta device (its tensors hold no values: nothing can be scored or copied out)."""
    if torch.device(device).type == "meta":
        raise ValueError(f"cannot score on the meta device ({what}: 'meta' tensors hold no values): "
                         f"put the score and the images on 'cpu' or 'cuda'")


def check_pixel_range(x: torch.Tensor, name: str = "images") -> None:
    """Float images must be finite and in [0, 1] (uint8 is always fine). One reduction, one host sync."""
    check_device(x.device, name)
    if x.dtype == torch.uint8 or not x.is_floating_point() or x.numel() == 0:
        return
    with torch.no_grad():
        lo, hi = torch.stack(list(torch.aminmax(x.detach()))).double().tolist()
    if math.isnan(lo) or math.isnan(hi) or math.isinf(lo) or math.isinf(hi):
        raise ValueError(f"{name} contain NaN or inf values: images must be finite, float in [0, 1] "
                         f"(or uint8 in [0, 255]); drop or repair the broken images")
    if lo < 0 or hi > 1:
        fix = ("divide them by 255 (or pass uint8 images, which are converted)" if hi > 1 and lo >= 0
               else "rescale them to [0, 1] (e.g. undo a mean/std normalisation: radlib's models normalise inside)")
        raise ValueError(f"{name} must be float in [0, 1], got values in [{lo:.4g}, {hi:.4g}]: {fix}")


def check_input_shape(x: torch.Tensor, fitted: tuple[int, ...] | None) -> None:
    """A score fitted on (C, H, W) images refuses other image shapes (a shape check, no sync)."""
    if fitted is None or tuple(x.shape[1:]) == tuple(fitted):
        return
    want, got = _dims(fitted), _dims(x.shape[1:])
    raise ValueError(f"the score was fitted on {want} images; got {got} ({x.shape[0]} images of shape "
                     f"{tuple(x.shape[1:])}): resize or convert the images to {want}, or fit the score on images "
                     f"like these")


def _dims(shape: Any) -> str:
    """(3, 32, 32) -> ``"3x32x32"``."""
    return "x".join(str(int(v)) for v in shape)


def as_float32(x: torch.Tensor) -> torch.Tensor:
    """float64 images -> float32 (differentiably; radlib's models and scores run in float32); others unchanged."""
    return x.float() if x.dtype == torch.float64 else x
