"""Resample: the vectorised bootstrap gives the same draws and the same resampled macro mAP as
the straightforward code it replaced (kept here as the reference), scikit-learn's weighted AP,
and hand-computed answers with tied scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from featurekit.benchmark import resample, score
from featurekit.benchmark.resample import (
    _draw_counts,
    bootstrap_map,
    percentile_interval,
    resampled_average_precision,
)
from featurekit.benchmark.score import compare_map

RELATIVE = 1e-12  # float rounding only: the new code sums the same terms in another order


def reference_draw_counts(rng: np.random.Generator, n_items: int, n_boot: int) -> np.ndarray:
    """One bincount per resample (the replaced code)."""
    return np.stack([np.bincount(row, minlength=n_items)
                     for row in rng.integers(0, n_items, size=(n_boot, n_items))])


def reference_weighted_ap(scores: np.ndarray, truth: np.ndarray,
                          weights: np.ndarray) -> np.ndarray:
    """AP of one class under each row of clip weights: full cumulative sums over every clip
    in every resample (the replaced code)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    sorted_scores = np.asarray(scores, dtype=np.float64)[order]
    positive = np.asarray(truth, dtype=bool)[order]
    w = np.asarray(weights, dtype=np.float64)[:, order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), sorted_scores.size - 1]
    group_end = last_of_tie[np.searchsorted(last_of_tie, np.arange(sorted_scores.size))]
    true_positives = np.cumsum(w * positive, axis=1)
    predicted = np.cumsum(w, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(true_positives[:, group_end] / predicted[:, group_end])
        return (np.sum(np.where(positive, w * precision, 0.0), axis=1)
                / true_positives[:, -1])


def reference_bootstrap_map(probas: Sequence[np.ndarray], truth: Sequence[np.ndarray],
                            units: Sequence[np.ndarray], n_boot: int,
                            random_state: int) -> np.ndarray:
    """Macro mAP per resample, class by class (the replaced code)."""
    rng = np.random.default_rng(random_state)
    n_repeats = np.asarray(probas[0]).shape[0]
    repeat_counts = reference_draw_counts(rng, n_repeats, n_boot)
    totals = np.zeros(n_boot)
    for proba, labels, unit in zip(probas, truth, units, strict=True):
        proba, labels = np.asarray(proba), np.asarray(labels) > 0
        codes = np.unique(np.asarray(unit), return_inverse=True)[1]
        weights = reference_draw_counts(rng, int(codes.max()) + 1, n_boot)[:, codes]
        for repeat in range(n_repeats):
            per_class = np.stack([reference_weighted_ap(proba[repeat, :, c], labels[:, c],
                                                        weights)
                                  for c in range(labels.shape[1])], axis=1)
            scored = np.maximum(np.sum(~np.isnan(per_class), axis=1), 1)
            totals += repeat_counts[:, repeat] * np.nansum(per_class, axis=1) / scored
    return totals / (n_repeats * len(probas))


def random_task(rng: np.random.Generator, n_clips: int, n_classes: int, n_repeats: int,
                decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (rounded to ``decimals``: many ties) and labels with rare classes, one
    class without positives and one positive everywhere."""
    truth = (rng.random((n_clips, n_classes)) < rng.uniform(0.02, 0.4, n_classes)).astype(int)
    truth[:, 0] = 0
    truth[:, 1] = 0
    truth[rng.integers(n_clips), 1] = 1  # a single positive: absent from many resamples
    truth[:, 2] = 1
    proba = np.clip(0.3 * truth + rng.random((n_repeats, n_clips, n_classes)), 0, 1)
    return (proba if decimals is None else proba.round(decimals)), truth


def test_draw_counts_equal_one_bincount_per_resample() -> None:
    for n_items, n_boot in ((1, 5), (7, 300), (120, 40)):
        expected = reference_draw_counts(np.random.default_rng(n_items), n_items, n_boot)
        got = _draw_counts(np.random.default_rng(n_items), n_items, n_boot)
        assert np.array_equal(got, expected)


def test_ties_share_the_precision_at_the_end_of_their_group() -> None:
    # Clips 0 and 1 tie at 0.9: the positive among them takes the precision of both (1/2),
    # not 1 (its own place if it were ranked first); clip 2 adds precision 2/3.
    scores = np.array([[0.9], [0.9], [0.5], [0.1]])
    truth = np.array([[1], [0], [1], [0]])
    counts = np.array([[1, 1, 1, 1], [2, 0, 1, 1], [0, 3, 0, 1], [0, 0, 1, 0]])
    got = resampled_average_precision(scores, truth, np.arange(4), counts)[:, 0]
    assert got[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert got[1] == pytest.approx((2 * 1 + 1 * 3 / 3) / 3)
    assert np.isnan(got[2])  # no positive drawn
    assert got[3] == 1.0


def test_resampled_ap_equals_scikit_learn_per_resample_with_units() -> None:
    rng = np.random.default_rng(7)
    proba, truth = random_task(rng, 90, 6, 1, decimals=1)
    codes = rng.integers(0, 30, 90)  # recordings of about three clips
    counts = rng.integers(0, 3, size=(25, 30))
    counts[:, codes[np.argmax(proba[0], axis=0)]] = 0  # undrawn units at the top
    got = resampled_average_precision(proba[0], truth, codes, counts)
    for row, weights in zip(got, counts[:, codes], strict=True):
        for c in range(truth.shape[1]):
            if np.sum(weights * truth[:, c]) == 0:
                assert np.isnan(row[c])
            else:
                assert row[c] == pytest.approx(average_precision_score(
                    truth[:, c], proba[0, :, c], sample_weight=weights), rel=RELATIVE)


@pytest.mark.parametrize("decimals", [None, 1, 2], ids=["continuous", "ties-1dp", "ties-2dp"])
def test_bootstrap_map_equals_the_replaced_code(decimals: int | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11 if decimals is None else decimals)
    monkeypatch.setattr(resample, "CHUNK_RESAMPLES", 7)  # chunks that do not divide n_boot
    folds = [random_task(rng, n, 9, 3, decimals) for n in (40, 57)]
    probas = [proba for proba, _ in folds]
    truth = [labels for _, labels in folds]
    units = [rng.integers(0, 20, 40), np.arange(57)]
    got = bootstrap_map(probas, truth, units, n_boot=300, random_state=5)
    expected = reference_bootstrap_map(probas, truth, units, n_boot=300, random_state=5)
    np.testing.assert_allclose(got, expected, rtol=RELATIVE, atol=0)


def test_chunks_do_not_change_the_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    proba, truth = random_task(rng, 70, 5, 1, decimals=2)
    counts = _draw_counts(rng, 70, 50)
    whole = resampled_average_precision(proba[0], truth, np.arange(70), counts)
    monkeypatch.setattr(resample, "CHUNK_RESAMPLES", 1)
    one_by_one = resampled_average_precision(proba[0], truth, np.arange(70), counts)
    assert np.array_equal(whole, one_by_one, equal_nan=True)


def test_a_default_run_shaped_like_esc10_mix_keeps_its_intervals() -> None:
    # benchmarks/results/esc10-mix: one eval fold of 80 clips, 10 classes, 3 repeats, clips as
    # units, 2000 resamples, seed 0; float32 probabilities (XGBoost, the MLP) with ties.
    rng = np.random.default_rng(0)
    truth = (rng.random((80, 10)) < 0.2).astype(int)
    truth[np.arange(10) * 8, np.arange(10)] = 1
    probas = {name: [np.clip(strength * truth + rng.random((3, 80, 10)), 0, 1)
                     .round(decimals).astype(np.float32)]
              for name, strength, decimals in (("auto", 0.8, 3), ("neural-auto", 0.7, 6),
                                               ("fusion", 0.5, 2))}
    units = [np.arange(80)]
    resamples = {name: reference_bootstrap_map(values, [truth], units, n_boot=2000,
                                               random_state=0)
                 for name, values in probas.items()}
    for name, reference in (("auto", "neural-auto"), ("fusion", "auto")):
        got = compare_map(name, reference, probas, [truth], units, [3], n_boot=2000,
                          random_state=0)
        expected = percentile_interval(resamples[name] - resamples[reference], 0.95)
        assert got["ci95_pp"] == pytest.approx([100.0 * v for v in expected], rel=RELATIVE)


def test_systems_with_identical_probabilities_are_resampled_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counted(*args: object, **kwargs: object) -> np.ndarray:
        calls.append(1)
        return bootstrap_map(*args, **kwargs)

    monkeypatch.setattr(score, "bootstrap_map", counted)
    rng = np.random.default_rng(4)
    proba, truth = random_task(rng, 50, 5, 2, decimals=2)
    other, _ = random_task(rng, 50, 5, 2, decimals=2)
    # A fusion that kept one branch: equal values in another array.
    probas = {"branch": [proba], "fusion": [proba.copy()], "other": [other]}
    options = {"n_boot": 200, "random_state": 0}
    memo: dict = {}
    same = compare_map("fusion", "branch", probas, [truth], [np.arange(50)], [1], memo=memo,
                       **options)
    assert same["ci95_pp"] == [0.0, 0.0] and len(calls) == 1
    shared = compare_map("other", "fusion", probas, [truth], [np.arange(50)], [1], memo=memo,
                         **options)
    fresh = compare_map("other", "branch", probas, [truth], [np.arange(50)], [1], **options)
    assert len(calls) == 4  # with the memo: branch (= fusion), other; without it: both again
    assert shared["ci95_pp"] == fresh["ci95_pp"]
    assert shared["per_fold_pp"] == fresh["per_fold_pp"]
