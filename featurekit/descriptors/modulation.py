"""Modulation descriptors: how fast the energy of each mel-band group fluctuates, 0.5-32 Hz.

The amplitude envelope of each band group (:attr:`~featurekit.dsp.analysis.Analysis.envelopes`) is
Fourier-transformed over the whole clip (a modulation spectrum, after Atlas & Shamma, 2003, and
the texture statistics of McDermott & Simoncelli, 2011) and integrated over octave-wide
modulation bands centred on 0.5, 1, 2, 4, 8, 16 and 32 Hz; each group also gets the centroid
and the peak of its modulation spectrum. A pooled embedding averages this structure away:
an engine idling at 30 Hz and steady noise of the same spectrum differ only here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft

from featurekit.descriptors.base import Descriptor

if TYPE_CHECKING:
    from featurekit.dsp.analysis import Analysis

__all__ = ["DESCRIPTORS", "FAMILY", "MODULATION_CENTRES_HZ", "compute", "modulation_bands",
           "modulation_spectrum"]

FAMILY = "modulation"
#: Centres of the octave-wide modulation bands, Hz (edges at centre / sqrt 2 and centre * sqrt 2).
MODULATION_CENTRES_HZ = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
#: Envelope spectra are zero-padded to at least this long, so the 0.5-Hz band spans bins.
MIN_SPAN_S = 8.0
#: Floor of the relative modulation energies, dB (a constant or silent envelope).
DB_FLOOR = -80.0
_EPS = 1e-20


def _band_name(centre_hz: float) -> str:
    return "energy_db_" + f"{centre_hz:g}".replace(".", "p") + "hz"


_BAND_MEANING = ("modulation energy of a mel-band group's amplitude envelope in the octave "
                 "around {:g} Hz, relative to the envelope's mean power (a sinusoidal "
                 "modulation of depth m reads 10 log10(m²/2))")
_GROUP_NOTE = " (band: one of envelope_bands mel-band groups, low to high)"

DESCRIPTORS = (
    *(Descriptor(_band_name(centre), _BAND_MEANING.format(centre) + _GROUP_NOTE, "dB",
                 bands="envelope_bands", stats=("value",), frame_level=False)
      for centre in MODULATION_CENTRES_HZ),
    Descriptor("centroid_hz", "power-weighted mean frequency of the modulation spectrum, "
               "0.35-45 Hz (0 for a constant envelope)" + _GROUP_NOTE, "Hz",
               bands="envelope_bands", stats=("value",), frame_level=False),
    Descriptor("peak_hz", "frequency of the strongest modulation, 0.35-45 Hz (0 for a "
               "constant envelope)" + _GROUP_NOTE, "Hz", bands="envelope_bands",
               stats=("value",), frame_level=False),
)


def modulation_spectrum(envelopes: np.ndarray, *, rate: float,
                        min_span_s: float = MIN_SPAN_S) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum of mean-removed, Hann-windowed envelopes, relative to their mean power.

    Parameters
    ----------
    envelopes : np.ndarray, shape (n_frames, n_bands)
        Non-negative amplitude envelopes.
    rate : float, keyword-only
        Envelope frames per second.
    min_span_s : float, keyword-only
        Zero-padding to at least this many seconds (and a power of two of frames).

    Returns
    -------
    freqs : np.ndarray, shape (n_bins,)
        Modulation frequencies, Hz.
    power : np.ndarray, shape (n_bins, n_bands)
        Power density scaled so that its sum over positive frequencies is the windowed
        variance of each envelope divided by its squared mean (0 for a silent band):
        ``e = a (1 + m cos 2πft)`` gives ``m² / 2`` summed around ``f``.
    """
    n = envelopes.shape[0]
    n_fft = 1 << int(np.ceil(np.log2(max(n, min_span_s * rate, 2))))
    window = np.hanning(n + 2)[1:-1] if n > 1 else np.ones(1)
    mean = envelopes.mean(axis=0)
    spectrum = scipy.fft.rfft((envelopes - mean) * window[:, None], n=n_fft, axis=0)
    scale = 2.0 / (n_fft * np.sum(window**2))
    mean_power = mean.astype(np.float64) ** 2
    relative = np.divide(scale, mean_power, out=np.zeros_like(mean_power),
                         where=mean_power > _EPS)
    power = (spectrum.real**2 + spectrum.imag**2) * relative
    return np.fft.rfftfreq(n_fft, d=1.0 / rate), power


@lru_cache(maxsize=16)
def modulation_bands(n_bins: int, bin_hz: float) -> np.ndarray:
    """Indicator matrix of the bins in each octave band, ``(len(MODULATION_CENTRES_HZ),
    n_bins)`` float64 (row k covers ``[c_k / sqrt 2, c_k * sqrt 2)``)."""
    freqs = np.arange(n_bins) * bin_hz
    centres = np.asarray(MODULATION_CENTRES_HZ)[:, None]
    return ((freqs >= centres / np.sqrt(2)) & (freqs < centres * np.sqrt(2))).astype(float)


def _peak_frequency(power: np.ndarray, freqs: np.ndarray, in_range: np.ndarray) -> np.ndarray:
    # Parabolic interpolation around the largest in-range bin refines the peak below one bin.
    masked = np.where(in_range[:, None], power, -np.inf)
    peak = np.argmax(masked, axis=0)
    columns = np.arange(power.shape[1])
    left = power[np.maximum(peak - 1, 0), columns]
    mid = power[peak, columns]
    right = power[np.minimum(peak + 1, power.shape[0] - 1), columns]
    curvature = left - 2.0 * mid + right
    shift = np.divide(0.5 * (left - right), curvature, out=np.zeros_like(mid),
                      where=curvature < -_EPS)
    bin_hz = freqs[1] - freqs[0]
    return np.where(mid > 0, (peak + np.clip(shift, -0.5, 0.5)) * bin_hz, 0.0)


def compute(analysis: Analysis) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Clip values of the modulation family (it has no frame-level descriptors)."""
    freqs, power = modulation_spectrum(analysis.envelopes, rate=analysis.envelope_rate)
    bands = modulation_bands(freqs.size, float(freqs[1]))
    energy = bands @ power
    energy_db = np.maximum(10.0 * np.log10(np.maximum(energy, _EPS)), DB_FLOOR)
    in_range = bands.any(axis=0)
    total = power[in_range].sum(axis=0)
    centroid = np.divide(freqs[in_range] @ power[in_range], total,
                         out=np.zeros_like(total), where=total > _EPS)
    clip = {_band_name(centre): energy_db[k] for k, centre in enumerate(MODULATION_CENTRES_HZ)}
    clip["centroid_hz"] = centroid
    clip["peak_hz"] = _peak_frequency(power, freqs, in_range)
    return {}, clip
