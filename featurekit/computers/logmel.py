"""The ``logmel`` store branch: the log-mel spectrogram frames the end-to-end stream learns from.

An end-to-end network trained on the task (:mod:`featurekit.learn.torch.e2e`) reads the spectrogram
itself, not clip-level descriptors, so the branch is its frames: one row per 20 ms frame of 64
log-mel bands (dB re 1, floored 80 dB below the clip's loudest bin), at 16 kHz, computed with
the same :class:`~featurekit.dsp.analysis.Analysis` (one STFT) as the handcrafted descriptors. Its
only clip-level column is the clip's duration. Storing the frames makes them resumable and
shared by every benchmark of the dataset, like any other branch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from featurekit._util.versions import package_versions
from featurekit.config import ExtractionConfig
from featurekit.dsp.analysis import Analysis
from featurekit.io.audio import load_audio_with_info
from featurekit.names import LOGMEL_BRANCH
from featurekit.store.records import ClipResult

__all__ = ["LOGMEL_BRANCH", "LogMelBranch", "logmel_frame_names"]

#: Branch format version: bumped when the frames change for the same parameters.
LOGMEL_VERSION = 1


def logmel_frame_names(n_mels: int) -> list[str]:
    """Frame columns ``logmel.band_00`` … in band order (low to high frequency)."""
    width = max(2, len(str(n_mels - 1)))
    return [f"{LOGMEL_BRANCH}.band_{band:0{width}d}" for band in range(n_mels)]


class LogMelBranch:
    """Computes the ``logmel`` branch: log-mel frames of each clip (and its duration).

    Parameters
    ----------
    sample_rate : int, keyword-only
        Analysis rate, Hz.
    n_fft : int, keyword-only
        STFT size, samples (64 ms at 16 kHz).
    hop_length : int, keyword-only
        Frame step, samples (20 ms at 16 kHz).
    n_mels : int, keyword-only
        Mel bands from 0 Hz to the Nyquist frequency.
    max_duration_s : float, keyword-only
        Seconds read from each file: longer clips are truncated (with a note), which bounds
        the memory of the network's input.
    """

    branch = LOGMEL_BRANCH
    process_parallel = True

    def __init__(self, *, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 320,
                 n_mels: int = 64, max_duration_s: float = 10.0) -> None:
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.max_duration_s = max_duration_s
        self.analysis_config = ExtractionConfig(sample_rate=sample_rate, n_fft=n_fft,
                                                hop_length=hop_length, n_mels=n_mels,
                                                max_duration_s=max_duration_s)

    @property
    def feature_names(self) -> list[str]:
        return [f"{LOGMEL_BRANCH}.duration_s"]

    def _config(self) -> dict[str, Any]:
        return {"version": LOGMEL_VERSION, "sample_rate": self.sample_rate,
                "n_fft": self.n_fft, "hop_length": self.hop_length, "n_mels": self.n_mels,
                "max_duration_s": self.max_duration_s}

    def config_hash(self) -> str:
        text = json.dumps(self._config(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def provenance(self) -> Mapping[str, Any]:
        return {"config": self._config(), "config_hash": self.config_hash(),
                "versions": package_versions("featurekit", "numpy", "scipy", "soxr",
                                             "soundfile"), "untrained": False}

    def compute_batch(self, paths: Sequence[str], *,
                      frames: bool = False) -> list[ClipResult | BaseException]:
        """Each clip's duration and (with ``frames``) its log-mel frames; an exception in place
        of a clip that cannot be read."""
        import pandas as pd

        names = logmel_frame_names(self.n_mels)
        results: list[ClipResult | BaseException] = []
        for path in paths:
            try:
                y, info = load_audio_with_info(path, self.sample_rate,
                                               max_duration=self.max_duration_s,
                                               min_samples=self.n_fft)
                duration = np.float32(y.size / self.sample_rate)
                table = None
                if frames:
                    analysis = Analysis(y, self.analysis_config)
                    table = pd.DataFrame(analysis.log_mel.astype(np.float32), columns=names)
                    table.insert(0, "time_s", analysis.times.astype(np.float32))
                results.append(ClipResult(np.array([duration], dtype=np.float32),
                                          info.notes, table))
            except Exception as exc:  # one bad clip must never fail its whole batch
                results.append(exc)
        return results
