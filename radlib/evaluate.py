"""Robust evaluation of an anomaly score: clean and attacked AUROC with the full protocol, and sweeps.

Conventions: scores are higher = more anomalous, anomalies (label 1) are the positive class of the AUROC
(:func:`radlib.metrics.auroc`), eps is in pixel units (``8/255``), images are float in [0, 1] inside the
attacks. Attacks on the score come from :func:`radlib.attacks.attack_score`: the *in-attack* pushes the
scores of normal test images up, the *out-attack* pushes those of anomalies down (``mode="both"`` does both).

Every number carries its protocol (eps, alpha, steps, restarts, which samples were attacked, norm,
precision and TF32 state, seed, class counts, time), because a robust AUROC without its attack is not a
result. fp32 by default (TF32 matmuls where the device allows them); ``precision="bf16"`` runs the score
and the attack under bfloat16 autocast, only where a measurement (``benchmarks/bench_eval.py
--precision-check``) shows the robust AUROC within 1 point of fp32 for that model and data.

Batching: clean and attacked scores are computed with the *same* batch partition (``batch_size``) and
each attacked batch is given to the attack whole, so a score with seeded per-batch transforms (e.g.
:class:`radlib.score.EnsembleScore` with a random K=2 policy or augmentation samples) is scored and
attacked with the same transforms.

The pieces live one job per module: :mod:`radlib.metrics` (AUROC, eps strings), :mod:`radlib.specs`
(:class:`AttackSpec`), :mod:`radlib.results` (:class:`EvalResult`), :mod:`radlib.checks` (gradient-masking
checks), :mod:`radlib.viz` (figures); the names are re-exported here for convenience.

Example:
    >>> import torch
    >>> from radlib.evaluate import evaluate
    >>> x = torch.rand(8, 1, 4, 4); y = torch.tensor([0] * 4 + [1] * 4)
    >>> r = evaluate(lambda b: b.flatten(1).mean(1) + torch.arange(len(b)) * 0.0, x, y, attacks=["pgd-2@8/255"])
    >>> round(r.clean_auroc, 1) >= 0, r.attacks[0].spec.name
    (True, 'pgd-2@8/255')
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Literal, Mapping, Sequence, cast

import numpy as np
import torch

from .data.base import Split
from .images import float_batches
from .device import make_generator
# parse_eps, Check, format_checks (homes: radlib.metrics, radlib.results) stay importable from here for code
# written before those modules existed (the notebook series); they are not in __all__
from .metrics import auroc, format_eps, parse_eps  # noqa: F401
from .profiles import Precision
from .results import AttackResult, Check, EvalResult, format_checks  # noqa: F401
from .specs import ATTACKED, WORST, AttackSpec, as_spec, standard_attacks
from .validate import check_device, check_labels, check_pixel_range

__all__ = [
    "AutocastScore",
    "evaluate",
    "sweep",
    "sweep_eps",
    "sweep_steps",
]

AttackFn = Callable[..., torch.Tensor]


def resolve_data(data: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(getattr(data, "test", None), Split):  # an ADDataset
        data = data.test
    if isinstance(data, Split):
        if labels is not None:
            raise ValueError("labels must be None when a Split is given (its labels are used)")
        images, labels = data.images, data.labels
    elif isinstance(data, torch.Tensor):
        if labels is None:
            raise ValueError("labels are required when images are given as a tensor")
        images = data
    else:
        raise TypeError(f"data must be a Split, an ADDataset or an image tensor, got {type(data).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    if not (images.dtype == torch.uint8 or images.is_floating_point()):
        raise TypeError(f"images must be uint8 or float, got {images.dtype}")
    check_pixel_range(images, "images")  # also refuses the meta device
    labels = check_labels(labels, images.shape[0]).cpu()
    if int(labels.sum()) in (0, labels.shape[0]):
        raise ValueError("the test set needs both normal (0) and anomalous (1) images")
    return images, labels


def device_of(score: Any, images: torch.Tensor, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    dev = getattr(score, "device", None)
    return torch.device(dev) if dev is not None else images.device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)




def _precision_facts(device: torch.device, precision: Precision = "fp32") -> dict[str, Any]:
    tf32 = bool(torch.backends.cuda.matmul.allow_tf32)
    tf32_cudnn = bool(torch.backends.cudnn.allow_tf32)
    uses_tf32 = device.type == "cuda" and (tf32 or tf32_cudnn)
    if precision == "bf16":
        name = "bf16 autocast"
    else:
        name = "fp32 (TF32 allowed)" if uses_tf32 else "fp32"
    return {"precision": name, "allow_tf32_matmul": tf32, "allow_tf32_cudnn": tf32_cudnn,
            "autocast": precision == "bf16"}


class AutocastScore:
    """``score`` evaluated under bfloat16 autocast on ``device_type``; returns float32 (N,) scores.

    Everything else (``name``, ``device``, fitted statistics, ``bounds``) is the wrapped score's. The input
    and the attack's perturbation stay float32; only the score's own arithmetic runs in bf16.
    """

    def __init__(self, score: Callable[[torch.Tensor], torch.Tensor], device_type: str) -> None:
        self.score = score
        self.device_type = device_type

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.score(x).float()

    def __getattr__(self, name: str) -> Any:
        if name in ("score", "device_type"):  # not set yet (e.g. during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.score, name)


def score_batches(score: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int,
                   device: torch.device, perturb: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
                   labels: torch.Tensor, keep: bool) -> tuple[np.ndarray, torch.Tensor | None]:
    """Score every batch (optionally perturbed first); the partition is the same for every call."""
    out, kept = [], []
    for rows, xb in float_batches(images, batch_size, device):
        if xb.dtype != torch.float32:
            xb = xb.float()
        if perturb is not None:
            xb = perturb(xb, labels[rows].to(device))
        with torch.no_grad():
            s = score(xb)
        if s.shape != (xb.shape[0],):
            raise ValueError(f"score must return shape ({xb.shape[0]},), got {tuple(s.shape)}")
        out.append(s.detach().double().cpu())
        if keep:
            kept.append(xb.detach().cpu())
    return torch.cat(out).numpy(), (torch.cat(kept) if keep else None)


def evaluate(score: Callable[[torch.Tensor], torch.Tensor], test_split_or_images: Any, labels: Any = None, *,
             attacks: Sequence[AttackSpec | str] | str = (), batch_size: int = 256,
             device: torch.device | str | None = None, seed: int = 0, keep_adversarial: bool = False,
             attack_fn: AttackFn | None = None, precision: Precision = "fp32",
             surrogates: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None) -> EvalResult:
    """Clean AUROC and, per attack, the attacked scores and robust AUROC, with the protocol recorded.

    Args:
        score: an :class:`radlib.score.AnomalyScore` (or any differentiable float (B, C, H, W) -> (B,)).
        test_split_or_images: a :class:`radlib.data.Split` (or an ``ADDataset``: its test split), or
            uint8 or float images in [0, 1] (N, C, H, W) with ``labels`` (N,) exactly 0 normal / 1 anomaly
            (:func:`radlib.validate.check_labels`; float images outside [0, 1], NaN or inf are refused).
        attacks: :class:`AttackSpec` s or strings (``"pgd-100@8/255"``, see :meth:`AttackSpec.from_string`), or
            ``"standard"``: :func:`radlib.specs.standard_attacks` at 8/255 (APGD-100 with 3 restarts, Square-1000,
            a transfer attack from each of ``surrogates``, and their per-sample worst case, the headline number).
            A ``"worst"`` spec is the per-sample worst case of the attacks before it (its AUROC is at most each
            of theirs; only in+out attacks combine).
        surrogates: named scores that transfer attacks (``AttackSpec(surrogate=name)``) are crafted on.
        batch_size: images per score call and per attack call (the same partition for clean and attacked).
        device: default ``score.device``.
        seed: seed of the attacks' random starts for specs whose ``seed`` is None; one generator per attack.
        keep_adversarial: keep the attacked images (float32, CPU) in each :class:`AttackResult`.
        attack_fn: replaces :func:`radlib.attacks.attack_score` (same signature), e.g. for an adaptive attack.
        precision: ``"fp32"`` (default) or ``"bf16"`` (score and attack under bfloat16 autocast, see
            :class:`AutocastScore`; recorded in the protocol). Use bf16 only where it has been measured to
            keep the robust AUROC within 1 point of fp32.
    Returns:
        an :class:`EvalResult` (``.table()``, ``.to_dict()``, ``[name].scores``).
    """
    images, labels_t = resolve_data(test_split_or_images, labels)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(attacks, str):
        if attacks != "standard":
            raise ValueError(f"attacks must be a list of attacks or 'standard', got {attacks!r}")
        attacks = standard_attacks(surrogates=tuple(surrogates or ()))
    specs = [as_spec(a) for a in attacks]
    for spec in specs:
        if spec.surrogate is not None and spec.surrogate not in (surrogates or {}):
            raise ValueError(f"attack {spec.name!r} is crafted on surrogate {spec.surrogate!r}, which is not in "
                             f"surrogates ({sorted(surrogates or {})})")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"attack names must be unique, got {names}")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if attack_fn is None:
        from .attacks import attack_score
        attack_fn = attack_score
    run_attack: AttackFn = attack_fn
    dev = device_of(score, images, device)
    check_device(dev, "device")
    if precision == "bf16":
        score = AutocastScore(score, dev.type)
    n_norm, n_anom = int((labels_t == 0).sum()), int((labels_t == 1).sum())
    common = {"n_normal": n_norm, "n_anomalous": n_anom, "batch_size": batch_size, "device": str(dev),
              **_precision_facts(dev, precision), "torch": torch.__version__}

    _sync(dev)
    t0 = time.perf_counter()
    clean, _ = score_batches(score, images, batch_size, dev, None, labels_t, False)
    _sync(dev)
    secs = time.perf_counter() - t0
    labels_np = labels_t.numpy()
    result = EvalResult(score_name=str(getattr(score, "name", type(score).__name__)), labels=labels_np,
                        clean_scores=clean, clean_auroc=auroc(clean, labels_np),
                        protocol={**common, "seed": seed, "seconds": secs,
                                  "images_per_s": len(clean) / max(secs, 1e-9)})

    for spec in specs:
        if spec.method == WORST:
            result.attacks.append(_worst_case(spec, result.attacks, labels_np, common))
            continue
        spec_seed = seed if spec.seed is None else spec.seed
        gen = make_generator(spec_seed, dev)
        crafter = score if spec.surrogate is None else surrogates[spec.surrogate]  # type: ignore[index]

        def perturb(xb: torch.Tensor, lb: torch.Tensor, spec: AttackSpec = spec, gen: torch.Generator = gen,
                    crafter: Callable[[torch.Tensor], torch.Tensor] = crafter) -> torch.Tensor:
            return run_attack(crafter, xb, lb, eps=spec.eps, steps=spec.steps, method=spec.method, mode=spec.mode,
                             norm=spec.norm, alpha=spec.alpha, restarts=spec.restarts, generator=gen)

        _sync(dev)
        t0 = time.perf_counter()
        scores, adv = score_batches(score, images, batch_size, dev, perturb, labels_t, keep_adversarial)
        _sync(dev)
        secs = time.perf_counter() - t0
        n_att = {"both": n_norm + n_anom, "in": n_norm, "out": n_anom}[spec.mode]
        protocol = {"attack": spec.name, "description": spec.describe(), "method": spec.method, "mode": spec.mode,
                    "attacked": ATTACKED[spec.mode], "norm": spec.norm, "eps": spec.eps,
                    "eps_str": format_eps(spec.eps), "steps": spec.steps, "alpha": spec.alpha_effective,
                    "alpha_rule": ("adaptive (APGD)" if spec.method == "apgd" else
                                   "none (gradient-free)" if spec.method == "square" else
                                   "2.5*eps/steps" if spec.alpha is None else "fixed"),
                    "surrogate": spec.surrogate,
                    "restarts": spec.restarts, "seed": spec_seed, **common, "n_attacked": n_att,
                    "seconds": secs, "images_per_s": n_att / max(secs, 1e-9)}
        result.attacks.append(AttackResult(spec, scores, auroc(scores, labels_np), protocol, adv))
    return result


def _worst_case(spec: AttackSpec, done: list[AttackResult], labels: np.ndarray, common: dict[str, Any]
                ) -> AttackResult:
    """The per-sample worst case of the in+out attacks in ``done``: each normal at its highest attacked score,
    each anomaly at its lowest. Choosing per sample among valid attacked images is itself a valid attack, so its
    AUROC is at most every combined attack's."""
    pool = [a for a in done if a.spec.mode == "both" and a.spec.method != WORST]
    if len(pool) != spec.steps:
        raise ValueError(f"{spec.name!r} combines {spec.steps} attacks, but {len(pool)} in+out attacks come before it "
                         f"({[a.spec.name for a in pool]})")
    other = [a.spec.name for a in pool if a.spec.norm != spec.norm or abs(a.spec.eps - spec.eps) > 1e-12]
    if other:  # a per-sample choice is a valid attack only inside one ball
        raise ValueError(f"{spec.name!r} combines attacks of one ball ({spec.norm} eps {format_eps(spec.eps)}); "
                         f"{other} use another")
    stacked = np.stack([a.scores for a in pool])
    scores = np.where(labels == 0, stacked.max(0), stacked.min(0))
    winner = np.where(labels == 0, stacked.argmax(0), stacked.argmin(0))
    protocol = {"attack": spec.name, "description": spec.describe(), "method": WORST, "mode": "both",
                "attacked": ATTACKED["both"], "norm": spec.norm, "eps": spec.eps, "eps_str": format_eps(spec.eps),
                "steps": spec.steps, "alpha": None, "alpha_rule": "-", "restarts": 1, "seed": "-", **common,
                "n_attacked": len(scores), "of": [a.spec.name for a in pool],
                "worst_by": {a.spec.name: int((winner == i).sum()) for i, a in enumerate(pool)},
                "seconds": sum(a.protocol["seconds"] for a in pool),
                "images_per_s": len(scores) / max(sum(a.protocol["seconds"] for a in pool), 1e-9)}
    return AttackResult(spec, scores, auroc(scores, labels), protocol)


