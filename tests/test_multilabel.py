"""Multi-label tasks: metrics with known answers, heads and fusions on label indicators, the
FSD50K layout and CSV label sets, the train -> val -> eval protocol, and the whole path from a
folder of mixtures to results.json (synthesized sounds; real ESC-10 mixtures with
FEATUREKIT_TEST_DATA)."""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import io
import json
import shutil
import struct
import subprocess
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fixtures_audio import class_signal, make_esc50
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.data import label_matrix
from featurekit.benchmark.plan import official_split
from featurekit.benchmark.resample import bootstrap_map_difference, resampled_average_precision
from featurekit.benchmark.score import d_prime, lwlrap, multilabel_metrics, per_class_ap
from featurekit.cli import main
from featurekit.datasets import DatasetWarning, load_dataset, verify_dataset
from featurekit.datasets.base import Dataset
from featurekit.datasets.fsd50k import download_fsd50k
from featurekit.datasets.mixtures import (
    class_speeds,
    mix_pair,
    plan_mixtures,
    variant_name,
    write_mixture_set,
)
from featurekit.errors import ConfigError, DatasetError, DownloadError
from featurekit.fusion import make_fusion
from featurekit.io.download import extract_archive
from featurekit.io.splitzip import open_split_zip, split_parts
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.heads.logreg import LogRegHead
from featurekit.learn.heads.mlp import MLPHead
from featurekit.learn.heads.xgb import XGBHead
from featurekit.learn.splits import inner_splits, stratification_labels
from featurekit.learn.torch.e2e import E2EClassifier
from featurekit.learn.torch.sequence import SequenceClassifier

SPLITS = {1: "train", 2: "train", 3: "train", 4: "val", 5: "eval"}


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------

def test_lwlrap_by_hand() -> None:
    # Clip 1: labels {0, 2}; ranking 2 > 0 > 1 -> label 2 at rank 1 (1/1), label 0 at rank 2
    # (2/2). Clip 2: label {1}; ranking 0 > 2 > 1 -> rank 3 (1/3). Mean over 3 pairs.
    truth = np.array([[1, 0, 1], [0, 1, 0]])
    proba = np.array([[0.5, 0.1, 0.9], [0.8, 0.1, 0.3]])
    assert lwlrap(truth, proba) == pytest.approx((1.0 + 1.0 + 1 / 3) / 3)
    # A clip without labels counts for nothing; perfect rankings give 1.
    assert lwlrap(np.vstack([truth, [0, 0, 0]]), np.vstack([truth * 1.0, [1, 1, 1]])) == 1.0


def test_lwlrap_is_label_ranking_average_precision_weighted_by_labels() -> None:
    from sklearn.metrics import label_ranking_average_precision_score

    rng = np.random.default_rng(0)
    truth = (rng.random((250, 200)) < 0.01).astype(int)  # some clips without a label
    proba = np.round(rng.random((250, 200)), 2)  # ties; 100 clips per chunk
    expected = label_ranking_average_precision_score(truth, proba,
                                                     sample_weight=truth.sum(axis=1))
    assert lwlrap(truth, proba) == pytest.approx(expected, rel=1e-12)


def test_per_class_ap_is_scikit_learns_with_ties_and_nan_without_positives() -> None:
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(1)
    truth = (rng.random((300, 8)) < 0.2).astype(int)
    truth[:, 3] = 0
    proba = np.round(rng.random((300, 8)), 1)  # many ties
    ap = per_class_ap(truth, proba)
    assert np.isnan(ap[3])
    kept = [column for column in range(8) if column != 3]
    np.testing.assert_allclose(ap[kept], average_precision_score(truth[:, kept], proba[:, kept],
                                                                 average=None), rtol=1e-12)


def test_lwlrap_weights_clips_by_their_labels() -> None:
    # Clip 1 has one label ranked last of 3 (1/3); clip 2 two labels ranked first (1, 1).
    # Per-clip averaging would give (1/3 + 1) / 2; lwlrap counts each label once.
    truth = np.array([[1, 0, 0], [1, 1, 0]])
    proba = np.array([[0.1, 0.5, 0.9], [0.9, 0.8, 0.1]])
    assert lwlrap(truth, proba) == pytest.approx((1 / 3 + 1 + 1) / 3)


def test_d_prime_known_values() -> None:
    assert d_prime(0.5) == pytest.approx(0.0)
    assert d_prime(stats.norm.cdf(1 / np.sqrt(2))) == pytest.approx(1.0)
    assert d_prime(0.25) == pytest.approx(-d_prime(0.75))


def test_multilabel_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    truth = (rng.random((80, 6)) < 0.3).astype(int)
    truth[:, 5] = 0  # a class without positives is left out of the macro average
    proba = np.clip(0.4 * truth + rng.random(truth.shape), 0, 1)
    scores = multilabel_metrics(truth, proba)
    assert scores["map"] == pytest.approx(np.mean(
        [average_precision_score(truth[:, c], proba[:, c]) for c in range(5)]))
    assert scores["micro_map"] == pytest.approx(
        average_precision_score(truth, proba, average="micro"))
    auc = np.mean([roc_auc_score(truth[:, c], proba[:, c]) for c in range(5)])
    assert scores["dprime"] == pytest.approx(np.sqrt(2) * stats.norm.ppf(auc))
    assert scores["accuracy"] == pytest.approx(
        np.mean(truth[np.arange(80), proba.argmax(axis=1)]))


