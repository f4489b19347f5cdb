"""Industrial image folders: a generic MVTec-style layout, MVTec AD, VisA, Magnetic Tile Defects and casting.

Every loader first builds a list of file *records* (path, label, defect index, mask path), sub-samples it
(``max_train`` / ``max_test``, deterministic by seed, test stratified so both labels remain) and only then
decodes the chosen files, in a thread pool (PIL releases the GIL while decoding), with :mod:`radlib.data.decode`
(every image mode, the JPEG draft scale, masks binarised on their raw values; a 512 px casting image decodes at
64 px for ``image_size=64``); odd and non-square sizes are resized to the square ``image_size``.
"""
from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .base import ADDataset, DatasetError, Split, register
from .builtin import pick_indices
from .decode import IMAGE_EXTENSIONS, decode_all, list_images, read_image, read_mask
from .download import ensure_dataset, resolve_root

__all__ = ["Record", "IMAGE_EXTENSIONS", "build_dataset",
           "MVTEC_CATEGORIES", "VISA_CATEGORIES", "MVTEC_URL", "MVTEC_SHA256", "VISA_URL", "VISA_SHA256"]

DEFAULT_SIZE = 224

MVTEC_CATEGORIES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill",
                    "screw", "tile", "toothbrush", "transistor", "wood", "zipper")
#: the whole-dataset archive (4.9 GB) as published by anomalib's MVTec AD datamodule (URL + SHA-256);
#: MVTec may retire it at any time: then the error explains the manual route.
MVTEC_URL = ("https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/420938113-1629952094/"
             "mvtec_anomaly_detection.tar.xz")
MVTEC_SHA256 = "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"
VISA_CATEGORIES = ("candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2",
                   "pcb3", "pcb4", "pipe_fryum")
#: the official VisA archive on Amazon's S3 bucket (SHA-256 as published by anomalib's VisA datamodule).
VISA_URL = "https://amazon-visual-anomaly.s3.us-west-2.amazonaws.com/VisA_20220922.tar"
VISA_SHA256 = "2eb8690c803ab37de0324772964100169ec8ba1fa3f7e94291c9ca673f40f362"


@dataclass(frozen=True)
class Record:
    """One image file: ``label`` 0/1, ``defect`` index into the dataset's defect_types, optional mask file."""

    path: Path
    label: int
    defect: int
    mask: Path | None = None


def build_dataset(name: str, normal: str, train: Sequence[Record], test: Sequence[Record],
                  defect_types: Sequence[str], *, image_size: int | None, channels: int, seed: int,
                  max_train: int | None, max_test: int | None, with_masks: bool, where: Path,
                  meta: dict[str, Any] | None = None) -> ADDataset:
    """Sub-sample the records, decode the chosen files and assemble the :class:`ADDataset`.

    Args:
        train, test: file records; train must hold only normals.
        defect_types: names indexed by ``Record.defect`` (entry 0 "good").
        image_size: output side (None -> 224); channels: 1 or 3.
        seed, max_train, max_test: deterministic sub-sampling (test stratified by label).
        with_masks: return masks (zeros for normals; each anomaly must have a mask file of its image's size).
        where: the dataset folder, for error messages.
    """
    if not train:
        raise DatasetError(f"{name}/{normal}: no normal training image found under {where}")
    if not test:
        raise DatasetError(f"{name}/{normal}: no test image found under {where}")
    if any(r.label != 0 for r in train):
        raise DatasetError(f"{name}/{normal}: the training records must all be normal")
    if with_masks:
        missing = [r.path for r in test if r.label == 1 and r.mask is None]
        if missing:
            raise DatasetError(f"{name}/{normal}: no ground-truth mask for {len(missing)} anomalous image(s), "
                               f"e.g. {missing[0]}")
    size = DEFAULT_SIZE if image_size is None else int(image_size)
    train = [train[i] for i in pick_indices(np.zeros(len(train)), max_train, seed)]
    test = [test[i] for i in pick_indices(np.array([r.label for r in test]), max_test, seed + 1, stratify=True)]
    img = lambda p: read_image(p, size, channels)  # noqa: E731
    x_train = decode_all(img, [r.path for r in train], (channels, size, size))
    x_test = decode_all(img, [r.path for r in test], (channels, size, size))
    m_train = m_test = None
    if with_masks:
        m_train = torch.zeros((len(train), 1, size, size), dtype=torch.uint8)
        m_test = torch.zeros((len(test), 1, size, size), dtype=torch.uint8)
        has = [i for i, r in enumerate(test) if r.mask is not None]
        if has:
            m_test[torch.tensor(has)] = decode_all(lambda r: read_mask(r.mask, size, image=r.path),
                                                [test[i] for i in has], (1, size, size))
    tr = Split(x_train, torch.zeros(len(train), dtype=torch.long), torch.zeros(len(train), dtype=torch.long), m_train)
    te = Split(x_test, torch.tensor([r.label for r in test], dtype=torch.long),
               torch.tensor([r.defect for r in test], dtype=torch.long), m_test)
    info = dict(meta or {})
    info.update(path=str(where), max_train=max_train, max_test=max_test,
                train_files=[str(r.path) for r in train], test_files=[str(r.path) for r in test])
    return ADDataset(name=name, normal=normal, train=tr, test=te, defect_types=tuple(defect_types), meta=info)


