"""Adversarial attacks in pixel space: one PGD engine, APGD, attacks on an anomaly score, interop.

Everything here works on float images ``x`` of shape (N, C, H, W) (any (N, ...) works) with values in the
``clamp`` range ([0, 1] by default); ``eps`` and step sizes are in the same pixel units (``8/255`` ...).
The model's normalisation lives inside the model (see DESIGN.md), so nothing here normalises.

- :func:`pgd` -- projected gradient ascent/descent (Madry et al. 2018) on any differentiable loss; L-inf or
  L2, random start, per-sample best-of-``restarts``. It is the single engine behind the COBRA training attacks
  (ATPT / ATNT / RTP are thin closures over it) and the evaluation attacks on the anomaly score.
- :func:`apgd` -- Auto-PGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with an
  ensemble of diverse parameter-free attacks"), the step-size-free PGD inside AutoAttack.
- :func:`attack_score` -- in-attack (normals, label 0: push the score up) and out-attack (anomalies, label 1:
  push it down) on an anomaly score, as one attack with a per-sample sign.
- :class:`ScoreAsLogits` -- turns a score into 2-class logits so that untargeted attacks of other libraries
  (torchattacks, ART, AutoAttack) perform exactly the in/out attacks.
- :func:`random_noise` -- same-norm random perturbation, the baseline any attack must beat.

Model mode is the caller's business: the attacks only differentiate w.r.t. the input
(``torch.autograd.grad(loss, x_adv)``), never touch ``requires_grad`` of parameters and never accumulate
``.grad`` of weights. COBRA attacks the model in **eval** mode (BatchNorm running statistics), both during
training (ATPT/ATNT/RTP) and at test time; put the model in eval mode before calling. Gradients are enabled
inside the attacks, so they also work when called under ``torch.no_grad()``.

There are no host synchronisations (``.item()``, boolean indexing) inside the step loops; input validation
(value range, labels) syncs once per call, before the loop.
"""
from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn
import torch.nn.functional as F

__all__ = ["pgd", "apgd", "attack_score", "ScoreAsLogits", "random_noise", "atpt", "atnt", "rtp",
           "random_chunk_cycle"]

Norm = Literal["linf", "l2"]
_NORMS = ("linf", "l2")
_MODES = ("both", "in", "out")
_METHODS = ("pgd", "apgd")
_TINY = 1e-12


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------
def _check_common(x: Tensor, eps: float, norm: str, clamp: tuple[float, float], steps: int | None = None) -> None:
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


def _per_sample(loss: Tensor, n: int, name: str = "loss_fn") -> Tensor:
    if loss.ndim == 0:
        return loss
    if loss.shape != (n,):
        raise ValueError(f"{name} must return a per-sample loss of shape ({n},) or a scalar, got {tuple(loss.shape)}")
    return loss


# ----------------------------------------------------------------------------------------------------------
# geometry helpers (all vectorised over the batch)
# ----------------------------------------------------------------------------------------------------------
def _view(v: Tensor, x: Tensor) -> Tensor:
    """(N,) -> (N, 1, 1, ...) broadcastable against x."""
    return v.reshape(-1, *([1] * (x.ndim - 1)))


def _l2(d: Tensor) -> Tensor:
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
        d = d * _view((eps / (_l2(d) + _TINY)).clamp(max=1.0), d)
    return (x + d).clamp(lo, hi)


def _direction(g: Tensor, norm: str) -> Tensor:
    """Steepest-ascent direction of unit norm: sign(g) for L-inf, g/||g||_2 (per sample) for L2."""
    if norm == "linf":
        return g.sign()
    return g / _view(_l2(g) + _TINY, g)


