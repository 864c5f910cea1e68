"""The dataset registry: every dataset name, with the adapter that knows what it can do.

An official release (:class:`Release`) is loaded, found in a data directory, verified and
downloaded: the datasets a manifest describes (UrbanSound8K, ESC-50, ESC-10) share one
adapter driven by their manifest, and FSD50K has its own. The generic adapters load the
user's own audio (a folder per label, or a CSV) and have nothing to download or verify.

Adapters import their modules (and pandas) when used, so the CLI lists the names without
them.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from featurekit.datasets.manifest import load_manifest, manifest_names
from featurekit.errors import DatasetError
from featurekit.names import FSD50K, GENERIC_ADAPTERS

if TYPE_CHECKING:
    from featurekit.datasets.base import Dataset
    from featurekit.datasets.verify import VerificationReport

__all__ = ["Adapter", "ManifestRelease", "Release", "adapter", "adapters", "release",
           "release_names"]

#: How the messages refusing a release's generic options name the adapters they apply to.
_GENERIC = "/".join(GENERIC_ADAPTERS)


class Adapter(abc.ABC):
    """How one kind of dataset is loaded and described."""

    @abc.abstractmethod
    def load(self, name: str, data_dir: str | os.PathLike[str], *, download: bool,
             dataset_name: str | None,
             folds_csv: str | os.PathLike[str] | None) -> Dataset:
        """Load the dataset; see :func:`featurekit.datasets.load_dataset`.

        Parameters
        ----------
        name : str
            The registered name (one adapter may serve several).
        data_dir : path-like
            Where the dataset is.
        download : bool, keyword-only
            Download it first when it is not there.
        dataset_name : str or None, keyword-only
            Name of a user dataset.
        folds_csv : path-like or None, keyword-only
            Folds file of a folder dataset.

        Returns
        -------
        Dataset

        Raises
        ------
        DatasetError
            An option the adapter does not take, or a dataset it cannot load.
        """

    @abc.abstractmethod
    def summary(self, name: str) -> list[str]:
        """Lines describing the dataset for ``featurekit datasets list``.

        Parameters
        ----------
        name : str
            The registered name.

        Returns
        -------
        list of str
            The first line follows the name; the others are indented under it.
        """


class Release(Adapter):
    """An official release: found in a data directory, verified against its complete form
    and downloaded; its name and folds are official, so the generic options are refused."""

    #: What the release fixes, for the message refusing ``dataset_name`` and ``folds_csv``.
    fixed = "official names and folds"

    @abc.abstractmethod
    def find_root(self, name: str, data_dir: str | os.PathLike[str]) -> Path:
        """The dataset root inside ``data_dir``.

        Raises
        ------
        DatasetError
            When no copy is there (naming the places looked at).
        """

    @abc.abstractmethod
    def verify(self, name: str, data_dir: str | os.PathLike[str], *,
               check_archive: bool) -> VerificationReport:
        """Compare a copy with the complete release; see
        :func:`featurekit.datasets.verify_dataset`."""

    @abc.abstractmethod
    def download(self, name: str, data_dir: str | os.PathLike[str] | None, *, url: str | None,
                 progress: bool, keep_archive: bool) -> Path:
        """Download, extract and verify the release; see
        :func:`featurekit.datasets.download_dataset`."""

    @abc.abstractmethod
    def load_release(self, name: str, data_dir: str | os.PathLike[str]) -> Dataset:
        """Load a copy that is there (partial copies with a warning)."""

    def load(self, name: str, data_dir: str | os.PathLike[str], *, download: bool,
             dataset_name: str | None,
             folds_csv: str | os.PathLike[str] | None) -> Dataset:
        if dataset_name is not None or folds_csv is not None:
            raise DatasetError(f"{name} has {self.fixed}; dataset_name and folds_csv apply to "
                               f"{_GENERIC} datasets only")
        if download:
            try:
                self.find_root(name, data_dir)
            except DatasetError:
                self.download(name, data_dir, url=None, progress=True, keep_archive=True)
        return self.load_release(name, data_dir)


class ManifestRelease(Release):
    """The datasets a manifest describes (:mod:`featurekit.datasets.official`): one adapter
    for all, reading each dataset's manifest by name when used."""

    def find_root(self, name: str, data_dir: str | os.PathLike[str]) -> Path:
        from featurekit.datasets.official import find_root

        return find_root(load_manifest(name), data_dir)

    def verify(self, name: str, data_dir: str | os.PathLike[str], *,
               check_archive: bool) -> VerificationReport:
        from featurekit.datasets.fetch import verify_official

        return verify_official(load_manifest(name), data_dir, check_archive=check_archive)

    def download(self, name: str, data_dir: str | os.PathLike[str] | None, *, url: str | None,
                 progress: bool, keep_archive: bool) -> Path:
        from featurekit.datasets.fetch import download_official

        return download_official(load_manifest(name), data_dir, url=url, progress=progress,
                                 keep_archive=keep_archive)

    def load_release(self, name: str, data_dir: str | os.PathLike[str]) -> Dataset:
        from featurekit.datasets.official import load_official

        return load_official(load_manifest(name), data_dir)

    def summary(self, name: str) -> list[str]:
        manifest = load_manifest(name)
        return [f"{manifest.expected_clips:5d} clips  {len(manifest.classes):2d} classes  "
                f"{len(manifest.folds):2d} folds  {manifest.title}",
                f"license: {manifest.license}", manifest.homepage]


