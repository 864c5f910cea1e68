"""Frame sequences from a feature store: which store branch and columns make each stream, and the
streams of many clips read chunk by chunk into NaN-padded arrays.

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
from collections.abc import Sequence
from typing import Any

import numpy as np

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
                   chunk_size: int = 256) -> dict[str, np.ndarray]:
    """Frame sequences of clips from a feature store, NaN-padded.

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
    chunk_size : int
        Clips read at a time (bounds the size of the intermediate frames table).

    Returns
    -------
    dict of str to np.ndarray
        Stream -> float32 array (n_clips, n_frames, n_dims), where ``n_frames`` is the longest
        clip (capped by ``max_frames``) and shorter clips are padded with all-NaN frames.

    Raises
    ------
    StoreError
        A branch was stored without frames, or a wanted clip has none.
    """
    clip_ids = [str(clip) for clip in clip_ids]
    row_of = {clip: row for row, clip in enumerate(clip_ids)}
    by_branch: dict[str, list[str]] = {}
    for stream in streams:
        by_branch.setdefault(stream_store_branch(stream), []).append(stream)
    out: dict[str, np.ndarray] = {}
    for branch, branch_streams in by_branch.items():
        pieces: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {s: [] for s in branch_streams}
        columns: dict[str, list[str]] = {}
        seen: set[str] = set()
        for start in range(0, len(clip_ids), chunk_size):
            wanted = clip_ids[start:start + chunk_size]
            frames = store.frames(dataset, branch, clip_ids=wanted)
            if not columns:
                columns = {s: stream_columns(s, frames.columns) for s in branch_streams}
            clips = frames["clip_id"].to_numpy()
            unique, first, counts = np.unique(clips, return_index=True, return_counts=True)
            seen.update(unique.tolist())
            position = np.arange(len(frames)) - np.repeat(first, counts)
            keep = position < (max_frames or np.iinfo(np.int64).max)
            rows = np.array([row_of[clip] for clip in clips[keep]], dtype=np.int64)
            for stream in branch_streams:
                values = frames[columns[stream]].to_numpy(dtype=np.float32)[keep]
                pieces[stream].append((rows, position[keep], values))
            del frames
        missing = [clip for clip in clip_ids if clip not in seen]
        if missing:
            raise StoreError(f"{len(missing)} clip(s) have no stored frames in "
                             f"{dataset}/{branch}, e.g. {missing[0]!r}")
        for stream in branch_streams:
            n_frames = 1 + max(int(positions.max()) for _, positions, _ in pieces[stream])
            array = np.full((len(clip_ids), n_frames, len(columns[stream])), np.nan,
                            dtype=np.float32)
            for rows, positions, values in pieces[stream]:
                array[rows, positions] = values
            out[stream] = array
            pieces[stream].clear()
    return out
