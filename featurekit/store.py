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
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import json
import os
import platform
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from featurekit.branch import ClipFailure, ClipResult
from featurekit.errors import StoreError
from featurekit.fsutil import atomic_path

__all__ = ["KEY_COLUMNS", "BranchWriter", "ClipFailure", "FeatureStore"]

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


def _check_name(name: str, what: str) -> str:
    if (not isinstance(name, str) or not name or name in {".", ".."} or name[0] in "._"
            or "/" in name or "\\" in name or os.sep in name):
        raise StoreError(f"invalid {what} name {name!r}: use a plain directory name that does "
                         "not start with '.' or '_'")
    return name


def _file_metadata(schema: pa.Schema, path: Path) -> dict[str, Any]:
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


def _with_metadata(table: pa.Table, metadata: Mapping[str, Any]) -> pa.Table:
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def _write_table(table: pa.Table, target: Path) -> None:
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _match_columns(names: Sequence[str], selection: str | Sequence[str]) -> dict[str, list[str]]:
    """Map each selection item (exact name or glob pattern) to the names it picks, in order."""
    items = [selection] if isinstance(selection, str) else list(selection)
    return {item: (fnmatch.filter(names, item) if _GLOB_CHARS & set(item)
                   else [item] if item in names else [])
            for item in items}


