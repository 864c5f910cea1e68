"""Test-time corruptions of a waveform: noise, background, low-pass, gain, reverberation, MP3.

Pure functions in librosa's style: a 1-D (mono) waveform in, a float32 waveform of the same
length out, options keyword-only. Random draws come only from the ``numpy.random.Generator``
passed in, so one seed gives one output. A waveform that is not 1-D, is empty or holds NaN/inf
raises :class:`~featurekit.errors.AudioError`, and so does a silent clip where the corruption
is relative to its power (an SNR, reverberation rescaled to its loudness); parameters out of
range raise :class:`ValueError`. Noise is scaled to the *measured* power of the noise drawn,
so the result's SNR is the one asked for to float precision. The MP3 round trip needs
``featurekit[mp3]`` (``lameenc``); libsndfile (>= 1.1, shipped by soundfile) decodes it.
"""

from __future__ import annotations

import io

import numpy as np

from featurekit._util.optional import require
from featurekit.errors import AudioError, MissingDependencyError

__all__ = ["LAME_BITRATES", "MP3_CODEC_DELAY", "MP3_SAMPLE_RATES", "add_background",
           "add_white_noise", "apply_gain", "check_mp3_bitrate", "lowpass", "mp3_rate_for",
           "mp3_roundtrip", "reverberate", "room_impulse_response"]

