"""Download and verify official datasets as their manifests describe them."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from featurekit.datasets.manifest import DatasetManifest, load_manifest
from featurekit.download import checksum_mismatch, download_file, extract_archive, size_mismatch
from featurekit.errors import DatasetError

__all__ = ["VerificationReport", "default_data_dir", "download_dataset", "verify_dataset"]

logger = logging.getLogger(__name__)

#: Environment variable naming the default data directory.
DATA_DIR_ENV = "FEATUREKIT_DATA_DIR"
#: The official dataset with an adapter and a download of its own (multi-part Zenodo record).
FSD50K = "fsd50k"


def default_data_dir() -> Path:
    """``$FEATUREKIT_DATA_DIR``, else ``~/featurekit_data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / "featurekit_data").expanduser()


@dataclass
class VerificationReport:
    """Outcome of :func:`verify_dataset`: one line per check.

    Attributes
    ----------
    name : str
        Dataset checked.
    root : Path
        Dataset root found.
    checks : list of (str, bool, str)
        ``(what, passed, detail)`` per check.
    """

    name: str
    root: Path
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(passed for _, passed, _ in self.checks)

    @property
    def problems(self) -> list[str]:
        """``what: detail`` of each failed check."""
        return [f"{what}: {detail}" for what, passed, detail in self.checks if not passed]

    def add(self, what: str, passed: bool, detail: str) -> None:
        self.checks.append((what, passed, detail))

    def __str__(self) -> str:
        lines = [f"{self.name} at {self.root}"]
        lines += [f"  {'ok  ' if passed else 'FAIL'} {what}: {detail}"
                  for what, passed, detail in self.checks]
        lines.append(f"{self.name}: {'complete and consistent' if self.ok else 'PROBLEMS FOUND'}")
        return "\n".join(lines)


def _archive_path(manifest: DatasetManifest, data_dir: Path, root: Path) -> Path | None:
    for directory in (data_dir, root.parent):
        if (directory / manifest.archive.filename).is_file():
            return directory / manifest.archive.filename
    return None


def _check_archive(report: VerificationReport, manifest: DatasetManifest,
                   archive: Path | None) -> None:
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
    return [f"fold {fold}: {counts.get(fold, 0)} (expected {expected})"
            for fold, expected in manifest.fold_counts.items() if counts.get(fold, 0) != expected]


def verify_dataset(name: str, data_dir: str | os.PathLike[str], *,
                   check_archive: bool = True) -> VerificationReport:
    """Compare a copy of an official dataset with its manifest.

    Checks the archive (checksum and size, when the archive is in ``data_dir`` and the
    manifest has them), that the metadata parses and agrees with the manifest's classes and
    folds, the clip count and per-fold counts of the metadata, and that every listed clip has
    its audio file.

    Parameters
    ----------
    name : str
        ``urbansound8k``, ``esc50`` or ``esc10``.
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
        When no copy of the dataset is found, or its metadata cannot be read at all.
    """
    # pandas, for the metadata; imported here so that the CLI builds its parsers without it
    from featurekit.datasets.base import preview
    from featurekit.datasets.official import find_root, scan_official

    if name == FSD50K:
        from featurekit.datasets.fsd50k import verify_fsd50k

        return verify_fsd50k(data_dir)
    manifest = load_manifest(name)
    data_dir = Path(data_dir).expanduser()
    root = find_root(manifest, data_dir)
    report = VerificationReport(name=name, root=root)
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
    missing = rows[rows["path"].isna()]
    report.add("audio files", missing.empty,
               f"{len(rows) - len(missing)} of {len(rows)} listed clips found"
               + (f"; missing: {preview(missing['clip_id'].tolist())}" if len(missing) else ""))
    return report


def download_dataset(name: str, data_dir: str | os.PathLike[str] | None = None, *,
                     url: str | None = None, progress: bool = True,
                     keep_archive: bool = True) -> Path:
    """Download, extract and verify an official dataset.

    Nothing is downloaded when a copy is already in ``data_dir``; either way the copy is
    verified. The archive download resumes after an interruption and is checked against the
    manifest's checksum and size when it has them (ESC-50 publishes none: its extracted clip
    count, per-fold counts and metadata are verified instead).

    Parameters
    ----------
    name : str
        ``urbansound8k``, ``esc50``, ``esc10`` (which fetches ESC-50) or ``fsd50k``
        (:func:`~featurekit.datasets.fsd50k.download_fsd50k`; ``url`` is then a mirror of
        the Zenodo record's API address).
    data_dir : path-like, optional
        Where to put it; default :func:`default_data_dir`.
    url : str, keyword-only, optional
        A mirror of the official archive (still checked against the manifest).
    progress : bool, keyword-only
        Show a download progress bar.
    keep_archive : bool, keyword-only
        Keep the archive after extraction (lets ``verify`` re-check the checksum).

    Returns
    -------
    Path
        The dataset root (pass it, or ``data_dir``, to :func:`featurekit.load_dataset`).

    Raises
    ------
    DownloadError
        Network failure, checksum mismatch or unsafe archive (nothing is extracted).
    DatasetError
        When the result does not match the manifest.
    """
    from featurekit.datasets.official import find_root  # pandas: see verify_dataset

    if name == FSD50K:
        from featurekit.datasets.fsd50k import ZENODO_RECORD, download_fsd50k

        return download_fsd50k(data_dir, record_url=url or ZENODO_RECORD, progress=progress,
                               keep_archives=keep_archive)
    manifest = load_manifest(name)
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
    report = verify_dataset(name, root, check_archive=False)
    if not report.ok:
        state = "downloaded to" if downloaded else "an existing copy is at"
        raise DatasetError(f"{name}: {state} {root}, but it does not match the manifest: "
                           f"{'; '.join(report.problems)}")
    return root
