"""Front ends of the pretrained models: waveform → log-mel, in each publisher's own convention.

Two conventions are reproduced exactly, because the networks were trained on them:

* EfficientAT (:class:`KaldiLogMel`): pre-emphasis, symmetric Hann window of 800 samples centred
  in a 1024-point FFT, power spectrum, a Kaldi-style triangular mel bank (no area
  normalisation, Nyquist bin ignored), ``(log(mel + 1e-5) + 4.5) / 5``. The bank is derived
  from the configuration and is not part of any checkpoint.
* PANNs (:class:`ConvSTFT`, :class:`PannsSpectrogram`, :class:`PannsLogMel`): a reflect-padded
  STFT computed as a strided convolution with windowed DFT kernels, power spectrum, a Slaney
  mel bank, ``10·log10(max(mel, 1e-10))`` dB. The DFT kernels and the mel bank are checkpoint
  entries (frozen parameters), so they are registered under the publisher's names and loaded
  from the file.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvSTFT", "KaldiLogMel", "PannsLogMel", "PannsSpectrogram", "dft_kernels",
           "kaldi_mel_bank", "slaney_mel_bank"]


def _kaldi_mel(freq_hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(freq_hz / 700.0)


def kaldi_mel_bank(*, n_mels: int, n_fft: int, sr: int, fmin: float,
                   fmax: float) -> np.ndarray:
    """Kaldi-style triangular mel filters over the bins of a one-sided spectrum.

    Triangles are equally spaced on the mel scale ``1127·ln(1 + f/700)`` between ``fmin`` and
    ``fmax``, peak 1, no area normalisation. They are evaluated at the ``n_fft/2`` bins
    ``k·sr/n_fft`` (k = 0 … n_fft/2 − 1); the Nyquist bin gets weight 0.

    Parameters
    ----------
    n_mels : int, keyword-only
        Number of bands.
    n_fft : int, keyword-only
        FFT size, samples.
    sr : int, keyword-only
        Sample rate, Hz.
    fmin, fmax : float, keyword-only
        Edge frequencies of the lowest and highest triangle, Hz (``0 <= fmin < fmax <= sr/2``).

    Returns
    -------
    np.ndarray, float32, shape (n_mels, n_fft // 2 + 1)
    """
    if not 0 <= fmin < fmax <= sr / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}, sr={sr}")
    mel_low, mel_high = _kaldi_mel(np.float64(fmin)), _kaldi_mel(np.float64(fmax))
    delta = (mel_high - mel_low) / (n_mels + 1)
    band = np.arange(n_mels, dtype=np.float64)[:, None]
    left, centre, right = (mel_low + (band + i) * delta for i in range(3))
    bin_mel = _kaldi_mel(np.arange(n_fft // 2, dtype=np.float64) * sr / n_fft)[None, :]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    return np.pad(bank, ((0, 0), (0, 1))).astype(np.float32)


class KaldiLogMel(nn.Module):
    """EfficientAT's evaluation-mode front end.

    Parameters
    ----------
    sr : int
        Sample rate of the input, Hz.
    n_fft, win_length, hop_length : int
        FFT size, window length and hop, samples.
    n_mels : int
        Mel bands.
    fmin, fmax : float
        Mel bank edges, Hz (EfficientAT evaluates with 0 and 15000).
    preemphasis : float
        Coefficient of ``y[t] = x[t+1] − c·x[t]`` (the output is one sample shorter).

    Notes
    -----
    Holds only non-persistent buffers, so it adds nothing to ``state_dict``.
    """

    def __init__(self, *, sr: int = 32000, n_fft: int = 1024, win_length: int = 800,
                 hop_length: int = 320, n_mels: int = 128, fmin: float = 0.0,
                 fmax: float = 15000.0, preemphasis: float = 0.97) -> None:
        super().__init__()
        self.sr, self.n_fft, self.hop_length = sr, n_fft, hop_length
        self.preemphasis = preemphasis
        # torch.stft pads a shorter window with zeros on both sides to n_fft.
        self.register_buffer("window", torch.hann_window(win_length, periodic=False),
                             persistent=False)
        bank = kaldi_mel_bank(n_mels=n_mels, n_fft=n_fft, sr=sr, fmin=fmin, fmax=fmax)
        self.register_buffer("mel_bank", torch.from_numpy(bank), persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel of ``waveforms`` (batch, samples) → (batch, n_mels, frames).

        ``frames = 1 + (samples − 1) // hop_length``.
        """
        emphasised = waveforms[:, 1:] - self.preemphasis * waveforms[:, :-1]
        spec = torch.stft(emphasised, self.n_fft, hop_length=self.hop_length,
                          win_length=self.window.shape[0], window=self.window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True,
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_bank, power.float())
        return (torch.log(mel + 1e-5) + 4.5) / 5.0


def dft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Periodic-Hann-windowed DFT kernels (real, imaginary) of the one-sided spectrum.

    Returns
    -------
    real, imag : np.ndarray, float32, shape (n_fft // 2 + 1, 1, n_fft)
        ``w[n]·cos(2πkn/N)`` and ``−w[n]·sin(2πkn/N)``, k = 0 … N/2.
    """
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    angle = 2 * np.pi * k * n / n_fft
    real = (np.cos(angle) * window)[:, None, :].astype(np.float32)
    imag = (-np.sin(angle) * window)[:, None, :].astype(np.float32)
    return real, imag


def slaney_mel_bank(*, sr: int, n_fft: int, n_mels: int, fmin: float,
                    fmax: float) -> np.ndarray:
    """librosa's default (Slaney scale, area-normalised) mel bank, shape (n_mels, n_fft//2+1)."""
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                               fmax=fmax).astype(np.float32)


class ConvSTFT(nn.Module):
    """STFT as a strided convolution; ``conv_real`` / ``conv_imag`` are checkpoint entries."""

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        n_bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, n_bins, n_fft, stride=hop_length, bias=False)
        self.conv_imag = nn.Conv1d(1, n_bins, n_fft, stride=hop_length, bias=False)
        real, imag = dft_kernels(n_fft)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(real))
            self.conv_imag.weight.copy_(torch.from_numpy(imag))
        for param in self.parameters():
            param.requires_grad_(False)

    def forward(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, samples) → real, imag parts, each (batch, bins, 1 + samples // hop)."""
        half = self.n_fft // 2
        padded = F.pad(waveforms[:, None, :], (half, half), mode="reflect")
        # One convolution over both kernel sets halves the passes over the signal.
        kernels = torch.cat([self.conv_real.weight, self.conv_imag.weight])
        both = F.conv1d(padded, kernels, stride=self.hop_length)
        return both.split(self.conv_real.weight.shape[0], dim=1)


class PannsSpectrogram(nn.Module):
    """Power spectrogram of PANNs, (batch, samples) → (batch, 1, frames, bins)."""

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.stft = ConvSTFT(n_fft, hop_length)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(waveforms)
        return (real.square() + imag.square()).transpose(1, 2)[:, None]


class PannsLogMel(nn.Module):
    """dB log-mel of PANNs; ``melW`` (bins, n_mels) is a checkpoint entry.

    ``10·log10(max(power @ melW, 1e-10))`` with reference 1 and no dynamic-range clipping.
    """

    def __init__(self, *, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> None:
        super().__init__()
        bank = slaney_mel_bank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.melW = nn.Parameter(torch.from_numpy(np.ascontiguousarray(bank.T)),
                                 requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(torch.matmul(power, self.melW), min=1e-10))
