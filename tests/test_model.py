"""Train once, predict new files: AudioClassifier, its artifact, featurekit train / predict."""

from __future__ import annotations

import csv
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fixtures_audio import bad_clip_ids, class_signal, make_urbansound8k

import featurekit
import featurekit.model.artifact as artifact_module
import featurekit.model.load as load_module
from featurekit.benchmark import BenchmarkConfig
from featurekit.benchmark import run as run_benchmark_on
from featurekit.cli import main
from featurekit.config import ExtractionConfig
from featurekit.datasets import load_dataset
from featurekit.errors import ArtifactError, AudioError, ConfigError
from featurekit.model.artifact import read_header
from featurekit.model.classifier import AudioClassifier
from featurekit.model.load import load_model
from featurekit.model.train import train

pytestmark = pytest.mark.filterwarnings("ignore::featurekit.datasets.DatasetWarning")

SYSTEM = "pitch+timbre+spectral/logreg/early"
#: The descriptor families of these tests (whatever other families exist).
THREE_FAMILIES = ExtractionConfig(families=("pitch", "timbre", "spectral"))
#: The candidates ``auto`` chooses among in these tests: small, fast, deterministic heads.
QUICK = BenchmarkConfig(heads=("logreg",), fusions=("early", "mean", "weighted"), repeats=1,
                        n_bootstrap=100)


@pytest.fixture(scope="module")
def clips(urbansound8k_dir: Path) -> pd.DataFrame:
    return load_dataset("urbansound8k", urbansound8k_dir).clips


@pytest.fixture(scope="module")
def fitted(clips: pd.DataFrame) -> AudioClassifier:
    train_clips = clips[clips["fold"] != 3]
    return AudioClassifier(SYSTEM, model=None, extraction=THREE_FAMILIES).fit(
        train_clips["path"].tolist(), train_clips["label"].to_numpy())


