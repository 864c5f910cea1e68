"""Stationarity descriptors: how much, and how evenly, a sound changes over time.

Environmental sounds split into stationary textures (rain, engines, air conditioners) and
events (barks, shots, horns). This family describes that axis: the distribution of the
frame-to-frame spectral change, the change over half a second, the spread of each mel band's
level over time, how evenly energy is spread over the clip (low-energy ratio after Scheirer &
Slaney, 1997; energy entropy after Giannakopoulos & Pikrakis, 2014; crest factor), and the
mean correlation between band envelopes, which McDermott & Simoncelli (2011) found to be one
of the statistics that make a sound texture recognisable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from featurekit.descriptors.base import Descriptor

if TYPE_CHECKING:
    from featurekit.dsp.analysis import Analysis

__all__ = ["DESCRIPTORS", "FAMILY", "compute", "energy_evenness", "envelope_correlation",
           "spectral_change"]

FAMILY = "stationarity"
#: Lag of the slow spectral change, seconds.
LONG_LAG_S = 0.5
#: Frames below this share of the mean RMS count as low-energy frames.
LOW_ENERGY_SHARE = 0.5
_EPS = 1e-12

DESCRIPTORS = (
    Descriptor("spectral_change_db", "frame-to-frame spectral change: mean absolute "
               "difference of consecutive log-mel frames over bands", "dB",
               stats=("mean", "std", "p10", "p50", "p90", "max")),
    Descriptor("slow_change_db", f"mean absolute log-mel difference between frames "
               f"{LONG_LAG_S:g} s apart (the longest lag that fits a shorter clip; frames "
               "overhanging the clip's ends left out)", "dB",
               stats=("value",), frame_level=False),
    Descriptor("band_level_std_db", "standard deviation of each mel band's level over time, "
               "averaged over bands", "dB", stats=("value",), frame_level=False),
    Descriptor("low_energy_ratio", f"share of frames with RMS below {LOW_ENERGY_SHARE:g} x the "
               "clip's mean RMS", "1", stats=("value",), frame_level=False),
    Descriptor("energy_entropy", "entropy of the frame energies' distribution over time, "
               "normalised to 0-1 (1: evenly spread)", "1", stats=("value",),
               frame_level=False),
    Descriptor("energy_crest_db", "largest frame energy over the mean frame energy", "dB",
               stats=("value",), frame_level=False),
    Descriptor("envelope_correlation", "mean correlation between the amplitude envelopes of "
               "different mel-band groups", "1", stats=("value",), frame_level=False),
)


def spectral_change(log_mel_change: np.ndarray) -> np.ndarray:
    """Mean absolute change over bands, dB, ``(n_frames,)``, of ``(n_frames, n_mels)``
    frame-to-frame log-mel changes."""
    return np.abs(log_mel_change).mean(axis=1)


def energy_evenness(rms: np.ndarray) -> np.ndarray:
    """Low-energy ratio, normalised energy entropy and energy crest (dB) of frame RMS values.

    A silent clip gives 0, 1 and 0 (nothing stands out of silence).
    """
    energy = rms.astype(np.float64) ** 2
    total = energy.sum()
    if total <= _EPS or energy.size < 2:
        return np.array([0.0, 1.0, 0.0])
    low = np.mean(rms < LOW_ENERGY_SHARE * rms.mean())
    share = energy / total
    entropy = -np.sum(share * np.log(np.maximum(share, 1e-300))) / np.log(energy.size)
    crest = 10.0 * np.log10(energy.max() / energy.mean())
    return np.array([low, entropy, crest])


def envelope_correlation(envelopes: np.ndarray) -> float:
    """Mean Pearson correlation over pairs of band envelopes ``(n_frames, n_bands)``; bands
    with a constant envelope count as uncorrelated."""
    centred = envelopes - envelopes.mean(axis=0)
    norms = np.sqrt(np.einsum("ij,ij->j", centred, centred, dtype=np.float64))
    unit = np.divide(centred, norms, out=np.zeros(centred.shape), where=norms > _EPS)
    correlation = unit.T @ unit
    n = correlation.shape[0]
    return float((correlation.sum() - np.trace(correlation)) / (n * (n - 1))) if n > 1 else 0.0


def compute(analysis: Analysis) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Frame values and clip values of the stationarity family."""
    log_mel, interior = analysis.log_mel, analysis.interior
    # Only frames wholly inside the clip: zero padding at its ends is not the sound changing.
    lag = min(int(round(LONG_LAG_S * analysis.sr / analysis.config.hop_length)),
              int(np.count_nonzero(interior)) - 1)
    pairs = interior[lag:] & interior[: interior.size - lag] if lag > 0 else np.zeros(0, bool)
    slow = (np.abs(log_mel[lag:][pairs] - log_mel[: log_mel.shape[0] - lag][pairs]).mean()
            if pairs.any() else 0.0)
    low, entropy, crest = energy_evenness(analysis.rms)
    clip = {
        "slow_change_db": np.array([slow]),
        "band_level_std_db": np.array([log_mel.std(axis=0).mean()]),
        "low_energy_ratio": np.array([low]),
        "energy_entropy": np.array([entropy]),
        "energy_crest_db": np.array([crest]),
        "envelope_correlation": np.array([envelope_correlation(analysis.envelopes)]),
    }
    return {"spectral_change_db": spectral_change(analysis.log_mel_change)}, clip