def _mvtec_records(folder: Path, name: str) -> tuple[list[Record], list[Record], tuple[str, ...], bool]:
    """Records of an MVTec-style folder: train/good, test/<good|defect>, optional ground_truth/<defect>.

    Raises :class:`DatasetError` saying what is missing and where: ``folder`` a file or missing, a normal folder
    spelt other than ``good`` (e.g. ``test/Good``, which would otherwise be taken for a defect type), no
    ``test/good`` or no image in it, no defect folder with images under ``test``.
    """
    layout = ("expected <path>/train/good/*.png|jpg, <path>/test/good/, <path>/test/<defect>/ and optionally "
              "<path>/ground_truth/<defect>/<stem>_mask.png")
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"{name}: {folder} is a file, not a folder; give the dataset folder; {layout}")
    if not folder.is_dir():
        raise DatasetError(f"{name}: dataset folder {folder} does not exist; {layout}")
    for part in ("train", "test"):
        if (folder / part).is_dir():
            odd = sorted(d.name for d in (folder / part).iterdir()
                         if d.is_dir() and d.name != "good" and d.name.lower() == "good")
            if odd:
                raise DatasetError(f"{name}: found {folder / part / odd[0]}; the normal folder must be named 'good' "
                                   f"(lower case): rename it to {folder / part / 'good'}")
    if not (folder / "train" / "good").is_dir() or not (folder / "test").is_dir():
        raise DatasetError(f"{name}: {folder} is not an MVTec-style folder; {layout}")
    test_dir = folder / "test"
    if not (test_dir / "good").is_dir():
        raise DatasetError(f"{name}: {test_dir} has no 'good' folder: put normal test images in test/good")
    if not list_images(test_dir / "good"):
        raise DatasetError(f"{name}: {test_dir / 'good'} holds no image file ({', '.join(sorted(IMAGE_EXTENSIONS))}): "
                           f"put normal test images in test/good")
    defects = sorted(d.name for d in test_dir.iterdir() if d.is_dir() and d.name != "good"
                     and not d.name.startswith("."))
    empty = [d for d in defects if not list_images(test_dir / d)]
    if empty:
        warnings.warn(f"{name}: defect folder(s) {', '.join(empty)} under {test_dir} hold no images; "
                      f"skipped", RuntimeWarning, stacklevel=2)
        defects = [d for d in defects if d not in empty]
    if not defects:
        found = f" (empty: {', '.join(empty)})" if empty else ""
        raise DatasetError(f"{name}: {test_dir} has no defect folder{found}: put anomalous images in "
                           f"test/<defect-name>/")
    defect_types = ("good", *defects)
    gt = folder / "ground_truth"
    with_masks = gt.is_dir()
    train = [Record(p, 0, 0) for p in list_images(folder / "train" / "good")]
    test = [Record(p, 0, 0) for p in list_images(folder / "test" / "good")]
    for k, d in enumerate(defects, start=1):
        for p in list_images(folder / "test" / d):
            mask = None
            if with_masks:
                for cand in (gt / d / f"{p.stem}_mask.png", gt / d / f"{p.stem}.png",
                             gt / d / f"{p.stem}_mask{p.suffix}"):
                    if cand.is_file():
                        mask = cand
                        break
            test.append(Record(p, 1, k, mask))
    return train, test, defect_types, with_masks


