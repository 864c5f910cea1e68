"""BranchWriter: appends batches to one branch of a store under its lock, never losing work.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from featurekit.errors import StoreError
from featurekit.store.layout import (
    ERROR_COLUMNS,
    ERRORS_FILE,
    FRAMES_DIR,
    KEY_COLUMNS,
    NOTES_DIR,
    PART_GLOB,
    STORE_FORMAT,
    file_metadata,
    with_metadata,
    write_table,
)
from featurekit.store.records import ClipFailure, ClipResult


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
        The store it writes to (:class:`featurekit.store.reader.FeatureStore`, which creates
        writers through :meth:`~featurekit.store.reader.FeatureStore.writer`).
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

    def __init__(self, store: Any, dataset: str, branch: str, *,
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
        stored = file_metadata(schema, path)
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
            One :class:`~featurekit.computers.base.ClipResult` or :class:`ClipFailure` per row.

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
            write_table(self._feature_table(stored, results), self.directory / name)
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
        return with_metadata(table, self.metadata)

    def _write_companions(self, name: str, clips: pd.DataFrame,
                          results: Sequence[ClipResult]) -> None:
        clip_ids = clips["clip_id"].astype(str).tolist()
        notes = [(clip, note) for clip, result in zip(clip_ids, results, strict=True)
                 for note in result.notes]
        if notes:
            table = pa.table({"clip_id": pa.array([clip for clip, _ in notes], pa.string()),
                              "note": pa.array([note for _, note in notes], pa.string())})
            write_table(with_metadata(table, self.metadata), self.directory / NOTES_DIR / name)
        if self.frames:
            frames = pd.concat([result.frames.assign(clip_id=clip)
                                for clip, result in zip(clip_ids, results, strict=True)],
                               ignore_index=True)
            frames = frames[["clip_id", *(c for c in frames.columns if c != "clip_id")]]
            table = pa.Table.from_pandas(frames, preserve_index=False)
            write_table(with_metadata(table, self.metadata), self.directory / FRAMES_DIR / name)

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
        write_table(with_metadata(table, self.metadata), path)
