"""Our filterbanks equal librosa's (which we no longer import at extraction time)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from featurekit.dsp.filterbanks import chroma_filterbank, hz_to_mel, mel_filterbank, mel_to_hz


@pytest.mark.parametrize(("sr", "n_fft", "n_mels", "fmax"),
                         [(22050, 2048, 64, None), (32000, 1024, 128, 15000.0),
                          (16000, 512, 40, None), (8000, 256, 20, 3000.0)])
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmax):
    ours = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 * theirs.max())


@pytest.mark.parametrize(("sr", "n_fft"), [(22050, 2048), (44100, 4096), (16000, 512)])
def test_chroma_filterbank_matches_librosa(sr, n_fft):
    ours = chroma_filterbank(sr=sr, n_fft=n_fft)
    theirs = librosa.filters.chroma(sr=sr, n_fft=n_fft)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_mel_scale_round_trip_and_knee():
    hz = np.array([0.0, 200.0, 999.0, 1000.0, 4000.0, 11025.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-10, atol=1e-9)
    assert hz_to_mel(np.array(1000.0)) == pytest.approx(15.0)
    np.testing.assert_allclose(hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-10)


def test_a440_lands_in_the_a_row():
    bank = chroma_filterbank(sr=22050, n_fft=4096)
    bin_440 = round(440 * 4096 / 22050)
    assert np.argmax(bank[:, bin_440]) == 9  # C=0 ... A=9
