"""HEAR 2021 API (https://hearbenchmark.com) for featurekit's pretrained models.

Point the HEAR evaluation kit at this module: ``load_model(model_file_path, model_name=...)``,
``get_scene_embeddings(audio, model)`` and ``get_timestamp_embeddings(audio, model)``.

* Scene embeddings are the clip embeddings of :mod:`featurekit.neural.embedding` (long clips
  averaged over 10-s windows).
* Timestamp embeddings come every ``model.timestamp_hop_ms``. A model's neuralogram (last
  feature map averaged over frequency) has one row per ``frame_period_s`` (320 ms for
  EfficientAT and Cnn14, 160 ms for Cnn10 and Cnn6), so the whole sound is run ``K`` times,
  delayed by 0, 1, ..., K - 1 hops (zeros in front), and the rows are interleaved: each row
  is computed from the audio (not interpolated), and K passes cost K times one pass. The hop
  is ``frame_period / K`` for the smallest ``K`` that makes it at most ``hop_ms`` (a
  :func:`load_model` keyword, default 50 ms, the most HEAR suggests for event tasks) and a
  whole number of both samples and milliseconds: 40 ms (1280 samples at 32 kHz) by default
  for every registered model. Whole samples keep every row exactly one hop from the next in
  the audio; whole milliseconds keep the float32 timestamps an exact regular grid (up to
  2**24 ms, 4.6 h; the HEAR validator allows 1e-3 ms of irregularity).
* Each row is stamped with the centre of the span of audio it summarises, as
  :class:`~featurekit.neural.embedding.ClipEmbedding` stamps its neuralogram rows: row ``i``
  of a pass summarises samples ``[i, i + 1) * frame_period`` of that pass's input. Timestamps
  are ``t0 + j * hop`` (``t0`` the first centre at or after 0), the last at or before the
  end of the sound.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from featurekit.errors import ConfigError, FeaturekitError
from featurekit.neural.base import AudioTagger
from featurekit.neural.embedding import (
    MIN_DURATION_S,
    ClipEmbedding,
    embed_waveforms,
    float32_precision,
)

__all__ = ["DEFAULT_HOP_MS", "HearModel", "get_scene_embeddings", "get_timestamp_embeddings",
           "load_model", "timestamp_hop"]

#: Largest spacing of timestamp embeddings by default, milliseconds.
DEFAULT_HOP_MS = 50.0


def timestamp_hop(period_samples: int, sample_rate: int, max_hop_ms: float) -> int:
    """Hop of timestamp embeddings, samples: the largest ``period_samples / K`` (``K`` whole)
    that is at most ``max_hop_ms`` and a whole number of samples and of milliseconds.

    Raises
    ------
    ConfigError
        ``max_hop_ms`` is not positive, or no such hop exists.
    """
    if not max_hop_ms > 0:
        raise ConfigError(f"hop_ms must be positive, got {max_hop_ms}")
    # Exact in integers: a hop of h samples is h * 1000 / sample_rate milliseconds.
    first = max(1, math.ceil(period_samples * 1000 / (sample_rate * max_hop_ms) - 1e-9))
    for n_shifts in range(first, period_samples + 1):
        hop, rest = divmod(period_samples, n_shifts)
        if rest == 0 and hop * 1000 % sample_rate == 0:
            return hop
    raise ConfigError(f"no hop of at most {max_hop_ms} ms divides the {period_samples}-sample "
                      f"frame period into whole samples and milliseconds at {sample_rate} Hz")


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
        Spacing of timestamp embeddings, a whole number of milliseconds (and of samples),
        at most ``hop_ms``.
    hop_samples : int
        The same spacing in samples.
    n_shifts : int
        Delayed passes per sound that timestamp embeddings take: ``frame_period / hop``.
    tagger : featurekit.neural.AudioTagger
    """

    def __init__(self, tagger: AudioTagger, *, batch_size: int = 8,
                 hop_ms: float = DEFAULT_HOP_MS) -> None:
        super().__init__()
        self.tagger = tagger
        self.batch_size = batch_size
        self.sample_rate = tagger.sample_rate
        self.scene_embedding_size = tagger.embedding_dim
        # The neuralogram has the channels of the last feature map, which every registered
        # model pools into an embedding of the same size.
        self.timestamp_embedding_size = tagger.embedding_dim
        period = round(tagger.frame_period_s * tagger.sample_rate)
        self.hop_samples = timestamp_hop(period, tagger.sample_rate, hop_ms)
        self.n_shifts = period // self.hop_samples
        self.timestamp_hop_ms = self.hop_samples * 1000 / tagger.sample_rate

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
    and timestamps (n_sounds, n_timestamps), float32 milliseconds: the centres of the rows'
    spans, exactly ``model.timestamp_hop_ms`` apart (module docstring)."""
    waveforms = _checked(audio)
    n_sounds, n_samples = waveforms.shape
    if n_sounds == 0:
        return (torch.empty((0, 0, model.timestamp_embedding_size), device=audio.device),
                torch.empty((0, 0), device=audio.device))
    sr, hop, n_shifts = model.sample_rate, model.hop_samples, model.n_shifts
    period = hop * n_shifts
    # Row i of the pass delayed by k hops is centred on sample (i + 1/2) * period - k * hop
    # of the sound, that is period / 2 + j * hop with j = i * n_shifts - k. Kept: the j of
    # centres in [0, n_samples], in integers (2 * centre is a whole number of samples).
    first = -(n_shifts // 2)
    last = (2 * n_samples - period) // (2 * hop)
    n_rows = max(0, last - first + 1)
    # Zeros behind the sound so that every pass has rows up to its end (and at least the
    # clip policy's shortest input): a pass of L samples has at least L // period rows.
    length = (n_shifts - 1) * hop + max(n_samples + period, round(MIN_DURATION_S * sr))
    # NaN marks a row no pass filled, caught below with non-finite model outputs.
    embeddings = np.full((n_sounds, n_rows, model.timestamp_embedding_size), np.nan,
                         dtype=np.float32)
    for shift in range(n_shifts):
        padded = np.zeros((n_sounds, length), dtype=np.float32)
        padded[:, shift * hop:shift * hop + n_samples] = waveforms
        frames = _neuralogram(model, padded)
        slots = np.arange(frames.shape[1]) * n_shifts - shift - first
        keep = (slots >= 0) & (slots < n_rows)
        embeddings[:, slots[keep]] = frames[:, keep]
    if not np.all(np.isfinite(embeddings)):
        raise FeaturekitError("model produced non-finite (or too few) neuralogram rows")
    # An exact grid in float64; whole-millisecond hops keep it exact and regular in float32.
    start_ms = (period / 2 + first * hop) * 1000 / sr
    grid = start_ms + model.timestamp_hop_ms * np.arange(n_rows, dtype=np.float64)
    timestamps = np.repeat(grid[np.newaxis].astype(np.float32), n_sounds, axis=0)
    return (torch.from_numpy(embeddings).to(audio.device),
            torch.from_numpy(timestamps).to(audio.device))


def _neuralogram(model: HearModel, waveforms: np.ndarray) -> np.ndarray:
    """Neuralogram rows of equal-length sounds, (n_sounds, n_rows, channels), float32."""
    device = next(model.tagger.parameters()).device
    batches = []
    with torch.inference_mode(), float32_precision(allow_tf32=False):
        for first in range(0, waveforms.shape[0], model.batch_size):
            batch = torch.from_numpy(waveforms[first:first + model.batch_size]).to(device)
            batches.append(model.tagger(batch)["frames"].float().cpu().numpy())
    return np.concatenate(batches)
