"""Purify a contaminated training set before training: learning-bias purification (LLBNAD), for any detector.

Zhang et al., *Leveraging Learning Bias for Noisy Anomaly Detection* (LLBNAD, arXiv 2508.07441), stage 1:

1. split the training set at random into ``subsets`` disjoint parts (the official code: 3, contiguous slices
   of one shuffle, the last one taking the remainder);
2. train one sub-model per part (here: any radlib method through :func:`radlib.train.train` and
   :func:`radlib.score.fit_score`, or the model-free pixel kNN), and let **every** sub-model score **every**
   training image;
3. aggregate a sample's scores over the sub-models (official: the mean; the code also carries max and
   max x variance, commented out) and keep the fraction ``keep`` with the lowest aggregate.

The learning bias it relies on: normals dominate and are alike, so every sub-model learns them; anomalies are
rare and diverse, so the sub-models that never saw a given anomaly score it high. Stage 2 trains the final
detector on the kept images (:meth:`Purification.apply`, ``radlib.pipeline.run_method(..., purify=...)``).

radlib's departures and options, each measured:

- ``keep`` defaults to 0.8, not the official 0.2 (tuned on Real-IAD's thousands of images per class): the
  training sets here hold 100-1,000 images and 20 % of them is too few to train on. ``keep`` must be at most
  ``1 - contamination`` for the filter to be able to drop every anomaly: 0.8 recalls 100 % of the injected
  anomalies on digits up to 10 % contamination, while at 20 % it needs 0.5-0.7 (``bench_contamination.py
  --filter-sweep``, section "Contaminated training data" of ``benchmarks/RESULTS.md``).
- ``standardize=True`` (an option; default False, the official raw mean) z-scores each sub-model's scores over
  the training set before aggregating, for sub-models whose scores live on different scales. Measured at 10 %
  contamination, keep 0.8, 3 seeds: no gain, so the default stays official (pixel kNN: recall within 1 point
  on digits, Fashion-MNIST and casting; trained ``csi`` sub-models on digits: recall 92.3 ± 7.7 z-scored vs
  94.9 ± 8.9 raw).
- ``exclude_own``: kNN-type scores give a training image distance 0 to itself in its own sub-model's bank,
  so the own score carries little information; ``True`` aggregates only the sub-models that never saw the
  image. Default False, as the official code: measured, excluding it gains nothing (digits, Fashion-MNIST)
  and loses 4-7 recall points on casting; ``max`` also loses to the official ``mean`` on casting.

Example:
    >>> import torch
    >>> from radlib.data import Split
    >>> g = torch.Generator().manual_seed(0)
    >>> normal = (torch.rand(30, 3, 8, 8, generator=g) * 40 + 100).to(torch.uint8)  # a tight cluster
    >>> odd = ((torch.rand(3, 3, 8, 8, generator=g) > 0.5) * 255).to(torch.uint8)    # far, and unlike each other
    >>> split = Split(torch.cat([normal, odd]), torch.tensor([0] * 30 + [1] * 3), torch.zeros(33, dtype=torch.long),
    ...               contaminated=torch.tensor([False] * 30 + [True] * 3))
    >>> p = purify(split, "pixel_knn", keep=0.9, seed=0)
    >>> p.recall, len(p.kept)
    (1.0, 29)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from .certify import PixelKNNScore
from .data import ADDataset, Split
from .device import select_device
from .metrics import auroc
from .methods import METHODS
from .profiles import Profile, get_profile
from .score import AnomalyScore, ScoreKind, fit_score, score_images
from .train import TrainConfig, train
from .validate import check_pixel_range

__all__ = ["purify", "Purification", "split_subsets", "aggregate_scores", "keep_count", "PIXEL_KNN", "AGGREGATES"]

#: the model-free scorer (no training: each sub-model is the pixel kNN of its subset)
PIXEL_KNN = "pixel_knn"
#: how the sub-models' scores of a sample are combined (the official code's three)
AGGREGATES = ("mean", "max", "max_var")
Aggregate = Literal["mean", "max", "max_var"]


def keep_count(n: int, keep: float) -> int:
    """How many of ``n`` training images a purification with fraction ``keep`` keeps: ``int(keep * n)`` (with a
    1e-9 guard against 0.7 * 10 = 6.999...), at least 1.

    >>> keep_count(10, 0.7), keep_count(23, 0.05)
    (7, 1)
    """
    return max(1, int(keep * n + 1e-9))


def split_subsets(n: int, subsets: int, seed: int = 0) -> torch.Tensor:
    """The subset of each of ``n`` samples, int64 (n,) in ``[0, subsets)``: one seeded shuffle cut into
    ``subsets`` contiguous slices of ``n // subsets``, the last taking the remainder (the official split).
    Disjoint and covering by construction."""
    if not isinstance(subsets, int) or isinstance(subsets, bool) or subsets < 2:
        raise ValueError(f"subsets must be an int >= 2, got {subsets!r}")
    if subsets * 2 > n:
        raise ValueError(f"subsets={subsets} needs at least {2 * subsets} training images (2 per subset), got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    size = n // subsets
    which = torch.empty(n, dtype=torch.long)
    for j in range(subsets):
        end = (j + 1) * size if j < subsets - 1 else n
        which[order[j * size:end]] = j
    return which


def _zscore_rows(s: torch.Tensor) -> torch.Tensor:
    """Each sub-model's row (S, N) standardised over the training set, float64."""
    s = s.double()
    return (s - s.mean(dim=1, keepdim=True)) / s.std(dim=1, keepdim=True).clamp_min(1e-12)


