"""Modulation, rhythm, loudness and stationarity families: known answers, pyloudnorm,
invariants and degenerate clips."""

from __future__ import annotations

import numpy as np
import pytest

from featurekit import ExtractionConfig
from featurekit.computers.handcrafted import extract_clip
from featurekit.descriptors import catalog, clip_vector, feature_names, frame_names
from featurekit.descriptors.loudness import ABSOLUTE_GATE, k_weighting_gain
from featurekit.descriptors.modulation import modulation_spectrum
from featurekit.descriptors.rhythm import autocorrelation, main_periodicity
from featurekit.dsp.analysis import Analysis

SR = 22050
CONFIG = ExtractionConfig()
NEW_FAMILIES = ("modulation", "rhythm", "loudness", "stationarity")


def seconds(n: float) -> np.ndarray:
    return np.arange(int(n * SR)) / SR


def features(y: np.ndarray, config: ExtractionConfig = CONFIG) -> dict[str, float]:
    return dict(zip(feature_names(config), clip_vector(Analysis(y, config)), strict=True))


def sine_at_lufs(lufs: float, n_seconds: float, freq: float = 997.0) -> np.ndarray:
    # BS.1770: a 997-Hz sine of RMS L dBFS in one channel reads L LUFS.
    return np.sqrt(2.0) * 10.0 ** (lufs / 20.0) * np.sin(2 * np.pi * freq * seconds(n_seconds))


def click_train(rate_hz: float, n_seconds: float, start_s: float = 0.05) -> np.ndarray:
    y = np.zeros(int(n_seconds * SR))
    y[(np.arange(start_s, n_seconds, 1.0 / rate_hz) * SR).astype(int)] = 1.0
    return y


# -- modulation -------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [4.0, 11.0, 25.0])
def test_am_tone_modulation_peaks_at_its_rate(rate):
    carrier_group = 2  # 1 kHz lies in the third of six mel groups at 22.05 kHz
    y = 0.25 * (1 + np.cos(2 * np.pi * rate * seconds(4))) * np.sin(2 * np.pi * 1000 * seconds(4))
    f = features(y)
    assert f[f"modulation.peak_hz_{carrier_group:02d}.value"] == pytest.approx(rate, abs=0.05)
    assert f[f"modulation.centroid_hz_{carrier_group:02d}.value"] == pytest.approx(rate, rel=0.1)


def test_full_am_depth_reads_minus_3_db_in_its_band():
    y = 0.25 * (1 + np.cos(2 * np.pi * 4.0 * seconds(4))) * np.sin(2 * np.pi * 1000 * seconds(4))
    f = features(y)
    # e = a (1 + m cos) carries m²/2 of its mean power in modulation: -3.01 dB for m = 1.
    assert f["modulation.energy_db_4hz_02.value"] == pytest.approx(-3.0, abs=0.5)
    assert f["modulation.energy_db_16hz_02.value"] < -30


def test_modulation_spectrum_scaling_and_constant_envelope():
    rate, n = 100.0, 400
    t = np.arange(n) / rate
    depth = 0.5
    envelope = (2.0 * (1 + depth * np.cos(2 * np.pi * 5.0 * t)))[:, None]
    freqs, power = modulation_spectrum(np.hstack([envelope, np.full((n, 1), 3.0)]), rate=rate)
    assert power[1:, 0].sum() == pytest.approx(depth**2 / 2, rel=0.02)
    assert freqs[np.argmax(power[:, 0])] == pytest.approx(5.0, abs=0.1)
    assert np.all(power[:, 1] == 0.0)  # constant envelope: no modulation, no NaN


def test_stationary_noise_has_no_strong_modulation():
    y = 0.1 * np.random.default_rng(1).standard_normal(4 * SR)
    f = features(y)
    energies = [v for k, v in f.items() if k.startswith("modulation.energy_db_4hz")]
    assert max(energies) < -15


