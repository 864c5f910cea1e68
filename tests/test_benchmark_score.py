"""Score: metrics equal scikit-learn's, and the two-level bootstrap gives known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score

from featurekit.benchmark.resample import bootstrap_difference
from featurekit.benchmark.score import (
    ci_method,
    compare,
    fold_metrics,
)

N_FOLDS = 3


def width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


def test_fold_metrics_equal_scikit_learn_on_random_predictions() -> None:
    rng = np.random.default_rng(4)
    for n_classes in (2, 3, 7):
        y = rng.integers(0, n_classes, 150)
        y[:n_classes] = np.arange(n_classes)
        proba = rng.dirichlet(np.ones(n_classes), size=150)
        scores = fold_metrics(y, proba)
        predicted = proba.argmax(axis=1)
        assert scores["accuracy"] == pytest.approx(accuracy_score(y, predicted))
        assert scores["macro_f1"] == pytest.approx(f1_score(y, predicted, average="macro"))
        assert scores["map"] == pytest.approx(np.mean(
            [average_precision_score(y == c, proba[:, c]) for c in range(n_classes)]))


def test_fold_metrics_average_over_the_classes_of_the_test_fold() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 60)  # class 3 never occurs in this fold
    proba = rng.dirichlet(np.ones(4), size=60)
    scores = fold_metrics(y, proba)
    predicted = proba.argmax(axis=1)
    assert scores["macro_f1"] == pytest.approx(
        f1_score(y, predicted, labels=[0, 1, 2], average="macro", zero_division=0))
    assert scores["map"] == pytest.approx(
        np.mean([average_precision_score(y == c, proba[:, c]) for c in range(3)]))


def test_identical_systems_give_zero() -> None:
    rng = np.random.default_rng(0)
    a = [rng.random((2, 40)) < 0.7 for _ in range(N_FOLDS)]
    units = [np.repeat(np.arange(10), 4)] * N_FOLDS
    assert bootstrap_difference(a, a, units, n_boot=200) == (0.0, 0.0)


def test_a_system_better_on_every_clip_gets_a_positive_interval() -> None:
    rng = np.random.default_rng(1)
    b = [rng.random((2, 60)) < 0.5 for _ in range(N_FOLDS)]
    a = [np.ones_like(x) for x in b]
    units = [np.repeat(np.arange(20), 3)] * N_FOLDS
    low, high = bootstrap_difference(a, b, units, n_boot=500, random_state=0)
    observed = np.mean([1.0 - x.mean() for x in b])
    assert 0.0 < low <= observed <= high
    # Always right against always wrong: exactly one.
    assert bootstrap_difference(a, [~x for x in a], units, n_boot=200) == (1.0, 1.0)


def test_resampling_recordings_widens_the_interval_of_correlated_clips() -> None:
    """Clips of one recording that are all right or all wrong carry the information of one
    clip: the interval over recordings is wider than over independent clips of the same
    accuracy, and wider than treating the correlated clips as independent."""
    rng = np.random.default_rng(2)
    n_recordings, per = 30, 6
    recordings = np.repeat(np.arange(n_recordings), per)
    clips = np.arange(n_recordings * per)
    b = [np.zeros((1, clips.size), dtype=bool)] * N_FOLDS
    correlated = [np.repeat(rng.permutation(n_recordings) < 18, per)[None] for _ in range(3)]
    independent = [(rng.permutation(clips.size) < 18 * per)[None] for _ in range(3)]
    assert all(x.mean() == pytest.approx(0.6) for x in [*correlated, *independent])
    by_recording = bootstrap_difference(correlated, b, [recordings] * 3, n_boot=1000)
    as_clips = bootstrap_difference(correlated, b, [clips] * 3, n_boot=1000)
    independent_clips = bootstrap_difference(independent, b, [recordings] * 3, n_boot=1000)
    assert width(by_recording) > 1.8 * width(as_clips)
    assert width(by_recording) > 1.8 * width(independent_clips)
    for low, high in (by_recording, as_clips, independent_clips):
        assert low < 0.6 < high


def test_repeats_that_disagree_widen_the_interval() -> None:
    rng = np.random.default_rng(3)
    n = 200
    units = [np.arange(n)] * N_FOLDS
    b = [np.tile(rng.random(n) < 0.5, (2, 1)) for _ in range(N_FOLDS)]
    steady = [np.tile(rng.permutation(n) < 0.7 * n, (2, 1)) for _ in range(N_FOLDS)]
    unsteady = [np.stack([rng.permutation(n) < 0.9 * n, rng.permutation(n) < 0.5 * n])
                for _ in range(N_FOLDS)]
    assert np.mean(steady) == pytest.approx(np.mean(unsteady))
    steady_ci = bootstrap_difference(steady, b, units, n_boot=1000)
    unsteady_ci = bootstrap_difference(unsteady, b, units, n_boot=1000)
    assert width(unsteady_ci) > 1.5 * width(steady_ci)


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(6)
    a = [rng.random((2, 30)) < 0.6 for _ in range(2)]
    b = [rng.random((2, 30)) < 0.5 for _ in range(2)]
    units = [np.arange(30)] * 2
    assert (bootstrap_difference(a, b, units, n_boot=300, random_state=3)
            == bootstrap_difference(a, b, units, n_boot=300, random_state=3))


def test_compare_reports_per_fold_gains_in_percentage_points() -> None:
    correct = {"a": [np.array([[True, True, False, True]]), np.array([[True, True]])],
               "b": [np.array([[True, False, False, True]]), np.array([[True, True]])]}
    units = [np.array([0, 0, 1, 2]), np.array([0, 1])]
    result = compare("a", "b", correct, units, [4, 7], n_boot=200, random_state=0)
    assert result["per_fold_pp"] == {"4": pytest.approx(25.0), "7": pytest.approx(0.0)}
    assert result["mean_pp"] == pytest.approx(12.5)
    low, high = result["ci95_pp"]
    assert 0.0 <= low <= high <= 25.0
    assert (result["n_better"], result["n_worse"]) == (1, 0)


def test_ci_method_names_the_resampling_units_and_the_repeats() -> None:
    known = ci_method(True, 3, 2000)
    assert "recordings" in known and "3 repeats" in known and "2000" in known
    unknown = ci_method(False, 1, 500)
    assert "clips" in unknown and "1 repeats" in unknown
