"""Turning clips of any length into clip-level embeddings with a frozen model.

Clip policy (the same for the store branch, :class:`PretrainedEmbedder` and the HEAR API):

* clips shorter than ``min_duration_s`` (1 s) are zero-padded at the end to that length;
* clips up to ``window_s`` are processed whole: the model's own input length where it
  declares one (:attr:`AudioTagger.window_s <featurekit.neural.base.AudioTagger.window_s>`,
  :func:`model_window_s`), else 10 s (:data:`WINDOW_S`, the AudioSet training length);
* longer clips are cut into ``ceil(duration / window_s)`` windows of ``window_s``, evenly
  spaced from the start to the end (overlapping a little), and the clip's embedding and tag
  probabilities are the means over windows. Its neuralogram is the windows' rows in time
  order, skipping rows that overlap rows already taken.

Only windows of identical length share a batch, so a clip's values never depend on padding
added for other clips. All inference runs under :func:`torch.inference_mode`, in full float32
on CUDA too unless TF32 is asked for (:func:`float32_precision`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from featurekit.errors import FeaturekitError
from featurekit.neural.base import AudioTagger
from featurekit.neural.decoding import LoadedClip, Source, load_clips
from featurekit.neural.registry import default_batch_size

__all__ = ["LOOK_AHEAD_BATCHES", "MIN_DURATION_S", "WINDOW_S", "ClipEmbedding", "embed_waveforms",
           "float32_precision", "load_for", "model_window_s", "torch_threads",
           "window_starts"]

#: Shorter clips are zero-padded to this length, seconds.
MIN_DURATION_S = 1.0
#: Longer clips are averaged over windows of this length, seconds, unless the model declares
#: its own (:func:`model_window_s`).
WINDOW_S = 10.0
#: Batches of clips decoded ahead of the network (:func:`load_for`): enough to keep a GPU fed
#: through a slow clip, few enough that a dataset is never in memory at once.
LOOK_AHEAD_BATCHES = 4


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


def model_window_s(model: AudioTagger) -> float:
    """Window length of ``model``, seconds: its ``window_s`` where it declares one (an optional
    attribute: a plain module may follow the interface without it), else :data:`WINDOW_S`."""
    window_s = getattr(model, "window_s", None)
    return WINDOW_S if window_s is None else float(window_s)


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


@contextmanager
def float32_precision(allow_tf32: bool) -> Iterator[None]:
    """Run the block with TF32 allowed, or not, in CUDA float32 convolutions and matrix
    products (it changes nothing on the CPU).

    TF32 tensor cores round the inputs of cuDNN convolutions and cuBLAS products to 10-bit
    mantissas: faster on Ampere and later GPUs, but embeddings then differ from the CPU's by up
    to about 1e-2, where full float32 agrees to about 1e-6. torch allows it for convolutions by
    default; the previous flags are restored on exit.
    """
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous


def _model_device(model: AudioTagger) -> torch.device:
    return next(model.parameters()).device


def load_for(model: AudioTagger, sources: Iterable[Source], *, n_jobs: int = 1,
             batch_size: int | None = None,
             sr: int | None = None) -> Iterator[LoadedClip | Exception]:
    """The clips of ``sources`` as ``model`` should consume them (padded to
    :data:`MIN_DURATION_S`, at its rate), decoded by ``n_jobs`` threads at most
    :data:`LOOK_AHEAD_BATCHES` batches ahead.

    On a GPU the threads go on decoding while the GPU computes; on the CPU they decode the
    next batches on every core, then wait while the network's torch threads use the cores
    (:func:`~featurekit.neural.decoding.load_clips`, ``overlap``).

    Parameters
    ----------
    model : AudioTagger
    sources : iterable of path-like or np.ndarray
        Read lazily (audio files, or arrays at ``sr`` Hz).
    n_jobs : int, keyword-only
        Decoding threads (-1: all cores; 1: in the calling thread).
    batch_size : int, keyword-only, optional
        The forward passes' batch size; default
        :func:`~featurekit.neural.registry.default_batch_size` of the model's device.
    sr : int, keyword-only, optional
        Rate of array sources, Hz.

    Returns
    -------
    iterator
        Per source, in order, :func:`~featurekit.neural.decoding.load_clip`'s result.
    """
    device = _model_device(model)
    rate = model.sample_rate
    ahead = LOOK_AHEAD_BATCHES * (batch_size or default_batch_size(device))
    return load_clips(sources, rate, min_samples=round(MIN_DURATION_S * rate), sr=sr,
                      n_jobs=n_jobs, ahead=ahead, overlap=device.type == "cuda")


def _pad_to(y: np.ndarray, n_samples: int) -> np.ndarray:
    if y.shape[0] >= n_samples:
        return y
    return np.concatenate([y, np.zeros(n_samples - y.shape[0], dtype=np.float32)])


def _on_device(windows: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Equal-length windows as one (batch, samples) tensor on ``device``."""
    batch = torch.from_numpy(np.stack(windows))
    if device.type == "cuda":
        # From page-locked memory the copy runs asynchronously: the forward pass is queued
        # behind it at once instead of after a copy through a staging buffer.
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


