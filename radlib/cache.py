"""Train once, reuse: a checkpoint cache keyed by everything that decides the trained weights.

A cache entry is an ordinary :func:`radlib.train.train` output folder (the run record ``last.pt`` of
:mod:`radlib.record`, written atomically, loaded with ``weights_only=True`` and checked against its digests, plus
its derived views ``history.json`` and ``run.json``), so a hit is the trainer's own exact resume of a finished run,
an interrupted run (a Colab disconnect) continues where it stopped, and an entry whose weights changed on disk is
refused, never used. The folder is
``<root>/<dataset>-<category>-<method>-<profile>-s<seed>-<key>``, where ``key`` hashes

- the full :class:`~radlib.config.TrainConfig` (every field: a changed epoch count, eps or width retrains),
- the training images themselves (SHA-256 of their bytes: another class, size or contamination retrains),
- the radlib source (SHA-256 of every ``radlib/**/*.py``: an edited loss or trainer retrains, so a cached
  result is never older than the code that reports it).

An entry also keeps the evaluations made of its weights (``evals.pt``, :func:`store_eval` / :func:`load_eval`),
each under a key of everything else that decides the numbers (:func:`eval_key`: the attacks, the test images and
labels, the score, the seed, batch size, precision and device type), so a notebook that evaluates a cached run the
way another notebook already did gets the same result back without attacking again.

``root``: an explicit folder, else ``$RADLIB_CACHE``, else ``runs/cache`` in the project checkout that holds the
working directory (found upwards by its ``pyproject.toml``; the notebooks run in ``notebooks/``), else
``./runs/cache``. ``RADLIB_CACHE=off`` turns every ``cache=True`` off (e.g. to time a notebook cold).

Example:
    >>> import torch, tempfile
    >>> from radlib.cache import cache_dir
    >>> from radlib.train import TrainConfig
    >>> cfg = TrainConfig(method="csi", dataset="digits", category="0", image_size=12, width=4, epochs=1)
    >>> x = torch.zeros(8, 3, 12, 12, dtype=torch.uint8)
    >>> root = tempfile.mkdtemp()
    >>> d = cache_dir(cfg, x, root=root, profile="smoke")
    >>> d.name.startswith("digits-0-csi-smoke-s0-"), d == cache_dir(cfg, x, root=root, profile="smoke")
    (True, True)
    >>> d == cache_dir(cfg, x + 1, root=root, profile="smoke")  # other images: another entry
    False
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .record import load_run, tensor_digest
from .results import EvalResult

__all__ = ["cache_dir", "default_cache_root", "source_digest", "images_digest", "resolve_cache", "is_complete",
           "EVALS_FILE", "MAX_EVALS", "eval_key", "load_eval", "store_eval", "cached_eval", "writable_root", "reference_dir"]

#: the file of a cache entry that keeps its evaluations (:func:`store_eval`)
EVALS_FILE = "evals.pt"
#: evaluations an entry keeps, the newest (a reference folder outlives radlib edits: older keys are dropped)
MAX_EVALS = 64

_PACKAGE = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 (hex) over the relative path and bytes of every ``.py`` file of the installed radlib package."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(path.relative_to(_PACKAGE).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def images_digest(images: torch.Tensor) -> str:
    """SHA-256 (hex) of a tensor's dtype, shape and bytes (any dtype, any device): :func:`radlib.record.tensor_digest`,
    the digest the run record stores as ``trained_sha256``."""
    return tensor_digest(images)


def default_cache_root() -> Path:
    """``$RADLIB_CACHE``, else ``runs/cache`` of the project checkout above the working directory, else
    ``./runs/cache``."""
    env = os.environ.get("RADLIB_CACHE", "").strip()
    if env and env.lower() != "off":
        return Path(env).expanduser()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "radlib" / "__init__.py").is_file():
            return d / "runs" / "cache"
    return here / "runs" / "cache"


def resolve_cache(cache: bool | str | os.PathLike[str] | None) -> Path | None:
    """The cache root a ``cache=`` argument means: False / None -> no cache; True -> :func:`default_cache_root`
    (no cache when ``RADLIB_CACHE=off``); a path -> that folder."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return None if os.environ.get("RADLIB_CACHE", "").strip().lower() == "off" else default_cache_root()
    return Path(cache).expanduser()


