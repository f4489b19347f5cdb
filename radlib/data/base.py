"""Core data containers, the dataset registry and the generic contamination step.

Every loader returns images as **uint8 tensors (N, C, H, W)** on the CPU. uint8 is a deliberate choice:
it is 4x smaller than float32 (CIFAR-10 train: 150 MB instead of 600 MB; 372 casting images at 224 px:
56 MB instead of 224 MB), it moves to the GPU 4x faster, and the conversion to float in [0, 1] costs
one fused kernel *on the device* (:func:`to_float`). Call :meth:`Split.to(device)` once to keep a whole
split resident on the GPU and slice batches from it with no host round-trip.

Labels: 0 = normal, 1 = anomaly. ``defect`` indexes ``ADDataset.defect_types`` whose entry 0 is always
``"good"``. ``masks`` are uint8 (N, 1, H, W) with 1 on defective pixels (all zeros for normal images),
or ``None`` when the dataset has no pixel annotation.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol, Sequence

import torch

from ..images import to_float

__all__ = [
    "DatasetInfo",
    "dataset_info",
    "Split",
    "ADDataset",
    "DatasetError",
    "register",
    "available",
    "load",
    "contaminate",
    "check_seed",
]


class DatasetError(RuntimeError):
    """Raised when a dataset cannot be loaded (unknown name, missing files, corrupt image, offline)."""


@dataclass
class Split:
    """One split of a one-class anomaly-detection dataset.

    Attributes:
        images: uint8 (N, C, H, W), C = 3 unless the loader was asked for another channel count.
        labels: int64 (N,), 0 normal / 1 anomaly. In a contaminated *train* split the true labels of the
            moved anomalies are 1: they are for analysis only, one-class training never reads them.
        defect: int64 (N,), index into ``ADDataset.defect_types`` (0 = "good").
        masks: uint8 (N, 1, H, W) with 1 on defective pixels, or None.
        contaminated: bool (N,), True for test anomalies moved into the training split.
    """

    images: torch.Tensor
    labels: torch.Tensor
    defect: torch.Tensor
    masks: torch.Tensor | None = None
    contaminated: torch.Tensor = None  # type: ignore[assignment]  # None -> all False, set in __post_init__

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        self.labels = torch.as_tensor(self.labels, dtype=torch.long)
        self.defect = torch.as_tensor(self.defect, dtype=torch.long)
        if self.contaminated is None:
            self.contaminated = torch.zeros(n, dtype=torch.bool)
        for name in ("labels", "defect", "contaminated"):
            t = getattr(self, name)
            if t.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
        if self.masks is not None and (self.masks.shape[0] != n or self.masks.shape[1] != 1
                                       or self.masks.shape[2:] != self.images.shape[2:]):
            raise ValueError(f"masks must be ({n}, 1, H, W) matching the images, got {tuple(self.masks.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:  # one line, never the pixels
        n_anom = int((self.labels == 1).sum())
        return (f"Split({len(self)} images {tuple(self.images.shape[1:])} {self.images.dtype}, "
                f"{len(self) - n_anom} normal / {n_anom} anomalous, {int(self.contaminated.sum())} contaminated, "
                f"masks {'yes' if self.masks is not None else 'no'})")

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def float(self) -> torch.Tensor:
        """All images as float32 in [0, 1] on their current device."""
        return to_float(self.images)

    def to(self, device: torch.device | str) -> "Split":
        """A copy with every tensor on ``device`` (images stay uint8: convert per batch with :func:`to_float`)."""
        return Split(self.images.to(device), self.labels.to(device), self.defect.to(device),
                     None if self.masks is None else self.masks.to(device), self.contaminated.to(device))

    def subset(self, index: torch.Tensor) -> "Split":
        """Rows ``index`` (bool mask or int64 indices) of every field."""
        index = torch.as_tensor(index)
        def pick(t: torch.Tensor) -> torch.Tensor:
            return t[index.to(t.device)]
        return Split(pick(self.images), pick(self.labels), pick(self.defect),
                     None if self.masks is None else pick(self.masks), pick(self.contaminated))

    @staticmethod
    def cat(splits: list["Split"]) -> "Split":
        """Concatenate splits row-wise (masks kept only if every split has them)."""
        masks = None
        parts = [s.masks for s in splits if s.masks is not None]
        if len(parts) == len(splits):
            masks = torch.cat(parts)
        return Split(torch.cat([s.images for s in splits]), torch.cat([s.labels for s in splits]),
                     torch.cat([s.defect for s in splits]), masks,
                     torch.cat([s.contaminated for s in splits]))


@dataclass
class ADDataset:
    """A one-class anomaly-detection task: train on ``train`` (normal, unless contaminated), test on ``test``.

    Attributes:
        name: registry name, e.g. ``"surfaces"``.
        normal: the normal class / category, e.g. ``"fabric"`` or ``"3"``.
        train, test: the two :class:`Split` s.
        defect_types: names indexed by ``Split.defect``; entry 0 is ``"good"``.
        meta: plain-data facts (source, licence, seed, contamination, class names, ...).
    """

    name: str
    normal: str
    train: Split
    test: Split
    defect_types: tuple[str, ...] = ("good", "anomaly")
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return self.train.image_size

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    def __repr__(self) -> str:  # one line, never the pixels
        return (f"ADDataset({self.name}/{self.normal}: train {len(self.train)} "
                f"({int(self.train.contaminated.sum())} contaminated), test {len(self.test)} "
                f"({int((self.test.labels == 1).sum())} anomalous), {self.channels}x{self.image_size}x"
                f"{self.image_size})")

    def summary(self) -> str:
        t = self.test
        return (f"{self.name}/{self.normal}: {len(self.train)} train "
                f"({int(self.train.contaminated.sum())} contaminated), {len(t)} test "
                f"({int((t.labels == 0).sum())} normal / {int((t.labels == 1).sum())} anomalous), "
                f"{self.channels}x{self.image_size}x{self.image_size}, defects: {', '.join(self.defect_types[1:])}")


class Loader(Protocol):
    def __call__(self, *, normal: str | None, image_size: int | None, root: str | None, seed: int,
                 download: bool, channels: int, **options: Any) -> ADDataset: ...


Resolution = Literal["low", "high"]
SplitSizes = Literal["generated", "capped"]


@dataclass(frozen=True)
class DatasetInfo:
    """Everything the rest of radlib asks about a dataset, declared once, with its loader (:func:`register`).

    Attributes:
        name, loader, description: the key, the function :func:`load` calls (:class:`Loader`), one line.
        needs_download: the loader fetches files (``download=True``).
        several_normal: the loader accepts several normal classes ("0,1": one-vs-rest datasets).
        embedded: the data ships with radlib or is generated: :func:`load` refuses a ``root``.
        policy: the name of its default pseudo-anomaly policy in :data:`radlib.pseudo_anomaly.NAMED_POLICIES`
            (``"rotation"`` for natural images, ``"cutpaste"`` for industrial ones; read by ``policy_for``).
        resolution: ``"low"`` (natural low-resolution images: a profile's ``low_res_size`` and random crops in
            training) or ``"high"`` (industrial images: the profile's ``image_size``).
        sizes: how a profile sizes the splits: ``"generated"`` (the loader makes ``n_train``/``n_test`` images)
            or ``"capped"`` (a real set, cut to ``max_train``/``max_test``).
    """

    name: str
    loader: Callable[..., ADDataset]
    description: str
    needs_download: bool = False
    several_normal: bool = False
    embedded: bool = False
    policy: str = "cutpaste"
    resolution: Resolution = "high"
    sizes: SplitSizes = "capped"


_REGISTRY: dict[str, DatasetInfo] = {}


def register(name: str, description: str, needs_download: bool = False, several_normal: bool = False,
             embedded: bool = False, *, policy: str = "cutpaste", resolution: Resolution = "high",
             sizes: SplitSizes = "capped") -> Callable[[Callable[..., ADDataset]], Callable[..., ADDataset]]:
    """Decorator: register a loader under ``name`` (see :class:`Loader` for the keyword interface), with every
    fact radlib needs about the data (:class:`DatasetInfo`): adding a dataset is this one call.

    >>> @register("toy_doc", "a doctest's data set", embedded=True, policy="rotation", resolution="low")
    ... def load_toy(**kw): ...
    >>> dataset_info("toy_doc").resolution, dataset_info("toy_doc").policy
    ('low', 'rotation')
    >>> _ = _REGISTRY.pop("toy_doc")
    """
    if not isinstance(name, str) or not name or name != name.lower():
        raise ValueError(f"a dataset name must be a non-empty lower-case string, got {name!r}")
    if not isinstance(policy, str) or not policy:
        raise ValueError(f"policy must name a policy of radlib.pseudo_anomaly.NAMED_POLICIES, got {policy!r}")
    if resolution not in ("low", "high"):
        raise ValueError(f"resolution must be 'low' or 'high', got {resolution!r}")
    if sizes not in ("generated", "capped"):
        raise ValueError(f"sizes must be 'generated' or 'capped', got {sizes!r}")

    def deco(fn: Callable[..., ADDataset]) -> Callable[..., ADDataset]:
        _REGISTRY[name] = DatasetInfo(name, fn, description, needs_download, several_normal, embedded, policy,
                                      resolution, sizes)
        return fn

    return deco


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` a loader was registered with. Raises DatasetError for an unknown name."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def available() -> dict[str, str]:
    """Every dataset name radlib can load, with a one-line description."""
    return {k: v.description for k, v in sorted(_REGISTRY.items())}


ContaminationOf = Literal["test", "train"]


def contaminate(ds: ADDataset, ratio: float, seed: int = 0, of: ContaminationOf = "test") -> ADDataset:
    """Move test anomalies into the training split.

    ``of="test"``: move the fraction ``ratio`` of the test anomalies. ``of="train"``: move as many as make
    ``ratio`` of the *resulting* training set anomalous (the "noise ratio" of the noisy-AD literature, e.g.
    LLBNAD's 10 % / 20 % / 40 %): ``round(ratio / (1 - ratio) * n_train)`` anomalies.
    The moved images leave the test split (no leakage), keep their true label 1 and get
    ``contaminated=True`` in the train split; ``meta`` records ``contamination`` (the ratio),
    ``contamination_of`` and ``n_contaminated``. Deterministic for a given ``seed``.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"contamination must be in [0, 1), got {ratio}")
    if of not in ("test", "train"):
        raise ValueError(f"of must be 'test' (a share of the test anomalies) or 'train' (a share of the training "
                         f"set), got {of!r}")
    anomalies = torch.nonzero(ds.test.labels == 1).flatten()
    if of == "test":
        n_move = int(round(ratio * len(anomalies)))
    else:
        n_move = int(round(ratio / (1.0 - ratio) * len(ds.train)))
        if n_move >= len(anomalies):
            raise ValueError(f"contamination={ratio} of the training set needs {n_move} anomalies but the test split "
                             f"has only {len(anomalies)} (at least one must stay for testing)")
    if ratio > 0 and n_move == 0:
        raise ValueError(f"contamination={ratio} moves no anomaly (test anomalies: {len(anomalies)}, training "
                         f"images: {len(ds.train)})")
    g = torch.Generator().manual_seed(seed)
    moved = anomalies[torch.randperm(len(anomalies), generator=g)[:n_move]]
    keep = torch.ones(len(ds.test), dtype=torch.bool)
    keep[moved] = False
    extra = ds.test.subset(moved)
    extra.contaminated = torch.ones(n_move, dtype=torch.bool)
    train = ds.train
    if (train.masks is None) != (extra.masks is None):  # keep the fields aligned
        train = dataclasses.replace(train, masks=None)
        extra = dataclasses.replace(extra, masks=None)
    new_train = Split.cat([train, extra]) if n_move else ds.train
    meta = dict(ds.meta, contamination=ratio, contamination_of=of, n_contaminated=n_move)
    return dataclasses.replace(ds, train=new_train, test=ds.test.subset(keep), meta=meta)


def load(name: str, normal: str | int | Sequence[str | int] | None = None, image_size: int | None = None,
         root: str | None = None, contamination: float = 0.0, seed: int = 0, download: bool = True,
         channels: int = 3, contamination_of: ContaminationOf = "test", **options: Any) -> ADDataset:
    """Load a one-class anomaly-detection task.

    Args:
        name: one of :func:`available` (e.g. ``"surfaces"``, ``"digits"``, ``"casting"``, ``"mvtec_ad"``).
        normal: the normal class or category (dataset-specific default when None). The one-vs-rest datasets
            (digits, MNIST, Fashion-MNIST, CIFAR, SVHN) take several: a list (``["0", "1"]``) or a
            comma-separated string (``"0,1"``): train = every normal class, test label 0 for all of them
            (CSI's unlabeled multi-class setting); ``ds.normal`` is then ``"0,1"``.
        image_size: output side in pixels (square); None = the dataset's default (32 for the
            classification sets, 64 for ``surfaces``, 224 for the industrial folders).
        root: folder holding (or receiving) the files; default ``$RADLIB_DATA`` or ``./data``.
        contamination: anomalies moved into the training split (see :func:`contaminate`): a fraction of the
            test anomalies (``contamination_of="test"``) or of the resulting training set (``"train"``).
        seed: makes generation, sub-sampling and contamination deterministic.
        download: allow a download when the files are missing (fails fast and clearly when offline).
        channels: 3 (grey images replicated) or 1 (colour images converted to luminance).
        **options: dataset-specific options (e.g. ``n_train`` for ``surfaces``).

    Returns:
        :class:`ADDataset` with uint8 images.
    """
    if name not in _REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(_REGISTRY))}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or not 8 <= image_size <= 1024):
        raise ValueError(f"image_size must be an int in [8, 1024] or None, got {image_size!r}")
    check_seed(seed)
    if root is not None and _REGISTRY[name].embedded:
        raise ValueError(f"{name} is embedded in radlib and reads no folder; drop root (--root {root})")
    normal_text = _normal_text(normal)
    if normal_text is not None and "," in normal_text and not _REGISTRY[name].several_normal:
        several = sorted(k for k, v in _REGISTRY.items() if v.several_normal)
        raise DatasetError(f"{name} takes one normal category, got {normal_text!r}; several normal classes work for "
                           f"the one-vs-rest datasets: {', '.join(several)}")
    ds = _REGISTRY[name].loader(normal=normal_text, image_size=image_size, root=root,
                                seed=seed, download=download, channels=channels, **options)
    if len(ds.train) == 0:
        raise DatasetError(f"{name}/{ds.normal}: the training split has no normal image")
    if contamination:
        ds = contaminate(ds, contamination, seed=seed, of=contamination_of)
    ds.meta.setdefault("seed", seed)
    # the arguments that rebuild this data set (the run record's data identity, radlib.record.data_identity)
    ds.meta["load"] = {"name": name, "normal": normal_text, "image_size": image_size,
                       "root": None if root is None else os.path.abspath(os.path.expanduser(str(root))),
                       "contamination": contamination, "seed": seed, "channels": channels,
                       "contamination_of": contamination_of, **options}
    return ds


#: the largest seed radlib accepts (numpy's generators take 32-bit seeds)
MAX_SEED = 2**32 - 1


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` if it is an int in [0, 2**32 - 1], else a ValueError naming ``name`` and the range."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return seed


def _normal_text(normal: str | int | Sequence[str | int] | None) -> str | None:
    """``normal`` as the loaders take it: None, one name, or several names joined by commas."""
    if normal is None:
        return None
    if isinstance(normal, (str, int)):
        return str(normal).strip()
    names = [str(n).strip() for n in normal]
    if not names:
        raise DatasetError("normal is an empty list; give a class, a list of classes, or None for the default")
    return ",".join(names)
