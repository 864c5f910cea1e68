"""The ``neural.<name>`` store branch filled from embeddings computed elsewhere.

A model featurekit cannot run (another framework, a private checkpoint, a cloud API) still
joins the benchmark: its clip embeddings are read from a table and stored as branch
``neural.<name>`` in the format of ``featurekit embed`` (columns ``neural.<name>.emb_000`` ...,
float32; frames, when given, as ``neural.<name>.neuralogram_000`` ... beside ``time_s``), so
the benchmark, the fusions and the sequence heads read it like any pretrained model's.

Accepted tables (the first two for frames too):

* Parquet (``.parquet``, ``.pq``) or CSV (``.csv``): an id column, then either one numeric
  column per dimension (in order) or, Parquet only, one list column holding each row's vector.
  The id column is ``clip_id`` (the dataset's clip ids) or else ``path`` (audio files,
  absolute or relative to the dataset's directory), or the one named by ``id_column``;
* NumPy ``.npy``: a 2-D float matrix, row ``i`` the clip named on line ``i`` of the ids file.

Frame tables have one row per clip and frame, with a ``time_s`` column (seconds from the clip's
start).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from featurekit._util.versions import package_versions
from featurekit.datasets.base import preview
from featurekit.errors import ConfigError, EmbeddingImportError
from featurekit.io.download import file_checksum
from featurekit.names import E2E_BRANCH, embedding_names, indexed_names, neural_branch
from featurekit.store.records import ClipFailure, ClipResult

__all__ = ["TIME_COLUMN", "EmbeddingTable", "ImportSummary", "import_embeddings",
           "imported_models", "read_embeddings"]

#: Column of a frames table holding each frame's time, seconds from the clip's start.
TIME_COLUMN = "time_s"
#: Id columns looked for, in order, when none is named.
ID_COLUMNS = ("clip_id", "path")
#: Clips per stored part: each part is a commit point, so an interrupted import resumes.
IMPORT_BATCH = 1024


@dataclass(frozen=True)
class EmbeddingTable:
    """Rows read from a file of embeddings, validated.

    Attributes
    ----------
    clip_ids : list of str
        Dataset clip id of each row (several rows per clip in a frames table).
    values : np.ndarray, float32, shape (n_rows, dimension)
    times : np.ndarray of float64, shape (n_rows,), or None
        Frame times, seconds (frames tables only).
    path : Path
    sha256 : str
        Of the file.
    """

    clip_ids: list[str]
    values: np.ndarray
    times: np.ndarray | None
    path: Path
    sha256: str

    @property
    def dimension(self) -> int:
        return int(self.values.shape[1])


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_embeddings` stored.

    Attributes
    ----------
    dataset, branch : str
    stored : int
        Clips written by this call.
    already : int
        Clips that were stored before (an interrupted or repeated import).
    missing : list of str
        Clips of the dataset without an embedding (or without frames, when frames were
        given): left out and recorded as failures in the branch's errors.
    dimension : int
    """

    dataset: str
    branch: str
    stored: int
    already: int
    dimension: int
    missing: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        left = f", {len(self.missing)} without an embedding left out" if self.missing else ""
        return (f"{self.dataset}/{self.branch}: {self.stored} clips imported "
                f"({self.dimension} dimensions), {self.already} already stored{left}")


def _fail(path: Path, message: str) -> EmbeddingImportError:
    return EmbeddingImportError(f"{path}: {message}")


