"""The ``neural.<model>`` store branch: frozen embeddings (and optional AudioSet tags)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from featurekit._util.versions import package_versions
from featurekit.errors import ConfigError
from featurekit.io.audio import load_audio_with_info, prepare_waveform
from featurekit.neural.base import AudioTagger
from featurekit.neural.embedding import (
    MIN_DURATION_S,
    WINDOW_S,
    ClipEmbedding,
    embed_waveforms,
    embedding_names,
    indexed_names,
    torch_threads,
)
from featurekit.neural.registry import (
    UNTRAINED,
    load_pretrained,
    model_info,
    resolve_weights,
    weights_checksums,
)
from featurekit.store.records import ClipResult

__all__ = ["NeuralBranch"]


class NeuralBranch:
    """Computes branch ``neural.<model>`` of a feature store with a frozen pretrained model.

    Parameters
    ----------
    model : str
        Registered model name (``mn04_as``, ``cnn14`` …).
    weights : path-like or ``"untrained"``, optional
        Checkpoint file; default: resolved by :func:`featurekit.neural.resolve_weights`.
        ``"untrained"`` (tests and timing only) is recorded in the provenance.
    n_threads : int, keyword-only
        torch intra-op threads while computing.
    batch_size : int, keyword-only
        Windows per forward pass.
    tags : bool, keyword-only
        Also store the 527 AudioSet tag probabilities.
    device : str, keyword-only, optional
        Default CUDA when available, else CPU.
    offline : bool, keyword-only, optional
        Never download weights.

    Notes
    -----
    Files are loaded at the model rate (soxr HQ resampling) and follow the clip policy of
    :mod:`featurekit.neural.embedding`. The weights are resolved (and their checksum taken)
    when the branch is created, so missing weights fail before a run starts; the model
    itself is loaded on first use and not pickled.
    """

    process_parallel = False

    def __init__(self, model: str = "mn04_as",
                 weights: str | os.PathLike[str] | None = None, *, n_threads: int = 1,
                 batch_size: int = 16, tags: bool = False, device: str | None = None,
                 offline: bool | None = None) -> None:
        info = model_info(model)
        if n_threads < 1 or batch_size < 1:
            raise ConfigError("n_threads and batch_size must be >= 1")
        self.model, self.n_threads, self.batch_size, self.tags = model, n_threads, batch_size, tags
        self.device = device
        self.branch = f"neural.{model}"
        self.untrained = isinstance(weights, str) and weights == UNTRAINED
        if self.untrained:
            self.weights_path, self.weights_sha256 = None, None
        else:
            path = resolve_weights(model, weights, offline=offline)
            self.weights_path, self.weights_sha256 = str(path), weights_checksums(path)[0]
        self._info = info
        self._tagger: AudioTagger | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tagger": None}

    @property
    def tagger(self) -> AudioTagger:
        """The loaded model (loaded on first access)."""
        if self._tagger is None:
            weights = UNTRAINED if self.untrained else self.weights_path
            self._tagger = load_pretrained(self.model, weights, device=self.device,
                                           offline=True)
        return self._tagger

    @property
    def feature_names(self) -> list[str]:
        n_tags = self._tagger.n_classes if self._tagger is not None else 527
        return embedding_names(self.model, self._info.embedding_dim,
                               tags=n_tags if self.tags else 0)

    def _config(self) -> dict[str, Any]:
        return {"model": self.model, "weights_file": (None if self.weights_path is None
                                                      else os.path.basename(self.weights_path)),
                "weights_sha256": self.weights_sha256, "untrained": self.untrained,
                "sample_rate": self._info.sample_rate,
                "embedding_dim": self._info.embedding_dim, "tags": self.tags,
                "min_duration_s": MIN_DURATION_S, "window_s": WINDOW_S}

    def config_hash(self) -> str:
        text = json.dumps(self._config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def provenance(self) -> Mapping[str, Any]:
        return {"config": self._config(), "config_hash": self.config_hash(),
                "versions": package_versions("featurekit", "numpy", "torch", "soxr"),
                "untrained": self.untrained, "license": self._info.license,
                "citation": self._info.citation, "url": self._info.url}

    def compute_batch(self, paths: Sequence[str | os.PathLike[str] | np.ndarray], *,
                      frames: bool = False,
                      sr: int | None = None) -> list[ClipResult | BaseException]:
        """Embeddings of each file (or array at ``sr`` Hz), or the exception it raised, in
        order."""
        loaded: list[tuple[np.ndarray, tuple[str, ...]] | BaseException] = []
        min_samples = round(MIN_DURATION_S * self._info.sample_rate)
        for path in paths:
            try:
                if isinstance(path, np.ndarray):
                    if sr is None:
                        raise ConfigError("arrays need their sample rate (sr)")
                    y, info = prepare_waveform(path, sr, target_sr=self._info.sample_rate,
                                               min_samples=min_samples)
                else:
                    y, info = load_audio_with_info(path, self._info.sample_rate,
                                                   min_samples=min_samples)
                loaded.append((y, info.notes))
            except Exception as exc:  # recorded per clip by the runner
                loaded.append(exc)
        good = [item for item in loaded if not isinstance(item, BaseException)]
        with torch_threads(self.n_threads):
            embedded = iter(embed_waveforms(self.tagger, [y for y, _ in good],
                                            batch_size=self.batch_size))
        results: list[ClipResult | BaseException] = []
        for item in loaded:
            if isinstance(item, BaseException):
                results.append(item)
                continue
            clip = next(embedded)
            results.append(clip if isinstance(clip, BaseException)
                           else self._clip_result(clip, item[1], frames=frames))
        return results

    def _clip_result(self, clip: ClipEmbedding, notes: tuple[str, ...], *,
                     frames: bool) -> ClipResult:
        values = np.concatenate([clip.embedding, clip.tags]) if self.tags else clip.embedding
        if clip.n_windows > 1:
            notes = (*notes, f"averaged over {clip.n_windows} windows of {WINDOW_S:g} s")
        table = None
        if frames:
            table = pd.DataFrame(clip.frames, columns=indexed_names(f"{self.branch}.neuralogram",
                                                               clip.frames.shape[1]))
            table.insert(0, "time_s", clip.frame_times_s)
        return ClipResult(values=values.astype(np.float32, copy=False), notes=notes,
                          frames=table)
