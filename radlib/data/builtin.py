"""One-vs-rest anomaly detection from classification data sets: digits, MNIST, Fashion-MNIST, CIFAR-10/100, SVHN.

The protocol (as in CSI, COBRA and most one-class papers): one class is *normal*. Train = that class's
training images only. Test = every test image; the normal class gets label 0, all other classes label 1.
``defect`` indexes ``defect_types = ("good", <the other class names in class order>)``.

This module also holds the array helpers shared with the folder loaders: channel conversion and antialiased
resizing of uint8 batches, and deterministic (stratified) sub-sampling.
"""
from __future__ import annotations

import gzip
import os
import struct
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .base import ADDataset, DatasetError, Split, register
from .download import cleanup_on_failure, host_reachable, resolve_root

__all__ = ["prepare_images", "pick_indices", "resolve_class", "resolve_classes", "one_vs_rest", "read_idx", "CIFAR100_COARSE",
           "CIFAR100_SUPERCLASSES", "FASHION_CLASSES", "DEBIAN_FASHION_MNIST"]

DEFAULT_SIZE = 32
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: fine label (0..99, torchvision order) -> super-class (0..19); the table published with CIFAR-100.
CIFAR100_COARSE = np.array([
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13], dtype=np.int64)
CIFAR100_SUPERCLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
DIGIT_CLASSES = tuple(str(i) for i in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ----------------------------------------------------------------------------------------------- array helpers
def prepare_images(images: torch.Tensor, image_size: int | None, channels: int) -> torch.Tensor:
    """Convert a uint8 batch to ``channels`` and resize it to a square ``image_size``.

    Args:
        images: uint8 (N, C, H, W) with C in {1, 3, 4} (a 4th alpha channel is dropped).
        image_size: output side; None keeps (H, W).
        channels: 1 (colour -> ITU-R 601 luminance, as PIL's "L") or 3 (grey replicated).

    Returns:
        uint8 (N, channels, S, S), contiguous. Resizing is bilinear with antialiasing (down-scaling does not alias).
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if images.shape[1] == 4:
        images = images[:, :3]
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1, 3 or 4 channels, got {images.shape[1]}")
    if channels == 1 and images.shape[1] == 3:
        w = torch.tensor([299, 587, 114], dtype=torch.int32).view(1, 3, 1, 1)
        images = ((images.to(torch.int32) * w).sum(1, keepdim=True) + 500).div(1000, rounding_mode="floor")
        images = images.to(torch.uint8)
    if image_size is not None and tuple(images.shape[-2:]) != (image_size, image_size) and len(images):
        images = torch.nn.functional.interpolate(images, size=(int(image_size), int(image_size)), mode="bilinear",
                                                 antialias=True, align_corners=False)  # native uint8 kernel
    if channels == 3 and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images.contiguous()


def pick_indices(labels: np.ndarray | Sequence[int], n: int | None, seed: int, stratify: bool = False) -> np.ndarray:
    """Deterministically choose ``n`` of ``len(labels)`` indices (sorted), or all when ``n`` is None or larger.

    With ``stratify`` every label keeps its share (largest-remainder rounding) and at least one sample
    whenever ``n`` >= the number of labels present, so a sub-sampled test split keeps normals and anomalies.
    """
    labels = np.asarray(labels)
    total = len(labels)
    if n is None or n >= total:
        return np.arange(total)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"max_train / max_test must be a positive int or None, got {n!r}")
    rng = np.random.default_rng(seed)
    if not stratify:
        return np.sort(rng.permutation(total)[:n])
    values, counts = np.unique(labels, return_counts=True)
    share = counts * n / total
    take = np.floor(share).astype(int)
    if n >= len(values):
        take = np.maximum(take, 1)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    i = 0
    while take.sum() < n:  # distribute the remainder, largest fractional part first
        v = order[i % len(order)]
        if take[v] < counts[v]:
            take[v] += 1
        i += 1
    while take.sum() > n:  # the minimum of one per label overshot: trim the largest groups
        take[np.argmax(take)] -= 1
    chosen = [rng.permutation(np.flatnonzero(labels == v))[:k] for v, k in zip(values, take)]
    return np.sort(np.concatenate(chosen))


def _as_nchw(x: np.ndarray | torch.Tensor, layout: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels, got {t.dtype}")
    if layout == "NHW":
        return t.unsqueeze(1)
    if layout == "NHWC":
        return t.permute(0, 3, 1, 2)
    return t  # NCHW


def resolve_classes(normal: str | None, classes: Sequence[str], name: str) -> list[int]:
    """Sorted class indices from ``normal``: one class (see :func:`resolve_class`) or several, comma-separated."""
    if normal is None:
        return [0]
    parts = [p.strip() for p in str(normal).split(",")]
    ks = [resolve_class(p, classes, name) for p in parts]
    if len(set(ks)) < len(ks):
        raise DatasetError(f"{name}: normal classes {normal!r} name a class twice")
    if len(ks) == len(classes):
        raise DatasetError(f"{name}: normal={normal!r} makes every class normal: no anomaly is left to detect")
    return sorted(ks)


def resolve_class(normal: str | None, classes: Sequence[str], name: str) -> int:
    """Class index from ``normal`` (None -> 0; an index "0".."K-1"; or a class name, case-insensitive)."""
    if normal is None:
        return 0
    s = str(normal).strip()
    if s.lstrip("-").isdigit():
        k = int(s)
        if 0 <= k < len(classes):
            return k
    lowered = [c.lower() for c in classes]
    if s.lower() in lowered:
        return lowered.index(s.lower())
    raise DatasetError(f"{name}: unknown normal class {normal!r}; use an index 0..{len(classes) - 1} or one of: "
                       f"{', '.join(classes)}")


def one_vs_rest(name: str, classes: Sequence[str], normal: str | None, train: tuple[Any, Any],
                test: tuple[Any, Any], layout: str, *, image_size: int | None, channels: int, seed: int,
                max_train: int | None = None, max_test: int | None = None,
                meta: dict[str, Any] | None = None) -> ADDataset:
    """Build the one-vs-rest task from class-labelled arrays.

    Args:
        name: registry name; classes: class names in label order.
        normal: normal class (see :func:`resolve_class`), or several comma-separated (:func:`resolve_classes`):
            CSI's unlabeled multi-class setting, train = the union of the normal classes, no class labels kept.
        train, test: ``(images, class_labels)``; images uint8 in ``layout`` ("NHW", "NHWC" or "NCHW").
        image_size, channels: output geometry (see :func:`prepare_images`); None size -> 32.
        seed, max_train, max_test: deterministic sub-sampling (test stratified by normal/anomaly label).
        meta: extra plain-data facts.
    """
    ks = resolve_classes(normal, classes, name)
    y_train = np.asarray(train[1]).astype(np.int64)
    y_test = np.asarray(test[1]).astype(np.int64)
    train_idx = np.flatnonzero(np.isin(y_train, ks))
    if len(train_idx) == 0:
        raise DatasetError(f"{name}: the normal class {','.join(classes[k] for k in ks)!r} has no training image")
    train_idx = train_idx[pick_indices(np.zeros(len(train_idx)), max_train, seed)]
    labels = (~np.isin(y_test, ks)).astype(np.int64)
    test_idx = pick_indices(labels, max_test, seed + 1, stratify=True)
    # defect index: 0 for the normal class(es), 1.. for the others in class order
    defect_of = np.zeros(len(classes), dtype=np.int64)
    others = [c for c in range(len(classes)) if c not in ks]
    defect_of[others] = np.arange(1, len(others) + 1)
    size = DEFAULT_SIZE if image_size is None else int(image_size)
    x_train = prepare_images(_as_nchw(train[0], layout)[torch.as_tensor(train_idx)], size, channels)
    x_test = prepare_images(_as_nchw(test[0], layout)[torch.as_tensor(test_idx)], size, channels)
    tr = Split(x_train, torch.zeros(len(train_idx), dtype=torch.long), torch.zeros(len(train_idx), dtype=torch.long))
    te = Split(x_test, torch.as_tensor(labels[test_idx]), torch.as_tensor(defect_of[y_test[test_idx]]))
    info = dict(meta or {})
    several = len(ks) > 1
    info.update(classes=list(classes), normal_index=ks if several else ks[0],
                protocol=("several-vs-rest (CSI's unlabeled multi-class setting): train = the union of the normal "
                          "classes' train images, no class labels; test = all test images, label 1 for every other "
                          "class") if several else ("one-vs-rest: train = normal class (train split), test = all "
                                                    "test images, label 1 for every other class"),
                max_train=max_train, max_test=max_test)
    return ADDataset(name=name, normal=",".join(classes[k] for k in ks), train=tr, test=te,
                     defect_types=("good", *[classes[c] for c in others]), meta=info)


# ----------------------------------------------------------------------------------------------- digits
@register("digits", "sklearn 8x8 handwritten digits (1,797 images, bundled: no download), one-vs-rest",
          several_normal=True, embedded=True, policy="rotation", resolution="low")
def load_digits(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
                seed: int = 0, download: bool = True, channels: int = 3, max_train: int | None = None,
                max_test: int | None = None, train_fraction: float = 2 / 3) -> ADDataset:
    """sklearn's digits (16 grey levels scaled to 0..255), upsampled to ``image_size`` (default 32).

    sklearn has no official split: a deterministic stratified split by ``seed`` puts ``train_fraction`` of
    every class in train and the rest in test (the 1,797 images hold no exact duplicate, so the splits share
    no image).
    """
    from sklearn.datasets import load_digits as sk_digits

    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    d = sk_digits()
    pixels = ((d.images.astype(np.int64) * 255 + 8) // 16).astype(np.uint8)  # 0..16 -> 0..255
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    is_train = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        is_train[idx[:int(round(train_fraction * len(idx)))]] = True
    meta = dict(source="sklearn.datasets.load_digits (UCI Optical Recognition of Handwritten Digits)",
                licence="CC BY 4.0 (UCI Machine Learning Repository)", native_size=8,
                split=f"stratified {train_fraction:.3f}/{1 - train_fraction:.3f} by seed {seed}")
    return one_vs_rest("digits", DIGIT_CLASSES, normal, (pixels[is_train], y[is_train]),
                       (pixels[~is_train], y[~is_train]), "NHW", image_size=image_size, channels=channels,
                       seed=seed, max_train=max_train, max_test=max_test, meta=meta)


# ----------------------------------------------------------------------------------------------- torchvision
def _fetch(name: str, make: Callable[[bool], tuple[Any, Any]], root: Path, expected: Sequence[Path], url: str,
           download: bool, manual: str) -> tuple[Any, Any]:
    """Open (train, test) torchvision data sets, downloading only when missing, allowed and online.

    Fails fast offline: the host of ``url`` is probed (3 s) before torchvision is asked to download, and every
    folder or file created by a failed attempt is removed again.
    """
    try:
        return make(False)
    except RuntimeError:  # torchvision: "Dataset not found" / "not found or corrupted"
        pass
    where = expected[0]
    if not download:
        raise DatasetError(f"{name}: files not found at {where} and download=False. Call with download=True on a "
                           f"machine with internet, or {manual}")
    host = urllib.parse.urlsplit(url).hostname
    if not host_reachable(url, timeout=3.0):
        raise DatasetError(f"{name}: files not found at {where} and {host} is unreachable (offline?). Run once "
                           f"with download=True on a machine with internet, or {manual}")
    try:
        with cleanup_on_failure(root, *expected):
            return make(True)
    except Exception as err:  # noqa: BLE001 (any torchvision failure becomes one clear error)
        raise DatasetError(f"{name}: download into {root} failed ({type(err).__name__}: {err}). "
                           f"Retry on a machine with internet, or {manual}") from err


def _copy_hint(what: str, where: Path) -> str:
    return f"copy {what} to {where}."


@register("mnist", "MNIST handwritten digits (70k, 28 px -> 32), one-vs-rest; torchvision download", True,
          several_normal=True, policy="rotation", resolution="low")
def load_mnist(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
               seed: int = 0, download: bool = True, channels: int = 3, max_train: int | None = None,
               max_test: int | None = None) -> ADDataset:
    """MNIST via torchvision (files in ``<root>/MNIST/raw``); 28 px resized to ``image_size`` (default 32)."""
    from torchvision import datasets

    base = resolve_root(root)
    make = lambda dl: (datasets.MNIST(base, train=True, download=dl),  # noqa: E731
                       datasets.MNIST(base, train=False, download=dl))
    tr, te = _fetch("mnist", make, base, [base / "MNIST"], datasets.MNIST.mirrors[0], download,
                    _copy_hint("the four idx files (train/t10k images/labels, .gz or not)", base / "MNIST" / "raw"))
    meta = dict(source="http://yann.lecun.com/exdb/mnist/ (torchvision mirror)", licence="CC BY-SA 3.0",
                native_size=28)
    return one_vs_rest("mnist", DIGIT_CLASSES, normal, (tr.data, tr.targets), (te.data, te.targets), "NHW",
                       image_size=image_size, channels=channels, seed=seed, max_train=max_train,
                       max_test=max_test, meta=meta)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format, optionally gzipped) into a numpy array (uint8 payloads only)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError(f"bad IDX magic (type 0x{dtype:02x}); only unsigned-byte IDX files are supported")
        dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
        arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        if arr.size != int(np.prod(dims)):
            raise ValueError(f"expected {int(np.prod(dims))} values for shape {dims}, found {arr.size}")
    except (OSError, EOFError, ValueError, struct.error) as err:
        raise DatasetError(f"corrupt IDX file {path}: {err}") from err
    return arr.reshape(dims).copy()  # writable (torch warns about read-only buffers)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_set(folder: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    files = [_find_idx(folder, s) for s in stems]
    if any(f is None for f in files):
        return None
    a = [read_idx(f) for f in files]  # type: ignore[arg-type]
    return (a[0], a[1]), (a[2], a[3])


@register("fashion_mnist", "Fashion-MNIST clothing (70k, 28 px -> 32), one-vs-rest; Debian package or download",
          True, several_normal=True, policy="rotation", resolution="low")
def load_fashion_mnist(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
                       seed: int = 0, download: bool = True, channels: int = 3, max_train: int | None = None,
                       max_test: int | None = None) -> ADDataset:
    """Fashion-MNIST: Debian's ``dataset-fashion-mnist`` files in /usr/share/datasets/fashion-mnist when
    present (read directly: their gzip checksums differ from torchvision's), else ``<root>/FashionMNIST/raw``
    (torchvision layout, downloaded when allowed)."""
    base = resolve_root(root)
    arrays = None
    for folder in (DEBIAN_FASHION_MNIST, base / "FashionMNIST" / "raw"):
        if folder.is_dir():
            arrays = _idx_set(folder)
            if arrays is not None:
                source_dir = folder
                break
    if arrays is None:
        from torchvision import datasets

        make = lambda dl: (datasets.FashionMNIST(base, train=True, download=dl),  # noqa: E731
                           datasets.FashionMNIST(base, train=False, download=dl))
        tr, te = _fetch("fashion_mnist", make, base, [base / "FashionMNIST"], datasets.FashionMNIST.mirrors[0],
                        download, "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or " + _copy_hint(
                            "the four idx files", base / "FashionMNIST" / "raw"))
        arrays = (tr.data, tr.targets), (te.data, te.targets)
        source_dir = base / "FashionMNIST" / "raw"
    meta = dict(source="https://github.com/zalandoresearch/fashion-mnist", licence="MIT", native_size=28,
                files=str(source_dir))
    return one_vs_rest("fashion_mnist", FASHION_CLASSES, normal, arrays[0], arrays[1], "NHW", image_size=image_size,
                       channels=channels, seed=seed, max_train=max_train, max_test=max_test, meta=meta)


@register("cifar10", "CIFAR-10 (60k colour 32 px, 10 classes), one-vs-rest; torchvision download", True,
          several_normal=True, policy="rotation", resolution="low")
def load_cifar10(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
                 seed: int = 0, download: bool = True, channels: int = 3, max_train: int | None = None,
                 max_test: int | None = None) -> ADDataset:
    """CIFAR-10 via torchvision (``<root>/cifar-10-batches-py``); normal = class index or name (e.g. "cat")."""
    from torchvision import datasets

    base = resolve_root(root)
    make = lambda dl: (datasets.CIFAR10(base, train=True, download=dl),  # noqa: E731
                       datasets.CIFAR10(base, train=False, download=dl))
    tr, te = _fetch("cifar10", make, base, [base / "cifar-10-batches-py", base / datasets.CIFAR10.filename],
                    datasets.CIFAR10.url, download,
                    f"download {datasets.CIFAR10.url} elsewhere and extract it into {base}.")
    meta = dict(source="https://www.cs.toronto.edu/~kriz/cifar.html",
                licence="no formal licence; free for research (cite Krizhevsky 2009)", native_size=32)
    return one_vs_rest("cifar10", CIFAR10_CLASSES, normal, (tr.data, tr.targets), (te.data, te.targets), "NHWC",
                       image_size=image_size, channels=channels, seed=seed, max_train=max_train,
                       max_test=max_test, meta=meta)


@register("cifar100", "CIFAR-100 with its 20 super-classes, one-vs-rest; torchvision download", True,
          several_normal=True, policy="rotation", resolution="low")
def load_cifar100(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
                  seed: int = 0, download: bool = True, channels: int = 3, max_train: int | None = None,
                  max_test: int | None = None) -> ADDataset:
    """CIFAR-100 coarse: normal = super-class 0..19 (or its name); the fine labels are mapped with
    :data:`CIFAR100_COARSE` (the standard AD protocol, as in CSI)."""
    from torchvision import datasets

    base = resolve_root(root)
    make = lambda dl: (datasets.CIFAR100(base, train=True, download=dl),  # noqa: E731
                       datasets.CIFAR100(base, train=False, download=dl))
    tr, te = _fetch("cifar100", make, base, [base / "cifar-100-python", base / datasets.CIFAR100.filename],
                    datasets.CIFAR100.url, download,
                    f"download {datasets.CIFAR100.url} elsewhere and extract it into {base}.")
    meta = dict(source="https://www.cs.toronto.edu/~kriz/cifar.html",
                licence="no formal licence; free for research (cite Krizhevsky 2009)", native_size=32,
                labels="20 super-classes (coarse labels)")
    return one_vs_rest("cifar100", CIFAR100_SUPERCLASSES, normal,
                       (tr.data, CIFAR100_COARSE[np.asarray(tr.targets)]),
                       (te.data, CIFAR100_COARSE[np.asarray(te.targets)]), "NHWC", image_size=image_size,
                       channels=channels, seed=seed, max_train=max_train, max_test=max_test, meta=meta)


@register("svhn", "SVHN street-view house numbers (99k colour 32 px), one-vs-rest; torchvision download", True,
          several_normal=True, policy="rotation", resolution="low")
def load_svhn(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
              seed: int = 0, download: bool = True, channels: int = 3, max_train: int | None = None,
              max_test: int | None = None) -> ADDataset:
    """SVHN (train + test, no "extra") via torchvision, files in ``<root>/svhn/{train,test}_32x32.mat``."""
    from torchvision import datasets

    base = resolve_root(root)
    folder = base / "svhn"
    make = lambda dl: (datasets.SVHN(folder, split="train", download=dl),  # noqa: E731
                       datasets.SVHN(folder, split="test", download=dl))
    url = datasets.SVHN.split_list["train"][0]
    tr, te = _fetch("svhn", make, base, [folder], url, download,
                    _copy_hint("train_32x32.mat and test_32x32.mat (http://ufldl.stanford.edu/housenumbers/)",
                               folder))
    meta = dict(source="http://ufldl.stanford.edu/housenumbers/", licence="non-commercial use only",
                native_size=32)
    return one_vs_rest("svhn", DIGIT_CLASSES, normal, (tr.data, tr.labels), (te.data, te.labels), "NCHW",
                       image_size=image_size, channels=channels, seed=seed, max_train=max_train,
                       max_test=max_test, meta=meta)
