"""The statistics stage on the run's workers: the comparisons' bootstraps, run as tasks of
``run_tasks``, give every comparison of results.json the same numbers as in this process, and
each distinct system (label sets) or pair is resampled once, only for what is reported."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fixtures_features import feature_frame, full_label
from test_multilabel import _features_table

from featurekit._util.parallel import run_tasks
from featurekit.benchmark import BenchmarkConfig, run_benchmark, score
from featurekit.benchmark.resample import bootstrap_map
from featurekit.benchmark.robustness import CorruptedTable
from featurekit.benchmark.score import compare_map, resample_systems

#: Every key of results.json that holds paired comparisons (those a run has).
COMPARISON_KEYS = ("primary", "synergy", "branch_comparisons", "comparisons", "fusion_gain",
                   "fusion_vs_own_branches", "sequence_vs_functionals", "learning_curve",
                   "learning_curve_synergy", "robustness")
SINGLE_LABEL = BenchmarkConfig(heads=("logreg",), fusions=("early", "weighted"), repeats=2,
                               n_bootstrap=200, train_fractions=(0.5, 1.0))
LABEL_SETS = BenchmarkConfig(heads=("logreg",), fusions=("early", "weighted"), repeats=2,
                             n_bootstrap=200)


def comparison_entries(results: dict[str, Any]) -> dict[str, Any]:
    """The paired comparisons of a run's results, by key."""
    return {key: results[key] for key in COMPARISON_KEYS if key in results}


def reported_pairs(results: dict[str, Any]) -> set[tuple[str, str]]:
    """(system, reference) of every comparison of the full run's results (the learning
    curve's points and the robustness entries left out: other predictions)."""
    entries = comparison_entries(results)
    return {(entry["system"], entry["reference"])
            for key in ("primary", "synergy", "branch_comparisons", "comparisons",
                        "fusion_vs_own_branches", "sequence_vs_functionals")
            for entry in ([entries[key]] if isinstance(entries[key], dict) else entries[key])}


def single_label_run(**options: Any) -> dict[str, Any]:
    frame = feature_frame(n_clips=90, widths={"pitch": 3, "timbre": 3, "neural.tiny": 4},
                          signal={"timbre": (full_label, 1.5)})
    return run_benchmark(frame, dataset="g", config=SINGLE_LABEL, progress=False, **options)


def label_set_run(**options: Any) -> dict[str, Any]:
    frame = _features_table()
    test_clips = frame.drop(columns=["fold", "label", "label_id"])
    noisy = CorruptedTable("noise", "test", "level=1", {}, test_clips.assign(
        **{f"pitch.f{j}.mean": 0.0 for j in range(5)}))
    return run_benchmark(frame, dataset="toy", config=LABEL_SETS, multilabel=True,
                         progress=False, corrupted=[noisy], **options)


RUNS = {"single-label": single_label_run, "label sets": label_set_run}


@pytest.fixture(scope="module", params=list(RUNS))
def serial(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], list[list[str]]]:
    """A run in this process (one loky worker), and the names of the bootstrap tasks of each
    dispatch its statistics made."""
    dispatched: list[list[str]] = []

    def recorded(tasks: Any, **options: Any) -> Any:
        dispatched.append(list(options["names"]))
        return run_tasks(tasks, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(score, "run_tasks", recorded)
        results = RUNS[request.param](n_jobs=1)
    return request.param, results, dispatched


def test_two_workers_give_every_comparison_the_same_numbers(
        serial: tuple[str, dict[str, Any], list[list[str]]]) -> None:
    kind, results, _ = serial
    parallel = RUNS[kind](n_jobs=2, backend="loky")
    expected = comparison_entries(results)
    assert expected["comparisons"] and expected["fusion_vs_own_branches"]
    assert expected["branch_comparisons"] and expected["synergy"]
    assert (expected.get("learning_curve") if kind == "single-label"
            else expected.get("robustness"))
    # Bit for bit, as results.json writes them.
    assert comparison_entries(parallel) == expected


def test_the_statistics_resample_each_reported_system_or_pair_once(
        serial: tuple[str, dict[str, Any], list[list[str]]]) -> None:
    kind, results, dispatched = serial
    # The full run's comparisons in one dispatch, before any other (the curve's points and
    # the corruptions have their own predictions).
    first = dispatched[0]
    assert len(first) == len(set(first))
    pairs = reported_pairs(results)
    if kind == "single-label":
        assert set(first) == {f"bootstrap of {a} against {b}" for a, b in pairs}
    else:
        reported = {name for pair in pairs for name in pair}
        resampled = {name.removeprefix("bootstrap of ") for name in first}
        assert resampled <= reported
        # A reported system left out has the probabilities of one resampled (a fusion that
        # kept one branch): its scores, repeat by repeat.
        scores = {s["name"]: s["repeats"]["map"] for s in results["systems"]}
        assert all(scores[name] in [scores[kept] for kept in resampled]
                   for name in reported - resampled)
    # Nothing resampled again when the comparisons are read: one dispatch per comparer (the
    # run, each curve point, each corruption).
    points = {entry["fraction"] for entry in results.get("learning_curve", [])}
    assert len(dispatched) == 1 + len(points) + len(results.get("corruptions", []))


def test_identical_systems_share_one_task_and_the_memo_serves_the_comparisons(
        monkeypatch: pytest.MonkeyPatch) -> None:
    dispatched: list[list[str]] = []

    def recorded(tasks: Any, **options: Any) -> Any:
        dispatched.append(list(options["names"]))
        return run_tasks(tasks, **options)

    monkeypatch.setattr(score, "run_tasks", recorded)
    rng = np.random.default_rng(3)
    truth = (rng.random((60, 5)) < 0.3).astype(int)
    truth[:5] = 1
    proba, other, unused = (rng.random((2, 60, 5)).round(2) for _ in range(3))
    # A fusion that kept one branch: equal values in another array.
    probas = {"branch": [proba], "fusion": [proba.copy()], "other": [other],
              "unused": [unused]}
    units = [np.arange(60) // 2]
    options = {"n_boot": 300, "random_state": 7}
    memo: dict = {}
    resample_systems(["fusion", "branch", "other", "fusion"], probas, [truth], units,
                     memo=memo, n_jobs=2, **options)
    assert dispatched == [["bootstrap of fusion", "bootstrap of other"]]
    assert set(memo) == {"branch", "fusion", "other"} and memo["branch"] is memo["fusion"]
    for name in ("fusion", "other"):
        np.testing.assert_array_equal(memo[name][2], bootstrap_map(probas[name], [truth], units,
                                                                   **options))
    fresh = compare_map("other", "branch", probas, [truth], units, [1], **options)
    assert len(dispatched) == 2  # without the memo: both resampled again, in this process
    assert compare_map("other", "branch", probas, [truth], units, [1], memo=memo,
                       **options) == fresh
    assert len(dispatched) == 2