# -- rhythm -----------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [2.0, 3.0, 5.0])
def test_click_train_period(rate):
    f = features(click_train(rate, 4.0))
    assert f["rhythm.period_s.value"] == pytest.approx(1.0 / rate, abs=0.01)
    assert f["rhythm.periodicity_strength.value"] > 0.8
    assert f["rhythm.periodicity_regularity.value"] > 0.8
    # The clip's edges are excluded, so the first click is not an onset.
    assert f["rhythm.onset_rate_hz.value"] == pytest.approx(rate, abs=0.3)


def test_noise_is_not_periodic():
    f = features(0.1 * np.random.default_rng(2).standard_normal(4 * SR))
    assert f["rhythm.periodicity_strength.value"] < 0.5


def test_main_periodicity_prefers_the_period_over_its_multiples():
    frame_rate = 50.0
    envelope = np.zeros(400)
    envelope[::25] = 1.0  # period 0.5 s; multiples at 1.0 and 1.5 s are just as high
    strength, period, regularity = main_periodicity(autocorrelation(envelope),
                                                    frame_rate=frame_rate)
    assert period == pytest.approx(0.5, abs=0.01)
    assert strength == pytest.approx(1.0, abs=0.01)
    assert regularity == pytest.approx(1.0, abs=0.01)


def test_autocorrelation_of_constant_envelope_is_zero():
    assert np.all(autocorrelation(np.full(50, 3.0)) == 0.0)
    assert np.all(main_periodicity(np.zeros(50), frame_rate=40.0) == 0.0)


# -- loudness ---------------------------------------------------------------------------------
def test_minus_23_lufs_reference_reads_minus_23():
    f = features(sine_at_lufs(-23.0, 10.0))
    assert f["loudness.integrated_lufs.value"] == pytest.approx(-23.0, abs=0.1)
    assert f["loudness.momentary_lufs.p50"] == pytest.approx(-23.0, abs=0.1)
    assert f["loudness.short_term_lufs.max"] == pytest.approx(-23.0, abs=0.1)
    assert f["loudness.range_lu.value"] == pytest.approx(0.0, abs=0.1)


def test_loudness_range_of_a_10_lu_step():
    # EBU Tech 3342's first case: -20 LUFS then -30 LUFS, 20 s each, reads 10 LU (± 1).
    y = np.concatenate([sine_at_lufs(-20.0, 20.0), sine_at_lufs(-30.0, 20.0)])
    f = features(y)
    assert f["loudness.range_lu.value"] == pytest.approx(10.0, abs=1.0)


def test_k_weighting_at_48k_matches_the_standard():
    # BS.1770's printed 48-kHz coefficients (shelf then high-pass), evaluated independently.
    b1 = [1.53512485958697, -2.69169618940638, 1.19839281085285]
    a1 = [1.0, -1.69065929318241, 0.73248077421585]
    b2, a2 = [1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621]
    omega = 2 * np.pi * np.fft.rfftfreq(4096, d=1 / 48000) / 48000
    z = np.exp(-1j * np.outer(omega, np.arange(3)))
    expected = np.abs((z @ b1) / (z @ a1) * (z @ b2) / (z @ a2)) ** 2
    np.testing.assert_allclose(k_weighting_gain(48000, 4096), expected, rtol=1e-6)


@pytest.mark.parametrize("kind", ["white", "steps", "bursts", "short", "low_sine"])
def test_integrated_loudness_matches_pyloudnorm(kind):
    pyln = pytest.importorskip("pyloudnorm")
    rng = np.random.default_rng(3)
    signals = {
        "white": 0.05 * rng.standard_normal(8 * SR),
        "steps": np.concatenate([0.3 * rng.standard_normal(3 * SR),
                                 0.01 * rng.standard_normal(3 * SR),
                                 0.1 * rng.standard_normal(4 * SR)]),
        "bursts": 0.2 * rng.standard_normal(6 * SR)
        * (np.sin(2 * np.pi * 0.7 * seconds(6)) > 0.3),
        "short": 0.1 * rng.standard_normal(int(1.5 * SR)),
        "low_sine": 0.1 * np.sin(2 * np.pi * 60 * seconds(5)),
    }
    y = signals[kind]
    # "DeMan" is pyloudnorm's filter from the same analogue prototype as ours (libebur128's);
    # its default filter differs from the standard's by about 0.09 LU.
    expected = pyln.Meter(SR, filter_class="DeMan").integrated_loudness(y)
    assert features(y)["loudness.integrated_lufs.value"] == pytest.approx(expected, abs=0.1)


