"""Spectral filterbanks: Slaney-style mel filters and chroma filters, as numpy arrays.

They reproduce librosa's ``filters.mel`` (``htk=False``, ``norm="slaney"``) and
``filters.chroma`` (tuning 0, centre octave 5, octave width 2, L2-normalised, starting at C)
to float rounding (tested), without importing librosa, whose first filter call loads numba
and costs every extraction worker about two seconds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["chroma_filterbank", "hz_to_mel", "mel_filterbank", "mel_to_hz"]

# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_LINEAR_HZ_PER_MEL = 200.0 / 3.0
_LOG_START_HZ = 1000.0
_LOG_START_MEL = _LOG_START_HZ / _LINEAR_HZ_PER_MEL
_MELS_PER_LOG_HZ = 27.0 / np.log(6.4)


def hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney mel value of frequencies in Hz."""
    f = np.asarray(frequencies, dtype=np.float64)
    linear = f / _LINEAR_HZ_PER_MEL
    with np.errstate(divide="ignore"):
        logarithmic = _LOG_START_MEL + np.log(np.maximum(f, 1e-300) / _LOG_START_HZ) \
            * _MELS_PER_LOG_HZ
    return np.where(f >= _LOG_START_HZ, logarithmic, linear)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Frequencies in Hz of Slaney mel values (inverse of :func:`hz_to_mel`)."""
    m = np.asarray(mels, dtype=np.float64)
    return np.where(m >= _LOG_START_MEL,
                    _LOG_START_HZ * np.exp((m - _LOG_START_MEL) / _MELS_PER_LOG_HZ),
                    m * _LINEAR_HZ_PER_MEL)


def mel_filterbank(*, sr: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters with Slaney area normalisation.

    Parameters
    ----------
    sr : int, keyword-only
        Sample rate, Hz.
    n_fft : int, keyword-only
        FFT size; filters cover its ``n_fft // 2 + 1`` bins.
    n_mels : int, keyword-only
        Number of filters.
    fmin, fmax : float, keyword-only
        Lowest and highest edge, Hz (``fmax`` defaults to Nyquist).

    Returns
    -------
    np.ndarray, float32, shape (n_mels, n_fft // 2 + 1)
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    bins = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    distance = edges[:, None] - bins[None, :]
    rising = -distance[:-2] / widths[:-1, None]
    falling = distance[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def chroma_filterbank(*, sr: int, n_fft: int, n_chroma: int = 12,
                      centre_octave: float = 5.0, octave_width: float = 2.0) -> np.ndarray:
    """Chroma filters after Ellis (2007): Gaussian bumps around each pitch class in every
    octave, weighted by a Gaussian over octaves centred on ``centre_octave``; row 0 is C.

    Parameters
    ----------
    sr : int, keyword-only
        Sample rate, Hz.
    n_fft : int, keyword-only
        FFT size; filters cover its ``n_fft // 2 + 1`` bins.
    n_chroma : int, keyword-only
        Pitch classes per octave.
    centre_octave, octave_width : float, keyword-only
        Centre and width of the octave weighting, in octaves counted as ``log2(f / 27.5 Hz)``.

    Returns
    -------
    np.ndarray, float32, shape (n_chroma, n_fft // 2 + 1)
    """
    frequencies = np.arange(1, n_fft) * (sr / n_fft)
    # Position of every FFT bin in pitch-class units (n_chroma per octave) above 27.5 Hz.
    positions = n_chroma * np.log2(frequencies / (440.0 / 16.0))
    positions = np.concatenate([[positions[0] - 1.5 * n_chroma], positions])
    bin_widths = np.concatenate([np.maximum(np.diff(positions), 1.0), [1.0]])
    half = round(n_chroma / 2)
    distance = np.subtract.outer(positions, np.arange(n_chroma, dtype=np.float64)).T
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2.0 * distance / bin_widths[None, :]) ** 2)
    norms = np.sqrt(np.sum(weights**2, axis=0))
    weights /= np.where(norms < np.finfo(np.float64).tiny, 1.0, norms)[None, :]
    octaves = positions / n_chroma
    weights *= np.exp(-0.5 * ((octaves - centre_octave) / octave_width) ** 2)[None, :]
    # Row 0 is A above; rolling by three classes starts the rows at C.
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(weights[:, : n_fft // 2 + 1], dtype=np.float32)
