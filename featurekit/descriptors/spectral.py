"""Spectral-shape descriptors, computed from the shared STFT.

Every function is pure and frame-major: spectra are ``(n_frames, n_bins)`` arrays, results
``(n_frames,)`` (or ``(n_frames, n_bands)``). Silent frames give finite values (0, or the
value of a flat spectrum where that is the natural limit, as for flatness).
Definitions follow Peeters (2004), "A large set of audio features for sound description";
centroid, bandwidth, roll-off, flatness and zero-crossing rate coincide with librosa's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from featurekit.descriptors.base import Descriptor

if TYPE_CHECKING:
    from featurekit.dsp.analysis import Analysis

__all__ = [
    "DESCRIPTORS", "FAMILY", "compute", "spectral_centroid", "spectral_contrast",
    "spectral_entropy", "spectral_flatness", "spectral_flux", "spectral_moments",
    "spectral_rolloff", "spectral_slope", "zero_crossing_rate",
]

FAMILY = "spectral"
_EPS = 1e-12

DESCRIPTORS = (
    Descriptor("centroid_hz", "spectral centroid: magnitude-weighted mean frequency", "Hz"),
    Descriptor("spread_hz", "spectral spread (bandwidth): magnitude-weighted std of frequency",
               "Hz"),
    Descriptor("skewness", "spectral skewness: asymmetry of the magnitude distribution", "1"),
    Descriptor("kurtosis", "spectral kurtosis: peakedness of the magnitude distribution "
               "(excess)", "1"),
    Descriptor("rolloff85_hz", "frequency below which 85% of the spectral magnitude lies",
               "Hz"),
    Descriptor("rolloff95_hz", "frequency below which 95% of the spectral magnitude lies",
               "Hz"),
    Descriptor("flatness", "spectral flatness: geometric / arithmetic mean of power", "1"),
    Descriptor("flux", "spectral flux: L2 distance between consecutive L1-normalised magnitude "
               "spectra", "1"),
    Descriptor("entropy", "spectral entropy of the normalised power spectrum, in [0, 1]", "1"),
    Descriptor("slope", "spectral slope: regression slope of the L1-normalised magnitude "
               "over frequency", "1/kHz"),
    Descriptor("zcr", "zero-crossing rate: sign changes per sample", "1/sample"),
    Descriptor("rms", "root-mean-square amplitude of the frame", "full scale"),
    Descriptor("contrast_db", "spectral contrast: peak minus valley level per octave band "
               "(band 0 lies below contrast_fmin_hz)", "dB",
               bands=lambda config: config.contrast_bands + 1, stats=("mean", "std")),
    Descriptor("valley_db", "spectral valley level per octave band", "dB",
               bands=lambda config: config.contrast_bands + 1, stats=("mean", "std")),
)


def _normalise_l1(spectrum: np.ndarray) -> np.ndarray:
    total = spectrum.sum(axis=1, keepdims=True)
    return np.divide(spectrum, total, out=np.zeros_like(spectrum), where=total > _EPS)


def spectral_centroid(magnitude: np.ndarray, *, freqs: np.ndarray) -> np.ndarray:
    """Spectral centroid, Hz.

    Parameters
    ----------
    magnitude : np.ndarray, shape (n_frames, n_bins)
        Magnitude spectrogram.
    freqs : np.ndarray, shape (n_bins,), keyword-only
        Bin frequencies, Hz.

    Returns
    -------
    np.ndarray, shape (n_frames,)
        0 for silent frames.
    """
    return _normalise_l1(magnitude) @ freqs


def spectral_moments(magnitude: np.ndarray, *, freqs: np.ndarray,
                     centroid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spread (Hz), skewness and excess kurtosis of the magnitude distribution over frequency.

    Parameters
    ----------
    magnitude : np.ndarray, shape (n_frames, n_bins)
    freqs : np.ndarray, shape (n_bins,), keyword-only
        Bin frequencies, Hz.
    centroid : np.ndarray, shape (n_frames,), keyword-only
        From :func:`spectral_centroid`.

    Returns
    -------
    spread, skewness, kurtosis : np.ndarray, shape (n_frames,)
        Skewness and kurtosis are 0 where the spread is 0 (silence, a single bin).
    """
    # Raw moments in float64 by one matrix product, then central moments by binomial
    # expansion: in kHz the cancellation costs at most ~8 of float64's 16 digits.
    khz = freqs.astype(np.float64) / 1000.0
    powers = np.stack([np.ones_like(khz), khz, khz**2, khz**3, khz**4], axis=1)
    m0, m1, m2, m3, m4 = (_normalise_l1(magnitude).astype(np.float64) @ powers).T
    c = centroid.astype(np.float64) / 1000.0
    mu2 = np.maximum(m2 - 2 * c * m1 + c**2 * m0, 0.0)
    mu3 = m3 - 3 * c * m2 + 3 * c**2 * m1 - c**3 * m0
    mu4 = m4 - 4 * c * m3 + 6 * c**2 * m2 - 4 * c**3 * m1 + c**4 * m0
    spread = np.sqrt(mu2)
    valid = spread > 1e-9
    safe = np.where(valid, spread, 1.0)
    skewness = np.where(valid, mu3 / safe**3, 0.0)
    kurtosis = np.where(valid, mu4 / safe**4 - 3.0, 0.0)
    return 1000.0 * spread, skewness, kurtosis