#: One window waiting for its forward pass: (clip index, window index, samples).
_Window = tuple[int, int, np.ndarray]
#: One window's start sample, and its model outputs or the exception they raised.
_Output = tuple[int, dict[str, np.ndarray] | BaseException]
#: What a window holds until its batch runs (every batch runs before the results are made).
_NOT_RUN = RuntimeError("internal error: this window's batch never ran")


def embed_waveforms(model: AudioTagger, waveforms: Iterable[np.ndarray | BaseException], *,
                    batch_size: int | None = None, window_s: float | None = None,
                    min_duration_s: float = MIN_DURATION_S, allow_tf32: bool = False,
                    ) -> list[ClipEmbedding | BaseException]:
    """Embed mono waveforms already at ``model.sample_rate``.

    Parameters
    ----------
    model : AudioTagger
        Eval-mode model (from :func:`featurekit.neural.load_pretrained`).
    waveforms : iterable of np.ndarray, float32, shape (samples,), or exceptions
        Finite mono signals at the model's rate, consumed one at a time: a batch runs as soon
        as it is full, so clips can be decoded as the network asks for them
        (:func:`load_for`). An exception in place of a clip
        (it could not be loaded) is passed through as that clip's result.
    batch_size : int, keyword-only, optional
        Windows per forward pass; default
        :func:`~featurekit.neural.registry.default_batch_size` of the model's device.
    window_s : float, keyword-only, optional
        Clip policy (module docstring); default :func:`model_window_s`.
    min_duration_s : float, keyword-only
        Clip policy (module docstring).
    allow_tf32 : bool, keyword-only
        Let CUDA use TF32 tensor cores (:func:`float32_precision`); the default is full
        float32.

    Returns
    -------
    list
        Per clip, a :class:`ClipEmbedding`, or the exception its loading or computation raised
        (a batch that fails marks each of its clips, so one failure cannot stop a long run).

    Notes
    -----
    Batches are the same as if every clip were known in advance: the windows of each length,
    in clip order, cut into consecutive runs of ``batch_size``, the last run of each length
    when the input ends. So the values depend on the clips and the batch size only, not on
    how fast the input arrives.
    """
    device = _model_device(model)
    if batch_size is None:
        batch_size = default_batch_size(device)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sr = model.sample_rate
    if window_s is None:
        window_s = model_window_s(model)
    window = round(window_s * sr)
    min_samples = round(min_duration_s * sr)
    if not 0 < min_samples <= window:
        raise ValueError(f"need 0 < min_duration_s <= window_s, got {min_duration_s}, "
                         f"{window_s}")
    # Per clip: the exception it came as, or its windows' outputs, filled in as their
    # batches run.
    clips: list[BaseException | list[_Output]] = []
    waiting: dict[int, list[_Window]] = {}  # window length -> windows not yet run

    def run(batch: list[_Window]) -> None:
        try:
            with torch.inference_mode():
                result = model(_on_device([samples for *_, samples in batch], device))
            arrays = {key: result[key].float().cpu().numpy()
                      for key in ("embedding", "tags", "frames")}
            outputs: list[dict[str, np.ndarray] | BaseException] = [
                {key: value[row] for key, value in arrays.items()} for row in range(len(batch))]
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory
            outputs = [exc] * len(batch)
        for (clip, position, _), output in zip(batch, outputs, strict=True):
            windows = clips[clip]
            assert not isinstance(windows, BaseException)
            windows[position] = (windows[position][0], output)

    with float32_precision(allow_tf32):
        for index, y in enumerate(waveforms):
            if isinstance(y, BaseException):
                clips.append(y)
                continue
            y = _pad_to(np.asarray(y, dtype=np.float32), min_samples)
            starts = window_starts(y.shape[0], window)
            clips.append([(int(start), _NOT_RUN) for start in starts])
            for position, start in enumerate(starts):
                samples = y[start:start + window]
                queue = waiting.setdefault(samples.shape[0], [])
                queue.append((index, position, samples))
                if len(queue) == batch_size:
                    run(waiting.pop(samples.shape[0]))
        for queue in waiting.values():
            run(queue)
    return [clip if isinstance(clip, BaseException)
            else _combine(clip, sr, model.frame_period_s,
                          # Optional (a plain module may follow the interface without it):
                          # where the first row sits in its window, default mid-period.
                          getattr(model, "first_frame_s", None)) for clip in clips]


def _combine(windows: list[_Output], sr: int, frame_period_s: float,
             first_frame_s: float | None) -> ClipEmbedding | BaseException:
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
        first = 0.5 * frame_period_s if first_frame_s is None else first_frame_s
        frame_times = start / sr + first + np.arange(output["frames"].shape[0]) * frame_period_s
        keep = frame_times > last_time + frame_period_s / 2
        times.append(frame_times[keep])
        rows.append(output["frames"][keep])
        if keep.any():
            last_time = frame_times[keep][-1]
    return ClipEmbedding(embedding=embedding.astype(np.float32), tags=tags.astype(np.float32),
                         frame_times_s=np.concatenate(times),
                         frames=np.concatenate(rows).astype(np.float32, copy=False),
                         n_windows=len(windows))