# ----------------------------------------------------------------------------------------------- loaders
@register("folder", "your own images in the MVTec layout (train/good, test/<defect>, optional ground_truth)")
def load_folder(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
                seed: int = 0, download: bool = True, channels: int = 3, path: str | None = None,
                max_train: int | None = None, max_test: int | None = None) -> ADDataset:
    """A dataset folder in the MVTec layout: ``path`` (or ``root``) holds ``train/good``, ``test/good``,
    ``test/<defect>/`` and optionally ``ground_truth/<defect>/<stem>_mask.png``. ``normal`` only names the task
    (default: the folder name). Default image_size 224."""
    folder = Path(path).expanduser() if path is not None else resolve_root(root)
    train, test, defect_types, with_masks = _mvtec_records(folder, "folder")
    return build_dataset("folder", normal or folder.name, train, test, defect_types, image_size=image_size,
                         channels=channels, seed=seed, max_train=max_train, max_test=max_test,
                         with_masks=with_masks, where=folder, meta=dict(source=str(folder)))


def _category(normal: str | None, categories: Sequence[str], default: str, name: str) -> str:
    cat = default if normal is None else str(normal).strip().lower()
    if cat not in categories:
        raise DatasetError(f"{name}: unknown category {normal!r}; valid: {', '.join(categories)}")
    return cat


@register("mvtec_ad", "MVTec AD industrial inspection (15 categories, masks; CC BY-NC-SA 4.0), 4.9 GB download", True)
def load_mvtec_ad(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
                  seed: int = 0, download: bool = True, channels: int = 3, path: str | None = None,
                  max_train: int | None = None, max_test: int | None = None) -> ADDataset:
    """MVTec AD category ``normal`` (default "bottle") from ``<root>/mvtec_ad/<category>`` (or
    ``<root>/mvtec_anomaly_detection/<category>``, or ``path`` = the category folder). Downloads the full
    archive (SHA-256 verified) when missing and allowed."""
    cat = _category(normal, MVTEC_CATEGORIES, "bottle", "mvtec_ad")
    base = resolve_root(root)
    if path is not None:
        folder = Path(path).expanduser()
    else:
        candidates = [base / "mvtec_ad" / cat, base / "mvtec_anomaly_detection" / cat]
        folder = next((c for c in candidates if c.is_dir()), candidates[0])
        if not folder.is_dir():
            how = (f"Or get it by hand from https://www.mvtec.com/company/research/datasets/mvtec-ad (free "
                   f"registration, CC BY-NC-SA 4.0) and extract mvtec_anomaly_detection.tar.xz (or just "
                   f"{cat}.tar.xz) into {base / 'mvtec_ad'} so that {folder / 'train' / 'good'} exists.")
            ensure_dataset("mvtec_ad", base, MVTEC_URL, MVTEC_SHA256, target=folder, download=download, how_to=how)
    train, test, defect_types, with_masks = _mvtec_records(folder, "mvtec_ad")
    meta = dict(source="https://www.mvtec.com/company/research/datasets/mvtec-ad", licence="CC BY-NC-SA 4.0",
                citation="Bergmann et al., MVTec AD, CVPR 2019 / IJCV 2021", categories=list(MVTEC_CATEGORIES))
    return build_dataset("mvtec_ad", cat, train, test, defect_types, image_size=image_size, channels=channels,
                         seed=seed, max_train=max_train, max_test=max_test, with_masks=with_masks, where=folder,
                         meta=meta)


