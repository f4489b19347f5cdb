"""Gradient-masking checks: is a robust AUROC real, or an artefact of a score the attack cannot follow?

:func:`masking_checks` runs the Carlini et al. (2019) list against one score; :func:`certificate_checks`
holds an attack to a certified lower bound (:mod:`radlib.certify`), which no honest attack can go below.
A failed check is printed LOUD (``!! GRADIENT-MASKING CHECK FAILED``) and attached to the result's table.

Example (an honest, differentiable score passes every check):
    >>> import torch
    >>> from radlib.checks import masking_checks
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.rand(16, 1, 4, 4, generator=g) * 0.5 + torch.tensor([0.0] * 8 + [0.5] * 8).view(-1, 1, 1, 1)
    >>> y = torch.tensor([0] * 8 + [1] * 8)
    >>> checks = masking_checks(lambda b: b.flatten(1).mean(1), x, y, eps=8 / 255, steps=2, restarts=2, verbose=False)
    >>> len(checks), all(c.passed for c in checks)
    (8, True)
"""
from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch

from .attacks import random_noise
from .certify import certified_auroc, lipschitz_bounds
from .images import to_float
from .device import make_generator
from .evaluate import AttackFn, device_of, resolve_data, score_batches, split_result, evaluate
from .metrics import auroc, format_eps, parse_eps
from .results import Check, EvalResult
from .specs import AttackSpec
from .score import AnomalyScore
from .images import check_images

__all__ = ["masking_checks", "certificate_checks"]


def _gradient_check(score: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, device: torch.device,
                    n: int = 32) -> Check:
    x = to_float(images[:n].to(device)).float().detach().requires_grad_(True)
    with torch.enable_grad():
        s = score(x)
        g = torch.autograd.grad(s.sum(), x, allow_unused=True)[0] if s.requires_grad else None
    if g is None:
        return Check("score gradient exists", False,
                     "the score does not depend differentiably on the input (no autograd graph: detach, "
                     "no_grad or a non-differentiable op); every gradient attack is blind", {"nonzero_fraction": 0.0})
    finite = bool(torch.isfinite(g).all())
    nonzero = float((g.flatten(1).abs().amax(dim=1) > 0).float().mean())
    ok = finite and nonzero >= 0.5
    return Check("score gradient exists", ok,
                 f"d score / d x on {x.shape[0]} images: finite={finite}, non-zero for {100 * nonzero:.0f}% of them"
                 + ("" if ok else " (zero / NaN gradients: gradient masking, e.g. round, detach, argmax, clamp)"),
                 {"finite": finite, "nonzero_fraction": nonzero})


