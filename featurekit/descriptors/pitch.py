"""Pitch descriptors: f0, voicing, salience and chroma.

They read the shared analysis's probabilistic-YIN track (:mod:`featurekit.dsp.pyin`) and
chroma, so nothing here recomputes a spectrum or a difference function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from featurekit.descriptors.base import Descriptor, apply_functionals

if TYPE_CHECKING:
    from featurekit.dsp.analysis import Analysis

__all__ = ["DESCRIPTORS", "FAMILY", "compute"]

FAMILY = "pitch"
#: Cents are measured from this frequency (A1), so every f0 above it is positive.
CENTS_REFERENCE_HZ = 55.0

VOICED_STATS = ("median", "iqr", "range", "std", "slope", "jitter")

DESCRIPTORS = (
    Descriptor("f0_hz", "fundamental frequency (0 on unvoiced frames)", "Hz",
               stats=("median",)),
    Descriptor("f0_cents", f"fundamental frequency in cents re {CENTS_REFERENCE_HZ:g} Hz "
               "(0 on unvoiced frames)", "cent", stats=VOICED_STATS, voiced_only=True),
    Descriptor("voicing_prob", "probability that the frame is voiced (pYIN mass)", "1"),
    Descriptor("voicing", "voiced-frame indicator (voicing_prob >= threshold)", "1",
               stats=("fraction",)),
    Descriptor("salience", "pitch salience: 1 - minimum of the YIN difference function", "1"),
    Descriptor("chroma", "chroma energy of pitch class C, C#, ..., B (max-normalised)", "1",
               bands=12, stats=("mean", "std")),
)


def _voiced_cents_stats(cents: np.ndarray, times: np.ndarray) -> np.ndarray:
    if cents.size == 0:
        return np.zeros(len(VOICED_STATS))
    q05, q25, q50, q75, q95 = np.percentile(cents, [5, 25, 50, 75, 95])
    slope = apply_functionals(cents[:, None], times, ("slope",))[0, 0]
    jitter = float(np.mean(np.abs(np.diff(cents)))) if cents.size > 1 else 0.0
    return np.array([q50, q75 - q25, q95 - q05, cents.std(), slope, jitter])


def compute(analysis: Analysis) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Frame values and precomputed clip statistics of the pitch family.

    Returns
    -------
    frames : dict of str to np.ndarray
        ``(n_frames,)`` or ``(n_frames, bands)`` per descriptor name.
    clip : dict of str to np.ndarray
        Clip statistics for descriptors not summarised by the generic functionals.
    """
    track = analysis.pitch
    voiced = track.voiced
    cents = np.zeros_like(track.f0_hz)
    cents[voiced] = 1200.0 * np.log2(track.f0_hz[voiced] / CENTS_REFERENCE_HZ)
    frames = {
        "f0_hz": track.f0_hz,
        "f0_cents": cents,
        "voicing_prob": track.voicing_prob,
        "voicing": voiced.astype(np.float64),
        "salience": track.salience,
        "chroma": analysis.chroma,
    }
    median_f0 = float(np.median(track.f0_hz[voiced])) if voiced.any() else 0.0
    clip = {
        "f0_hz": np.array([median_f0]),
        "f0_cents": _voiced_cents_stats(cents[voiced], analysis.times[voiced]),
        "voicing": np.array([voiced.mean()]),
    }
    return frames, clip
