"""Loudness descriptors after ITU-R BS.1770-4 and EBU Tech 3341/3342, from the shared STFT.

The K-weighting (a high shelf of about +4 dB above 1.5 kHz, then a 38-Hz high-pass) is applied
as its exact magnitude response to the shared power spectrogram, and each frame's weighted
mean square is recovered by Parseval's theorem; 400-ms momentary blocks (100-ms step) and 3-s
short-term windows average those frames. Integrated loudness gates the blocks absolutely
(-70 LUFS) and relatively (-10 LU); loudness range is the 10th-to-95th percentile spread of the
gated short-term loudness (relative gate -20 LU). For a stationary signal this equals the
time-domain filter of the standard (tested against ``pyloudnorm``); block edges fall on frame
centres, so a signal that changes within a frame may differ by a few hundredths of an LU.
Levels are dB re full scale of a mono signal (LUFS): a 997-Hz sine of RMS -23 dBFS reads
-23 LUFS.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from featurekit.descriptors.base import Descriptor

if TYPE_CHECKING:
    from featurekit.dsp.analysis import Analysis

__all__ = ["DESCRIPTORS", "FAMILY", "block_mean_squares", "compute", "frame_mean_squares",
           "gated_loudness", "k_weighting_gain", "loudness_range"]

FAMILY = "loudness"
#: Absolute gate of BS.1770, LUFS; also the floor of every loudness value (silence reads it).
ABSOLUTE_GATE = -70.0
MOMENTARY_S, MOMENTARY_STEP_S = 0.4, 0.1
SHORT_TERM_S, SHORT_TERM_STEP_S = 3.0, 0.1
#: BS.1770 offset: a full-scale 997-Hz sine in one channel reads -3.01 LUFS.
_OFFSET = -0.691
# Analogue prototype of the K-weighting filter (the parameters from which libebur128 derives
# the BS.1770 coefficients at any rate): shelf and high-pass.
_SHELF_HZ, _SHELF_GAIN_DB, _SHELF_Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
_SHELF_BAND_EXPONENT = 0.4996667741545416
_HIGHPASS_HZ, _HIGHPASS_Q = 38.13547087602444, 0.5003270373238773

DESCRIPTORS = (
    Descriptor("integrated_lufs", "integrated loudness (BS.1770 gated, 400-ms blocks)", "LUFS",
               stats=("value",), frame_level=False),
    Descriptor("momentary_lufs", "momentary loudness of 400-ms blocks every 100 ms "
               f"(floored at {ABSOLUTE_GATE:g})", "LUFS",
               stats=("max", "p10", "p50", "p90", "std"), frame_level=False),
    Descriptor("short_term_lufs", "short-term loudness of 3-s windows every 100 ms (the "
               "whole clip when shorter)", "LUFS", stats=("max", "mean"), frame_level=False),
    Descriptor("range_lu", "loudness range (EBU Tech 3342): 10th-95th percentile spread of the "
               "gated short-term loudness", "LU", stats=("value",), frame_level=False),
    Descriptor("peak_to_loudness_db", "sample peak level minus integrated loudness", "dB",
               stats=("value",), frame_level=False),
)


def _biquad_power(b: np.ndarray, a: np.ndarray, omega: np.ndarray) -> np.ndarray:
    z = np.exp(-1j * omega[:, None] * np.arange(3))
    return np.abs((z @ b) / (z @ a)) ** 2


@lru_cache(maxsize=16)
def k_weighting_gain(sr: int, n_fft: int) -> np.ndarray:
    """Power gain of the BS.1770 K-weighting filter at the ``n_fft // 2 + 1`` STFT bins.

    The two biquads are designed at ``sr`` by the bilinear transform of the standard's
    analogue prototype, so at 48 kHz they are the coefficients printed in BS.1770.
    """
    omega = 2.0 * np.pi * np.fft.rfftfreq(n_fft, d=1.0 / sr) / sr
    k = np.tan(np.pi * _SHELF_HZ / sr)
    high = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    band = high**_SHELF_BAND_EXPONENT
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = _biquad_power(
        np.array([high + band * k / _SHELF_Q + k * k, 2.0 * (k * k - high),
                  high - band * k / _SHELF_Q + k * k]) / a0,
        np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / _SHELF_Q + k * k]) / a0, omega)
    k = np.tan(np.pi * _HIGHPASS_HZ / sr)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    highpass = _biquad_power(np.array([1.0, -2.0, 1.0]),
                             np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / _HIGHPASS_Q + k * k])
                             / a0, omega)
    return shelf * highpass


def frame_mean_squares(power: np.ndarray, *, gain: np.ndarray, window: np.ndarray,
                       hop_length: int, n_samples: int) -> np.ndarray:
    """Mean square of the weighted signal under each frame's window (Parseval).

    Parameters
    ----------
    power : np.ndarray, shape (n_frames, n_fft // 2 + 1)
        |STFT|² of frames centred on ``t * hop_length`` (signal zero-padded by ``n_fft // 2``).
    gain : np.ndarray, shape (n_fft // 2 + 1,), keyword-only
        Power gain of the weighting filter at each bin.
    window : np.ndarray, shape (n_fft,), keyword-only
        The STFT's analysis window.
    hop_length, n_samples : int, keyword-only
        Hop and length of the unpadded signal, samples.

    Returns
    -------
    np.ndarray, shape (n_frames,)
        Window-weighted mean square; each frame is divided by the window energy that falls on
        the signal, so frames overhanging its ends are not biased low.
    """
    n_fft = window.size
    weights = np.full(gain.size, 2.0)  # one-sided spectrum: DC and Nyquist count once
    weights[[0, -1]] = 1.0
    energy = power @ (weights * gain / n_fft).astype(power.dtype)
    cumulative = np.concatenate([[0.0], np.cumsum(window.astype(np.float64) ** 2)])
    start = np.arange(power.shape[0]) * hop_length - n_fft // 2
    covered = (cumulative[np.clip(n_samples - start, 0, n_fft)]
               - cumulative[np.clip(-start, 0, n_fft)])
    return np.divide(energy, covered, out=np.zeros(energy.shape), where=covered > 1e-12)


def block_mean_squares(frame_ms: np.ndarray, *, frame_period: float, block_s: float,
                       step_s: float, duration_s: float) -> np.ndarray:
    """Mean of the frame mean squares whose centres fall in each block ``[j·step, j·step +
    block)``, ``(n_blocks,)``; one block spans the clip when it is shorter than ``block_s``."""
    n_blocks = max(1, int(np.floor((duration_s - block_s) / step_s + 1e-9)) + 1)
    length = min(block_s, duration_s)
    starts = np.arange(n_blocks) * step_s
    n = frame_ms.size
    first = np.clip(np.ceil(starts / frame_period - 1e-9).astype(int), 0, n - 1)
    stop = np.clip(np.ceil((starts + length) / frame_period - 1e-9).astype(int), first + 1, n)
    cumulative = np.concatenate([[0.0], np.cumsum(frame_ms)])
    return (cumulative[stop] - cumulative[first]) / (stop - first)


def _lufs(mean_square: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return _OFFSET + 10.0 * np.log10(mean_square)


def gated_loudness(block_ms: np.ndarray, *, relative_gate: float = -10.0) -> float:
    """BS.1770 gated loudness of blocks' mean squares, LUFS (:data:`ABSOLUTE_GATE` when no
    block passes the absolute gate)."""
    loudness = _lufs(block_ms)
    kept = loudness > ABSOLUTE_GATE
    if not kept.any():
        return ABSOLUTE_GATE
    threshold = _lufs(block_ms[kept].mean()) + relative_gate
    kept &= loudness > threshold
    return float(max(_lufs(block_ms[kept].mean()), ABSOLUTE_GATE))


def loudness_range(short_term_ms: np.ndarray) -> float:
    """EBU Tech 3342 loudness range of short-term mean squares, LU (0 when no window passes
    the gates)."""
    loudness = _lufs(short_term_ms)
    kept = loudness > ABSOLUTE_GATE
    if not kept.any():
        return 0.0
    kept &= loudness > _lufs(short_term_ms[kept].mean()) - 20.0
    low, high = np.percentile(loudness[kept], [10, 95])
    return float(high - low)


def compute(analysis: Analysis) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Clip values of the loudness family (it has no frame-level descriptors)."""
    config = analysis.config
    n_samples = analysis.y.size
    frame_ms = frame_mean_squares(analysis.power, gain=k_weighting_gain(analysis.sr, config.n_fft),
                                  window=analysis.window, hop_length=config.hop_length,
                                  n_samples=n_samples)
    timing = {"frame_period": config.hop_length / analysis.sr,
              "duration_s": n_samples / analysis.sr}
    momentary = block_mean_squares(frame_ms, block_s=MOMENTARY_S, step_s=MOMENTARY_STEP_S,
                                   **timing)
    short_term = block_mean_squares(frame_ms, block_s=SHORT_TERM_S, step_s=SHORT_TERM_STEP_S,
                                    **timing)
    integrated = gated_loudness(momentary)
    momentary_lufs = np.maximum(_lufs(momentary), ABSOLUTE_GATE)
    short_term_lufs = np.maximum(_lufs(short_term), ABSOLUTE_GATE)
    peak = float(np.abs(analysis.y).max())
    peak_db = max(20.0 * np.log10(peak), ABSOLUTE_GATE) if peak > 0 else ABSOLUTE_GATE
    clip = {
        "integrated_lufs": np.array([integrated]),
        "momentary_lufs": np.array([momentary_lufs.max(),
                                    *np.percentile(momentary_lufs, [10, 50, 90]),
                                    momentary_lufs.std()]),
        "short_term_lufs": np.array([short_term_lufs.max(), short_term_lufs.mean()]),
        "range_lu": np.array([loudness_range(short_term)]),
        "peak_to_loudness_db": np.array([peak_db - integrated]),
    }
    return {}, clip
