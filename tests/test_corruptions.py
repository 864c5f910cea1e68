"""The corruptions of featurekit.dsp.corruptions: known answers and invariants.

SNRs are measured on the noise actually added; the low-pass and the MP3 codec by their
spectra on white noise; the reverberation by the decay time of its impulse response
(Schroeder's backward integral); time alignment by the peak of a cross-correlation.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from featurekit.dsp import corruptions as dsp
from featurekit.errors import AudioError, MissingDependencyError

SR = 16000


def tone(n: int = SR, sr: int = SR, hz: float = 440.0, level: float = 0.5) -> np.ndarray:
    return (level * np.sin(2 * np.pi * hz * np.arange(n) / sr)).astype(np.float32)


def band_noise(n: int, seed: int = 0, band: float = 0.2) -> np.ndarray:
    """Low-passed Gaussian noise: a broadband signal whose cross-correlation has one peak."""
    x = signal.sosfilt(signal.butter(4, band, output="sos"),
                       np.random.default_rng(seed).standard_normal(n))
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    clean = clean.astype(np.float64)
    noise = noisy.astype(np.float64) - clean
    return float(10 * np.log10(np.sum(clean**2) / np.sum(noise**2)))


def lag(output: np.ndarray, reference: np.ndarray) -> int:
    """Samples by which ``output`` lags ``reference`` (peak of their cross-correlation)."""
    correlation = signal.correlate(output, reference, mode="full", method="fft")
    return int(np.argmax(correlation)) - (reference.size - 1)


def band_gain_db(x: np.ndarray, y: np.ndarray, sr: int, low: float, high: float) -> float:
    """Energy of ``y`` over that of ``x`` between ``low`` and ``high`` Hz, dB (Welch PSDs)."""
    f, px = signal.welch(x.astype(np.float64), sr, nperseg=4096)
    _, py = signal.welch(y.astype(np.float64), sr, nperseg=4096)
    band = (f >= low) & (f < high)
    return float(10 * np.log10(py[band].sum() / px[band].sum()))


# --- noise and background ---------------------------------------------------------------

@pytest.mark.parametrize("target", [-10.0, 0.0, 6.5, 20.0, 40.0])
def test_white_noise_has_the_measured_snr(target: float) -> None:
    y = tone()
    noisy = dsp.add_white_noise(y, snr_db=target, rng=np.random.default_rng(1))
    assert noisy.dtype == np.float32 and noisy.shape == y.shape
    assert snr_db(y, noisy) == pytest.approx(target, abs=0.01)


def test_white_noise_is_white_and_seeded() -> None:
    y = tone()
    a = dsp.add_white_noise(y, snr_db=0.0, rng=np.random.default_rng(7))
    b = dsp.add_white_noise(y, snr_db=0.0, rng=np.random.default_rng(7))
    c = dsp.add_white_noise(y, snr_db=0.0, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    noise = a.astype(np.float64) - y
    assert abs(np.mean(noise)) < 0.05 * np.std(noise)
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.05  # no correlation: white


@pytest.mark.parametrize(("n_background", "target"), [(3 * SR, 10.0), (SR // 7, 0.0),
                                                      (SR, -5.0)])
def test_background_has_the_measured_snr(n_background: int, target: float) -> None:
    y = tone()
    background = band_noise(n_background, seed=3)
    mixed = dsp.add_background(y, background, snr_db=target, rng=np.random.default_rng(2))
    assert mixed.dtype == np.float32 and mixed.shape == y.shape
    assert snr_db(y, mixed) == pytest.approx(target, abs=0.01)


def test_background_is_one_scaled_segment_of_the_looped_recording() -> None:
    y = tone(n=1000)
    background = np.arange(1, 301, dtype=np.float32)  # shorter than y: looped
    added = dsp.add_background(y, background, snr_db=0.0, rng=np.random.default_rng(0))
    added = added.astype(np.float64) - y
    fits = []
    for offset in range(background.size):
        ratio = added / np.take(background, np.arange(offset, offset + 1000), mode="wrap")
        if np.allclose(ratio, ratio[0], rtol=1e-3):
            fits.append(offset)
    assert len(fits) == 1  # one offset, one gain


def test_background_offsets_follow_the_seed() -> None:
    y, background = tone(), band_noise(5 * SR, seed=4)
    a = dsp.add_background(y, background, snr_db=5.0, rng=np.random.default_rng(11))
    b = dsp.add_background(y, background, snr_db=5.0, rng=np.random.default_rng(11))
    c = dsp.add_background(y, background, snr_db=5.0, rng=np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_silent_background_is_refused() -> None:
    with pytest.raises(AudioError, match=r"background recording is silent \(all zeros\)"):
        dsp.add_background(tone(), np.zeros(SR, np.float32), snr_db=10.0,
                           rng=np.random.default_rng(0))


def test_silent_background_segment_is_refused() -> None:
    background = np.zeros(3 * SR, np.float32)
    background[0] = 1.0  # only the very first sample sounds; offset 0 is never drawn here
    with pytest.raises(AudioError, match=r"background segment at sample \d+ is silent"):
        dsp.add_background(tone(), background, snr_db=10.0, rng=np.random.default_rng(3))


# --- low-pass and gain --------------------------------------------------------------------

@pytest.mark.parametrize(("sr", "cutoff"), [(16000, 2000.0), (44100, 4000.0), (22050, 1000.0)])
def test_lowpass_stop_and_pass_bands(sr: int, cutoff: float) -> None:
    x = np.random.default_rng(5).standard_normal(20 * sr).astype(np.float32)
    y = dsp.lowpass(x, sr=sr, cutoff_hz=cutoff)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert band_gain_db(x, y, sr, 1.5 * cutoff, sr / 2 + 1) < -40.0
    assert abs(band_gain_db(x, y, sr, 20.0, 0.5 * cutoff)) < 0.5


def test_lowpass_is_zero_phase() -> None:
    x = band_noise(SR, seed=6, band=0.1)  # content well below the cutoff
    y = dsp.lowpass(x, sr=SR, cutoff_hz=4000.0)
    assert lag(y, x) == 0
    np.testing.assert_allclose(y[100:-100], x[100:-100], atol=0.01)


def test_lowpass_of_a_very_short_clip_keeps_its_length() -> None:
    assert dsp.lowpass(np.ones(5, np.float32), sr=SR, cutoff_hz=1000.0).shape == (5,)


@pytest.mark.parametrize("cutoff", [0.0, -100.0, 8000.0, 9000.0, float("nan")])
def test_lowpass_refuses_a_cutoff_outside_nyquist(cutoff: float) -> None:
    with pytest.raises(ValueError,
                       match=r"cutoff_hz must (lie strictly between 0|be a finite number)"):
        dsp.lowpass(tone(), sr=SR, cutoff_hz=cutoff)


def test_gain_is_exact_and_unclipped() -> None:
    y = tone()
    quiet = dsp.apply_gain(y, gain_db=-30.0)
    rms = [np.sqrt(np.mean(a.astype(np.float64) ** 2)) for a in (y, quiet)]
    assert 20 * np.log10(rms[1] / rms[0]) == pytest.approx(-30.0, abs=1e-5)
    loud = dsp.apply_gain(y, gain_db=12.0)
    assert loud.dtype == np.float32 and np.max(np.abs(loud)) > 1.5  # no clipping


# --- reverberation -----------------------------------------------------------------------

def schroeder_decay_time(h: np.ndarray, sr: int, top: float = -5.0,
                         bottom: float = -35.0) -> float:
    """T30: the backward-integrated energy's decay from -5 to -35 dB, extrapolated to 60."""
    energy = np.cumsum((h.astype(np.float64) ** 2)[::-1])[::-1]
    edc = 10 * np.log10(energy / energy[0])
    fit = (edc <= top) & (edc >= bottom)
    slope, _ = np.polyfit(np.arange(h.size)[fit] / sr, edc[fit], 1)
    return -60.0 / slope