#: The sample rates of MP3 (layer III), by MPEG version, in Hz.
MP3_SAMPLE_RATES: dict[str, tuple[int, ...]] = {
    "MPEG-1": (32000, 44100, 48000),
    "MPEG-2": (16000, 22050, 24000),
    "MPEG-2.5": (8000, 11025, 12000),
}
#: The constant bitrates LAME encodes at each MPEG version's rates, in kbit/s. MPEG-1 and
#: MPEG-2 are the standard's layer III tables; MPEG-2.5 shares MPEG-2's table in the standard,
#: but LAME caps it at 64 kbit/s. LAME never refuses a bitrate: it silently encodes at the
#: nearest one of the table (80 kbit/s at 8 kHz gives 64), hence :func:`mp3_rate_for`.
LAME_BITRATES: dict[str, tuple[int, ...]] = {
    "MPEG-1": (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    "MPEG-2": (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    "MPEG-2.5": (8, 16, 24, 32, 40, 48, 56, 64),
}
#: Samples by which a LAME encode then libsndfile (mpg123) decode lags the input, at every
#: rate and bitrate: LAME's encoder delay (576) plus the decoder's (528 + 1). lameenc writes
#: no LAME/Xing header, so the decoder cannot trim it; :func:`mp3_roundtrip` does.
MP3_CODEC_DELAY = 1105
#: LAME's algorithm quality, 0 (best, slowest) to 9; 2 is LAME's recommended "near-best".
MP3_QUALITY = 2
#: Peak level the waveform is scaled down to (when louder) before 16-bit PCM enters LAME, and
#: scaled back up from after decoding, so that neither the encoder's input nor the decoder's
#: overshoot clips a float waveform that exceeds full scale.
MP3_HEADROOM = 0.5

_RT60_DECAY = np.log(1000.0)  # amplitude exp(-6.908 t / RT60) is -60 dB at t = RT60


def _waveform(y: object, name: str = "y") -> np.ndarray:
    """``y`` as a float64 1-D array, or an AudioError saying what is wrong with it."""
    array = np.asarray(y)
    if array.dtype.kind not in "fiu":
        raise AudioError(f"{name} must be a real-valued waveform, got dtype {array.dtype}")
    if array.ndim != 1:
        raise AudioError(f"{name} must be a 1-D (mono) waveform, got shape {array.shape}; "
                         "mix channels down first")
    if array.size == 0:
        raise AudioError(f"{name} is empty (0 samples)")
    array = array.astype(np.float64)
    if bad := np.count_nonzero(~np.isfinite(array)):
        raise AudioError(f"{name} holds {bad} non-finite sample(s) (NaN or inf)")
    return array


def _energy(y: np.ndarray, name: str, why: str) -> float:
    energy = float(np.dot(y, y))
    if energy == 0.0:
        raise AudioError(f"{name} is silent (all zeros): {why}")
    return energy


def _finite(value: float, name: str) -> float:
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def _rate(sr: int) -> int:
    if isinstance(sr, bool) or int(sr) != sr or sr <= 0:
        raise ValueError(f"sr must be a positive whole number of Hz, got {sr!r}")
    return int(sr)


def _generator(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), "
                        f"got {type(rng).__name__}")
    return rng


def _mix_at_snr(y: np.ndarray, noise: np.ndarray, snr_db: float, what: str) -> np.ndarray:
    """``y + g * noise`` with ``g`` such that the measured SNR is ``snr_db``."""
    signal = _energy(y, "y", "the signal-to-noise ratio is undefined")
    power = _energy(noise, what, f"it cannot be scaled to an SNR of {snr_db:g} dB")
    gain = np.sqrt(signal / (power * 10.0 ** (snr_db / 10.0)))
    return (y + gain * noise).astype(np.float32)


def add_white_noise(y: np.ndarray, *, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian white noise at a given signal-to-noise ratio.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono waveform (any sample rate; amplitude in full-scale units).
    snr_db : float, keyword-only
        Signal-to-noise ratio, dB: ``10 log10(sum(y**2) / sum(noise**2))`` of the noise
        actually added, exact to float precision (the noise drawn is scaled to its measured
        power, not to its expected power).
    rng : numpy.random.Generator, keyword-only
        Source of the noise.

    Returns
    -------
    np.ndarray, float32, shape (n,)

    Raises
    ------
    AudioError
        ``y`` is not 1-D, is empty, holds NaN/inf, or is silent (the SNR is undefined).
    """
    y = _waveform(y)
    snr_db = _finite(snr_db, "snr_db")
    noise = _generator(rng).standard_normal(y.size)
    return _mix_at_snr(y, noise, snr_db, "the white noise drawn")


def add_background(y: np.ndarray, noise: np.ndarray, *, snr_db: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Mix in a background recording at a given signal-to-noise ratio.

    A segment of ``len(y)`` samples starts at a random offset into ``noise``. A background
    shorter than ``y`` is looped (read cyclically from the offset; the loop point is not
    cross-faded). The segment is scaled so that the measured SNR is ``snr_db``.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono waveform.
    noise : np.ndarray, shape (m,)
        Mono background recording at ``y``'s sample rate (any length).
    snr_db : float, keyword-only
        Signal-to-noise ratio, dB, of ``y`` to the segment actually added.
    rng : numpy.random.Generator, keyword-only
        Draws the offset.

    Returns
    -------
    np.ndarray, float32, shape (n,)

    Raises
    ------
    AudioError
        ``y`` or ``noise`` is not 1-D, is empty or holds NaN/inf; ``y`` is silent; the
        background, or the segment of it drawn, is silent.
    """
    y = _waveform(y)
    noise = _waveform(noise, "the background recording")
    snr_db = _finite(snr_db, "snr_db")
    _energy(noise, "the background recording", "it cannot be mixed in at an SNR")
    rng = _generator(rng)
    if noise.size >= y.size:
        offset = int(rng.integers(noise.size - y.size + 1))
        segment = noise[offset:offset + y.size]
    else:
        offset = int(rng.integers(noise.size))
        segment = np.take(noise, np.arange(offset, offset + y.size), mode="wrap")
    return _mix_at_snr(y, segment, snr_db, f"the background segment at sample {offset}")


def lowpass(y: np.ndarray, *, sr: int, cutoff_hz: float, order: int = 8) -> np.ndarray:
    """Low-pass filter, zero-phase (Butterworth, run forward and backward).

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono waveform.
    sr : int, keyword-only
        Sample rate, Hz.
    cutoff_hz : float, keyword-only
        Cutoff frequency, Hz, with ``0 < cutoff_hz < sr / 2``. The filter runs twice
        (:func:`scipy.signal.sosfiltfilt`), so the response is the Butterworth's squared:
        -6 dB at the cutoff, and ``2 * order * 6`` dB per octave above it.
    order : int, keyword-only
        Order of the Butterworth filter (second-order sections).

    Returns
    -------
    np.ndarray, float32, shape (n,)

    Raises
    ------
    AudioError
        ``y`` is not 1-D, is empty or holds NaN/inf.
    ValueError
        ``sr`` is not a positive integer, ``cutoff_hz`` is not within ``(0, sr / 2)``, or
        ``order`` is not a positive integer.
    """
    from scipy import signal  # importing scipy.signal costs a worker half a second

    y = _waveform(y)
    sr = _rate(sr)
    cutoff_hz = _finite(cutoff_hz, "cutoff_hz")
    if not 0.0 < cutoff_hz < sr / 2:
        raise ValueError(f"cutoff_hz must lie strictly between 0 and the Nyquist frequency "
                         f"{sr / 2:g} Hz (sr={sr}), got {cutoff_hz:g}")
    if isinstance(order, bool) or int(order) != order or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    sos = signal.butter(int(order), cutoff_hz, btype="lowpass", fs=sr, output="sos")
    padlen = min(3 * (2 * sos.shape[0] + 1), y.size - 1)  # scipy's default, or what fits
    return signal.sosfiltfilt(sos, y, padlen=padlen).astype(np.float32)


def apply_gain(y: np.ndarray, *, gain_db: float) -> np.ndarray:
    """Scale the waveform by a gain in dB.

    The result is not clipped to [-1, 1]: float audio represents levels above full scale
    exactly, and clipping would add distortion, a different corruption, to a gain change.
    Clipping, if any, happens where the audio is written to a fixed-point format.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono waveform.
    gain_db : float, keyword-only
        Gain, dB: ``y`` is multiplied by ``10 ** (gain_db / 20)``.

    Returns
    -------
    np.ndarray, float32, shape (n,)

    Raises
    ------
    AudioError
        ``y`` is not 1-D, is empty or holds NaN/inf (``ValueError``: ``gain_db`` is not).
    """
    y = _waveform(y)
    gain_db = _finite(gain_db, "gain_db")
    return (y * 10.0 ** (gain_db / 20.0)).astype(np.float32)


def room_impulse_response(*, sr: int, rt60_s: float, rng: np.random.Generator,
                          length_s: float | None = None, drr_db: float = 0.0) -> np.ndarray:
    """A synthetic room impulse response with a given reverberation time.

    A direct-path impulse at ``t = 0`` followed by a diffuse tail of Gaussian noise under the
    amplitude envelope ``exp(-ln(1000) t / rt60_s)`` (``exp(-6.908 t / RT60)``): the energy
    decays by 60 dB in ``rt60_s`` seconds (Sabine's definition of RT60).

    Parameters
    ----------
    sr : int, keyword-only
        Sample rate, Hz.
    rt60_s : float, keyword-only
        Reverberation time, seconds (> 0).
    rng : numpy.random.Generator, keyword-only
        Draws the tail.
    length_s : float, optional, keyword-only
        Length of the response, seconds (default ``1.2 * rt60_s``, where the tail is 72 dB
        down).
    drr_db : float, keyword-only
        Direct-to-reverberant ratio, dB: the direct impulse's energy over the tail's. 0 dB is
        a source at the room's critical distance; lower is farther.

    Returns
    -------
    np.ndarray, float32, shape (round(length_s * sr),)
        The response, normalised to unit energy (``sum(h**2) == 1``).

    Raises
    ------
    ValueError
        ``sr``, ``rt60_s`` or ``length_s`` not positive, a response under two samples.
    """
    sr = _rate(sr)
    rt60_s = _finite(rt60_s, "rt60_s")
    length_s = 1.2 * rt60_s if length_s is None else _finite(length_s, "length_s")
    drr_db = _finite(drr_db, "drr_db")
    n = int(round(length_s * sr))
    if rt60_s <= 0 or n < 2:
        raise ValueError(f"rt60_s={rt60_s:g} s and length_s={length_s:g} s at sr={sr} Hz give "
                         "no reverberant tail; both must be positive and span 2+ samples")
    t = np.arange(1, n) / sr
    tail = _generator(rng).standard_normal(n - 1) * np.exp(-_RT60_DECAY * t / rt60_s)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.dot(tail, tail))  # direct energy is 1
    h = np.concatenate([[1.0], tail])
    return (h / np.sqrt(np.dot(h, h))).astype(np.float32)


def reverberate(y: np.ndarray, *, sr: int, rt60_s: float, rng: np.random.Generator,
                wet: float = 1.0, drr_db: float = 0.0) -> np.ndarray:
    """Reverberate the waveform in a synthetic room (see :func:`room_impulse_response`).

    ``y`` is convolved with the room's impulse response (direct path included), the tail
    past ``len(y)`` dropped, mixed with the dry ``y`` by ``wet``, and rescaled to ``y``'s RMS,
    so that loudness does not change.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono waveform.
    sr : int, keyword-only
        Sample rate, Hz.
    rt60_s : float, keyword-only
        Reverberation time, seconds.
    rng : numpy.random.Generator, keyword-only
        Draws the impulse response.
    wet : float, keyword-only
        Share of the reverberated signal in the mix, 0 to 1: ``(1 - wet) * y + wet *
        (h * y)``; 1 (the default) is the room alone.
    drr_db : float, keyword-only
        Direct-to-reverberant ratio of the room, dB.

    Returns
    -------
    np.ndarray, float32, shape (n,)
        With the RMS of ``y``.

    Raises
    ------
    AudioError
        ``y`` is not 1-D, is empty, holds NaN/inf, or is silent (nothing to rescale to).
    ValueError
        ``wet`` outside [0, 1], or a room parameter (:func:`room_impulse_response`).
    """
    from scipy.signal import fftconvolve

    y = _waveform(y)
    energy = _energy(y, "y", "reverberation rescaled to its loudness is undefined")
    wet = _finite(wet, "wet")
    if not 0.0 <= wet <= 1.0:
        raise ValueError(f"wet must lie in [0, 1], got {wet:g}")
    h = room_impulse_response(sr=sr, rt60_s=rt60_s, rng=rng, drr_db=drr_db)
    mixed = (1.0 - wet) * y + wet * fftconvolve(y, h.astype(np.float64))[:y.size]
    out_energy = _energy(mixed, "the reverberated clip", "it cannot be rescaled")
    return (mixed * np.sqrt(energy / out_energy)).astype(np.float32)


def check_mp3_bitrate(kbps: int) -> int:
    """``kbps`` (kbit/s) as an int; ValueError when no MPEG layer III version's table
    (:data:`LAME_BITRATES`) holds it."""
    valid = sorted({rate for rates in LAME_BITRATES.values() for rate in rates})
    if isinstance(kbps, bool) or kbps not in valid:
        raise ValueError(f"{kbps!r} kbit/s is no MP3 (MPEG layer III) bitrate; choose from "
                         f"{', '.join(map(str, valid))}")
    return int(kbps)


def mp3_rate_for(sr: int, kbps: int) -> int:
    """The sample rate to MP3-encode a clip of rate ``sr`` at, for bitrate ``kbps``.

    ``sr`` itself when it is an MP3 rate whose MPEG version takes ``kbps``; otherwise the
    lowest rate at or above ``sr`` whose version takes it (no information lost to
    resampling), else the highest rate that takes it.

    Parameters
    ----------
    sr : int
        The clip's sample rate, Hz.
    kbps : int
        Constant bitrate, kbit/s.

    Returns
    -------
    int
        A rate of :data:`MP3_SAMPLE_RATES`, Hz (ValueError: no MP3 rate takes ``kbps``).

    Examples
    --------
    >>> mp3_rate_for(44100, 128), mp3_rate_for(44100, 8), mp3_rate_for(8000, 128)
    (44100, 24000, 16000)
    """
    sr = _rate(sr)
    kbps = check_mp3_bitrate(kbps)
    rates = sorted(rate for version, rates in MP3_SAMPLE_RATES.items()
                   if kbps in LAME_BITRATES[version] for rate in rates)
    if sr in rates:
        return sr
    return next((rate for rate in rates if rate >= sr), rates[-1])


def mp3_roundtrip(y: np.ndarray, *, sr: int, kbps: int) -> np.ndarray:
    """Encode the waveform to MP3 and decode it back, time-aligned with the input.

    Constant-bitrate LAME (quality :data:`MP3_QUALITY`, mono) through ``lameenc``; decoded by
    libsndfile. A clip whose rate is not an MP3 rate for ``kbps`` is resampled (soxr, HQ) to
    :func:`mp3_rate_for`'s rate and back. The codec delay (:data:`MP3_CODEC_DELAY` samples)
    is removed, so the output lines up with the input sample for sample. The waveform enters
    LAME as 16-bit PCM, scaled down to a peak of :data:`MP3_HEADROOM` when louder (and back
    up after), so a loud float clip is not clipped.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono waveform.
    sr : int, keyword-only
        Sample rate, Hz.
    kbps : int, keyword-only
        Constant bitrate, kbit/s (:func:`check_mp3_bitrate`).

    Returns
    -------
    np.ndarray, float32, shape (n,)

    Raises
    ------
    AudioError
        ``y`` is not 1-D, is empty or holds NaN/inf (``ValueError``: ``kbps`` is no MP3 bitrate).
    MissingDependencyError
        ``lameenc`` is not installed (``pip install "featurekit[mp3]"``), or libsndfile is
        older than 1.1 and cannot decode MP3.
    """
    import soundfile as sf
    import soxr

    y = _waveform(y)
    sr = _rate(sr)
    rate = mp3_rate_for(sr, kbps)
    lameenc = require("lameenc", extra="mp3", purpose="the MP3 round trip (mp3_roundtrip)")
    if "MP3" not in sf.available_formats():
        raise MissingDependencyError(
            f"decoding MP3 needs libsndfile >= 1.1; soundfile uses libsndfile "
            f"{sf.__libsndfile_version__}: upgrade it with pip install -U soundfile")
    coded = y if rate == sr else soxr.resample(y, sr, rate, quality="HQ")
    peak = float(np.max(np.abs(coded)))
    scale = MP3_HEADROOM / peak if peak > MP3_HEADROOM else 1.0
    pcm = np.round(np.clip(coded * scale, -1.0, 1.0) * 32767.0).astype("<i2")
    encoder = lameenc.Encoder()
    encoder.set_channels(1)
    encoder.set_in_sample_rate(rate)
    encoder.set_out_sample_rate(rate)  # else LAME picks a lower rate for low bitrates
    encoder.set_bit_rate(int(kbps))
    encoder.set_quality(MP3_QUALITY)
    data = bytes(encoder.encode(pcm.tobytes())) + bytes(encoder.flush())
    decoded, _ = sf.read(io.BytesIO(data), dtype="float64", always_2d=False)
    decoded = decoded[MP3_CODEC_DELAY:MP3_CODEC_DELAY + coded.size] / scale
    decoded = np.pad(decoded, (0, coded.size - decoded.size))
    if rate != sr:
        decoded = soxr.resample(decoded, rate, sr, quality="HQ")
    return np.pad(decoded[:y.size], (0, max(0, y.size - decoded.size))).astype(np.float32)
