"""Datasets for one-class anomaly detection: ``radlib.data.load(name, ...)`` and ``radlib.data.available()``.

Importing this package registers every loader (each module registers itself with :func:`register`).

Example:
    >>> from radlib.data import load
    >>> ds = load("digits", normal="0", image_size=16, seed=0)
    >>> ds.train.images.dtype, ds.image_size, int(ds.train.labels.sum())  # uint8, 16 px, normals only
    (torch.uint8, 16, 0)
"""
from .base import (ADDataset, DatasetError, DatasetInfo, Split, available, contaminate, dataset_info,  # noqa: F401
                   load, register, to_float)
from . import surfaces  # noqa: F401,E402  (registers "surfaces")
from . import builtin  # noqa: F401,E402  (digits, mnist, fashion_mnist, cifar10, cifar100, svhn)
from . import folder  # noqa: F401,E402  (folder, casting, mvtec_ad, visa, mtd)

__all__ = ["ADDataset", "DatasetError", "DatasetInfo", "Split", "dataset_info", "available", "contaminate", "load",
           "register", "to_float"]
