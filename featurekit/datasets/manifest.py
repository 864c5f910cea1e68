"""Dataset manifests: what we know about an official dataset from its public documentation.

A manifest (one TOML file per dataset in ``data_manifests/``) names the dataset, its citation,
license and homepage, the download archive with its checksum and size, the layout inside the
archive (metadata file, audio path pattern, columns), the class list, the expected clip count
per fold and the official protocol. Per-clip facts (file names, folds, labels) always come from
the dataset's own metadata file, never from the manifest.

A manifest may define subsets (``[subsets.NAME]``) that reuse the archive and layout and
select metadata rows by one column, e.g. ESC-10 inside ESC-50.
"""

from __future__ import annotations

import copy
import importlib.resources
import re
import string
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from featurekit.errors import DatasetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ArchiveSpec", "DatasetManifest", "Layout", "load_manifest", "manifest_dir",
           "manifest_names", "parse_manifest", "read_manifest_file"]

MANIFEST_FORMAT_VERSION = 1
_HEX = {"md5": 32, "sha256": 64}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class ArchiveSpec:
    """Where the official archive is and how to check it.

    Attributes
    ----------
    url : str
        Download URL.
    filename : str
        File name to store the archive under.
    md5, sha256 : str or None
        Published checksums (lower-case hex); ``None`` when none is published.
    size : int or None
        Archive size in bytes, when known.
    checksum_note : str
        Where the checksum comes from, or why there is none.
    """

    url: str
    filename: str
    md5: str | None
    sha256: str | None
    size: int | None
    checksum_note: str


@dataclass(frozen=True)
class Layout:
    """Where things are inside an extracted dataset.

    Attributes
    ----------
    root_dirs : tuple of str
        Directory names that may hold the dataset inside a data directory.
    metadata : str
        Metadata CSV, relative to the dataset root.
    audio_path : str
        Clip path relative to the root, a :meth:`str.format` pattern over metadata columns.
    columns : tuple of str
        Official metadata columns (all must be present).
    file_column, label_column, label_id_column, fold_column : str
        Columns holding the audio file name, class name, official class id and fold.
    extra_columns : tuple of str
        Metadata columns carried into the clips table as they are.
    recording_column : str or None
        Column naming the source recording a clip was cut from (clips of one recording
        share a fold, and inner validation splits must keep them together too).
    """

    root_dirs: tuple[str, ...]
    metadata: str
    audio_path: str
    columns: tuple[str, ...]
    file_column: str
    label_column: str
    label_id_column: str
    fold_column: str
    extra_columns: tuple[str, ...]
    recording_column: str | None = None


@dataclass(frozen=True)
class DatasetManifest:
    """Public facts about one official dataset (or a subset of one).

    Attributes
    ----------
    name : str
        Dataset name used by :func:`featurekit.load_dataset` and the store.
    parent : str
        Name of the manifest this one comes from (``esc50`` for ``esc10``; its own name
        otherwise). Datasets with the same parent share an archive and layout.
    classes : tuple of str
        Class names in ``label_id`` order.
    official_ids : tuple of int
        Official class id (metadata ``label_id_column``) of each class.
    folds : tuple of int
        All official folds.
    expected_clips : int
        Clip count of the complete dataset.
    fold_counts : dict of int to int
        Expected clips per official fold.
    row_filter : tuple of (str, str) or None
        ``(column, value)`` selecting the subset's metadata rows (compared as text).
    source : str
        Manifest file it was read from.
    """

    name: str
    parent: str
    title: str
    citation: str
    license: str
    homepage: str
    description: str
    archive: ArchiveSpec
    layout: Layout
    protocol: str
    protocol_note: str
    folds: tuple[int, ...]
    expected_clips: int
    fold_counts: dict[int, int]
    classes: tuple[str, ...]
    official_ids: tuple[int, ...]
    row_filter: tuple[str, str] | None
    source: str


