"""The method registry: one declarative record per training method, read by the trainer, the score, the CLI.

A method is what :func:`radlib.train.train` does in one step, stated as data: which training attacks make
extra views, which contrastive loss the views get, whether the opposite-pair term and the K-way head are
trained, whether the batch is expanded into pseudo-anomaly chunks, and which score the method ships with.
Adding a method = one :func:`register` call with its loss (a test adds a toy method this way alone).

============== ======================================================================================
``cobra``        NT-Xent over 4 chunks [v1, v2, ATPT(v1), ATNT(v2)] + opposite-pair term
                 + CE of the K-way head on [v1, v2, RTP(v2)] (the paper's L_COBRA + L_CLS, *with* the
                 opposite-pair loss that the official training loop never calls).
``cobra_no_opposite``  the same without the opposite-pair term (what the official code actually trains).
``adv_contrastive``    L_CL: adversarial NT-Xent over [v1, v2, ATPT(v1)], pseudo-anomalies as negatives.
``supcon``       L_SupCL: supervised contrastive over [v1, v2, ATPT(v1)] with group labels (no spurious
                 negatives: every normal attracts every normal).
``csi``          CSI: NT-Xent over [v1, v2] + CE head, no attacks (the non-robust baseline).
``msc``          Mean-Shifted Contrastive (Reiss & Hoshen): no pseudo-anomalies, no attacks, kNN score.
============== ======================================================================================

Example:
    >>> from radlib.methods import get_method
    >>> m = get_method("cobra")
    >>> m.attacks, m.opposite, m.head, m.own_score
    (('atpt', 'atnt', 'rtp'), True, True, 'ensemble')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

import torch

from . import losses


class LossSettings(Protocol):
    """What a method's contrastive loss reads from the run's config (:class:`radlib.config.TrainConfig`). A
    protocol rather than an import: ``config`` imports this module, so importing ``TrainConfig`` here, even for
    the type checker only, would close a circle."""

    @property
    def temperature(self) -> float: ...
    @property
    def nt_xent_reduction(self) -> Literal["pairs", "anchors"]: ...
    @property
    def msc_temperature(self) -> float: ...
    @property
    def msc_angular_weight(self) -> float: ...


__all__ = ["Method", "METHODS", "ATTACKS", "register", "unregister", "get_method"]

#: the training attacks a method can ask for, in the order the step runs them (each draws from the step's
#: generator in this order): ``atpt`` perturbs v1 (an extra contrastive view), ``atnt`` perturbs v2 (an extra
#: contrastive view, a positive of v2), ``rtp`` perturbs v2 against the K-way head (an extra head input).
ATTACKS = ("atpt", "atnt", "rtp")

#: ``loss(z, labels, n_views, cfg, center) -> scalar``: z (n_views * M, d) projections, view-major; labels (M,)
#: the chunk label of each row of one view; ``cfg`` the run's TrainConfig; ``center`` msc's feature centre.
ContrastiveLoss = Callable[[torch.Tensor, torch.Tensor, int, LossSettings, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class Method:
    """One training method, as data.

    Attributes:
        name: the key (``TrainConfig.method``, ``--method``).
        summary: one line for humans (the CLI's help, the notebooks' tables).
        loss_name: the name of the contrastive term in the loss history (``"nt_xent"``, ``"supcon"``, ...).
        loss: the contrastive term, see :data:`ContrastiveLoss`.
        attacks: the training attacks of :data:`ATTACKS` it runs, in that order (``rtp`` only when the head is
            trained: ``head`` and ``cls_weight > 0`` and K > 1).
        opposite: add the opposite-pair term (weighted by ``opposite_weight``; needs K > 1).
        head: train the K-way transformation head by cross-entropy (weighted by ``cls_weight``; needs K > 1).
            :func:`radlib.score.fit_score` uses the head in the ensemble score only for such methods.
        pseudo_anomalies: expand each batch into the K chunks of ``policy_for(dataset)``; False = one chunk.
        center: the loss needs the normal-train feature centre (computed once before training, checkpointed).
        own_score: what a profile's ``score="own"`` (:data:`radlib.profiles.ScoreKind`) fits for this method:
            ``"ensemble"`` (the CSI/COBRA score) or ``"knn"`` (feature kNN). The other kinds (``"knn"``,
            ``"patch"``) are the same for every method.
    """

    name: str
    summary: str
    loss_name: str
    loss: ContrastiveLoss
    attacks: tuple[str, ...] = ()
    opposite: bool = False
    head: bool = False
    pseudo_anomalies: bool = True
    center: bool = False
    own_score: Literal["ensemble", "knn"] = "ensemble"

    def __post_init__(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"a method name must be a Python identifier, got {self.name!r}")
        bad = [a for a in self.attacks if a not in ATTACKS]
        if bad or list(self.attacks) != sorted(self.attacks, key=ATTACKS.index) or len(set(self.attacks)) < len(
                self.attacks):
            raise ValueError(f"attacks must be distinct names of {ATTACKS} in that order, got {self.attacks}")
        if "rtp" in self.attacks and not self.head:
            raise ValueError(f"method {self.name!r}: the rtp attack feeds the K-way head, so it needs head=True")
        if not self.pseudo_anomalies and (self.opposite or self.head or "atnt" in self.attacks):
            raise ValueError(f"method {self.name!r}: opposite pairs, the head and atnt need pseudo-anomaly chunks")
        if self.own_score not in ("ensemble", "knn"):
            raise ValueError(f"own_score must be 'ensemble' or 'knn', got {self.own_score!r}")
        if not callable(self.loss):
            raise TypeError(f"loss must be callable, got {type(self.loss).__name__}")

    @property
    def adversarial(self) -> bool:
        """Whether the method runs training attacks at all."""
        return bool(self.attacks)


def _nt_xent(z: torch.Tensor, labels: torch.Tensor, n_views: int, cfg: LossSettings, center: Any) -> torch.Tensor:
    return losses.nt_xent(z, n_views=n_views, temperature=cfg.temperature, reduction=cfg.nt_xent_reduction)


def _supcon(z: torch.Tensor, labels: torch.Tensor, n_views: int, cfg: LossSettings, center: Any) -> torch.Tensor:
    return losses.supcon_loss(z, labels.repeat(n_views), temperature=cfg.temperature)


def _msc(z: torch.Tensor, labels: torch.Tensor, n_views: int, cfg: LossSettings, center: Any) -> torch.Tensor:
    return losses.msc_loss(z, center, n_views=n_views, temperature=cfg.msc_temperature,
                           angular_weight=cfg.msc_angular_weight)


#: every registered method by name (read it; change it through :func:`register` / :func:`unregister`)
METHODS: dict[str, Method] = {}


def register(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to :data:`METHODS` (``replace=True`` overwrites an entry of that name) and return it."""
    if not isinstance(method, Method):
        raise TypeError(f"register takes a Method, got {type(method).__name__}")
    if method.name in METHODS and not replace:
        raise ValueError(f"method {method.name!r} is already registered (pass replace=True to overwrite it)")
    METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method added by :func:`register` (e.g. a test's toy method)."""
    get_method(name)
    del METHODS[name]


def get_method(name: str) -> Method:
    """The registered method ``name``; ValueError naming the choices otherwise."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None



for _m in (
    Method("cobra", "COBRA: adversarial NT-Xent with ATPT+ATNT, opposite pairs, RTP-robust transformation head",
           "nt_xent", _nt_xent, attacks=("atpt", "atnt", "rtp"), opposite=True, head=True),
    Method("cobra_no_opposite", "COBRA without the opposite-pair term (the official training loop)",
           "nt_xent", _nt_xent, attacks=("atpt", "atnt", "rtp"), head=True),
    Method("adv_contrastive", "L_CL: adversarial contrastive learning (ATPT), pseudo-anomalies as negatives",
           "nt_xent", _nt_xent, attacks=("atpt",)),
    Method("supcon", "L_SupCL: adversarial supervised contrastive with group labels (no spurious negatives)",
           "supcon", _supcon, attacks=("atpt",)),
    Method("csi", "CSI: contrastive + transformation head, no attacks (not robust)", "nt_xent", _nt_xent, head=True),
    Method("msc", "Mean-Shifted Contrastive: features shifted by the normal mean, no attacks (not robust)",
           "msc", _msc, pseudo_anomalies=False, center=True, own_score="knn"),
):
    register(_m)
