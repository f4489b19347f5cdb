"""Attacks on an anomaly score: the in/out attack, the score as 2-class logits for other libraries, random noise.

In-attack: normals (label 0) pushed up; out-attack: anomalies (label 1) pushed down; one attack with a
per-sample sign, on the :mod:`radlib.attacks.engine` PGD/APGD loops.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from ..validate import as_float32, check_attack_args, check_device, check_labels
from .square import square
from .engine import (TINY, ATTACK_METHODS as _METHODS, MODES as _MODES, NORMS as _NORMS, apgd_run, best_of,
                     check_attack_inputs, draw_unit, l2_norms, pgd_run, per_sample_loss, expand_like, step_size)

__all__ = ["attack_score", "ScoreAsLogits", "random_noise"]


# ----------------------------------------------------------------------------------------------------------
# attacks on an anomaly score
# ----------------------------------------------------------------------------------------------------------
def attack_score(score_fn: Callable[[Tensor], Tensor], x: Tensor, labels: Tensor, *, eps: float, steps: int = 10,
                 method: Literal["pgd", "apgd", "square"] = "pgd", mode: Literal["both", "in", "out"] = "both",
                 norm: Literal["linf", "l2"] = "linf", alpha: float | None = None, restarts: int = 1,
                 generator: torch.Generator | None = None) -> Tensor:
    """In/out attacks on an anomaly score (higher = more anomalous), as one attack with a per-sample sign.

    In-attack: normals (label 0) are pushed *up* (made to look anomalous); out-attack: anomalies (label 1)
    are pushed *down*. Both are one maximisation of ``sign * score`` with sign = +1 for label 0 and -1 for
    label 1, so a mixed batch costs one forward/backward per step. ``mode="in"`` / ``"out"`` attacks only that
    group; the other samples are returned unchanged.

    Args:
        score_fn: images (n, C, H, W) -> scores (n,), differentiable w.r.t. the images (model in eval mode).
        x: float (N, C, H, W) images in [0, 1] (float64 is attacked in float32 and returned as float64).
        labels: (N,) labels, exactly 0 = normal or 1 = anomaly (int, bool or float), on any device.
        eps, steps, norm, alpha: as in :func:`pgd` (alpha is ignored by APGD, which has no step size), checked
            by :func:`radlib.validate.check_attack_args` as :class:`radlib.specs.AttackSpec` checks them: eps a
            number, a string like ``"8/255"`` or a 0-dim tensor (L-inf: at most 1), steps >= 1 (0 only with
            eps 0), alpha > 0 or None.
        method: ``"pgd"`` (random start, Madry step size), ``"apgd"`` or ``"square"`` (gradient-free, ``steps``
            queries of the score: :func:`radlib.attacks.square.square`; the score need not be differentiable).
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
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    if isinstance(x, Tensor):
        check_device(x.device, "x")
    dims = math.prod(x.shape[1:]) if isinstance(x, Tensor) and x.ndim >= 2 else None
    eps, steps, alpha, restarts = check_attack_args(eps, steps=steps, norm=norm, alpha=alpha, restarts=restarts,
                                                    dims=dims)
    check_attack_inputs(x, eps, norm, (0.0, 1.0), steps)
    dtype_in = x.dtype
    x = as_float32(x)
    labels = check_labels(labels, x.shape[0]).to(x.device)
    x = x.detach()
    out = x.clone()
    if eps == 0 or x.shape[0] == 0:
        return out.to(dtype_in)

    # one draw per restart for the whole batch (independent of mode); rows not attacked start at x and get a
    # zero step (sign 0), so the score is always called on the full batch, exactly as it is reported
    sphere = method == "apgd"
    sign_all = 1.0 - 2.0 * labels.to(x.dtype)  # +1 normal (push up), -1 anomaly (push down)
    if mode != "both":
        sign_all = sign_all * (labels == (0 if mode == "in" else 1)).to(x.dtype)
    keep = expand_like(sign_all == 0, x)
    starts = [torch.where(keep, 0.0, draw_unit(x.shape, norm, generator, x.device, sphere=sphere))
              for _ in range(restarts)]
    step = step_size(eps, steps, alpha)

    def loss_fn(xa: Tensor) -> Tensor:
        s = score_fn(xa)
        if xa.requires_grad and isinstance(s, Tensor) and not s.requires_grad:  # an attribute: no host sync
            raise ValueError("the score is not differentiable in its input: attacks need a score whose output "
                             "requires grad (e.g. a radlib.score.AnomalyScore, or torch operations on the images "
                             "without .detach(), torch.no_grad(), .item() or numpy); a score without gradients "
                             "can only be attacked by a query attack: radlib.attacks.square.square")
        return sign_all * per_sample_loss(s, xa.shape[0], "score_fn")

    def run(r: int) -> Tensor:
        if method == "square":
            return square(loss_fn, x, eps=eps, queries=steps, norm=norm, generator=generator)
        if method == "pgd":
            return pgd_run(loss_fn, x, starts[r], eps=eps, steps=steps, alpha=step, norm=norm,
                            sign=1.0, lo=0.0, hi=1.0, per_sample=True)
        return apgd_run(loss_fn, x, starts[r], eps=eps, steps=steps, norm=norm, sign=1.0, rho=0.75,
                         lo=0.0, hi=1.0)[0]

    return torch.where(keep, x, best_of(loss_fn, x, run, restarts, maximize=True)).to(dtype_in)


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
        s = per_sample_loss(self.score_fn(x), x.shape[0], "score_fn")
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
    check_attack_inputs(x, eps, norm, (0.0, 1.0))
    if eps == 0:
        return x.detach().clone()
    gdev = generator.device if generator is not None else x.device
    if norm == "linf":
        d = torch.randint(0, 2, x.shape, generator=generator, device=gdev).float() * 2 - 1
    else:
        d = torch.randn(x.shape, generator=generator, device=gdev)
        d = d / expand_like(l2_norms(d) + TINY, d)
    return (x.detach() + eps * d.to(device=x.device, dtype=x.dtype)).clamp(0.0, 1.0)
