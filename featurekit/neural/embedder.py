""":class:`PretrainedEmbedder`: frozen pretrained embeddings as a scikit-learn transformer."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from featurekit.errors import ConfigError
from featurekit.names import embedding_names
from featurekit.neural.embedding import (
    embed_waveforms,
    load_for,
    torch_threads,
)

__all__ = ["PretrainedEmbedder"]


class PretrainedEmbedder(TransformerMixin, BaseEstimator):
    """Clip embeddings (and optional AudioSet tags) of a frozen pretrained model.

    Parameters
    ----------
    model : str
        Registered model name (``mn04_as``, ``cnn14`` …, see
        :func:`featurekit.neural.available_models`).
    weights : path-like or ``"untrained"``, optional
        Checkpoint file; default: resolved by :func:`featurekit.neural.resolve_weights`.
    sr : int, optional
        Sample rate of array inputs, Hz (required when transforming arrays).
    tags : bool
        Append the 527 AudioSet tag probabilities.
    batch_size : int, optional
        Windows per forward pass; default
        :func:`~featurekit.neural.registry.default_batch_size` of the device (8 on the CPU,
        64 on CUDA).
    n_jobs : int
        Threads that decode and resample the clips, a few batches ahead of the network (see
        :func:`~featurekit.neural.embedding.load_for`), and the network's torch threads; -1
        for all cores. With 1, clips are decoded in the calling thread.
    device : str, optional
        Default CUDA when available, else CPU.
    allow_tf32 : bool
        Let CUDA use TF32 tensor cores (faster; embeddings differ from full float32 by up to
        about 1e-2). The default is full float32.

    Attributes
    ----------
    model_ : featurekit.neural.AudioTagger
        The loaded model (set by :meth:`fit`; nothing is learned).
    feature_names_out_ : np.ndarray of str
        ``neural.<model>.emb_000`` … (then ``tag_000`` …).

    Notes
    -----
    ``transform`` takes a sequence of audio file paths, or of 1-D arrays at ``sr``, and
    returns one row per clip. Clips follow the policy of :mod:`featurekit.neural.embedding`.

    Examples
    --------
    >>> emb = PretrainedEmbedder("mn04_as").set_output(transform="pandas")  # doctest: +SKIP
    >>> table = emb.fit_transform(["dog.wav", "siren.wav"])                  # doctest: +SKIP
    """

    def __init__(self, model: str = "mn04_as", weights: str | os.PathLike[str] | None = None,
                 *, sr: int | None = None, tags: bool = False, batch_size: int | None = None,
                 n_jobs: int = 1, device: str | None = None, allow_tf32: bool = False) -> None:
        self.model = model
        self.weights = weights
        self.sr = sr
        self.tags = tags
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.device = device
        self.allow_tf32 = allow_tf32

    def fit(self, X: Any = None, y: Any = None) -> PretrainedEmbedder:
        """Load the model; ``X`` and ``y`` are ignored (nothing is learned)."""
        from featurekit.neural.registry import load_pretrained

        if self.batch_size is not None and (not isinstance(self.batch_size, int)
                                            or self.batch_size < 1):
            raise ConfigError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if not isinstance(self.n_jobs, int) or self.n_jobs == 0:
            raise ConfigError(f"n_jobs must be a non-zero int (-1: all cores), got "
                              f"{self.n_jobs!r}")
        self.model_ = load_pretrained(self.model, self.weights, device=self.device)
        names = embedding_names(self.model, self.model_.embedding_dim,
                                tags=self.model_.n_classes if self.tags else 0)
        self.feature_names_out_ = np.asarray(names, dtype=object)
        return self

    def _waveforms(self, X: Any) -> Iterator[np.ndarray]:
        """The clips at the model's rate, loaded by ``n_jobs`` threads; raises the first
        clip's error as soon as it is met."""
        if isinstance(X, (str, os.PathLike)):
            raise TypeError("X must be a sequence of clips (paths or 1-D arrays), "
                            "not a single path")
        if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype != object:
            clips: Sequence[Any] = list(X)
        elif hasattr(X, "to_numpy") and getattr(X, "ndim", 1) == 1:
            clips = list(X.to_numpy())
        else:
            clips = list(X)
        clips = [clip if isinstance(clip, (str, os.PathLike)) else np.asarray(clip)
                 for clip in clips]
        if self.sr is None and any(isinstance(clip, np.ndarray) for clip in clips):
            raise ConfigError("array inputs need the sample rate: set sr=<Hz>")
        for loaded in load_for(self.model_, clips, n_jobs=self.n_jobs,
                               batch_size=self.batch_size, sr=self.sr):
            if isinstance(loaded, BaseException):
                raise loaded
            yield loaded[0]

    def transform(self, X: Any) -> np.ndarray:
        """Embeddings, float32 array (n_clips, n_features).

        Raises
        ------
        AudioError
            A file is missing or unreadable, or an array is empty or not finite.
        """
        check_is_fitted(self, "model_")
        waveforms = self._waveforms(X)
        with torch_threads(effective_n_jobs(self.n_jobs)):
            results = embed_waveforms(self.model_, waveforms, batch_size=self.batch_size,
                                      allow_tf32=self.allow_tf32)
        rows = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            rows.append(np.concatenate([result.embedding, result.tags]) if self.tags
                        else result.embedding)
        width = len(self.feature_names_out_)
        return np.stack(rows) if rows else np.empty((0, width), dtype=np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names (``input_features`` is ignored: inputs are clips)."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Clips (paths or waveforms), not a matrix of features: a 2-D array is read as one
        # waveform per row.
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