def test_loudness_scales_with_gain():
    y = 0.05 * np.random.default_rng(4).standard_normal(4 * SR)
    quiet, loud = features(y), features(10 * y)
    for name in ("integrated_lufs.value", "momentary_lufs.max", "short_term_lufs.mean"):
        assert loud[f"loudness.{name}"] - quiet[f"loudness.{name}"] == pytest.approx(20, abs=0.01)
    assert loud["loudness.peak_to_loudness_db.value"] == pytest.approx(
        quiet["loudness.peak_to_loudness_db.value"], abs=0.01)


# -- stationarity -----------------------------------------------------------------------------
def test_events_are_less_stationary_than_noise():
    noise = features(0.1 * np.random.default_rng(5).standard_normal(4 * SR))
    bursts = features(0.1 * np.random.default_rng(5).standard_normal(4 * SR)
                      * (np.sin(2 * np.pi * 1.5 * seconds(4)) > 0.6))
    assert bursts["stationarity.spectral_change_db.p90"] > noise[
        "stationarity.spectral_change_db.p90"]
    assert bursts["stationarity.low_energy_ratio.value"] > 0.3 > noise[
        "stationarity.low_energy_ratio.value"]
    assert bursts["stationarity.energy_entropy.value"] < noise[
        "stationarity.energy_entropy.value"]
    assert noise["stationarity.energy_entropy.value"] > 0.99
    assert bursts["stationarity.energy_crest_db.value"] > noise[
        "stationarity.energy_crest_db.value"]
    # Bursts switch every band on and off together: their envelopes correlate.
    assert bursts["stationarity.envelope_correlation.value"] > 0.5 > noise[
        "stationarity.envelope_correlation.value"]


def test_steady_tone_has_no_spectral_change():
    f = features(0.5 * np.sin(2 * np.pi * 440 * seconds(3)))
    assert f["stationarity.spectral_change_db.max"] < 0.5  # the clip's abrupt ends excluded
    assert f["stationarity.slow_change_db.value"] < 0.5


# -- every family ---------------------------------------------------------------------------
@pytest.mark.parametrize("signal", ["silence", "one_window", "tiny"])
def test_degenerate_clips_give_finite_values(signal):
    y = {"silence": np.zeros(2 * SR), "one_window": 0.3 * np.ones(CONFIG.n_fft),
         "tiny": 1e-7 * np.random.default_rng(6).standard_normal(SR)}[signal]
    f = features(y)
    assert all(np.isfinite(v) for v in f.values())
    if signal == "silence":
        assert f["loudness.integrated_lufs.value"] == ABSOLUTE_GATE
        assert f["rhythm.periodicity_strength.value"] == 0.0
        assert f["modulation.peak_hz_00.value"] == 0.0


def test_short_file_is_padded_and_finite(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    path = tmp_path / "short.wav"
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 300 * np.arange(400) / SR), SR)
    result = extract_clip(path)
    assert np.all(np.isfinite(result.values))
    assert any("zero-padded" in note for note in result.notes)


def test_nan_audio_is_refused():
    from featurekit.errors import AudioError

    with pytest.raises(AudioError):
        Analysis(np.array([0.0, np.nan, 0.1]), CONFIG)


def test_names_catalog_and_frames_agree():
    names = feature_names(CONFIG)
    assert len(names) == len(set(names))
    assert [entry.name for entry in catalog(CONFIG)] == names
    for family in NEW_FAMILIES:
        assert any(name.startswith(f"{family}.") for name in names)
    assert all(name.count(".") == 2 for name in names)
    frames = frame_names(CONFIG)
    assert "rhythm.onset_strength_db" in frames and "stationarity.spectral_change_db" in frames


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_family_alone_equals_its_columns_in_the_full_set(family):
    y = 0.2 * np.random.default_rng(7).standard_normal(2 * SR) * np.hanning(2 * SR)
    full = features(y)
    alone = features(y, CONFIG.replace(families=(family,)))
    assert alone == {name: full[name] for name in alone}
