"""Files on disk: the data root, checksummed downloads, safe archive extraction, clear offline errors.

Every function here either succeeds completely or raises :class:`~radlib.data.DatasetError` and leaves
nothing half-written behind: downloads stream into a temporary file that is renamed only after the SHA-256
matched, archives are extracted into a temporary folder that is moved into place only when every member
passed the safety checks, and folders created for a download that failed are removed again.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterator

from .base import DatasetError

__all__ = ["find_root", "resolve_root", "sha256sum", "download_url", "extract_archive", "host_reachable",
           "cleanup_on_failure", "ensure_dataset"]

_CHUNK = 1 << 20


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The data root: ``root`` if given, else ``$RADLIB_DATA``, else ``./data`` (not created here)."""
    if root is None:
        root = os.environ.get("RADLIB_DATA") or "data"
    return Path(root).expanduser()


def find_root(name: str, start: str | os.PathLike[str] | None = None) -> Path | None:
    """The first data root that holds a folder ``name`` (e.g. ``"casting"``), or None: ``$RADLIB_DATA``, then
    ``shared/data`` in ``start`` (default: the working directory), its parent or its grandparent — a notebook in
    ``<checkout>/notebooks`` and a shell in ``<checkout>`` both find ``<checkout>/../shared/data`` — then
    ``./data``. The search stops two levels up, so a stray ``/tmp/shared`` or ``/shared`` is never picked up.
    Nothing is created."""
    here = Path(start or Path.cwd()).resolve()
    candidates = [os.environ.get("RADLIB_DATA")] + [d / "shared" / "data" for d in (here, *here.parents[:2])]
    for c in [*candidates, Path("data")]:
        if c and (Path(c).expanduser() / name).is_dir():
            return Path(c).expanduser()
    return None


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def host_reachable(url: str, timeout: float = 3.0) -> bool:
    """True when a TCP connection to the host of ``url`` opens within ``timeout`` seconds.

    ``file://`` URLs are always reachable. The probe (DNS included) runs in a daemon thread so that a
    hanging resolver cannot stall the caller for longer than ``timeout`` + 1 s.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("", "file"):
        return True
    host = parts.hostname
    if not host:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 21 if parts.scheme == "ftp" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 1.0)
    return bool(result and result[0])


@contextlib.contextmanager
def cleanup_on_failure(*paths: str | os.PathLike[str]) -> Iterator[None]:
    """Remove whatever part of ``paths`` did not exist before, if the body raises.

    For each path, the first missing ancestor (or the path itself) is remembered on entry; on an exception
    those are deleted with everything inside (the body created them), then the exception propagates.
    Paths that already existed are left alone.
    """
    created: list[Path] = []
    for path in paths:
        p = Path(path).absolute()
        first_missing: Path | None = None
        for candidate in [p, *p.parents]:
            if candidate.exists():
                break
            first_missing = candidate
        if first_missing is not None:
            created.append(first_missing)
    try:
        yield
    except BaseException:
        for p in created:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists() or p.is_symlink():
                p.unlink(missing_ok=True)
        raise


def download_url(url: str, dest: str | os.PathLike[str], sha256: str | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` atomically and verify its SHA-256.

    The body streams into a temporary file next to ``dest`` (hashing on the fly) and is renamed to ``dest``
    only when the hash matches. An existing ``dest`` whose hash matches (or any existing ``dest`` when
    ``sha256`` is None) is kept without downloading.

    Args:
        url: http(s), ftp or file URL.
        dest: target file; its parent folder is created.
        sha256: expected lowercase hex digest, or None to skip verification.
        timeout: socket timeout in seconds for connecting and for each read.

    Raises:
        DatasetError: network failure (with the URL) or checksum mismatch (with both hashes); no file is left.
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if dest.is_file() and (expected is None or sha256sum(dest) == expected):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (URLs are ours)
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        h.update(chunk)
            except (urllib.error.URLError, OSError, ValueError) as err:
                raise DatasetError(f"could not download {url}: {err}") from err
        actual = h.hexdigest()
        if expected is not None and actual != expected:
            raise DatasetError(f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; "
                               "the download was deleted (a changed or truncated file upstream?)")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _inside(base: Path, target: Path) -> bool:
    b, t = os.path.realpath(base), os.path.realpath(target)
    return os.path.commonpath([b, t]) == b


def _check_tar(tf: tarfile.TarFile, dest: Path) -> None:
    for m in tf.getmembers():
        name = m.name
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise DatasetError(f"unsafe archive member {name!r}: absolute path")
        if ".." in Path(name.replace("\\", "/")).parts or not _inside(dest, dest / name):
            raise DatasetError(f"unsafe archive member {name!r}: escapes the target folder")
        if m.isdev() or not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise DatasetError(f"unsafe archive member {name!r}: device, fifo or special file")
        if m.issym():
            link = m.linkname
            if os.path.isabs(link) or not _inside(dest, dest / Path(name).parent / link):
                raise DatasetError(f"unsafe archive member {name!r}: symlink to {link!r} outside the target")
        if m.islnk():
            if os.path.isabs(m.linkname) or not _inside(dest, dest / m.linkname):
                raise DatasetError(f"unsafe archive member {name!r}: hard link to {m.linkname!r} outside the target")


def _check_zip(zf: zipfile.ZipFile, dest: Path) -> None:
    for name in zf.namelist():
        clean = name.replace("\\", "/")
        if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
            raise DatasetError(f"unsafe archive member {name!r}: absolute path")
        if ".." in Path(clean).parts or not _inside(dest, dest / clean):
            raise DatasetError(f"unsafe archive member {name!r}: escapes the target folder")


def extract_archive(path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Safely extract a tar (any compression) or zip archive into ``dest``.

    Every member is checked *before* anything is written: absolute paths, ``..`` components, symlinks or
    hard links pointing outside ``dest`` and device/fifo members are rejected; tar extraction additionally
    uses Python's ``filter="data"`` where available. Members are extracted into a temporary folder inside
    ``dest`` and moved into place at the end, so a failure leaves ``dest`` as it was.

    Returns:
        ``dest``.

    Raises:
        DatasetError: unknown format, unsafe member, or a corrupt archive.
    """
    path, dest = Path(path), Path(dest)
    if not path.is_file():
        raise DatasetError(f"archive {path} does not exist")
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        try:
            if tarfile.is_tarfile(path):
                with tarfile.open(path) as tf:
                    _check_tar(tf, staging)
                    if hasattr(tarfile, "data_filter"):
                        tf.extractall(staging, filter="data")
                    else:  # pragma: no cover (Python < 3.11.4): members were validated above
                        tf.extractall(staging)
            elif zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    _check_zip(zf, staging)
                    zf.extractall(staging)
            else:
                raise DatasetError(f"{path} is neither a tar nor a zip archive")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
            raise DatasetError(f"could not extract {path}: {err}") from err
        for path_in in staging.rglob("*"):  # a symlink already inside dest must not lead the files outside it
            final = dest / path_in.relative_to(staging)
            if not _inside(dest, final.parent) or (final.is_symlink() and not _inside(dest, final)):
                raise DatasetError(f"refusing to extract {path_in.relative_to(staging)} into {dest}: an existing "
                                   f"symlink there points outside {dest}")
        for entry in staging.iterdir():
            target = dest / entry.name
            if target.is_dir() and entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, target, dirs_exist_ok=True, symlinks=True)
            else:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def ensure_dataset(name: str, root: str | os.PathLike[str] | None, url: str | None, sha256: str | None, *,
                   target: str | os.PathLike[str], download: bool = True, archive_name: str | None = None,
                   how_to: str = "", timeout: float = 30.0, probe_timeout: float = 3.0,
                   keep_archive: bool = False) -> Path:
    """Make sure ``target`` (a folder under ``root``) exists, downloading and extracting ``url`` if needed.

    Args:
        name: dataset name used in messages (e.g. ``"mvtec_ad"``).
        root: data root (see :func:`resolve_root`); the archive is extracted into ``root / name``.
        url: archive URL, or None when no public download exists (then ``how_to`` must explain).
        sha256: expected SHA-256 of the archive (None skips verification).
        target: the folder that proves the dataset is present (e.g. ``root/mvtec_ad/bottle``).
        download: when False, a missing ``target`` raises at once.
        archive_name: file name for the downloaded archive (default: last URL component).
        how_to: manual instructions appended to every error message.
        timeout: download socket timeout; probe_timeout: connectivity check timeout (seconds).
        keep_archive: keep the archive after extraction (default: delete it).

    Returns:
        ``target`` as a Path.

    Raises:
        DatasetError: naming the dataset, the expected path and how to get the files. Offline, this fails
        within ``probe_timeout`` + 1 s; folders created for a failed download are removed again.
    """
    target = Path(target)
    if target.exists():
        return target
    folder = resolve_root(root) / name
    hint = f" {how_to}" if how_to else ""
    if url is None:
        raise DatasetError(f"{name}: files not found at {target}; radlib cannot download them (no public "
                           f"checksummed archive).{hint}")
    if not download:
        raise DatasetError(f"{name}: files not found at {target} and download=False. Call with download=True on "
                           f"a machine with internet, or download {url} yourself and extract it into {folder}.{hint}")
    if not host_reachable(url, timeout=probe_timeout):
        raise DatasetError(f"{name}: files not found at {target} and {urllib.parse.urlsplit(url).hostname} is "
                           f"unreachable (offline?). Run once with download=True on a machine with internet, or "
                           f"download {url} elsewhere and extract it into {folder}.{hint}")
    archive = folder / (archive_name or Path(urllib.parse.urlsplit(url).path).name or f"{name}.archive")
    with cleanup_on_failure(folder):
        download_url(url, archive, sha256, timeout=timeout)
        extract_archive(archive, folder)
        if not keep_archive:
            archive.unlink(missing_ok=True)
        if not target.exists():
            raise DatasetError(f"{name}: extracted {archive.name} into {folder} but {target} is still missing; "
                               f"the archive layout is not the expected one.{hint}")
    return target
