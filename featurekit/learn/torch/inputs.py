"""Sequence inputs of the torch heads: arrays and mappings of streams checked, padding masks, and
per-stream standardisation learned from training clips and applied batch by batch.

Inputs are read only batch by batch, so a float32 array -- a memory-mapped one, or a
:class:`~featurekit.learn.rows.RowView` of one -- is never copied whole: what a fit holds is
its batches. Infinite values therefore become NaN where a batch is read, not up front.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from featurekit.learn.rows import RowView

#: Stream name of an array given instead of a mapping of streams.
SINGLE_STREAM = "sequence"


#: Standardised inputs are clipped to this many standard deviations.
INPUT_CLIP = 5.0


def check_sequences(X: Any) -> np.ndarray | RowView:
    """One stream of shape (n_clips, n_frames, n_dims).

    A float32 array (memory-mapped or not) or a :class:`~featurekit.learn.rows.RowView` of
    one is returned as it is, to be read batch by batch; anything else is converted to a
    float32 array.
    """
    lazy = isinstance(X, np.ndarray | RowView) and X.dtype == np.float32
    array = X if lazy else np.asarray(X, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"sequence input must be 3-D (clips, frames, dims), got shape "
                         f"{array.shape}")
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"sequence input has no frames or no dimensions: {array.shape}")
    return array


def _rows(X: np.ndarray | RowView, index: np.ndarray) -> np.ndarray:
    """Clips ``index`` of ``X`` in memory, infinities read as NaN (padding or missing)."""
    values = np.asarray(X[index], dtype=np.float32)
    infinite = np.isinf(values)
    return np.where(infinite, np.nan, values) if infinite.any() else values


def check_streams(X: Any) -> dict[str, np.ndarray | RowView]:
    """One array or a non-empty mapping of stream name to arrays of the same clips."""
    if not isinstance(X, Mapping):
        return {SINGLE_STREAM: check_sequences(X)}
    if not X:
        raise ValueError("X must be a sequence array or a non-empty mapping of stream name "
                         "to sequence arrays")
    streams = {str(name): check_sequences(values) for name, values in X.items()}
    sizes = {values.shape[0] for values in streams.values()}
    if len(sizes) != 1:
        raise ValueError(f"streams hold different numbers of clips: {sorted(sizes)}")
    return streams


def frame_mask(X: np.ndarray) -> np.ndarray:
    """Real (non-padding) frames, shape (n_clips, n_frames); a clip without any real frame
    gets its first frame marked real (it reads as the training mean)."""
    mask = ~np.isnan(X).all(axis=2)
    mask[~mask.any(axis=1), 0] = True
    return mask


class StreamScaling:
    """Standardisation and time pooling of one stream, learned from training clips.

    Parameters
    ----------
    X : np.ndarray or RowView, shape (n_clips, n_frames, n_dims)
    rows : np.ndarray of int
        Training clips: the mean and scale come from their real frames only.
    max_steps : int, optional
        See :class:`SequenceClassifier`.
    """

    def __init__(self, X: np.ndarray | RowView, rows: np.ndarray,
                 max_steps: int | None) -> None:
        total = np.zeros(X.shape[2])
        squares = np.zeros(X.shape[2])
        counts = np.zeros(X.shape[2])
        for start in range(0, rows.size, 256):  # chunks: no float64 copy of the whole input
            values = _rows(X, rows[start:start + 256]).astype(np.float64)
            finite = ~np.isnan(values)
            values = np.where(finite, values, 0.0)
            total += values.sum(axis=(0, 1))
            squares += (values ** 2).sum(axis=(0, 1))
            counts += finite.sum(axis=(0, 1))
        counts = np.maximum(counts, 1.0)
        mean = total / counts
        scale = np.sqrt(np.maximum(squares / counts - mean ** 2, 0.0))
        self.mean = mean.astype(np.float32)
        self.scale = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
        self.n_dims = X.shape[2]
        self.pool = 1 if max_steps is None else max(1, math.ceil(X.shape[1] / max_steps))

    def batch(self, X: np.ndarray | RowView, index: np.ndarray,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised, clipped, NaN-free, time-pooled batch trimmed to its longest clip,
        and its mask."""
        values = _rows(X, index)
        mask = frame_mask(values)
        last = int(np.flatnonzero(mask.any(axis=0)).max()) + 1
        values, mask = values[:, :last], mask[:, :last]
        values = np.clip((values - self.mean) / self.scale, -INPUT_CLIP, INPUT_CLIP)
        values = np.where(np.isnan(values) | ~mask[..., None], 0.0, values)
        if self.pool > 1:
            # Mean of each run of `pool` frames over its real frames; a run without any is
            # padding.
            n, steps = values.shape[0], math.ceil(last / self.pool)
            extra = steps * self.pool - last
            values = np.pad(values, ((0, 0), (0, extra), (0, 0)))
            mask = np.pad(mask, ((0, 0), (0, extra)))
            counts = mask.reshape(n, steps, self.pool).sum(axis=2)
            values = (values.reshape(n, steps, self.pool, -1).sum(axis=2)
                      / np.maximum(counts, 1)[..., None])
            mask = counts > 0
        return (torch.from_numpy(values.astype(np.float32)).to(device),
                torch.from_numpy(mask).to(device))
