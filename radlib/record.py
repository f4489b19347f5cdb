"""The run record: everything a trained run needs, inside its checkpoint, with one writer and one reader.

A run folder's ``last.pt`` carries, besides the weights and the optimiser state that resume needs:

- ``config``: the :class:`~radlib.config.TrainConfig` (and the network's ``model_config``);
- ``profile``: the :class:`~radlib.profiles.Profile` it was trained with, overrides included (``RADLIB_PROFILE_OVERRIDES``
  changes what the score and the evaluation do, so it is part of the run);
- ``data``: the data identity (:func:`data_identity`): dataset, category, the arguments that rebuild it with
  :func:`radlib.data.load`, image size, channels, split sizes, seed, contamination, and the SHA-256 of the training
  and of the test split (images and labels);
- ``purification``: the kept training rows, the scorer and ``keep`` when the training split was purified (LLBNAD);
- ``trained_sha256``: the SHA-256 of the images the network was trained on (after purification);
- ``distributed``: ``{"world_size", "backend", "sync_batchnorm"}`` for a data-parallel run (:mod:`radlib.distributed`),
  None for one process (a record written before this field existed reads as None);
- ``radlib_version`` and ``digests``: a SHA-256 of the weights (model state and the msc centre) and of every
  plain-data field above.

:func:`save_run` writes it (atomically, :func:`radlib.checkpoint.save_checkpoint`) with two derived views for humans,
``history.json`` and ``run.json``, which radlib never reads back. :func:`load_run` reads it and refuses, with one
line naming what differs, a file whose weights or fields no longer match their digests (a flipped byte, a hand
edit), an older checkpoint without a record, and weights that are not finite. The digests guard against accidents
and edits, not against someone who recomputes them: a checkpoint from an untrusted source is still only as safe as
``weights_only=True`` loading makes it. anomalib and Lightning keep what a checkpoint needs inside it the same way;
radlib before this module re-assembled a run from five side files and environment variables.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from radlib.record import data_identity
    >>> from radlib.data import load
    >>> ds = load("digits", "0", image_size=8, max_train=8, max_test=10)
    >>> ident = data_identity(ds)
    >>> ident["dataset"], ident["n_train"], ident["load"]["name"], len(ident["train_sha256"])
    ('digits', 8, 'digits', 64)
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .profiles import Profile

__all__ = ["RunRecord", "Provenance", "FORMAT", "save_run", "load_run", "data_identity", "tensor_digest", "weights_digest",
           "identity_differences", "write_text_atomic"]

#: the record's format name; a checkpoint without it predates the run record
FORMAT = "radlib-run/1"

#: the plain-data fields of a record, each with its own digest (so a mismatch names the field)
_DIGESTED = ("config", "model_config", "profile", "data", "purification", "trained_sha256", "epoch", "history",
             "seconds", "radlib_version", "distributed")
#: fields added after a record format was in use: a record without them (field and digest absent) reads as None
_ADDED = ("distributed",)

#: data-identity fields compared between a run and rebuilt data (``load``, ``root`` and ``category`` say *where* the
#: data came from, and a folder data set's category is its folder's name; the digests say *what* it is, so a moved
#: folder with the same images still matches)
IDENTITY_FIELDS = ("dataset", "image_size", "channels", "n_train", "n_test", "seed", "contamination",
                   "train_sha256", "test_sha256")


def tensor_digest(*tensors: torch.Tensor | None) -> str:
    """SHA-256 (hex) over each tensor's dtype, shape and bytes (None counts as a marker), copied to the CPU."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none;")
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def weights_digest(state_dict: dict[str, torch.Tensor], center: torch.Tensor | None = None) -> str:
    """SHA-256 (hex) of a model's state dict (keys sorted) and the msc feature centre."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode() + b"\0")
        h.update(tensor_digest(state_dict[key]).encode())
    h.update(tensor_digest(center).encode())
    return h.hexdigest()


def _plain_digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def data_identity(ds: Any) -> dict[str, Any]:
    """What identifies a data set for a run: name, category, rebuild arguments, sizes and SHA-256 of both splits.

    ``ds``: an :class:`~radlib.data.ADDataset` (``ds.meta["load"]``, set by :func:`radlib.data.load`, holds the
    arguments that rebuild it; None when the data set was built another way). Returns plain data; the digests cover
    images and labels of each split (a relabelled test image changes the AUROC, so it changes the identity).
    """
    load_args = ds.meta.get("load")
    return {"dataset": ds.name, "category": ds.normal, "image_size": ds.image_size, "channels": ds.channels,
            "n_train": len(ds.train), "n_test": len(ds.test), "seed": ds.meta.get("seed"),
            "contamination": ds.meta.get("contamination", 0.0) or 0.0,
            "root": None if load_args is None else load_args.get("root"),
            "load": None if load_args is None else dict(load_args),
            "train_sha256": tensor_digest(ds.train.images, ds.train.labels),
            "test_sha256": tensor_digest(ds.test.images, ds.test.labels)}


def identity_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"field recorded -> current"`` for every identity field that differs (digests shortened to 12 hex); the
    category is named too when it differs and something else does (alone it is only a name)."""
    out = []
    keys: tuple[str, ...] = IDENTITY_FIELDS
    if any(recorded.get(k) != current.get(k) for k in IDENTITY_FIELDS):
        keys = ("category", *IDENTITY_FIELDS)
    for key in keys:
        a, b = recorded.get(key), current.get(key)
        if a != b:
            if key.endswith("sha256"):  # a digest: its first 12 hex digits say enough
                a, b = (v[:12] if isinstance(v, str) else v for v in (a, b))
            out.append(f"{key} {a!r} -> {b!r}")
    return out


