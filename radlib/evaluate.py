"""Robust evaluation of an anomaly score: clean and attacked AUROC with the full protocol, sweeps,
gradient-masking checks and figures.

Conventions (see DESIGN.md): scores are higher = more anomalous, anomalies (label 1) are the positive
class of the AUROC, eps is in pixel units (``8/255``), images are float in [0, 1] inside the attacks.
Attacks on the score come from :func:`radlib.attacks.attack_score`: the *in-attack* pushes the scores of
normal test images up, the *out-attack* pushes those of anomalies down (``mode="both"`` does both).

Every number carries its protocol (eps, alpha, steps, restarts, which samples were attacked, norm,
precision and TF32 state, seed, class counts, time), because a robust AUROC without its attack is not a
result. fp32 by default (TF32 matmuls where the device allows them); ``precision="bf16"`` runs the score
and the attack under bfloat16 autocast, for speed on a GPU, and only where a measurement (``benchmarks/
bench_eval.py --precision-check``) shows the robust AUROC within 1 point of fp32 for that model and data.

Batching: clean and attacked scores are computed with the *same* batch partition (``batch_size``) and
each attacked batch is given to the attack whole, so a score with seeded per-batch transforms (e.g.
:class:`radlib.score.EnsembleScore` with a random K=2 policy or augmentation samples) is scored and
attacked with the same transforms (exactly so for ``mode="both"``; ``"in"``/``"out"`` attack a sub-batch).
"""
from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np
import torch

from .data._base import Split, to_float
from .device import make_generator

__all__ = [
    "AutocastScore",
    "auroc",
    "parse_eps",
    "format_eps",
    "AttackSpec",
    "AttackResult",
    "EvalResult",
    "Check",
    "evaluate",
    "sweep_eps",
    "sweep_steps",
    "masking_checks",
    "format_checks",
    "plot_score_histograms",
    "plot_auroc_vs_eps",
]

AttackFn = Callable[..., torch.Tensor]
_FAIL = "!! GRADIENT-MASKING CHECK FAILED"