@pytest.mark.parametrize(("rt60", "sr", "seed"), [(0.3, 16000, 0), (0.6, 22050, 1),
                                                  (1.5, 16000, 2), (0.8, 44100, 3)])
def test_rir_decays_60_db_in_rt60(rt60: float, sr: int, seed: int) -> None:
    h = dsp.room_impulse_response(sr=sr, rt60_s=rt60, rng=np.random.default_rng(seed))
    assert h.dtype == np.float32 and h.size == round(1.2 * rt60 * sr)
    assert np.sum(h.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-5)
    assert np.argmax(np.abs(h)) == 0  # the direct path comes first and is strongest
    assert schroeder_decay_time(h, sr) == pytest.approx(rt60, rel=0.10)
    assert schroeder_decay_time(h, sr, bottom=-25.0) == pytest.approx(rt60, rel=0.10)  # T20


def test_rir_direct_to_reverberant_ratio() -> None:
    h = dsp.room_impulse_response(sr=SR, rt60_s=0.5, rng=np.random.default_rng(0), drr_db=-6.0)
    h = h.astype(np.float64)
    assert 10 * np.log10(h[0] ** 2 / np.sum(h[1:] ** 2)) == pytest.approx(-6.0, abs=1e-3)


def test_reverberation_keeps_rms_and_length() -> None:
    y = band_noise(2 * SR, seed=8)
    for wet in (1.0, 0.5, 0.0):
        out = dsp.reverberate(y, sr=SR, rt60_s=0.7, rng=np.random.default_rng(0), wet=wet)
        assert out.dtype == np.float32 and out.shape == y.shape
        assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) == pytest.approx(
            np.sqrt(np.mean(y.astype(np.float64) ** 2)), rel=1e-5)
    np.testing.assert_allclose(out, y, rtol=1e-5, atol=1e-7)  # wet=0: the dry clip


