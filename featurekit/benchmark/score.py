"""Score: metrics of each test fold, and paired comparisons with honest intervals.

Metrics come from :mod:`sklearn.metrics`. A system's score on a fold is the mean over its
repeats (each repeat a full refit with other seeds and inner splits).

A comparison of system *a* against *b* is paired: the same clips, folds and repeats on both
sides. Its interval is a two-level percentile bootstrap: in each resample, the repeats are drawn
with replacement, and within every test fold the source recordings are drawn with replacement
(all clips of a drawn recording come along; clips stand for themselves where recordings are
unknown); the per-fold accuracy differences over the drawn units are averaged over folds. Both
sources of noise that matter on small data -- which recordings happen to be in a fold, and the
training randomness -- are in the interval, and a recording's correlated clips count once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
)

#: Metrics reported per fold, in table order.
METRICS = ("accuracy", "macro_f1", "map")


def fold_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 and one-vs-rest mean average precision of one test set.

    Parameters
    ----------
    y_true : np.ndarray of int, shape (n_clips,)
        Class indices (columns of ``proba``).
    proba : np.ndarray, shape (n_clips, n_classes)

    Notes
    -----
    Macro-F1 and mAP average over the classes present in ``y_true`` (a class absent from a
    test fold has no defined recall or precision-recall curve).
    """
    y_true = np.asarray(y_true)
    predicted = np.argmax(proba, axis=1)
    present = np.unique(y_true)
    relevant = y_true[:, None] == present[None, :]
    ap = average_precision_score(relevant, proba[:, present], average=None)
    return {"accuracy": float(accuracy_score(y_true, predicted)),
            "macro_f1": float(f1_score(y_true, predicted, labels=present, average="macro",
                                       zero_division=0)),
            "map": float(np.mean(ap))}


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 of each class index ``0 .. n_classes - 1`` (0 for a class never seen nor predicted)."""
    return f1_score(y_true, y_pred, labels=np.arange(n_classes), average=None, zero_division=0)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion counts, (n_classes, n_classes): rows are true classes, columns predictions."""
    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def paired_fold_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Paired comparison of per-fold scores ``a`` against ``b``.

    Returns
    -------
    dict
        ``mean`` (of ``a - b``), ``n_better`` / ``n_worse`` (folds), ``sign_test_p`` (two-sided
        exact binomial test on the non-tied folds; 1 when all tie) and ``wilcoxon_p``
        (two-sided Wilcoxon signed-rank test; 1 when all differences are 0).
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    better, worse = int(np.sum(diff > 0)), int(np.sum(diff < 0))
    sign_p = 1.0 if better + worse == 0 else float(stats.binomtest(better, better + worse).pvalue)
    wilcoxon_p = 1.0 if np.all(diff == 0) else float(stats.wilcoxon(diff).pvalue)
    return {"mean": float(diff.mean()), "n_better": better, "n_worse": worse,
            "sign_test_p": sign_p, "wilcoxon_p": wilcoxon_p}


def bootstrap_difference(correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray],
                         units: Sequence[np.ndarray], *, n_boot: int = 2000,
                         confidence: float = 0.95,
                         random_state: int | None = 0) -> tuple[float, float]:
    """Two-level percentile bootstrap interval of the mean per-fold accuracy difference.

    Parameters
    ----------
    correct_a, correct_b : sequence of np.ndarray of bool, one per fold, (n_repeats, n_clips)
        Whether each repeat of system a / b classified each test clip of the fold correctly
        (same clips and repeats on both sides).
    units : sequence of np.ndarray, one per fold, (n_clips,)
        Resampling unit of each clip: its source recording (or its own index).
    n_boot : int
    confidence : float
    random_state : int, optional

    Returns
    -------
    (low, high) : tuple of float
        Bounds of ``accuracy(a) - accuracy(b)`` as fractions.
    """
    rng = np.random.default_rng(random_state)
    n_repeats = np.asarray(correct_a[0]).shape[0]
    # The same repeat draws serve every fold: a repeat is one refit of the whole protocol.
    repeat_counts = np.stack([np.bincount(row, minlength=n_repeats) for row in
                              rng.integers(0, n_repeats, size=(n_boot, n_repeats))])
    totals = np.zeros(n_boot)
    for a, b, unit in zip(correct_a, correct_b, units, strict=True):
        diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
        codes = np.unique(np.asarray(unit), return_inverse=True)[1]
        n_units = int(codes.max()) + 1
        sizes = np.bincount(codes, minlength=n_units).astype(float)
        # Per repeat and unit: summed differences of the unit's clips.
        sums = np.stack([np.bincount(codes, weights=row, minlength=n_units) for row in diff])
        unit_counts = np.stack([np.bincount(row, minlength=n_units) for row in
                                rng.integers(0, n_units, size=(n_boot, n_units))])
        numerator = np.einsum("br,ru,bu->b", repeat_counts, sums, unit_counts)
        totals += numerator / (n_repeats * (unit_counts @ sizes))
    totals /= len(correct_a)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(totals, [tail, 1.0 - tail])
    return float(low), float(high)


def compare(name: str, reference: str, correct: Mapping[str, Sequence[np.ndarray]],
            units: Sequence[np.ndarray], folds: Sequence[int], *, n_boot: int,
            random_state: int | None) -> dict:
    """Paired comparison of two systems.

    Parameters
    ----------
    name, reference : str
        Systems (keys of ``correct``).
    correct : mapping of str to sequence of np.ndarray
        Per system and fold, (n_repeats, n_clips) correctness.
    units : sequence of np.ndarray
        Per fold, the bootstrap unit of each test clip.
    folds : sequence of int

    Returns
    -------
    dict
        ``system, reference, mean_pp, per_fold_pp, ci95_pp, n_better, n_worse,
        sign_test_p, wilcoxon_p``; accuracy differences in percentage points.
    """
    a = [float(np.mean(values)) for values in correct[name]]
    b = [float(np.mean(values)) for values in correct[reference]]
    test = paired_fold_test(a, b)
    low, high = bootstrap_difference(correct[name], correct[reference], units, n_boot=n_boot,
                                     random_state=random_state)
    return {"system": name, "reference": reference, "mean_pp": 100.0 * test["mean"],
            "per_fold_pp": {str(f): 100.0 * (x - z) for f, x, z in zip(folds, a, b,
                                                                        strict=True)},
            "ci95_pp": [100.0 * low, 100.0 * high], "n_better": test["n_better"],
            "n_worse": test["n_worse"], "sign_test_p": test["sign_test_p"],
            "wilcoxon_p": test["wilcoxon_p"]}


def ci_method(recordings_known: bool, n_repeats: int, n_boot: int) -> str:
    """Words for the interval of :func:`bootstrap_difference`, as results.json states it."""
    unit = ("source recordings resampled within each test fold" if recordings_known else
            "clips resampled within each test fold (source recordings unknown)")
    return (f"paired two-level percentile bootstrap ({n_boot} resamples): {unit}, and the "
            f"{n_repeats} repeats (refits with other seeds and inner splits) resampled")
