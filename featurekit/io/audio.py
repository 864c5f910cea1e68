"""Audio loading: any common file (or array) to a validated float32 mono waveform.

Decoding goes through libsndfile (WAV, FLAC, OGG/Vorbis, Opus, AIFF and, with libsndfile
>= 1.1, MP3); resampling through soxr at "HQ" quality, which is deterministic. Every error names
the file and the cause, as an :class:`~featurekit.errors.AudioError`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from featurekit.errors import AudioError

__all__ = ["SILENCE_NOTE", "AudioInfo", "load_audio", "load_audio_with_info", "prepare_waveform"]

logger = logging.getLogger(__name__)

#: Largest accepted sample magnitude. Float audio a little over full scale is common; values
#: this far beyond it are corrupt (or not audio) and would overflow float32 energies.
MAX_ABS_SAMPLE = 1e6
#: Note recorded for a clip whose samples are all exactly zero.
SILENCE_NOTE = "digital silence: every sample is zero"


@dataclass(frozen=True)
class AudioInfo:
    """What happened to a clip on its way to a waveform.

    Attributes
    ----------
    source : str
        File path, or ``"<array>"``.
    source_sr : int
        Sample rate of the input, Hz.
    channels : int
        Channel count of the input (averaged to mono).
    source_samples : int
        Input length in samples per channel, before truncation.
    sr : int
        Output sample rate, Hz.
    truncated : bool
        Whether ``max_duration`` cut the input.
    padded_samples : int
        Zeros appended to reach ``min_samples`` (0 when none).
    notes : tuple of str
        Human-readable account of the above, for logs and stores.
    """

    source: str
    source_sr: int
    channels: int
    source_samples: int
    sr: int
    truncated: bool = False
    padded_samples: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


def _check_rate(value: object, what: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise AudioError(f"{source}: {what} must be a positive integer in Hz, got {value!r}")
    return int(value)


def _check_max_duration(max_duration: float | None, source: str) -> None:
    if max_duration is not None and not (np.isfinite(max_duration) and max_duration > 0):
        raise AudioError(f"{source}: max_duration must be a positive number of seconds, "
                         f"got {max_duration!r}")


def prepare_waveform(y: np.ndarray, sr: int, *, target_sr: int | None = None,
                     max_duration: float | None = None, min_samples: int = 0,
                     source: str = "<array>",
                     original_samples: int | None = None) -> tuple[np.ndarray, AudioInfo]:
    """Validate an in-memory signal and bring it to float32 mono at ``target_sr``.

    Parameters
    ----------
    y : np.ndarray
        Samples, shape ``(n,)`` or ``(n, channels)`` (channels last, as soundfile returns).
        Integer arrays are scaled to [-1, 1] by their dtype's range.
    sr : int
        Sample rate of ``y``, Hz.
    target_sr : int, keyword-only, optional
        Output rate, Hz; ``None`` keeps ``sr``.
    max_duration : float, keyword-only, optional
        Longest duration kept, seconds; longer input is truncated and a note recorded.
    min_samples : int, keyword-only
        Shorter output is zero-padded to this many samples and a note recorded.
    source : str, keyword-only
        Name used in messages.
    original_samples : int, keyword-only, optional
        Length of the source when ``y`` is already a truncated read of it (for the notes).

    Returns
    -------
    y : np.ndarray, float32, shape (n,)
    info : AudioInfo

    Raises
    ------
    AudioError
        Empty input, NaN/Inf samples, more than two dimensions, (channels, samples) layout,
        an invalid rate or ``max_duration``.
    """
    sr = _check_rate(sr, "sample rate", source)
    target_sr = sr if target_sr is None else _check_rate(target_sr, "target rate", source)
    _check_max_duration(max_duration, source)
    y = np.asarray(y)
    if y.ndim == 0 or y.ndim > 2:
        raise AudioError(f"{source}: expected a 1-D signal or (samples, channels), "
                         f"got shape {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        info_int = np.iinfo(y.dtype)
        # Unsigned PCM (8-bit WAV) is centred on the middle of its range.
        offset = (info_int.max + 1) / 2 if info_int.min == 0 else 0.0
        scale = (info_int.max + 1) / 2 if info_int.min == 0 else float(-info_int.min)
        y = (y.astype(np.float64) - offset) / scale
    elif not np.issubdtype(y.dtype, np.floating):
        raise AudioError(f"{source}: samples must be numeric, got dtype {y.dtype}")
    channels = 1 if y.ndim == 1 else y.shape[1]
    if y.ndim == 2:
        if channels == 0:
            raise AudioError(f"{source}: signal has zero channels")
        if 0 < y.shape[0] < channels:
            raise AudioError(f"{source}: shape {y.shape} looks like (channels, samples); "
                             "featurekit expects (samples, channels): pass y.T")
        y = y.mean(axis=1)
    source_samples = y.shape[0]
    if source_samples == 0:
        raise AudioError(f"{source}: contains zero samples")
    if not np.all(np.isfinite(y)):
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise AudioError(f"{source}: contains {bad} NaN or infinite sample(s)")
    peak = float(np.max(np.abs(y)))
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(f"{source}: sample magnitude reaches {peak:.3g}, far beyond full scale "
                         f"(1.0); float audio is expected in [-1, 1] (limit {MAX_ABS_SAMPLE:g})")
    original = source_samples if original_samples is None else int(original_samples)
    notes: list[str] = []
    if not np.any(y):
        notes.append(SILENCE_NOTE)
    truncated = False
    if max_duration is not None:
        limit = int(round(max_duration * sr))
        if source_samples > limit:
            y = y[:limit]
            truncated = True
            notes.append(f"truncated from {original / sr:.3f} s to {max_duration:g} s")
    y = y.astype(np.float32, copy=False)
    if target_sr != sr:
        y = soxr.resample(y, sr, target_sr, quality="HQ").astype(np.float32, copy=False)
        notes.append(f"resampled from {sr} Hz to {target_sr} Hz")
    padded = max(0, int(min_samples) - y.shape[0])
    if padded:
        y = np.concatenate([y, np.zeros(padded, dtype=np.float32)])
        notes.append(f"zero-padded by {padded} samples to {int(min_samples)}")
    for note in notes:
        if note != SILENCE_NOTE and not note.startswith("resampled"):
            logger.info("%s: %s", source, note)
    info = AudioInfo(source=source, source_sr=sr, channels=channels,
                     source_samples=original, sr=target_sr, truncated=truncated,
                     padded_samples=padded, notes=tuple(notes))
    return np.ascontiguousarray(y, dtype=np.float32), info


def load_audio_with_info(path: str | os.PathLike[str], sr: int | None = 22050, *,
                         max_duration: float | None = None,
                         min_samples: int = 0) -> tuple[np.ndarray, AudioInfo]:
    """Decode ``path`` into float32 mono at ``sr`` and report what was done.

    Parameters
    ----------
    path : path-like
        Audio file (WAV, FLAC, OGG, AIFF, MP3 where libsndfile supports it).
    sr : int or None
        Output sample rate, Hz; ``None`` keeps the file's rate.
    max_duration : float, keyword-only, optional
        Seconds to keep; only that much is read from disk, so huge files cost little.
    min_samples : int, keyword-only
        Zero-pad shorter clips to this length (recorded in ``info``).

    Raises
    ------
    AudioError
        Missing file, a directory, undecodable or non-audio content, zero samples,
        NaN/Inf samples.
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise AudioError(f"{source}: file not found")
    if not path.is_file():
        raise AudioError(f"{source}: not a regular file")
    _check_max_duration(max_duration, source)
    try:
        with sf.SoundFile(path) as handle:
            file_sr = handle.samplerate
            frames = -1
            if max_duration is not None and handle.frames > 0:
                frames = min(handle.frames, int(round(max_duration * file_sr)) + 1)
            data = handle.read(frames=frames, dtype="float32", always_2d=True)
            total_frames = handle.frames
    except sf.LibsndfileError as exc:
        raise AudioError(f"{source}: cannot decode audio ({exc.error_string or exc})") from exc
    except (RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{source}: cannot decode audio ({exc})") from exc
    y, info = prepare_waveform(data, file_sr, target_sr=sr, max_duration=max_duration,
                               min_samples=min_samples, source=source,
                               original_samples=int(total_frames))
    if total_frames > data.shape[0] and not info.truncated:
        raise AudioError(f"{source}: decoder returned {data.shape[0]} of {total_frames} frames")
    return y, info


def load_audio(path: str | os.PathLike[str], sr: int | None = 22050, *,
               max_duration: float | None = None,
               min_samples: int = 0) -> tuple[np.ndarray, int]:
    """Load an audio file as float32 mono at ``sr`` Hz.

    Multichannel audio is averaged; integer PCM of any bit depth is scaled to [-1, 1];
    resampling is soxr "HQ" (deterministic).

    Parameters
    ----------
    path : path-like
        Audio file.
    sr : int or None
        Output sample rate in Hz (default 22050); ``None`` keeps the file's rate.
    max_duration : float, keyword-only, optional
        Truncate to this many seconds (logged).
    min_samples : int, keyword-only
        Zero-pad shorter clips to this many samples (logged).

    Returns
    -------
    y : np.ndarray, float32, shape (n,)
    sr : int
        The output rate, Hz.

    Raises
    ------
    AudioError
        With the file name and the cause.

    Examples
    --------
    >>> y, sr = load_audio("dog_bark.wav", sr=22050)  # doctest: +SKIP
    """
    y, info = load_audio_with_info(path, sr, max_duration=max_duration, min_samples=min_samples)
    return y, info.sr
