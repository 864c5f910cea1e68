"""Turning clips of any length into clip-level embeddings with a frozen model.

Clip policy (the same for the store branch, :class:`PretrainedEmbedder` and the HEAR API):

* clips shorter than ``min_duration_s`` (1 s) are zero-padded at the end to that length;
* clips up to ``window_s`` (10 s, the AudioSet training length) are processed whole;
* longer clips are cut into ``ceil(duration / window_s)`` windows of ``window_s``, evenly
  spaced from the start to the end (overlapping a little), and the clip's embedding and tag
  probabilities are the means over windows. Its neuralogram is the windows' rows in time
  order, skipping rows that overlap rows already taken.

Only windows of identical length share a batch, so a clip's values never depend on padding
added for other clips. All inference runs under :func:`torch.inference_mode`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from featurekit.errors import FeaturekitError
from featurekit.neural.base import AudioTagger

__all__ = ["MIN_DURATION_S", "WINDOW_S", "ClipEmbedding", "embed_waveforms", "embedding_names",
           "indexed_names", "torch_threads", "window_starts"]

#: Shorter clips are zero-padded to this length, seconds.
MIN_DURATION_S = 1.0
#: Longer clips are averaged over windows of this length, seconds.
WINDOW_S = 10.0


@dataclass(frozen=True)
class ClipEmbedding:
    """Model outputs for one clip.

    Attributes
    ----------
    embedding : np.ndarray, float32, shape (embedding_dim,)
    tags : np.ndarray, float32, shape (n_classes,)
        Sigmoid probabilities (mean over windows for long clips).
    frame_times_s : np.ndarray, float64, shape (n_frames,)
        Approximate centre time of each neuralogram row, seconds from the clip start.
    frames : np.ndarray, float32, shape (n_frames, channels)
        Neuralogram: the last feature map averaged over frequency.
    n_windows : int
        Number of windows the clip was split into.
    """

    embedding: np.ndarray
    tags: np.ndarray
    frame_times_s: np.ndarray
    frames: np.ndarray
    n_windows: int


def window_starts(n_samples: int, window: int) -> np.ndarray:
    """Start samples of the evenly spaced windows covering a clip.

    Parameters
    ----------
    n_samples : int
        Clip length, samples (> 0).
    window : int
        Window length, samples.

    Returns
    -------
    np.ndarray, int64
        ``[0]`` when the clip fits in one window, else ``ceil(n_samples / window)`` starts
        from 0 to ``n_samples - window``.
    """
    if n_samples <= window:
        return np.zeros(1, dtype=np.int64)
    count = math.ceil(n_samples / window)
    return np.round(np.linspace(0, n_samples - window, count)).astype(np.int64)


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` torch intra-op threads (``None``: leave as is)."""
    if n_threads is None:
        yield
        return
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _model_device(model: AudioTagger) -> torch.device:
    return next(model.parameters()).device


def _pad_to(y: np.ndarray, n_samples: int) -> np.ndarray:
    if y.shape[0] >= n_samples:
        return y
    return np.concatenate([y, np.zeros(n_samples - y.shape[0], dtype=np.float32)])


