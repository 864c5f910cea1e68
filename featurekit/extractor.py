"""``FeatureExtractor``: the handcrafted descriptors as a scikit-learn transformer."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from featurekit.computers.handcrafted import AudioSource, extract_clip
from featurekit.config import FAMILIES, FUNCTIONALS, ExtractionConfig
from featurekit.descriptors import feature_names
from featurekit.errors import ConfigError

__all__ = ["FeatureExtractor"]


#: FeatureExtractor parameters that are ExtractionConfig fields under the same name.
_CONFIG_PARAMS = tuple(f.name for f in dataclasses.fields(ExtractionConfig)
                       if f.name not in ("sample_rate",))


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: audio clips → handcrafted descriptors of every family.

    Parameters
    ----------
    sr : int
        Analysis sample rate, Hz; files are resampled to it and arrays must be at it.
    families : tuple of str
        Subset of :data:`featurekit.config.FAMILIES`.
    n_jobs : int
        Parallel worker processes (joblib); results are identical for any value.
    n_fft, hop_length, n_mels, n_mfcc, fmin_hz, fmax_hz, mel_fmax_hz, voicing_threshold,
    n_harmonics, contrast_bands, contrast_fmin_hz, envelope_bands, functionals, max_duration_s
        As in :class:`~featurekit.config.ExtractionConfig`.

    Attributes
    ----------
    config_ : ExtractionConfig
        The validated configuration.
    feature_names_out_ : np.ndarray of str
        Output column names, ``family.descriptor.statistic``.

    Examples
    --------
    >>> from featurekit import FeatureExtractor
    >>> extractor = FeatureExtractor(families=("pitch",))
    >>> X = extractor.fit_transform(["a.wav", "b.flac"])  # doctest: +SKIP
    """

    def __init__(self, sr: int = 22050, families: Sequence[str] = FAMILIES, n_jobs: int = 1,
                 n_fft: int = 2048, hop_length: int = 512, n_mels: int = 64,
                 n_mfcc: int = 20, fmin_hz: float = 65.0, fmax_hz: float = 2093.0,
                 mel_fmax_hz: float | None = None, voicing_threshold: float = 0.5,
                 n_harmonics: int = 10, contrast_bands: int = 6,
                 contrast_fmin_hz: float = 200.0, envelope_bands: int = 6,
                 functionals: Sequence[str] = FUNCTIONALS,
                 max_duration_s: float | None = None) -> None:
        self.sr = sr
        self.families = families
        self.n_jobs = n_jobs
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.n_mfcc = n_mfcc
        self.fmin_hz = fmin_hz
        self.fmax_hz = fmax_hz
        self.mel_fmax_hz = mel_fmax_hz
        self.voicing_threshold = voicing_threshold
        self.n_harmonics = n_harmonics
        self.contrast_bands = contrast_bands
        self.contrast_fmin_hz = contrast_fmin_hz
        self.envelope_bands = envelope_bands
        self.functionals = functionals
        self.max_duration_s = max_duration_s

    def _build_config(self) -> ExtractionConfig:
        params = {name: getattr(self, name) for name in _CONFIG_PARAMS}
        for name in ("families", "functionals"):
            if not isinstance(params[name], str):
                params[name] = tuple(params[name])
        return ExtractionConfig(sample_rate=self.sr, **params)

    def fit(self, X: Any = None, y: Any = None) -> FeatureExtractor:
        """Validate the parameters; nothing is learned from ``X``."""
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, int) or self.n_jobs == 0:
            raise ConfigError(f"n_jobs must be a non-zero integer, got {self.n_jobs!r}")
        self.config_ = self._build_config()
        self.feature_names_out_ = np.asarray(feature_names(self.config_), dtype=object)
        return self

    def _sources(self, X: Any) -> list[AudioSource]:
        if isinstance(X, (str, os.PathLike)):
            raise ConfigError("X must be a sequence of clips (paths or arrays), not one path")
        if isinstance(X, np.ndarray) and X.dtype != object:
            if X.ndim == 1:
                raise ConfigError("X is one 1-D array: pass a list of clips, e.g. [y]")
            if X.ndim != 2:
                raise ConfigError(f"a numeric X must be 2-D (n_clips, n_samples), got {X.shape}")
            return list(X)
        if isinstance(X, pd.DataFrame):
            raise ConfigError("X must be a sequence of paths or arrays, not a DataFrame; pass "
                              "a column, e.g. df['path']")
        try:
            sources = list(X)
        except TypeError as exc:
            raise ConfigError(f"X must be a sequence of paths or arrays, got "
                              f"{type(X).__name__}") from exc
        for i, source in enumerate(sources):
            if not isinstance(source, (str, os.PathLike, np.ndarray, list)):
                raise ConfigError(f"X[{i}] is a {type(source).__name__}; expected a path or "
                                  "a 1-D array")
        return [np.asarray(s) if isinstance(s, list) else s for s in sources]

    def transform(self, X: Any) -> np.ndarray:
        """Features of each clip, ``(n_clips, n_features)`` float32.

        Raises
        ------
        AudioError
            For the first clip that cannot be read (the message names it).
        """
        check_is_fitted(self, "config_")
        sources = self._sources(X)
        if not sources:
            return np.empty((0, len(self.feature_names_out_)), dtype=np.float32)
        n_jobs = joblib.effective_n_jobs(self.n_jobs)
        chunks = np.array_split(np.arange(len(sources)), min(n_jobs, len(sources)))
        config = self.config_
        if len(chunks) == 1:
            rows = _extract_rows(sources, config)
        else:
            with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
                parts = joblib.Parallel(n_jobs=len(chunks))(
                    joblib.delayed(_extract_rows)([sources[i] for i in chunk], config)
                    for chunk in chunks)
            rows = np.concatenate(parts)
        return rows

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names (``family.descriptor.statistic``)."""
        check_is_fitted(self, "config_")
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Clips (paths or waveforms), not a matrix of features: a 2-D array is read as one
        # waveform per row. transform needs fit (it builds config_), so requires_fit stays.
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


def _extract_rows(sources: Sequence[AudioSource], config: ExtractionConfig) -> np.ndarray:
    out = np.empty((len(sources), len(feature_names(config))), dtype=np.float32)
    for i, source in enumerate(sources):
        out[i] = extract_clip(source, config, sr=config.sample_rate).values
    return out
