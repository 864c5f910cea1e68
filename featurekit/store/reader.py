"""FeatureStore: a store's datasets and branches, read as pandas or arrays, with provenance, errors,
notes and frames (the layout: :mod:`featurekit.store.layout`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from featurekit.errors import StoreError
from featurekit.store.layout import (
    ERROR_COLUMNS,
    ERRORS_FILE,
    FRAMES_DIR,
    KEY_COLUMNS,
    NOTES_DIR,
    PART_GLOB,
    check_name,
    file_metadata,
    match_columns,
)
from featurekit.store.writer import BranchWriter


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
        return self.path / check_name(dataset, "dataset") / check_name(branch, "branch")

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
        root = self.path / check_name(dataset, "dataset")
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
        return file_metadata(pq.read_schema(source), source)

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
            matches = {branch: match_columns(branch_names, columns)
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

    def frame_files(self, dataset: str, branch: str) -> list[Path]:
        """The committed Parquet files of a branch's frame-level descriptors, one per feature
        part, each holding whole clips (``clip_id, time_s``, then the descriptors), sorted.

        Raises
        ------
        StoreError
            When the branch was extracted without frames.
        """
        if not self.metadata(dataset, branch).get("frames"):
            raise StoreError(f"{dataset}/{branch} was extracted without frame-level "
                             "descriptors; rerun the extraction with frames (--frames) "
                             "into a new store or with --overwrite")
        return self._companions(dataset, branch, FRAMES_DIR)

    def frames(self, dataset: str, branch: str,
               clip_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Frame-level descriptors (``clip_id, time_s``, then one column per descriptor).

        Raises
        ------
        StoreError
            When the branch was extracted without frames.
        """
        files = self.frame_files(dataset, branch)
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
