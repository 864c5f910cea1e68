"""Downloads and archive extraction that never leave a half-finished file looking complete.

:func:`download_file` streams a URL into ``DEST.part`` (resuming it with an HTTP Range request
when one is left from an interrupted run), checks the size and checksum, and only then renames
it to ``DEST``. :func:`extract_archive` checks every member of a tar or zip archive before
extracting anything (no absolute paths, no ``..``, no links leaving the target, no device
files), extracts into a hidden temporary directory inside the destination and moves the result
into place. Used for datasets and for pretrained weights.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import shutil
import socket
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from featurekit._util.progress import progress_bar
from featurekit.errors import DownloadError
from featurekit.io.splitzip import open_split_zip, split_parts

__all__ = ["checksum_mismatch", "download_file", "extract_archive", "file_checksum",
           "size_mismatch"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_INTERRUPTIONS = (OSError, http.client.HTTPException, socket.timeout)
#: First wait before retrying a failed connection or a server error; it doubles each time.
RETRY_DELAY_S = 1.0


def file_checksum(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (``algorithm`` as in :mod:`hashlib`)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_mismatch(path: str | os.PathLike[str], sha256: str | None,
                      md5: str | None) -> str | None:
    """Why ``path`` fails the given checksums (``None`` ones are skipped), or ``None``."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None:
            actual = file_checksum(path, algorithm)
            if actual != expected.lower():
                return f"{algorithm} mismatch: expected {expected.lower()}, got {actual}"
    return None


