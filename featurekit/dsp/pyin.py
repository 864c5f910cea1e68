"""A probabilistic-YIN f0 track over framed audio.

The f0 estimator is our vectorised take on probabilistic YIN (Mauch & Dixon, ICASSP 2014):
the YIN cumulative-mean-normalised difference function (de Cheveigné & Kawahara, 2002) is
computed for all frames at once with FFTs; instead of one fixed threshold, the threshold is
treated as Beta(2, 18)-distributed, and each trough receives the probability that it is the
first trough under the threshold. The voicing probability is the total mass given to troughs.
No HMM smoothing is applied, which keeps the cost at a few FFTs per frame.

The track is a shared intermediate (:attr:`featurekit.dsp.analysis.Analysis.pitch`): the pitch
descriptor family reads it, so it lives beside the analysis rather than in a family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.special

__all__ = ["SILENCE_RMS", "THRESHOLD_PRIOR", "PitchTrack", "cmndf", "pitch_track"]

#: Frames quieter than this RMS (-100 dBFS) are unvoiced whatever their periodicity.
SILENCE_RMS = 1e-5
#: Beta prior on the YIN threshold used by pYIN (mean 0.1).
THRESHOLD_PRIOR = (2.0, 18.0)


@dataclass(frozen=True)
class PitchTrack:
    """Frame-wise pitch analysis; every array has shape ``(n_frames,)``.

    Attributes
    ----------
    f0_hz : f0 estimate, Hz (0 on unvoiced frames).
    voicing_prob : probability of voicing, 0-1.
    voiced : boolean voicing decision.
    aperiodicity : normalised difference at the chosen lag, 0 (periodic) to 1.
    salience : 1 - minimum normalised difference over the search range, 0-1.
    """

    f0_hz: np.ndarray
    voicing_prob: np.ndarray
    voiced: np.ndarray
    aperiodicity: np.ndarray
    salience: np.ndarray


def cmndf(frames: np.ndarray, *, max_lag: int) -> np.ndarray:
    """YIN cumulative-mean-normalised difference function of each frame.

    Parameters
    ----------
    frames : np.ndarray, shape (n_frames, frame_length)
        Unwindowed signal frames. The integration window is the first half of each frame.
    max_lag : int, keyword-only
        Largest lag, samples; at most ``frame_length // 2``.

    Returns
    -------
    np.ndarray, shape (n_frames, max_lag + 1)
        d'(tau); d'(0) = 1, and 1 wherever the frame has no energy.
    """
    window = frames.shape[1] // 2
    if not 0 < max_lag <= window:
        raise ValueError(f"max_lag must be in (0, {window}], got {max_lag}")
    span = window + max_lag
    # Only window + max_lag samples of each frame are ever compared; an FFT of at least that
    # length computes the window's cross-correlation with the frame without wrap-around.
    n_fft = scipy.fft.next_fast_len(span, real=True)
    spectrum = scipy.fft.rfft(frames[:, :span], n=n_fft, axis=1)
    head = scipy.fft.rfft(frames[:, :window], n=n_fft, axis=1)
    acf = scipy.fft.irfft(spectrum * np.conj(head), n=n_fft, axis=1)[:, : max_lag + 1]
    # Energy of the lagged window, e(tau) = sum x[tau : tau + window]^2, by updating e(0)
    # with the sample entering and the one leaving: a cumulative sum over max_lag columns.
    squares = np.square(frames[:, :span], dtype=acf.dtype)
    energy = np.empty((frames.shape[0], max_lag + 1), dtype=acf.dtype)
    energy[:, 0] = squares[:, :window].sum(axis=1)
    np.cumsum(squares[:, window:span] - squares[:, :max_lag], axis=1, out=energy[:, 1:])
    energy[:, 1:] += energy[:, :1]
    difference = np.maximum(energy[:, :1] + energy - 2.0 * acf, 0.0)
    running_mean = np.cumsum(difference[:, 1:], axis=1) / np.arange(1, max_lag + 1)
    normalised = np.ones_like(difference)
    np.divide(difference[:, 1:], running_mean, out=normalised[:, 1:],
              where=running_mean > 1e-12 * np.maximum(energy[:, :1], 1e-30))
    return normalised


def pitch_track(frames: np.ndarray, *, sr: int, fmin: float, fmax: float,
                voicing_threshold: float = 0.5) -> PitchTrack:
    """Probabilistic-YIN f0 and voicing for each frame.

    Parameters
    ----------
    frames : np.ndarray, shape (n_frames, frame_length)
        Unwindowed frames; ``sr / fmin`` must be below ``frame_length / 2``.
    sr : int, keyword-only
        Sample rate, Hz.
    fmin, fmax : float, keyword-only
        Search range, Hz.
    voicing_threshold : float, keyword-only
        Voicing probability from which a frame is voiced.

    Returns
    -------
    PitchTrack
    """
    window = frames.shape[1] // 2
    lag_min = max(1, int(np.floor(sr / fmax)))
    lag_max = min(int(np.ceil(sr / fmin)), window - 1)
    d = cmndf(frames, max_lag=lag_max + 1)
    n_frames = d.shape[0]
    search = d[:, lag_min : lag_max + 1]
    inner = d[:, lag_min:lag_max]
    trough = np.zeros_like(search, dtype=bool)
    trough[:, :-1] = (inner < d[:, lag_min - 1 : lag_max - 1]) & (inner <= d[:, lag_min + 1 :
                                                                            lag_max + 1])
    # A trough is "first under the threshold" for thresholds between its own depth and the
    # lowest depth of the troughs before it; its probability is the prior mass in between.
    depth = np.where(trough, search, np.inf)
    earlier_min = np.minimum.accumulate(depth, axis=1)
    rows, cols = np.nonzero(trough)
    earlier = np.where(cols > 0, earlier_min[rows, np.maximum(cols - 1, 0)], np.inf)
    a, b = THRESHOLD_PRIOR
    # The prior CDF is evaluated at troughs only: they are few, betainc is not cheap.
    trough_mass = np.maximum(
        scipy.special.betainc(a, b, np.clip(earlier, 0.0, 1.0))
        - scipy.special.betainc(a, b, np.clip(search[rows, cols], 0.0, 1.0)), 0.0)
    mass = np.zeros_like(search)
    mass[rows, cols] = trough_mass
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    voicing_prob = np.where(rms >= SILENCE_RMS, mass.sum(axis=1), 0.0)
    best = np.where(voicing_prob > 0, np.argmax(mass, axis=1), np.argmin(search, axis=1))
    lag = best + lag_min
    rows = np.arange(n_frames)
    left, centre, right = d[rows, lag - 1], d[rows, lag], d[rows, lag + 1]
    curvature = left - 2.0 * centre + right
    shift = np.where(curvature > 1e-12, 0.5 * (left - right) / np.where(
        curvature > 1e-12, curvature, 1.0), 0.0)
    shift = np.clip(shift, -1.0, 1.0)
    voiced = voicing_prob >= voicing_threshold
    f0 = np.where(voiced, sr / (lag + shift), 0.0)
    aperiodicity = np.clip(centre - 0.25 * (left - right) * shift, 0.0, 1.0)
    salience = np.where(rms >= SILENCE_RMS, np.clip(1.0 - search.min(axis=1), 0.0, 1.0), 0.0)
    return PitchTrack(f0_hz=f0, voicing_prob=voicing_prob, voiced=voiced,
                      aperiodicity=aperiodicity, salience=salience)
