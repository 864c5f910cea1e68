"""One branch of a store written out as a plain table, for other tools (and for
``featurekit import-embeddings``, which reads the same layout back)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from featurekit._util.fsutil import atomic_path
from featurekit.errors import StoreError
from featurekit.store.layout import KEY_COLUMNS

__all__ = ["export_branch"]

#: Formats :func:`export_branch` writes, by file suffix.
EXPORT_SUFFIXES = (".parquet", ".pq", ".csv")


def _write(table: pd.DataFrame, out: Path) -> None:
    with atomic_path(out, suffix=out.suffix) as tmp:
        if out.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False, compression="zstd")


def _checked(out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise StoreError(f"cannot export to {out}: use a {', '.join(EXPORT_SUFFIXES)} file")
    return out


def export_branch(store: Any, dataset: str, branch: str, out: str | os.PathLike[str], *,
                  frames_out: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """Write a branch's clip-level features (and frames) as a Parquet or CSV table.

    The table is ``clip_id`` then the feature columns in stored order (float32 in Parquet;
    CSV text that reads back to the same float32 values); folds and labels are left out,
    since the dataset is their authority. Frames go to their own table: ``clip_id, time_s``
    then one column per frame value.

    Parameters
    ----------
    store : FeatureStore
    dataset, branch : str
    out : path-like
        ``.parquet``, ``.pq`` or ``.csv`` file (replaced atomically).
    frames_out : path-like, keyword-only, optional
        Where to write the branch's frames (the branch must hold them).

    Returns
    -------
    clips : int
        Rows written to ``out``.
    frames : int
        Rows written to ``frames_out`` (0 without it).

    Raises
    ------
    StoreError
        Unknown dataset or branch, an unsupported suffix, or frames asked of a branch
        stored without them.
    """
    out = _checked(out)
    frames_path = None if frames_out is None else _checked(frames_out)
    table = store.read(dataset, branch).drop(columns=list(KEY_COLUMNS[1:]))
    frames = None if frames_path is None else store.frames(dataset, branch)
    _write(table, out)
    if frames is not None and frames_path is not None:
        _write(frames, frames_path)
    return len(table), 0 if frames is None else len(frames)
