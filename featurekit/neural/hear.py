"""HEAR 2021 API (https://hearbenchmark.com) for featurekit's pretrained models.

Point the HEAR evaluation kit at this module: ``load_model(model_file_path, model_name=...)``,
``get_scene_embeddings(audio, model)`` and ``get_timestamp_embeddings(audio, model)``.

* Scene embeddings are the clip embeddings of :mod:`featurekit.neural.embedding` (long clips
  averaged over 10-s windows).
* Timestamp embeddings are the rows of the neuralogram (last feature map averaged over
  frequency), one every ``model.frame_period_s`` (0.32 s for EfficientAT and Cnn14, 0.16 s
  for Cnn10 and Cnn6), stamped with the centre of the span they summarise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from featurekit.neural.base import AudioTagger
from featurekit.neural.embedding import ClipEmbedding, embed_waveforms

__all__ = ["HearModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]


class HearModel(nn.Module):
    """A featurekit model with the attributes HEAR asks for.

    Attributes
    ----------
    sample_rate : int
    scene_embedding_size, timestamp_embedding_size : int
    tagger : featurekit.neural.AudioTagger
    """

    def __init__(self, tagger: AudioTagger, *, batch_size: int = 8) -> None:
        super().__init__()
        self.tagger = tagger
        self.batch_size = batch_size
        self.sample_rate = tagger.sample_rate
        self.scene_embedding_size = tagger.embedding_dim
        # The neuralogram has the channels of the last feature map, which every registered
        # model pools into an embedding of the same size.
        self.timestamp_embedding_size = tagger.embedding_dim

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.tagger(audio)


def load_model(model_file_path: str = "", model_name: str = "mn04_as", *,
               device: str | None = None) -> HearModel:
    """Load ``model_name`` with the weights at ``model_file_path`` ("" = registry lookup,
    ``"untrained"`` = random weights)."""
    from featurekit.neural.registry import load_pretrained

    return HearModel(load_pretrained(model_name, model_file_path or None, device=device))


def _embed(audio: torch.Tensor, model: HearModel) -> list[ClipEmbedding]:
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got {tuple(audio.shape)}")
    waveforms = list(audio.detach().float().cpu().numpy())
    if not all(np.all(np.isfinite(y)) for y in waveforms):
        raise ValueError("audio contains NaN or infinite samples")
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
    and timestamps (n_sounds, n_timestamps) in milliseconds."""
    results = _embed(audio, model)
    if not results:
        return (torch.empty((0, 0, model.timestamp_embedding_size), device=audio.device),
                torch.empty((0, 0), device=audio.device))
    embeddings = torch.from_numpy(np.stack([r.frames for r in results]))
    timestamps = torch.from_numpy(np.stack([r.frame_times_s * 1000.0 for r in results]))
    return embeddings.to(audio.device), timestamps.float().to(audio.device)