def _draw_unit(shape: torch.Size, norm: str, generator: torch.Generator | None, device: torch.device,
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
            d = d / (d.flatten(1).abs().amax(dim=1) + _TINY).reshape(-1, *([1] * (len(shape) - 1)))
    else:
        d = torch.randn(shape, generator=generator, device=gdev)
        d = d / (_l2(d) + _TINY).reshape(-1, *([1] * (len(shape) - 1)))
        if not sphere:
            d = d * torch.rand(n, generator=generator, device=gdev).reshape(-1, *([1] * (len(shape) - 1)))
    return d.to(device)


def _loss_and_grad(loss_fn: Callable[[Tensor], Tensor], x_adv: Tensor, sign: float,
                   per_sample: bool) -> tuple[Tensor, Tensor]:
    """Loss at x_adv (detached; (N,) or scalar) and the gradient of sign * loss.sum() w.r.t. x_adv only."""
    xa = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = _per_sample(loss_fn(xa), xa.shape[0])
        if per_sample and loss.ndim == 0:
            raise ValueError("loss_fn must return a per-sample loss of shape (N,) here "
                             "(restarts > 1 and apgd keep a per-sample best); got a scalar")
        (g,) = torch.autograd.grad(loss.sum() * sign, xa, allow_unused=True)
    if g is None:  # the loss does not depend on the input: nothing to follow
        g = torch.zeros_like(xa)
    return loss.detach(), g.detach()


def _eval_loss(loss_fn: Callable[[Tensor], Tensor], x_adv: Tensor) -> Tensor:
    with torch.no_grad():
        return _per_sample(loss_fn(x_adv), x_adv.shape[0]).detach()


# ----------------------------------------------------------------------------------------------------------
# PGD
# ----------------------------------------------------------------------------------------------------------
def _pgd_run(loss_fn: Callable[[Tensor], Tensor], x: Tensor, delta0: Tensor | None, *, eps: float, steps: int,
             alpha: float, norm: str, sign: float, lo: float, hi: float, per_sample: bool) -> Tensor:
    """One PGD run from x + eps * delta0 (delta0 of radius <= 1, or None for x itself); final iterate."""
    x_adv = x.clone() if delta0 is None else _project(x + eps * delta0.to(x.dtype), x, eps, norm, lo, hi)
    for _ in range(steps):
        _, g = _loss_and_grad(loss_fn, x_adv, sign, per_sample)
        x_adv = _project(x_adv + alpha * _direction(g, norm), x, eps, norm, lo, hi)
    return x_adv.detach()


def _best_of(loss_fn: Callable[[Tensor], Tensor], x: Tensor, runs: Callable[[int], Tensor], restarts: int,
             maximize: bool) -> Tensor:
    """Run ``runs(r)`` for r in range(restarts); keep per sample the point with the best final loss.

    Ties keep the earlier restart, so restarts never do worse than the first run alone.
    """
    best = runs(0)
    if restarts == 1:
        return best
    best_loss = _eval_loss(loss_fn, best)
    if best_loss.ndim == 0:
        raise ValueError("restarts > 1 needs a per-sample loss of shape (N,) from loss_fn, got a scalar")
    for r in range(1, restarts):
        cand = runs(r)
        cand_loss = _eval_loss(loss_fn, cand)
        better = cand_loss > best_loss if maximize else cand_loss < best_loss
        best = torch.where(_view(better, best), cand, best)
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
    _check_common(x, eps, norm, clamp, steps)
    if not isinstance(restarts, int) or isinstance(restarts, bool) or restarts < 1:
        raise ValueError(f"restarts must be an int >= 1, got {restarts!r}")
    if alpha is not None and (not math.isfinite(alpha) or alpha < 0):
        raise ValueError(f"alpha must be a finite number >= 0 or None, got {alpha!r}")
    if eps == 0:
        return x.detach().clone()
    step = alpha if alpha is not None else (2.5 * eps / steps if steps > 0 else 0.0)
    lo, hi = clamp
    sign = 1.0 if maximize else -1.0

    def run(_r: int) -> Tensor:
        delta0 = _draw_unit(x.shape, norm, generator, x.device, sphere=False) if random_start else None
        return _pgd_run(loss_fn, x.detach(), delta0, eps=eps, steps=steps, alpha=step, norm=norm, sign=sign,
                        lo=lo, hi=hi, per_sample=restarts > 1)

    return _best_of(loss_fn, x, run, restarts, maximize)


# ----------------------------------------------------------------------------------------------------------
# APGD
# ----------------------------------------------------------------------------------------------------------
def _apgd_schedule(steps: int) -> tuple[int, int, int]:
    """Checkpoint lengths in iterations: first period, minimum period, per-checkpoint decrease.

    The paper's checkpoints are w_j = ceil(p_j * N) with p_0 = 0, p_1 = 0.22 and
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06): the period starts at 22 % of the budget and shrinks by
    3 % per checkpoint down to 6 %. Integer periods as in the reference implementation.
    """
    return max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)


