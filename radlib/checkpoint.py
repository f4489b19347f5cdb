"""Atomic, safe checkpoints: plain-data payloads written to a temp file then ``os.replace``-d.

A run killed mid-write leaves the previous checkpoint intact (never a truncated file), and loading uses
``torch.load(..., weights_only=True)`` so a checkpoint cannot execute code.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError"]


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, damaged, not written by radlib, or holding unsafe content. The
    message names the file and what is wrong (never a hint to load it unsafely)."""


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts only) to ``path`` atomically.

    The temp file ``.<name>.<pid>.<random>.tmp`` becomes ``path`` by ``os.replace`` (a symlink at ``path`` is
    replaced, never written through) with the permissions of any new file (``0666`` less the umask, as the JSON
    files beside it). Temp files left by a writer that no longer runs (killed mid-save) are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _remove_stale_temps(path: Path) -> None:
    """Delete ``.<name>.<pid>.*.tmp`` beside ``path`` whose writer process is gone (a kill -9 mid-save)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            tmp.unlink()
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu",
                    required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        CheckpointError: the path is not a file, the file is damaged (truncated, not a torch archive), holds
            objects that ``weights_only`` refuses (e.g. a pickle that would run code), is not a dict, or lacks
            one of the ``required`` keys.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused: say what, never torch's advice to load unsafely
        detail = _unpickling_detail(str(e))
        if "global" not in detail.lower():  # no object it refuses: bytes that are not a torch pickle
            raise CheckpointError(f"{path} is damaged or not a torch checkpoint (UnpicklingError: "
                                  f"{detail or 'unreadable'})") from None
        raise CheckpointError(f"{path} holds content that safe loading refuses ({detail}); "
                              f"it was not written by radlib or has been tampered with") from None
    except (EOFError, OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path} is damaged or not a torch checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a radlib checkpoint (it holds a {type(state).__name__}, not a dict)")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a radlib training checkpoint: missing {', '.join(missing)}")
    return state


def _unpickling_detail(text: str) -> str:
    """The one line of a ``weights_only`` UnpicklingError that says what was refused, without torch's paragraph
    that advises re-loading with ``weights_only=False`` (its wording differs between torch releases)."""
    text = text.split("WeightsUnpickler error:")[-1]
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Weights only load failed", "Check the documentation", "Please file")):
            return line
    return ""
