"""The results.json contract: the primary comparison, repeats, and the JSON round trip."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit

from featurekit.benchmark import BenchmarkConfig, load_results, run_benchmark, save_results
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.heads.xgb import XGBHead

CONFIG = BenchmarkConfig(heads=("logreg",), fusions=("early", "weighted"), repeats=2,
                         n_bootstrap=200)


@pytest.fixture(scope="module")
def frame():
    frame = feature_frame(n_clips=96, n_folds=3,
                          widths={"pitch": 4, "spectral": 4, "neural.m": 5},
                          signal={"pitch": (low_bit, 2.0), "spectral": (high_bit, 2.0),
                                  "neural.m": (full_label, 0.6)})
    frame.insert(4, "recording", [f"r{i // 6}_{i % 3}" for i in range(96)])
    return frame


@pytest.fixture(scope="module")
def results(frame) -> dict:
    return run_benchmark(frame, dataset="generated", config=CONFIG, progress=False)


def test_primary_comparison_contract(results: dict) -> None:
    primary = results["primary"]
    assert {"system", "reference", "selection", "gain_pp", "ci95_pp", "per_fold_pp",
            "ci_method", "n_repeats"} <= set(primary)
    assert primary["system"] == "auto" and primary["reference"] == "neural-auto"
    assert primary["selection"] == "inner_cv"
    low, high = primary["ci95_pp"]
    assert len(primary["ci95_pp"]) == 2 and isinstance(low, float) and isinstance(high, float)
    assert low <= high
    assert list(primary["per_fold_pp"]) == ["1", "2", "3"]
    assert primary["gain_pp"] == pytest.approx(np.mean(list(primary["per_fold_pp"].values())))
    assert "recordings" in primary["ci_method"] and "repeats" in primary["ci_method"]
    assert primary["n_repeats"] == 2
    by_name = {s["name"]: s for s in results["systems"]}
    for fold, gain in primary["per_fold_pp"].items():
        assert gain == pytest.approx(100 * (by_name["auto"]["per_fold"][fold]["accuracy"]
                                            - by_name["neural-auto"]["per_fold"][fold]
                                            ["accuracy"]))
    # What each side chose, per fold, among its candidates
    assert set(primary["choices"]) == {"auto", "neural-auto"}
    for fold, choice in primary["choices"]["neural-auto"].items():
        assert fold in {"1", "2", "3"} and "neural.m/logreg" in choice
    assert all("pitch+spectral+neural.m/logreg/" in choice
               for choice in primary["choices"]["auto"].values())


def test_every_system_reports_its_repeats(results: dict) -> None:
    for system in results["systems"]:
        repeats = system["repeats"]["accuracy"]
        assert len(repeats) == 2 and all(0.0 <= value <= 1.0 for value in repeats)
        assert isinstance(system["repeat_sd"]["accuracy"], float)
        assert system["repeat_sd"]["accuracy"] == pytest.approx(np.std(repeats, ddof=1))
        assert np.mean(repeats) == pytest.approx(system["mean"]["accuracy"])
    names = [s["name"] for s in results["systems"]]
    assert names.count("auto") == names.count("neural-auto") == 1
    # logistic regression is deterministic and the data do not change between repeats, but the
    # inner splits do: the repeats of a single branch are identical, those of fusions may differ
    assert results["systems"][0]["repeat_sd"]["accuracy"] == 0.0


def test_results_survive_a_json_round_trip(results: dict, tmp_path: Path) -> None:
    path = save_results(results, tmp_path)
    assert path == tmp_path / "results.json"
    loaded = load_results(path)
    assert loaded == json.loads(json.dumps(results))
    assert loaded["primary"]["ci95_pp"] == results["primary"]["ci95_pp"]


def test_single_repeat_has_zero_repeat_sd(frame) -> None:
    config = BenchmarkConfig(heads=("logreg",), fusions=("mean",), repeats=1, n_bootstrap=100,
                             outer_folds=(1, 3))
    results = run_benchmark(frame, dataset="generated", config=config, progress=False)
    assert results["folds"] == [1, 3]
    assert results["primary"]["n_repeats"] == 1
    assert list(results["primary"]["per_fold_pp"]) == ["1", "3"]
    for system in results["systems"]:
        assert len(system["repeats"]["accuracy"]) == 1
        assert system["repeat_sd"]["accuracy"] == 0.0
        assert np.sum(system["confusion"]) == 64  # two test folds of 32 clips


def test_confusion_counts_every_test_clip_when_repeats_disagree(frame) -> None:
    quick = {"xgb": HeadSpec("xgb", functools.partial(XGBHead, n_estimators=15),
                             seeded=True)}
    config = BenchmarkConfig(heads=("xgb",), fusions=("mean",), repeats=3, n_bootstrap=100)
    results = run_benchmark(frame, dataset="generated", config=config, head_specs=quick,
                            progress=False)
    disagree = [s for s in results["systems"] if s["repeat_sd"]["accuracy"] > 0]
    assert disagree
    for system in disagree:
        assert np.sum(system["confusion"]) == pytest.approx(96)