def _apgd_run(loss_fn: Callable[[Tensor], Tensor], x: Tensor, delta0: Tensor | None, *, eps: float, steps: int,
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
    period, period_min, period_decr = _apgd_schedule(steps)
    since_check = 0
    n_success = torch.zeros(n, device=x.device)  # f(x^{k+1}) > f(x^k) since the last checkpoint
    f_best_at_check = f_best.clone()
    # cond. 2 needs "step size unchanged since the last checkpoint": at the first checkpoint treat it as
    # "just reduced" so cond. 2 cannot fire there (as in the reference implementation).
    reduced_at_check = torch.ones(n, dtype=torch.bool, device=x.device)
    momentum = 0.75
    for k in range(steps):
        a = 1.0 if k == 0 else momentum  # x^(1) is a plain projected step
        z = _project(x_cur + _view(eta, x) * _direction(g_cur, norm), x, eps, norm, lo, hi)
        x_new = _project(x_cur + a * (z - x_cur) + (1.0 - a) * (x_cur - x_prev), x, eps, norm, lo, hi)
        x_prev, x_cur = x_cur, x_new
        f_new, g_cur = objective(x_cur)
        n_success += (f_new > f_cur).to(n_success.dtype)
        f_cur = f_new
        improved = f_cur > f_best
        x_best = torch.where(_view(improved, x), x_cur, x_best)
        g_best = torch.where(_view(improved, x), g_cur, g_best)
        f_best = torch.where(improved, f_cur, f_best)
        since_check += 1
        if since_check == period:  # checkpoint w_j: a Python-side schedule, no host sync
            cond1 = n_success < rho * period
            cond2 = ~reduced_at_check & (f_best_at_check >= f_best)
            reduce = cond1 | cond2
            eta = torch.where(reduce, eta / 2, eta)
            # restart the halved samples from their best point (x_prev stays: momentum x_best - x^(k)).
            x_cur = torch.where(_view(reduce, x), x_best, x_cur)
            g_cur = torch.where(_view(reduce, x), g_best, g_cur)
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
    _check_common(x, eps, norm, clamp, steps)
    if not isinstance(rho, (int, float)) or not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho!r}")
    if eps == 0:
        return x.detach().clone()
    delta0 = _draw_unit(x.shape, norm, generator, x.device, sphere=True)
    x_best, _ = _apgd_run(loss_fn, x.detach(), delta0, eps=eps, steps=steps, norm=norm,
                          sign=1.0 if maximize else -1.0, rho=rho, lo=clamp[0], hi=clamp[1])
    return x_best


