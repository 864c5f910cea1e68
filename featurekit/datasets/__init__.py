"""Datasets: official ones (UrbanSound8K, ESC-50, ESC-10 described by manifests; FSD50K) and
user datasets (a folder per label, or a CSV), all loaded into one :class:`Dataset` shape.

Layout: :mod:`~featurekit.datasets.registry` maps each name to its adapter (:mod:`.official`
with :mod:`.fetch` for the manifest datasets, :mod:`.fsd50k`, :mod:`.generic`); the adapters
share :mod:`.base` (clips table, missing audio) and :mod:`.verify` (report, data directory).

>>> ds = load_dataset("urbansound8k", "~/data")        # doctest: +SKIP
>>> ds.clips.columns[:5].tolist()                       # doctest: +SKIP
['clip_id', 'path', 'label', 'label_id', 'fold']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from featurekit._util.lazy import lazy_getattr
from featurekit.datasets.manifest import DatasetManifest, load_manifest
from featurekit.datasets.registry import ManifestRelease, adapter, adapters, release
from featurekit.datasets.verify import VerificationReport, default_data_dir
from featurekit.names import GENERIC_ADAPTERS

if TYPE_CHECKING:
    from featurekit.datasets.base import Dataset

# Names whose modules need pandas, imported on first use: the CLI reads the light names
# (adapters, manifests, the default data directory) to build its parsers.
_LAZY = {
    "AUDIO_EXTENSIONS": "featurekit.datasets.base",
    "Dataset": "featurekit.datasets.base",
    "DatasetWarning": "featurekit.datasets.base",
    "assign_folds": "featurekit.datasets.base",
}
__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = [
    "AUDIO_EXTENSIONS",
    "GENERIC_ADAPTERS",
    "Dataset",
    "DatasetManifest",
    "DatasetWarning",
    "VerificationReport",
    "assign_folds",
    "default_data_dir",
    "download_dataset",
    "list_datasets",
    "load_dataset",
    "load_manifest",
    "verify_dataset",
]


def list_datasets() -> list[str]:
    """Names of the official datasets described by a manifest, sorted.

    :func:`load_dataset` also accepts ``"fsd50k"`` and the generic adapters in
    :data:`GENERIC_ADAPTERS`.

    Returns
    -------
    list of str
        ``esc10``, ``esc50``, ``urbansound8k`` with the shipped manifests.
    """
    return [name for name, found in adapters().items() if isinstance(found, ManifestRelease)]


def load_dataset(name: str, data_dir: str | os.PathLike[str], download: bool = False, *,
                 dataset_name: str | None = None,
                 folds_csv: str | os.PathLike[str] | None = None) -> Dataset:
    """Load a dataset into a :class:`Dataset` (clips table, classes, folds).

    Parameters
    ----------
    name : str
        An official dataset (``urbansound8k``, ``esc50``, ``esc10``; see
        :func:`list_datasets`), ``"fsd50k"`` (the official FSD50K layout, multi-label,
        train/val/eval split; see :mod:`featurekit.datasets.fsd50k`), ``"folder"``
        (``data_dir`` holds one sub-folder per label) or ``"csv"`` (``data_dir`` is a CSV
        with columns ``path,label[,fold][,clip_id][,recording]`` -- or ``labels``,
        comma-separated label sets, for a multi-label dataset -- or a folder holding exactly
        one; paths absolute or relative to the CSV's folder; ``recording`` names each clip's
        source recording).
    data_dir : path-like
        Official datasets: the directory containing the dataset (e.g. the one holding
        ``UrbanSound8K/``) or the dataset directory itself.
    download : bool
        Download an official dataset into ``data_dir`` first if it is not there.
    dataset_name : str, keyword-only, optional
        Name of a folder/CSV dataset (default: the directory name / CSV file stem).
    folds_csv : path-like, keyword-only, optional
        Folder datasets: CSV with columns ``path`` and ``fold`` and/or ``recording`` (each
        clip's source recording; default ``DATA_DIR/folds.csv`` if it exists). Without folds,
        5 folds are assigned deterministically, stratified by label, each recording whole,
        with a warning (see :func:`assign_folds`).

    Returns
    -------
    Dataset
        For official datasets ``label_id`` is the official class id (UrbanSound8K
        ``classID``, ESC-50 ``target``), except ESC-10 whose ``label_id`` is dense 0-9 in
        ascending official target order (dog, rooster, rain, sea_waves, crackling_fire,
        crying_baby, sneezing, clock_tick, helicopter, chainsaw); its ESC-50 target stays in
        the ``target`` column.

    Warns
    -----
    DatasetWarning
        Once for a partial copy (naming the clip count and folds present), once for listed
        clips without audio (dropped), once when folds were assigned.

    Raises
    ------
    DatasetError
        Unknown name (the message lists the known ones), dataset not found, malformed
        metadata, duplicate clip ids, paths leaving the data directory, no audio at all, or
        a folder/CSV dataset's recording in more than one fold (naming them).
    """
    return adapter(name).load(name, data_dir, download=download, dataset_name=dataset_name,
                              folds_csv=folds_csv)


def verify_dataset(name: str, data_dir: str | os.PathLike[str], *,
                   check_archive: bool = True) -> VerificationReport:
    """Compare a copy of an official dataset with its complete form.

    For a manifest dataset: the archive (checksum and size, when the archive is in
    ``data_dir`` and the manifest has them), that the metadata parses and agrees with the
    manifest's classes and folds, the clip count and per-fold counts of the metadata, and
    that every listed clip has its audio file. For FSD50K: see
    :func:`~featurekit.datasets.fsd50k.verify_fsd50k`.

    Parameters
    ----------
    name : str
        ``urbansound8k``, ``esc50``, ``esc10`` or ``fsd50k``.
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
        For an unknown name or a generic adapter's, or when no copy of the dataset is found.
    """
    return release(name, "verified").verify(name, data_dir, check_archive=check_archive)


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
        For an unknown name or a generic adapter's, or when the result does not match the
        manifest.
    """
    return release(name, "downloaded").download(name, data_dir, url=url, progress=progress,
                                                keep_archive=keep_archive)
