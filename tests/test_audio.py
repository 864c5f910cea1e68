"""Audio loading: formats, bit depths, channels, rates, and every bad-input message."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from featurekit import load_audio
from featurekit.errors import AudioError
from featurekit.io.audio import load_audio_with_info, prepare_waveform


def tone(sr: int, seconds: float = 0.5, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return amp * np.sin(2 * np.pi * freq * t)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_bit_depths_scale_to_unit_range(tmp_path, subtype):
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, tone(16000), 16000, subtype=subtype)
    y, sr = load_audio(path, sr=16000)
    assert sr == 16000 and y.dtype == np.float32 and y.ndim == 1
    assert y.size == 8000
    tolerance = 1e-2 if subtype == "PCM_U8" else 1e-4
    assert abs(np.max(np.abs(y)) - 0.5) < tolerance


def test_stereo_is_averaged(tmp_path):
    left, right = tone(22050), np.zeros(11025)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 22050, subtype="FLOAT")
    y, _ = load_audio(path, sr=22050)
    np.testing.assert_allclose(y, (left / 2).astype(np.float32), atol=1e-7)


@pytest.mark.parametrize("file_sr", [8000, 96000])
def test_resampling_keeps_duration_and_pitch(tmp_path, file_sr):
    path = tmp_path / "x.wav"
    sf.write(path, tone(file_sr, seconds=1.0, freq=1000.0), file_sr, subtype="PCM_24")
    y, sr = load_audio(path, sr=22050)
    assert sr == 22050 and y.size == 22050
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    peak_hz = np.argmax(spectrum) * sr / y.size
    assert abs(peak_hz - 1000.0) <= 2.0


def test_resampling_is_deterministic(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, tone(44100, seconds=1.0), 44100)
    assert np.array_equal(load_audio(path, sr=22050)[0], load_audio(path, sr=22050)[0])


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "AIFF"])
def test_compressed_and_other_containers(tmp_path, fmt):
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, tone(44100), 44100, format=fmt)
    y, sr = load_audio(path, sr=22050)
    assert sr == 22050 and abs(y.size - 11025) <= 1
    assert 0.4 < np.max(np.abs(y)) < 0.6


def test_sr_none_keeps_file_rate(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, tone(8000), 8000)
    assert load_audio(path, sr=None)[1] == 8000


def test_max_duration_truncates_and_records(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, tone(8000, seconds=3.0), 8000)
    y, info = load_audio_with_info(path, 8000, max_duration=1.0)
    assert y.size == 8000 and info.truncated and info.source_samples == 24000
    assert any("truncated" in note for note in info.notes)


def test_min_samples_pads_and_records(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, tone(8000, seconds=0.01), 8000)
    y, info = load_audio_with_info(path, 8000, min_samples=2048)
    assert y.size == 2048 and info.padded_samples == 2048 - 80
    assert np.all(y[80:] == 0)
    assert any("zero-padded" in note for note in info.notes)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        load_audio(tmp_path / "nope.wav")


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path)


def test_not_audio(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("this is not audio")
    with pytest.raises(AudioError, match=r"text\.wav: cannot decode audio"):
        load_audio(path)


def test_truncated_header_is_undecodable(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(8000), 8000)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(AudioError, match="cannot decode audio"):
        load_audio(path)


def test_zero_samples(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0), 8000)
    with pytest.raises(AudioError, match=r"empty\.wav: contains zero samples"):
        load_audio(path)


def test_nan_samples(tmp_path):
    data = tone(8000)
    data[10] = np.nan
    data[20] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, data, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains 2 NaN or infinite"):
        load_audio(path)


def test_prepare_waveform_validates_arrays():
    with pytest.raises(AudioError, match="positive integer"):
        prepare_waveform(np.zeros(10), 0)
    with pytest.raises(AudioError, match="1-D signal"):
        prepare_waveform(np.zeros((2, 2, 2)), 8000)
    with pytest.raises(AudioError, match="zero samples"):
        prepare_waveform(np.zeros(0), 8000)
    y, info = prepare_waveform(np.array([0, 16384, -32768], dtype=np.int16), 8000)
    np.testing.assert_allclose(y, [0.0, 0.5, -1.0])
    assert info.channels == 1


def test_channels_first_arrays_are_refused():
    with pytest.raises(AudioError, match=r"looks like \(channels, samples\).*y\.T"):
        prepare_waveform(np.zeros((2, 22050)), 22050)


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf")])
def test_max_duration_must_be_positive(tmp_path, bad):
    path = tmp_path / "x.wav"
    sf.write(path, tone(8000), 8000)
    with pytest.raises(AudioError, match="max_duration must be a positive"):
        load_audio(path, 8000, max_duration=bad)
    with pytest.raises(AudioError, match="max_duration must be a positive"):
        prepare_waveform(tone(8000), 8000, max_duration=bad)


def test_truncation_note_names_the_original_length(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, tone(8000, seconds=2.0), 8000)
    _, info = load_audio_with_info(path, 8000, max_duration=0.5)
    assert info.notes == ("truncated from 2.000 s to 0.5 s",)


def test_digital_silence_is_noted():
    _, info = prepare_waveform(np.zeros(100), 8000)
    assert "digital silence" in " ".join(info.notes)


def test_huge_sample_values_are_refused(tmp_path):
    path = tmp_path / "huge.wav"
    sf.write(path, tone(8000) * 1e25, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"huge\.wav: sample magnitude reaches .* full scale"):
        load_audio(path)
    y, _ = prepare_waveform(tone(8000) * 1.5, 8000)  # mild overs are kept as they are
    assert np.max(np.abs(y)) == pytest.approx(0.75)
