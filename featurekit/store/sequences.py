"""Frame sequences from a feature store: which store branch and columns make each stream, and the
streams of many clips read file by file into NaN-padded arrays, in memory or memory-mapped.

Streams:

``pitch``
    f0 in cents, voicing probability, salience and the 12 chroma bins.
``timbre``
    MFCC, their deltas and the mel-band energies.
``spectral``
    every ``spectral.*`` frame descriptor.
``neural.<model>``
    the pretrained CNN's last feature map averaged over frequency (the "neuralogram").
``e2e``
    the log-mel frames the end-to-end stream learns from (store branch ``logmel``,
    :mod:`featurekit.computers.logmel`).

Sequence arrays are float32 of shape (n_clips, n_frames, n_dims), padded at the end with NaN:
a frame whose every value is NaN is padding.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from featurekit.errors import ConfigError, StoreError
from featurekit.names import E2E_BRANCH, HANDCRAFTED_BRANCH, LOGMEL_BRANCH

#: Frame-column patterns of the handcrafted streams (glob patterns, in stream order).
HANDCRAFTED_STREAMS: dict[str, tuple[str, ...]] = {
    "pitch": ("pitch.f0_cents", "pitch.voicing_prob", "pitch.salience", "pitch.chroma_*"),
    "timbre": ("timbre.mfcc_[0-9][0-9]", "timbre.mfcc_delta_*", "timbre.melband_*"),
    "spectral": ("spectral.*",),
}


#: Frame columns of the end-to-end stream (store branch ``logmel``).
E2E_PATTERNS = (f"{LOGMEL_BRANCH}.band_*",)


def stream_store_branch(stream: str) -> str:
    """Store branch whose frames make up ``stream`` (``handcrafted``, ``neural.<model>`` or
    ``logmel``)."""
    if stream in HANDCRAFTED_STREAMS:
        return HANDCRAFTED_BRANCH
    if stream == E2E_BRANCH:
        return LOGMEL_BRANCH
    if stream.startswith("neural.") and stream.count(".") == 1:
        return stream
    raise ConfigError(f"unknown sequence stream {stream!r}; choose from "
                      f"{', '.join(HANDCRAFTED_STREAMS)}, {E2E_BRANCH} or neural.<model>")


def stream_columns(stream: str, available: Sequence[str]) -> list[str]:
    """Frame columns of ``stream`` among ``available`` (a frames table's columns), in order.

    Raises
    ------
    StoreError
        None of the stream's columns is present.
    """
    stream_store_branch(stream)
    patterns = (E2E_PATTERNS if stream == E2E_BRANCH
                else HANDCRAFTED_STREAMS.get(stream, (f"{stream}.neuralogram_*",)))
    names = [str(name) for name in available]
    chosen = list(dict.fromkeys(name for pattern in patterns
                                for name in fnmatch.filter(names, pattern)))
    if not chosen:
        raise StoreError(f"no frame column of stream {stream!r} (patterns "
                         f"{', '.join(patterns)}) among the stored frames")
    return chosen


def load_sequences(store: Any, dataset: str, streams: Sequence[str], clip_ids: Sequence[str],
                   *, max_frames: int | None = None,
                   directory: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """Frame sequences of clips from a feature store, NaN-padded, in memory or memory-mapped.

    Each stored frames file is read once, one at a time: first its ``clip_id`` column (how
    many frames each clip has, hence the arrays' shape), then its frames, written straight
    into place. With ``directory`` the arrays are ``.npy`` files there, returned as read-only
    memory maps, so the memory a load needs is one frames file, whatever the number of clips.

    Parameters
    ----------
    store : FeatureStore
    dataset : str
    streams : sequence of str
        Stream names (see the module documentation).
    clip_ids : sequence of str
        Clips wanted, in the order of the returned rows.
    max_frames : int, optional
        Keep at most this many frames per clip (the first ones).
    directory : path, optional
        Where to write ``<stream>.npy`` (an existing directory; files of the same names are
        replaced). Without it the arrays are in memory.

    Returns
    -------
    dict of str to np.ndarray
        Stream -> float32 array (n_clips, n_frames, n_dims) -- a read-only
        :class:`numpy.memmap` with ``directory`` -- where ``n_frames`` is the longest clip
        (capped by ``max_frames``) and shorter clips are padded with all-NaN frames.

    Raises
    ------
    StoreError
        A branch was stored without frames, or a wanted clip has none.
    """
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be at least 1, got {max_frames}")
    clip_ids = [str(clip) for clip in clip_ids]
    wanted = pd.Index(clip_ids)
    if wanted.has_duplicates:
        raise ConfigError(f"clip ids repeat, e.g. {wanted[wanted.duplicated()][0]!r}")
    by_branch: dict[str, list[str]] = {}
    for stream in streams:
        by_branch.setdefault(stream_store_branch(stream), []).append(stream)
    out: dict[str, np.ndarray] = {}
    for branch, branch_streams in by_branch.items():
        files = store.frame_files(dataset, branch)
        # First pass: which file holds each wanted clip (the first, should one be stored
        # twice) and how many frames it has there.
        owner = np.full(len(clip_ids), -1, dtype=np.int64)
        counts = np.zeros(len(clip_ids), dtype=np.int64)
        for number, path in enumerate(files):
            clips = pq.read_table(path, columns=["clip_id"]).column(0).to_numpy(
                zero_copy_only=False).astype(str)
            unique, n_frames = np.unique(clips, return_counts=True)
            rows = wanted.get_indexer(unique)
            new = (rows >= 0) & (owner[np.maximum(rows, 0)] < 0)
            owner[rows[new]], counts[rows[new]] = number, n_frames[new]
        missing = np.flatnonzero(owner < 0)
        if missing.size:
            raise StoreError(f"{missing.size} clip(s) have no stored frames in "
                             f"{dataset}/{branch}, e.g. {clip_ids[missing[0]]!r}")
        n_frames = int(counts.max()) if max_frames is None else int(min(counts.max(),
                                                                        max_frames))
        names = pq.read_schema(files[0]).names
        columns = {stream: stream_columns(stream, names) for stream in branch_streams}
        arrays = {stream: _padded_array(len(clip_ids), n_frames, len(columns[stream]),
                                        None if directory is None
                                        else Path(directory) / f"{stream}.npy")
                  for stream in branch_streams}
        # Second pass: each file's frames of the clips it owns, into place.
        needed = list(dict.fromkeys(name for chosen in columns.values() for name in chosen))
        for number, path in enumerate(files):
            table = pq.read_table(path, columns=["clip_id", "time_s", *needed])
            clips = table.column("clip_id").to_numpy(zero_copy_only=False).astype(str)
            rows = wanted.get_indexer(clips)
            order = np.lexsort((table.column("time_s").to_numpy(), rows))
            rows = rows[order]
            owned = rows >= 0
            owned[owned] = owner[rows[owned]] == number
            # Each frame's position in its clip: its rank after the clip's first frame.
            starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
            position = np.arange(rows.size) - np.repeat(starts, np.diff(np.r_[starts,
                                                                               rows.size]))
            keep = np.flatnonzero(owned & (position < n_frames))
            for stream, array in arrays.items():
                values = np.column_stack([table.column(name).to_numpy(zero_copy_only=False)
                                          for name in columns[stream]])
                array[rows[keep], position[keep]] = values[order[keep]]
            del table
        for stream, array in arrays.items():
            if isinstance(array, np.memmap):
                array.flush()
                filename = array.filename
                del array
                out[stream] = np.load(filename, mmap_mode="r")
            else:
                out[stream] = array
    return out


def _padded_array(n_clips: int, n_frames: int, n_dims: int,
                  path: Path | None) -> np.ndarray:
    """An all-NaN float32 array (n_clips, n_frames, n_dims): in memory, or a ``.npy`` file
    mapped for writing (filled in blocks of clips, never whole in memory)."""
    shape = (n_clips, n_frames, n_dims)
    if path is None:
        return np.full(shape, np.nan, dtype=np.float32)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    block = max(1, (64 << 20) // max(1, 4 * n_frames * n_dims))
    for start in range(0, n_clips, block):
        array[start:start + block] = np.nan
    return array