@pytest.fixture(scope="module")
def saved(fitted: AudioClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fitted.save(tmp_path_factory.mktemp("model") / "model.fk")


def test_fitted_classifier_predicts_held_out_audio(fitted: AudioClassifier,
                                                   clips: pd.DataFrame) -> None:
    test = clips[clips["fold"] == 3]
    assert fitted.system_ == SYSTEM and list(fitted.classes_) == sorted(clips["label"].unique())
    assert fitted.branches_ == ["handcrafted"]
    assert all(name.split(".")[0] in ("pitch", "timbre", "spectral")
               for name in fitted.feature_names_)
    proba = fitted.predict_proba(test["path"].tolist())
    assert proba.shape == (len(test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(fitted.predict(test["path"].tolist()) == test["label"].to_numpy()) >= 2 / 3


def test_save_and_load_give_the_same_predictions_and_provenance(
        fitted: AudioClassifier, saved: Path, clips: pd.DataFrame) -> None:
    paths = clips["path"].tolist()
    loaded = featurekit.load_model(saved)
    assert isinstance(loaded, AudioClassifier)
    np.testing.assert_array_equal(loaded.predict_proba(paths), fitted.predict_proba(paths))
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    header, _ = read_header(saved)
    provenance = header["provenance"]
    assert header["featurekit"] == featurekit.__version__
    assert provenance["system"] == SYSTEM and provenance["system_requested"] == SYSTEM
    assert provenance["classes"] == list(fitted.classes_)
    assert provenance["store_branches"] == ["handcrafted"]
    assert provenance["neural_models"] == [] and header["format"] == 2
    assert provenance["extraction_config_hash"] == fitted.extraction_.config_hash()
    assert {"featurekit", "numpy", "scikit-learn", "xgboost", "torch"} <= set(
        provenance["versions"])


def test_arrays_are_classified_like_the_files_holding_them(fitted: AudioClassifier,
                                                           tmp_path: Path) -> None:
    y = class_signal(1, sr=22050, duration=0.5, seed=3).astype(np.float32)
    sf.write(tmp_path / "clip.wav", y, 22050, subtype="FLOAT")
    np.testing.assert_allclose(fitted.predict_proba([y], sr=22050),
                               fitted.predict_proba([tmp_path / "clip.wav"]), atol=1e-6)
    with pytest.raises(AudioError, match="sample rate"):
        fitted.predict_proba([y])


def test_bad_files_get_an_error_each_and_the_others_probabilities(
        fitted: AudioClassifier, tmp_path: Path) -> None:
    root = make_urbansound8k(tmp_path / "bad", folds=(1,), clips_per_fold=2,
                             with_bad_files=True)
    audio = root / "UrbanSound8K" / "audio" / "fold1"
    bad = {kind: next(audio.glob(f"{clip_id}.*"))
           for kind, clip_id in bad_clip_ids(root).items()}
    good = sorted(set(audio.iterdir()) - set(bad.values()))
    sources = [good[0], tmp_path / "missing.wav", *bad.values(), good[1]]
    predictions = fitted.predict_clips(sources)
    assert [p.source for p in predictions] == [str(s) for s in sources]
    failed = [p for p in predictions if p.error is not None]
    assert [p.source for p in failed] == [str(s) for s in sources[1:-1]]
    assert all(p.proba is None and p.label is None for p in failed)
    assert "not found" in failed[0].error
    assert failed[[*bad].index("silent") + 1].error.startswith("SilentAudio")
    np.testing.assert_allclose(predictions[0].proba, fitted.predict_proba([good[0]])[0],
                               rtol=1e-12)  # other rows in the batch only change rounding
    assert predictions[-1].label == fitted.predict([good[1]])[0]
    with pytest.raises(AudioError, match=r"missing\.wav"):
        fitted.predict_proba(sources)


def _rewrite(path: Path, target: Path, edit) -> Path:
    target.write_bytes(edit(path.read_bytes()))
    return target


def test_truncated_corrupt_and_foreign_files_are_refused_before_unpickling(
        saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_unpickling(data: bytes) -> None:
        raise AssertionError("unpickled an unverified payload")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    truncated = _rewrite(saved, tmp_path / "truncated.fk", lambda data: data[:-100])
    with pytest.raises(ArtifactError, match="truncated"):
        load_model(truncated)
    flipped = _rewrite(saved, tmp_path / "flipped.fk",
                       lambda data: data[:-50] + bytes([data[-50] ^ 0xFF]) + data[-49:])
    with pytest.raises(ArtifactError, match="checksum"):
        load_model(flipped)
    header_only = _rewrite(saved, tmp_path / "header.fk",
                           lambda data: data[:len(artifact_module.ARTIFACT_MAGIC) + 10])
    with pytest.raises(ArtifactError, match="corrupt artifact header"):
        load_model(header_only)
    foreign = _rewrite(saved, tmp_path / "foreign.fk", lambda data: pickle.dumps([1, 2]))
    with pytest.raises(ArtifactError, match="not a featurekit model artifact"):
        load_model(foreign)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("__version__", "0.0.1", "incompatible with featurekit"),
    ("__version__", "1.1.0", "incompatible with featurekit"),
    ("DESCRIPTOR_VERSION", 99, "descriptor version"),
    ("ARTIFACT_FORMAT", 99, "artifact format"),
])
def test_artifacts_of_an_incompatible_featurekit_are_refused(
        saved: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: object,
        message: str) -> None:
    monkeypatch.setattr(load_module, name, value)  # as a later featurekit would read it
    with pytest.raises(ArtifactError, match=message):
        load_model(saved)


def test_another_patch_release_loads(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    major, minor, _ = featurekit.__version__.split(".")
    monkeypatch.setattr(load_module, "__version__", f"{major}.{minor}.99")
    assert load_model(saved).system_ == SYSTEM


def test_unknown_system_and_unfitted_use_are_refused(clips: pd.DataFrame) -> None:
    paths, labels = clips["path"].tolist(), clips["label"].to_numpy()
    with pytest.raises(ConfigError, match="unknown system 'pitch/nohead'"):
        AudioClassifier("pitch/nohead", model=None, extraction=THREE_FAMILIES).fit(paths,
                                                                                 labels)
    with pytest.raises(ValueError, match="one label per clip"):
        AudioClassifier(SYSTEM, model=None).fit(paths, labels[:-1])
    with pytest.raises(TypeError, match="not a single path"):
        AudioClassifier(SYSTEM, model=None).fit(paths[0], labels[:1])
    with pytest.raises(Exception, match="not fitted"):
        AudioClassifier(SYSTEM, model=None).predict(paths)


def test_train_reproduces_the_benchmark_on_its_test_fold(urbansound8k_dir: Path,
                                                         tmp_path: Path) -> None:
    """``auto`` picks what the benchmark's ``auto`` picks for the held-out fold (first
    repeat), and the trained system scores there exactly what the benchmark reports."""
    store = tmp_path / "store"
    config = BenchmarkConfig(**{**QUICK.to_dict(), "outer_folds": (3,)})
    results = run_benchmark_on("urbansound8k", urbansound8k_dir, store, model=None,
                               config=config, extraction=THREE_FAMILIES,
                               out=tmp_path / "bench", progress=False).results
    classifier = train("urbansound8k", urbansound8k_dir, store, model=None, folds=[1, 2],
                       config=QUICK, progress=False)
    choice = next(s for s in results["systems"] if s["name"] == "auto")["fusion_choice"]["3"]
    assert choice == (f"{classifier.system_} (inner accuracy "
                      f"{100 * classifier.inner_accuracy_:.1f} %)")
    assert classifier.inner_accuracy_ == max(classifier.candidate_scores_.values())
    test = load_dataset("urbansound8k", urbansound8k_dir).clips.query("fold == 3")
    accuracy = np.mean(classifier.predict(test["path"].tolist()) == test["label"].to_numpy())
    reported = next(s for s in results["systems"] if s["name"] == classifier.system_)
    assert accuracy == pytest.approx(reported["per_fold"]["3"]["accuracy"])
    assert classifier.provenance_["trained_on"]["folds"] == [1, 2]


def test_train_and_predict_commands(urbansound8k_dir: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    model_file = tmp_path / "model.fk"
    assert main(["train", "--dataset", "urbansound8k", "--data-dir", str(urbansound8k_dir),
                 "--store", str(tmp_path / "store"), "--model", "none", "--folds", "1,2",
                 "--families", "pitch,timbre,spectral", "--system", "timbre/logreg",
                 "--out", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "trained timbre/logreg on 12 clips of urbansound8k fold(s) 1, 2" in out
    test = load_dataset("urbansound8k", urbansound8k_dir).clips.query("fold == 3")
    files = [*test["path"], str(tmp_path / "missing.wav")]
    assert main(["predict", str(model_file), *files]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(captured.out.splitlines()))
    classifier = load_model(model_file)
    assert [row["path"] for row in rows] == files
    assert [row["label"] for row in rows[:-1]] == list(classifier.predict(files[:-1]))
    assert rows[-1]["label"] == "" and "not found" in rows[-1]["error"]
    assert "missing.wav" in captured.err and "1 of 7 file(s)" in captured.err
    assert main(["predict", str(model_file), files[0], "--format", "json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["label"] == classifier.predict(files[:1])[0] and entry["error"] is None
    assert set(entry["probabilities"]) == set(classifier.classes_)
    assert main(["predict", str(model_file), str(tmp_path / "missing.wav")]) == 1
    capsys.readouterr()
    model_file.write_bytes(model_file.read_bytes()[:-10])
    assert main(["predict", str(model_file), files[0]]) == 2
    assert "truncated" in capsys.readouterr().err


def _subset(source: Path, target: Path, per_fold: int) -> Path:
    """A smaller UrbanSound8K: copies of the first ``per_fold`` clips of each fold."""
    meta = pd.read_csv(source / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv")
    meta = meta.sort_values("slice_file_name").groupby("fold").head(per_fold)
    (target / "UrbanSound8K" / "metadata").mkdir(parents=True)
    meta.to_csv(target / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv", index=False)
    for row in meta.itertuples():
        folder = source / "UrbanSound8K" / "audio" / f"fold{row.fold}"
        audio = next(folder.glob(f"{Path(row.slice_file_name).stem}.*"))
        copy = target / "UrbanSound8K" / "audio" / f"fold{row.fold}" / audio.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(audio, copy)
    return target


@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore:The least populated class")
def test_real_urbansound8k_model_scores_what_the_benchmark_reports(
        shared_data_dir: Path, tmp_path: Path) -> None:
    """Trained on (part of) fold 1 of the real UrbanSound8K by ``auto`` among handcrafted
    systems, and run on the fold-2 files, the model makes the benchmark's choice for that
    fold and scores what the benchmark reports for it."""
    data_dir = _subset(shared_data_dir / "urbansound8k-subset", tmp_path / "us8k", 80)
    config = BenchmarkConfig(heads=("xgb", "logreg"), fusions=("early", "weighted"),
                             repeats=1, n_bootstrap=100, outer_folds=(2,))
    results = run_benchmark_on("urbansound8k", data_dir, tmp_path / "store", model=None,
                               config=config, extraction=THREE_FAMILIES,
                               out=tmp_path / "bench", n_jobs=2, progress=False).results
    classifier = train("urbansound8k", data_dir, tmp_path / "store", model=None, folds=[1],
                       config=config, n_jobs=2, progress=False)
    model_file = classifier.save(tmp_path / "model.fk")
    choice = next(s for s in results["systems"] if s["name"] == "auto")["fusion_choice"]["2"]
    assert choice.startswith(f"{classifier.system_} (inner accuracy")
    assert len(set(classifier.candidate_scores_.values())) > 1  # a choice, not a tie
    test = load_dataset("urbansound8k", data_dir).clips.query("fold == 2")
    predicted = load_model(model_file, n_jobs=2).predict(test["path"].tolist())
    accuracy = np.mean(predicted == test["label"].to_numpy())
    reported = next(s for s in results["systems"] if s["name"] == classifier.system_)
    # Equal up to float rounding (the benchmark feeds float32 columns, the estimator float64).
    assert accuracy == pytest.approx(reported["per_fold"]["2"]["accuracy"], abs=1 / len(test))
    assert accuracy > 0.3  # ten classes: far above chance