def spectral_rolloff(magnitude: np.ndarray, *, freqs: np.ndarray,
                     fraction: float | Sequence[float]) -> np.ndarray:
    """Lowest bin frequency (Hz) at which the cumulative magnitude reaches ``fraction``.

    Parameters
    ----------
    magnitude : np.ndarray, shape (n_frames, n_bins)
    freqs : np.ndarray, shape (n_bins,), keyword-only
    fraction : float or sequence of float, keyword-only
        Share(s) of the total magnitude, in (0, 1); several share one cumulative sum.

    Returns
    -------
    np.ndarray, shape (n_frames,) or (n_frames, len(fraction))
    """
    fractions = np.atleast_1d(np.asarray(fraction, dtype=np.float64))
    if np.any((fractions <= 0) | (fractions >= 1)):
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    cumulative = np.cumsum(magnitude, axis=1)
    thresholds = cumulative[:, -1:] * fractions[None, :]
    # First bin whose cumulative sum reaches each threshold (cumulative is non-decreasing).
    index = np.stack([np.argmax(cumulative >= thresholds[:, [k]], axis=1)
                      for k in range(fractions.size)], axis=1)
    rolloff = freqs[index]
    return rolloff if np.ndim(fraction) else rolloff[:, 0]


def spectral_flatness(power: np.ndarray, *, amin: float = 1e-10) -> np.ndarray:
    """Geometric over arithmetic mean of the power spectrum (Wiener entropy), 0-1.

    Parameters
    ----------
    power : np.ndarray, shape (n_frames, n_bins)
    amin : float, keyword-only
        Power floor; a silent frame is flat (1).
    """
    floored = np.maximum(power, amin)
    return np.exp(np.mean(np.log(floored), axis=1)) / np.mean(floored, axis=1)


def spectral_flux(magnitude: np.ndarray) -> np.ndarray:
    """L2 distance between consecutive L1-normalised magnitude spectra (first frame 0)."""
    normalised = _normalise_l1(magnitude)
    flux = np.zeros(magnitude.shape[0])
    flux[1:] = np.linalg.norm(np.diff(normalised, axis=0), axis=1)
    return flux


def spectral_entropy(power: np.ndarray) -> np.ndarray:
    """Shannon entropy of the normalised power spectrum divided by log(n_bins), 0-1.

    Silent frames give 0.
    """
    p = _normalise_l1(power)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=1) / np.log(power.shape[1])


