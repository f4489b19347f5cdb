"""The one PGD engine: projected gradient ascent/descent (L-inf / L2, random start, best-of-restarts) and APGD.

Everything here works on float images ``x`` of shape (N, C, H, W) (any (N, ...) works) with values in the
``clamp`` range ([0, 1] by default); ``eps`` and step sizes are in the same pixel units (``8/255`` ...).
Model mode is the caller's business: the attacks differentiate w.r.t. the input only.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from ..validate import trusted_pixels

__all__ = ["pgd", "apgd", "step_size", "NORMS", "MODES", "ATTACK_METHODS"]

Norm = Literal["linf", "l2"]
#: the norms, in/out modes and score-attack methods every attack and :class:`radlib.specs.AttackSpec` accept
NORMS = ("linf", "l2")
MODES = ("both", "in", "out")
ATTACK_METHODS = ("pgd", "apgd", "square")
_NORMS = NORMS
TINY = 1e-12


def step_size(eps: float, steps: int, alpha: float | None = None) -> float:
    """The PGD step size: ``alpha`` when given, else ``2.5 * eps / steps`` (Madry et al.; the COBRA setting),
    0 for 0 steps. The one place this rule lives (the attacks, :class:`~radlib.specs.AttackSpec`, the protocol).

    >>> step_size(8 / 255, 10) == 2.5 * (8 / 255) / 10, step_size(0.1, 0), step_size(0.1, 5, alpha=0.01)
    (True, 0.0, 0.01)
    """
    if alpha is not None:
        return alpha
    return 2.5 * eps / steps if steps > 0 else 0.0


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------
def check_attack_inputs(x: Tensor, eps: float, norm: str, clamp: tuple[float, float], steps: int | None = None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor in pixel space, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"x must have a batch dimension and at least one more, e.g. (N, C, H, W); got {tuple(x.shape)}")
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0 (pixel units, e.g. 8/255), got {eps!r}")
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 0):
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    lo, hi = clamp
    if not lo < hi:
        raise ValueError(f"clamp must be (low, high) with low < high, got {clamp!r}")
    if x.numel() and (bool(x.min() < lo) or bool(x.max() > hi) or bool(torch.isnan(x).any())):
        raise ValueError(f"x must lie in the clamp range [{lo}, {hi}] (pixel space, no NaN); got values in "
                         f"[{float(x.min()):.4g}, {float(x.max()):.4g}]")


def per_sample_loss(loss: Tensor, n: int, name: str = "loss_fn") -> Tensor:
    if loss.ndim == 0:
        return loss
    if loss.shape != (n,):
        raise ValueError(f"{name} must return a per-sample loss of shape ({n},) or a scalar, got {tuple(loss.shape)}")
    return loss


# ----------------------------------------------------------------------------------------------------------
# geometry helpers (all vectorised over the batch)
# ----------------------------------------------------------------------------------------------------------
def expand_like(v: Tensor, x: Tensor) -> Tensor:
    """(N,) -> (N, 1, 1, ...) broadcastable against x."""
    return v.reshape(-1, *([1] * (x.ndim - 1)))


def l2_norms(d: Tensor) -> Tensor:
    """Per-sample L2 norm, (N,)."""
    return d.flatten(1).norm(dim=1)


def _project(x_adv: Tensor, x: Tensor, eps: float, norm: str, lo: float, hi: float) -> Tensor:
    """Project x_adv onto the eps-ball around x, then onto [lo, hi].

    Clamping after the projection never leaves the ball: x is inside [lo, hi], so clamping only moves each
    coordinate of x + d towards x and shrinks |d| coordinate-wise (hence every Lp norm of d).
    """
    d = x_adv - x
    if norm == "linf":
        d = d.clamp(-eps, eps)
    else:
        d = d * expand_like((eps / (l2_norms(d) + TINY)).clamp(max=1.0), d)
    return (x + d).clamp(lo, hi)


def _direction(g: Tensor, norm: str) -> Tensor:
    """Steepest-ascent direction of unit norm: sign(g) for L-inf, g/||g||_2 (per sample) for L2."""
    if norm == "linf":
        return g.sign()
    return g / expand_like(l2_norms(g) + TINY, g)


def draw_unit(shape: torch.Size, norm: str, generator: torch.Generator | None, device: torch.device,
               sphere: bool) -> Tensor:
    """A random perturbation of radius <= 1 (float32, on ``device``), drawn from ``generator``.

    L-inf: uniform in [-1, 1]^d (``sphere``: rescaled so that max |d| = 1, as in the AutoAttack code).
    L2: uniform direction with radius ~ U(0, 1) (``sphere``: radius exactly 1).
    Drawn on the generator's device (a CPU generator works with CUDA inputs) and moved to ``device``.
    """
    gdev = generator.device if generator is not None else device
    n = shape[0]
    if norm == "linf":
        d = torch.rand(shape, generator=generator, device=gdev) * 2 - 1
        if sphere:
            d = d / (d.flatten(1).abs().amax(dim=1) + TINY).reshape(-1, *([1] * (len(shape) - 1)))
    else:
        d = torch.randn(shape, generator=generator, device=gdev)
        d = d / (l2_norms(d) + TINY).reshape(-1, *([1] * (len(shape) - 1)))
        if not sphere:
            d = d * torch.rand(n, generator=generator, device=gdev).reshape(-1, *([1] * (len(shape) - 1)))
    return d.to(device)


def _loss_and_grad(loss_fn: Callable[[Tensor], Tensor], x_adv: Tensor, sign: float,
                   per_sample: bool) -> tuple[Tensor, Tensor]:
    """Loss at x_adv (detached; (N,) or scalar) and the gradient of sign * loss.sum() w.r.t. x_adv only."""
    xa = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = per_sample_loss(loss_fn(xa), xa.shape[0])
        if per_sample and loss.ndim == 0:
            raise ValueError("loss_fn must return a per-sample loss of shape (N,) here "
                             "(restarts > 1 and apgd keep a per-sample best); got a scalar")
        (g,) = torch.autograd.grad(loss.sum() * sign, xa, allow_unused=True)
    if g is None:  # the loss does not depend on the input: nothing to follow
        g = torch.zeros_like(xa)
    return loss.detach(), g.detach()


def eval_loss(loss_fn: Callable[[Tensor], Tensor], x_adv: Tensor) -> Tensor:
    """The loss at an iterate, without autograd; the iterate is clamped, so scores skip their range check (a sync)."""
    with torch.no_grad(), trusted_pixels():
        return per_sample_loss(loss_fn(x_adv), x_adv.shape[0]).detach()


# ----------------------------------------------------------------------------------------------------------
# PGD
# ----------------------------------------------------------------------------------------------------------
def pgd_run(loss_fn: Callable[[Tensor], Tensor], x: Tensor, delta0: Tensor | None, *, eps: float, steps: int,
             alpha: float, norm: str, sign: float, lo: float, hi: float, per_sample: bool) -> Tensor:
    """One PGD run from x + eps * delta0 (delta0 of radius <= 1, or None for x itself); final iterate."""
    x_adv = x.clone() if delta0 is None else _project(x + eps * delta0.to(x.dtype), x, eps, norm, lo, hi)
    for _ in range(steps):
        _, g = _loss_and_grad(loss_fn, x_adv, sign, per_sample)
        x_adv = _project(x_adv + alpha * _direction(g, norm), x, eps, norm, lo, hi)
    return x_adv.detach()


def best_of(loss_fn: Callable[[Tensor], Tensor], x: Tensor, runs: Callable[[int], Tensor], restarts: int,
             maximize: bool) -> Tensor:
    """Run ``runs(r)`` for r in range(restarts); keep per sample the point with the best final loss.

    Ties keep the earlier restart, so restarts never do worse than the first run alone.
    """
    best = runs(0)
    if restarts == 1:
        return best
    best_loss = eval_loss(loss_fn, best)
    if best_loss.ndim == 0:
        raise ValueError("restarts > 1 needs a per-sample loss of shape (N,) from loss_fn, got a scalar")
    for r in range(1, restarts):
        cand = runs(r)
        cand_loss = eval_loss(loss_fn, cand)
        better = cand_loss > best_loss if maximize else cand_loss < best_loss
        best = torch.where(expand_like(better, best), cand, best)
        best_loss = torch.where(better, cand_loss, best_loss)
    return best


def pgd(loss_fn: Callable[[Tensor], Tensor], x: Tensor, *, eps: float, steps: int = 10, alpha: float | None = None,
        norm: Literal["linf", "l2"] = "linf", random_start: bool = True, maximize: bool = True, restarts: int = 1,
        generator: torch.Generator | None = None, clamp: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Projected gradient ascent (or descent) of ``loss_fn`` within an eps-ball around ``x`` (Madry et al.).

    Args:
        loss_fn: maps x_adv (N, ...) to a per-sample loss (N,) or a scalar; the gradient of its sum w.r.t.
            the input is followed (only w.r.t. the input: no weight gradients are accumulated).
        x: float (N, C, H, W) (or (N, ...)) clean inputs inside ``clamp``; any device/dtype.
        eps: radius of the ball in pixel units (>= 0). ``eps=0`` returns ``x`` exactly (a clone).
        steps: number of gradient steps (>= 0). ``steps=0`` returns the random start point (or x).
        alpha: step size; default ``2.5 * eps / steps`` (Madry et al.; the COBRA setting).
        norm: ``"linf"`` (step ``alpha * sign(g)``, ball ``|d|_inf <= eps``) or ``"l2"`` (step
            ``alpha * g / ||g||_2`` per sample, ball ``||d||_2 <= eps`` per sample).
        random_start: start from a random point of the ball (L-inf: uniform in the cube; L2: uniform
            direction, radius ``U(0, 1) * eps``), drawn from ``generator``.
        maximize: ascend the loss (True) or descend it (False).
        restarts: number of runs (each from a fresh random start); per sample the final point with the best
            loss (max if ``maximize`` else min) is kept. Needs a per-sample loss when > 1.
        generator: source of the random starts (may live on another device than x, e.g. a CPU generator
            with CUDA inputs); None uses the global RNG of x's device.
        clamp: valid value range of the inputs.

    Returns:
        x_adv, detached, same shape/dtype/device as x; after every step ``x - eps <= x_adv <= x + eps``
        (resp. ``||x_adv - x||_2 <= eps`` per sample) up to float rounding, and ``x_adv`` inside ``clamp``.
        Each step is: step, projection onto the ball, clamp.

    Raises:
        ValueError: negative eps/alpha, steps < 0, restarts < 1, unknown norm, x outside ``clamp``, a loss of
            the wrong shape, or restarts > 1 with a scalar loss.
    """
    check_attack_inputs(x, eps, norm, clamp, steps)
    if not isinstance(restarts, int) or isinstance(restarts, bool) or restarts < 1:
        raise ValueError(f"restarts must be an int >= 1, got {restarts!r}")
    if alpha is not None and (not math.isfinite(alpha) or alpha < 0):
        raise ValueError(f"alpha must be a finite number >= 0 or None, got {alpha!r}")
    if eps == 0:
        return x.detach().clone()
    step = step_size(eps, steps, alpha)
    lo, hi = clamp
    sign = 1.0 if maximize else -1.0

    def run(_r: int) -> Tensor:
        delta0 = draw_unit(x.shape, norm, generator, x.device, sphere=False) if random_start else None
        return pgd_run(loss_fn, x.detach(), delta0, eps=eps, steps=steps, alpha=step, norm=norm, sign=sign,
                        lo=lo, hi=hi, per_sample=restarts > 1)

    return best_of(loss_fn, x, run, restarts, maximize)