def test_resampled_average_precision_equals_scikit_learn_with_sample_weight() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random((60, 1)).round(1)  # many ties
    truth = rng.random((60, 1)) < 0.3
    weights = rng.integers(0, 3, size=(20, 60))
    weights[:, :4] = 0  # undrawn clips at the top of the ranking
    expected = [average_precision_score(truth, scores, sample_weight=w) for w in weights]
    assert np.allclose(resampled_average_precision(scores, truth, np.arange(60), weights)[:, 0],
                       expected)


def test_map_bootstrap_zero_for_identical_systems_and_positive_for_a_better_one() -> None:
    rng = np.random.default_rng(2)
    truth = (rng.random((50, 4)) < 0.4).astype(int)
    noise = [rng.random((2, 50, 4)) for _ in range(2)]
    units = [np.repeat(np.arange(25), 2)] * 2
    assert bootstrap_map_difference(noise, noise, [truth] * 2, units, n_boot=200) == (0.0, 0.0)
    perfect = [np.stack([truth * 1.0, truth * 1.0])] * 2
    low, high = bootstrap_map_difference(perfect, noise, [truth] * 2, units, n_boot=300)
    assert 0.0 < low <= high <= 1.0


# --------------------------------------------------------------------------------------------
# Heads and fusions
# --------------------------------------------------------------------------------------------

def _separable(n: int = 240, n_classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    return X, (X[:, :n_classes] > 0.4).astype(int)


@pytest.mark.parametrize("head", [XGBHead(random_state=0),
                                  XGBHead(random_state=0, early_stopping=True),
                                  MLPHead(random_state=0), LogRegHead()],
                         ids=["xgb", "xgb-early-stopping", "mlp", "logreg"])
def test_heads_fit_label_indicators(head: object) -> None:
    X, Y = _separable()
    head.fit(X[:160], Y[:160], groups=np.arange(160) // 4)
    proba = head.predict_proba(X[160:])
    assert proba.shape == (80, 4) and head.multilabel_
    assert np.all((proba >= 0) & (proba <= 1))
    assert multilabel_metrics(Y[160:], proba)["map"] > 0.9  # chance is about 0.35
    assert set(np.unique(head.predict(X[160:]))) <= {0, 1}


def test_heads_refuse_a_label_matrix_that_is_not_binary() -> None:
    X, Y = _separable()
    with pytest.raises(ValueError, match="only 0 and 1"):
        LogRegHead().fit(X, Y * 2)


def test_stratification_labels_pick_each_rows_rarest_label() -> None:
    Y = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1], [0, 0, 0]])
    assert stratification_labels(Y).tolist() == [1, 0, 2, 0]


@pytest.mark.parametrize("rule", ["mean", "weighted", "stacking"])
def test_late_fusions_combine_per_class_probabilities(rule: str) -> None:
    rng = np.random.default_rng(0)
    truth = (rng.random((150, 5)) < 0.3).astype(int)
    good = np.clip(0.7 * truth + 0.3 * rng.random(truth.shape), 0, 1)
    noise = rng.random(truth.shape)
    splits = inner_splits(stratification_labels(truth), n_splits=3)
    fused = make_fusion(rule).fit([good, noise], truth, splits).combine([good, noise])
    assert fused.shape == truth.shape
    assert multilabel_metrics(truth, fused)["map"] >= (
        0.9 if rule != "mean" else multilabel_metrics(truth, noise)["map"])


def test_calibrated_fusion_refuses_label_sets() -> None:
    truth = np.eye(3, dtype=int)[[0, 1, 2, 0, 1, 2]]
    with pytest.raises(ConfigError, match="multi-label"):
        make_fusion("calibrated").fit([truth * 0.9], truth, [])