def _inside(folder: Path, rel: str, split_file: Path, line: int) -> Path:
    """``folder / rel`` for a path read from a split file; a path that leaves ``folder`` (absolute, a drive, or
    ``..`` climbing above it) raises :class:`DatasetError` naming the file, the line and the path. The test is
    on the path as written (symlinks placed inside the folder are followed)."""
    p = Path(rel)
    if p.is_absolute() or p.drive or p.root or ".." in Path(os.path.normpath(rel)).parts:
        raise DatasetError(f"visa: {split_file} line {line}: path {rel!r} points outside the dataset folder "
                           f"{folder}; a split file may only name files inside it")
    return folder / p


@register("visa", "VisA visual anomaly (12 categories, masks; CC BY-NC-SA 4.0), official 1cls split; large download",
          True)
def load_visa(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
              seed: int = 0, download: bool = True, channels: int = 3, path: str | None = None,
              max_train: int | None = None, max_test: int | None = None) -> ADDataset:
    """VisA category ``normal`` (default "candle") from the raw archive layout in ``<root>/visa`` (or ``path``):
    ``<category>/Data/Images/{Normal,Anomaly}``, ``<category>/Data/Masks/Anomaly`` and the official one-class
    split ``split_csv/1cls.csv`` (columns object, split, label, image, mask)."""
    cat = _category(normal, VISA_CATEGORIES, "candle", "visa")
    base = resolve_root(root)
    folder = Path(path).expanduser() if path is not None else base / "visa"
    how = (f"Or download {VISA_URL} by hand (CC BY-NC-SA 4.0; https://github.com/amazon-science/spot-diff) and "
           f"extract it into {folder} so that {folder / 'split_csv' / '1cls.csv'} exists.")
    if path is None:
        ensure_dataset("visa", base, VISA_URL, VISA_SHA256, target=folder / cat, download=download, how_to=how)
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"visa: {folder} is a file, not a folder; give the VisA folder (holding split_csv/1cls.csv)")
    split_file = folder / "split_csv" / "1cls.csv"
    if not split_file.is_file():
        raise DatasetError(f"visa: split file {split_file} not found. {how}")
    train: list[Record] = []
    test: list[Record] = []
    try:
        with split_file.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row in reader:
                if row["object"].strip() != cat:
                    continue
                label = 0 if row["label"].strip() == "normal" else 1
                mask_text = (row.get("mask") or "").strip() if label == 1 else ""
                image = _inside(folder, row["image"].strip(), split_file, reader.line_num)
                mask = _inside(folder, mask_text, split_file, reader.line_num) if mask_text else None
                rec = Record(image, label, label, mask)
                (train if row["split"].strip() == "train" else test).append(rec)
    except (KeyError, csv.Error, UnicodeDecodeError) as err:
        raise DatasetError(f"visa: cannot parse {split_file} (expected columns object,split,label,image,mask): "
                           f"{err}") from err
    meta = dict(source="https://github.com/amazon-science/spot-diff", licence="CC BY-NC-SA 4.0",
                citation="Zou et al., SPot-the-Difference, ECCV 2022", split="official split_csv/1cls.csv",
                categories=list(VISA_CATEGORIES))
    return build_dataset("visa", cat, train, test, ("good", "anomaly"), image_size=image_size, channels=channels,
                         seed=seed, max_train=max_train, max_test=max_test, with_masks=True, where=folder / cat,
                         meta=meta)