# --------------------------------------------------------------------------------------------- metric
def auroc(scores: torch.Tensor | np.ndarray | Sequence[float], labels: torch.Tensor | np.ndarray | Sequence[int]
          ) -> float:
    """Area under the ROC curve **in percent** (0..100), anomalies (label 1) as the positive class.

    Computed once over the full set with ``sklearn.metrics.roc_auc_score`` (ties count 1/2).
    Scores: higher = more anomalous. 100 = perfect, 50 = chance, 0 = perfectly inverted.

    Raises:
        ValueError: shapes differ, labels other than 0/1, only one class present, or non-finite scores.
    """
    from sklearn.metrics import roc_auc_score

    s = _as_numpy(scores, "scores").astype(np.float64).ravel()
    y = _as_numpy(labels, "labels").ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same length, got {s.shape[0]} and {y.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    if y.min(initial=1) == y.max(initial=0) or len(y) == 0:
        raise ValueError("AUROC needs both normal (0) and anomalous (1) samples")
    if not np.isfinite(s).all():
        raise ValueError(f"scores contain {int((~np.isfinite(s)).sum())} non-finite values")
    return float(100.0 * roc_auc_score(y.astype(np.int64), s))


def _as_numpy(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except Exception as e:  # pragma: no cover - defensive
        raise TypeError(f"{name} must be a tensor, array or sequence, got {type(a).__name__}") from e


# --------------------------------------------------------------------------------------------- eps strings
def parse_eps(value: str | float | int) -> float:
    """``"8/255"`` -> 0.03137..., ``"0.03"`` -> 0.03, ``0`` -> 0.0. Must be finite and >= 0."""
    if isinstance(value, bool):
        raise TypeError(f"eps must be a number or a string like '8/255', got {value!r}")
    if isinstance(value, (int, float)):
        eps = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if "/" in text:
                num, den = text.split("/", 1)
                eps = float(num) / float(den)
            else:
                eps = float(text)
        except (ValueError, ZeroDivisionError) as e:
            raise ValueError(f"cannot parse eps {value!r}: use a number or a fraction like '8/255'") from e
    else:
        raise TypeError(f"eps must be a number or a string like '8/255', got {type(value).__name__}")
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be finite and >= 0, got {value!r}")
    return eps


def format_eps(eps: float) -> str:
    """0.0313725 -> ``"8/255"`` for whole multiples of 1/255 (and ``"0.5/255"``-style halves below 4/255),
    else ``"%g"``. The output is accepted by :func:`parse_eps`."""
    if eps == 0:
        return "0"
    k = eps * 255
    if abs(k - round(k)) < 1e-6:
        return f"{int(round(k))}/255"
    if k < 4 and abs(2 * k - round(2 * k)) < 1e-6:
        return f"{round(2 * k) / 2:g}/255"
    return f"{eps:g}"


# --------------------------------------------------------------------------------------------- specs
_METHODS = ("pgd", "apgd")
_MODES = ("both", "in", "out")
_NORMS = ("linf", "l2")
_ATTACKED = {"both": "normals pushed up (in) + anomalies pushed down (out)",
             "in": "normals pushed up (in-attack); anomalies clean",
             "out": "anomalies pushed down (out-attack); normals clean"}


@dataclass(frozen=True, kw_only=True)
class AttackSpec:
    """One attack on the score, as plain data.

    Attributes:
        name: label used in tables (default: the short form, e.g. ``"pgd-100@8/255"``).
        method: ``"pgd"`` or ``"apgd"``.
        mode: ``"both"`` (in + out), ``"in"`` (normals only) or ``"out"`` (anomalies only).
        norm: ``"linf"`` or ``"l2"``.
        eps: radius in pixel units (a string like ``"8/255"`` is accepted and parsed).
        steps: attack iterations (>= 1; 0 only with eps 0, the identity "attack").
        alpha: PGD step size; None = ``2.5 * eps / steps`` (radlib.attacks' default). Ignored by APGD.
        restarts: random restarts (best per sample is kept).
        seed: seed of the random starts; None = the ``seed`` given to :func:`evaluate`.
    """

    name: str = ""
    method: Literal["pgd", "apgd"] = "pgd"
    mode: Literal["both", "in", "out"] = "both"
    norm: Literal["linf", "l2"] = "linf"
    eps: float = 8 / 255
    steps: int = 10
    alpha: float | None = None
    restarts: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", parse_eps(self.eps))
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {self.method!r}")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if self.norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {self.norm!r}")
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < (0 if self.eps == 0 else 1):
            raise ValueError(f"steps must be an int >= 1, got {self.steps!r} (0 steps is random noise, not an "
                             f"attack: use radlib.attacks.random_noise for that)")
        if self.norm == "linf" and self.eps > 1:
            raise ValueError(f"eps {self.eps:g} is larger than the whole [0, 1] pixel range (L-inf): did you mean "
                             f"{self.eps:g}/255?")
        if not isinstance(self.restarts, int) or isinstance(self.restarts, bool) or self.restarts < 1:
            raise ValueError(f"restarts must be an int >= 1, got {self.restarts!r}")
        if self.alpha is not None:
            a = parse_eps(self.alpha)
            object.__setattr__(self, "alpha", a)
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {type(self.name).__name__}")
        if not self.name:
            object.__setattr__(self, "name", self.short())

    @property
    def alpha_effective(self) -> float | None:
        """The PGD step size actually used (None for APGD, which adapts its own)."""
        if self.method == "apgd":
            return None
        if self.alpha is not None:
            return self.alpha
        return 2.5 * self.eps / self.steps if self.steps > 0 else 0.0

    def short(self) -> str:
        """Round-trippable short form, e.g. ``"pgd-100@8/255"`` or ``"apgd-50@0.5,norm=l2,mode=in"``."""
        s = f"{self.method}-{self.steps}@{format_eps(self.eps)}"
        opts = []
        if self.mode != "both":
            opts.append(f"mode={self.mode}")
        if self.norm != "linf":
            opts.append(f"norm={self.norm}")
        if self.alpha is not None:
            opts.append(f"alpha={format_eps(self.alpha)}")
        if self.restarts != 1:
            opts.append(f"restarts={self.restarts}")
        if self.seed is not None:
            opts.append(f"seed={self.seed}")
        return ",".join([s, *opts])

    def describe(self) -> str:
        """One human line, e.g. ``"PGD-100, L-inf eps=8/255, alpha=2.5*eps/steps (0.000784), 1 restart, ..."``."""
        norm = "L-inf" if self.norm == "linf" else "L2"
        if self.method == "apgd":
            step = "adaptive step (APGD)"
        elif self.alpha is None:
            step = f"alpha=2.5*eps/steps ({self.alpha_effective:.4g})"
        else:
            step = f"alpha={format_eps(self.alpha)}"
        rs = f"{self.restarts} restart" + ("s" if self.restarts != 1 else "")
        seed = "evaluate's seed" if self.seed is None else str(self.seed)
        return (f"{self.method.upper()}-{self.steps}, {norm} eps={format_eps(self.eps)}, {step}, {rs}, "
                f"attacked: {_ATTACKED[self.mode]}, seed={seed}")

    @classmethod
    def from_string(cls, text: str) -> "AttackSpec":
        """Parse ``"<method>-<steps>@<eps>[,key=value...]"``, e.g. ``"pgd-100@8/255"``,
        ``"apgd-100@8/255,mode=in,restarts=3"``. Keys: mode, norm, alpha, restarts, seed, name."""
        if not isinstance(text, str):
            raise TypeError(f"attack spec must be a string, got {type(text).__name__}")
        m = re.fullmatch(r"\s*([A-Za-z]+)-(\d+)@([^,\s]+)\s*((?:,\s*[A-Za-z_]+\s*=\s*[^,]+)*)\s*", text)
        if m is None:
            raise ValueError(f"cannot parse attack spec {text!r}: expected e.g. 'pgd-100@8/255' or "
                             f"'apgd-50@8/255,mode=in,restarts=3'")
        kwargs: dict[str, Any] = {"method": m.group(1).lower(), "steps": int(m.group(2)), "eps": m.group(3)}
        for part in filter(None, (p.strip() for p in m.group(4).split(","))):
            key, value = (t.strip() for t in part.split("=", 1))
            key = key.lower()
            if key in ("mode", "norm", "name"):
                kwargs[key] = value if key == "name" else value.lower()
            elif key == "alpha":
                kwargs[key] = value
            elif key in ("restarts", "seed"):
                try:
                    kwargs[key] = int(value)
                except ValueError as e:
                    raise ValueError(f"{key} must be an int in attack spec {text!r}, got {value!r}") from e
            else:
                raise ValueError(f"unknown key {key!r} in attack spec {text!r} "
                                 f"(known: mode, norm, alpha, restarts, seed, name)")
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "AttackSpec":
        """A copy with some fields changed; the default name is recomputed unless given."""
        base = dataclasses.asdict(self)
        if base["name"] == self.short() and "name" not in changes:
            base["name"] = ""
        base.update(changes)
        return AttackSpec(**base)


def _as_spec(a: AttackSpec | str) -> AttackSpec:
    if isinstance(a, AttackSpec):
        return a
    if isinstance(a, str):
        return AttackSpec.from_string(a)
    raise TypeError(f"attacks must be AttackSpec objects or strings like 'pgd-10@8/255', got {type(a).__name__}")


# --------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Check:
    """Outcome of one gradient-masking sanity check. ``data`` holds the numbers behind ``detail``."""

    name: str
    passed: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.passed:
            return f"ok  {self.name}: {self.detail}"
        return f"{_FAIL}: {self.name} -- {self.detail}"


def format_checks(checks: Iterable[Check]) -> str:
    """One line per check; failures start with ``!! GRADIENT-MASKING CHECK FAILED``."""
    return "\n".join(str(c) for c in checks)


@dataclass
class AttackResult:
    """Scores and AUROC under one attack. ``scores``: float64 (N,) in the order of the evaluated images;
    ``adversarial``: the attacked images (float32 CPU) when ``keep_adversarial=True``."""

    spec: AttackSpec
    scores: np.ndarray
    auroc: float
    protocol: dict[str, Any]
    adversarial: torch.Tensor | None = None


@dataclass
class EvalResult:
    """Clean and attacked scores of one score on one test set, with the protocol beside every number.

    Attributes:
        score_name: ``score.name``.
        labels: int64 (N,) 0 normal / 1 anomaly.
        clean_scores: float64 (N,); clean_auroc: percent.
        attacks: one :class:`AttackResult` per attack, in the order given.
        protocol: facts of the clean evaluation (counts, batch size, device, precision, TF32, seed, time).
        checks: gradient-masking checks attached by :func:`masking_checks` (``result=``).
    """

    score_name: str
    labels: np.ndarray
    clean_scores: np.ndarray
    clean_auroc: float
    attacks: list[AttackResult] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def __getitem__(self, name: str) -> AttackResult:
        for a in self.attacks:
            if a.spec.name == name:
                return a
        raise KeyError(f"no attack named {name!r}; have {[a.spec.name for a in self.attacks]}")

    def scores(self, name: str | None = None) -> np.ndarray:
        """Scores under attack ``name`` (None: the clean scores)."""
        return self.clean_scores if name is None else self[name].scores

    def robust_auroc(self, name: str | None = None) -> float:
        """AUROC under attack ``name`` (default: the last attack)."""
        if not self.attacks:
            raise ValueError("this result has no attacks")
        return (self.attacks[-1] if name is None else self[name]).auroc

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def table(self) -> str:
        """Markdown table: clean row, one row per attack, then the protocol and the checks (failures LOUD)."""
        p = self.protocol
        lines = [f"**{self.score_name}** -- {p.get('n_normal', '?')} normal / {p.get('n_anomalous', '?')} "
                 f"anomalous test images",
                 "",
                 "| attack | method | norm | eps | steps | alpha | restarts | attacked | seed | AUROC | "
                 "delta | s | img/s |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
                 f"| clean | - | - | 0 | - | - | - | none | - | {self.clean_auroc:.2f} | | "
                 f"{p.get('seconds', float('nan')):.2f} | {p.get('images_per_s', float('nan')):.1f} |"]
        for a in self.attacks:
            q = a.protocol
            alpha = "adaptive" if q["alpha"] is None else format_eps(q["alpha"])
            lines.append(f"| {a.spec.name} | {q['method']} | {q['norm']} | {q['eps_str']} | {q['steps']} | "
                         f"{alpha} | {q['restarts']} | {q['mode']} | {q['seed']} | {a.auroc:.2f} | "
                         f"{a.auroc - self.clean_auroc:+.2f} | {q['seconds']:.2f} | {q['images_per_s']:.1f} |")
        lines += ["",
                  f"AUROC in percent, anomalies positive, higher score = more anomalous. Precision: "
                  f"{p.get('precision', '?')} (TF32 matmul {'on' if p.get('allow_tf32_matmul') else 'off'}, "
                  f"cuDNN TF32 {'on' if p.get('allow_tf32_cudnn') else 'off'}); device {p.get('device', '?')}; "
                  f"batch {p.get('batch_size', '?')}; mode: in = normals pushed up, out = anomalies pushed down."]
        if self.checks:
            lines += ["", "Gradient-masking checks:", ""]
            lines += [f"- {c}" for c in self.checks]
            if self.failed_checks:
                lines += ["", f"**{_FAIL}: {len(self.failed_checks)} of {len(self.checks)} -- the robust AUROCs "
                              f"above are NOT trustworthy.**"]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:  # Jupyter shows the table
        return self.table()

    def __str__(self) -> str:
        return self.table()

    def to_dict(self, include_scores: bool = True) -> dict[str, Any]:
        """Plain data (json-able): AUROCs, protocols, checks and (optionally) the score arrays."""
        d: dict[str, Any] = {
            "score": self.score_name,
            "clean_auroc": self.clean_auroc,
            "protocol": _plain(self.protocol),
            "attacks": [{"name": a.spec.name, "spec": _plain(dataclasses.asdict(a.spec)), "auroc": a.auroc,
                         "protocol": _plain(a.protocol),
                         **({"scores": a.scores.tolist()} if include_scores else {})} for a in self.attacks],
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail, "data": _plain(c.data)}
                       for c in self.checks],
        }
        if include_scores:
            d["labels"] = self.labels.tolist()
            d["clean_scores"] = self.clean_scores.tolist()
        return d


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, (torch.device, torch.dtype)):
        return str(v)
    return v


