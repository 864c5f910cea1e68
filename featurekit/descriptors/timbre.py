"""Timbre descriptors: MFCC with deltas, mel-band energies, envelope and harmonic structure.

MFCC and mel energies come from the shared log-mel spectrogram; the harmonic descriptors read
the shared STFT at multiples of the shared pitch track's f0, on voiced frames only
(Peeters, 2004; tristimulus after Pollard & Jansson, 1982).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from featurekit.descriptors.base import Descriptor, apply_functionals

if TYPE_CHECKING:
    from featurekit.dsp.analysis import Analysis

__all__ = ["DESCRIPTORS", "FAMILY", "attack_descriptors", "compute", "delta",
           "harmonic_descriptors"]

FAMILY = "timbre"
VOICED_STATS = ("mean", "std", "p10", "p50", "p90")
#: Cap of ratios expressed in dB, so a missing harmonic series stays finite.
DB_LIMIT = 60.0

DESCRIPTORS = (
    Descriptor("mfcc", "mel-frequency cepstral coefficient (DCT-II of the dB mel spectrum)",
               "dB", bands="n_mfcc"),
    Descriptor("mfcc_delta", "first time derivative of the MFCC (regression over ±2 frames)",
               "dB/frame", bands="n_mfcc", stats=("mean", "std")),
    Descriptor("mfcc_delta2", "second time derivative of the MFCC", "dB/frame²",
               bands="n_mfcc", stats=("mean", "std")),
    Descriptor("melband", "mel-band energy", "dB", bands="n_mels", stats=("mean", "std")),
    Descriptor("hnr_db", "harmonic-to-noise ratio from the YIN aperiodicity at the f0 lag",
               "dB", stats=VOICED_STATS, voiced_only=True),
    Descriptor("inharmonicity", "energy-weighted deviation of partials from multiples of f0, "
               "relative to f0", "1", stats=VOICED_STATS, voiced_only=True),
    Descriptor("tristimulus", "tristimulus: amplitude share of harmonic 1, of 2-4, of 5 and "
               "up", "1", bands=3, stats=VOICED_STATS, voiced_only=True),
    Descriptor("odd_even_ratio_db", "energy of odd harmonics (3, 5, ...) over even harmonics "
               "(2, 4, ...)", "dB", stats=VOICED_STATS, voiced_only=True),
    Descriptor("attack_time_s", "time from 10% to 90% of the RMS envelope's maximum", "s",
               stats=("value",), frame_level=False),
    Descriptor("log_attack_time", "log10 of the attack time (floored at one hop)", "log10 s",
               stats=("value",), frame_level=False),
    Descriptor("temporal_centroid_s", "energy-weighted mean time of the RMS envelope", "s",
               stats=("value",), frame_level=False),
)


def delta(values: np.ndarray, *, width: int = 2) -> np.ndarray:
    """Regression delta over ``±width`` frames, edges repeated (HTK formula).

    Parameters
    ----------
    values : np.ndarray, shape (n_frames, n_columns)
    width : int, keyword-only
        Half-width of the regression window, frames.

    Returns
    -------
    np.ndarray, shape (n_frames, n_columns)
        Works for any number of frames, including one (all zeros).
    """
    padded = np.pad(values, ((width, width), (0, 0)), mode="edge")
    n = values.shape[0]
    weights = np.arange(1, width + 1)
    out = np.zeros_like(values, dtype=np.float64)
    for k in weights:  # width (2) shifted differences, each over all frames at once
        out += k * (padded[width + k : width + k + n] - padded[width - k : width - k + n])
    return out / (2.0 * np.sum(weights**2))


def harmonic_descriptors(magnitude: np.ndarray, f0_hz: np.ndarray, *, sr: int, n_fft: int,
                         n_harmonics: int, aperiodicity: np.ndarray,
                         search_bins: int = 2) -> dict[str, np.ndarray]:
    """Harmonic-structure descriptors of voiced frames.

    Parameters
    ----------
    magnitude : np.ndarray, shape (n_voiced, n_bins)
        Magnitude spectra of voiced frames.
    f0_hz : np.ndarray, shape (n_voiced,)
        Their f0, Hz (> 0).
    sr : int, keyword-only
        Sample rate, Hz.
    n_fft : int, keyword-only
        FFT size of ``magnitude``.
    n_harmonics : int, keyword-only
        Harmonics considered (those above Nyquist count as absent).
    aperiodicity : np.ndarray, shape (n_voiced,), keyword-only
        YIN aperiodicity at the f0 lag, 0-1.
    search_bins : int, keyword-only
        Each partial is the largest bin within ± this many bins of h·f0.

    Returns
    -------
    dict
        ``hnr_db``, ``inharmonicity``, ``odd_even_ratio_db`` of shape ``(n_voiced,)`` and
        ``tristimulus`` of shape ``(n_voiced, 3)``.
    """
    n_bins = magnitude.shape[1]
    bin_hz = sr / n_fft
    order = np.arange(1, n_harmonics + 1)
    expected = f0_hz[:, None] * order[None, :]
    present = expected < sr / 2 - search_bins * bin_hz
    centre = np.clip(np.rint(expected / bin_hz).astype(int), search_bins,
                     n_bins - 1 - search_bins)
    offsets = np.arange(-search_bins, search_bins + 1)
    candidates = centre[..., None] + offsets
    rows = np.arange(magnitude.shape[0])[:, None, None]
    peak = np.argmax(magnitude[rows, candidates], axis=2)
    peak_bin = np.take_along_axis(candidates, peak[..., None], axis=2)[..., 0]
    # Parabolic interpolation on log magnitude refines the partial's frequency.
    log_mag = np.log(np.maximum(magnitude, 1e-10))
    row2 = rows[..., 0]
    left = log_mag[row2, np.maximum(peak_bin - 1, 0)]
    mid = log_mag[row2, peak_bin]
    right = log_mag[row2, np.minimum(peak_bin + 1, n_bins - 1)]
    curvature = left - 2.0 * mid + right
    shift = np.where(curvature < -1e-12, 0.5 * (left - right) / np.where(
        curvature < -1e-12, curvature, -1.0), 0.0)
    partial_hz = (peak_bin + np.clip(shift, -0.5, 0.5)) * bin_hz
    amplitude = np.where(present, magnitude[row2, peak_bin], 0.0)
    energy = amplitude**2
    total_amp = amplitude.sum(axis=1)
    safe_amp = np.where(total_amp > 0, total_amp, 1.0)
    tristimulus = np.stack([amplitude[:, 0], amplitude[:, 1:4].sum(axis=1),
                            amplitude[:, 4:].sum(axis=1)], axis=1) / safe_amp[:, None]
    total_energy = energy.sum(axis=1)
    deviation = np.abs(partial_hz - expected) * present
    inharmonicity = np.where(total_energy > 0, 2.0 * (deviation * energy).sum(axis=1)
                             / (f0_hz * np.where(total_energy > 0, total_energy, 1.0)), 0.0)
    odd = energy[:, 2::2].sum(axis=1)
    even = energy[:, 1::2].sum(axis=1)
    floor = 1e-12 * np.maximum(total_energy, 1e-30)
    odd_even = np.clip(10.0 * np.log10((odd + floor) / (even + floor)), -DB_LIMIT, DB_LIMIT)
    ratio = np.clip(aperiodicity, 10.0 ** (-DB_LIMIT / 10.0), 1.0)
    hnr = np.clip(10.0 * np.log10((1.0 - ratio + 1e-12) / ratio), -DB_LIMIT, DB_LIMIT)
    return {"hnr_db": hnr, "inharmonicity": inharmonicity, "tristimulus": tristimulus,
            "odd_even_ratio_db": odd_even}


def attack_descriptors(envelope: np.ndarray, *, frame_period: float) -> np.ndarray:
    """Attack time (s), log-attack time (log10 s) and temporal centroid (s) of an envelope.

    Parameters
    ----------
    envelope : np.ndarray, shape (n_frames,)
        Non-negative amplitude envelope (frame RMS).
    frame_period : float, keyword-only
        Seconds between frames; also the floor of the attack time.

    Returns
    -------
    np.ndarray, shape (3,)
        A silent envelope gives attack time 0, log-attack time log10(frame_period) and
        temporal centroid 0.
    """
    peak = envelope.max()
    if peak <= 0:
        return np.array([0.0, np.log10(frame_period), 0.0])
    peak_index = int(np.argmax(envelope))
    rising = envelope[: peak_index + 1]
    start = int(np.argmax(rising >= 0.1 * peak))
    stop = int(np.argmax(rising >= 0.9 * peak))
    attack = (stop - start) * frame_period
    times = np.arange(envelope.size) * frame_period
    centroid = float(times @ envelope / envelope.sum())
    return np.array([attack, np.log10(max(attack, frame_period)), centroid])


def compute(analysis: Analysis) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Frame values and precomputed clip statistics of the timbre family."""
    config = analysis.config
    track = analysis.pitch
    voiced = track.voiced
    harmonic = harmonic_descriptors(
        analysis.magnitude[voiced], track.f0_hz[voiced], sr=analysis.sr, n_fft=config.n_fft,
        n_harmonics=config.n_harmonics, aperiodicity=track.aperiodicity[voiced])
    mfcc_delta = delta(analysis.mfcc)
    frames: dict[str, np.ndarray] = {
        "mfcc": analysis.mfcc,
        "mfcc_delta": mfcc_delta,
        "mfcc_delta2": delta(mfcc_delta),
        "melband": analysis.log_mel,
    }
    clip: dict[str, np.ndarray] = {}
    voiced_times = analysis.times[voiced]
    for name, values in harmonic.items():
        full = np.zeros((analysis.n_frames, *values.shape[1:]))
        full[voiced] = values
        frames[name] = full
        width = int(np.prod(values.shape[1:]))
        clip[name] = apply_functionals(values.reshape(values.shape[0], width), voiced_times,
                                       VOICED_STATS).ravel()
    attack, log_attack, centroid = attack_descriptors(
        analysis.rms, frame_period=config.hop_length / analysis.sr)
    clip["attack_time_s"] = np.array([attack])
    clip["log_attack_time"] = np.array([log_attack])
    clip["temporal_centroid_s"] = np.array([centroid])
    return frames, clip