def spectral_slope(magnitude: np.ndarray, *, freqs: np.ndarray) -> np.ndarray:
    """Least-squares slope of the L1-normalised magnitude against frequency, per kHz."""
    khz = freqs / 1000.0
    centred = khz - khz.mean()
    return (_normalise_l1(magnitude) @ centred) / (centred @ centred)


def spectral_contrast(magnitude: np.ndarray, *, freqs: np.ndarray, fmin: float,
                      n_bands: int, quantile: float = 0.02,
                      amin: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Octave-band spectral contrast and valley level (Jiang et al., 2002), dB.

    Band 0 covers [0, fmin); band k covers [fmin·2^(k-1), fmin·2^k); the last band extends to
    Nyquist. In each band the peak (valley) is the mean power of the top (bottom)
    ``quantile`` share of bins, at least one bin.

    Parameters
    ----------
    magnitude : np.ndarray, shape (n_frames, n_bins)
    freqs : np.ndarray, shape (n_bins,), keyword-only
    fmin : float, keyword-only
        Upper edge of band 0, Hz.
    n_bands : int, keyword-only
        Octave bands above ``fmin``; the output has ``n_bands + 1`` columns.
    quantile : float, keyword-only
        Share of bins averaged for peak and valley.
    amin : float, keyword-only
        Power floor.

    Returns
    -------
    contrast, valley : np.ndarray, shape (n_frames, n_bands + 1)
    """
    edges = np.concatenate([[0.0], fmin * 2.0 ** np.arange(n_bands + 1)])
    edges[-1] = np.inf
    power = magnitude**2
    contrast = np.empty((power.shape[0], n_bands + 1))
    valley = np.empty_like(contrast)
    for band in range(n_bands + 1):  # seven bands of different widths: a loop over bands
        in_band = (freqs >= edges[band]) & (freqs < edges[band + 1])
        block = np.sort(power[:, in_band], axis=1)
        k = max(1, int(round(quantile * block.shape[1])))
        low = 10.0 * np.log10(np.maximum(block[:, :k].mean(axis=1), amin))
        high = 10.0 * np.log10(np.maximum(block[:, -k:].mean(axis=1), amin))
        contrast[:, band] = high - low
        valley[:, band] = low
    return contrast, valley


def zero_crossing_rate(frames: np.ndarray, *, threshold: float = 1e-10) -> np.ndarray:
    """Sign changes per sample in each frame (values within ``threshold`` of 0 count as 0,
    and 0 counts as positive).

    Parameters
    ----------
    frames : np.ndarray, shape (n_frames, frame_length)
    """
    signs = np.signbit(np.where(np.abs(frames) <= threshold, 0.0, frames))
    return np.count_nonzero(signs[:, 1:] != signs[:, :-1], axis=1) / frames.shape[1]


def compute(analysis: Analysis) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Frame values of the spectral family (no precomputed clip statistics)."""
    magnitude, freqs = analysis.magnitude, analysis.freqs
    config = analysis.config
    centroid = spectral_centroid(magnitude, freqs=freqs)
    spread, skewness, kurtosis = spectral_moments(magnitude, freqs=freqs, centroid=centroid)
    rolloff = spectral_rolloff(magnitude, freqs=freqs, fraction=(0.85, 0.95))
    contrast, valley = spectral_contrast(magnitude, freqs=freqs, fmin=config.contrast_fmin_hz,
                                         n_bands=config.contrast_bands)
    frames = {
        "centroid_hz": centroid,
        "spread_hz": spread,
        "skewness": skewness,
        "kurtosis": kurtosis,
        "rolloff85_hz": rolloff[:, 0],
        "rolloff95_hz": rolloff[:, 1],
        "flatness": spectral_flatness(analysis.power),
        "flux": spectral_flux(magnitude),
        "entropy": spectral_entropy(analysis.power),
        "slope": spectral_slope(magnitude, freqs=freqs),
        "zcr": zero_crossing_rate(analysis.frames),
        "rms": analysis.rms,
        "contrast_db": contrast,
        "valley_db": valley,
    }
    return frames, {}
