"""One attack on the score as plain data: :class:`AttackSpec`, its short string form and its protocol line.

Example:
    >>> from radlib.specs import AttackSpec
    >>> spec = AttackSpec.from_string("pgd-20@4/255,mode=in")
    >>> spec.steps, spec.mode, spec.short()
    (20, 'in', 'pgd-20@4/255,mode=in')
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal, cast

from .attacks import ATTACK_METHODS as _METHODS, MODES as _MODES, NORMS as _NORMS, step_size
from .metrics import format_eps
from .validate import check_attack_args

__all__ = ["AttackSpec", "as_spec", "ATTACKED", "WORST", "standard_attacks", "RUN_ATTACKS"]

#: what the evaluation of a run can be (``radlib evaluate --attack``, ``radlib sweep --attack``,
#: :func:`radlib.pipeline.evaluate_checkpoint`): one attack method, the standard worst case, or no attack
RUN_ATTACKS = (*_METHODS, "standard", "none")

#: the method name of the per-sample worst case over the attacks listed before it (not an attack of its own)
WORST: Literal["worst"] = "worst"

ATTACKED = {"both": "normals pushed up (in) + anomalies pushed down (out)",
             "in": "normals pushed up (in-attack); anomalies clean",
             "out": "anomalies pushed down (out-attack); normals clean"}


@dataclass(frozen=True, kw_only=True)
class AttackSpec:
    """One attack on the score, as plain data.

    Attributes:
        name: label used in tables (default: the short form, e.g. ``"pgd-100@8/255"``).
        method: ``"pgd"``, ``"apgd"``, ``"square"`` (the gradient-free Square attack, :mod:`radlib.attacks.square`;
            ``steps`` is its query budget) or ``"worst"`` (:data:`WORST`: not an attack but the per-sample worst
            case over every attack listed before it in :func:`radlib.evaluate.evaluate`; ``steps`` counts them).
        mode: ``"both"`` (in + out), ``"in"`` (normals only) or ``"out"`` (anomalies only).
        norm: ``"linf"`` or ``"l2"``.
        eps: radius in pixel units (a string like ``"8/255"`` or a 0-dim tensor is accepted and parsed); at most
            1 for L-inf.
        steps: attack iterations (>= 1; 0 only with eps 0, the identity "attack").
        alpha: PGD step size (> 0); None = :func:`radlib.attacks.step_size` (``2.5 * eps / steps``). Ignored by
            APGD.
        restarts: random restarts (>= 1, best per sample is kept).
        seed: seed of the random starts; None = the ``seed`` given to :func:`evaluate`.
        surrogate: a transfer attack: the images are crafted on the score named so in ``evaluate(...,
            surrogates={name: score})`` (another model, or the same method with another seed) and then scored by
            the evaluated score; None = white-box (crafted on the evaluated score).

    The numbers are checked by :func:`radlib.validate.check_attack_args`, as in
    :func:`radlib.attacks.attack_score`.
    """

    name: str = ""
    method: Literal["pgd", "apgd", "square", "worst"] = "pgd"
    mode: Literal["both", "in", "out"] = "both"
    norm: Literal["linf", "l2"] = "linf"
    eps: float = 8 / 255
    steps: int = 10
    alpha: float | None = None
    restarts: int = 1
    seed: int | None = None
    surrogate: str | None = None

    def __post_init__(self) -> None:
        if self.method not in (*_METHODS, WORST):
            raise ValueError(f"method must be one of {(*_METHODS, WORST)}, got {self.method!r}")
        if self.surrogate is not None and (not isinstance(self.surrogate, str) or not self.surrogate
                                           or self.method == WORST):
            raise ValueError(f"surrogate must be a non-empty name (a key of evaluate's surrogates) on an attack, "
                             f"got {self.surrogate!r} with method {self.method!r}")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if self.norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {self.norm!r}")
        args = check_attack_args(self.eps, steps=self.steps, norm=self.norm, alpha=self.alpha,
                                 restarts=self.restarts)
        for key, value in args._asdict().items():
            object.__setattr__(self, key, value)
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {type(self.name).__name__}")
        if not self.name:
            object.__setattr__(self, "name", self.short())

    @property
    def alpha_effective(self) -> float | None:
        """The PGD step size actually used (None for APGD, which adapts its own, Square and the worst case)."""
        if self.method != "pgd":
            return None
        return step_size(self.eps, self.steps, self.alpha)

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
        if self.surrogate is not None:
            opts.append(f"surrogate={self.surrogate}")
        return ",".join([s, *opts])

    def describe(self) -> str:
        """One human line, e.g. ``"PGD-100, L-inf eps=8/255, alpha=2.5*eps/steps (0.000784), 1 restart, ..."``."""
        norm = "L-inf" if self.norm == "linf" else "L2"
        if self.method == WORST:
            return (f"per-sample worst case of the {self.steps} attacks above (each normal at its highest attacked "
                    f"score, each anomaly at its lowest), {norm} eps={format_eps(self.eps)}")
        if self.method == "square":
            seed = "evaluate's seed" if self.seed is None else str(self.seed)
            rs = f"{self.restarts} restart" + ("s" if self.restarts != 1 else "")
            return (f"Square-{self.steps} (gradient-free: {self.steps} queries of the score), {norm} "
                    f"eps={format_eps(self.eps)}, {rs}, attacked: {ATTACKED[self.mode]}, seed={seed}"
                    + (f", crafted on surrogate {self.surrogate!r} (transfer)" if self.surrogate else ""))
        if self.method == "apgd":
            step = "adaptive step (APGD)"
        elif self.alpha is None:
            step = f"alpha=2.5*eps/steps ({self.alpha_effective:.4g})"
        else:
            step = f"alpha={format_eps(self.alpha)}"
        rs = f"{self.restarts} restart" + ("s" if self.restarts != 1 else "")
        seed = "evaluate's seed" if self.seed is None else str(self.seed)
        return (f"{self.method.upper()}-{self.steps}, {norm} eps={format_eps(self.eps)}, {step}, {rs}, "
                f"attacked: {ATTACKED[self.mode]}, seed={seed}"
                + (f", crafted on surrogate {self.surrogate!r} (transfer)" if self.surrogate else ""))

    @classmethod
    def from_string(cls, text: str) -> "AttackSpec":
        """Parse ``"<method>-<steps>@<eps>[,key=value...]"``, e.g. ``"pgd-100@8/255"``,
        ``"apgd-100@8/255,mode=in,restarts=3"``, ``"square-1000@8/255"``, ``"pgd-10@8/255,surrogate=seed1"``.
        Keys: mode, norm, alpha, restarts, seed, surrogate, name."""
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
            if key in ("mode", "norm", "name", "surrogate"):
                kwargs[key] = value if key in ("name", "surrogate") else value.lower()
            elif key == "alpha":
                kwargs[key] = value
            elif key in ("restarts", "seed"):
                try:
                    kwargs[key] = int(value)
                except ValueError as e:
                    raise ValueError(f"{key} must be an int in attack spec {text!r}, got {value!r}") from e
            else:
                raise ValueError(f"unknown key {key!r} in attack spec {text!r} "
                                 f"(known: mode, norm, alpha, restarts, seed, surrogate, name)")
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "AttackSpec":
        """A copy with some fields changed; the default name is recomputed unless given."""
        base = dataclasses.asdict(self)
        if base["name"] == self.short() and "name" not in changes:
            base["name"] = ""
        base.update(changes)
        return AttackSpec(**base)


def standard_attacks(eps: float | str = 8 / 255, *, steps: int = 100, restarts: int = 3, queries: int = 1000,
                     norm: Literal["linf", "l2"] = "linf", surrogates: tuple[str, ...] | list[str] = ()
                     ) -> list[AttackSpec]:
    """The standard worst-case evaluation (``evaluate(..., attacks="standard")`` with the defaults): in+out APGD
    with ``restarts`` restarts, the gradient-free Square attack with ``queries`` queries, one PGD transfer attack
    from each named surrogate, and last their per-sample worst case (:data:`WORST`), which is the headline number
    (``EvalResult.robust_auroc``): each normal takes its highest attacked score and each anomaly its lowest, a
    valid attack, so its AUROC is at most every single attack's (an upper bound on the true robust AUROC).

    Follows AutoAttack's recipe (APGD + Square) adapted to a score: APGD-CE and APGD-T become one in+out APGD on
    the score (a score has no classes to target), FAB is left out (it needs a decision boundary), and transfer
    attacks are added as Carlini et al. (2019) and Tramer et al. (2020) advise.

    >>> [a.name for a in standard_attacks("8/255", steps=20, queries=100, surrogates=["seed1"])]
    ['apgd-20@8/255,restarts=3', 'square-100@8/255', 'pgd-20@8/255,surrogate=seed1', 'worst-3@8/255']
    """
    e = cast(float, eps)  # AttackSpec parses and checks a string or a tensor itself, with its own messages
    specs = [AttackSpec(method="apgd", eps=e, steps=steps, restarts=restarts, norm=norm),
             AttackSpec(method="square", eps=e, steps=queries, norm=norm)]
    specs += [AttackSpec(method="pgd", eps=e, steps=steps, norm=norm, surrogate=name) for name in surrogates]
    specs.append(AttackSpec(method=WORST, eps=e, steps=len(specs), norm=norm))
    return specs


def as_spec(a: AttackSpec | str) -> AttackSpec:
    if isinstance(a, AttackSpec):
        return a
    if isinstance(a, str):
        return AttackSpec.from_string(a)
    raise TypeError(f"attacks must be AttackSpec objects or strings like 'pgd-10@8/255', got {type(a).__name__}")
