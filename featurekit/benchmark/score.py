"""Score: metrics of each test fold, and paired comparisons with honest intervals.

Metrics come from :mod:`sklearn.metrics`. A system's score on a fold is the mean over its
repeats (each repeat a full refit with other seeds and inner splits).

A comparison of system *a* against *b* is paired: the same clips, folds and repeats on both
sides. Its interval is the two-level percentile bootstrap of :mod:`featurekit.benchmark.resample`
(repeats, and the source recordings of every test fold, drawn with replacement).

Multi-label tasks (a label-indicator matrix per test fold) are scored by macro mean average
precision (the primary metric), micro mAP, lwlrap and d′ (:func:`multilabel_metrics`); their
comparisons take macro mAP in every resample, and each compared system is resampled once for
all its comparisons (:func:`compare_map`).

The resampling is the expensive part: :func:`resample_systems` (each distinct system of a
multi-label task) and :func:`resample_pairs` (each single-label comparison) run it as tasks of
:func:`~featurekit._util.parallel.run_tasks` on the run's workers, and fill the memo the
comparisons then read; a comparison asked for without one resamples in this process. Every
resampling is seeded by ``random_state`` alone, so the results do not depend on the workers
or the order the tasks ran in.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from joblib import delayed
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

from featurekit._util.parallel import run_tasks
from featurekit.benchmark.resample import (
    bootstrap_difference,
    bootstrap_map,
    percentile_interval,
    resampled_average_precision,
)

#: Metrics reported per fold, in table order.
METRICS = ("accuracy", "macro_f1", "map")
#: Metrics of multi-label tasks: macro mAP (primary) first.
MULTILABEL_METRICS = ("map", "micro_map", "lwlrap", "dprime", "accuracy", "macro_f1")


def primary_metric(multilabel: bool) -> str:
    """The metric a comparison is made in: ``"map"`` (macro mAP) for multi-label tasks,
    ``"accuracy"`` otherwise."""
    return "map" if multilabel else "accuracy"


def metric_names(multilabel: bool) -> tuple[str, ...]:
    """Metrics reported per fold for a single-label or a multi-label task."""
    return MULTILABEL_METRICS if multilabel else METRICS


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


def _positive_classes(truth: np.ndarray) -> np.ndarray:
    """Columns of a label-indicator matrix with at least one positive (AP is undefined for the
    others, as in :func:`fold_metrics`)."""
    return np.flatnonzero(np.asarray(truth).sum(axis=0) > 0)


def per_class_ap(truth: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Average precision of each class (column), NaN for a class without positives.

    Parameters
    ----------
    truth : np.ndarray of {0, 1}, shape (n_clips, n_classes)
    proba : np.ndarray, shape (n_clips, n_classes)
    """
    # scikit-learn's AP (ties share a threshold), every class ranked in one vectorised pass:
    # the bootstrap's code with each clip drawn once (6.2 s -> 1.9 s at 10k clips x 200 classes).
    n_clips = len(truth)
    return resampled_average_precision(proba, truth, np.arange(n_clips),
                                       np.ones((1, n_clips)))[0]