class _TransientError(DownloadError):
    """A failure worth retrying: no connection, or a server error (HTTP 5xx, 429)."""


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    from featurekit import __version__

    headers = {"User-Agent": f"featurekit/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                      timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            raise  # handled by the caller: the partial file is unusable
        kind = _TransientError if exc.code >= 500 or exc.code == 429 else DownloadError
        raise kind(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _TransientError(f"{url}: cannot connect: {exc.reason}") from exc


def _resume_offset(response: http.client.HTTPResponse, offset: int) -> int:
    """Byte offset the response body starts at: ``offset`` if the server honoured Range."""
    if response.status != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")
    try:
        start = int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1
    return start if start == offset else -1


def _fetch_into(url: str, part: Path, *, timeout: float, progress: bool,
                desc: str) -> None:
    """Append the rest of ``url`` to ``part``; raise on any interruption or HTTP error."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError:  # 416: the partial file does not fit the remote file
        logger.warning("%s: server refused to resume %s; starting over", url, part)
        part.unlink()
        response = _open(url, 0, timeout)
        offset = 0
    with response:
        start = _resume_offset(response, offset)
        if start != offset:
            if offset:
                logger.info("%s: server ignored the Range request; restarting", url)
            if start < 0:
                raise DownloadError(f"{url}: unexpected Content-Range "
                                    f"{response.headers.get('Content-Range')!r}")
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        received = offset
        with open(part, "ab" if offset else "wb") as handle, \
                progress_bar(total=total, initial=offset, desc=desc, unit="B",
                             unit_scale=True, unit_divisor=1024,
                             disable=None if progress else True) as bar:
            while chunk := response.read(_CHUNK):
                handle.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)


def download_file(url: str, dest: str | os.PathLike[str], *, sha256: str | None = None,
                  md5: str | None = None, expected_size: int | None = None,
                  progress: bool = True, timeout: float = 60, retries: int = 3) -> Path:
    """Download ``url`` to ``dest`` with resume, checksum check and atomic placement.

    Data is streamed into ``dest`` + ``.part``; an existing ``.part`` (left by an interrupted
    run) is resumed with an HTTP Range request, or restarted when the server ignores it.
    Only a complete file whose size and checksums match is renamed to ``dest``.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` URL.
    dest : path-like
        Final file path. If it already exists and matches the given size and checksums,
        nothing is downloaded; if it does not match, it is replaced.
    sha256, md5 : str, keyword-only, optional
        Expected hex digests.
    expected_size : int, keyword-only, optional
        Expected size in bytes.
    progress : bool, keyword-only
        Show a byte progress bar (subject to ``FEATUREKIT_NO_PROGRESS``).
    timeout : float, keyword-only
        Socket timeout in seconds for connecting and for each read.
    retries : int, keyword-only
        How many times a dropped connection is resumed, or a failed connection or server
        error (HTTP 5xx, 429) retried after a doubling wait, before giving up.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DownloadError
        On an HTTP or connection error (after ``retries`` resumptions; the ``.part`` file is
        kept so a rerun resumes), or a size/checksum mismatch (the bad file is deleted).
    """
    if not url.startswith(("http://", "https://")):
        raise DownloadError(f"{url}: only http:// and https:// URLs can be downloaded")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if size_mismatch(dest, expected_size) or checksum_mismatch(dest, sha256, md5):
            logger.warning("%s exists but does not match the expected checksum/size; "
                           "downloading it again", dest)
            dest.unlink()
        else:
            return dest
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_into(url, part, timeout=timeout, progress=progress, desc=dest.name)
            break
        except _TransientError as exc:
            if attempt == retries:
                raise DownloadError(f"{exc} (after {retries + 1} attempts)") from exc
            logger.warning("%s; retrying in %.1f s", exc, RETRY_DELAY_S * 2**attempt)
            time.sleep(RETRY_DELAY_S * 2**attempt)
        except DownloadError:
            raise
        except _INTERRUPTIONS as exc:
            if attempt == retries:
                size = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"{url}: download interrupted ({exc!r}) after "
                                    f"{size} bytes; rerun to resume from {part}") from exc
            logger.warning("%s: connection lost (%r); resuming", url, exc)
    problem = size_mismatch(part, expected_size) or checksum_mismatch(part, sha256, md5)
    if problem:
        part.unlink()
        raise DownloadError(f"{url}: {problem}; the downloaded file was deleted "
                            "(rerun to download it again)")
    os.replace(part, dest)
    return dest


def size_mismatch(path: str | os.PathLike[str], expected_size: int | None) -> str | None:
    """Why ``path`` is not ``expected_size`` bytes long (``None`` skips), or ``None``."""
    size = os.stat(path).st_size
    if expected_size is not None and size != expected_size:
        return f"size mismatch: expected {expected_size} bytes, got {size}"
    return None


def _member_problem(name: str, link_target: str | None, *, hard: bool = False) -> str | None:
    """Why an archive member is unsafe to extract, or ``None``."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return "absolute path"
    if ".." in normalized.split("/"):
        return "path with '..'"
    if link_target is not None:
        target = link_target.replace("\\", "/")
        if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
            return f"link to absolute path {link_target!r}"
        # Symlinks resolve against the member's directory, hard links against the root.
        base = "" if hard else posixpath.dirname(normalized)
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved == ".." or resolved.startswith("../"):
            return f"link to {link_target!r} outside the archive"
    return None


def _check_tar(archive: tarfile.TarFile) -> None:
    for member in archive.getmembers():
        if member.isdev() or member.isfifo():
            problem: str | None = "device or FIFO"
        elif member.issym() or member.islnk():
            problem = _member_problem(member.name, member.linkname, hard=member.islnk())
        else:
            problem = _member_problem(member.name, None)
        if problem:
            raise DownloadError(f"unsafe archive member {member.name!r}: {problem}")


def _check_zip(archive: zipfile.ZipFile) -> None:
    for info in archive.infolist():
        link_target = None
        if stat.S_ISLNK(info.external_attr >> 16):
            link_target = archive.read(info).decode("utf-8", "replace")
        problem = _member_problem(info.filename, link_target)
        if problem:
            raise DownloadError(f"unsafe archive member {info.filename!r}: {problem}")


def extract_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Safely extract a tar (any compression) or zip archive into the directory ``dest``.

    All members are checked first; an archive with an absolute path, a ``..`` component, a
    link pointing outside the archive, or a device file is rejected and nothing is
    extracted. Extraction goes to a hidden temporary directory ``dest/.extract-*``; each
    top-level entry is then renamed into ``dest``, so an interrupted extraction never leaves a
    partial tree under an archive entry's final name.

    Parameters
    ----------
    archive : path-like
        ``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz`` or ``.zip`` file; a
        ``name.zip`` with ``name.z01``, ``name.z02``, ... beside it is read as the last part
        of a split archive (:func:`featurekit.io.splitzip.open_split_zip`).
    dest : path-like
        Directory to extract into (created if missing).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DownloadError
        For an unreadable or unsafe archive, or when a top-level entry of the archive already
        exists in ``dest`` (nothing is overwritten).
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # Staged inside dest (same file system, so the final renames are atomic; nothing is
    # written outside the target, whose parent may not be writable).
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        try:
            parts = split_parts(archive) if archive.suffix.lower() == ".zip" else [archive]
            if len(parts) > 1:  # name.z01, name.z02, ... beside name.zip: one split archive
                with open_split_zip(parts) as handle:
                    _check_zip(handle)
                    handle.extractall(staging)
            elif zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as handle:
                    _check_zip(handle)
                    handle.extractall(staging)
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive, "r:*") as handle:
                    _check_tar(handle)
                    handle.extractall(staging, filter="data")
            else:
                raise DownloadError(f"{archive}: not a tar or zip archive")
        except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as exc:
            if isinstance(exc, DownloadError):
                raise
            raise DownloadError(f"{archive}: cannot extract: {exc}") from exc
        entries = sorted(staging.iterdir())
        clashes = [entry.name for entry in entries if (dest / entry.name).exists()]
        if clashes:
            raise DownloadError(f"{archive}: {', '.join(clashes)} already exist(s) in {dest}; "
                                "remove it or use the existing copy")
        for entry in entries:
            os.replace(entry, dest / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
