"""Parquet feature stores: one directory of parts per dataset and branch.

Layout::

    STORE/<dataset>/<branch>/part-00000.parquet   clip_id, fold, label, label_id, features...
    STORE/<dataset>/<branch>/_errors.parquet      clip_id, path, error_type, message
    STORE/<dataset>/<branch>/_notes/part-*.parquet    clip_id, note (what the loader did)
    STORE/<dataset>/<branch>/_frames/part-*.parquet   clip_id, time_s, frame-level descriptors
    STORE/<dataset>/.<branch>.lock                 held by the run writing the branch
    STORE/<dataset>/.<branch>.lock.pid             its process id, for the refusal message

Feature columns are float32, in the order of the computer that wrote them. Every file carries
the same JSON under the Parquet schema metadata key ``featurekit``: store format, featurekit
version, dataset, branch, whether frames are stored, and the branch provenance (config, its
hash, library versions, flags such as ``untrained``).

Any Parquet reader understands a branch. Names starting with ``_`` or ``.`` are skipped by
pyarrow's dataset discovery, so ``pandas.read_parquet("STORE/ds/handcrafted")`` reads exactly
the feature parts; with glob-based readers use ``STORE/ds/handcrafted/part-*.parquet``
(DuckDB ``read_parquet``, Polars ``read_parquet``/``scan_parquet``, Dask
``dd.read_parquet``).

Never losing work: a part is written atomically and is the commit point of its batch (its
``_notes``/``_frames`` companions are written first and share its name; companions without a
part are leftovers of an interrupted run and are removed by the next writer). Clips present in
parts are done; a rerun skips them. Parts are never compacted: a few hundred small parts read in
well under a second, and rewriting them would open a window where a crash duplicates rows.

This module holds the layout's names and the Parquet file helpers that readers and writers share.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from featurekit._util.fsutil import atomic_path
from featurekit.errors import StoreError

#: Version of the on-disk layout, stored in every file.
STORE_FORMAT = 1


#: Schema metadata key holding the JSON description of a file.
METADATA_KEY = b"featurekit"


#: Columns in front of the features in every part.
KEY_COLUMNS = ("clip_id", "fold", "label", "label_id")


ERROR_COLUMNS = ("clip_id", "path", "error_type", "message")


ERRORS_FILE = "_errors.parquet"


NOTES_DIR = "_notes"


FRAMES_DIR = "_frames"


PART_GLOB = "part-*.parquet"


_GLOB_CHARS = frozenset("*?[")


def check_name(name: str, what: str) -> str:
    if (not isinstance(name, str) or not name or name in {".", ".."} or name[0] in "._"
            or "/" in name or "\\" in name or os.sep in name):
        raise StoreError(f"invalid {what} name {name!r}: use a plain directory name that does "
                         "not start with '.' or '_'")
    return name


def file_metadata(schema: pa.Schema, path: Path) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise StoreError(f"{path} is not a featurekit store file (no '{METADATA_KEY.decode()}' "
                         "schema metadata)")
    try:
        metadata = json.loads(raw)
    except ValueError as exc:
        raise StoreError(f"{path}: unreadable featurekit metadata ({exc})") from exc
    if not isinstance(metadata, dict) or not isinstance(metadata.get("provenance"), dict):
        raise StoreError(f"{path}: featurekit metadata lacks its provenance; the file was not "
                         "written by featurekit or is damaged")
    return metadata


def with_metadata(table: pa.Table, metadata: Mapping[str, Any]) -> pa.Table:
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def write_table(table: pa.Table, target: Path) -> None:
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd")


def match_columns(names: Sequence[str], selection: str | Sequence[str]) -> dict[str, list[str]]:
    """Map each selection item (exact name or glob pattern) to the names it picks, in order."""
    items = [selection] if isinstance(selection, str) else list(selection)
    return {item: (fnmatch.filter(names, item) if _GLOB_CHARS & set(item)
                   else [item] if item in names else [])
            for item in items}
