"""``Analysis``: the shared per-clip intermediates, each computed at most once.

Every descriptor family reads from one :class:`Analysis`: one framing of the signal, one STFT
(magnitude and power), one mel spectrogram and MFCC matrix derived from it, one pitch track,
and one set of band envelopes at a finer hop for the modulation and stationarity families.
Attributes are computed lazily on first access and cached, so a family that is not requested
costs nothing, and no intermediate is ever computed twice.

Layout convention: frame-major arrays, ``(n_frames, n_bins)``; frame ``t`` is centred on sample
``t * hop_length`` (the signal is zero-padded by ``n_fft // 2`` on both sides, as in
``librosa.stft(center=True)``).
"""

from __future__ import annotations

from functools import cached_property, lru_cache

import numpy as np
import scipy.fft

from featurekit.config import ExtractionConfig
from featurekit.dsp.filterbanks import chroma_filterbank, mel_filterbank
from featurekit.dsp.pyin import PitchTrack, pitch_track
from featurekit.errors import AudioError

__all__ = ["Analysis"]

#: Power floor (and the −100 dB floor of every dB value).
AMIN = 1e-10
#: Dynamic range kept in the log-mel spectrogram, dB (librosa's ``power_to_db`` default).
TOP_DB = 80.0
#: The envelope STFT's window and hop are the main ones divided by this: at the defaults a
#: 23-ms window every 5.8 ms (172 frames/s), enough for modulations up to 45 Hz, which the
#: main hop (43 frames/s) cannot represent.
ENVELOPE_DECIMATION = 4


@lru_cache(maxsize=16)
def _window(n_fft: int) -> np.ndarray:
    # Periodic Hann (scipy's get_window("hann", fftbins=True)), without importing
    # scipy.signal, which costs every worker process half a second.
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


@lru_cache(maxsize=16)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmax: float | None) -> np.ndarray:
    # Transposed for frames @ basis.
    return np.ascontiguousarray(mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax).T)


@lru_cache(maxsize=16)
def _chroma_basis(sr: int, n_fft: int) -> np.ndarray:
    return np.ascontiguousarray(chroma_filterbank(sr=sr, n_fft=n_fft).T)