def split_result(result: EvalResult) -> list[EvalResult]:
    return [dataclasses.replace(result, attacks=[a], checks=list(result.checks)) for a in result.attacks]


def sweep(score: Callable[[torch.Tensor], torch.Tensor], data: Any, attacks: Sequence[AttackSpec], *,
          labels: Any = None, batch_size: int = 256, device: torch.device | str | None = None, seed: int = 0,
          attack_fn: AttackFn | None = None, precision: Precision = "fp32") -> list[EvalResult]:
    """One :class:`EvalResult` per attack, in order, from one :func:`evaluate` call (the clean scores are computed
    once): the one sweep. :func:`sweep_eps` and :func:`sweep_steps` build its attacks for the two usual axes."""
    return split_result(evaluate(score, data, labels, attacks=_unique(list(attacks)), batch_size=batch_size,
                                  device=device, seed=seed, attack_fn=attack_fn, precision=precision))


def sweep_eps(score: Callable[[torch.Tensor], torch.Tensor], data: Any, eps_list: Sequence[float | str],
              steps: int = 10, *, labels: Any = None, method: Literal["pgd", "apgd"] = "pgd",
              mode: Literal["both", "in", "out"] = "both", norm: Literal["linf", "l2"] = "linf",
              alpha: float | None = None, restarts: int = 1, batch_size: int = 256,
              device: torch.device | str | None = None, seed: int = 0,
              attack_fn: AttackFn | None = None, precision: Precision = "fp32") -> list[EvalResult]:
    """One :class:`EvalResult` per eps (same clean scores, computed once), in the order of ``eps_list``.

    ``alpha=None`` scales the step with eps (``2.5 * eps / steps``); ``precision`` as in :func:`evaluate`.
    """
    if len(eps_list) == 0:
        raise ValueError("eps_list is empty")
    specs = [AttackSpec(method=method, mode=mode, norm=norm, eps=cast(float, e), steps=steps, alpha=alpha,
                        restarts=restarts) for e in eps_list]
    return sweep(score, data, specs, labels=labels, batch_size=batch_size, device=device, seed=seed,
                 attack_fn=attack_fn, precision=precision)


def sweep_steps(score: Callable[[torch.Tensor], torch.Tensor], data: Any, steps_list: Sequence[int],
                eps: float | str = 8 / 255, *, labels: Any = None, method: Literal["pgd", "apgd"] = "pgd",
                mode: Literal["both", "in", "out"] = "both", norm: Literal["linf", "l2"] = "linf",
                alpha: float | None = None, restarts: int = 1, batch_size: int = 256,
                device: torch.device | str | None = None, seed: int = 0,
                attack_fn: AttackFn | None = None, precision: Precision = "fp32") -> list[EvalResult]:
    """One :class:`EvalResult` per number of steps (same clean scores), in the order of ``steps_list``;
    ``precision`` as in :func:`evaluate`."""
    if len(steps_list) == 0:
        raise ValueError("steps_list is empty")
    specs = [AttackSpec(method=method, mode=mode, norm=norm, eps=cast(float, eps), steps=s, alpha=alpha,
                        restarts=restarts) for s in steps_list]
    return sweep(score, data, specs, labels=labels, batch_size=batch_size, device=device, seed=seed,
                 attack_fn=attack_fn, precision=precision)


def _unique(specs: list[AttackSpec]) -> list[AttackSpec]:
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate attacks in the sweep: {names}")
    return specs
