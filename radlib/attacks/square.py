"""The Square attack (Andriushchenko et al., ECCV 2020): a score-based random search that never reads a gradient.

Why it is here: a score that hides its gradient (quantised features, a detached branch, a saturating
non-linearity) can pass every gradient-based sanity check and still fall to a search that only *queries* it.
AutoAttack includes Square for this reason; :mod:`radlib.checks` compares its AUROC with PGD's.

L-inf algorithm (the paper's Alg. 1 and the authors' reference code), vectorised over the batch:

1. start at vertical stripes: every column of every channel at ``x +- eps`` (one query);
2. for each further query ``i``: the fraction ``p_i`` of pixels to change follows the published schedule
   (:func:`p_schedule`: ``p_init`` halved at 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000 queries,
   rescaled to the budget); a square window of side ``s = round(sqrt(p_i * H * W))`` (at least 1, at most H - 1)
   at a random position gets, per channel, a random value ``+-eps`` (constant over the window);
3. the candidate is kept, per sample, when it raises the loss (a greedy search: the loss never decreases).

L2 (the paper's Alg. 3 in a simpler form, stated as a deviation): the same schedule and windows; the candidate
adds to the window a box of random per-channel amplitude (Gaussian) with L2 norm ``sqrt(p_i) * eps`` and is
projected back onto the L2 ball (the reference code adds "meta pseudo-Gaussian" bumps and moves mass between two
windows so that the candidate stays on the sphere; radlib projects instead).

Deviations from the reference code, each for a batched run without host syncs: every window position is drawn per
sample on the device; where a new window would leave the image unchanged (the reference code redraws until it
does not) radlib redraws up to 4 times with ``torch.where``; every sample keeps searching until the budget is spent
(the reference code stops a sample once the classifier is fooled: an AUROC has no "fooled"). The cross-check with
torchattacks' ``Square`` on a classifier is in ``tests/test_square.py``.

Example:
    >>> import torch
    >>> from radlib.attacks.square import square
    >>> x = torch.full((2, 1, 8, 8), 0.5)
    >>> adv = square(lambda z: z.mean((1, 2, 3)), x, eps=0.1, queries=50, generator=torch.Generator().manual_seed(0))
    >>> bool((adv - x).abs().max() <= 0.1 + 1e-6), bool((adv.mean((1, 2, 3)) > 0.55).all())
    (True, True)
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from .engine import check_attack_inputs, eval_loss, l2_norms, expand_like

__all__ = ["square", "p_schedule"]

#: (threshold in 1/10,000 of the budget, divisor of p_init): the published schedule of the square size
_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256),
             (10_000, 512))


def p_schedule(p_init: float, query: int, queries: int) -> float:
    """The fraction of pixels a window covers at ``query`` of ``queries`` (the reference code's ``p_selection``
    with its schedule rescaled to the budget).

    >>> [p_schedule(0.8, q, 1000) for q in (0, 2, 10, 100, 999)]
    [0.8, 0.4, 0.2, 0.05, 0.0015625]
    """
    t = int(query / queries * 10_000)
    for threshold, div in _SCHEDULE:
        if t <= threshold:
            return p_init / div
    return p_init / 512


def _windows(n: int, h: int, w: int, s: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """A bool (n, 1, h, w) mask with one s x s window per sample at a random position (reference range: top-left
    corner in [0, h - s), as ``np.random.randint(0, h - s)``)."""
    gdev = generator.device if generator is not None else device
    top = torch.randint(0, max(h - s, 1), (n, 1, 1, 1), generator=generator, device=gdev).to(device)
    left = torch.randint(0, max(w - s, 1), (n, 1, 1, 1), generator=generator, device=gdev).to(device)
    rows = torch.arange(h, device=device).view(1, 1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, 1, w)
    return (rows >= top) & (rows < top + s) & (cols >= left) & (cols < left + s)


def _signs(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
           ) -> Tensor:
    gdev = generator.device if generator is not None else device
    return (torch.randint(0, 2, shape, generator=generator, device=gdev) * 2 - 1).to(device=device, dtype=dtype)


def square(loss_fn: Callable[[Tensor], Tensor], x: Tensor, *, eps: float, queries: int = 1000,
           norm: Literal["linf", "l2"] = "linf", p_init: float = 0.8, maximize: bool = True,
           generator: torch.Generator | None = None, clamp: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Square attack: maximise (or minimise) ``loss_fn`` by random search within an eps-ball, without gradients.

    Args:
        loss_fn: x_adv (N, C, H, W) -> per-sample loss (N,); only called under ``torch.no_grad``.
        x: float (N, C, H, W) clean images inside ``clamp``.
        eps: ball radius in pixel units (>= 0); ``eps=0`` returns x exactly (a clone).
        queries: calls of ``loss_fn`` per sample, the initialisation included (>= 1).
        norm: ``"linf"`` (the paper's main attack) or ``"l2"`` (see the module docstring).
        p_init: the first window's fraction of the pixels (the paper and AutoAttack: 0.8 for L-inf).
        maximize: raise the loss (True) or lower it (False).
        generator: source of every draw (may live on another device than x); None = the global RNG.
        clamp: the valid value range.

    Returns:
        The per-sample best point found (detached, same shape/dtype/device as x), inside the ball and ``clamp``;
        its loss is never worse than that of the starting stripes.
    """
    check_attack_inputs(x, eps, norm, clamp)
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 1:
        raise ValueError(f"queries must be an int >= 1, got {queries!r}")
    if not 0 < p_init <= 1:
        raise ValueError(f"p_init must be in (0, 1], got {p_init!r}")
    if x.ndim != 4:
        raise ValueError(f"x must be images (N, C, H, W), got {tuple(x.shape)}")
    x = x.detach()
    if eps == 0:
        return x.clone()
    lo, hi = clamp
    n, c, h, w = x.shape
    sign = 1.0 if maximize else -1.0
    if norm == "linf":
        delta = eps * _signs((n, c, 1, w), generator, x.device, x.dtype).expand(n, c, h, w)
    else:  # L2: a random direction at the ball's radius
        gdev = generator.device if generator is not None else x.device
        d = torch.randn(x.shape, generator=generator, device=gdev).to(device=x.device, dtype=x.dtype)
        delta = eps * d / expand_like(l2_norms(d) + 1e-12, d)
    best = (x + delta).clamp(lo, hi)
    best_loss = sign * eval_loss(loss_fn, best)
    for q in range(1, queries):
        s = min(max(int(round(math.sqrt(p_schedule(p_init, q, queries) * h * w))), 1), max(h - 1, 1))
        mask = _windows(n, h, w, s, generator, x.device)
        current = best - x
        if norm == "linf":
            cand = _linf_candidate(x, best, current, mask, eps, lo, hi, generator)
        else:
            gdev = generator.device if generator is not None else x.device
            bump = torch.randn((n, c, 1, 1), generator=generator, device=gdev).to(x.device, x.dtype)
            step = bump * mask.to(x.dtype)
            step = step * expand_like(math.sqrt(p_schedule(p_init, q, queries)) * eps / (l2_norms(step) + 1e-12), step)
            new = current + step
            new = new * expand_like((eps / (l2_norms(new) + 1e-12)).clamp(max=1.0), new)
            cand = (x + new).clamp(lo, hi)
        cand_loss = sign * eval_loss(loss_fn, cand)
        better = cand_loss > best_loss
        best = torch.where(expand_like(better, best), cand, best)
        best_loss = torch.where(better, cand_loss, best_loss)
    return best


def _linf_candidate(x: Tensor, best: Tensor, current: Tensor, mask: Tensor, eps: float, lo: float, hi: float,
                    generator: torch.Generator | None) -> Tensor:
    """``best`` with the window of each sample set to a fresh +-eps per channel; redrawn (up to 4 times, on the
    device) where the window would not change the image."""
    n, c = x.shape[:2]
    m = mask.to(x.dtype)
    cand = best
    unchanged = torch.ones(n, dtype=torch.bool, device=x.device)
    for _ in range(5):
        vals = eps * _signs((n, c, 1, 1), generator, x.device, x.dtype)
        draw = (x + torch.where(mask, vals.expand_as(x), current)).clamp(lo, hi)
        cand = torch.where(expand_like(unchanged, x), draw, cand)
        unchanged = ((cand - best).abs() * m).sum((1, 2, 3)) < 1e-7
    return cand