class _Table:
    """Typed access to one TOML table with errors naming the manifest and the key."""

    def __init__(self, data: dict[str, Any], where: str, source: str):
        self.data, self.where, self.source = data, where, source

    def _fail(self, key: str, problem: str) -> DatasetError:
        return DatasetError(f"manifest {self.source}: {self.where}{key}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], *, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self._fail(key, "missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self._fail(key, f"expected {kind}, got {value!r}")
        if not isinstance(value, kind):
            raise self._fail(key, f"expected {getattr(kind, '__name__', kind)}, got {value!r}")
        return value

    def text(self, key: str, *, default: Any = ...) -> str:
        return self.get(key, str, default=default)

    def texts(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list)
        if not values or not all(isinstance(v, str) and v for v in values):
            raise self._fail(key, "expected a non-empty list of non-empty strings")
        return tuple(values)

    def ints(self, key: str, *, default: Any = ...) -> tuple[int, ...] | None:
        values = self.get(key, list, default=default)
        if values is None:
            return None
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise self._fail(key, "expected a non-empty list of integers")
        return tuple(values)

    def table(self, key: str) -> _Table:
        return _Table(self.get(key, dict), f"{self.where}{key}.", self.source)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _parse_archive(table: _Table) -> ArchiveSpec:
    url = table.text("url")
    if not url.startswith(("https://", "http://")):
        raise table._fail("url", f"expected an http(s) URL, got {url!r}")
    filename = table.text("filename")
    if Path(filename).name != filename or filename in (".", ".."):
        raise table._fail("filename", f"must be a plain file name, got {filename!r}")
    checksums: dict[str, str | None] = {}
    for algorithm, length in _HEX.items():
        value = table.text(algorithm, default=None)
        if value is not None and not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
            raise table._fail(algorithm, f"expected {length} lower-case hex digits")
        checksums[algorithm] = value
    size = table.get("size", int, default=None)
    if size is not None and size <= 0:
        raise table._fail("size", "must be positive")
    return ArchiveSpec(url=url, filename=filename, md5=checksums["md5"],
                       sha256=checksums["sha256"], size=size,
                       checksum_note=table.text("checksum_note"))


def _parse_layout(table: _Table) -> Layout:
    columns = table.texts("columns")
    named = {key: table.text(key) for key in
             ("file_column", "label_column", "label_id_column", "fold_column")}
    extra = table.texts("extra_columns") if "extra_columns" in table.data else ()
    recording = table.text("recording_column") if "recording_column" in table.data else None
    checked = [*named.items(), *(("extra_columns", c) for c in extra)]
    if recording is not None:
        checked.append(("recording_column", recording))
    for key, column in checked:
        if column not in columns:
            raise table._fail(key, f"column {column!r} is not in columns {list(columns)}")
    audio_path = table.text("audio_path")
    fields = {f for _, f, _, _ in string.Formatter().parse(audio_path) if f is not None}
    if named["file_column"] not in fields or not fields <= set(columns):
        raise table._fail("audio_path", f"must use {{{named['file_column']}}} and only "
                                        f"metadata columns, got {audio_path!r}")
    return Layout(root_dirs=table.texts("root_dirs"), metadata=table.text("metadata"),
                  audio_path=audio_path, columns=columns, extra_columns=extra,
                  recording_column=recording, **named)


def _parse_one(data: dict[str, Any], name: str, parent: str, source: str) -> DatasetManifest:
    top = _Table(data, "" if name == parent else f"subsets.{name} (merged) ", source)
    if not _NAME_RE.match(name):
        raise top._fail("name", f"must be lower-case letters, digits, '_', '.', '-': {name!r}")
    protocol, counts, classes_table = (top.table("protocol"), top.table("counts"),
                                       top.table("classes"))
    folds = protocol.ints("folds")
    per_fold = counts.ints("per_fold")
    if len(set(folds)) != len(folds) or min(folds) < 1:
        raise protocol._fail("folds", "must be distinct positive integers")
    if len(per_fold) != len(folds):
        raise counts._fail("per_fold", f"has {len(per_fold)} entries for {len(folds)} folds")
    expected = counts.get("clips", int)
    if sum(per_fold) != expected:
        raise counts._fail("per_fold", f"sums to {sum(per_fold)}, but clips = {expected}")
    classes = classes_table.texts("names")
    if len(set(classes)) != len(classes):
        raise classes_table._fail("names", "has duplicates")
    official_ids = classes_table.ints("official_ids", default=None) or tuple(range(len(classes)))
    if len(official_ids) != len(classes) or len(set(official_ids)) != len(official_ids):
        raise classes_table._fail("official_ids", "needs one distinct id per class name")
    row_filter = None
    if "filter_column" in data:
        row_filter = (top.text("filter_column"), top.text("filter_value"))
    layout = _parse_layout(top.table("layout"))
    if row_filter is not None and row_filter[0] not in layout.columns:
        raise top._fail("filter_column", f"{row_filter[0]!r} is not a metadata column")
    return DatasetManifest(
        name=name, parent=parent, title=top.text("title"), citation=top.text("citation"),
        license=top.text("license"), homepage=top.text("homepage"),
        description=top.text("description", default=""),
        archive=_parse_archive(top.table("archive")), layout=layout,
        protocol=protocol.text("name"), protocol_note=protocol.text("note", default=""),
        folds=folds, expected_clips=expected, fold_counts=dict(zip(folds, per_fold)),
        classes=classes, official_ids=official_ids, row_filter=row_filter, source=source)


def parse_manifest(data: dict[str, Any], *, source: str = "<manifest>") -> list[DatasetManifest]:
    """Validate a parsed manifest and return its dataset and subset definitions.

    Parameters
    ----------
    data : dict
        The TOML document as a dict.
    source : str, keyword-only
        Where it came from, for error messages.

    Returns
    -------
    list of DatasetManifest
        The main dataset first, then one per ``[subsets.NAME]`` table (the main tables
        overridden by the subset's keys).

    Raises
    ------
    DatasetError
        Naming the manifest, the key and the problem.
    """
    top = _Table(data, "", source)
    version = top.get("format_version", int)
    if version != MANIFEST_FORMAT_VERSION:
        raise top._fail("format_version", f"unsupported version {version}, "
                                          f"this featurekit reads {MANIFEST_FORMAT_VERSION}")
    name = top.text("name")
    base = {key: value for key, value in data.items() if key != "subsets"}
    manifests = [_parse_one(base, name, name, source)]
    for subset_name, override in top.get("subsets", dict, default={}).items():
        if not isinstance(override, dict):
            raise top._fail(f"subsets.{subset_name}", "expected a table")
        manifests.append(_parse_one(_merge(base, override), subset_name, name, source))
    return manifests


def read_manifest_file(path: str | Path) -> list[DatasetManifest]:
    """Read and validate one manifest file (see :func:`parse_manifest`)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DatasetError(f"manifest {path}: cannot read: {exc}") from exc
    return parse_manifest(data, source=str(path))


def manifest_dir() -> Path:
    """Directory holding the shipped manifests.

    A wheel ships them inside the package (``featurekit/data_manifests``); a source checkout
    or editable install reads the repository's top-level ``data_manifests/``.
    """
    packaged = Path(str(importlib.resources.files("featurekit").joinpath("data_manifests")))
    checkout = Path(__file__).resolve().parents[2] / "data_manifests"
    for candidate in (packaged, checkout):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise DatasetError(f"no dataset manifests found (looked in {packaged} and {checkout}); "
                       "the featurekit installation is incomplete")


@lru_cache(maxsize=1)
def _registry() -> dict[str, DatasetManifest]:
    registry: dict[str, DatasetManifest] = {}
    for path in sorted(manifest_dir().glob("*.toml")):
        for manifest in read_manifest_file(path):
            if manifest.name in registry:
                raise DatasetError(f"manifest {path}: dataset {manifest.name!r} is already "
                                   f"defined in {registry[manifest.name].source}")
            registry[manifest.name] = manifest
    return registry


def manifest_names() -> list[str]:
    """Names of all datasets with a shipped manifest, sorted."""
    return sorted(_registry())


def load_manifest(name: str) -> DatasetManifest:
    """The manifest of the official dataset ``name``.

    Raises
    ------
    DatasetError
        When no manifest has that name (the message lists the known ones).
    """
    registry = _registry()
    if name not in registry:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: "
                           f"{', '.join(sorted(registry))}")
    return registry[name]