def _read_frame(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except pd.errors.ParserError as exc:  # a row with more fields than the header
        raise _fail(path, f"ragged rows ({str(exc).strip()})") from None
    except (OSError, ValueError) as exc:
        raise _fail(path, f"unreadable ({str(exc).strip() or repr(exc)})") from None
    raise _fail(path, f"unknown format {suffix!r}: use .parquet, .csv or .npy (with ids)")


def _vectors(frame: pd.DataFrame, keys: list[str], path: Path) -> np.ndarray:
    """The table's value columns as a float matrix: one list column, or numeric columns."""
    if len(frame.columns) == 1 and pd.api.types.is_object_dtype(frame.dtypes.iloc[0]):
        cells = frame.iloc[:, 0].tolist()
        sizes = [len(cell) if isinstance(cell, (list, tuple, np.ndarray)) else -1
                 for cell in cells]
        if min(sizes, default=0) < 0:
            bad = keys[sizes.index(-1)]
            raise _fail(path, f"column {frame.columns[0]!r} of {bad!r} is not a list of numbers")
        if len(set(sizes)) > 1:
            row = next(i for i, size in enumerate(sizes) if size != sizes[0])
            raise _fail(path, f"ragged rows: {keys[row]!r} has {sizes[row]} values, "
                              f"{keys[0]!r} has {sizes[0]}")
        try:
            return np.array([np.asarray(cell, dtype=np.float64) for cell in cells]
                            ).reshape(len(cells), sizes[0] if cells else 0)
        except (TypeError, ValueError) as exc:
            raise _fail(path, f"column {frame.columns[0]!r} holds non-numbers ({exc})") from None
    text = [str(name) for name, dtype in frame.dtypes.items()
            if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))]
    if text:
        raise _fail(path, f"column(s) {preview(text)} are not numeric: every column but the id "
                          "(and time) column is one dimension, or a single list column holds "
                          "the vectors")
    return frame.to_numpy(dtype=np.float64)


def _finite(values: np.ndarray, keys: Sequence[str], path: Path) -> np.ndarray:
    # Cast first: a float64 beyond the float32 range becomes inf and is caught with the rest.
    cast = values.astype(np.float32)
    bad = ~np.isfinite(cast).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _fail(path, f"{int(bad.sum())} row(s) hold missing or non-finite values, e.g. "
                          f"{keys[row]!r}")
    return cast


def _npy(path: Path, ids: Path | list[str] | None) -> tuple[list[str], np.ndarray]:
    if ids is None:
        raise _fail(path, "a .npy matrix needs an ids file (ids=..., --ids FILE): one clip id "
                          "per line, in row order")
    if isinstance(ids, Path) and not ids.is_file():
        raise EmbeddingImportError(f"ids file not found: {ids}")
    try:
        matrix = np.load(path, allow_pickle=False)
    except ValueError as exc:  # object arrays (ragged rows) need pickle, which is refused
        raise _fail(path, f"not a numeric matrix (ragged rows?): {exc}") from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
        raise _fail(path, f"expected a 2-D numeric matrix, got shape {matrix.shape} of "
                          f"{matrix.dtype}")
    keys = ids.read_text(encoding="utf-8").splitlines() if isinstance(ids, Path) else ids
    if len(keys) != len(matrix):
        where = f"in {ids}" if isinstance(ids, Path) else "given"
        raise _fail(path, f"{len(matrix)} rows but {len(keys)} ids {where}")
    return [key.strip() for key in keys], matrix.astype(np.float64)


def _match(keys: list[str], column: str, clips: pd.DataFrame, root: Path,
           path: Path) -> list[str]:
    """Dataset clip ids of ``keys`` (clip ids, or audio paths when ``column`` is ``path``)."""
    if column == "path":
        by_path = {str(Path(p).resolve()): clip
                   for clip, p in zip(clips["clip_id"], clips["path"], strict=True)}
        found = [by_path.get(str((root / Path(key).expanduser()).resolve())) for key in keys]
    else:
        known = set(clips["clip_id"].astype(str))
        found = [key if key in known else None for key in keys]
    unknown = [key for key, clip in zip(keys, found, strict=True) if clip is None]
    if unknown:
        raise _fail(path, f"{len(unknown)} {column}(s) match no clip of the dataset, e.g. "
                          f"{unknown[0]!r}")
    return [str(clip) for clip in found]