def lwlrap(truth: np.ndarray, proba: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (Fonseca et al., DCASE 2019 task 2).

    For every (clip, true label) pair, the precision of the clip's ranking of labels at that
    label's rank (the share of true labels among the labels scored at least as high); the mean
    over all pairs, so each true label counts once and clips weigh by their number of labels.

    Parameters
    ----------
    truth : np.ndarray of {0, 1}, shape (n_clips, n_classes)
    proba : np.ndarray, shape (n_clips, n_classes)

    Returns
    -------
    float
        In (0, 1]; NaN when no clip has a label.
    """
    truth = np.asarray(truth) > 0
    proba = np.asarray(proba, dtype=np.float64)
    total, pairs = 0.0, 0
    for scores, positive in zip(proba, truth, strict=True):
        if not positive.any():
            continue
        at_least = scores[None, :] >= scores[positive][:, None]  # (true labels, classes)
        rank = at_least.sum(axis=1)
        hits = (at_least & positive[None, :]).sum(axis=1)
        total += float(np.sum(hits / rank))
        pairs += int(positive.sum())
    return total / pairs if pairs else float("nan")


def d_prime(auc: float) -> float:
    """Sensitivity index d′ of a ranking with ROC AUC ``auc``: ``sqrt(2) * Φ⁻¹(auc)`` (equal-
    variance Gaussian scores; the AudioSet papers report it from the macro AUC)."""
    return float(np.sqrt(2.0) * stats.norm.ppf(auc))


def multilabel_metrics(truth: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Metrics of one multi-label test set.

    Parameters
    ----------
    truth : np.ndarray of {0, 1}, shape (n_clips, n_classes)
    proba : np.ndarray, shape (n_clips, n_classes)
        Independent per-class probabilities.

    Returns
    -------
    dict
        ``map`` (macro mean average precision over classes with a positive clip, 0-1),
        ``micro_map`` (AP of all (clip, class) pairs pooled), ``lwlrap``, ``dprime`` (d′ of the
        macro ROC AUC over classes with positives and negatives), ``accuracy`` (share of clips
        whose top-scoring class is one of their labels) and ``macro_f1`` (probabilities
        thresholded at 0.5, classes with a positive clip).
    """
    truth = (np.asarray(truth) > 0).astype(np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    present = _positive_classes(truth)
    both = present[truth[:, present].sum(axis=0) < truth.shape[0]]
    auc = (float(np.mean(roc_auc_score(truth[:, both], proba[:, both], average=None)))
           if both.size else float("nan"))
    top = np.argmax(proba, axis=1)
    return {"map": float(np.nanmean(per_class_ap(truth, proba))),
            "micro_map": float(average_precision_score(truth, proba, average="micro")),
            "lwlrap": lwlrap(truth, proba),
            "dprime": d_prime(auc) if both.size else float("nan"),
            "accuracy": float(np.mean(truth[np.arange(truth.shape[0]), top])),
            "macro_f1": float(f1_score(truth[:, present], (proba[:, present] >= 0.5)
                                       .astype(np.int64), average="macro", zero_division=0))}


def task_metrics(truth: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """:func:`multilabel_metrics` for a label-indicator matrix, :func:`fold_metrics` for class
    indices."""
    if np.ndim(truth) == 2:
        return multilabel_metrics(truth, proba)
    return fold_metrics(truth, proba)


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


def _comparison_entry(name: str, reference: str, a: Sequence[float], b: Sequence[float],
                      folds: Sequence[int], low: float, high: float) -> dict:
    test = paired_fold_test(a, b)
    return {"system": name, "reference": reference, "mean_pp": 100.0 * test["mean"],
            "per_fold_pp": {str(f): 100.0 * (x - z) for f, x, z in zip(folds, a, b,
                                                                        strict=True)},
            "ci95_pp": [100.0 * low, 100.0 * high], "n_better": test["n_better"],
            "n_worse": test["n_worse"], "sign_test_p": test["sign_test_p"],
            "wilcoxon_p": test["wilcoxon_p"]}


def _digest(arrays: Sequence[np.ndarray]) -> bytes:
    """Fingerprint of a system's probabilities: every fold's shape, dtype and values."""
    fingerprint = hashlib.blake2b(digest_size=16)
    for array in arrays:
        array = np.ascontiguousarray(array)
        fingerprint.update(f"{array.shape}{array.dtype.str}".encode())
        fingerprint.update(array.data)
    return fingerprint.digest()


#: A system's entry in :func:`compare_map`'s memo: the digest of its probabilities, its mean
#: macro mAP per fold, and its resampled macro mAP (:func:`map_scores`).
SystemScores = tuple[bytes, list[float], np.ndarray]


def map_scores(probas: Sequence[np.ndarray], truth: Sequence[np.ndarray],
               units: Sequence[np.ndarray], *, n_boot: int,
               random_state: int | None) -> tuple[list[float], np.ndarray]:
    """What every multi-label comparison reads of one system.

    Parameters
    ----------
    probas : sequence of np.ndarray
        Per fold, the system's (n_repeats, n_clips, n_classes) probabilities.
    truth, units, n_boot, random_state :
        As :func:`compare_map`.

    Returns
    -------
    per_fold : list of float
        Macro mAP of each fold, the mean over its repeats.
    resampled : np.ndarray, shape (n_boot,)
        :func:`~featurekit.benchmark.resample.bootstrap_map`.
    """
    per_fold = [float(np.mean([np.nanmean(per_class_ap(labels, repeat)) for repeat in values]))
                for values, labels in zip(probas, truth, strict=True)]
    return per_fold, bootstrap_map(probas, truth, units, n_boot=n_boot,
                                   random_state=random_state)


def resample_systems(systems: Iterable[str], probas: Mapping[str, Sequence[np.ndarray]],
                     truth: Sequence[np.ndarray], units: Sequence[np.ndarray], *, n_boot: int,
                     random_state: int | None, memo: dict[str, SystemScores],
                     n_jobs: int = 1, backend: str = "loky",
                     scheduler: str | None = None) -> None:
    """Add each of ``systems`` missing from ``memo`` to it: one :func:`map_scores` task per
    distinct probabilities, on the workers.

    A fusion that kept a single branch (weights 1 and 0) has that branch's probabilities: same
    scores, same resamples, so systems whose probabilities have the same digest (among
    ``systems`` or already in ``memo``) share one entry.

    Parameters
    ----------
    systems : iterable of str
        Keys of ``probas``.
    probas, truth, units, n_boot, random_state :
        As :func:`compare_map`.
    memo : dict of str to SystemScores
        Filled in place.
    n_jobs, backend, scheduler :
        The workers (:func:`~featurekit._util.parallel.run_tasks`); with one loky worker the
        tasks run in this process.
    """
    digests = {system: _digest(probas[system]) for system in dict.fromkeys(systems)
               if system not in memo}
    known = {entry[0]: entry for entry in memo.values()}
    first = {}  # each new digest's first system: the one resampled
    for system, digest in digests.items():
        if digest not in known:
            first.setdefault(digest, system)
    if first:
        results = run_tasks([delayed(map_scores)(probas[system], truth, units, n_boot=n_boot,
                                                 random_state=random_state)
                             for system in first.values()],
                            n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                            names=[f"bootstrap of {system}" for system in first.values()])
        # Closed on any exception, so that the workers stop then (see run_tasks).
        with contextlib.closing(results):
            for digest, (per_fold, resampled) in zip(first, results, strict=True):
                known[digest] = (digest, per_fold, resampled)
    for system, digest in digests.items():
        memo[system] = known[digest]


def compare_map(name: str, reference: str, probas: Mapping[str, Sequence[np.ndarray]],
                truth: Sequence[np.ndarray], units: Sequence[np.ndarray], folds: Sequence[int],
                *, n_boot: int, random_state: int | None,
                memo: dict[str, SystemScores] | None = None) -> dict:
    """Paired comparison of two systems of a multi-label task in macro-mAP points.

    Parameters
    ----------
    probas : mapping of str to sequence of np.ndarray
        Per system and fold, (n_repeats, n_clips, n_classes) probabilities.
    truth : sequence of np.ndarray
        Per fold, the (n_clips, n_classes) label indicators.
    units, folds, n_boot, random_state :
        As :func:`compare`.
    memo : dict, optional
        Each system's digest of its probabilities, per-fold mAP and
        :func:`~featurekit.benchmark.resample.bootstrap_map` resamples
        (:func:`resample_systems`, which fills it with those missing, in this process), so
        that many comparisons of the same systems (same units and seed) resample each system
        once, and systems with identical probabilities once between them.

    Returns
    -------
    dict
        The keys of :func:`compare`; differences in points of macro mAP (x100).
    """
    memo = {} if memo is None else memo
    resample_systems((name, reference), probas, truth, units, n_boot=n_boot,
                     random_state=random_state, memo=memo)
    (_, a, resampled_a), (_, b, resampled_b) = memo[name], memo[reference]
    low, high = percentile_interval(resampled_a - resampled_b, 0.95)
    return _comparison_entry(name, reference, a, b, folds, low, high)


def resample_pairs(pairs: Iterable[tuple[str, str]],
                   correct: Mapping[str, Sequence[np.ndarray]], units: Sequence[np.ndarray], *,
                   n_boot: int, random_state: int | None,
                   memo: dict[tuple[str, str], tuple[float, float]], n_jobs: int = 1,
                   backend: str = "loky", scheduler: str | None = None) -> None:
    """Add the interval of each of ``pairs`` (system, reference) missing from ``memo`` to it:
    one :func:`~featurekit.benchmark.resample.bootstrap_difference` task per pair, on the
    workers.

    Parameters
    ----------
    pairs : iterable of (str, str)
        Systems, keys of ``correct``.
    correct, units, n_boot, random_state :
        As :func:`compare`.
    memo : dict of (str, str) to (float, float)
        Filled in place with the bounds (fractions).
    n_jobs, backend, scheduler :
        As :func:`resample_systems`.
    """
    missing = [pair for pair in dict.fromkeys(pairs) if pair not in memo]
    if not missing:
        return
    results = run_tasks([delayed(bootstrap_difference)(correct[name], correct[reference], units,
                                                       n_boot=n_boot,
                                                       random_state=random_state)
                         for name, reference in missing],
                        n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                        names=[f"bootstrap of {name} against {reference}"
                               for name, reference in missing])
    # Closed on any exception, so that the workers stop then (see run_tasks).
    with contextlib.closing(results):
        memo.update(zip(missing, results, strict=True))


def compare(name: str, reference: str, correct: Mapping[str, Sequence[np.ndarray]],
            units: Sequence[np.ndarray], folds: Sequence[int], *, n_boot: int,
            random_state: int | None,
            memo: dict[tuple[str, str], tuple[float, float]] | None = None) -> dict:
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
    memo : dict, optional
        Intervals by (system, reference) (:func:`resample_pairs`, which adds this pair's if
        missing, in this process).

    Returns
    -------
    dict
        ``system, reference, mean_pp, per_fold_pp, ci95_pp, n_better, n_worse,
        sign_test_p, wilcoxon_p``; accuracy differences in percentage points.
    """
    memo = {} if memo is None else memo
    resample_pairs([(name, reference)], correct, units, n_boot=n_boot,
                   random_state=random_state, memo=memo)
    a = [float(np.mean(values)) for values in correct[name]]
    b = [float(np.mean(values)) for values in correct[reference]]
    low, high = memo[name, reference]
    return _comparison_entry(name, reference, a, b, folds, low, high)


def ci_method(recordings_known: bool, n_repeats: int, n_boot: int) -> str:
    """Words for the interval of
    :func:`~featurekit.benchmark.resample.bootstrap_difference`, as results.json states it."""
    unit = ("source recordings resampled within each test fold" if recordings_known else
            "clips resampled within each test fold (source recordings unknown)")
    return (f"paired two-level percentile bootstrap ({n_boot} resamples): {unit}, and the "
            f"{n_repeats} repeats (refits with other seeds and inner splits) resampled")