def test_reverberation_smears_an_impulse_by_rt60() -> None:
    y = np.zeros(2 * SR, np.float32)
    y[SR // 10] = 1.0
    out = dsp.reverberate(y, sr=SR, rt60_s=0.5, rng=np.random.default_rng(4))
    assert np.max(np.abs(out[:SR // 10])) < 1e-9  # causal (FFT round-off aside)
    assert schroeder_decay_time(out[SR // 10:], SR) == pytest.approx(0.5, rel=0.10)


def test_reverberation_is_seeded() -> None:
    y = band_noise(SR, seed=9)
    a, b, c = (dsp.reverberate(y, sr=SR, rt60_s=0.4, rng=np.random.default_rng(s))
               for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(("options", "match"), [
    ({"rt60_s": 0.0}, "rt60_s"), ({"rt60_s": -1.0}, "rt60_s"), ({"rt60_s": 0.5, "wet": 1.5},
                                                                "wet must lie in"),
])
def test_reverberation_refuses_bad_parameters(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dsp.reverberate(tone(), sr=SR, rng=np.random.default_rng(0), **options)


def test_rir_needs_a_generator() -> None:
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        dsp.room_impulse_response(sr=SR, rt60_s=0.5, rng=0)


# --- MP3 ----------------------------------------------------------------------------------

needs_lameenc = pytest.mark.skipif(importlib.util.find_spec("lameenc") is None,
                                   reason='needs lameenc (pip install "featurekit[mp3]")')


@needs_lameenc
def test_codec_delay_is_measured_by_cross_correlation() -> None:
    """A raw LAME encode and libsndfile decode lag by MP3_CODEC_DELAY at every MP3 rate."""
    import lameenc
    import soundfile as sf

    for sr in (8000, 11025, 16000, 22050, 32000, 44100, 48000):
        x = band_noise(sr // 2 + 321, seed=sr)
        encoder = lameenc.Encoder()
        encoder.set_channels(1)
        encoder.set_in_sample_rate(sr)
        encoder.set_out_sample_rate(sr)
        encoder.set_bit_rate(64)
        pcm = np.round(x * 32767).astype("<i2").tobytes()
        data = bytes(encoder.encode(pcm)) + bytes(encoder.flush())
        decoded, rate = sf.read(io.BytesIO(data), dtype="float32")
        assert rate == sr
        assert decoded.size >= x.size + dsp.MP3_CODEC_DELAY
        assert lag(decoded, x) == dsp.MP3_CODEC_DELAY


@needs_lameenc
def test_mp3_sine_at_128_kbps_is_aligned_and_clean() -> None:
    y = tone(n=2 * 44100 + 17, sr=44100)
    out = dsp.mp3_roundtrip(y, sr=44100, kbps=128)
    assert out.dtype == np.float32 and out.shape == y.shape
    assert lag(out, y) == 0
    assert snr_db(y, out) > 20.0


@needs_lameenc
@pytest.mark.parametrize(("sr", "kbps"), [(44100, 128), (48000, 320), (22050, 32), (8000, 16),
                                          (44100, 8), (8000, 128), (96000, 64), (7000, 16)])
def test_mp3_roundtrip_is_aligned_at_any_rate(sr: int, kbps: int) -> None:
    y = band_noise(sr + 5, seed=kbps)
    out = dsp.mp3_roundtrip(y, sr=sr, kbps=kbps)
    assert out.shape == y.shape and lag(out, y) == 0


@needs_lameenc
def test_mp3_at_32_kbps_cuts_the_treble_128_keeps_it() -> None:
    # LAME low-passes 32 kbit/s mono at 44.1 kHz near 8 kHz; 128 kbit/s keeps up to ~17 kHz.
    x = (0.1 * np.random.default_rng(1).standard_normal(3 * 44100)).astype(np.float32)
    low = dsp.mp3_roundtrip(x, sr=44100, kbps=32)
    assert band_gain_db(x, low, 44100, 10000.0, 22050.0) < -60.0
    assert abs(band_gain_db(x, low, 44100, 100.0, 5000.0)) < 1.0
    high = dsp.mp3_roundtrip(x, sr=44100, kbps=128)
    assert abs(band_gain_db(x, high, 44100, 8000.0, 16000.0)) < 1.0


@needs_lameenc
def test_mp3_keeps_loud_float_audio_unclipped() -> None:
    y = tone(n=44100, sr=44100, level=3.0)
    out = dsp.mp3_roundtrip(y, sr=44100, kbps=192)
    assert np.max(np.abs(out)) > 2.5 and snr_db(y, out) > 20.0


@pytest.mark.parametrize(("sr", "kbps", "rate"), [
    (44100, 128, 44100), (48000, 320, 48000), (8000, 64, 8000), (22050, 144, 22050),
    (44100, 8, 24000),  # MPEG-1 has no 8 kbit/s: the highest rate that does
    (8000, 128, 16000),  # MPEG-2.5 stops at 64 in LAME: the next rate up that takes 128
    (16000, 320, 32000), (96000, 128, 48000), (7000, 16, 8000), (12000, 80, 16000),
    (44100, 144, 24000),  # 144 is MPEG-2 only
])
def test_mp3_rate_for(sr: int, kbps: int, rate: int) -> None:
    assert dsp.mp3_rate_for(sr, kbps) == rate


def test_mp3_tables_agree_with_lame() -> None:
    """LAME encodes each version's every table bitrate as is (read from the frame headers)."""
    assert dsp.mp3_rate_for(8000, 64) == 8000 and 80 not in dsp.LAME_BITRATES["MPEG-2.5"]
    every = {kbps for rates in dsp.LAME_BITRATES.values() for kbps in rates}
    assert every == {8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256,
                     320}
    assert sorted(r for rates in dsp.MP3_SAMPLE_RATES.values() for r in rates) == [
        8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000]


@pytest.mark.parametrize("kbps", [0, 7, 100, 144.5, 330, 1000, "128"])
def test_unknown_bitrates_are_refused(kbps: object) -> None:
    with pytest.raises(ValueError, match="is no MP3 \\(MPEG layer III\\) bitrate"):
        dsp.check_mp3_bitrate(kbps)
    with pytest.raises(ValueError, match="is no MP3"):
        dsp.mp3_roundtrip(tone(), sr=SR, kbps=kbps)


def test_mp3_without_lameenc_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lameenc", None)  # makes `import lameenc` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "featurekit\[mp3\]"'):
        dsp.mp3_roundtrip(tone(), sr=SR, kbps=64)


# --- bad input ----------------------------------------------------------------------------

CALLS = {
    "noise": lambda y: dsp.add_white_noise(y, snr_db=10.0, rng=np.random.default_rng(0)),
    "background": lambda y: dsp.add_background(y, band_noise(SR), snr_db=10.0,
                                               rng=np.random.default_rng(0)),
    "lowpass": lambda y: dsp.lowpass(y, sr=SR, cutoff_hz=1000.0),
    "gain": lambda y: dsp.apply_gain(y, gain_db=-6.0),
    "reverb": lambda y: dsp.reverberate(y, sr=SR, rt60_s=0.3, rng=np.random.default_rng(0)),
    "mp3": lambda y: dsp.mp3_roundtrip(y, sr=SR, kbps=64),
}
BAD = {
    "nan": (np.array([0.1, np.nan, 0.2], np.float32), r"1 non-finite sample\(s\)"),
    "inf": (np.array([0.1, np.inf, -np.inf], np.float32), r"2 non-finite sample\(s\)"),
    "empty": (np.zeros(0, np.float32), r"empty \(0 samples\)"),
    "stereo": (np.zeros((2, 100), np.float32), r"1-D \(mono\) waveform, got shape \(2, 100\)"),
    "complex": (np.ones(10, np.complex64), "real-valued"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("bad", sorted(BAD))
def test_bad_waveforms_are_refused(call: str, bad: str) -> None:
    y, match = BAD[bad]
    with pytest.raises(AudioError, match=match):
        CALLS[call](y)


@pytest.mark.parametrize("call", ["noise", "background", "reverb"])
def test_silent_clips_are_refused_where_power_matters(call: str) -> None:
    with pytest.raises(AudioError, match=r"y is silent \(all zeros\)"):
        CALLS[call](np.zeros(SR, np.float32))


@pytest.mark.parametrize("call", ["lowpass", "gain",
                                  pytest.param("mp3", marks=needs_lameenc)])
def test_silent_clips_pass_where_power_does_not_matter(call: str) -> None:
    out = CALLS[call](np.zeros(SR, np.float32))
    assert out.shape == (SR,) and not np.any(out)


def test_noisy_background_must_be_a_waveform_too() -> None:
    with pytest.raises(AudioError, match="the background recording holds 1 non-finite"):
        dsp.add_background(tone(), np.array([1.0, np.nan]), snr_db=0.0,
                           rng=np.random.default_rng(0))


def test_snr_must_be_finite() -> None:
    with pytest.raises(ValueError, match="snr_db must be a finite number"):
        dsp.add_white_noise(tone(), snr_db=float("inf"), rng=np.random.default_rng(0))


# --- real audio ---------------------------------------------------------------------------

@pytest.mark.realdata
def test_snr_on_real_clips(shared_data_dir: Path) -> None:
    from featurekit.io.audio import load_audio

    clips = sorted((shared_data_dir / "esc10" / "audio").glob("*.ogg"))
    assert len(clips) >= 2
    y, sr = load_audio(clips[0], sr=None)
    background, _ = load_audio(clips[1], sr=sr)
    rng = np.random.default_rng(0)
    for target in (20.0, 5.0, -5.0):
        noisy = dsp.add_white_noise(y, snr_db=target, rng=rng)
        assert snr_db(y, noisy) == pytest.approx(target, abs=0.1)
        mixed = dsp.add_background(y, background, snr_db=target, rng=rng)
        assert snr_db(y, mixed) == pytest.approx(target, abs=0.1)
    out = dsp.reverberate(y, sr=sr, rt60_s=0.6, rng=rng)
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) == pytest.approx(
        np.sqrt(np.mean(y.astype(np.float64) ** 2)), rel=1e-4)
