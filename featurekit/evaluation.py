"""Evaluation protocol, metrics and the statistics used to compare systems.

Protocol: **leave-one-fold-out** over the official folds present in the data. Each fold is the
test set once; everything that learns is fitted on the other folds only.

Comparisons are *paired*: two systems are evaluated on the same clips of the same folds, so a
difference is judged by its per-fold values (sign test, Wilcoxon signed-rank test) and by a
bootstrap over clips (clips are resampled within each fold, the per-fold accuracy differences
are averaged, so the interval is centred on the same mean as the per-fold figures).

"Equally tuned and equally ensembled": a benchmark gives every single-branch head and every
head inside a fusion the same hyper-parameter search (or none), the same inner splits and the
same number of seeds, whose probabilities are averaged. The per-seed results give the seed
spread that a difference must exceed to mean anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from featurekit.errors import DatasetError

#: Metrics reported per fold, in table order.
METRICS = ("accuracy", "macro_f1", "map")


def leave_one_fold_out(folds: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Outer splits of the leave-one-fold-out protocol.

    Parameters
    ----------
    folds : np.ndarray of int, shape (n_clips,)
        Official fold of each clip.

    Returns
    -------
    list of (fold, train_index, test_index)
        One entry per distinct fold, in increasing fold order.
    """
    folds = np.asarray(folds)
    present = np.unique(folds)
    if present.size < 2:
        raise DatasetError(f"leave-one-fold-out needs at least 2 folds, found {present.tolist()}")
    return [(int(fold), np.flatnonzero(folds != fold), np.flatnonzero(folds == fold))
            for fold in present]


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion counts, shape (n_classes, n_classes): rows = true class, columns = predicted."""
    pairs = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 of each class index ``0 .. n_classes - 1`` (0 for a class never seen nor predicted)."""
    counts = confusion(y_true, y_pred, n_classes)
    hits = np.diag(counts).astype(float)
    denominator = counts.sum(axis=0) + counts.sum(axis=1)
    return np.divide(2.0 * hits, denominator, out=np.zeros(n_classes), where=denominator > 0)


def average_precision(relevant: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one ranking (area under the step precision-recall curve).

    Tied scores form one threshold, as in :func:`sklearn.metrics.average_precision_score`.

    Parameters
    ----------
    relevant : np.ndarray of bool, shape (n,)
        Whether each item is a positive; at least one must be.
    scores : np.ndarray, shape (n,)
        Ranking scores, higher first.
    """
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    ranked_scores = np.asarray(scores)[order]
    hits = np.cumsum(np.asarray(relevant, dtype=float)[order])
    last_of_tie = np.r_[np.flatnonzero(np.diff(ranked_scores)), ranked_scores.size - 1]
    true_positives = hits[last_of_tie]
    precision = true_positives / (last_of_tie + 1)
    recall_steps = np.diff(np.r_[0.0, true_positives]) / true_positives[-1]
    return float(np.sum(recall_steps * precision))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 and one-vs-rest mean average precision of one test set.

    Parameters
    ----------
    y_true : np.ndarray of int, shape (n_clips,)
        Class indices (columns of ``proba``).
    proba : np.ndarray, shape (n_clips, n_classes)
        Predicted class probabilities.

    Notes
    -----
    macro-F1 and mAP average over the classes present in ``y_true`` (a class absent from a
    test fold has no defined recall or precision-recall curve).
    """
    y_true = np.asarray(y_true)
    y_pred = np.argmax(proba, axis=1)
    present = np.unique(y_true)
    f1 = per_class_f1(y_true, y_pred, proba.shape[1])[present]
    ap = [average_precision(y_true == c, proba[:, c]) for c in present]
    return {"accuracy": float(np.mean(y_pred == y_true)), "macro_f1": float(np.mean(f1)),
            "map": float(np.mean(ap))}


def mean_and_std(per_fold: Mapping[str, Mapping[str, float]]) -> tuple[dict, dict]:
    """Mean and sample standard deviation (ddof=1; 0 for one fold) of each metric over folds."""
    means, stds = {}, {}
    for metric in METRICS:
        values = np.array([scores[metric] for scores in per_fold.values()])
        means[metric] = float(values.mean())
        stds[metric] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return means, stds


def paired_fold_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Paired comparison of per-fold scores ``a`` against ``b``.

    Returns
    -------
    dict
        ``mean`` (mean of ``a - b``), ``n_better`` / ``n_worse`` (folds), ``sign_test_p``
        (two-sided exact binomial test on the non-tied folds; 1 when all tie) and
        ``wilcoxon_p`` (two-sided Wilcoxon signed-rank test; 1 when all differences are 0).
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    better, worse = int(np.sum(diff > 0)), int(np.sum(diff < 0))
    sign_p = 1.0 if better + worse == 0 else float(stats.binomtest(better, better + worse).pvalue)
    wilcoxon_p = 1.0 if np.all(diff == 0) else float(stats.wilcoxon(diff).pvalue)
    return {"mean": float(diff.mean()), "n_better": better, "n_worse": worse,
            "sign_test_p": sign_p, "wilcoxon_p": wilcoxon_p}


def bootstrap_accuracy_difference(correct_a: Sequence[np.ndarray],
                                  correct_b: Sequence[np.ndarray], *, n_boot: int = 2000,
                                  confidence: float = 0.95,
                                  random_state: int | None = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean per-fold accuracy difference ``a - b``.

    Parameters
    ----------
    correct_a, correct_b : sequence of np.ndarray of bool
        Per fold, whether each test clip was classified correctly by system a / b (same clips,
        same order).
    n_boot : int
        Number of resamples. Clips are drawn with replacement within each fold.
    confidence : float
        Coverage of the interval.
    random_state : int, optional
        Seed of the resampling.

    Returns
    -------
    (low, high) : tuple of float
        Interval bounds as accuracy fractions.
    """
    rng = np.random.default_rng(random_state)
    totals = np.zeros(n_boot)
    for a, b in zip(correct_a, correct_b, strict=True):
        diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
        draws = rng.integers(0, diff.size, size=(n_boot, diff.size))
        totals += diff[draws].mean(axis=1)
    totals /= len(correct_a)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(totals, [tail, 1.0 - tail])
    return float(low), float(high)


def seed_spread(member_scores_per_fold: Sequence[Sequence[float]]) -> float:
    """Seed spread: the standard deviation (ddof=1) of one score across the seeds of a system,
    averaged over folds; 0 when the system ran with a single seed."""
    spreads = [float(np.std(scores, ddof=1)) for scores in member_scores_per_fold
               if len(scores) > 1]
    return float(np.mean(spreads)) if spreads else 0.0
