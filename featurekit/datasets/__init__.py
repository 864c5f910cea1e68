"""Datasets: official ones described by manifests (UrbanSound8K, ESC-50, ESC-10) and user
datasets (a folder per label, or a CSV), all loaded into one :class:`Dataset` shape.

>>> ds = load_dataset("urbansound8k", "~/data")        # doctest: +SKIP
>>> ds.clips.columns[:5].tolist()                       # doctest: +SKIP
['clip_id', 'path', 'label', 'label_id', 'fold']
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from featurekit.datasets.fetch import (
    FSD50K,
    VerificationReport,
    default_data_dir,
    download_dataset,
    verify_dataset,
)
from featurekit.datasets.manifest import DatasetManifest, load_manifest, manifest_names
from featurekit.errors import DatasetError
from featurekit.lazy import lazy_getattr

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

#: Names that load user datasets rather than an official one.
GENERIC_ADAPTERS = ("folder", "csv")


def list_datasets() -> list[str]:
    """Names of the official datasets (those with a manifest), sorted.

    :func:`load_dataset` also accepts the generic adapters in :data:`GENERIC_ADAPTERS`.
    """
    return manifest_names()


def load_dataset(name: str, data_dir: str | os.PathLike[str], download: bool = False, *,
                 dataset_name: str | None = None,
                 folds_csv: str | os.PathLike[str] | None = None) -> Dataset:
    """Load a dataset into a :class:`Dataset` (clips table, classes, folds).

    Parameters
    ----------
    name : str
        An official dataset (``urbansound8k``, ``esc50``, ``esc10``; see
        :func:`list_datasets`), ``"folder"`` (``data_dir`` holds one sub-folder per label)
        ``"fsd50k"`` (the official FSD50K layout, multi-label, train/val/eval split; see
        :mod:`featurekit.datasets.fsd50k`), ``"folder"`` (``data_dir`` holds one sub-folder
        per label) or ``"csv"`` (``data_dir`` is a CSV with columns
        ``path,label[,fold][,clip_id]`` -- or ``labels``, comma-separated label sets, for a
        multi-label dataset -- or a folder holding exactly one; paths absolute or relative to
        the CSV's folder).
    data_dir : path-like
        Official datasets: the directory containing the dataset (e.g. the one holding
        ``UrbanSound8K/``) or the dataset directory itself.
    download : bool
        Download an official dataset into ``data_dir`` first if it is not there.
    dataset_name : str, keyword-only, optional
        Name of a folder/CSV dataset (default: the directory name / CSV file stem).
    folds_csv : path-like, keyword-only, optional
        Folder datasets: CSV with columns ``path,fold`` (default ``DATA_DIR/folds.csv`` if it
        exists). Without folds, 5 folds are assigned deterministically, stratified by label,
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
        metadata, duplicate clip ids, paths leaving the data directory, or no audio at all.
    """
    from featurekit.datasets.generic import load_csv, load_folder
    from featurekit.datasets.official import find_root, load_official

    official = manifest_names()
    if name == FSD50K:
        from featurekit.datasets.fsd50k import load_fsd50k

        if dataset_name is not None or folds_csv is not None:
            raise DatasetError("fsd50k has an official name and split; dataset_name and "
                               "folds_csv apply to folder/csv datasets only")
        if download:
            from featurekit.datasets.fsd50k import find_fsd50k_root

            try:
                find_fsd50k_root(data_dir)
            except DatasetError:
                download_dataset(name, data_dir)
        return load_fsd50k(data_dir)
    if name in GENERIC_ADAPTERS:
        if download:
            raise DatasetError(f"{name!r} datasets are local; only {', '.join(official)} "
                               "can be downloaded")
        if name == "folder":
            return load_folder(data_dir, name=dataset_name, folds_csv=folds_csv,
                               reserved=official)
        if folds_csv is not None:
            raise DatasetError("folds_csv applies to folder datasets; put a fold column in "
                               "the CSV instead")
        return load_csv(data_dir, name=dataset_name, reserved=official)
    if name not in official:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: "
                           f"{', '.join([*official, FSD50K, *GENERIC_ADAPTERS])}")
    if dataset_name is not None or folds_csv is not None:
        raise DatasetError(f"{name} has official names and folds; dataset_name and folds_csv "
                           "apply to folder/csv datasets only")
    manifest = load_manifest(name)
    if download:
        try:
            find_root(manifest, data_dir)
        except DatasetError:
            download_dataset(name, data_dir)
    return load_official(manifest, data_dir)