# ----------------------------------------------------------------------------------------------------------
# attacks on an anomaly score
# ----------------------------------------------------------------------------------------------------------
def attack_score(score_fn: Callable[[Tensor], Tensor], x: Tensor, labels: Tensor, *, eps: float, steps: int = 10,
                 method: Literal["pgd", "apgd"] = "pgd", mode: Literal["both", "in", "out"] = "both",
                 norm: Literal["linf", "l2"] = "linf", alpha: float | None = None, restarts: int = 1,
                 generator: torch.Generator | None = None) -> Tensor:
    """In/out attacks on an anomaly score (higher = more anomalous), as one attack with a per-sample sign.

    In-attack: normals (label 0) are pushed *up* (made to look anomalous); out-attack: anomalies (label 1)
    are pushed *down*. Both are one maximisation of ``sign * score`` with sign = +1 for label 0 and -1 for
    label 1, so a mixed batch costs one forward/backward per step. ``mode="in"`` / ``"out"`` attacks only that
    group; the other samples are returned unchanged.

    Args:
        score_fn: images (n, C, H, W) -> scores (n,), differentiable w.r.t. the images (model in eval mode).
        x: float (N, C, H, W) images in [0, 1].
        labels: (N,) integer/bool labels, 0 = normal, 1 = anomaly, on any device.
        eps, steps, norm, alpha: as in :func:`pgd` (alpha is ignored by APGD, which has no step size).
        method: ``"pgd"`` (random start, Madry step size) or ``"apgd"``.
        restarts: per sample, the best of ``restarts`` runs (each from a fresh random start).
        generator: source of the random starts. All starts are drawn up front for the whole batch, so the
            result of a sample does not depend on ``mode``.

    The score is always called on the whole batch ``x``, also for ``mode="in"``/``"out"``: the rows that are
    not attacked stay at their clean values (zero start, zero step) and are returned unchanged. A score whose
    seeded draws depend on a row's position (the ensemble score's pseudo-anomalies) is thus attacked exactly
    as it is evaluated; split a large test set into batches *outside* (as :func:`radlib.evaluate.evaluate`
    does, with the same partition for the clean and the attacked scores).

    Returns:
        x_adv (N, C, H, W), detached, same dtype/device as x.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    _check_common(x, eps, norm, (0.0, 1.0), steps)
    if not isinstance(restarts, int) or isinstance(restarts, bool) or restarts < 1:
        raise ValueError(f"restarts must be an int >= 1, got {restarts!r}")
    if alpha is not None and (not math.isfinite(alpha) or alpha < 0):
        raise ValueError(f"alpha must be a finite number >= 0 or None, got {alpha!r}")
    if not isinstance(labels, Tensor) or labels.shape != (x.shape[0],):
        raise ValueError(f"labels must be a tensor of shape ({x.shape[0]},), got "
                         f"{tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}")
    labels = labels.to(x.device).long()
    if labels.numel() and not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    x = x.detach()
    out = x.clone()
    if eps == 0 or x.shape[0] == 0:
        return out

    # one draw per restart for the whole batch (independent of mode); rows not attacked start at x and get a
    # zero step (sign 0), so the score is always called on the full batch, exactly as it is reported
    sphere = method == "apgd"
    sign_all = 1.0 - 2.0 * labels.to(x.dtype)  # +1 normal (push up), -1 anomaly (push down)
    if mode != "both":
        sign_all = sign_all * (labels == (0 if mode == "in" else 1)).to(x.dtype)
    keep = _view(sign_all == 0, x)
    starts = [torch.where(keep, 0.0, _draw_unit(x.shape, norm, generator, x.device, sphere=sphere))
              for _ in range(restarts)]
    step = alpha if alpha is not None else (2.5 * eps / steps if steps > 0 else 0.0)

    def loss_fn(xa: Tensor) -> Tensor:
        return sign_all * _per_sample(score_fn(xa), xa.shape[0], "score_fn")

    def run(r: int) -> Tensor:
        if method == "pgd":
            return _pgd_run(loss_fn, x, starts[r], eps=eps, steps=steps, alpha=step, norm=norm,
                            sign=1.0, lo=0.0, hi=1.0, per_sample=True)
        return _apgd_run(loss_fn, x, starts[r], eps=eps, steps=steps, norm=norm, sign=1.0, rho=0.75,
                         lo=0.0, hi=1.0)[0]

    return torch.where(keep, x, _best_of(loss_fn, x, run, restarts, maximize=True))


class ScoreAsLogits(nn.Module):
    """Wrap an anomaly score as 2-class logits ``[-s/2, s/2]`` (class 0 = normal, class 1 = anomaly).

    Derivation: with logits (-s/2, s/2) the softmax gives p(anomaly) = e^{s/2} / (e^{-s/2} + e^{s/2})
    = sigmoid(s), so the cross-entropy of the true label is
        label 0 (normal):  CE = -log(1 - sigmoid(s)) = softplus(s),   d CE / d x = sigmoid(s) * ds/dx,
        label 1 (anomaly): CE = -log(sigmoid(s))     = softplus(-s),  d CE / d x = -sigmoid(-s) * ds/dx.
    softplus is increasing, so an untargeted attack (maximise CE of the true label; torchattacks, ART,
    AutoAttack) raises the score of normals (in-attack) and lowers that of anomalies (out-attack). The CE
    gradient is a positive multiple of +-ds/dx, so sign(grad) (L-inf) and grad/||grad|| (L2) -- hence PGD
    iterates -- are the same as those of :func:`attack_score` (up to float rounding; where sigmoid(+-s)
    underflows, i.e. |s| > ~88 in float32 on the already-"won" side, the CE gradient vanishes: rescale s).
    The argmax prediction is "anomaly" iff s > 0, which is meaningless for AUROC: evaluate with the score.

    Args:
        score_fn: images (n, C, H, W) -> scores (n,). An ``nn.Module`` is registered as a submodule (so
            ``.to()``/``.eval()`` reach it); a plain callable is stored as is.
        device: for a plain callable, where to put an empty placeholder parameter, because some libraries
            (torchattacks) read the device from ``next(model.parameters())``. Ignored for modules that
            already have parameters.
    """

    def __init__(self, score_fn: Callable[[Tensor], Tensor], device: str | torch.device | None = None) -> None:
        super().__init__()
        if not callable(score_fn):
            raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
        self.score_fn = score_fn
        has_params = isinstance(score_fn, nn.Module) and any(True for _ in score_fn.parameters())
        if not has_params:
            self._device_anchor = nn.Parameter(torch.empty(0, device=device), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        """(n, C, H, W) images -> (n, 2) logits ``[-s/2, s/2]``."""
        s = _per_sample(self.score_fn(x), x.shape[0], "score_fn")
        if s.ndim == 0:
            raise ValueError("score_fn must return one score per image, shape (n,)")
        half = s / 2
        return torch.stack([-half, half], dim=1)


def random_noise(x: Tensor, eps: float, norm: Literal["linf", "l2"] = "linf",
                 generator: torch.Generator | None = None) -> Tensor:
    """Random perturbation with the full budget, clamped to [0, 1]: the baseline an attack must beat.

    L-inf: ``x + eps * s`` with independent random signs s (every pixel at the ball's boundary, |d|_inf = eps);
    L2: ``x + eps * u`` with u a uniform random unit direction per sample (||d||_2 = eps). Then clamped to
    [0, 1], which can only shrink the perturbation.

    Args:
        x: float (N, C, H, W) in [0, 1]. eps: >= 0 pixel units. norm: "linf" or "l2".
        generator: source of randomness (may live on another device than x).

    Returns:
        Perturbed images, same shape/dtype/device as x.
    """
    _check_common(x, eps, norm, (0.0, 1.0))
    if eps == 0:
        return x.detach().clone()
    gdev = generator.device if generator is not None else x.device
    if norm == "linf":
        d = torch.randint(0, 2, x.shape, generator=generator, device=gdev).float() * 2 - 1
    else:
        d = torch.randn(x.shape, generator=generator, device=gdev)
        d = d / _view(_l2(d) + _TINY, d)
    return (x.detach() + eps * d.to(device=x.device, dtype=x.dtype)).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# COBRA's three training attacks: thin closures over the same `pgd` engine.
# Each takes the model *in the caller's mode* (COBRA attacks in eval mode, as the official code) and returns
# detached adversarial images in the eps-ball around the input, clamped to [0, 1].
# ---------------------------------------------------------------------------------------------------------------

def _proj(model: nn.Module, x: Tensor) -> Tensor:
    return model(x).projection.float()


def atpt(model: nn.Module, v1: Tensor, v2: Tensor, *, eps: float, steps: int = 10, alpha: float | None = None,
         norm: Literal["linf", "l2"] = "linf", temperature: float = 0.5,
         generator: torch.Generator | None = None) -> Tensor:
    """ATPT: perturb view ``v1`` to *maximise* NT-Xent(v1', v2) (push each image away from its positive).

    v1, v2: (M, C, H, W) in [0, 1], two views of the same chunk-major batch. Returns v1' (M, C, H, W).
    """
    from .losses import nt_xent
    with torch.no_grad():
        z2 = _proj(model, v2)
    return pgd(lambda a: nt_xent(torch.cat([_proj(model, a), z2]), n_views=2, temperature=temperature), v1,
               eps=eps, steps=steps, alpha=alpha, norm=norm, maximize=True, generator=generator)


def random_chunk_cycle(K: int, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> Tensor:
    """A uniformly random cyclic permutation pi of range(K) (one K-cycle, so pi(k) != k for every k), as an
    int64 tensor (K,) on ``device``: chunk k is paired with chunk pi[k].

    Sattolo's shuffle draws exactly this distribution (each of the (K-1)! K-cycles with equal probability),
    as the official ATNT code does per batch. Here the (K-1)! cycles are enumerated once and one index is drawn
    from ``generator`` on its device: no host sync. K=2 always gives (1, 0).
    """
    if not isinstance(K, int) or K < 2:
        raise ValueError(f"K must be an int >= 2, got {K!r}")
    table = _cycles(K)
    gdev = generator.device if generator is not None else torch.device(device)
    pick = torch.randint(table.shape[0], (1,), generator=generator, device=gdev)
    return table.to(gdev)[pick].squeeze(0).to(device)


@functools.lru_cache(maxsize=8)
def _cycles(K: int) -> Tensor:
    rows = []
    for order in itertools.permutations(range(1, K)):  # cycle 0 -> order[0] -> ... -> order[-1] -> 0
        perm = [0] * K
        seq = (0, *order)
        for a, b in zip(seq, seq[1:] + (0,)):
            perm[a] = b
        rows.append(perm)
    return torch.tensor(rows, dtype=torch.long)


def atnt(model: nn.Module, v2: Tensor, K: int, *, eps: float, steps: int = 10, alpha: float | None = None,
         norm: Literal["linf", "l2"] = "linf", temperature: float = 0.5,
         generator: torch.Generator | None = None, perm: Tensor | None = None) -> Tensor:
    """ATNT: perturb ``v2`` to *minimise* NT-Xent(v2', pi(v2)), pi a random cyclic permutation of the K chunks.

    Each image is pulled toward a differently-transformed copy of itself (for K=2: a normal toward its own
    pseudo-anomaly and vice versa); the trainer then treats v2' as a *positive* of v2, so the encoder learns
    to resist exactly the inter-group direction. As the official code, pi is drawn anew on every call
    (:func:`random_chunk_cycle`, from ``generator``, before the random start), so over training each chunk is
    pulled toward every other chunk; ``perm`` (K,) fixes it instead. v2: (K*N, C, H, W) chunk-major.
    Returns v2'.
    """
    from .losses import nt_xent
    if K < 2 or v2.shape[0] % K:
        raise ValueError(f"atnt needs K >= 2 chunks dividing the batch, got K={K}, batch {v2.shape[0]}")
    n = v2.shape[0] // K
    if perm is None:
        pi = random_chunk_cycle(K, generator, v2.device)
    else:  # a caller's choice: checked once (a host sync the drawn cycle does not need)
        pi = torch.as_tensor(perm, device=v2.device).long()
        if pi.shape != (K,) or sorted(pi.tolist()) != list(range(K)) or any(a == b for a, b in enumerate(pi.tolist())):
            raise ValueError(f"perm must be a permutation of range({K}) without fixed points, got {pi.tolist()}")
    rows = (pi[:, None] * n + torch.arange(n, device=v2.device)).reshape(-1)  # row k*n+i -> pi(k)*n+i
    with torch.no_grad():
        target = _proj(model, v2[rows])
    return pgd(lambda a: nt_xent(torch.cat([_proj(model, a), target]), n_views=2, temperature=temperature), v2,
               eps=eps, steps=steps, alpha=alpha, norm=norm, maximize=False, generator=generator)


def rtp(model: nn.Module, x: Tensor, labels: Tensor, *, eps: float, steps: int = 10, alpha: float | None = None,
        norm: Literal["linf", "l2"] = "linf", generator: torch.Generator | None = None) -> Tensor:
    """RTP: perturb ``x`` to *maximise* the K-way head's cross-entropy on the true transform labels (M,)."""
    return pgd(lambda a: F.cross_entropy(model(a).logits.float(), labels, reduction="none"), x,
               eps=eps, steps=steps, alpha=alpha, norm=norm, maximize=True, generator=generator)