@dataclass(frozen=True)
class Provenance:
    """What :func:`radlib.train.train` records besides the config: the profile, the data identity of the data set
    *before* purification (:func:`data_identity`) and the purification (``{"kept": [...], "method", "keep"}``)."""

    profile: Profile | None = None
    data: dict[str, Any] | None = None
    purification: dict[str, Any] | None = None

    @classmethod
    def of(cls, ds: Any, profile: Profile | None = None, purification: Any = None) -> "Provenance":
        """The provenance of training on ``ds`` (the data set as loaded), purified by ``purification`` (a
        :class:`~radlib.purify.Purification` of ``ds.train``, or None)."""
        pur = None
        if purification is not None:
            pur = {"kept": [int(i) for i in purification.kept.tolist()], "method": purification.method,
                   "keep": float(purification.keep)}
        return cls(profile=profile, data=data_identity(ds), purification=pur)


@dataclass
class RunRecord:
    """The plain-data part of a run (what :func:`load_run` verified). ``profile`` and ``data`` are None for a run
    trained on images given in memory without a profile (:func:`radlib.train.train` on a tensor)."""

    config: TrainConfig
    model_config: dict[str, Any]
    profile: dict[str, Any] | None
    data: dict[str, Any] | None
    purification: dict[str, Any] | None
    trained_sha256: str
    epoch: int
    history: list[dict[str, float]]
    seconds: float
    radlib_version: str
    weights_sha256: str
    distributed: dict[str, Any] | None = None

    def profile_object(self) -> Profile:
        """The training :class:`~radlib.profiles.Profile`, overrides included. Raises CheckpointError without one."""
        if self.profile is None:
            raise CheckpointError("this run was trained without a profile (radlib.train.train called directly); "
                                  "fit its score with radlib.score.fit_score and evaluate with radlib.evaluate")
        return Profile(**self.profile)

    def view(self) -> dict[str, Any]:
        """The human-readable view written to ``run.json`` (never read back)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "history"}
        d["config"] = asdict(self.config)
        d["epochs_done"] = d.pop("epoch")
        if d["purification"] is not None:
            d["purification"] = {k: v for k, v in d["purification"].items() if k != "kept"}
            d["purification"]["n_kept"] = len(self.purification["kept"])  # type: ignore[index]
        return d


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and ``os.replace``: a symlink at ``path`` is replaced, never
    written through, and a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_run(path: str | os.PathLike[str], *, config: TrainConfig, model: torch.nn.Module,
             optimizer: dict[str, Any], scheduler: dict[str, Any], epoch: int, history: list[dict[str, float]],
             seconds: float, center: torch.Tensor | None, trained_sha256: str, profile: Profile | None = None,
             data: dict[str, Any] | None = None, purification: dict[str, Any] | None = None,
             distributed: dict[str, Any] | None = None) -> RunRecord:
    """Write the run record to ``path`` (``last.pt``) atomically, then ``history.json`` and ``run.json`` beside it.

    ``optimizer``/``scheduler``: their ``state_dict()`` (for resume). ``data``: :func:`data_identity` of the data
    set *before* purification; ``purification``: ``{"kept": [...], "method": ..., "keep": ...}`` or None;
    ``trained_sha256``: :func:`tensor_digest` of the images the network was trained on; ``distributed``: the
    data-parallel run (:meth:`radlib.distributed.Shards.record`) or None.
    """
    from . import __version__
    path = Path(path)
    state = model.state_dict()
    model_config: Any = model.config
    record = RunRecord(config=config, model_config=asdict(model_config), profile=None if profile is None
                       else asdict(profile), data=data, purification=purification, trained_sha256=trained_sha256,
                       epoch=int(epoch), history=list(history), seconds=float(seconds), radlib_version=__version__,
                       weights_sha256=weights_digest(state, center), distributed=distributed)
    plain = {name: (asdict(config) if name == "config" else getattr(record, name)) for name in _DIGESTED}
    digests = {name: _plain_digest(value) for name, value in plain.items()}
    digests["weights"] = record.weights_sha256
    save_checkpoint({"format": FORMAT, **plain, "model": state, "center": center, "optimizer": optimizer,
                     "scheduler": scheduler, "digests": digests}, path)
    write_text_atomic(path.parent / "history.json", json.dumps(history, indent=1))
    write_text_atomic(path.parent / "run.json", json.dumps(record.view(), indent=1, default=str))
    return record


def load_run(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
             ) -> tuple[RunRecord, dict[str, Any]]:
    """Read and verify the run record at ``path``; returns ``(record, state)`` where ``state`` holds ``model``,
    ``center``, ``optimizer`` and ``scheduler`` (for resume).

    Raises:
        CheckpointError (one line naming the file and what is wrong): not a checkpoint or damaged
            (:func:`radlib.checkpoint.load_checkpoint`); written before the run record; a field or the weights no
            longer match their digest; a field of the wrong type; weights that are NaN or infinite.
    """
    path = Path(path)
    state = load_checkpoint(path, map_location=map_location)
    if state.get("format") != FORMAT:
        if "config" in state and "model" in state:
            raise CheckpointError(f"{path} was written by an older radlib, without a run record (data identity, "
                                  f"profile, digests); retrain it with this version")
        raise CheckpointError(f"{path} is not a radlib run checkpoint (no {FORMAT!r} record)")
    digests = state.get("digests")
    if not isinstance(digests, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"{path} has a damaged run record (no digests or no weights)")
    changed = [name for name in _DIGESTED if digests.get(name) != _plain_digest(state.get(name))
               and not (name in _ADDED and name not in digests and name not in state)]
    center = state.get("center")
    if center is not None and not isinstance(center, torch.Tensor):
        changed.append("center")
    elif digests.get("weights") != weights_digest(state["model"], center):
        changed.append("weights")
    if changed:
        raise CheckpointError(f"{path}: {', '.join(changed)} changed after radlib wrote it (SHA-256 differs from "
                              f"the run record's); restore the file or retrain")
    try:
        record = RunRecord(config=TrainConfig(**state["config"]), model_config=dict(state["model_config"]),
                           profile=state["profile"], data=state["data"], purification=state["purification"],
                           trained_sha256=str(state["trained_sha256"]), epoch=int(state["epoch"]),
                           history=list(state["history"]), seconds=float(state["seconds"]),
                           radlib_version=str(state["radlib_version"]), weights_sha256=digests["weights"],
                           distributed=state.get("distributed"))
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path} has a run record this radlib cannot read ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    if not 0 <= record.epoch <= record.config.epochs or not math.isfinite(record.seconds):
        raise CheckpointError(f"{path} records epoch {record.epoch} of {record.config.epochs}: not a valid run")
    bad = [k for k, v in state["model"].items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path} holds NaN/inf weights ({', '.join(bad[:3])}); retrain")
    return record, state
