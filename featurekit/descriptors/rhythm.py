"""Periodicity and rhythm descriptors: onset strength, its autocorrelation, onset rate.

The onset strength envelope is the mean over mel bands of the positive frame-to-frame change
of the shared log-mel spectrogram (spectral flux in dB, as in Böck & Widmer, 2013, and
librosa's ``onset_strength``). Its autocorrelation, normalised per lag by the number of
overlapping frames, measures how periodic the events are: a drill, a jackhammer, a siren or an
idling engine repeat at a steady rate; a dog bark or a car horn do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.fft

from featurekit.descriptors.base import Descriptor

if TYPE_CHECKING:
    from featurekit.dsp.analysis import Analysis

__all__ = ["DESCRIPTORS", "FAMILY", "autocorrelation", "compute", "main_periodicity",
           "onset_rate", "onset_strength", "smooth"]

FAMILY = "rhythm"
#: Periods searched, seconds (the longest also limited to half the clip: two repetitions).
MIN_PERIOD_S, MAX_PERIOD_S = 0.1, 2.0
#: A later autocorrelation peak within this share of the highest one is a multiple of the
#: period, not the period, so the earliest such peak is taken.
PEAK_TOLERANCE = 0.9
#: Width of the Hann window smoothing the onset strength before its autocorrelation, seconds.
SMOOTHING_S = 0.1
#: Onsets: local maxima of the envelope within ± this many seconds ...
ONSET_WINDOW_S = 0.05
#: ... that exceed the envelope's mean by this many standard deviations.
ONSET_THRESHOLD_SD = 1.0

DESCRIPTORS = (
    Descriptor("onset_strength_db", "onset strength: mean over mel bands of the positive "
               "frame-to-frame change of the log-mel spectrum", "dB",
               stats=("mean", "std", "max")),
    Descriptor("onset_rate_hz", "onsets per second (local maxima of the onset strength above "
               f"its mean + {ONSET_THRESHOLD_SD:g} sd)", "1/s", stats=("value",),
               frame_level=False),
    Descriptor("periodicity_strength", "height of the main peak of the onset strength's "
               f"autocorrelation, periods {MIN_PERIOD_S:g}-{MAX_PERIOD_S:g} s (0 when none)",
               "1", stats=("value",), frame_level=False),
    Descriptor("period_s", "lag of that peak: the period of the main periodicity (0 when "
               "none)", "s", stats=("value",), frame_level=False),
    Descriptor("periodicity_regularity", "mean autocorrelation at whole multiples of the "
               "period within the periods searched (1 for a perfectly regular train, 0 when "
               "none)", "1",
               stats=("value",), frame_level=False),
)


def onset_strength(log_mel_change: np.ndarray) -> np.ndarray:
    """Onset strength envelope, dB, ``(n_frames,)``, from ``(n_frames, n_mels)`` frame-to-frame
    log-mel changes (positive changes averaged over bands)."""
    return np.maximum(log_mel_change, 0.0).mean(axis=1)


def smooth(envelope: np.ndarray, *, width: int) -> np.ndarray:
    """The envelope convolved with a unit-sum Hann window of ``width`` frames (same length).

    Events whose spacing is not a whole number of frames land one frame early or late; the
    smoothing lets their autocorrelation peak at the true period rather than at the first
    multiple that happens to be whole.
    """
    if width < 3:
        return envelope
    window = np.hanning(width + 2)[1:-1]
    return np.convolve(envelope, window / window.sum(), mode="same")


def autocorrelation(envelope: np.ndarray) -> np.ndarray:
    """Autocorrelation of the mean-removed envelope, each lag averaged over its overlapping
    frames and divided by the variance, ``(n_frames,)`` (1 at lag 0; all 0 when constant)."""
    n = envelope.size
    centred = envelope - envelope.mean()
    spectrum = scipy.fft.rfft(centred, n=2 * n)
    raw = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=2 * n)[:n]
    per_lag = raw / np.arange(n, 0, -1)
    if per_lag[0] <= 1e-12 * max(1.0, float(np.abs(envelope).max(initial=0.0)) ** 2):
        return np.zeros(n)
    return np.clip(per_lag / per_lag[0], -1.0, 1.0)


def main_periodicity(acf: np.ndarray, *, frame_rate: float, min_period_s: float = MIN_PERIOD_S,
                     max_period_s: float = MAX_PERIOD_S) -> np.ndarray:
    """Strength, period (s) and regularity of the main periodicity of an autocorrelation.

    Parameters
    ----------
    acf : np.ndarray, shape (n_lags,)
        From :func:`autocorrelation`.
    frame_rate : float, keyword-only
        Frames per second.
    min_period_s, max_period_s : float, keyword-only
        Periods searched; the longest is also limited to half the clip.

    Returns
    -------
    np.ndarray, shape (3,)
        The highest local maximum in range (the earliest within :data:`PEAK_TOLERANCE` of it),
        its lag refined by parabolic interpolation, and the mean autocorrelation at whole
        multiples of that lag up to the longest period searched. Zeros when no positive peak
        lies in range.
    """
    n = acf.size
    low = max(1, int(np.ceil(min_period_s * frame_rate)))
    high = min(int(max_period_s * frame_rate), (n - 1) // 2)
    if high - low < 1:
        return np.zeros(3)
    lags = np.arange(low, high + 1)
    is_peak = (acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1]) & (acf[lags] > 0)
    if not is_peak.any():
        return np.zeros(3)
    heights = np.where(is_peak, acf[lags], -np.inf)
    lag = int(lags[np.argmax(heights >= PEAK_TOLERANCE * heights.max())])
    left, mid, right = acf[lag - 1], acf[lag], acf[lag + 1]
    curvature = left - 2.0 * mid + right
    shift = 0.5 * (left - right) / curvature if curvature < -1e-12 else 0.0
    period = (lag + float(np.clip(shift, -0.5, 0.5))) / frame_rate
    # Each multiple's value is the best within one lag of it: rounding puts k x period up to
    # half a lag off its peak.
    count = max(1, int(high / (period * frame_rate)))  # interpolation may pass ``high``
    multiples = np.rint(np.arange(1, count + 1) * period * frame_rate).astype(int)
    regularity = float(np.max(acf[multiples[:, None] + np.arange(-1, 2)], axis=1).mean())
    return np.array([mid, period, regularity])


def onset_rate(envelope: np.ndarray, *, frame_rate: float, duration_s: float) -> float:
    """Onsets per second: local maxima within ±:data:`ONSET_WINDOW_S` that exceed the
    envelope's mean by :data:`ONSET_THRESHOLD_SD` standard deviations (0 for a constant one)."""
    half = max(1, int(round(ONSET_WINDOW_S * frame_rate)))
    padded = np.pad(envelope, half, constant_values=-np.inf)
    neighbourhood = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).max(axis=1)
    threshold = envelope.mean() + ONSET_THRESHOLD_SD * envelope.std()
    onsets = (envelope >= neighbourhood) & (envelope > threshold)
    return float(np.count_nonzero(onsets)) / duration_s


def compute(analysis: Analysis) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Frame values and clip values of the rhythm family."""
    frame_rate = analysis.sr / analysis.config.hop_length
    strength = onset_strength(analysis.log_mel_change)
    smoothed = smooth(strength, width=int(round(SMOOTHING_S * frame_rate)))
    periodicity = main_periodicity(autocorrelation(smoothed), frame_rate=frame_rate)
    clip = {
        "onset_rate_hz": np.array([onset_rate(strength, frame_rate=frame_rate,
                                              duration_s=analysis.y.size / analysis.sr)]),
        "periodicity_strength": periodicity[:1],
        "period_s": periodicity[1:2],
        "periodicity_regularity": periodicity[2:],
    }
    return {"onset_strength_db": strength}, clip
