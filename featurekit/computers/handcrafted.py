"""Handcrafted features of one clip, and the branch that runs them over a dataset.

- :func:`extract_clip` is the single code path from a file or an array to features.
- :func:`frame_descriptors` gives the same clip's frame-level table.
- :class:`HandcraftedBranch` wraps :func:`extract_clip` as a
  :class:`~featurekit.computers.base.BranchComputer` for
  :func:`featurekit.computers.runner.run_branch` (store
  branch ``handcrafted``).

The scikit-learn wrapper lives in :mod:`featurekit.extractor`; this module does not import
scikit-learn, so extraction workers start quickly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import ThreadpoolController

from featurekit._util.versions import package_versions
from featurekit.config import DESCRIPTOR_VERSION, ExtractionConfig
from featurekit.descriptors import catalog, clip_vector, feature_names, frame_matrix, frame_names
from featurekit.dsp.analysis import Analysis
from featurekit.errors import AudioError, ConfigError
from featurekit.io.audio import SILENCE_NOTE, AudioInfo, load_audio_with_info, prepare_waveform
from featurekit.store.records import ClipResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AudioSource", "HandcraftedBranch", "SilentAudio", "extract_clip", "feature_catalog",
           "frame_descriptors"]


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
    import pandas as pd  # only when tables are asked for: extraction workers start faster

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
    import pandas as pd

    return pd.DataFrame(catalog(config or ExtractionConfig()))


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
                "descriptor_version": DESCRIPTOR_VERSION,
                "versions": package_versions("featurekit", "numpy", "scipy", "soxr",
                                             "soundfile"), "untrained": False}

    def compute_batch(self, paths: Sequence[AudioSource], *, frames: bool = False,
                      sr: int | None = None) -> list[ClipResult | BaseException]:
        """Features of each file (or array at ``sr`` Hz), or the exception it raised."""
        results: list[ClipResult | BaseException] = []
        for path in paths:
            try:
                result = extract_clip(path, self.config, sr=sr, frames=frames)
                if self.skip_silent and SILENCE_NOTE in result.notes:
                    raise SilentAudio(f"{path}: {SILENCE_NOTE}")
                results.append(result)
            except Exception as exc:  # one bad clip must never fail its whole batch
                results.append(exc)
        return results
