"""The ablation benchmark on generated feature tables where the answer is known."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost
from fixtures_features import feature_frame, full_label, high_bit, low_bit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, f1_score
from sklearn.preprocessing import StandardScaler

import featurekit.benchmark.execute as execute_module
from featurekit.benchmark import (
    BenchmarkConfig,
    ablation_subsets,
    benchmark_store,
    branch_selectors,
    load_results,
    run_benchmark,
    save_results,
    system_name,
)
from featurekit.benchmark.report import render_markdown
from featurekit.benchmark.resample import bootstrap_difference
from featurekit.benchmark.score import (
    fold_metrics,
    paired_fold_test,
    per_class_f1,
)
from featurekit.errors import ConfigError, DatasetError, StoreError
from featurekit.fusion import log_probability_features
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.heads.mlp import MLPHead
from featurekit.learn.heads.registry import HEADS
from featurekit.learn.heads.xgb import XGBHead
from featurekit.store.reader import FeatureStore
from featurekit.store.records import ClipResult

KEYS = ["clip_id", "fold", "label", "label_id"]
FOUR_BRANCHES = {"pitch": 4, "timbre": 4, "spectral": 4, "neural.tiny": 6}
FAST = BenchmarkConfig(heads=("logreg",), fusions=("early", "weighted"), n_seeds=1,
                       repeats=1, n_bootstrap=200)

#: Small seeded heads (their grids for the tuned runs).
QUICK = {"xgb": HeadSpec("xgb", functools.partial(XGBHead, n_estimators=15), seeded=True,
                         param_grid=HEADS["xgb"].param_grid),
         "mlp": HeadSpec("mlp", functools.partial(MLPHead, max_iter=30), seeded=True,
                         param_grid={"alpha": [1e-4, 1e-2]})}


def run(frame: pd.DataFrame, config: BenchmarkConfig = FAST, **kwargs: object) -> dict:
    return run_benchmark(frame, dataset="generated", config=config, progress=False, **kwargs)


def test_branches_and_ablation_subsets_follow_the_column_families() -> None:
    frame = feature_frame(widths=FOUR_BRANCHES, n_clips=12)
    frame["neural.tiny.tag_speech"] = 0.5  # tag probabilities are not part of the embedding
    assert branch_selectors(frame.columns) == {"pitch": "pitch.", "timbre": "timbre.",
                                               "spectral": "spectral.",
                                               "neural.tiny": "neural.tiny.emb_"}
    subsets = ablation_subsets(list(FOUR_BRANCHES))
    assert subsets[("pitch", "timbre", "spectral")] == ["handcrafted", "all_but:neural.tiny"]
    assert subsets[tuple(FOUR_BRANCHES)] == ["all", "handcrafted+neural.tiny"]
    assert subsets[("neural.tiny",)] == ["alone:neural.tiny"]
    assert len(subsets) == 4 + 1 + 1 + 3
    assert system_name(("pitch", "timbre"), "mlp", "stacking") == "pitch+timbre/mlp/stacking"


@pytest.mark.parametrize("informative", ["pitch", "spectral"])
def test_ablation_credits_the_only_informative_branch(informative: str) -> None:
    frame = feature_frame(n_clips=150, widths=FOUR_BRANCHES,
                          signal={informative: (full_label, 3.0)})
    results = run(frame)
    assert results["best_single"] == f"{informative}/logreg"
    contributions = results["contributions"]["branches"]
    for name, entry in contributions.items():
        if name == informative:
            assert entry["alone_pct"]["mean"] > 90
            assert entry["marginal_pp"]["mean"] > 30
        else:
            assert entry["alone_pct"]["mean"] < 50
            assert abs(entry["marginal_pp"]["mean"]) < 10


def test_fusion_of_complementary_branches_beats_each_branch() -> None:
    frame = feature_frame(n_clips=160, n_folds=4, signal={"pitch": (low_bit, 3.0),
                                                         "spectral": (high_bit, 3.0)})
    config = BenchmarkConfig(heads=("logreg",), n_seeds=1, repeats=1, n_bootstrap=300)
    results = run(frame, config=config)
    by_name = {system["name"]: system for system in results["systems"]}
    best_single = by_name[results["best_single"]]["mean"]["accuracy"]
    assert best_single < 0.65
    for fusion in ("early", "mean", "weighted", "stacking", "calibrated"):
        assert by_name[f"pitch+timbre+spectral/logreg/{fusion}"]["mean"]["accuracy"] > 0.85
    gain = results["fusion_gain"]
    assert gain["system"] == results["best_fusion"]
    assert gain["reference"] == results["best_single"]
    assert gain["mean_pp"] > 25
    assert gain["ci95_pp"][0] > 15
    assert all(value > 0 for value in gain["per_fold_pp"].values())
    assert gain["n_better"] == 4 and gain["sign_test_p"] == pytest.approx(0.125)
    assert len(results["comparisons"]) == 4 * 5  # 4 multi-branch subsets x 5 fusions


def _recorder(log: list, base: type) -> type:
    class Recording(base):
        def fit(self, X, y=None, **kwargs):
            log.append(np.asarray(X)[:, 0].astype(int))
            for X_val, _ in kwargs.get("eval_set") or []:
                log.append(np.asarray(X_val)[:, 0].astype(int))
            return super().fit(X, y, **kwargs)

    Recording.__name__ = base.__name__
    return Recording


def test_no_test_fold_row_reaches_any_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every branch's first column is the row number; every fit that learns from raw
    features (scalers of mlp/logreg heads, XGBoost incl. its early-stopping set, tuning, inner
    out-of-fold twins, early fusion) records the rows it got. None may span all folds."""
    frame = feature_frame(n_clips=72, n_folds=3, n_classes=3,
                          widths={"pitch": 3, "spectral": 3},
                          signal={"pitch": (full_label, 2.0)}, id_column=True)
    raw_rows: list[np.ndarray] = []
    stacker_sizes: list[int] = []
    monkeypatch.setattr("featurekit.learn.heads.base.StandardScaler",
                        _recorder(raw_rows, StandardScaler))
    monkeypatch.setattr("featurekit.learn.heads.xgb.XGBClassifier",
                        _recorder(raw_rows, xgboost.XGBClassifier))

    class RecordingStacker(LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            stacker_sizes.append(len(X))
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr("featurekit.fusion.rules.LogisticRegression", RecordingStacker)
    leaks: list[str] = []
    real_unit = execute_module.fit_unit

    def checked_unit(unit, spec, data, train, test, **kwargs):
        # Every fit made for this outer fold must stay away from its test rows.
        seen = len(raw_rows)
        output = real_unit(unit, spec, data, train, test, **kwargs)
        test_rows = set(test.tolist())
        leaks.extend(spec.name for rows in raw_rows[seen:] if test_rows & set(rows.tolist()))
        return output

    monkeypatch.setattr(execute_module, "fit_unit", checked_unit)
    config = BenchmarkConfig(heads=("xgb", "mlp", "logreg"), n_seeds=2, repeats=1, tune=True,
                             n_bootstrap=100)
    results = run(frame, config=config, head_specs=QUICK)
    # 3 heads x (2 branches + 5 fusions), then auto and its reference (single-branch-auto)
    assert len(results["systems"]) == 3 * (2 + 5) + 2

    fold_of = frame["fold"].to_numpy()
    assert len(raw_rows) > 200
    for rows in raw_rows:
        assert rows.size and len(set(fold_of[rows])) < 3, "a fit saw every fold"
    assert not leaks, f"fits of {sorted(set(leaks))} saw rows of their own test fold"
    assert stacker_sizes and max(stacker_sizes) <= 48  # two folds of 24 clips at most


def test_results_follow_the_contract_and_survive_json(tmp_path: Path) -> None:
    frame = feature_frame(n_clips=90, widths={"pitch": 4, "spectral": 4, "neural.tiny": 5},
                          signal={"pitch": (full_label, 1.0), "neural.tiny": (full_label, 1.5)})
    provenance = {"handcrafted": {"config_hash": "h1"}, "neural.tiny": {"config_hash": "n1"}}
    results = run(frame, provenance=provenance, expected_folds=[1, 2, 3, 4, 5])
    assert results["dataset"] == "generated"
    assert results["folds"] == [1, 2, 3]
    assert results["missing_folds"] == [4, 5]
    assert results["protocol"] == "leave-one-fold-out"
    assert results["config_hashes"]["handcrafted"] == "h1"
    assert results["config_hashes"]["neural.tiny"] == "n1"
    assert len(results["config_hashes"]["benchmark"]) == 16
    assert {"total", "fit_logreg"} <= set(results["timings_s"])
    assert {"numpy", "scikit-learn", "xgboost", "featurekit"} <= set(results["versions"])
    assert results["reference_for_gain"] == "neural.tiny/logreg"
    names = {system["name"] for system in results["systems"]}
    assert results["best_single"] in names and results["best_fusion"] in names
    for system in results["systems"]:
        assert set(system["per_fold"]) == {"1", "2", "3"}
        for scores in system["per_fold"].values():
            assert set(scores) == {"accuracy", "macro_f1", "map"}
            assert all(0.0 <= value <= 1.0 for value in scores.values())
        assert system["mean"]["accuracy"] == pytest.approx(
            np.mean([scores["accuracy"] for scores in system["per_fold"].values()]))
        assert set(system["std"]) == {"accuracy", "macro_f1", "map"}
        assert np.sum(system["confusion"]) == 90
        assert isinstance(system["branches"], list)
        assert system["fusion"] in (None, "early", "weighted", "auto", "neural-auto",
                                    "single-auto")
    best = {s["name"]: s for s in results["systems"]}
    gain = results["fusion_gain"]
    assert gain["mean_pp"] == pytest.approx(
        100 * (best[results["best_fusion"]]["mean"]["accuracy"]
               - best[results["best_single"]]["mean"]["accuracy"]))
    path = save_results(results, tmp_path / "out")
    assert load_results(path) == json.loads(json.dumps(results))


def test_benchmark_is_deterministic_for_a_seed() -> None:
    frame = feature_frame(n_clips=60, widths={"pitch": 4, "spectral": 4},
                          signal={"pitch": (full_label, 0.7), "spectral": (full_label, 0.7)})
    config = BenchmarkConfig(heads=("xgb", "mlp"), fusions=("early", "weighted"), n_seeds=2,
                             repeats=2, n_bootstrap=100, seed=5)
    first, second = (run(frame, config=config, head_specs=QUICK),
                     run(frame, config=config, head_specs=QUICK))
    # Timings, and the plan's measured seconds and memory, are the only things that vary.
    for results in (first, second):
        results.pop("timings_s")
        results.pop("plan")
    assert json.dumps(first) == json.dumps(second)
    shuffled = run(frame.sample(frac=1.0, random_state=1), config=config, head_specs=QUICK)
    shuffled.pop("timings_s")
    shuffled.pop("plan")
    assert json.dumps(shuffled) == json.dumps(first)  # row order of the table is irrelevant


def test_untrained_neural_branches_are_refused() -> None:
    frame = feature_frame(n_clips=30, widths={"pitch": 3, "neural.tiny": 3})
    with pytest.raises(ConfigError, match="untrained"):
        run(frame, provenance={"neural.tiny": {"config_hash": "x", "untrained": True}})


def test_bad_tables_and_configurations_are_refused() -> None:
    frame = feature_frame(n_clips=30, n_folds=1)
    with pytest.raises(DatasetError, match="at least 2 folds"):
        run(frame)
    with pytest.raises(DatasetError, match="lacks columns"):
        run(frame.drop(columns="fold"))
    with pytest.raises(DatasetError, match="no benchmark branch"):
        run(frame[KEYS].assign(other=1.0))
    with pytest.raises(ConfigError, match="unknown fusion 'median'"):
        BenchmarkConfig(fusions=("median",))
    with pytest.raises(ConfigError, match="unknown head"):
        run(feature_frame(n_clips=30), config=BenchmarkConfig(heads=("svm",)))


def test_infinite_features_are_treated_as_missing() -> None:
    frame = feature_frame(n_clips=60, widths={"pitch": 3, "spectral": 3},
                          signal={"pitch": (full_label, 3.0)})
    frame.loc[::5, "pitch.d1.mean"] = np.inf
    results = run(frame)
    assert results["best_single"] == "pitch/logreg"


def _write_branch(store: FeatureStore, frame: pd.DataFrame, branch: str, prefixes: tuple,
                  provenance: dict) -> None:
    names = [c for c in frame.columns if c.startswith(prefixes)]
    clips = frame[KEYS].assign(path=[f"/audio/{c}.wav" for c in frame["clip_id"]])
    with store.writer("generated", branch, feature_names=names,
                      provenance=provenance) as writer:
        writer.write_batch(clips, [ClipResult(values.astype(np.float32))
                                   for values in frame[names].to_numpy()])


def test_benchmark_store_reads_branches_and_checks_provenance(tmp_path: Path) -> None:
    frame = feature_frame(n_clips=60, widths={"pitch": 3, "timbre": 3, "neural.tiny": 4},
                          signal={"timbre": (full_label, 3.0)})
    store = FeatureStore(tmp_path / "store")
    _write_branch(store, frame, "handcrafted", ("pitch.", "timbre."), {"config_hash": "hc"})
    with pytest.raises(StoreError, match=r"lacks branch\(es\) neural.tiny"):
        benchmark_store(store, "generated", model="tiny", config=FAST, progress=False)
    _write_branch(store, frame, "neural.tiny", ("neural.",),
                  {"config_hash": "nt", "untrained": True})
    with pytest.raises(ConfigError, match="untrained"):
        benchmark_store(store, "generated", model="tiny", config=FAST, progress=False)
    results = benchmark_store(tmp_path / "store", "generated", config=FAST, progress=False)
    assert results["config_hashes"]["handcrafted"] == "hc"
    assert set(results["branches"]) == {"pitch", "timbre"}
    assert results["best_single"] == "timbre/logreg"
    assert "read_store" in results["timings_s"]


def test_metrics_match_scikit_learn_on_random_predictions() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    y[:5] = np.arange(5)
    proba = rng.dirichlet(np.ones(5), size=200)
    proba[:20] = np.round(proba[:20], 1)  # ties in the ranking
    scores = fold_metrics(y, proba)
    predicted = proba.argmax(axis=1)
    assert scores["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert scores["macro_f1"] == pytest.approx(f1_score(y, predicted, average="macro"))
    expected_map = np.mean([average_precision_score(y == c, proba[:, c]) for c in range(5)])
    assert scores["map"] == pytest.approx(expected_map)
    np.testing.assert_allclose(per_class_f1(y, predicted, 6)[:5],
                               f1_score(y, predicted, average=None))
    assert per_class_f1(y, predicted, 6)[5] == 0.0


def test_paired_statistics_and_bootstrap_interval() -> None:
    test = paired_fold_test([0.8, 0.9, 0.85, 0.7, 0.95], [0.7, 0.8, 0.8, 0.6, 0.9])
    assert test["mean"] == pytest.approx(0.08)
    assert test["n_better"] == 5 and test["sign_test_p"] == pytest.approx(0.0625)
    assert test["wilcoxon_p"] == pytest.approx(0.0625)
    assert paired_fold_test([0.5, 0.5], [0.5, 0.5])["wilcoxon_p"] == 1.0
    rng = np.random.default_rng(1)
    a = [rng.random((1, 300)) < 0.8 for _ in range(3)]  # one repeat, 300 clips per fold
    b = [rng.random((1, 300)) < 0.6 for _ in range(3)]
    units = [np.arange(300)] * 3  # every clip its own recording
    low, high = bootstrap_difference(a, b, units, n_boot=1000, random_state=0)
    observed = np.mean([x.mean() - z.mean() for x, z in zip(a, b, strict=True)])
    assert low < observed < high and 0.0 < low and high - low < 0.2
    assert bootstrap_difference(a, a, units, n_boot=100) == (0.0, 0.0)


def test_oof_features_let_the_neural_head_read_the_other_branches() -> None:
    frame = feature_frame(n_clips=160, n_folds=4, widths={"pitch": 5, "neural.m": 8},
                          signal={"pitch": (low_bit, 3.0), "neural.m": (high_bit, 3.0)})
    config = BenchmarkConfig(heads=("logreg",), fusions=("oof_features",), n_seeds=1,
                             repeats=1, n_bootstrap=100)
    results = run(frame, config=config)
    by_name = {system["name"]: system for system in results["systems"]}
    assert set(by_name) == {"pitch/logreg", "neural.m/logreg",
                            "pitch+neural.m/logreg/oof_features", "auto", "neural-auto",
                            "single-auto"}
    assert by_name["neural.m/logreg"]["mean"]["accuracy"] < 0.65
    assert by_name["pitch+neural.m/logreg/oof_features"]["mean"]["accuracy"] > 0.85
    assert set(by_name["pitch+neural.m/logreg/oof_features"]["fusion_choice"].values()) == {
        "neural.m features + out-of-fold log-probabilities of pitch"}


def test_oof_features_fits_never_see_their_test_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = feature_frame(n_clips=72, n_folds=3, n_classes=3,
                          widths={"pitch": 3, "neural.m": 3},
                          signal={"pitch": (full_label, 2.0)}, id_column=True)
    raw_rows: list[np.ndarray] = []
    monkeypatch.setattr("featurekit.learn.heads.base.StandardScaler",
                        _recorder(raw_rows, StandardScaler))
    config = BenchmarkConfig(heads=("logreg",), fusions=("oof_features",), repeats=1,
                             n_bootstrap=100)
    run(frame, config=config)
    fold_of = frame["fold"].to_numpy()
    # 3 outer folds x (2 branches + 1 oof_features unit) x (member + 2 twins): every unit
    # has inner twins (the branches teach oof_features or are reference candidates; the
    # oof_features system is the only auto candidate); logistic regression is
    # deterministic, so one member whatever n_seeds
    assert len(raw_rows) == 3 * 3 * 3
    for rows in raw_rows:
        assert len(set(fold_of[rows])) < 3, "a fit saw every fold"


def test_log_probability_features_append_clipped_log_probabilities() -> None:
    # out-of-fold probabilities of training rows, in training-row order
    oof = np.array([[0.5, 0.5], [1.0, 0.0]])
    out = log_probability_features(np.ones((2, 1), np.float32), [oof, oof[::-1]])
    assert out.dtype == np.float32 and out.shape == (2, 1 + 2 * 2)
    np.testing.assert_allclose(out[:, 0], 1.0)
    np.testing.assert_allclose(out[0, 1:3], np.log([0.5, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(out[1, 1:3], np.log([1.0, 1e-6]), rtol=1e-5)
    np.testing.assert_allclose(out[0, 3:], np.log([1.0, 1e-6]), rtol=1e-5)
    with pytest.raises(ValueError, match="probabilities must be"):
        log_probability_features(np.ones((3, 1)), [oof])


def test_results_count_the_early_stopping_splits_of_members_and_twins() -> None:
    # About 12 training recordings per outer fold: members hold out whole recordings, and so
    # must their twins, trained on half of them (left to themselves they would hold out clips
    # of the recordings they train on). The counts reach results.json and the report.
    frame = feature_frame(n_clips=72, n_folds=3, n_classes=3,
                          widths={"pitch": 3, "neural.tiny": 3},
                          signal={"pitch": (low_bit, 3.0), "neural.tiny": (high_bit, 3.0)})
    chunk = frame.groupby(["fold", "label_id"]).cumcount() // 4
    frame.insert(4, "recording", [f"{f}-{c}-{k}" for f, c, k in
                                  zip(frame["fold"], frame["label_id"], chunk, strict=True)])
    heads = {"mlp": HeadSpec("mlp", functools.partial(MLPHead, max_iter=20), seeded=True)}
    config = BenchmarkConfig(heads=("mlp", "logreg"), fusions=("mean",), repeats=1,
                             n_bootstrap=100, inner_splits=2)
    results = run(frame, config, head_specs=heads)
    counts = results["validation_splits"]
    n_mlp = counts["mlp"]["recordings"]
    assert n_mlp > 0 and counts["mlp"] == {"recordings": n_mlp, "clips": 0, "none": 0}
    assert counts["logreg"]["none"] > 0 and counts["logreg"]["recordings"] == 0
    assert sum(n for kinds in counts.values() for n in kinds.values()) == results["n_fits"]
    text = render_markdown(results)
    assert f"`mlp` {n_mlp} whole source recordings" in text
    # Recordings unknown (each clip its own): nothing says recordings.
    frame["recording"] = frame["clip_id"]
    unknown = run(frame, config, head_specs=heads)["validation_splits"]
    assert set(unknown["mlp"]) == {"clips", "none"}
