"""Results that render themselves: :class:`EvalResult` (clean + attacked AUROCs with their protocol),
:class:`AttackResult` and the gradient-masking :class:`Check`.

Example:
    >>> import numpy as np
    >>> from radlib.results import EvalResult
    >>> r = EvalResult("toy", np.array([0, 1]), np.array([0.1, 0.9]), 100.0)
    >>> r.clean_auroc, r.table().splitlines()[0]
    (100.0, '**toy** -- ? normal / ? anomalous test images')
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import torch

from .metrics import format_eps
from .specs import AttackSpec

__all__ = ["Check", "format_checks", "AttackResult", "EvalResult", "FAIL"]

FAIL = "!! GRADIENT-MASKING CHECK FAILED"


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
        return f"{FAIL}: {self.name} -- {self.detail}"


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
        clean_scores: float64 (N,); clean_auroc: percent (:attr:`robust_auroc`: under the headline attack).
        attacks: one :class:`AttackResult` per attack, in the order given.
        protocol: facts of the clean evaluation (counts, batch size, device, precision, TF32, seed, time).
        checks: gradient-masking checks attached by :func:`radlib.checks.masking_checks` (``result=``).
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

    @property
    def robust_auroc(self) -> float:
        """AUROC under the headline attack (the last one), in percent; :meth:`auroc_under` names another."""
        return self.auroc_under(None)

    def auroc_under(self, name: str | None = None) -> float:
        """AUROC under attack ``name`` (None: the last attack), in percent."""
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
            alpha = (format_eps(q["alpha"]) if q["alpha"] is not None else
                     "adaptive" if q["method"] == "apgd" else "-")
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
                lines += ["", f"**{FAIL}: {len(self.failed_checks)} of {len(self.checks)} -- the robust AUROCs "
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalResult":
        """The result :meth:`to_dict` wrote (with its scores); the arrays come back float64 / int64 and equal
        (adversarial images are not stored). Raises ValueError for a dict written without the scores."""
        missing = [k for k in ("score", "clean_auroc", "protocol", "attacks", "checks", "labels", "clean_scores")
                   if k not in d] + [f"attacks[{i}].scores" for i, a in enumerate(d.get("attacks", []))
                                     if "scores" not in a]
        if missing:
            raise ValueError(f"not a full EvalResult.to_dict() (include_scores=True): missing {', '.join(missing)}")
        attacks = [AttackResult(AttackSpec(**a["spec"]), np.asarray(a["scores"], dtype=np.float64), float(a["auroc"]),
                                dict(a["protocol"])) for a in d["attacks"]]
        checks = [Check(c["name"], bool(c["passed"]), c["detail"], dict(c["data"])) for c in d["checks"]]
        return cls(str(d["score"]), np.asarray(d["labels"], dtype=np.int64),
                   np.asarray(d["clean_scores"], dtype=np.float64), float(d["clean_auroc"]), attacks,
                   dict(d["protocol"]), checks)


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
    if isinstance(v, (str, torch.device, torch.dtype)):
        return str(v)  # also a str subclass (torch.__version__ is a TorchVersion): plain data loads safely
    return v