def read_embeddings(path: str | os.PathLike[str], clips: pd.DataFrame, *,
                    root: str | os.PathLike[str] = ".",
                    ids: str | os.PathLike[str] | list[str] | None = None,
                    id_column: str | None = None, frames: bool = False) -> EmbeddingTable:
    """Read and validate a table of embeddings (or of frames) against a dataset's clips.

    Parameters
    ----------
    path : path-like
        ``.parquet``/``.pq``, ``.csv`` or ``.npy`` (see the module documentation).
    clips : pandas.DataFrame
        The dataset's clips (``Dataset.clips``: ``clip_id`` and ``path``).
    root : path-like, keyword-only
        Directory that relative audio paths start from (the dataset's).
    ids : path-like or list of str, keyword-only, optional
        With a ``.npy`` matrix: text file of clip ids, one per line, in row order; or those
        ids as a list.
    id_column : str, keyword-only, optional
        Id column of a table; default ``clip_id``, else ``path``.
    frames : bool, keyword-only
        A frames table: rows are (clip, frame) pairs with a ``time_s`` column, seconds.

    Returns
    -------
    EmbeddingTable

    Raises
    ------
    EmbeddingImportError
        Missing file, unknown format, no id column, an id matching no clip, a duplicate id
        (a duplicate clip and time in a frames table), ragged, non-numeric, missing or
        non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise EmbeddingImportError(f"embeddings file not found: {path}")
    times = None
    if path.suffix.lower() == ".npy":
        if frames:
            raise _fail(path, "frames are read from a Parquet or CSV table with a time_s column")
        keys, values = _npy(path, ids if ids is None or isinstance(ids, list) else Path(ids))
        column = "clip_id"
    else:
        table = _read_frame(path)
        candidates = [id_column] if id_column else [c for c in ID_COLUMNS if c in table.columns]
        if not candidates or candidates[0] not in table.columns:
            wanted = id_column or " or ".join(ID_COLUMNS)
            raise _fail(path, f"no id column {wanted} (columns: {preview(table.columns)})")
        column = candidates[0]
        keys = table[column].astype(str).tolist()
        value_columns = table.drop(columns=[column])
        if frames:
            if TIME_COLUMN not in table.columns:
                raise _fail(path, f"a frames table needs a {TIME_COLUMN} column (seconds)")
            times = pd.to_numeric(table[TIME_COLUMN], errors="coerce").to_numpy(np.float64)
            if not np.isfinite(times).all():
                raise _fail(path, f"{TIME_COLUMN} holds missing or non-numeric values")
            value_columns = value_columns.drop(columns=[TIME_COLUMN])
        values = _vectors(value_columns, keys, path)
    if not keys:
        raise _fail(path, "holds no rows")
    clip_ids = _match(keys, column, clips, Path(root), path)
    duplicated = (pd.Series(clip_ids).duplicated() if times is None
                  else pd.DataFrame({"c": clip_ids, "t": times}).duplicated())
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        what = "" if times is None else f" at {TIME_COLUMN}={times[row]:g}"
        raise _fail(path, f"duplicate id {keys[row]!r}{what} (clip {clip_ids[row]!r})")
    if values.shape[1] == 0:
        raise _fail(path, "holds no value columns")
    return EmbeddingTable(clip_ids, _finite(values, keys, path), times, path,
                          file_checksum(path))


def _check_name(name: str) -> str:
    from featurekit.neural.registry import available_models
    from featurekit.store.layout import check_name

    check_name(name, "model")
    if "." in name or name == E2E_BRANCH or name in available_models():
        raise ConfigError(f"cannot import embeddings as {name!r}: use a name without '.' that "
                          f"is neither {E2E_BRANCH!r} nor a registered model (featurekit "
                          "computes those itself)")
    return name


def _provenance(name: str, table: EmbeddingTable,
                frames: EmbeddingTable | None) -> dict[str, Any]:
    config = {"imported": True, "model": name, "dimension": table.dimension,
              "source_sha256": table.sha256,
              "frames_sha256": None if frames is None else frames.sha256}
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return {"config": config,
            "config_hash": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
            "imported": True, "untrained": False,
            "source_file": str(table.path.resolve()), "count": len(table.clip_ids),
            "frames_file": None if frames is None else str(frames.path.resolve()),
            "versions": package_versions("featurekit", "numpy", "pandas", "pyarrow")}


def _frames_of(frames: EmbeddingTable, branch: str) -> dict[str, pd.DataFrame]:
    names = indexed_names(f"{branch}.neuralogram", frames.dimension)
    table = pd.DataFrame(frames.values, columns=names)
    table.insert(0, TIME_COLUMN, frames.times)
    table.insert(0, "clip_id", frames.clip_ids)
    table = table.sort_values(["clip_id", TIME_COLUMN], kind="stable")
    return {str(clip): group.drop(columns="clip_id").reset_index(drop=True)
            for clip, group in table.groupby("clip_id", sort=False)}


def import_embeddings(source: str | os.PathLike[str], dataset: Any,
                      store: str | os.PathLike[str] | Any, *, name: str,
                      ids: str | os.PathLike[str] | None = None, id_column: str | None = None,
                      frames: str | os.PathLike[str] | None = None,
                      overwrite: bool = False) -> ImportSummary:
    """Store embeddings computed elsewhere as branch ``neural.<name>`` of a dataset.

    Parameters
    ----------
    source : path-like
        Table of clip embeddings (module documentation: Parquet, CSV, or ``.npy`` with
        ``ids``).
    dataset : Dataset
        From :func:`featurekit.load_dataset`: its clips are the ones imported; its fold and
        label of each clip are stored with it.
    store : FeatureStore or path-like
    name : str, keyword-only
        Model name: the branch is ``neural.<name>``, what ``featurekit benchmark --model
        <name>`` reads. Not a registered model's name, nor ``e2e``.
    ids, id_column :
        See :func:`read_embeddings`.
    frames : path-like, keyword-only, optional
        Frame sequences (Parquet or CSV, one row per clip and frame, ``time_s`` in seconds),
        stored for the sequence heads; clips with an embedding but no frames are left out.
    overwrite : bool, keyword-only
        Replace a branch imported from another file (otherwise refused). Importing the same
        file again resumes: stored clips are kept, the rest are written.

    Returns
    -------
    ImportSummary

    Raises
    ------
    EmbeddingImportError
        See :func:`read_embeddings`; also a dimension other than the stored branch's.
    ConfigError
        A name that is registered, ``e2e`` or not a plain name.
    StoreError
        The branch holds another import (without ``overwrite``) or is being written.

    Warns
    -----
    UserWarning
        Clips of the dataset without an embedding, listed; they are recorded in the
        branch's errors (``FeatureStore.errors``) like failed extractions.
    """
    from featurekit.store.reader import FeatureStore

    branch = neural_branch(_check_name(name))
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    clips = dataset.clips
    table = read_embeddings(source, clips, root=dataset.root, ids=ids, id_column=id_column)
    frame_table = None if frames is None else read_embeddings(
        frames, clips, root=dataset.root, id_column=id_column, frames=True)
    if not overwrite and branch in store.branches(dataset.name):
        stored = len(store.feature_names(dataset.name, branch))
        if stored and stored != table.dimension:
            raise _fail(table.path, f"{table.dimension} dimensions, but {dataset.name}/{branch} "
                                    f"in store {store.path} holds {stored}; import into "
                                    "another store or name, or overwrite the branch")
    row_of = {clip: row for row, clip in enumerate(table.clip_ids)}
    per_clip = None if frame_table is None else _frames_of(frame_table, branch)
    missing = [str(clip) for clip in clips["clip_id"]
               if clip not in row_of or (per_clip is not None and clip not in per_clip)]
    if missing:
        warnings.warn(f"{len(missing)} clip(s) of {dataset.name} have no embedding"
                      f"{'' if per_clip is None else ' or no frames'} in {table.path} and "
                      f"are left out: {preview(missing)}", UserWarning, stacklevel=2)
    left_out = set(missing)
    stored = 0
    with store.writer(dataset.name, branch, provenance=_provenance(name, table, frame_table),
                      feature_names=embedding_names(name, table.dimension),
                      frames=per_clip is not None, overwrite=overwrite) as writer:
        already = len(writer.done)
        todo = clips[~clips["clip_id"].isin(writer.done)]
        for start in range(0, len(todo), IMPORT_BATCH):
            batch = todo.iloc[start:start + IMPORT_BATCH]
            outcomes: list[ClipResult | ClipFailure] = []
            for clip in batch["clip_id"]:
                if clip in left_out:
                    kind = "Frames" if clip in row_of else "Embedding"
                    outcomes.append(ClipFailure(f"Missing{kind}",
                                                f"no {kind.lower()} in {table.path.name}"))
                else:
                    outcomes.append(ClipResult(table.values[row_of[clip]], frames=(
                        None if per_clip is None else per_clip[clip])))
            stored += writer.write_batch(batch, outcomes)[0]
    return ImportSummary(dataset.name, branch, stored=stored, already=already,
                         dimension=table.dimension, missing=missing)


def imported_models(store: Any, dataset: str) -> list[str]:
    """Model names whose ``neural.<name>`` branch of ``dataset`` in ``store`` was imported
    (:func:`import_embeddings`) rather than computed."""
    from featurekit.names import NEURAL_PREFIX

    return [branch.removeprefix(NEURAL_PREFIX) for branch in store.branches(dataset)
            if branch.startswith(NEURAL_PREFIX)
            and store.provenance(dataset, branch).get("imported")]
