"""HEAR 2021 API (https://hearbenchmark.com) for featurekit's pretrained models.

Point the HEAR evaluation kit at this module: ``load_model(model_file_path, model_name=...)``,
``get_scene_embeddings(audio, model)`` and ``get_timestamp_embeddings(audio, model)``.

* Scene embeddings are the clip embeddings of :mod:`featurekit.neural.embedding` (long clips
  averaged over 10-s windows).
* Timestamp embeddings come every ``model.timestamp_hop_ms``: at most ``hop_ms`` (a
  :func:`load_model` keyword, default 50 ms, the most HEAR suggests for event tasks). A
  model's neuralogram (last feature map averaged over frequency) has one row per
  ``frame_period_s`` (320 ms for EfficientAT and Cnn14, 160 ms for Cnn10 and Cnn6), so the
  whole sound is run ``K = ceil(frame_period / hop_ms)`` times, delayed by 0, 1, ..., K - 1
  hops (zeros in front), and the rows are interleaved: the hop is ``frame_period / K``
  (45.7 ms for 320-ms models, 40 ms for 160-ms models at the default), each row is computed
  from the audio (not interpolated), and K passes cost K times one pass. Each row is stamped
  with the centre of the span it summarises; timestamps are regular, the first at or before
  one hop, the last within one hop of the end and never past it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from featurekit.errors import ConfigError
from featurekit.neural.base import AudioTagger
from featurekit.neural.embedding import (
    MIN_DURATION_S,
    ClipEmbedding,
    embed_waveforms,
    float32_precision,
)

__all__ = ["DEFAULT_HOP_MS", "HearModel", "get_scene_embeddings", "get_timestamp_embeddings",
           "load_model"]

#: Largest spacing of timestamp embeddings by default, milliseconds.
DEFAULT_HOP_MS = 50.0


class HearModel(nn.Module):
    """A featurekit model with the attributes HEAR asks for.

    Parameters
    ----------
    tagger : featurekit.neural.AudioTagger
    batch_size : int, keyword-only
        Sounds per forward pass.
    hop_ms : float, keyword-only
        Largest spacing of timestamp embeddings, milliseconds (module docstring).

    Attributes
    ----------
    sample_rate : int
    scene_embedding_size, timestamp_embedding_size : int
    timestamp_hop_ms : float
        Spacing of timestamp embeddings: ``frame_period / n_shifts``, at most ``hop_ms``.
    n_shifts : int
        Delayed passes per sound that timestamp embeddings take.
    tagger : featurekit.neural.AudioTagger
    """

    def __init__(self, tagger: AudioTagger, *, batch_size: int = 8,
                 hop_ms: float = DEFAULT_HOP_MS) -> None:
        super().__init__()
        if not hop_ms > 0:
            raise ConfigError(f"hop_ms must be positive, got {hop_ms}")
        self.tagger = tagger
        self.batch_size = batch_size
        self.sample_rate = tagger.sample_rate
        self.scene_embedding_size = tagger.embedding_dim
        # The neuralogram has the channels of the last feature map, which every registered
        # model pools into an embedding of the same size.
        self.timestamp_embedding_size = tagger.embedding_dim
        self.n_shifts = math.ceil(tagger.frame_period_s * 1000 / hop_ms - 1e-9)
        self.timestamp_hop_ms = tagger.frame_period_s * 1000 / self.n_shifts

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.tagger(audio)


def load_model(model_file_path: str = "", model_name: str = "mn04_as", *,
               device: str | None = None, hop_ms: float = DEFAULT_HOP_MS) -> HearModel:
    """Load ``model_name`` with the weights at ``model_file_path`` ("" = registry lookup,
    ``"untrained"`` = random weights); timestamp embeddings at most ``hop_ms`` apart."""
    from featurekit.neural.registry import load_pretrained

    return HearModel(load_pretrained(model_name, model_file_path or None, device=device),
                     hop_ms=hop_ms)


def _checked(audio: torch.Tensor) -> np.ndarray:
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got {tuple(audio.shape)}")
    waveforms = audio.detach().float().cpu().numpy()
    if not np.all(np.isfinite(waveforms)):
        raise ValueError("audio contains NaN or infinite samples")
    return waveforms


def _embed(audio: torch.Tensor, model: HearModel) -> list[ClipEmbedding]:
    waveforms = list(_checked(audio))
    results = []
    for result in embed_waveforms(model.tagger, waveforms, batch_size=model.batch_size):
        if isinstance(result, BaseException):
            raise result
        results.append(result)
    return results


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """(n_sounds, n_samples) at ``model.sample_rate`` → (n_sounds, scene_embedding_size)."""
    results = _embed(audio, model)
    if not results:
        return torch.empty((0, model.scene_embedding_size), device=audio.device)
    return torch.from_numpy(np.stack([r.embedding for r in results])).to(audio.device)


def get_timestamp_embeddings(audio: torch.Tensor,
                             model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sounds, n_samples) → embeddings (n_sounds, n_timestamps, timestamp_embedding_size)
    and timestamps (n_sounds, n_timestamps) in milliseconds, ``model.timestamp_hop_ms``
    apart (module docstring)."""
    waveforms = _checked(audio)
    n_sounds, n_samples = waveforms.shape
    if n_sounds == 0:
        return (torch.empty((0, 0, model.timestamp_embedding_size), device=audio.device),
                torch.empty((0, 0), device=audio.device))
    sr = model.sample_rate
    period = round(model.tagger.frame_period_s * sr)  # samples between neuralogram rows
    # Delays of whole samples: the interleaved grid is regular to within one sample.
    delays = [round(k * period / model.n_shifts) for k in range(model.n_shifts)]
    # Zeros behind the sound so that every pass has rows up to its end (and at least the
    # clip policy's shortest input); rows past the end are dropped below.
    length = delays[-1] + max(n_samples + period, round(MIN_DURATION_S * sr))
    times, rows = [], []
    for delay in delays:
        padded = np.zeros((n_sounds, length), dtype=np.float32)
        padded[:, delay:delay + n_samples] = waveforms
        frames = _neuralogram(model, padded)
        times.append((np.arange(frames.shape[1]) + 0.5) * period - delay)
        rows.append(frames)
    times_samples, frames = np.concatenate(times), np.concatenate(rows, axis=1)
    keep = (times_samples >= 0) & (times_samples <= n_samples)
    order = np.argsort(times_samples[keep], kind="stable")
    timestamps = np.broadcast_to(times_samples[keep][order] * 1000.0 / sr,
                                 (n_sounds, int(keep.sum())))
    embeddings = torch.from_numpy(np.ascontiguousarray(frames[:, keep][:, order]))
    return (embeddings.to(audio.device),
            torch.from_numpy(np.array(timestamps, dtype=np.float32)).to(audio.device))


def _neuralogram(model: HearModel, waveforms: np.ndarray) -> np.ndarray:
    """Neuralogram rows of equal-length sounds, (n_sounds, n_rows, channels), float32."""
    device = next(model.tagger.parameters()).device
    batches = []
    with torch.inference_mode(), float32_precision(allow_tf32=False):
        for first in range(0, waveforms.shape[0], model.batch_size):
            batch = torch.from_numpy(waveforms[first:first + model.batch_size]).to(device)
            batches.append(model.tagger(batch)["frames"].float().cpu().numpy())
    return np.concatenate(batches)
