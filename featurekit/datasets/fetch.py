"""Download and verify the official datasets that a manifest describes (UrbanSound8K, ESC-50,
ESC-10), as their manifests describe them."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from featurekit.datasets.base import audio_check
from featurekit.datasets.manifest import DatasetManifest
from featurekit.datasets.official import find_root, scan_official
from featurekit.datasets.verify import VerificationReport, default_data_dir
from featurekit.errors import DatasetError
from featurekit.io.download import checksum_mismatch, download_file, extract_archive, size_mismatch

__all__ = ["download_official", "verify_official"]

logger = logging.getLogger(__name__)


def _archive_path(manifest: DatasetManifest, data_dir: Path, root: Path) -> Path | None:
    """The archive, if it was kept next to the dataset (in ``data_dir`` or above the root)."""
    for directory in (data_dir, root.parent):
        if (directory / manifest.archive.filename).is_file():
            return directory / manifest.archive.filename
    return None


def _check_archive(report: VerificationReport, manifest: DatasetManifest,
                   archive: Path | None) -> None:
    """Add the archive's size and checksum check (passed, with a note, when there is none)."""
    spec = manifest.archive
    if archive is None:
        report.add("archive", True, f"{spec.filename} not present, not checked")
        return
    problem = size_mismatch(archive, spec.size) or checksum_mismatch(archive, spec.sha256,
                                                                      spec.md5)
    if problem:
        report.add("archive", False, f"{archive}: {problem}")
    elif spec.md5 or spec.sha256:
        report.add("archive", True, f"{archive}: checksum matches")
    else:
        report.add("archive", True, f"{archive}: no published checksum ({spec.checksum_note})")


def _fold_mismatches(counts: dict[int, int], manifest: DatasetManifest) -> list[str]:
    """``fold F: n (expected m)`` for each official fold whose clip count differs."""
    return [f"fold {fold}: {counts.get(fold, 0)} (expected {expected})"
            for fold, expected in manifest.fold_counts.items() if counts.get(fold, 0) != expected]


def verify_official(manifest: DatasetManifest, data_dir: str | os.PathLike[str], *,
                    check_archive: bool = True) -> VerificationReport:
    """Compare a copy of an official dataset with its manifest.

    Checks the archive (checksum and size, when the archive is in ``data_dir`` and the
    manifest has them), that the metadata parses and agrees with the manifest's classes and
    folds, the clip count and per-fold counts of the metadata, and that every listed clip has
    its audio file.

    Parameters
    ----------
    manifest : DatasetManifest
        The dataset's manifest.
    data_dir : path-like
        Directory holding the dataset (or the dataset root itself).
    check_archive : bool, keyword-only
        Whether to checksum the archive when present (slow for large archives).

    Returns
    -------
    VerificationReport
        Never raises for a mismatch; see :attr:`VerificationReport.ok`.

    Raises
    ------
    DatasetError
        When no copy of the dataset is found.
    """
    data_dir = Path(data_dir).expanduser()
    root = find_root(manifest, data_dir)
    report = VerificationReport(name=manifest.name, root=root)
    if check_archive:
        _check_archive(report, manifest, _archive_path(manifest, data_dir, root))
    try:
        scan = scan_official(manifest, root)
    except DatasetError as exc:
        report.add("metadata", False, str(exc))
        return report
    rows = scan.rows
    report.add("metadata", True, f"{scan.metadata_path}: columns, classes and folds agree "
                                 "with the manifest")
    report.add("clips listed", len(rows) == manifest.expected_clips,
               f"{len(rows)} (expected {manifest.expected_clips})")
    listed = _fold_mismatches(rows["fold"].value_counts().to_dict(), manifest)
    report.add("clips per fold", not listed, "; ".join(listed) or "all folds as expected")
    report.add("audio files", *audio_check(rows))
    return report


def download_official(manifest: DatasetManifest, data_dir: str | os.PathLike[str] | None, *,
                      url: str | None, progress: bool, keep_archive: bool) -> Path:
    """Download, extract and verify an official dataset; see
    :func:`featurekit.datasets.download_dataset`.

    Parameters
    ----------
    manifest : DatasetManifest
        The dataset's manifest (ESC-10's names the ESC-50 archive).
    data_dir : path-like or None
        Where to put it; ``None`` for :func:`~featurekit.datasets.default_data_dir`.
    url : str or None, keyword-only
        A mirror of the official archive (still checked against the manifest).
    progress : bool, keyword-only
        Show a download progress bar.
    keep_archive : bool, keyword-only
        Keep the archive after extraction.

    Returns
    -------
    Path
        The dataset root.

    Raises
    ------
    DownloadError
        Network failure, checksum mismatch or unsafe archive (nothing is extracted).
    DatasetError
        When the result does not match the manifest.
    """
    name = manifest.name
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    try:
        root = find_root(manifest, data_dir)
        logger.info("%s already present at %s; verifying it", name, root)
        downloaded = False
    except DatasetError:
        archive = download_file(url or manifest.archive.url, data_dir / manifest.archive.filename,
                                md5=manifest.archive.md5, sha256=manifest.archive.sha256,
                                expected_size=manifest.archive.size, progress=progress)
        extract_archive(archive, data_dir)
        if not keep_archive:
            archive.unlink()
        root = find_root(manifest, data_dir)
        downloaded = True
    report = verify_official(manifest, root, check_archive=False)
    if not report.ok:
        state = "downloaded to" if downloaded else "an existing copy is at"
        raise DatasetError(f"{name}: {state} {root}, but it does not match the manifest: "
                           f"{'; '.join(report.problems)}")
    return root
