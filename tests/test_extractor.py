"""FeatureExtractor: scikit-learn behaviour, names, determinism; HandcraftedBranch contract."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from featurekit import ExtractionConfig, FeatureExtractor, feature_catalog
from featurekit.computers.base import BranchComputer
from featurekit.computers.handcrafted import HandcraftedBranch, SilentAudio, extract_clip
from featurekit.errors import AudioError, ConfigError
from featurekit.store.records import ClipResult

SR = 22050


def tone(freq: float, seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(3)
    return [tone(220), tone(440), 0.1 * rng.standard_normal(SR // 2), tone(880, 0.05)]


def test_names_unique_and_equal_to_width(clips):
    extractor = FeatureExtractor().fit(clips)
    names = extractor.get_feature_names_out()
    X = extractor.transform(clips[:1])
    assert len(names) == len(set(names)) == X.shape[1]
    assert all(name.count(".") == 2 for name in names)
    for required in ("pitch.f0_hz.median", "pitch.voicing.fraction", "spectral.centroid_hz.mean",
                     "spectral.flatness.mean", "spectral.rms.mean", "timbre.mfcc_00.mean"):
        assert required in names
    assert list(feature_catalog()["name"]) == list(names)


def test_names_order_is_stable_across_family_orders():
    a = FeatureExtractor(families=("spectral", "pitch")).fit().get_feature_names_out()
    b = FeatureExtractor(families=("pitch", "spectral")).fit().get_feature_names_out()
    assert list(a) == list(b) and a[0].startswith("pitch.")


def test_output_is_float32_and_bit_identical_twice(clips):
    a = FeatureExtractor().fit_transform(clips)
    b = FeatureExtractor().fit_transform(clips)
    assert a.dtype == np.float32 and a.shape[0] == len(clips)
    assert np.array_equal(a, b)


def test_n_jobs_does_not_change_results(clips):
    one = FeatureExtractor(n_jobs=1).fit_transform(clips)
    two = FeatureExtractor(n_jobs=2).fit_transform(clips)
    assert np.array_equal(one, two)


def test_paths_and_arrays_agree(tmp_path):
    y = tone(330, 1.0)
    path = tmp_path / "a.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    extractor = FeatureExtractor().fit()
    np.testing.assert_array_equal(extractor.transform([path]), extractor.transform([y]))
    assert np.array_equal(extractor.transform(np.stack([y, y])), extractor.transform([y, y]))


def test_set_output_pandas(clips):
    frame = FeatureExtractor(families=("pitch",)).set_output(transform="pandas").fit_transform(
        clips)
    assert isinstance(frame, pd.DataFrame)
    assert frame["pitch.f0_hz.median"].iloc[1] == pytest.approx(440, rel=0.01)


def test_clone_and_pickle(clips):
    extractor = FeatureExtractor(n_mfcc=13, families=("timbre",)).fit()
    assert clone(extractor).get_params() == extractor.get_params()
    restored = pickle.loads(pickle.dumps(extractor))
    assert np.array_equal(restored.transform(clips[:2]), extractor.transform(clips[:2]))


def test_pipeline_and_grid_search_over_own_parameters():
    rng = np.random.default_rng(0)
    X = [tone(f, 0.3) for f in (200, 210, 220, 800, 820, 840)] + [
        0.1 * rng.standard_normal(6615) for _ in range(6)]
    y = np.array([0] * 6 + [1] * 6)
    pipeline = Pipeline([("features", FeatureExtractor(families=("pitch",))),
                         ("scale", StandardScaler()), ("clf", LogisticRegression())])
    search = GridSearchCV(pipeline, {"features__n_harmonics": [5, 10],
                                     "features__families": [("pitch",), ("spectral",)]},
                          cv=PredefinedSplit(np.tile([0, 1], 6)))
    search.fit(X, y)
    assert search.best_score_ == 1.0
    assert search.predict(X[:1])[0] == 0


def test_params_mirror_the_config():
    params = set(inspect.signature(FeatureExtractor).parameters) - {"sr", "n_jobs"}
    fields = {f.name for f in dataclasses.fields(ExtractionConfig)} - {"sample_rate"}
    assert params == fields
    extractor = FeatureExtractor(sr=16000, hop_length=256).fit()
    assert extractor.config_ == ExtractionConfig(sample_rate=16000, hop_length=256)


@pytest.mark.parametrize(("X", "message"), [
    ("one.wav", "not one path"),
    (np.zeros(100), "one 1-D array"),
    ([{"a": 1}], "expected a path"),
    (pd.DataFrame({"path": ["a.wav"]}), "not a DataFrame"),
])
def test_transform_input_validation(X, message):
    with pytest.raises(ConfigError, match=message):
        FeatureExtractor().fit().transform(X)


def test_invalid_parameters_fail_at_fit():
    with pytest.raises(ConfigError, match="families"):
        FeatureExtractor(families=("harmony",)).fit()
    with pytest.raises(ConfigError, match="n_fft"):
        FeatureExtractor(n_fft=1000).fit()
    with pytest.raises(ConfigError, match="n_jobs"):
        FeatureExtractor(n_jobs=0).fit()


def test_transform_names_the_bad_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(AudioError, match=r"broken\.wav"):
        FeatureExtractor().fit().transform([bad])


def test_extract_clip_records_padding_and_resampling(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, tone(440, 0.01, sr=8000), 8000)
    result = extract_clip(path, frames=True)
    assert any("resampled from 8000" in note for note in result.notes)
    assert any("zero-padded" in note for note in result.notes)
    assert result.frames is not None and "time_s" in result.frames


def test_handcrafted_branch_contract(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(440), SR)
    missing = tmp_path / "missing.wav"
    branch = HandcraftedBranch(ExtractionConfig(families=("pitch",)))
    assert isinstance(branch, BranchComputer)
    results = branch.compute_batch([str(good), str(missing)])
    assert isinstance(results[0], ClipResult)
    assert results[0].values.shape == (len(branch.feature_names),)
    assert isinstance(results[1], AudioError) and "missing.wav" in str(results[1])
    provenance = branch.provenance()
    assert provenance["config_hash"] == branch.config_hash()
    assert pickle.loads(pickle.dumps(branch)).config_hash() == branch.config_hash()


def test_silence_is_kept_with_a_note_or_skipped_on_request(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(SR), SR)
    kept = HandcraftedBranch().compute_batch([str(path)])[0]
    assert isinstance(kept, ClipResult) and np.isfinite(kept.values).all()
    assert any("digital silence" in note for note in kept.notes)
    skipped = HandcraftedBranch(skip_silent=True).compute_batch([str(path)])[0]
    assert isinstance(skipped, SilentAudio) and "silent.wav" in str(skipped)


def test_frame_descriptors_match_the_stored_frames():
    y = tone(440, 0.02)  # shorter than one analysis window: padded the same way on both paths
    direct = extract_clip(y, sr=SR, frames=True).frames
    from featurekit import frame_descriptors

    table = frame_descriptors(y, SR)
    assert table.shape == direct.shape
    np.testing.assert_array_equal(table.to_numpy(), direct.to_numpy())


def test_unexpected_errors_become_per_clip_failures(tmp_path, monkeypatch):
    good = tmp_path / "good.wav"
    sf.write(good, tone(440), SR)
    import featurekit.computers.handcrafted as module

    real = module.extract_clip

    def flaky(path, *args, **kwargs):
        if "bad" in str(path):
            raise KeyError("unexpected")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, "extract_clip", flaky)
    results = HandcraftedBranch().compute_batch([str(tmp_path / "bad.wav"), str(good)])
    assert isinstance(results[0], KeyError) and isinstance(results[1], ClipResult)
