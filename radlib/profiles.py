"""Run profiles: ``smoke`` (CPU / CI, seconds), ``cpu`` (a 2-core laptop or lab PC, minutes: shows the robust
gap), ``lab`` (free Colab T4, <= 15 min per notebook) and ``paper`` (the paper's full settings). The one place
that says how big a run is.

Selection: an explicit name, else ``$RADLIB_PROFILE``, else ``lab`` when a GPU is present and ``cpu``
without one (``CI=true`` forces ``smoke`` unless ``RADLIB_PROFILE`` says otherwise).

Example:
    >>> from radlib.profiles import get_profile
    >>> p = get_profile("cpu")
    >>> p.low_res_size, p.train_steps, p.epochs_for(119)  # 160 steps of 16 images: 23 epochs of 119 images
    (16, 160, 23)
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .device import select_device

#: the anomaly scores a profile can ask for (:func:`radlib.score.fit_score` fits each)
ScoreKind = Literal["own", "knn", "patch"]
#: arithmetic for scoring and attacking (:func:`radlib.evaluate.evaluate`)
Precision = Literal["fp32", "bf16"]

__all__ = ["Profile", "PROFILES", "get_profile", "apply_overrides"]


@dataclass(frozen=True)
class Profile:
    """Sizes of a run. Every field is plain data; derive configs from it, never mutate it.

    Attributes:
        name: ``smoke`` / ``cpu`` / ``lab`` / ``paper``.
        description: one line for humans.
        image_size: side for industrial / texture data (casting, MVTec, surfaces).
        low_res_size: side for natural low-resolution data (CIFAR, MNIST, digits).
        n_train, n_test: images generated per split for the embedded ``surfaces`` data.
        max_train, max_test: caps on real datasets (None = all).
        epochs, batch_size, lr, warmup_epochs: training schedule; ``lr`` is the peak learning rate of
            ``optimizer`` after warm-up.
        optimizer: ``lars`` (the paper: lr 0.1 warmed up x10 to a peak of 1.0, trust coefficient 0.001) or
            ``adam`` (AdamW). LARS' effective step is ``lr * 0.001 * ||w|| / ||g||``: right for 100 epochs,
            far too small to learn anything in the few hundred steps of a short run, so the short
            profiles use AdamW at 1e-3 (``cpu``: 2e-3) (measured: ``benchmarks/RESULTS.md``, "Measurements behind the docstrings").
        width: ResNet-18 base width (64 = the standard network; 16 for CPU smoke runs).
        train_attack_steps: PGD steps of each COBRA training attack (paper: 10).
        train_eps: L-inf eps of the training attacks in pixel units (paper: 8/255).
        eval_steps: PGD steps of the evaluation attacks (paper: up to 1000).
        eval_eps: L-inf eps of the evaluation attacks (None: 8/255 at <= 64 px, 4/255 above).
        eval_samples: fixed augmentation samples averaged by the ensemble score (official eval: 10).
        eval_augment: the official test-time augmentation in the ensemble score (flip, colour jitter, grey,
            a 0.54 crop at low resolution; :func:`radlib.score.official_tta`); False scores the images as
            they are. Recorded in every protocol (``score_tta``).
        eval_precision: ``"fp32"`` or ``"bf16"`` (autocast) for scoring and attacking; bf16 only where it has
            been measured to keep the robust AUROC within 1 point of fp32 (``bench_eval.py --precision-check``).
        amp: bf16 autocast in training where the hardware has native bf16 (:func:`radlib.device.autocast_dtype`).
        score: the anomaly score fitted after training, ``"own"`` (the method's: the CSI/COBRA ensemble score;
            kNN for msc), ``"knn"`` (mean cosine distance to the 2 nearest normal-train backbone features, any
            method) or ``"patch"`` (PatchCore-style: each stage-3 local feature's distance to its nearest
            normal-train local feature, max over positions); see :func:`radlib.score.fit_score`.
        data: the notebooks' teaching data set as ``"name/category"`` (:attr:`dataset`): ``surfaces/metal``
            (generated brushed metal, with defect masks) in every profile: textures whose normal images differ
            everywhere, where the untrained pixel kNN fails and learning has to earn its place (on ``digits``, the
            ``cpu`` data until 2026-12-04, the pixel kNN beat every trained detector, certified:
            ``benchmarks/RESULTS.md``, "Learning that earns its place"); every notebook that trains uses it, so
            they share their trained detectors through the cache.
        opposite_weight: weight of COBRA's opposite-pair term (radlib's addition to the official loop, so there is
            no official value; 1.0 unless a measurement says otherwise: the ``cpu`` profile's 2.0 with lr 2e-3
            raised COBRA's PGD-20 AUROC at 4/255 on ``surfaces/metal`` from 26.0 +- 6.3 to 38.2 +- 4.4 over 3
            seeds, CSI staying at 0.6 +- 0.5: ``benchmarks/RESULTS.md``, "The `cpu` recipe, third version").
        seeds: how many seeds a notebook trains for a claim that compares methods (mean ± std; 1 = no spread).
        train_steps: None = train ``epochs`` epochs; an int = a budget of optimiser steps, whatever the size of the
            training set: ``epochs`` becomes ``ceil(train_steps / steps per epoch)`` (:meth:`epochs_for`), so a
            119-image class of digits and a 1,000-image class of Fashion-MNIST get the same amount of training.
        overridden: the fields changed by ``$RADLIB_PROFILE_OVERRIDES`` (:func:`apply_overrides`); empty for a
            profile as defined here.
    """

    name: str
    description: str
    image_size: int
    low_res_size: int
    n_train: int
    n_test: int
    max_train: int | None
    max_test: int | None
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    warmup_epochs: int
    width: int
    train_attack_steps: int
    train_eps: float
    eval_steps: int
    eval_eps: float | None
    eval_samples: int
    eval_augment: bool = False
    eval_precision: Precision = "fp32"
    amp: bool = True
    train_steps: int | None = None
    score: ScoreKind = "own"
    data: str = "surfaces/metal"
    seeds: int = 1
    opposite_weight: float = 1.0
    overridden: tuple[str, ...] = ()

    @property
    def dataset(self) -> tuple[str, str | None]:
        """``data`` as ``(name, category)`` for :func:`radlib.pipeline.load_data` (category None where there is
        none, e.g. ``"casting"``)."""
        name, _, category = self.data.partition("/")
        return name, (category or None)

    @property
    def asserts_claims(self) -> bool:
        """Whether a notebook asserts its *numeric* claims (COBRA beats CSI under attack, ...) in this profile:
        ``cpu``, ``lab`` and ``paper`` as defined here; not ``smoke`` (its sizes are too small to learn) and not an
        overridden profile (e.g. the tiny-size lab-path run of the tests). Checks that hold at any size (an
        attack never raises the AUROC, shapes, bounds) are asserted in every profile."""
        return self.name != "smoke" and not self.overridden

    def __post_init__(self) -> None:
        if self.score not in ("own", "knn", "patch"):
            raise ValueError(f"score must be 'own', 'knn' or 'patch', got {self.score!r}")
        if self.eval_precision not in ("fp32", "bf16"):
            raise ValueError(f"eval_precision must be 'fp32' or 'bf16', got {self.eval_precision!r}")
        for name in ("train_eps", "eval_eps"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 1:
                raise ValueError(f"{name} must be in [0, 1] (pixel units, e.g. 8/255), got {v}")
        for name in ("seeds", "epochs", "batch_size", "eval_steps", "eval_samples", "width", "image_size",
                     "low_res_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.train_steps is not None and self.train_steps < 1:
            raise ValueError(f"train_steps must be None or >= 1, got {self.train_steps}")

    def epochs_for(self, n_train: int | None) -> int:
        """Epochs of a run on ``n_train`` images: ``epochs``, or the ``train_steps`` budget in epochs (steps per
        epoch = ``n_train // batch_size``, at least 1) when both are known."""
        if self.train_steps is None or not n_train:
            return self.epochs
        per_epoch = max(1, n_train // min(self.batch_size, n_train))
        return max(1, math.ceil(self.train_steps / per_epoch))

    def replace(self, **changes: Any) -> "Profile":
        """A copy with some fields changed (profiles are frozen)."""
        return dataclasses.replace(self, **changes)

    def banner(self, device: torch.device | str | None = None, smoke_note: str | None = None) -> str:
        """The line a notebook prints first: version, profile, device, and in ``smoke`` a loud caveat
        (``smoke_note`` replaces the generic one where a notebook has something more specific to say)."""
        from . import __version__
        text = f"radlib {__version__} · profile {self.name!r} ({self.description}) · device {device or select_device()}"
        if self.name == "smoke":
            text += "\nSMOKE PROFILE: " + (smoke_note or (
                "tiny data and 2 epochs. The numbers below only prove the pipeline runs; switch to "
                "RADLIB_PROFILE=lab on a GPU for numbers that teach something."))
        return text

    def eps_for(self, image_size: int) -> float:
        """Evaluation eps for a resolution: the profile's, else 8/255 at <= 64 px and 4/255 above."""
        if self.eval_eps is not None:
            return self.eval_eps
        return 8 / 255 if image_size <= 64 else 4 / 255


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", description="CPU / CI: proves the code path runs; its numbers teach nothing",
        image_size=32, low_res_size=32, n_train=96, n_test=64, max_train=128, max_test=64,
        epochs=2, batch_size=32, lr=1e-3, optimizer="adam", warmup_epochs=0, width=16,
        train_attack_steps=1, train_eps=8 / 255,
        eval_steps=2, eval_eps=None, eval_samples=1),
    # found by measurement on a 2-core CPU (benchmarks/RESULTS.md, "The `cpu` recipe", "The `cpu` budget" and
    # "Learning that earns its place", "The `cpu` recipe, third version"): AdamW steps of 16 images at lr 2e-3,
    # width 16, 2-step training attacks at 8/255, opposite-pair weight 2, 160 steps (cut from 700 so that the
    # series fits 30 minutes on 2 cores; the gap held at each cut), on 32 px surfaces/metal with the patch score
    # (on digits at 16 px raw pixels beat every trained detector)
    "cpu": Profile(
        name="cpu", description="a laptop or lab PC without a GPU (2 cores): minutes, shows the robust gap",
        image_size=32, low_res_size=16, n_train=256, n_test=200, max_train=1000, max_test=400,
        epochs=100, batch_size=16, lr=2e-3, optimizer="adam", warmup_epochs=1, width=16,
        train_attack_steps=2, train_eps=8 / 255,
        eval_steps=20, eval_eps=4 / 255, eval_samples=1, train_steps=160, score="patch",
        data="surfaces/metal", seeds=3, opposite_weight=2.0),
    "lab": Profile(
        name="lab", description="free Colab T4, <= 15 min per notebook (~1.5 min of H100)",
        image_size=64, low_res_size=32, n_train=512, n_test=400, max_train=2000, max_test=1000,
        epochs=30, batch_size=64, lr=1e-3, optimizer="adam", warmup_epochs=2, width=64,
        train_attack_steps=3, train_eps=8 / 255,
        eval_steps=20, eval_eps=None, eval_samples=1, seeds=3),
    "paper": Profile(
        name="paper", description="the paper's settings: ResNet-18 from scratch, 100 epochs, PGD-10 training",
        image_size=224, low_res_size=32, n_train=2000, n_test=1000, max_train=None, max_test=None,
        epochs=100, batch_size=64, lr=1.0, optimizer="lars", warmup_epochs=10, width=64,
        train_attack_steps=10, train_eps=8 / 255,
        eval_steps=1000, eval_eps=None, eval_samples=10, eval_augment=True, seeds=3),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else ``$RADLIB_PROFILE``, else ``lab`` with a GPU / ``cpu`` without
    (``smoke`` when ``CI`` is set).

    ``$RADLIB_PROFILE_OVERRIDES`` (``"epochs=1,n_train=32"``) changes fields of whichever profile is chosen,
    e.g. to walk a notebook's ``lab``-only code paths at tiny sizes on a CPU before spending GPU time on them;
    the description then says so (and so does :meth:`Profile.banner`).
    """
    name = name or os.environ.get("RADLIB_PROFILE") or None
    if name is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            name = "smoke"
        else:
            name = "lab" if select_device().type != "cpu" else "cpu"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    overrides = os.environ.get("RADLIB_PROFILE_OVERRIDES", "").strip()
    return apply_overrides(PROFILES[name], overrides) if overrides else PROFILES[name]


_OVERRIDABLE = {f.name: f.type for f in dataclasses.fields(Profile)
                if f.name not in ("name", "description", "overridden")}


def apply_overrides(profile: Profile, text: str) -> Profile:
    """``profile`` with the fields of ``"field=value,field=value"`` changed (ints, floats or ``a/b``, ``None``
    where the field allows it, strings). Raises ValueError naming the bad item."""
    changes: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in _OVERRIDABLE:
            raise ValueError(f"profile override {item!r}: expected FIELD=VALUE with FIELD one of "
                             f"{', '.join(sorted(_OVERRIDABLE))}")
        if key in changes:
            raise ValueError(f"profile override {key!r} is given twice; give each field once")
        kind = str(_OVERRIDABLE[key])
        try:
            if value.lower() == "none" and "None" in kind:
                changes[key] = None
            elif kind == "bool":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                changes[key] = value.lower() in ("true", "1")
            elif kind.startswith("int"):
                changes[key] = int(value)
            elif kind.startswith("float"):
                num, _, den = value.partition("/")  # "8/255" is allowed for the eps fields
                changes[key] = float(num) / float(den) if den else float(num)
            else:
                changes[key] = value
        except ValueError:
            raise ValueError(f"profile override {item!r}: {value!r} is not a valid {kind}") from None
    if not changes:
        return profile
    said = ", ".join(f"{k}={v}" for k, v in changes.items())
    return profile.replace(**changes, description=f"{profile.description} [overridden: {said}]",
                           overridden=tuple(sorted({*profile.overridden, *changes})))