class FeatureStore:
    """A directory of Parquet feature tables, one per dataset and branch.

    Parameters
    ----------
    path : path-like
        Root directory of the store (created on first write).

    Examples
    --------
    >>> store = FeatureStore("features")                          # doctest: +SKIP
    >>> df = store.read("urbansound8k", folds=[1, 2], columns=["pitch.*"])   # doctest: +SKIP
    >>> X, y, folds, names = store.read_arrays("urbansound8k")    # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r})"

    # ----------------------------------------------------------------- layout
    def branch_dir(self, dataset: str, branch: str) -> Path:
        """Directory of one branch (it may not exist yet)."""
        return self.path / _check_name(dataset, "dataset") / _check_name(branch, "branch")

    def parts(self, dataset: str, branch: str) -> list[Path]:
        """Committed feature parts of a branch, sorted by name."""
        return sorted(self.branch_dir(dataset, branch).glob(PART_GLOB))

    def datasets(self) -> list[str]:
        """Datasets with at least one branch."""
        if not self.path.is_dir():
            return []
        return sorted(entry.name for entry in self.path.iterdir()
                      if entry.is_dir() and entry.name[0] not in "._" and self.branches(entry.name))

    def branches(self, dataset: str) -> list[str]:
        """Branches stored for ``dataset`` (with parts or recorded errors)."""
        root = self.path / _check_name(dataset, "dataset")
        if not root.is_dir():
            return []
        return sorted(entry.name for entry in root.iterdir()
                      if entry.is_dir() and entry.name[0] not in "._"
                      and (any(entry.glob(PART_GLOB)) or (entry / ERRORS_FILE).is_file()))

    def _require(self, dataset: str, branch: str) -> Path:
        if branch not in self.branches(dataset):
            known = self.branches(dataset)
            if not known:
                raise StoreError(f"store {self.path} has no dataset {dataset!r} "
                                 f"(datasets: {', '.join(self.datasets()) or 'none'})")
            raise StoreError(f"store {self.path} has no branch {branch!r} for dataset "
                             f"{dataset!r} (branches: {', '.join(known)})")
        return self.branch_dir(dataset, branch)

    # --------------------------------------------------------------- metadata
    def metadata(self, dataset: str, branch: str) -> dict[str, Any]:
        """The JSON description stored with the branch's files (see module docstring)."""
        directory = self._require(dataset, branch)
        parts = self.parts(dataset, branch)
        source = parts[0] if parts else directory / ERRORS_FILE
        return _file_metadata(pq.read_schema(source), source)

    def provenance(self, dataset: str, branch: str) -> dict[str, Any]:
        """What computed the branch: ``config``, ``config_hash``, ``versions``, flags."""
        return self.metadata(dataset, branch)["provenance"]

    def feature_names(self, dataset: str, branch: str) -> list[str]:
        """Feature columns of a branch, in stored order (empty if every clip failed)."""
        self._require(dataset, branch)
        parts = self.parts(dataset, branch)
        if not parts:
            return []
        return [name for name in pq.read_schema(parts[0]).names if name not in KEY_COLUMNS]

    # ------------------------------------------------------------------ reads
    def _read_branch(self, dataset: str, branch: str, columns: Sequence[str],
                     folds: Sequence[int] | None) -> pd.DataFrame:
        parts = self.parts(dataset, branch)
        key_schema = pa.schema([("clip_id", pa.string()), ("fold", pa.int64()),
                                ("label", pa.string()), ("label_id", pa.int64())])
        if not parts:
            return key_schema.empty_table().to_pandas()
        data = pads.dataset([str(part) for part in parts], format="parquet")
        row_filter = None if folds is None else pads.field("fold").isin(list(folds))
        table = data.to_table(columns=[*KEY_COLUMNS, *columns], filter=row_filter)
        return table.to_pandas()

    def _select(self, dataset: str, branches: Sequence[str],
                columns: str | Sequence[str] | None) -> dict[str, list[str]]:
        names = {branch: self.feature_names(dataset, branch) for branch in branches}
        if columns is None:
            chosen = names
        else:
            matches = {branch: _match_columns(branch_names, columns)
                       for branch, branch_names in names.items()}
            items = [columns] if isinstance(columns, str) else list(columns)
            everything = [name for branch_names in names.values() for name in branch_names]
            for item in items:
                if not any(matches[branch][item] for branch in branches):
                    close = difflib.get_close_matches(item, everything, n=3)
                    hint = f"; did you mean {', '.join(close)}?" if close else ""
                    raise StoreError(f"no feature column matches {item!r} in "
                                     f"{dataset}/{', '.join(branches)}{hint}")
            chosen = {branch: list(dict.fromkeys(name for item in items
                                                 for name in matches[branch][item]))
                      for branch in branches}
        seen: dict[str, str] = {}
        for branch, branch_names in chosen.items():
            for name in branch_names:
                if name in seen:
                    raise StoreError(f"feature column {name!r} is in both branches "
                                     f"{seen[name]!r} and {branch!r}; select columns per branch")
                seen[name] = branch
        return chosen

    def read(self, dataset: str, branches: str | Sequence[str] = ("handcrafted",),
             folds: Iterable[int] | None = None,
             columns: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Features of a dataset as a DataFrame, one row per clip, sorted by ``clip_id``.

        Parameters
        ----------
        dataset : str
            Dataset name, e.g. ``"urbansound8k"``.
        branches : str or sequence of str
            Branches to read; several are inner-joined on ``clip_id`` (clips missing from any
            branch are dropped).
        folds : iterable of int, optional
            Keep only these folds.
        columns : str or sequence of str, optional
            Feature columns to keep: exact names or glob patterns such as ``"pitch.*"`` or
            ``"timbre.mfcc_*.mean"``. Default: every feature column.

        Returns
        -------
        pandas.DataFrame
            ``clip_id, fold, label, label_id`` then float32 feature columns, branch by branch.
        """
        branches = [branches] if isinstance(branches, str) else list(branches)
        if not branches:
            raise StoreError("read needs at least one branch")
        for branch in branches:
            self._require(dataset, branch)
        fold_list = None if folds is None else [int(fold) for fold in folds]
        chosen = self._select(dataset, branches, columns)
        frame = self._read_branch(dataset, branches[0], chosen[branches[0]], fold_list)
        for branch in branches[1:]:
            other = self._read_branch(dataset, branch, chosen[branch], fold_list)
            frame = frame.merge(other, on="clip_id", how="inner", suffixes=("", "._other"))
            for key in KEY_COLUMNS[1:]:
                differs = frame[key] != frame[f"{key}._other"]
                if differs.any():
                    clip = frame.loc[differs, "clip_id"].iloc[0]
                    raise StoreError(f"branches {branches[0]!r} and {branch!r} disagree on "
                                     f"{key} of clip {clip!r}; were they written from the same "
                                     "dataset metadata?")
            frame = frame.drop(columns=[f"{key}._other" for key in KEY_COLUMNS[1:]])
        return frame.sort_values("clip_id", kind="stable").reset_index(drop=True)

    def read_arrays(self, dataset: str, branches: str | Sequence[str] = ("handcrafted",),
                    folds: Iterable[int] | None = None,
                    columns: str | Sequence[str] | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Features as arrays for model fitting.

        Parameters are those of :meth:`read`.

        Returns
        -------
        X : np.ndarray, float32, shape (n_clips, n_features)
        y : np.ndarray, int64, shape (n_clips,)
            ``label_id`` of each clip.
        folds : np.ndarray, shape (n_clips,)
            Fold of each clip.
        feature_names : list of str
        """
        frame = self.read(dataset, branches, folds=folds, columns=columns)
        names = [name for name in frame.columns if name not in KEY_COLUMNS]
        features = frame[names].to_numpy(dtype=np.float32)
        return (features, frame["label_id"].to_numpy(dtype=np.int64),
                frame["fold"].to_numpy(), names)

    def stored_clip_ids(self, dataset: str, branch: str) -> set[str]:
        """Clip ids with features in the branch."""
        return {clip for part in self.parts(dataset, branch)
                for clip in pq.read_table(part, columns=["clip_id"]).column(0).to_pylist()}

    def errors(self, dataset: str, branch: str) -> pd.DataFrame:
        """Clips that failed and are not stored: ``clip_id, path, error_type, message``."""
        path = self._require(dataset, branch) / ERRORS_FILE
        if not path.is_file():
            return pd.DataFrame({name: pd.Series(dtype=object) for name in ERROR_COLUMNS})
        return pq.read_table(path).to_pandas()

    def _companions(self, dataset: str, branch: str, subdir: str) -> list[Path]:
        directory = self._require(dataset, branch)
        committed = {part.name for part in self.parts(dataset, branch)}
        return [path for path in sorted((directory / subdir).glob(PART_GLOB))
                if path.name in committed]

    def notes(self, dataset: str, branch: str) -> pd.DataFrame:
        """What the loader did to stored clips (resampled, truncated ...): ``clip_id, note``."""
        files = self._companions(dataset, branch, NOTES_DIR)
        if not files:
            return pd.DataFrame({"clip_id": pd.Series(dtype=object),
                                 "note": pd.Series(dtype=object)})
        frame = pads.dataset([str(path) for path in files], format="parquet").to_table()
        return (frame.to_pandas().sort_values("clip_id", kind="stable")
                .reset_index(drop=True))

    def frames(self, dataset: str, branch: str,
               clip_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Frame-level descriptors (``clip_id, time_s``, then one column per descriptor).

        Raises
        ------
        StoreError
            When the branch was extracted without frames.
        """
        if not self.metadata(dataset, branch).get("frames"):
            raise StoreError(f"{dataset}/{branch} was extracted without frame-level "
                             "descriptors; rerun the extraction with frames (--frames) "
                             "into a new store or with --overwrite")
        files = self._companions(dataset, branch, FRAMES_DIR)
        if not files:
            return pd.DataFrame({"clip_id": pd.Series(dtype=object),
                                 "time_s": pd.Series(dtype=np.float64)})
        data = pads.dataset([str(path) for path in files], format="parquet")
        row_filter = None if clip_ids is None else pads.field("clip_id").isin(list(clip_ids))
        frame = data.to_table(filter=row_filter).to_pandas()
        return frame.sort_values(["clip_id", "time_s"], kind="stable").reset_index(drop=True)

    def info(self) -> pd.DataFrame:
        """One row per dataset and branch: rows, features, folds, config hash, failures,
        whether frames are stored and whether the branch comes from an untrained model."""
        rows = []
        for dataset in self.datasets():
            for branch in self.branches(dataset):
                parts = self.parts(dataset, branch)
                folds = sorted({fold for part in parts for fold in
                                pq.read_table(part, columns=["fold"]).column(0).to_pylist()
                                if fold is not None})
                metadata = self.metadata(dataset, branch)
                provenance = metadata["provenance"]
                rows.append({
                    "dataset": dataset,
                    "branch": branch,
                    "rows": sum(pq.ParquetFile(part).metadata.num_rows for part in parts),
                    "features": len(self.feature_names(dataset, branch)),
                    "folds": ",".join(str(fold) for fold in folds),
                    "config_hash": str(provenance.get("config_hash", ""))[:12],
                    "failures": len(self.errors(dataset, branch)),
                    "frames": bool(metadata.get("frames")),
                    "untrained": bool(provenance.get("untrained", False)),
                })
        return pd.DataFrame(rows, columns=["dataset", "branch", "rows", "features", "folds",
                                           "config_hash", "failures", "frames", "untrained"])

    # ----------------------------------------------------------------- writes
    def writer(self, dataset: str, branch: str, *, feature_names: Sequence[str],
               provenance: Mapping[str, Any], frames: bool = False,
               overwrite: bool = False) -> BranchWriter:
        """A :class:`BranchWriter` for one branch; use it as a context manager."""
        return BranchWriter(self, dataset, branch, feature_names=feature_names,
                            provenance=provenance, frames=frames, overwrite=overwrite)


class BranchWriter:
    """Appends batches to one branch of a store, holding its lock.

    Entering the context takes a non-blocking exclusive lock on
    ``STORE/<dataset>/.<branch>.lock`` (a second writer gets a :class:`StoreError` naming the
    holder's pid; the lock dies with its process, so ``kill -9`` never leaves it stale), checks
    that stored parts come from the same configuration (or removes the branch when
    ``overwrite``), clears what an interrupted run left behind and loads the set of stored
    clips (:attr:`done`).

    Parameters
    ----------
    store : FeatureStore
    dataset, branch : str
    feature_names : sequence of str
        Feature columns, in value order.
    provenance : mapping
        The computer's provenance; must contain ``config_hash``.
    frames : bool
        Whether frame-level descriptors are stored with each batch.
    overwrite : bool
        Replace a branch written with another configuration instead of refusing.
    """

    def __init__(self, store: FeatureStore, dataset: str, branch: str, *,
                 feature_names: Sequence[str], provenance: Mapping[str, Any],
                 frames: bool = False, overwrite: bool = False) -> None:
        from featurekit import __version__

        self.store = store
        self.dataset = dataset
        self.branch = branch
        self.directory = store.branch_dir(dataset, branch)
        self.feature_names = list(feature_names)
        if len(set(self.feature_names)) != len(self.feature_names):
            raise StoreError(f"branch {branch!r} has duplicate feature names")
        if clash := set(self.feature_names) & set(KEY_COLUMNS):
            raise StoreError(f"feature names {sorted(clash)} clash with the key columns")
        if "config_hash" not in provenance:
            raise StoreError(f"provenance of branch {branch!r} has no config_hash")
        self.frames = bool(frames)
        self.overwrite = overwrite
        self.metadata = {"format": STORE_FORMAT, "featurekit_version": __version__,
                         "python": platform.python_version(), "dataset": dataset,
                         "branch": branch, "frames": self.frames,
                         "provenance": json.loads(json.dumps(dict(provenance)))}
        self.done: set[str] = set()
        self._errors: dict[str, tuple[str, str, str]] = {}
        self._next_part = 0
        self._lock: FileLock | None = None

    # ------------------------------------------------------------- lifecycle
    @property
    def lock_path(self) -> Path:
        """Lock file of the branch, beside (not inside) its directory so it survives
        ``overwrite``."""
        return self.directory.parent / f".{self.branch}.lock"

    def __enter__(self) -> BranchWriter:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        # An OS lock (flock / LockFileEx through filelock), so a killed run never leaves the
        # branch locked. The holder's pid sits in a file of its own: Windows does not let
        # another process read a locked file.
        lock = FileLock(self.lock_path, timeout=0)  # held until __exit__
        holder_path = self.lock_path.with_name(self.lock_path.name + ".pid")
        try:
            lock.acquire()
        except Timeout:
            try:
                holder = holder_path.read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise StoreError(f"{self.dataset}/{self.branch} in store {self.store.path} is being "
                             f"written by another run (pid {holder}); wait for it to finish "
                             "or use another store") from None
        self._lock = lock
        holder_path.write_text(str(os.getpid()))
        try:
            self._prepare()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _prepare(self) -> None:
        for leftover in self.directory.parent.glob(f".trash-{self.branch}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if self.overwrite and self.directory.exists() and not self._stored_compatible():
            trash = self.directory.parent / f".trash-{self.branch}-{os.getpid()}"
            os.replace(self.directory, trash)  # atomic: the branch is gone or intact
            shutil.rmtree(trash)
        self.directory.mkdir(parents=True, exist_ok=True)
        parts = self.store.parts(self.dataset, self.branch)
        for part in parts:
            table = pq.read_table(part, columns=["clip_id"])
            self._check_compatible(pq.read_schema(part), part)
            self.done.update(table.column(0).to_pylist())
        errors_path = self.directory / ERRORS_FILE
        if errors_path.is_file():
            errors = pq.read_table(errors_path)
            self._check_compatible(errors.schema, errors_path)
            for row in errors.to_pylist():
                if row["clip_id"] not in self.done:
                    self._errors[row["clip_id"]] = (row["path"], row["error_type"],
                                                    row["message"])
        self._remove_leftovers({part.name for part in parts})
        numbers = [int(path.stem.split("-")[1]) for path in parts]
        self._next_part = max(numbers, default=-1) + 1

    def _stored_compatible(self) -> bool:
        """Whether everything stored matches this run, so overwriting can keep it (an
        interrupted ``--overwrite`` run then resumes instead of starting over)."""
        stored = [*self.store.parts(self.dataset, self.branch),
                  *[path for path in [self.directory / ERRORS_FILE] if path.is_file()]]
        try:
            for path in stored:
                self._check_compatible(pq.read_schema(path), path)
        except StoreError:
            return False
        return True

    def _check_compatible(self, schema: pa.Schema, path: Path) -> None:
        stored = _file_metadata(schema, path)
        stored_hash = stored["provenance"].get("config_hash")
        new_hash = self.metadata["provenance"]["config_hash"]
        remedy = "use another store, or overwrite=True (--overwrite) to replace the branch"
        if stored_hash != new_hash:
            # A code change that alters values (featurekit's DESCRIPTOR_VERSION) changes the
            # hash of an unchanged configuration: say so, or the mismatch looks like a mistake.
            versions = (stored["provenance"].get("descriptor_version"),
                        self.metadata["provenance"].get("descriptor_version"))
            why = (f" (descriptor version {versions[0] or '< 4'} -> {versions[1]}: this "
                   "featurekit computes other or more columns)"
                   if versions[1] is not None and versions[0] != versions[1] else "")
            raise StoreError(f"{self.dataset}/{self.branch} in store {self.store.path} was "
                             f"computed with configuration {str(stored_hash)[:12]}, this run "
                             f"has {str(new_hash)[:12]}{why}; {remedy}")
        if bool(stored.get("frames")) != self.frames:
            state = "with" if stored.get("frames") else "without"
            raise StoreError(f"{self.dataset}/{self.branch} in store {self.store.path} was "
                             f"extracted {state} frame-level descriptors; {remedy}")
        if path.name != ERRORS_FILE:
            stored_names = [name for name in schema.names if name not in KEY_COLUMNS]
            if stored_names != self.feature_names:
                raise StoreError(f"{path} holds other feature columns than this run; {remedy}")

    def _remove_leftovers(self, committed: set[str]) -> None:
        """Companions of parts that were never committed and temporaries of killed writes."""
        for subdir in (NOTES_DIR, FRAMES_DIR):
            for path in (self.directory / subdir).glob(PART_GLOB):
                if path.name not in committed:
                    path.unlink()
        for directory in (self.directory, self.directory / NOTES_DIR,
                          self.directory / FRAMES_DIR):
            for temporary in directory.glob(".*.tmp"):
                temporary.unlink(missing_ok=True)

    # ---------------------------------------------------------------- writes
    def _check_result(self, result: ClipResult | ClipFailure) -> ClipResult | ClipFailure:
        if isinstance(result, ClipFailure):
            return result
        if not isinstance(result, ClipResult):
            return ClipFailure("TypeError", f"computer returned {type(result).__name__}, "
                                            "not a ClipResult")
        values = np.asarray(result.values)
        if values.shape != (len(self.feature_names),):
            return ClipFailure("ValueError", f"computer returned values of shape {values.shape} "
                                             f"for {len(self.feature_names)} features")
        if self.frames and result.frames is None:
            return ClipFailure("ValueError", "frames were requested but the computer "
                                             "returned none")
        return result

    def write_batch(self, clips: pd.DataFrame,
                    outcomes: Sequence[ClipResult | ClipFailure],
                    ) -> tuple[int, list[tuple[str, str, str]]]:
        """Store one finished batch.

        Parameters
        ----------
        clips : pandas.DataFrame
            The batch's rows of the dataset's clips table (``clip_id, path, fold, label,
            label_id``).
        outcomes : sequence
            One :class:`~featurekit.branch.ClipResult` or :class:`ClipFailure` per row.

        Returns
        -------
        stored : int
            Clips written as features.
        failures : list of (clip_id, error_type, message)
            Clips recorded as errors.
        """
        if self._lock is None:
            raise StoreError("BranchWriter.write_batch called outside its 'with' block")
        if len(outcomes) != len(clips):
            raise StoreError(f"{len(outcomes)} outcomes for a batch of {len(clips)} clips")
        checked = [self._check_result(outcome) for outcome in outcomes]
        succeeded = [isinstance(outcome, ClipResult) for outcome in checked]
        stored = clips[succeeded]
        results = [outcome for outcome in checked if isinstance(outcome, ClipResult)]
        if results:
            name = f"part-{self._next_part:05d}.parquet"
            self._next_part += 1
            self._write_companions(name, stored, results)
            _write_table(self._feature_table(stored, results), self.directory / name)
            self.done.update(stored["clip_id"])
        errors_before = dict(self._errors)
        failures = []
        for clip, outcome in zip(clips.itertuples(index=False), checked, strict=True):
            if isinstance(outcome, ClipFailure):
                self._errors[clip.clip_id] = (str(clip.path), outcome.error_type,
                                              outcome.message)
                failures.append((clip.clip_id, outcome.error_type, outcome.message))
            else:
                self._errors.pop(clip.clip_id, None)
        if self._errors != errors_before:
            self._write_errors()
        return len(results), failures

    def _feature_table(self, clips: pd.DataFrame, results: Sequence[ClipResult]) -> pa.Table:
        values = np.stack([np.asarray(result.values, dtype=np.float32) for result in results])
        arrays = [pa.array(clips["clip_id"].astype(str).tolist(), pa.string()),
                  pa.array(clips["fold"].astype("Int64"), pa.int64()),
                  pa.array(clips["label"].astype(str).tolist(), pa.string()),
                  pa.array(clips["label_id"].astype("Int64"), pa.int64()),
                  *(pa.array(values[:, column]) for column in range(values.shape[1]))]
        table = pa.Table.from_arrays(arrays, names=[*KEY_COLUMNS, *self.feature_names])
        return _with_metadata(table, self.metadata)

    def _write_companions(self, name: str, clips: pd.DataFrame,
                          results: Sequence[ClipResult]) -> None:
        clip_ids = clips["clip_id"].astype(str).tolist()
        notes = [(clip, note) for clip, result in zip(clip_ids, results, strict=True)
                 for note in result.notes]
        if notes:
            table = pa.table({"clip_id": pa.array([clip for clip, _ in notes], pa.string()),
                              "note": pa.array([note for _, note in notes], pa.string())})
            _write_table(_with_metadata(table, self.metadata), self.directory / NOTES_DIR / name)
        if self.frames:
            frames = pd.concat([result.frames.assign(clip_id=clip)
                                for clip, result in zip(clip_ids, results, strict=True)],
                               ignore_index=True)
            frames = frames[["clip_id", *(c for c in frames.columns if c != "clip_id")]]
            table = pa.Table.from_pandas(frames, preserve_index=False)
            _write_table(_with_metadata(table, self.metadata), self.directory / FRAMES_DIR / name)

    def _write_errors(self) -> None:
        path = self.directory / ERRORS_FILE
        if not self._errors:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        clip_ids = sorted(self._errors)
        columns = list(zip(*(self._errors[clip] for clip in clip_ids), strict=True))
        table = pa.table({"clip_id": pa.array(clip_ids, pa.string()),
                          **{name: pa.array(list(values), pa.string())
                             for name, values in zip(ERROR_COLUMNS[1:], columns, strict=True)}})
        _write_table(_with_metadata(table, self.metadata), path)