class Analysis:
    """Lazily computed intermediates of one clip under one :class:`ExtractionConfig`.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono waveform at ``config.sample_rate``; at least one sample, all finite.
    config : ExtractionConfig
        Analysis parameters.
    """

    def __init__(self, y: np.ndarray, config: ExtractionConfig) -> None:
        y = np.asarray(y)
        if y.ndim != 1 or y.size == 0:
            raise AudioError(f"Analysis needs a non-empty 1-D waveform, got shape {y.shape}")
        if not np.all(np.isfinite(y)):
            raise AudioError("Analysis needs finite samples (NaN or Inf found)")
        # float32 throughout the spectral path, as librosa does: half the memory traffic,
        # and the precision is far beyond that of any audio file.
        self.y = y.astype(np.float32)
        self.config = config
        self.sr = config.sample_rate

    # -- framing and STFT ----------------------------------------------------------------
    @cached_property
    def frames(self) -> np.ndarray:
        """Signal frames, ``(n_frames, n_fft)``, zero-padded at both ends (a read-only view)."""
        half = self.config.n_fft // 2
        padded = np.pad(self.y, half)
        windows = np.lib.stride_tricks.sliding_window_view(padded, self.config.n_fft)
        return windows[:: self.config.hop_length]

    @property
    def n_frames(self) -> int:
        return self.frames.shape[0]

    @cached_property
    def interior(self) -> np.ndarray:
        """Whether each frame's window lies wholly inside the clip (no zero padding),
        ``(n_frames,)`` bool."""
        starts = np.arange(self.n_frames) * self.config.hop_length - self.config.n_fft // 2
        return (starts >= 0) & (starts + self.config.n_fft <= self.y.size)

    @cached_property
    def times(self) -> np.ndarray:
        """Frame centre times, seconds, ``(n_frames,)``."""
        return np.arange(self.n_frames) * (self.config.hop_length / self.sr)

    @cached_property
    def freqs(self) -> np.ndarray:
        """STFT bin frequencies, Hz, ``(n_fft // 2 + 1,)``."""
        return np.fft.rfftfreq(self.config.n_fft, d=1.0 / self.sr)

    @property
    def window(self) -> np.ndarray:
        """The STFT's periodic Hann window, ``(n_fft,)`` float32."""
        return _window(self.config.n_fft)

    @cached_property
    def magnitude(self) -> np.ndarray:
        """|STFT| with a periodic Hann window, ``(n_frames, n_fft // 2 + 1)``."""
        return np.abs(scipy.fft.rfft(self.frames * self.window, axis=1))

    @cached_property
    def power(self) -> np.ndarray:
        """|STFT|², ``(n_frames, n_fft // 2 + 1)``."""
        return self.magnitude**2

    @cached_property
    def rms(self) -> np.ndarray:
        """Root-mean-square amplitude of each (unwindowed) frame, ``(n_frames,)``."""
        energy = np.einsum("ij,ij->i", self.frames, self.frames, dtype=np.float64)
        return np.sqrt(energy / self.config.n_fft)

    # -- mel, MFCC, chroma ---------------------------------------------------------------
    @cached_property
    def mel_power(self) -> np.ndarray:
        """Mel-band power, ``(n_frames, n_mels)``."""
        basis = _mel_basis(self.sr, self.config.n_fft, self.config.n_mels,
                           self.config.mel_fmax_hz)
        return self.power @ basis

    @cached_property
    def log_mel(self) -> np.ndarray:
        """Mel-band power in dB re 1, floored at ``max - 80 dB``, ``(n_frames, n_mels)``."""
        db = 10.0 * np.log10(np.maximum(self.mel_power, AMIN))
        return np.maximum(db, db.max() - TOP_DB)

    @cached_property
    def log_mel_change(self) -> np.ndarray:
        """Frame-to-frame change of :attr:`log_mel`, dB, ``(n_frames, n_mels)``.

        Row ``t`` is ``log_mel[t] - log_mel[t - 1]``; it is 0 where either frame's window
        overhangs an end of the clip (and in row 0): there the zero padding, not the sound,
        changes the spectrum, and a clip cut mid-sound would otherwise start and end with
        a broadband burst.
        """
        change = np.diff(self.log_mel, axis=0, prepend=self.log_mel[:1])
        change[~(self.interior & np.roll(self.interior, 1))] = 0.0
        return change

    @cached_property
    def mfcc(self) -> np.ndarray:
        """MFCC (DCT-II, orthonormal, of :attr:`log_mel`), ``(n_frames, n_mfcc)``."""
        return scipy.fft.dct(self.log_mel, type=2, norm="ortho", axis=1)[:, : self.config.n_mfcc]

    @cached_property
    def chroma(self) -> np.ndarray:
        """Chroma energy, max-normalised per frame (silent frames 0), ``(n_frames, 12)``."""
        energy = self.power @ _chroma_basis(self.sr, self.config.n_fft)
        peak = energy.max(axis=1, keepdims=True)
        return np.divide(energy, peak, out=np.zeros_like(energy), where=peak > AMIN)

    # -- band envelopes -----------------------------------------------------------------
    @property
    def envelope_rate(self) -> float:
        """Frames per second of :attr:`envelopes`."""
        return self.sr / max(1, self.config.hop_length // ENVELOPE_DECIMATION)

    @cached_property
    def envelopes(self) -> np.ndarray:
        """Amplitude envelopes of ``config.envelope_bands`` mel-band groups at a fine hop.

        A second, short STFT (window and hop :data:`ENVELOPE_DECIMATION` times smaller than
        the main ones), its power summed by a mel filterbank of ``config.envelope_bands``
        bands, square-rooted. Returns ``(n_envelope_frames, envelope_bands)`` float32.
        """
        n_fft = self.config.n_fft // ENVELOPE_DECIMATION
        hop = max(1, self.config.hop_length // ENVELOPE_DECIMATION)
        padded = np.pad(self.y, n_fft // 2)
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
        power = np.abs(scipy.fft.rfft(frames * _window(n_fft), axis=1)) ** 2
        return np.sqrt(power @ _mel_basis(self.sr, n_fft, self.config.envelope_bands, None))

    # -- pitch ---------------------------------------------------------------------------
    @cached_property
    def pitch(self) -> PitchTrack:
        """Probabilistic-YIN pitch track on the shared frames."""
        return pitch_track(self.frames, sr=self.sr, fmin=self.config.fmin_hz,
                           fmax=self.config.fmax_hz,
                           voicing_threshold=self.config.voicing_threshold)