def embed_waveforms(model: AudioTagger, waveforms: Sequence[np.ndarray], *,
                    batch_size: int = 8, window_s: float = WINDOW_S,
                    min_duration_s: float = MIN_DURATION_S,
                    ) -> list[ClipEmbedding | BaseException]:
    """Embed mono waveforms already at ``model.sample_rate``.

    Parameters
    ----------
    model : AudioTagger
        Eval-mode model (from :func:`featurekit.neural.load_pretrained`).
    waveforms : sequence of np.ndarray, float32, shape (samples,)
        Finite mono signals at the model's rate.
    batch_size : int, keyword-only
        Windows per forward pass.
    window_s, min_duration_s : float, keyword-only
        Clip policy (module docstring).

    Returns
    -------
    list
        Per clip, a :class:`ClipEmbedding`, or the exception its computation raised (a batch
        that fails marks each of its clips, so one failure cannot stop a long run).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sr = model.sample_rate
    window = round(window_s * sr)
    min_samples = round(min_duration_s * sr)
    if not 0 < min_samples <= window:
        raise ValueError(f"need 0 < min_duration_s <= window_s, got {min_duration_s}, "
                         f"{window_s}")
    segments: list[tuple[int, int, np.ndarray]] = []  # (clip index, start sample, samples)
    for index, y in enumerate(waveforms):
        y = _pad_to(np.asarray(y, dtype=np.float32), min_samples)
        for start in window_starts(y.shape[0], window):
            segments.append((index, int(start), y[start:start + window]))
    by_length: dict[int, list[int]] = defaultdict(list)
    for position, (_, _, samples) in enumerate(segments):
        by_length[samples.shape[0]].append(position)
    outputs: list[dict[str, np.ndarray] | BaseException | None] = [None] * len(segments)
    device = _model_device(model)
    for positions in by_length.values():
        for first in range(0, len(positions), batch_size):
            chunk = positions[first:first + batch_size]
            batch = torch.from_numpy(np.stack([segments[p][2] for p in chunk])).to(device)
            try:
                with torch.inference_mode():
                    result = model(batch)
                arrays = {key: result[key].float().cpu().numpy()
                          for key in ("embedding", "tags", "frames")}
            except (RuntimeError, ValueError) as exc:  # e.g. out of memory
                for p in chunk:
                    outputs[p] = exc
                continue
            for row, p in enumerate(chunk):
                outputs[p] = {key: value[row] for key, value in arrays.items()}
    per_clip: list[list[tuple[int, dict[str, np.ndarray] | BaseException]]] = [
        [] for _ in waveforms]
    for (index, start, _), output in zip(segments, outputs, strict=True):
        assert output is not None
        per_clip[index].append((start, output))
    return [_combine(windows, sr, model.frame_period_s) for windows in per_clip]


def _combine(windows: list[tuple[int, dict[str, np.ndarray] | BaseException]], sr: int,
             frame_period_s: float) -> ClipEmbedding | BaseException:
    for _, output in windows:
        if isinstance(output, BaseException):
            return output
    outputs = [output for _, output in windows]
    embedding = np.mean([o["embedding"] for o in outputs], axis=0, dtype=np.float64)
    tags = np.mean([o["tags"] for o in outputs], axis=0, dtype=np.float64)
    if not (np.all(np.isfinite(embedding)) and np.all(np.isfinite(tags))):
        return FeaturekitError("model produced non-finite embedding values")
    times: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    last_time = -np.inf
    for start, output in windows:
        frame_times = start / sr + (np.arange(output["frames"].shape[0]) + 0.5) * frame_period_s
        keep = frame_times > last_time + frame_period_s / 2
        times.append(frame_times[keep])
        rows.append(output["frames"][keep])
        if keep.any():
            last_time = frame_times[keep][-1]
    return ClipEmbedding(embedding=embedding.astype(np.float32), tags=tags.astype(np.float32),
                         frame_times_s=np.concatenate(times),
                         frames=np.concatenate(rows).astype(np.float32, copy=False),
                         n_windows=len(windows))


def indexed_names(prefix: str, count: int) -> list[str]:
    """``prefix_000`` ... ``prefix_<count - 1>``."""
    # At least three digits, more when needed, so that names sort in index order.
    width = max(3, len(str(count - 1)))
    return [f"{prefix}_{i:0{width}d}" for i in range(count)]


def embedding_names(model: str, dim: int, *, tags: int = 0) -> list[str]:
    """Column names ``neural.<model>.emb_000`` … then ``neural.<model>.tag_000`` … (tags are
    AudioSet class indices, see :func:`featurekit.neural.audioset_labels`)."""
    return indexed_names(f"neural.{model}.emb", dim) + indexed_names(f"neural.{model}.tag", tags)