def writable_root(root: Path) -> Path:
    """``root`` created if needed; a ValueError naming ``$RADLIB_CACHE`` when it is a file or cannot be written."""
    where = f"the checkpoint cache {root} ($RADLIB_CACHE or cache=)"
    if root.exists() and not root.is_dir():
        raise ValueError(f"{where} is a file; point RADLIB_CACHE at a folder, or set RADLIB_CACHE=off")
    try:
        root.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=root, prefix=".probe-").close()
    except OSError as e:
        raise ValueError(f"{where} cannot be written ({e.strerror or e}); point RADLIB_CACHE at a writable folder, "
                         f"or set RADLIB_CACHE=off") from None
    return root


def reference_dir(dataset: str, category: str | None, *, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that keeps the evaluations of the reference rows (:func:`radlib.reference.reference_rows`:
    detectors that learn nothing) on one data set: ``<root>/reference-<dataset>-<category>``."""
    return (Path(root) if root is not None else default_cache_root()) / _folder_name("reference", dataset,
                                                                                      category or "all")


def cache_dir(config: TrainConfig, images: torch.Tensor, *, root: str | os.PathLike[str] | None = None,
              profile: str = "custom") -> Path:
    """The cache folder of training ``config`` on ``images`` (N, C, H, W) with this radlib source.

    Nothing is created or read; pass the folder to ``train(config, images, out=...)``, which resumes (or returns
    at once) when it holds a finished run of the same config.
    """
    payload = json.dumps({"config": asdict(config), "images": images_digest(images), "source": source_digest()},
                         sort_keys=True, default=str)
    key = hashlib.sha256(payload.encode()).hexdigest()[:12]
    name = _folder_name(config.dataset, config.category or "all", config.method, profile, f"s{config.seed}", key)
    return (Path(root) if root is not None else default_cache_root()) / name


def _folder_name(*parts: object) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts)


def is_complete(folder: str | os.PathLike[str], config: TrainConfig) -> bool:
    """True when ``folder/last.pt`` is a run record of ``config`` with all ``config.epochs`` epochs done. A cheap
    look before training that reads only the run record; a damaged or tampered record counts as not complete,
    and :func:`radlib.train.train` then refuses it with its reason."""
    try:
        record, _ = load_run(Path(folder) / "last.pt")
    except CheckpointError:
        return False
    return record.config == config and record.epoch >= config.epochs


def eval_key(**facts: Any) -> str:
    """A key (hex, 16 characters) of the facts that decide an evaluation of a cache entry's weights, besides the
    weights themselves: json-able values (tensors are digested by :func:`images_digest`), e.g. the attacks as
    dicts, the test images and labels, the score kind, seed, batch size, precision and device type."""
    plain = {k: images_digest(v) if isinstance(v, torch.Tensor) else v for k, v in facts.items()}
    payload = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _stored_evals(entry: Path) -> dict[str, Any]:
    try:
        held = load_checkpoint(entry / EVALS_FILE, required=("evals",))["evals"]
    except CheckpointError:
        return {}
    return held if isinstance(held, dict) else {}


def load_eval(entry: str | os.PathLike[str], key: str) -> EvalResult | None:
    """The evaluation stored under ``key`` in the cache entry ``entry``; None when there is none (no file, a
    damaged one, another key): the caller then evaluates and :func:`store_eval` keeps the result."""
    stored = _stored_evals(Path(entry)).get(key)
    if not isinstance(stored, dict):
        return None
    try:
        return EvalResult.from_dict(stored)
    except (ValueError, TypeError, KeyError):
        return None


def cached_eval(entry: str | os.PathLike[str] | None, key: str, compute: Callable[[], EvalResult]
                ) -> tuple[EvalResult, bool]:
    """The evaluation under ``key`` in ``entry`` if there is one, else ``compute()`` stored there; returns it and
    whether it came from the entry. ``entry=None`` (no cache): ``compute()``, nothing stored."""
    if entry is None:
        return compute(), False
    held = load_eval(entry, key)
    if held is not None:
        return held, True
    result = compute()
    store_eval(entry, key, result)
    return result, False


def store_eval(entry: str | os.PathLike[str], key: str, result: EvalResult) -> None:
    """Keep ``result`` (its scores, AUROCs and protocol; not adversarial images) under ``key`` in the cache entry
    ``entry`` beside the evaluations already there, the newest :data:`MAX_EVALS` of them (an atomic rewrite of
    ``evals.pt``)."""
    entry = Path(entry)
    held = _stored_evals(entry)
    held.pop(key, None)  # re-stored last: the newest
    held[key] = result.to_dict(include_scores=True)
    held = dict(list(held.items())[-MAX_EVALS:])
    save_checkpoint({"evals": held}, entry / EVALS_FILE)
