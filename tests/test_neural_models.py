"""Architectures, front ends and the clip policy of featurekit.neural (no weights needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featurekit.neural import available_models, load_pretrained, model_info
from featurekit.neural.efficientat import EfficientATMobileNet, make_divisible
from featurekit.neural.embedding import embed_waveforms, window_starts
from featurekit.neural.frontends import KaldiLogMel, dft_kernels, kaldi_mel_bank
from featurekit.neural.panns import cnn10

# state_dict entry counts of the published checkpoints (specs/FACTS.md).
PUBLISHED_ENTRIES = {"mn04_as": 312, "cnn14": 84, "cnn14_16k": 84, "cnn10": 60, "cnn6": 36,
                     "mobilenetv1": 174}
PUBLISHED_PARAMS = {"mn04_as": 983_599}


@pytest.fixture(scope="module")
def mn04() -> torch.nn.Module:
    return load_pretrained("mn04_as", "untrained", device="cpu")


def _sine(freq: float, sr: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("name", list(PUBLISHED_ENTRIES))
def test_state_dict_has_published_entry_count(name):
    model = model_info(name).build()
    assert len(model.state_dict()) == PUBLISHED_ENTRIES[name]


def test_mn04_parameter_count_matches_published():
    model = EfficientATMobileNet(0.4)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS["mn04_as"]


# The widest EfficientAT models differ from mn10 only in width; cnn14_16k from cnn14 only
# in its front end, whose shapes the fidelity manifests check.
SHAPE_CHECKED = [name for name in available_models()
                 if name not in {"mn20_as", "mn30_as", "mn40_as", "cnn14_16k"}]


@pytest.mark.parametrize("name", SHAPE_CHECKED)
def test_every_model_outputs_registered_shapes(name):
    info = model_info(name)
    model = load_pretrained(name, "untrained", device="cpu")
    assert model.sample_rate == info.sample_rate
    assert model.embedding_dim == info.embedding_dim
    assert not model.training
    with torch.inference_mode():
        out = model(torch.randn(2, info.sample_rate, generator=torch.Generator().manual_seed(0)))
    assert out["embedding"].shape == (2, info.embedding_dim)
    assert out["tags"].shape == (2, 527)
    assert float(out["tags"].min()) >= 0 and float(out["tags"].max()) <= 1
    assert torch.allclose(out["tags"], torch.sigmoid(out["logits"]))
    assert out["frames"].shape[0] == 2 and out["frames"].shape[2] == info.embedding_dim
    # One neuralogram row per frame_period_s (within the rounding of strided layers).
    assert abs(out["frames"].shape[1] - 1.0 / model.frame_period_s) <= 1


@pytest.mark.parametrize(("width", "dim"), [(0.1, 96), (0.4, 384), (1.0, 960), (4.0, 3840)])
def test_efficientat_embedding_size_follows_width(width, dim):
    assert EfficientATMobileNet.embedding_size(width) == dim


def test_make_divisible_matches_mobilenet_rounding():
    assert make_divisible(6.4) == 8          # never below the divisor
    assert make_divisible(9.6) == 16         # 8 would be > 10 % below 9.6
    assert make_divisible(73.6) == 72
    assert make_divisible(268.8) == 272


def test_untrained_weights_are_seeded_and_flagged():
    a = load_pretrained("mn04_as", "untrained", device="cpu")
    b = load_pretrained("mn04_as", "untrained", device="cpu")
    assert a.weights_info["untrained"] is True and a.weights_info["sha256"] is None
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), key


def test_kaldi_bank_triangles_peak_at_one_and_skip_nyquist():
    bank = kaldi_mel_bank(n_mels=128, n_fft=1024, sr=32000, fmin=0, fmax=15000)
    assert bank.shape == (128, 513)
    assert np.all(bank[:, -1] == 0)
    assert np.all(bank >= 0) and bank.max() <= 1
    # Upper bands are wide enough that a bin lands near the apex.
    assert bank[-1].max() > 0.9
    # No energy above fmax = 15 kHz (bin 480).
    assert np.all(bank[:, 481:] == 0)


def test_dft_kernels_compute_the_windowed_spectrum():
    real, imag = dft_kernels(64)
    frame = np.random.default_rng(0).standard_normal(64)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(64) / 64)
    expected = np.fft.rfft(frame * window)
    np.testing.assert_allclose(real[:, 0] @ frame, expected.real, atol=1e-4)
    np.testing.assert_allclose(imag[:, 0] @ frame, expected.imag, atol=1e-4)


def test_efficientat_logmel_peaks_in_the_band_of_a_1khz_sine(mn04):
    frontend = KaldiLogMel()
    logmel = mn04.logmel(torch.from_numpy(_sine(1000, 32000, 1.0))[None])
    assert logmel.shape == (1, 128, 100)  # 1 + (32000 - 1) // 320: pre-emphasis drops one
    band = int(logmel[0, :, 50].argmax())
    weights = frontend.mel_bank.numpy()[:, 1000 * 1024 // 32000]
    assert weights[band] == weights.max() > 0


def test_panns_logmel_is_db_and_peaks_in_the_band_of_a_1khz_sine():
    model = cnn10().eval()
    logmel = model.logmel(torch.from_numpy(_sine(1000, 32000, 1.0))[None])
    assert logmel.shape == (1, 1, 1 + 32000 // 320, 64)
    band = int(logmel[0, 0, 50].argmax())
    melw = model.logmel_extractor.melW.detach().numpy()  # (bins, mels)
    assert melw[32, band] == melw[32].max() > 0  # bin 32 = 1000 Hz
    silent = model.logmel(torch.zeros(1, 3200))
    assert torch.all(silent == -100.0)  # 10·log10 of the 1e-10 floor


def test_window_starts_cover_long_clips_evenly():
    assert window_starts(100, 100).tolist() == [0]
    starts = window_starts(250, 100)
    assert starts.tolist() == [0, 75, 150]
    assert starts[-1] + 100 == 250


def test_short_clips_are_padded_and_long_clips_averaged_over_windows(mn04):
    sr = mn04.sample_rate
    rng = np.random.default_rng(1)
    short = (0.1 * rng.standard_normal(sr // 4)).astype(np.float32)
    padded = np.concatenate([short, np.zeros(sr - short.size, np.float32)])
    long = (0.1 * rng.standard_normal(int(sr * 12.5))).astype(np.float32)
    short_out, padded_out, long_out = embed_waveforms(mn04, [short, padded, long])
    np.testing.assert_array_equal(short_out.embedding, padded_out.embedding)
    window = 10 * sr
    halves = embed_waveforms(mn04, [long[:window], long[-window:]])
    np.testing.assert_allclose(long_out.embedding,
                               (halves[0].embedding + halves[1].embedding) / 2, atol=1e-5)
    assert long_out.n_windows == 2
    assert np.all(np.diff(long_out.frame_times_s) > 0)
    assert long_out.frame_times_s[-1] < 12.5 + mn04.frame_period_s


def test_batching_does_not_change_results(mn04):
    rng = np.random.default_rng(2)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32)
             for n in (32000, 48000, 32000, 40000, 32000)]
    together = embed_waveforms(mn04, clips, batch_size=3)
    alone = [embed_waveforms(mn04, [clip], batch_size=1)[0] for clip in clips]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.embedding, b.embedding, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.tags, b.tags, rtol=1e-5, atol=1e-6)