def aggregate_scores(sub_scores: torch.Tensor, how: Aggregate = "mean", *, standardize: bool = False,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """Combine the sub-models' scores (S, N) into one purification score per sample (N,), higher = more anomalous.

    ``how``: ``"mean"`` (official), ``"max"``, or ``"max_var"`` (max x variance over the sub-models; it rewards
    sub-models that *disagree*, so an anomaly that every sub-model finds far away can rank low: not a
    distance score on its own, see ``tests/test_purify.py``).
    ``standardize``: z-score each sub-model's row first. ``mask`` (S, N) bool: which scores take part (e.g.
    only the sub-models that never saw the sample); every column needs at least one True.
    """
    if how not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {how!r}")
    s = _zscore_rows(sub_scores) if standardize else sub_scores.double()
    if mask is None:
        mask = torch.ones_like(s, dtype=torch.bool)
    if not bool(mask.any(dim=0).all()):
        raise ValueError("every sample needs at least one sub-model score (mask has an all-False column)")
    w = mask.double()
    mean = (s * w).sum(0) / w.sum(0)
    if how == "mean":
        return mean.float()
    mx = s.masked_fill(~mask, -math.inf).amax(0)
    if how == "max":
        return mx.float()
    var = (((s - mean) ** 2) * w).sum(0) / w.sum(0)
    return (mx * var).float()


@dataclass
class Purification:
    """What :func:`purify` found: which training images to keep, every score, and the filter's quality.

    Indices refer to the rows of the training split that was purified. ``precision``/``recall``/``auroc`` are
    None when the split carries no contaminated image: precision = share of the dropped images that were
    injected anomalies, recall = share of the injected anomalies that were dropped, auroc = how well the
    purification score ranks injected anomalies above normals (percent; threshold-free).
    """

    kept: torch.Tensor            # int64 (n_keep,), sorted
    dropped: torch.Tensor         # int64 (N - n_keep,), sorted
    scores: torch.Tensor          # float32 (N,), the aggregate, higher = more anomalous
    sub_scores: torch.Tensor      # float32 (S, N), sub-model s's score of every training image
    subset_of: torch.Tensor       # int64 (N,), the subset each image was trained in
    contaminated: torch.Tensor    # bool (N,), the split's flags (all False when unknown)
    method: str
    keep: float
    aggregate: str
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        """The largest kept score (images above it were dropped)."""
        return float(self.scores[self.kept].max())

    @property
    def n_contaminated(self) -> int:
        return int(self.contaminated.sum())

    @property
    def precision(self) -> float | None:
        if not self.n_contaminated or not len(self.dropped):
            return None
        return float(self.contaminated[self.dropped].float().mean())

    @property
    def recall(self) -> float | None:
        if not self.n_contaminated:
            return None
        return float(self.contaminated[self.dropped].sum()) / self.n_contaminated

    @property
    def auroc(self) -> float | None:
        if not self.n_contaminated or self.n_contaminated == len(self.scores):
            return None
        return auroc(self.scores, self.contaminated.long())

    def confusion(self) -> np.ndarray:
        """Counts int (2, 2): rows normal / injected anomaly, columns kept / dropped."""
        kept = torch.zeros(len(self.scores), dtype=torch.bool)
        kept[self.kept] = True
        c = self.contaminated
        return np.array([[int((~c & kept).sum()), int((~c & ~kept).sum())],
                         [int((c & kept).sum()), int((c & ~kept).sum())]])

    def own_vs_unseen(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image (N,): its score in its own sub-model and the mean score in the sub-models that never saw it
        (standardised per sub-model): the learning bias as two numbers per image."""
        s = _zscore_rows(self.sub_scores)
        own = s.gather(0, self.subset_of[None]).squeeze(0)
        unseen = (s.sum(0) - own) / (s.shape[0] - 1)
        return own.float(), unseen.float()

    def apply(self, ds: ADDataset) -> ADDataset:
        """``ds`` with its training split reduced to the kept images (the test split unchanged); ``meta`` records
        the purification (method, keep, dropped count, precision, recall)."""
        if len(ds.train) != len(self.scores):
            raise ValueError(f"this purification was computed on {len(self.scores)} training images, the dataset "
                             f"has {len(ds.train)}")
        return replace(ds, train=ds.train.subset(self.kept), meta=dict(ds.meta, purification=self.summary()))

    def summary(self) -> dict[str, Any]:
        """Plain data for protocols and JSON."""
        r = lambda v: None if v is None else round(v, 4)  # noqa: E731
        return {"method": self.method, "keep": self.keep, "aggregate": self.aggregate, "n_train": len(self.scores),
                "n_kept": len(self.kept), "n_dropped": len(self.dropped), "n_contaminated": self.n_contaminated,
                "precision": r(self.precision), "recall": r(self.recall), "auroc": r(self.auroc),
                "seconds": round(self.seconds, 2), **self.settings}

    def to_markdown(self) -> str:
        s = self.summary()
        pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
        lines = [f"purification: {s['method']}, {self.sub_scores.shape[0]} subsets, {s['aggregate']}, keep "
                 f"{self.keep:g}: kept {s['n_kept']} of {s['n_train']} ({s['seconds']:.0f} s)", "",
                 "| injected anomalies | dropped | precision | recall | score AUROC |", "|---|---|---|---|---|",
                 f"| {s['n_contaminated']} | {s['n_dropped']} | {pct(s['precision'])} | {pct(s['recall'])} | "
                 f"{'-' if s['auroc'] is None else format(s['auroc'], '.1f')} |"]
        return "\n".join(lines)

    def figure(self, bins: int = 30) -> Any:
        """Histogram of the purification score, normal vs injected anomalies, with the keep threshold."""
        from .viz import plot_purification
        return plot_purification(self, bins=bins)

    def __repr__(self) -> str:
        return (f"Purification({self.method}: kept {len(self.kept)}/{len(self.scores)}, recall {self.recall}, "
                f"precision {self.precision})")


def _split_of(data: ADDataset | Split) -> tuple[Split, str, str | None]:
    if isinstance(data, ADDataset):
        return data.train, data.name, data.normal
    if isinstance(data, Split):  # a bare split: the generic image-folder recipe (K=2 CutPaste scar policy)
        return data, "folder", None
    raise TypeError(f"data must be an ADDataset or a Split, got {type(data).__name__}")


def purify(data: ADDataset | Split, method: str = PIXEL_KNN, *, subsets: int = 3, keep: float = 0.8,
           aggregate: Aggregate = "mean", standardize: bool = False, exclude_own: bool = False,
           profile: Profile | str | None = "cpu", seed: int = 0, device: str | torch.device | None = None,
           score_kind: ScoreKind | None = None, progress: bool = False, **overrides: Any) -> Purification:
    """LLBNAD stage 1 on the training split of ``data``: which images to keep for training.

    Args:
        data: an :class:`~radlib.data.ADDataset` (its ``train`` split) or a :class:`~radlib.data.Split`
            (uint8 or float images (N, C, H, W); trained sub-models then use the ``folder`` recipe); its
            ``contaminated`` flags are only read for the report. Float images must be finite and in [0, 1].
        method: ``"pixel_knn"`` (no training) or any :data:`radlib.methods.METHODS` name (each sub-model is
            trained with ``profile``'s recipe on its subset, then scored with ``score_kind``).
        subsets: number of disjoint subsets, >= 2, each with at least 2 images. keep: the fraction of
            images kept, in (0, 1]; it must keep at least 2 images (the detector is trained on them).
            aggregate, standardize, exclude_own: see :func:`aggregate_scores` and the module docstring.
        seed: the split and every sub-model's seed (sub-model s trains with seed ``seed + s``).
        overrides: :class:`~radlib.train.TrainConfig` fields for the sub-models (e.g. ``epochs=5``).
    """
    split, name, normal = _split_of(data)
    if method != PIXEL_KNN and method not in METHODS:
        raise ValueError(f"method must be {PIXEL_KNN!r} or one of {sorted(METHODS)}, got {method!r}")
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise ValueError(f"keep must be a fraction in (0, 1], got {keep!r}")
    n = len(split)
    n_keep = keep_count(n, keep)
    if n_keep < 2 and n >= 2:  # fewer images: split_subsets says what it needs
        raise ValueError(f"keep={keep:g} keeps {n_keep} of the {n} training images, and the detector trained on the "
                         f"kept images needs at least 2: raise keep to at least {math.ceil(200 / max(n, 1)) / 100:g}")
    check_pixel_range(split.images, "training images")  # NaN images would be scored NaN and ranked anywhere
    which = split_subsets(n, subsets, seed)
    dev = select_device(device)
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    t0 = time.perf_counter()
    images = split.images
    rows = []
    for j in range(subsets):
        part = images[which == j]
        score: AnomalyScore
        if method == PIXEL_KNN:
            score = PixelKNNScore.fit(part, k=min(2, len(part)), device=dev)
        else:
            cfg = TrainConfig.from_profile(prof, method=method, dataset=name, image_size=images.shape[-1],
                                           n_train=len(part), category=normal, channels=images.shape[1],
                                           seed=seed + j, **overrides)
            res = train(cfg, part, device=dev, progress=progress)
            score = fit_score(res, part.to(dev), samples=prof.eval_samples, seed=seed + j,
                              kind=score_kind or prof.score, augment=prof.eval_augment)
        rows.append(score_images(score, images, device=dev))
    sub = torch.stack(rows)
    mask = torch.arange(subsets)[:, None] != which[None] if exclude_own else None
    agg = aggregate_scores(sub, aggregate, standardize=standardize, mask=mask)
    order = torch.argsort(agg, stable=True)
    kept, dropped = order[:n_keep].sort().values, order[n_keep:].sort().values
    flags = split.contaminated if split.contaminated is not None else torch.zeros(n, dtype=torch.bool)
    settings = {"subsets": subsets, "standardize": standardize, "exclude_own": exclude_own, "seed": seed,
                "profile": None if method == PIXEL_KNN else prof.name}
    return Purification(kept, dropped, agg, sub, which, flags.bool().cpu(), method, float(keep), aggregate,
                        time.perf_counter() - t0, settings)