@register("mtd", "Magnetic Tile Defects (1,344 grey images, 5 defect types, masks); place files by hand")
def load_mtd(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
             seed: int = 0, download: bool = True, channels: int = 3, path: str | None = None,
             max_train: int | None = None, max_test: int | None = None, train_fraction: float = 0.5) -> ADDataset:
    """Magnetic Tile Defects from ``<root>/mtd`` (or ``path``): ``MT_Free/Imgs`` normal, every other
    ``MT_<defect>/Imgs`` anomalous, ``<stem>.jpg`` images with ``<stem>.png`` masks beside them.

    There is no official split: ``train_fraction`` of the MT_Free images (chosen by ``seed``) are the
    training set; the remaining normals and all defective tiles form the test set. Non-square tiles are
    resized to the square ``image_size`` (aspect ratio not kept).
    """
    if normal is not None and str(normal) not in ("MT_Free", "free", "Free"):
        raise DatasetError(f"mtd: the only normal class is 'MT_Free', got {normal!r}")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    base = resolve_root(root)
    folder = Path(path).expanduser() if path is not None else base / "mtd"
    how = ("Clone or download https://github.com/abin24/Magnetic-tile-defect-datasets. (Huang et al., 'Surface "
           f"defect saliency of magnetic tile', The Visual Computer 2020) and copy its MT_* folders into {folder}.")
    ensure_dataset("mtd", base, None, None, target=folder / "MT_Free", download=download, how_to=how)
    jpg = frozenset({".jpg", ".jpeg"})
    normals = list_images(folder / "MT_Free" / "Imgs", jpg)
    order = np.random.default_rng(seed).permutation(len(normals))
    n_train = int(round(train_fraction * len(normals)))
    train = [Record(normals[i], 0, 0) for i in sorted(order[:n_train])]
    test = [Record(normals[i], 0, 0) for i in sorted(order[n_train:])]
    defects = sorted(d.name for d in folder.iterdir()
                     if d.is_dir() and d.name.startswith("MT_") and d.name != "MT_Free")
    for k, d in enumerate(defects, start=1):
        for p in list_images(folder / d / "Imgs", jpg):
            mask = p.with_suffix(".png")
            test.append(Record(p, 1, k, mask if mask.is_file() else None))
    meta = dict(source="https://github.com/abin24/Magnetic-tile-defect-datasets.",
                licence="no explicit licence; academic use, cite Huang, Qiu & Yuan, The Visual Computer 2020",
                split=f"{train_fraction:.2f} of MT_Free for training (seed {seed})")
    return build_dataset("mtd", "MT_Free", train, test, ("good", *[d[3:].lower() for d in defects]),
                         image_size=image_size, channels=channels, seed=seed, max_train=max_train,
                         max_test=max_test, with_masks=True, where=folder, meta=meta)


@register("casting", "real pump-impeller castings (1,300 grey JPEGs, 512 px, no masks); place files by hand")
def load_casting(*, normal: str | None = None, image_size: int | None = None, root: str | None = None,
                 seed: int = 0, download: bool = True, channels: int = 3, path: str | None = None,
                 max_train: int | None = None, max_test: int | None = None) -> ADDataset:
    """Casting product images from ``<root>/casting`` (or ``path``): train on ``train_data/ok_front``, test on
    ``test_data/ok_front`` (normal) and ``test_data/def_front`` (anomaly). The Kaggle names ``train``/``test``
    are accepted too. ``train_data/def_front`` is not used (one-class protocol). Default image_size 224."""
    if normal is not None and str(normal) not in ("casting", "ok_front"):
        raise DatasetError(f"casting: the only normal class is 'casting' (ok_front), got {normal!r}")
    base = resolve_root(root)
    folder = Path(path).expanduser() if path is not None else base / "casting"
    how = ("Get 'real-life industrial dataset of casting product' (Kaggle: ravirajsinh45/real-life-industrial-"
           f"dataset-of-casting-product, the 512x512 casting_data folder) and place it as {folder}/train_data/"
           "ok_front, test_data/ok_front and test_data/def_front.")
    ensure_dataset("casting", base, None, None, target=folder, download=download, how_to=how)
    pick = lambda *names: next((folder / n for n in names if (folder / n).is_dir()), folder / names[0])  # noqa: E731
    train_dir, test_dir = pick("train_data", "train"), pick("test_data", "test")
    train = [Record(p, 0, 0) for p in list_images(train_dir / "ok_front")]
    test = ([Record(p, 0, 0) for p in list_images(test_dir / "ok_front")]
            + [Record(p, 1, 1) for p in list_images(test_dir / "def_front")])
    if not any(r.label == 1 for r in test):
        raise DatasetError(f"casting: no defective test image in {test_dir / 'def_front'}. {how}")
    meta = dict(source="Kaggle: real-life industrial dataset of casting product (pump impellers, top view)",
                licence="non-commercial research and teaching, with attribution (see the Kaggle page)",
                native_size=512)
    return build_dataset("casting", "casting", train, test, ("good", "def_front"), image_size=image_size,
                         channels=channels, seed=seed, max_train=max_train, max_test=max_test, with_masks=False,
                         where=folder, meta=meta)