def band_label_sets(n_clips: int, *, n_bands: int = 8, n_classes: int = 4, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Label sets (one or two of ``n_classes``) and log-mel-like sequences in which each label
    lifts its own band; every third clip is shorter (NaN-padded)."""
    rng = np.random.default_rng(seed)
    Y = np.zeros((n_clips, n_classes), dtype=int)
    Y[np.arange(n_clips), np.arange(n_clips) % n_classes] = 1
    second = rng.random(n_clips) < 0.5
    Y[np.flatnonzero(second), rng.integers(0, n_classes, n_clips)[second]] = 1
    X = rng.normal(size=(n_clips, 20, n_bands)).astype(np.float32)
    X[:, :, :n_classes] += 3.0 * Y[:, None, :]
    X[::3, 10:] = np.nan
    return X, Y


def test_e2e_cnn_fits_label_sets() -> None:
    X, Y = band_label_sets(96)
    test, truth = band_label_sets(48, seed=1)
    model = E2EClassifier(channels=(4, 8, 8, 16), max_epochs=15, patience=15, batch_size=16,
                          freq_mask_bands=1, mixup_alpha=0.0, random_state=0)
    model.fit(X, Y, groups=np.arange(96) // 2)
    proba = model.predict_proba(test)
    assert model.multilabel_ and proba.shape == (48, 4)
    assert not np.allclose(proba.sum(axis=1), 1.0)  # independent sigmoids, not a softmax
    assert multilabel_metrics(truth, proba)["map"] > 0.9
    assert set(np.unique(model.predict(test))) <= {0, 1}


def test_sequence_head_and_joint_model_fit_label_sets() -> None:
    X, Y = band_label_sets(96)
    test, truth = band_label_sets(48, seed=1)
    fast = {"max_epochs": 15, "patience": 15, "width": 32, "embedding_dim": 16}
    single = SequenceClassifier(random_state=0, **fast).fit(X, Y)
    assert multilabel_metrics(truth, single.predict_proba(test))["map"] > 0.9
    # Two streams, each carrying half of the classes: only the joint model sees all.
    streams = {"low": X[:, :, :2], "high": X[:, :, 2:]}
    joint = SequenceClassifier(random_state=0, **fast).fit(streams, Y)
    proba = joint.predict_proba({"low": test[:, :, :2], "high": test[:, :, 2:]})
    assert multilabel_metrics(truth, proba)["map"] > 0.9


# --------------------------------------------------------------------------------------------
# The benchmark engine on a features table
# --------------------------------------------------------------------------------------------

def _features_table(n: int = 150, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    classes = ["bark", "rain", "siren", "wind"]
    Y = (rng.random((n, 4)) < 0.35).astype(int)
    Y[Y.sum(axis=1) == 0, 0] = 1
    table = pd.DataFrame({"clip_id": [f"c{i:03d}" for i in range(n)],
                          "fold": np.arange(n) % 3 + 1,
                          "label": [",".join(c for c, y in zip(classes, row, strict=True) if y)
                                    for row in Y], "label_id": 0})
    informative = Y @ rng.normal(size=(4, 5)) + rng.normal(size=(n, 5))
    weak = Y @ rng.normal(size=(4, 4)) + 3 * rng.normal(size=(n, 4))
    for j in range(5):
        table[f"pitch.f{j}.mean"] = informative[:, j]
    for j in range(4):
        table[f"neural.m.emb_{j}"] = weak[:, j]
    return table


def test_label_matrix_and_its_errors() -> None:
    Y, classes = label_matrix([["b", "a"], ["c"]])
    assert classes == ["a", "b", "c"] and Y.tolist() == [[1, 1, 0], [0, 0, 1]]
    with pytest.raises(DatasetError, match="empty label set"):
        label_matrix([["a"], []])
    with pytest.raises(DatasetError, match="unknown label"):
        label_matrix([["z"]], ["a", "b"])


def test_official_split_trains_on_train_validates_on_val_scores_eval() -> None:
    folds = np.array([1, 3, 2, 1, 3, 2, 1])
    outer, inner = official_split(folds)
    (fold, training, test), = outer
    assert fold == 3 and training.tolist() == [0, 2, 3, 5, 6] and test.tolist() == [1, 4]
    (fit, validate), = inner[3]
    assert training[fit].tolist() == [0, 3, 6] and training[validate].tolist() == [2, 5]
    with pytest.raises(DatasetError, match="train-val-eval"):
        official_split(np.array([1, 2, 4]))


@pytest.mark.parametrize("protocol", ["leave-one-fold-out", "train-val-eval"])
def test_multilabel_benchmark_results(protocol: str) -> None:
    config = BenchmarkConfig(heads=("logreg", "xgb"), fusions=("early", "mean", "weighted",
                                                               "stacking"),
                             repeats=2, n_bootstrap=200)
    results = run_benchmark(_features_table(), dataset="toy", config=config, multilabel=True,
                            protocol=protocol, progress=False)
    assert results["protocol"] == protocol and results["metric"] == "map"
    assert results["folds"] == ([3] if protocol == "train-val-eval" else [1, 2, 3])
    primary = results["primary"]
    assert primary["metric"] == "map" and primary["system"] == "auto"
    by_name = {system["name"]: system for system in results["systems"]}
    for system in by_name.values():
        assert {"map", "micro_map", "lwlrap", "dprime"} <= set(system["mean"])
        assert 0.0 <= system["mean"]["map"] <= 1.0
        assert set(system["per_class_ap"]) == {"bark", "rain", "siren", "wind"}
    # gain_pp is in points of macro mAP, averaged over the evaluated folds
    expected = 100 * (by_name["auto"]["mean"]["map"] - by_name["neural-auto"]["mean"]["map"])
    assert primary["gain_pp"] == pytest.approx(expected)
    assert primary["ci95_pp"][0] <= primary["gain_pp"] <= primary["ci95_pp"][1]
    assert by_name["auto"]["mean"]["map"] > by_name["neural-auto"]["mean"]["map"]
    assert "inner map" in next(iter(by_name["auto"]["fusion_choice"].values()))


def test_multilabel_benchmark_with_the_e2e_stream() -> None:
    table = _features_table(n=96)
    Y, _ = label_matrix([labels.split(",") for labels in table["label"]])
    X = np.random.default_rng(0).normal(size=(96, 20, 8)).astype(np.float32)
    X[:, :, :4] += 3.0 * Y[:, None, :]
    heads = {"cnn": HeadSpec("cnn", functools.partial(
        E2EClassifier, channels=(4, 8, 8, 16), max_epochs=4, batch_size=16,
        freq_mask_bands=1), seeded=True)}
    config = BenchmarkConfig(heads=("logreg",), fusions=("mean", "weighted"), repeats=1,
                             n_bootstrap=100)
    results = run_benchmark(table, dataset="toy", config=config, head_specs=heads,
                            sequences={"e2e": X}, multilabel=True,
                            protocol="train-val-eval", progress=False)
    by_name = {system["name"]: system for system in results["systems"]}
    assert 0.0 <= by_name["e2e/cnn"]["mean"]["map"] <= 1.0
    assert {c["branch"] for c in results["branch_comparisons"]} == {"neural.m", "e2e"}
    assert all(c["metric"] == "map" for c in results["branch_comparisons"])


def test_multilabel_benchmark_refuses_single_label_only_options() -> None:
    table = _features_table()
    with pytest.warns(UserWarning, match="calibrated"), \
            pytest.raises(ConfigError, match="single-label"):
        run_benchmark(table, dataset="toy", config=BenchmarkConfig(heads=("logreg",),
                                                                   tune=True),
                      multilabel=True, progress=False)
    with pytest.warns(UserWarning, match="calibrated"):
        results = run_benchmark(table, dataset="toy", progress=False, multilabel=True,
                                config=BenchmarkConfig(heads=("logreg",), repeats=1,
                                                       n_bootstrap=100,
                                                       fusions=("mean", "calibrated")))
    assert results["config"]["fusions"] == ["mean"]


# --------------------------------------------------------------------------------------------
# Datasets: the FSD50K layout, CSV label sets, mixtures
# --------------------------------------------------------------------------------------------

def _write_wav(path: Path, class_index: int, seed: int, duration: float = 0.5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, class_signal(class_index, sr=16000, duration=duration, seed=seed)
             .astype(np.float32), 16000)


def _write_rows(path: Path, rows: list[list[object]], header: list[str] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def make_fsd50k(root: Path, *, dev: list[tuple[str, str, str]],
                evaluation: list[tuple[str, str]],
                vocabulary: tuple[str, ...] = ("Bark", "Dog", "Rain"),
                uploaders: dict[str, str] | None = None) -> Path:
    """A mini FSD50K: dev rows (fname, labels, split), eval rows (fname, labels), and with
    ``uploaders`` (fname -> uploader) the clip metadata of each subset."""
    mids = {name: f"/m/{index}" for index, name in enumerate(vocabulary)}

    def mid_list(labels: str) -> str:
        return ",".join(mids.get(name, "/m/x") for name in labels.split(","))

    for subset, rows in (("dev", dev), ("eval", evaluation)):
        for index, row in enumerate(rows):
            _write_wav(root / f"FSD50K.{subset}_audio" / f"{row[0]}.wav", index % 3, index)
    truth = root / "FSD50K.ground_truth"
    _write_rows(truth / "dev.csv", [[f, labels, mid_list(labels), split]
                                    for f, labels, split in dev],
                ["fname", "labels", "mids", "split"])
    _write_rows(truth / "eval.csv", [[f, labels, mid_list(labels)] for f, labels in evaluation],
                ["fname", "labels", "mids"])
    _write_rows(truth / "vocabulary.csv",
                [[index, name, mids[name]] for index, name in enumerate(vocabulary)], None)
    if uploaders is not None:
        for subset, rows in (("dev", dev), ("eval", evaluation)):
            info = {row[0]: {"title": f"{row[0]}.wav", "tags": [], "license": "CC0",
                             "uploader": uploaders[row[0]]}
                    for row in rows if row[0] in uploaders}
            path = root / "FSD50K.metadata" / f"{subset}_clips_info_FSD50K.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(info))
    return root


DEV = [("11", "Bark,Dog", "train"), ("12", "Rain", "train"), ("13", "Dog", "val"),
       ("14", "Rain,Dog", "val")]
EVAL = [("21", "Bark,Dog"), ("22", "Rain")]


def test_fsd50k_layout_loads_label_sets_and_the_official_split(tmp_path: Path) -> None:
    make_fsd50k(tmp_path, dev=DEV, evaluation=EVAL)
    with pytest.warns(DatasetWarning, match="partial copy.*6 of 51197"):
        dataset = load_dataset("fsd50k", tmp_path)
    assert dataset.multilabel and dataset.protocol == "train-val-eval"
    assert dataset.classes == ["Bark", "Dog", "Rain"]  # vocabulary order
    clips = dataset.clips.set_index("clip_id")
    assert clips.loc["11", "label"] == "Bark,Dog" and clips.loc["11", "label_id"] == 0
    assert clips["fold"].to_dict() == {"11": 1, "12": 1, "13": 2, "14": 2, "21": 3, "22": 3}
    assert clips.loc["21", "subset"] == "eval" and Path(clips.loc["21", "path"]).is_file()


def test_fsd50k_missing_audio_is_skipped_with_a_warning(tmp_path: Path) -> None:
    make_fsd50k(tmp_path, dev=DEV, evaluation=EVAL)
    (tmp_path / "FSD50K.dev_audio" / "12.wav").unlink()
    with pytest.warns(DatasetWarning, match="partial copy"), \
            pytest.warns(DatasetWarning, match="1 listed clip.*no audio file.*12"):
        dataset = load_dataset("fsd50k", tmp_path)
    assert "12" not in set(dataset.clips["clip_id"])


@pytest.mark.parametrize(("dev", "evaluation", "message"), [
    ([("11", "Bark,Cat", "train")], EVAL, "label.*Cat.*not in FSD50K.ground_truth/vocabulary"),
    ([("11", " , ", "train")], EVAL, "empty label set on line.*2"),
    ([("11", "Bark", "test")], EVAL, "split.*train or val.*test"),
    ([("21", "Bark", "train")], EVAL, "duplicate clip ids: 21"),
])
def test_fsd50k_bad_metadata_is_refused(tmp_path: Path, dev: list, evaluation: list,
                                        message: str) -> None:
    make_fsd50k(tmp_path, dev=dev, evaluation=evaluation)
    with pytest.raises(DatasetError, match=message):
        load_dataset("fsd50k", tmp_path)


def test_fsd50k_vocabulary_with_a_header_is_refused(tmp_path: Path) -> None:
    make_fsd50k(tmp_path, dev=DEV, evaluation=EVAL)
    vocabulary = tmp_path / "FSD50K.ground_truth" / "vocabulary.csv"
    vocabulary.write_text("index,label,mid\n" + vocabulary.read_text())
    with pytest.raises(DatasetError, match=r"no header|number the classes"):
        load_dataset("fsd50k", tmp_path)


def test_fsd50k_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no copy found"):
        load_dataset("fsd50k", tmp_path)


def test_csv_labels_column_makes_a_multilabel_dataset(tmp_path: Path) -> None:
    for index in range(4):
        _write_wav(tmp_path / "audio" / f"{index}.wav", index % 3, index)
    _write_rows(tmp_path / "clips.csv", [["audio/0.wav", "dog,rain", 1],
                                         ["audio/1.wav", "rain", 1],
                                         ["audio/2.wav", "siren, dog,dog", 2],
                                         ["audio/3.wav", "siren", 2]],
                ["path", "labels", "fold"])
    dataset = load_dataset("csv", tmp_path)
    assert dataset.multilabel and dataset.classes == ["dog", "rain", "siren"]
    assert dataset.clips.set_index("clip_id")["label"].to_dict() == {
        "audio/0": "dog,rain", "audio/1": "rain", "audio/2": "siren,dog", "audio/3": "siren"}


@pytest.mark.parametrize(("header", "rows", "message"), [
    (["path", "labels"], [["a.wav", ""]], "empty label set on line.*2"),
    (["path", "label", "labels"], [["a.wav", "x", "x"]], "exactly one of the columns"),
    (["path"], [["a.wav"]], "exactly one of the columns"),
])
def test_csv_label_columns_are_checked(tmp_path: Path, header: list[str], rows: list,
                                       message: str) -> None:
    _write_wav(tmp_path / "a.wav", 0, 0)
    _write_rows(tmp_path / "clips.csv", rows, header)
    with pytest.raises(DatasetError, match=message):
        load_dataset("csv", tmp_path)


def test_mix_pair_equal_loudness_and_length() -> None:
    loud, quiet = np.ones(100), 0.01 * np.ones(50)
    mixed = mix_pair(loud, quiet, n_samples=80, peak=0.9)
    assert mixed.shape == (80,) and np.max(np.abs(mixed)) == pytest.approx(0.9)
    # equal RMS before summing: both halves contribute alike where both play
    assert mixed[10] == pytest.approx(2 * mixed[70])
    assert np.allclose(mix_pair(loud, None, n_samples=100), 0.9)


def _esc_like(tmp_path: Path) -> object:
    make_esc50(tmp_path / "esc", clips_per_fold=6, duration=0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        return load_dataset("esc50", tmp_path / "esc")


def test_mixture_plan_keeps_splits_apart_and_classes_distinct(tmp_path: Path) -> None:
    source = _esc_like(tmp_path)
    plan = plan_mixtures(source.clips, SPLITS, seed=1)
    fold_of = source.clips.set_index("path")["fold"]
    split_of = {path: SPLITS[fold] for path, fold in fold_of.items()}
    assert len(plan) == len(source.clips)
    assert sorted(plan["first"]) == sorted(source.clips["path"])
    for item in plan.itertuples():
        assert split_of[item.first] == item.split
        labels = item.labels.split(",")
        if pd.notna(item.second):
            assert split_of[item.second] == item.split and len(set(labels)) == 2
        else:
            assert len(labels) == 1
    assert plan["second"].notna().any() and plan["second"].isna().any()


def test_mixture_set_round_trips_through_the_fsd50k_adapter(tmp_path: Path) -> None:
    source = _esc_like(tmp_path)
    plan = write_mixture_set(source, tmp_path / "mix", SPLITS, sr=8000, duration=0.5)
    with pytest.warns(DatasetWarning, match="partial copy"):
        dataset = load_dataset("fsd50k", tmp_path / "mix")
    assert dataset.classes == source.classes
    labels = dataset.clips.set_index("clip_id")["label"]
    assert labels.to_dict() == plan.set_index("fname")["labels"].to_dict()
    assert sf.info(dataset.clips["path"].iloc[0]).samplerate == 8000


def test_mixture_plan_of_many_items_and_classes(tmp_path: Path) -> None:
    source = _esc_like(tmp_path)  # 4 classes, 6 clips per fold
    classes = ["dog", "rooster", "rain", "pig"]
    plan = plan_mixtures(source.clips, SPLITS, seed=3, n_items=500, classes=classes,
                         n_classes=10)
    assert len(plan) == 500
    # Split sizes follow the source clips and speeds of each split (folds 1-3 : 4 : 5).
    assert plan["split"].value_counts().to_dict() == {"train": 300, "val": 100, "eval": 100}
    names = set(plan["labels"].str.split(",").explode())
    speeds = class_speeds(classes, 10)
    assert names == {variant_name(label, speed) for label, kept in speeds.items()
                     for speed in kept}
    assert [len(speeds[label]) for label in classes] == [3, 3, 2, 2]
    # Partners are of another source class; no item is made twice.
    mixed = plan[plan["second"].notna()]
    base = mixed["labels"].str.split(",").map(lambda pair: {n.split("@")[0] for n in pair})
    assert (base.map(len) == 2).all()
    assert not plan.duplicated(["first", "second", "first_speed", "second_speed"]).any()
    # A clip used again as a first clip is always mixed.
    again = plan.duplicated(["split", "first", "first_speed"])
    assert again.any() and plan.loc[again, "second"].notna().all()
    with pytest.raises(DatasetError, match="n_classes must be between 4"):
        plan_mixtures(source.clips, SPLITS, n_classes=21)


def test_mixture_speed_variants_shift_the_pitch(tmp_path: Path) -> None:
    sr = 8000
    paths = []
    for index, hz in enumerate([250.0, 250.0, 600.0, 600.0] * 3):
        paths.append(tmp_path / f"{index}.wav")
        t = np.arange(sr) / sr
        sf.write(paths[-1], 0.5 * np.sin(2 * np.pi * hz * t), sr)
    clips = pd.DataFrame({"clip_id": [p.stem for p in paths], "path": [str(p) for p in paths],
                          "label": ["low", "low", "high", "high"] * 3,
                          "fold": np.repeat([1, 4, 5], 4)})
    clips["label_id"] = (clips["label"] == "high").astype(int)
    source = Dataset(name="tones", clips=clips, classes=["low", "high"], expected_folds=[1, 4, 5],
                     root=tmp_path)
    plan = write_mixture_set(source, tmp_path / "mix", {1: "train", 4: "val", 5: "eval"},
                             sr=sr, duration=0.5, single_share=0.9, seed=0, n_items=60,
                             n_classes=4, n_jobs=2)
    with pytest.warns(DatasetWarning, match="partial copy"):
        dataset = load_dataset("fsd50k", tmp_path / "mix")
    assert dataset.classes == ["low", "low@1.26x", "high", "high@1.26x"]
    singles = plan[plan["second"].isna()]
    assert set(singles["labels"]) == set(dataset.classes)
    paths = dataset.clips.set_index("clip_id")["path"]
    for item in singles.itertuples():
        y, _ = sf.read(paths[item.fname])
        peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * sr / y.size
        hz = 250.0 if item.labels.startswith("low") else 600.0
        assert peak_hz == pytest.approx(hz * item.first_speed, abs=4.0)


# --------------------------------------------------------------------------------------------
# End to end: featurekit benchmark on the FSD50K layout and on a CSV with labels
# --------------------------------------------------------------------------------------------

def _benchmark(tmp_path: Path, dataset: str, data_dir: Path) -> dict:
    out = tmp_path / f"out-{dataset}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["benchmark", "--dataset", dataset, "--data-dir", str(data_dir),
                     "--store", str(tmp_path / f"store-{dataset}"), "--out", str(out),
                     "--model", "none", "--heads", "logreg", "--repeats", "1",
                     "--bootstrap", "100", "--families", "pitch,timbre,spectral"])
    assert code == 0
    assert (out / "report.md").is_file() and (out / "per_class_ap.png").is_file()
    return json.loads((out / "results.json").read_text())


def test_featurekit_benchmark_on_the_fsd50k_layout_and_on_a_labels_csv(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _esc_like(tmp_path)
    write_mixture_set(source, tmp_path / "mix", SPLITS, sr=16000, duration=0.6)
    results = _benchmark(tmp_path, "fsd50k", tmp_path / "mix")
    assert results["protocol"] == "train-val-eval" and results["multilabel"]
    assert results["primary"]["metric"] == "map" and results["folds"] == [3]
    assert "mAP" in capsys.readouterr().out

    with pytest.warns(DatasetWarning, match="partial copy"):
        fsd = load_dataset("fsd50k", tmp_path / "mix")
    rows = [[path, label, int(fold)] for path, label, fold in
            fsd.clips[["path", "label", "fold"]].itertuples(index=False)]
    _write_rows(tmp_path / "list" / "mix.csv", rows, ["path", "labels", "fold"])
    results = _benchmark(tmp_path, "csv", tmp_path / "list")
    assert results["protocol"] == "leave-one-fold-out" and results["multilabel"]
    assert results["folds"] == [1, 2, 3] and results["metric"] == "map"
    assert {"map", "micro_map", "lwlrap", "dprime"} <= set(results["systems"][0]["mean"])


def test_real_esc10_mixtures_beat_chance(tmp_path: Path, shared_data_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        esc10 = load_dataset("esc10", shared_data_dir / "esc10")
    # Two clips per class and fold keep the test short; splits follow the official folds.
    clips = esc10.clips.groupby(["fold", "label"], group_keys=False).head(2)
    source = type(esc10)(name=esc10.name, clips=clips.reset_index(drop=True),
                         classes=esc10.classes, expected_folds=esc10.expected_folds,
                         root=esc10.root)
    write_mixture_set(source, tmp_path / "mix", SPLITS, sr=22050, duration=5.0)
    results = _benchmark(tmp_path, "fsd50k", tmp_path / "mix")
    with pytest.warns(DatasetWarning, match="partial copy"):
        labels = load_dataset("fsd50k", tmp_path / "mix").clips
    eval_labels = labels.loc[labels["fold"] == 3, "label"].str.split(",")
    chance = np.mean([np.mean([name in row for row in eval_labels])
                      for name in esc10.classes])  # AP of a random ranking ~ prevalence
    best = max(system["mean"]["map"] for system in results["systems"])
    assert best > chance + 0.2


# --------------------------------------------------------------------------------------------
# Download: split archives read in place, the Zenodo record served locally
# --------------------------------------------------------------------------------------------

def write_split_zip(source: Path, archive: Path, *, part_size: int) -> list[Path]:
    """Zip the folder ``source`` (members under its own name) as a split archive laid out as
    Info-ZIP's ``zip -s``: ``archive.z01``... then ``archive.zip``; the spanning marker first,
    each member located by its part and its offset there, the directory in the last part."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(source.rglob("*")):
            handle.write(path, path.relative_to(source.parent).as_posix())
    data = buffer.getvalue()
    end = data.rfind(b"PK\x05\x06")
    _, _, _, _, entries, cd_size, cd_offset, _ = struct.unpack_from("<4s4H2LH", data, end)
    stream = b"PK\x07\x08" + data[:cd_offset]
    chunks = [stream[i:i + part_size] for i in range(0, len(stream), part_size)]
    last = chunks.pop()
    directory, position = bytearray(data[cd_offset:cd_offset + cd_size]), 0
    for _ in range(entries):
        name_length, extra_length, comment_length = struct.unpack_from("<3H", directory,
                                                                       position + 28)
        absolute = struct.unpack_from("<L", directory, position + 42)[0] + 4
        struct.pack_into("<H", directory, position + 34, absolute // part_size)
        struct.pack_into("<L", directory, position + 42, absolute % part_size)
        position += 46 + name_length + extra_length + comment_length
    paths = []
    for index, chunk in enumerate(chunks, start=1):
        paths.append(archive.with_suffix(f".z{index:02d}"))
        paths[-1].write_bytes(chunk)
    archive.write_bytes(last + bytes(directory) + struct.pack(
        "<4s4H2LH", b"PK\x05\x06", len(chunks), len(chunks), entries, entries, cd_size,
        len(last), 0))
    return [*paths, archive]


def _tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_split_archive_is_read_in_place_and_extracted(tmp_path: Path) -> None:
    make_fsd50k(tmp_path / "src", dev=DEV, evaluation=EVAL)
    parts = write_split_zip(tmp_path / "src" / "FSD50K.dev_audio",
                            tmp_path / "FSD50K.dev_audio.zip", part_size=20_000)
    assert [path.name for path in split_parts(parts[-1])] == [path.name for path in parts]
    assert len(parts) > 3  # members cross part boundaries
    with open_split_zip(parts) as handle:
        assert handle.testzip() is None
    extract_archive(parts[-1], tmp_path / "out")
    assert _tree(tmp_path / "out") == {
        f"FSD50K.dev_audio/{name}": data
        for name, data in _tree(tmp_path / "src" / "FSD50K.dev_audio").items()}


@pytest.mark.skipif(shutil.which("zip") is None, reason="Info-ZIP's zip is not installed")
@pytest.mark.parametrize("zip64", [False, True], ids=["zip32", "zip64"])
def test_split_archive_written_by_info_zip(tmp_path: Path, zip64: bool) -> None:
    rng = np.random.default_rng(0)  # incompressible, so that 64 KiB parts (zip's least) split
    (tmp_path / "FSD50K.dev_audio").mkdir()
    for name in ("1", "2", "3"):
        (tmp_path / "FSD50K.dev_audio" / f"{name}.wav").write_bytes(rng.bytes(50_000))
    subprocess.run(["zip", "-q", "-r", "-s", "64k", *(["-fz"] if zip64 else []),
                    "FSD50K.dev_audio.zip", "FSD50K.dev_audio"], cwd=tmp_path, check=True)
    parts = split_parts(tmp_path / "FSD50K.dev_audio.zip")
    assert len(parts) > 1
    with open_split_zip(parts) as handle:
        for name in handle.namelist():
            if name.endswith(".wav"):
                assert handle.read(name) == (tmp_path / name).read_bytes()


def test_split_archive_with_a_missing_part_is_refused(tmp_path: Path) -> None:
    make_fsd50k(tmp_path / "src", dev=DEV, evaluation=EVAL)
    parts = write_split_zip(tmp_path / "src" / "FSD50K.dev_audio",
                            tmp_path / "FSD50K.dev_audio.zip", part_size=20_000)
    parts[1].unlink()
    with pytest.raises(DownloadError, match="not numbered"):
        extract_archive(parts[-1], tmp_path / "out")
    assert not (tmp_path / "out" / "FSD50K.dev_audio").exists()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def zenodo(tmp_path: Path):
    """A local HTTP server in front of ``tmp_path/served`` and a function that publishes a
    record (its API JSON) of the files there, the way Zenodo lists them."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def publish(*, corrupt: str | None = None) -> str:
        files = []
        for path in sorted(served.glob("FSD50K.*")):
            md5 = hashlib.md5(path.read_bytes()).hexdigest()
            files.append({"key": path.name, "size": path.stat().st_size,
                          "checksum": f"md5:{'0' * 32 if path.name == corrupt else md5}",
                          "links": {"self": f"{base}/{path.name}"}})
        (served / "record.json").write_text(json.dumps({"id": 4060432, "files": files}))
        return f"{base}/record.json"

    yield served, publish
    server.shutdown()
    thread.join()


def _publish_fsd50k(tmp_path: Path, served: Path) -> None:
    source = make_fsd50k(tmp_path / "src", dev=DEV, evaluation=EVAL,
                         uploaders={"11": "ann", "12": "ann", "13": "bo", "14": "bo",
                                    "21": "cy", "22": "ann"})
    for name in ("FSD50K.ground_truth", "FSD50K.metadata", "FSD50K.eval_audio"):
        shutil.make_archive(str(served / name), "zip", source, name)
    write_split_zip(source / "FSD50K.dev_audio", served / "FSD50K.dev_audio.zip",
                    part_size=20_000)
    (served / "FSD50K.doc.zip").write_bytes(b"not needed, never fetched")


def test_download_fsd50k_from_a_local_record(tmp_path: Path, zenodo) -> None:
    served, publish = zenodo
    _publish_fsd50k(tmp_path, served)
    record = publish()
    # The copy is complete as published but not the full release: verification says so, and
    # the extracted copy loads as a partial one.
    with pytest.raises(DatasetError, match=r"dev clips listed: 4 \(expected 40966\)"):
        download_fsd50k(tmp_path / "data", record_url=record, progress=False)
    archives = sorted(path.name for path in (tmp_path / "data" / "FSD50K.archives").iterdir())
    assert "FSD50K.doc.zip" not in archives and "FSD50K.dev_audio.z01" in archives
    with pytest.warns(DatasetWarning, match="partial copy"):
        dataset = load_dataset("fsd50k", tmp_path / "data")
    assert sorted(dataset.clips["clip_id"]) == ["11", "12", "13", "14", "21", "22"]
    # The clip metadata came with it: uploaders group the clips.
    assert dataset.clips.set_index("clip_id")["recording"].to_dict() == {
        "11": "uploader:ann", "12": "uploader:ann", "13": "uploader:bo", "14": "uploader:bo",
        "21": "uploader:cy", "22": "uploader:ann"}
    assert _tree(tmp_path / "data" / "FSD50K.dev_audio") == _tree(
        tmp_path / "src" / "FSD50K.dev_audio")
    report = verify_dataset("fsd50k", tmp_path / "data")
    assert not report.ok and "audio files: 6 of 6 listed clips found" in str(report)


def test_download_fsd50k_refuses_a_part_with_the_wrong_checksum(tmp_path: Path,
                                                                 zenodo) -> None:
    served, publish = zenodo
    _publish_fsd50k(tmp_path, served)
    record = publish(corrupt="FSD50K.dev_audio.z02")
    with pytest.raises(DownloadError, match=r"FSD50K.dev_audio.z02.*(md5|checksum)"):
        download_fsd50k(tmp_path / "data", record_url=record, progress=False)
    assert not (tmp_path / "data" / "FSD50K.dev_audio").exists()


def test_featurekit_train_refuses_a_multilabel_dataset(tmp_path: Path) -> None:
    from featurekit.model.train import train

    make_fsd50k(tmp_path, dev=DEV, evaluation=EVAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        with pytest.raises(ConfigError, match="multi-label"):
            train("fsd50k", tmp_path, tmp_path / "store", model=None)
