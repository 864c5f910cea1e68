"""Handcrafted feature extraction: one clip → one named vector, for Python, scikit-learn and
the dataset runner.

- :func:`extract_clip` is the single code path from a file or an array to features.
- :class:`FeatureExtractor` wraps it as a scikit-learn transformer.
- :class:`HandcraftedBranch` wraps it as a :class:`~featurekit.branch.BranchComputer` for
  :func:`featurekit.runner.run_branch` (store branch ``handcrafted``).
"""

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
from threadpoolctl import ThreadpoolController

from featurekit import __version__
from featurekit.analysis import Analysis
from featurekit.audio import SILENCE_NOTE, AudioInfo, load_audio_with_info, prepare_waveform
from featurekit.branch import ClipResult
from featurekit.config import FAMILIES, FUNCTIONALS, ExtractionConfig
from featurekit.descriptors import catalog, clip_vector, feature_names, frame_matrix, frame_names
from featurekit.errors import AudioError, ConfigError

__all__ = ["FeatureExtractor", "HandcraftedBranch", "SilentAudio", "extract_clip",
           "feature_catalog", "frame_descriptors"]


class SilentAudio(AudioError):
    """A clip is digital silence and the caller asked to skip such clips."""

AudioSource = str | os.PathLike | np.ndarray

# A clip's matrix products are small: BLAS threads only add overhead, and their count would
# change the float32 rounding, so every clip is computed with one BLAS thread.
_THREADPOOLS = ThreadpoolController()


def _single_blas_thread():
    return _THREADPOOLS.limit(limits=1, user_api="blas")


def _waveform(source: AudioSource, config: ExtractionConfig,
              source_sr: int | None) -> tuple[np.ndarray, AudioInfo]:
    # Clips shorter than one analysis window are zero-padded to it (recorded in the notes).
    options = {"max_duration": config.max_duration_s, "min_samples": config.n_fft}
    if isinstance(source, (str, os.PathLike)):
        return load_audio_with_info(source, config.sample_rate, **options)
    if source_sr is None:
        raise ConfigError("arrays need their sample rate (sr)")
    return prepare_waveform(source, source_sr, target_sr=config.sample_rate, **options)


def _frame_table(analysis: Analysis) -> pd.DataFrame:
    table = pd.DataFrame(frame_matrix(analysis), columns=frame_names(analysis.config))
    table.insert(0, "time_s", analysis.times.astype(np.float32))
    return table


def extract_clip(source: AudioSource, config: ExtractionConfig | None = None, *,
                 sr: int | None = None, frames: bool = False) -> ClipResult:
    """Clip-level features (and optionally the frame matrix) of one file or array.

    Parameters
    ----------
    source : path-like or np.ndarray
        Audio file, or a 1-D (or ``(samples, channels)``) array at ``sr`` Hz.
    config : ExtractionConfig, optional
        Defaults to ``ExtractionConfig()``.
    sr : int, keyword-only, optional
        Sample rate of an array ``source``, Hz (ignored for files).
    frames : bool, keyword-only
        Also return the frame-level descriptors.

    Returns
    -------
    ClipResult
        ``values`` in :func:`featurekit.descriptors.feature_names` order; ``notes`` say what the
        loader did (resampled, truncated, zero-padded).

    Raises
    ------
    AudioError
        Unreadable, empty or non-finite audio (the message names the file).
    """
    config = config or ExtractionConfig()
    y, info = _waveform(source, config, sr)
    analysis = Analysis(y, config)
    with _single_blas_thread():
        return ClipResult(values=clip_vector(analysis), notes=info.notes,
                          frames=_frame_table(analysis) if frames else None)


def frame_descriptors(y: np.ndarray, sr: int,
                      config: ExtractionConfig | None = None) -> pd.DataFrame:
    """Frame-level descriptors (LLDs) of a signal as a time-stamped table.

    Parameters
    ----------
    y : np.ndarray, shape (n,) or (n, channels)
        Signal at ``sr`` Hz; resampled to ``config.sample_rate`` when it differs, and
        zero-padded to one analysis window, exactly as :func:`extract_clip` prepares it.
    sr : int
        Sample rate of ``y``, Hz.
    config : ExtractionConfig, optional

    Returns
    -------
    pandas.DataFrame
        One row per frame: ``time_s`` (frame centre, seconds) then ``family.descriptor``
        columns (float32). Voiced-only descriptors are 0 on unvoiced frames.
    """
    config = config or ExtractionConfig()
    waveform, _ = _waveform(y, config, sr)
    with _single_blas_thread():
        return _frame_table(Analysis(waveform, config))


def feature_catalog(config: ExtractionConfig | None = None) -> pd.DataFrame:
    """Every clip-level column with a one-line meaning and unit (columns name, meaning, unit)."""
    return pd.DataFrame(catalog(config or ExtractionConfig()))


def _versions() -> dict[str, str]:
    import librosa
    import scipy

    return {"featurekit": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "librosa": librosa.__version__}


class HandcraftedBranch:
    """Runs :func:`extract_clip` over files for the feature store (branch ``handcrafted``).

    Parameters
    ----------
    config : ExtractionConfig, optional
    skip_silent : bool, keyword-only
        Digitally silent clips (all samples zero) have well-defined features and are stored
        with a note by default; with ``True`` they are recorded as failures instead
        (``SilentAudio``), so a dataset's broken silent files stay out of the store.
    """

    branch = "handcrafted"
    process_parallel = True

    def __init__(self, config: ExtractionConfig | None = None, *,
                 skip_silent: bool = False) -> None:
        self.config = config or ExtractionConfig()
        self.skip_silent = skip_silent

    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.config)

    def config_hash(self) -> str:
        return self.config.config_hash()

    def provenance(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "config_hash": self.config_hash(),
                "versions": _versions(), "untrained": False}

    def compute_batch(self, paths: Sequence[str], *,
                      frames: bool = False) -> list[ClipResult | BaseException]:
        results: list[ClipResult | BaseException] = []
        for path in paths:
            try:
                result = extract_clip(path, self.config, frames=frames)
                if self.skip_silent and SILENCE_NOTE in result.notes:
                    raise SilentAudio(f"{path}: {SILENCE_NOTE}")
                results.append(result)
            except Exception as exc:  # one bad clip must never fail its whole batch
                results.append(exc)
        return results


#: FeatureExtractor parameters that are ExtractionConfig fields under the same name.
_CONFIG_PARAMS = tuple(f.name for f in dataclasses.fields(ExtractionConfig)
                       if f.name not in ("sample_rate",))


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: audio clips → pitch, timbre and spectral descriptors.

    Parameters
    ----------
    sr : int
        Analysis sample rate, Hz; files are resampled to it and arrays must be at it.
    families : tuple of str
        Subset of ``("pitch", "timbre", "spectral")``.
    n_jobs : int
        Parallel worker processes (joblib); results are identical for any value.
    n_fft, hop_length, n_mels, n_mfcc, fmin_hz, fmax_hz, mel_fmax_hz, voicing_threshold,
    n_harmonics, contrast_bands, contrast_fmin_hz, functionals, max_duration_s
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
                 contrast_fmin_hz: float = 200.0, functionals: Sequence[str] = FUNCTIONALS,
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags


def _extract_rows(sources: Sequence[AudioSource], config: ExtractionConfig) -> np.ndarray:
    out = np.empty((len(sources), len(feature_names(config))), dtype=np.float32)
    for i, source in enumerate(sources):
        out[i] = extract_clip(source, config, sr=config.sample_rate).values
    return out