# --------------------------------------------------------------------------------------------- evaluate
def _resolve_data(data: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(data, "test") and isinstance(getattr(data, "test"), Split):  # an ADDataset
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
    labels = torch.as_tensor(labels).detach().cpu().long().reshape(-1)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries for {images.shape[0]} images")
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    if int(labels.sum()) in (0, labels.shape[0]):
        raise ValueError("the test set needs both normal (0) and anomalous (1) images")
    return images, labels


def _device_of(score: Any, images: torch.Tensor, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    dev = getattr(score, "device", None)
    return torch.device(dev) if dev is not None else images.device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


Precision = Literal["fp32", "bf16"]


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


def _score_batches(score: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int,
                   device: torch.device, perturb: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
                   labels: torch.Tensor, keep: bool) -> tuple[np.ndarray, torch.Tensor | None]:
    """Score every batch (optionally perturbed first); the partition is the same for every call."""
    out, kept = [], []
    for start in range(0, images.shape[0], batch_size):
        xb = to_float(images[start:start + batch_size].to(device))
        if xb.dtype != torch.float32:
            xb = xb.float()
        if perturb is not None:
            xb = perturb(xb, labels[start:start + batch_size].to(device))
        with torch.no_grad():
            s = score(xb)
        if s.shape != (xb.shape[0],):
            raise ValueError(f"score must return shape ({xb.shape[0]},), got {tuple(s.shape)}")
        out.append(s.detach().double().cpu())
        if keep:
            kept.append(xb.detach().cpu())
    return torch.cat(out).numpy(), (torch.cat(kept) if keep else None)


def evaluate(score: Callable[[torch.Tensor], torch.Tensor], test_split_or_images: Any, labels: Any = None, *,
             attacks: Sequence[AttackSpec | str] = (), batch_size: int = 256,
             device: torch.device | str | None = None, seed: int = 0, keep_adversarial: bool = False,
             attack_fn: AttackFn | None = None, precision: Precision = "fp32") -> EvalResult:
    """Clean AUROC and, per attack, the attacked scores and robust AUROC, with the protocol recorded.

    Args:
        score: an :class:`radlib.score.AnomalyScore` (or any differentiable float (B, C, H, W) -> (B,)).
        test_split_or_images: a :class:`radlib.data.Split` (or an ``ADDataset``: its test split), or
            uint8/float images (N, C, H, W) with ``labels`` (N,) 0 normal / 1 anomaly.
        attacks: :class:`AttackSpec` s or strings (``"pgd-100@8/255"``, see :meth:`AttackSpec.from_string`).
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
    images, labels_t = _resolve_data(test_split_or_images, labels)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    specs = [_as_spec(a) for a in attacks]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"attack names must be unique, got {names}")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if attack_fn is None:
        from .attacks import attack_score as attack_fn
    dev = _device_of(score, images, device)
    if precision == "bf16":
        score = AutocastScore(score, dev.type)
    n_norm, n_anom = int((labels_t == 0).sum()), int((labels_t == 1).sum())
    common = {"n_normal": n_norm, "n_anomalous": n_anom, "batch_size": batch_size, "device": str(dev),
              **_precision_facts(dev, precision), "torch": torch.__version__}

    _sync(dev)
    t0 = time.perf_counter()
    clean, _ = _score_batches(score, images, batch_size, dev, None, labels_t, False)
    _sync(dev)
    secs = time.perf_counter() - t0
    labels_np = labels_t.numpy()
    result = EvalResult(score_name=str(getattr(score, "name", type(score).__name__)), labels=labels_np,
                        clean_scores=clean, clean_auroc=auroc(clean, labels_np),
                        protocol={**common, "seed": seed, "seconds": secs,
                                  "images_per_s": len(clean) / max(secs, 1e-9)})

    for spec in specs:
        spec_seed = seed if spec.seed is None else spec.seed
        gen = make_generator(spec_seed, dev)

        def perturb(xb: torch.Tensor, lb: torch.Tensor, spec: AttackSpec = spec, gen: torch.Generator = gen
                    ) -> torch.Tensor:
            return attack_fn(score, xb, lb, eps=spec.eps, steps=spec.steps, method=spec.method, mode=spec.mode,
                             norm=spec.norm, alpha=spec.alpha, restarts=spec.restarts, generator=gen)

        _sync(dev)
        t0 = time.perf_counter()
        scores, adv = _score_batches(score, images, batch_size, dev, perturb, labels_t, keep_adversarial)
        _sync(dev)
        secs = time.perf_counter() - t0
        n_att = {"both": n_norm + n_anom, "in": n_norm, "out": n_anom}[spec.mode]
        protocol = {"attack": spec.name, "description": spec.describe(), "method": spec.method, "mode": spec.mode,
                    "attacked": _ATTACKED[spec.mode], "norm": spec.norm, "eps": spec.eps,
                    "eps_str": format_eps(spec.eps), "steps": spec.steps, "alpha": spec.alpha_effective,
                    "alpha_rule": ("adaptive (APGD)" if spec.method == "apgd" else
                                   "2.5*eps/steps" if spec.alpha is None else "fixed"),
                    "restarts": spec.restarts, "seed": spec_seed, **common, "n_attacked": n_att,
                    "seconds": secs, "images_per_s": n_att / max(secs, 1e-9)}
        result.attacks.append(AttackResult(spec, scores, auroc(scores, labels_np), protocol, adv))
    return result


def _split_result(result: EvalResult) -> list[EvalResult]:
    return [dataclasses.replace(result, attacks=[a], checks=list(result.checks)) for a in result.attacks]


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
    specs = [AttackSpec(method=method, mode=mode, norm=norm, eps=e, steps=steps, alpha=alpha, restarts=restarts)
             for e in eps_list]
    return _split_result(evaluate(score, data, labels, attacks=_unique(specs), batch_size=batch_size,
                                  device=device, seed=seed, attack_fn=attack_fn, precision=precision))


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
    specs = [AttackSpec(method=method, mode=mode, norm=norm, eps=eps, steps=s, alpha=alpha, restarts=restarts)
             for s in steps_list]
    return _split_result(evaluate(score, data, labels, attacks=_unique(specs), batch_size=batch_size,
                                  device=device, seed=seed, attack_fn=attack_fn, precision=precision))


def _unique(specs: list[AttackSpec]) -> list[AttackSpec]:
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate attacks in the sweep: {names}")
    return specs


# --------------------------------------------------------------------------------------------- checks
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
                   verbose: bool = True) -> list[Check]:
    """Sanity checks that a robust AUROC is not an artefact of gradient masking (Carlini et al. 2019 list).

    Checks (all AUROCs in percent, ``tol`` in AUROC points):
      1. the score has finite, non-zero input gradients (on up to 32 test images);
      2. ``eps = 0`` reproduces the clean AUROC exactly (same scores up to 1e-9 AUROC points);
      3. the robust AUROC does not rise with eps (clean, ``eps_list``..., ``large_eps``; each <= previous + tol);
      4. it does not rise with the number of steps (``steps_list``, each <= previous + tol);
      5. ``restarts`` random restarts never help the defender (AUROC <= 1-restart AUROC + tol);
      6. the attack beats random noise of the same size (attacked AUROC <= noise AUROC + tol);
      7. a large eps (default 128/255) drives the AUROC below ``large_eps_max_auroc`` (default 10);
      8. only for a score with exact bounds (``score.bounds``, e.g. :class:`radlib.certify.PixelKNNScore`): the
         attack at ``eps`` does not go below the certified AUROC (:func:`radlib.certify.certificate_checks`).

    Defaults: ``eps_list = (eps/4, eps/2, eps)``, ``steps_list = (max(1, steps // 4), steps)``.
    All attacks share one clean pass. Failed checks are printed with ``!! GRADIENT-MASKING CHECK FAILED``
    (``verbose``) and, if ``result`` is given, appended to ``result.checks`` (shown by ``result.table()``).
    Returns the list of :class:`Check`.
    """
    from .attacks import random_noise

    eps = parse_eps(eps)
    large = parse_eps(large_eps)
    if eps <= 0:
        raise ValueError(f"eps must be > 0 for the masking checks, got {eps}")
    eps_l = sorted({parse_eps(e) for e in (eps_list if eps_list is not None else (eps / 4, eps / 2, eps))} | {eps})
    steps_l = sorted(set(steps_list if steps_list is not None else (max(1, steps // 4), steps)) | {steps})
    if not isinstance(restarts, int) or restarts < 2:
        raise ValueError(f"restarts must be an int >= 2 for the restart check, got {restarts!r}")
    base = dict(method=method, mode=mode, norm=norm)
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

    images, labels_t = _resolve_data(data, labels)
    dev = _device_of(score, images, device)
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
    noise_scores, _ = _score_batches(
        score, images, batch_size, dev,
        lambda xb, lb: _noise_subset(random_noise, xb, lb, eps, norm, mode, gen), labels_t, False)
    noise_auc = auroc(noise_scores, res.labels)
    checks.append(Check("attack beats random noise of the same eps", a[n_main] <= noise_auc + tol,
                        f"attack {a[n_main]:.2f} vs random noise {noise_auc:.2f} at eps {format_eps(eps)}",
                        {"attack": a[n_main], "noise": noise_auc}))

    checks.append(Check(f"large eps ({format_eps(large)}) drives AUROC toward 0", a[n_large] < large_eps_max_auroc,
                        f"AUROC {a[n_large]:.2f} at eps {format_eps(large)} (must be < {large_eps_max_auroc:g})",
                        {"auroc": a[n_large], "eps": large}))

    if callable(getattr(score, "bounds", None)):
        from .certify import certificate_checks  # certify builds on this module: import on use

        main = next(r for r in _split_result(res) if r.attacks[0].spec.name == n_main)
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


# --------------------------------------------------------------------------------------------- figures
def plot_score_histograms(result: EvalResult, attack_name: str | None = None, bins: int = 40) -> Any:
    """Histograms of normal and anomalous scores, clean (left) vs attacked (right); returns a Figure.

    ``attack_name``: default the last attack of ``result``. Never calls ``plt.show()``.
    """
    from matplotlib.figure import Figure

    if not result.attacks:
        raise ValueError("result has no attacks to plot")
    att = result.attacks[-1] if attack_name is None else result[attack_name]
    y = result.labels
    both = np.concatenate([result.clean_scores, att.scores])
    both = both[np.isfinite(both)]
    edges = np.histogram_bin_edges(both, bins=bins)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    panels = [(axes[0], result.clean_scores, f"clean (AUROC {result.clean_auroc:.1f})"),
              (axes[1], att.scores, f"{att.spec.name} (AUROC {att.auroc:.1f})")]
    for ax, s, title in panels:
        ax.hist(s[y == 0], bins=edges, alpha=0.6, color="tab:blue", label=f"normal (n={int((y == 0).sum())})")
        ax.hist(s[y == 1], bins=edges, alpha=0.6, color="tab:red", label=f"anomalous (n={int((y == 1).sum())})")
        ax.set_title(title)
        ax.set_xlabel("anomaly score (higher = more anomalous)")
        ax.legend()
    axes[0].set_ylabel("number of test images")
    fig.suptitle(f"{result.score_name}: clean AUROC {result.clean_auroc:.1f} -> {att.auroc:.1f} under "
                 f"{att.spec.describe()}", fontsize=9)
    return fig


def plot_auroc_vs_eps(sweep: EvalResult | Sequence[EvalResult]) -> Any:
    """Robust AUROC against eps (one line per method/steps/mode/norm), clean AUROC and chance as references.

    ``sweep``: the list from :func:`sweep_eps` (or one :class:`EvalResult` with several attacks). Returns a Figure.
    """
    from matplotlib.figure import Figure

    results = [sweep] if isinstance(sweep, EvalResult) else list(sweep)
    if not results:
        raise ValueError("sweep is empty")
    groups: dict[tuple[Any, ...], list[tuple[float, float]]] = {}
    norms = set()
    for r in results:
        for a in r.attacks:
            key = (a.spec.method, a.spec.steps, a.spec.mode, a.spec.norm, a.spec.restarts)
            groups.setdefault(key, []).append((a.spec.eps, a.auroc))
            norms.add(a.spec.norm)
    if not groups:
        raise ValueError("the sweep holds no attacks")
    linf_only = norms == {"linf"}
    scale = 255.0 if linf_only else 1.0
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for (method, steps, mode, norm, rs), pts in groups.items():
        pts = sorted(pts)
        label = f"{method.upper()}-{steps} {norm} mode={mode}" + (f" x{rs} restarts" if rs > 1 else "")
        ax.plot([e * scale for e, _ in pts], [v for _, v in pts], marker="o", label=label)
    clean = results[0].clean_auroc
    ax.axhline(clean, color="k", ls="--", lw=1, label=f"clean ({clean:.1f})")
    ax.axhline(50, color="grey", ls=":", lw=1, label="chance (50)")
    ax.set_xlabel("eps (x 1/255, L-inf)" if linf_only else "eps (pixel units)")
    ax.set_ylabel("AUROC (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{results[0].score_name}: robust AUROC vs attack radius")
    ax.legend(fontsize=8)
    return fig