class Fsd50kRelease(Release):
    """FSD50K (:mod:`featurekit.datasets.fsd50k`): multi-label, one official split, a
    multi-part Zenodo record."""

    fixed = "an official name and split"

    def find_root(self, name: str, data_dir: str | os.PathLike[str]) -> Path:
        from featurekit.datasets.fsd50k import find_fsd50k_root

        return find_fsd50k_root(data_dir)

    def verify(self, name: str, data_dir: str | os.PathLike[str], *,
               check_archive: bool) -> VerificationReport:
        from featurekit.datasets.fsd50k import verify_fsd50k

        # check_archive has nothing to do: each archive part is checked as it is downloaded
        return verify_fsd50k(data_dir)

    def download(self, name: str, data_dir: str | os.PathLike[str] | None, *, url: str | None,
                 progress: bool, keep_archive: bool) -> Path:
        from featurekit.datasets.fsd50k import ZENODO_RECORD, download_fsd50k

        return download_fsd50k(data_dir, record_url=url or ZENODO_RECORD, progress=progress,
                               keep_archives=keep_archive)

    def load_release(self, name: str, data_dir: str | os.PathLike[str]) -> Dataset:
        from featurekit.datasets.fsd50k import load_fsd50k

        return load_fsd50k(data_dir)

    def summary(self, name: str) -> list[str]:
        # fixed text: the counts in fsd50k.py would pull pandas into `datasets list`
        return ["51197 clips 200 classes  multi-label, train/val/eval  FSD50K "
                "(Zenodo 10.5281/zenodo.4060432)"]


class LocalAdapter(Adapter):
    """The user's own audio (:mod:`featurekit.datasets.generic`): nothing to download."""

    def load(self, name: str, data_dir: str | os.PathLike[str], *, download: bool,
             dataset_name: str | None,
             folds_csv: str | os.PathLike[str] | None) -> Dataset:
        if download:
            raise _not_a_release(name, "downloaded")
        # a user dataset may not take an official name: the feature store is keyed by name
        return self.load_local(data_dir, dataset_name=dataset_name, folds_csv=folds_csv,
                               reserved=manifest_names())

    @abc.abstractmethod
    def load_local(self, data_dir: str | os.PathLike[str], *, dataset_name: str | None,
                   folds_csv: str | os.PathLike[str] | None, reserved: list[str]) -> Dataset:
        """Load the user's dataset under ``dataset_name`` (default: derived from the path),
        refusing a name in ``reserved``."""


class FolderAdapter(LocalAdapter):
    """``DATA_DIR/<label>/<clip>.<ext>``, with an optional folds file."""

    def load_local(self, data_dir: str | os.PathLike[str], *, dataset_name: str | None,
                   folds_csv: str | os.PathLike[str] | None, reserved: list[str]) -> Dataset:
        from featurekit.datasets.generic import load_folder

        return load_folder(data_dir, name=dataset_name, folds_csv=folds_csv, reserved=reserved)

    def summary(self, name: str) -> list[str]:
        return ["your audio: DATA_DIR/<label>/<clip>.wav, optional DATA_DIR/folds.csv "
                "(path,fold and/or recording)"]


class CsvAdapter(LocalAdapter):
    """Clips listed in a CSV (``path,label[,fold][,clip_id][,recording]``, or ``labels``
    sets)."""

    def load_local(self, data_dir: str | os.PathLike[str], *, dataset_name: str | None,
                   folds_csv: str | os.PathLike[str] | None, reserved: list[str]) -> Dataset:
        from featurekit.datasets.generic import load_csv

        if folds_csv is not None:
            raise DatasetError("folds_csv applies to folder datasets; put a fold column in "
                               "the CSV instead")
        return load_csv(data_dir, name=dataset_name, reserved=reserved)

    def summary(self, name: str) -> list[str]:
        return ["your audio listed in a CSV: path,label[,fold][,clip_id][,recording]; paths "
                "absolute or relative to the CSV's folder; a labels column (comma-separated "
                "label sets) instead of label makes it multi-label"]


@lru_cache(maxsize=1)
def adapters() -> Mapping[str, Adapter]:
    """Every dataset name with its adapter, in listing order.

    Returns
    -------
    Mapping of str to Adapter
        The manifest datasets (sorted, sharing one :class:`ManifestRelease`), FSD50K, then
        the generic adapters; read-only.
    """
    manifests = ManifestRelease()
    # names.py lists the generic adapters as (folder, csv)
    generic = dict(zip(GENERIC_ADAPTERS, (FolderAdapter(), CsvAdapter()), strict=True))
    return MappingProxyType({**dict.fromkeys(manifest_names(), manifests),
                             FSD50K: Fsd50kRelease(), **generic})


def adapter(name: str) -> Adapter:
    """The adapter registered as ``name``.

    Raises
    ------
    DatasetError
        For an unknown name; the message lists the known ones.
    """
    known = adapters()
    if name not in known:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(known)}")
    return known[name]


def release_names() -> list[str]:
    """Names of the official releases (those that can be verified and downloaded)."""
    return [name for name, found in adapters().items() if isinstance(found, Release)]


def release(name: str, action: str) -> Release:
    """The release registered as ``name``, for ``action`` (``"verified"``, ``"downloaded"``).

    Raises
    ------
    DatasetError
        For an unknown name (listing the known ones) or a generic adapter's (listing the
        releases).
    """
    found = adapter(name)
    if not isinstance(found, Release):
        raise _not_a_release(name, action)
    return found


def _not_a_release(name: str, action: str) -> DatasetError:
    """The error for asking a generic adapter what only a release does."""
    return DatasetError(f"{name!r} datasets are local; only {', '.join(release_names())} can "
                        f"be {action}")