# ----------------------------------------------------------------------------------------------------------
# APGD
# ----------------------------------------------------------------------------------------------------------
def apgd_schedule(steps: int) -> tuple[int, int, int]:
    """Checkpoint lengths in iterations: first period, minimum period, per-checkpoint decrease.

    The paper's checkpoints are w_j = ceil(p_j * N) with p_0 = 0, p_1 = 0.22 and
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06): the period starts at 22 % of the budget and shrinks by
    3 % per checkpoint down to 6 %. Integer periods as in the reference implementation.
    """
    return max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)


def apgd_run(loss_fn: Callable[[Tensor], Tensor], x: Tensor, delta0: Tensor | None, *, eps: float, steps: int,
              norm: str, sign: float, rho: float, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """One APGD run maximising ``sign * loss``; returns (x_best, best loss in the ``sign`` convention)."""
    n = x.shape[0]

    def objective(xa: Tensor) -> tuple[Tensor, Tensor]:
        loss, g = _loss_and_grad(loss_fn, xa, sign, per_sample=True)
        return loss * sign, g

    x_cur = x.clone() if delta0 is None else _project(x + eps * delta0.to(x.dtype), x, eps, norm, lo, hi)
    f_cur, g_cur = objective(x_cur)
    x_best, f_best, g_best = x_cur.clone(), f_cur.clone(), g_cur.clone()
    eta = torch.full((n,), 2.0 * eps, device=x.device, dtype=x.dtype)  # per-sample step size
    x_prev = x_cur
    period, period_min, period_decr = apgd_schedule(steps)
    since_check = 0
    n_success = torch.zeros(n, device=x.device)  # f(x^{k+1}) > f(x^k) since the last checkpoint
    f_best_at_check = f_best.clone()
    # cond. 2 needs "step size unchanged since the last checkpoint": at the first checkpoint treat it as
    # "just reduced" so cond. 2 cannot fire there (as in the reference implementation).
    reduced_at_check = torch.ones(n, dtype=torch.bool, device=x.device)
    momentum = 0.75
    for k in range(steps):
        a = 1.0 if k == 0 else momentum  # x^(1) is a plain projected step
        z = _project(x_cur + expand_like(eta, x) * _direction(g_cur, norm), x, eps, norm, lo, hi)
        x_new = _project(x_cur + a * (z - x_cur) + (1.0 - a) * (x_cur - x_prev), x, eps, norm, lo, hi)
        x_prev, x_cur = x_cur, x_new
        f_new, g_cur = objective(x_cur)
        n_success += (f_new > f_cur).to(n_success.dtype)
        f_cur = f_new
        improved = f_cur > f_best
        x_best = torch.where(expand_like(improved, x), x_cur, x_best)
        g_best = torch.where(expand_like(improved, x), g_cur, g_best)
        f_best = torch.where(improved, f_cur, f_best)
        since_check += 1
        if since_check == period:  # checkpoint w_j: a Python-side schedule, no host sync
            cond1 = n_success < rho * period
            cond2 = ~reduced_at_check & (f_best_at_check >= f_best)
            reduce = cond1 | cond2
            eta = torch.where(reduce, eta / 2, eta)
            # restart the halved samples from their best point (x_prev stays: momentum x_best - x^(k)).
            x_cur = torch.where(expand_like(reduce, x), x_best, x_cur)
            g_cur = torch.where(expand_like(reduce, x), g_best, g_cur)
            f_cur = torch.where(reduce, f_best, f_cur)
            reduced_at_check = reduce
            f_best_at_check = f_best.clone()
            n_success.zero_()
            since_check = 0
            period = max(period - period_decr, period_min)
    return x_best.detach(), f_best


def apgd(loss_fn: Callable[[Tensor], Tensor], x: Tensor, *, eps: float, steps: int = 100,
         norm: Literal["linf", "l2"] = "linf", maximize: bool = True, rho: float = 0.75,
         generator: torch.Generator | None = None, clamp: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Auto-PGD (Croce & Hein 2020): PGD with momentum and an automatic, per-sample step-size schedule.

    Algorithm (paper, Alg. 1), vectorised over samples:
    start at a random point of the ball (as in the AutoAttack code: L-inf ``eps * t / max|t|`` with t uniform,
    L2 a uniform direction at radius eps); step size eta = 2 eps per sample; first step plain PGD, then
    ``z = P(x_k + eta * dir(g_k))``, ``x_{k+1} = P(x_k + 0.75 (z - x_k) + 0.25 (x_k - x_{k-1}))``;
    the best point per sample is tracked. At checkpoints w_j = ceil(p_j * steps) with p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), a sample's step size is halved and it restarts from its
    best point if (1) the fraction of successful steps (loss increased) since the last checkpoint is < rho,
    or (2) its step size was not reduced at the last checkpoint and its best loss has not improved since.

    Args:
        loss_fn: x_adv (N, ...) -> per-sample loss (N,) (a scalar is rejected: APGD is per sample).
        x: float (N, C, H, W) clean inputs inside ``clamp``.
        eps: ball radius in pixel units (>= 0); ``eps=0`` returns x exactly.
        steps: iteration budget (>= 0); 0 returns the random start point.
        norm: ``"linf"`` or ``"l2"`` (per-sample ball).
        maximize: maximise (True) or minimise (False) the loss.
        rho: success-fraction threshold of condition (1), in (0, 1].
        generator: source of the random start (may be on another device than x).
        clamp: valid value range.

    Returns:
        The per-sample best point found (detached, same shape/dtype/device as x), inside the ball and clamp.

    Deviations: the paper's "< rho" is used for condition (1) (the reference code uses "<="); after a
    restart the next success is judged against the loss of the restart point (the best loss).
    """
    check_attack_inputs(x, eps, norm, clamp, steps)
    if not isinstance(rho, (int, float)) or not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho!r}")
    if eps == 0:
        return x.detach().clone()
    delta0 = draw_unit(x.shape, norm, generator, x.device, sphere=True)
    x_best, _ = apgd_run(loss_fn, x.detach(), delta0, eps=eps, steps=steps, norm=norm,
                          sign=1.0 if maximize else -1.0, rho=rho, lo=clamp[0], hi=clamp[1])
    return x_best