def masking_checks(score: Callable[[torch.Tensor], torch.Tensor], data: Any, labels: Any = None, *,
                   eps: float | str = 8 / 255, steps: int = 10, method: Literal["pgd", "apgd"] = "pgd",
                   mode: Literal["both", "in", "out"] = "both", norm: Literal["linf", "l2"] = "linf",
                   eps_list: Sequence[float | str] | None = None, steps_list: Sequence[int] | None = None,
                   restarts: int = 3, large_eps: float | str = 128 / 255, large_eps_max_auroc: float = 10.0,
                   tol: float = 1.0, batch_size: int = 256, device: torch.device | str | None = None,
                   seed: int = 0, attack_fn: AttackFn | None = None, result: EvalResult | None = None,
                   verbose: bool = True, queries: int = 100,
                   surrogate: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[Check]:
    """Sanity checks that a robust AUROC is not an artefact of gradient masking (Carlini et al. 2019 list).

    Checks (all AUROCs in percent, ``tol`` in AUROC points):
      1. the score has finite, non-zero input gradients (on up to 32 test images);
      2. ``eps = 0`` reproduces the clean AUROC exactly (same scores up to 1e-9 AUROC points);
      3. the robust AUROC does not rise with eps (clean, ``eps_list``..., ``large_eps``; each <= previous + tol);
      4. it does not rise with the number of steps (``steps_list``, each <= previous + tol);
      5. ``restarts`` random restarts never help the defender (AUROC <= 1-restart AUROC + tol);
      6. the attack beats random noise of the same size (attacked AUROC <= noise AUROC + tol);
      7. a large eps (default 128/255) drives the AUROC below ``large_eps_max_auroc`` (default 10);
      8. the gradient-free Square attack (``queries`` queries; 0 skips the check) does not beat the gradient
         attack (Square AUROC >= attack AUROC - tol): a search that only *queries* the score doing better than one
         that follows its gradient is the classic sign of a hidden gradient (AutoAttack's reason for Square);
      9. with a ``surrogate`` score (another model, or the same method with another seed): a transfer attack (the
         same PGD crafted on the surrogate) does not beat the white-box attack (AUROC >= attack AUROC - tol);
      10. only for a score with exact bounds (``score.bounds``, e.g. :class:`radlib.certify.PixelKNNScore`): the
         attack at ``eps`` does not go below the certified AUROC (:func:`certificate_checks`).

    Defaults: ``eps_list = (eps/4, eps/2, eps)``, ``steps_list = (max(1, steps // 4), steps)``.
    All attacks share one clean pass. Failed checks are printed with ``!! GRADIENT-MASKING CHECK FAILED``
    (``verbose``) and, if ``result`` is given, appended to ``result.checks`` (shown by ``result.table()``).
    Returns the list of :class:`Check`.
    """
    eps = parse_eps(eps)
    large = parse_eps(large_eps)
    if eps <= 0:
        raise ValueError(f"eps must be > 0 for the masking checks, got {eps}")
    eps_l = sorted({parse_eps(e) for e in (eps_list if eps_list is not None else (eps / 4, eps / 2, eps))} | {eps})
    steps_l = sorted(set(steps_list if steps_list is not None else (max(1, steps // 4), steps)) | {steps})
    if not isinstance(restarts, int) or restarts < 2:
        raise ValueError(f"restarts must be an int >= 2 for the restart check, got {restarts!r}")
    base: dict[str, Any] = dict(method=method, mode=mode, norm=norm)
    specs: dict[str, AttackSpec] = {}

    def add(**kw: Any) -> str:
        s = AttackSpec(**base, **kw)
        specs.setdefault(s.name, s)
        return s.name

    n_zero = add(eps=0.0, steps=steps)
    n_eps = [add(eps=e, steps=steps) for e in eps_l if e > 0]
    n_large = add(eps=large, steps=steps)
    n_steps = [add(eps=eps, steps=s) for s in steps_l]
    n_main = add(eps=eps, steps=steps)
    n_rest = add(eps=eps, steps=steps, restarts=restarts)

    images, labels_t = resolve_data(data, labels)
    dev = device_of(score, images, device)
    res = evaluate(score, images, labels_t, attacks=list(specs.values()), batch_size=batch_size, device=dev,
                   seed=seed, attack_fn=attack_fn)
    a = {r.spec.name: r.auroc for r in res.attacks}
    clean = res.clean_auroc
    checks = [_gradient_check(score, images, dev)]

    diff0 = float(np.abs(res[n_zero].scores - res.clean_scores).max())
    checks.append(Check("eps=0 reproduces the clean AUROC", abs(a[n_zero] - clean) <= 1e-9,
                        f"clean {clean:.4f} vs eps=0 {a[n_zero]:.4f} (max |score difference| {diff0:.3g})",
                        {"clean": clean, "eps0": a[n_zero], "max_score_diff": diff0}))

    seq_eps = [(0.0, clean)] + [(specs[n].eps, a[n]) for n in n_eps]
    if large > eps_l[-1]:
        seq_eps.append((large, a[n_large]))
    rises = [(e0, e1, v0, v1) for (e0, v0), (e1, v1) in zip(seq_eps, seq_eps[1:]) if v1 > v0 + tol]
    checks.append(Check("robust AUROC does not rise with eps", not rises,
                        "AUROC by eps: " + ", ".join(f"{format_eps(e)}: {v:.2f}" for e, v in seq_eps)
                        + "".join(f"; RISES {v0:.2f} -> {v1:.2f} from eps {format_eps(e0)} to {format_eps(e1)}"
                                  for e0, e1, v0, v1 in rises),
                        {"eps": [e for e, _ in seq_eps], "auroc": [v for _, v in seq_eps]}))

    seq_steps = [(specs[n].steps, a[n]) for n in n_steps]
    rises_s = [(s0, s1, v0, v1) for (s0, v0), (s1, v1) in zip(seq_steps, seq_steps[1:]) if v1 > v0 + tol]
    checks.append(Check("robust AUROC does not rise with steps", not rises_s,
                        f"AUROC by steps at eps {format_eps(eps)}: " + ", ".join(f"{s}: {v:.2f}" for s, v in seq_steps)
                        + "".join(f"; RISES {v0:.2f} -> {v1:.2f} from {s0} to {s1} steps"
                                  for s0, s1, v0, v1 in rises_s),
                        {"steps": [s for s, _ in seq_steps], "auroc": [v for _, v in seq_steps]}))

    checks.append(Check("restarts never help the defender", a[n_rest] <= a[n_main] + tol,
                        f"{restarts} restarts {a[n_rest]:.2f} vs 1 restart {a[n_main]:.2f} (tol {tol})",
                        {"restarts": a[n_rest], "single": a[n_main]}))

    gen = make_generator(seed + 7919, dev)
    noise_scores, _ = score_batches(
        score, images, batch_size, dev,
        lambda xb, lb: _noise_subset(random_noise, xb, lb, eps, norm, mode, gen), labels_t, False)
    noise_auc = auroc(noise_scores, res.labels)
    checks.append(Check("attack beats random noise of the same eps", a[n_main] <= noise_auc + tol,
                        f"attack {a[n_main]:.2f} vs random noise {noise_auc:.2f} at eps {format_eps(eps)}",
                        {"attack": a[n_main], "noise": noise_auc}))

    checks.append(Check(f"large eps ({format_eps(large)}) drives AUROC toward 0", a[n_large] < large_eps_max_auroc,
                        f"AUROC {a[n_large]:.2f} at eps {format_eps(large)} (must be < {large_eps_max_auroc:g})",
                        {"auroc": a[n_large], "eps": large}))

    if queries or surrogate is not None:
        extra = ([AttackSpec(method="square", mode=mode, norm=norm, eps=eps, steps=queries)] if queries else [])
        if surrogate is not None:
            extra.append(AttackSpec(**base, eps=eps, steps=steps, surrogate="surrogate"))
        more = evaluate(score, images, labels_t, attacks=extra, batch_size=batch_size, device=dev, seed=seed,
                        surrogates={"surrogate": surrogate} if surrogate is not None else None)
        for r in more.attacks:
            kind = "transfer attack" if r.spec.surrogate else f"gradient-free Square-{queries}"
            checks.append(Check(f"{kind} does not beat the gradient attack", r.auroc >= a[n_main] - tol,
                                f"{kind} {r.auroc:.2f} vs {method.upper()}-{steps} {a[n_main]:.2f} at eps "
                                f"{format_eps(eps)} (tol {tol})" + ("" if r.auroc >= a[n_main] - tol else
                                " (the score hides its gradient from the white-box attack: gradient masking)"),
                                {"other": r.auroc, "white_box": a[n_main], "attack": r.spec.name}))

    if callable(getattr(score, "bounds", None)):
        main = next(r for r in split_result(res) if r.attacks[0].spec.name == n_main)
        checks.extend(certificate_checks(score, images, main))  # type: ignore[arg-type]

    if verbose:
        for c in checks:
            if not c.passed:
                print(str(c))
    if result is not None:
        result.checks.extend(checks)
    return checks


def _noise_subset(noise_fn: Callable[..., torch.Tensor], xb: torch.Tensor, lb: torch.Tensor, eps: float, norm: str,
                  mode: str, gen: torch.Generator) -> torch.Tensor:
    noisy = noise_fn(xb, eps, norm, gen)
    if mode == "both":
        return noisy
    keep = (lb == (0 if mode == "in" else 1)).view(-1, 1, 1, 1)
    return torch.where(keep, noisy, xb)


def certificate_checks(score: AnomalyScore, images: torch.Tensor, result: EvalResult, *,
                       tol: float = 1e-6) -> list[Check]:
    """For each attack in ``result``: its robust AUROC must not fall below the certified AUROC.

    Bounds come from ``score.bounds(images, eps, norm)`` when the score has one (:class:`PixelKNNScore`),
    else from :func:`lipschitz_bounds` with the score's ``lipschitz_l2``. ``images`` are the test images
    ``result`` was computed on, in the same order. A failed check means the attack left its eps-ball or the
    bounds are wrong: a bug, not a finding. Each check's ``data`` holds the bound and the slack (attacked
    AUROC minus bound: the most a stronger attack could still take away).
    """
    has_bounds = callable(getattr(score, "bounds", None))
    lip = getattr(score, "lipschitz_l2", None)
    if not has_bounds and lip is None:
        raise TypeError(f"{type(score).__name__} has neither bounds() nor lipschitz_l2: nothing to certify")
    check_images(images, "images", uint8="convert", allow_empty=False)
    if images.shape[0] != len(result.labels):
        raise ValueError(f"{images.shape[0]} images for a result on {len(result.labels)}")
    dims = int(images[0].numel())
    checks = []
    for att in result.attacks:
        spec = att.spec
        if has_bounds:
            lo, up = score.bounds(images, spec.eps, spec.norm)  # type: ignore[attr-defined]
        else:
            assert lip is not None  # checked above: without bounds() the score has lipschitz_l2
            lo, up = lipschitz_bounds(result.clean_scores, eps=spec.eps, dims=dims, lipschitz_l2=float(lip),
                                      norm=spec.norm)
        bound = certified_auroc(lo, up, result.labels, result.clean_scores, mode=spec.mode)
        ok = att.auroc >= bound - tol
        checks.append(Check(f"{spec.name} respects the certificate", ok,
                            f"attacked {att.auroc:.2f} >= certified {bound:.2f} (slack {att.auroc - bound:.2f})"
                            if ok else f"attacked {att.auroc:.2f} < certified {bound:.2f}: the attack left its "
                            "eps-ball or the bounds are wrong",
                            {"certified": bound, "attacked": att.auroc, "slack": att.auroc - bound}))
    return checks
