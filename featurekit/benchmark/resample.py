"""Resample: the two-level percentile bootstrap behind the comparisons of ``score``.

In each resample, the repeats are drawn with replacement, and within every test fold the
source recordings are drawn with replacement (all clips of a drawn recording come along; clips
stand for themselves where recordings are unknown). Both sources of noise that matter on small
data -- which recordings happen to be in a fold, and the training randomness -- are in the
interval, and a recording's correlated clips count once.

Accuracy is a mean of per-clip outcomes, so its resampled difference is a weighted sum
(:func:`bootstrap_difference`). Macro mAP is not: it is taken in every resample
(:func:`bootstrap_map`). Each class is ranked once per system and repeat, and a resample only
counts its drawn clips and positives between the tie groups of positives
(:func:`resampled_average_precision`): exact, and linear in test clips x classes x resamples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse


def _draw_counts(rng: np.random.Generator, n_items: int, n_boot: int) -> np.ndarray:
    """How often each of ``n_items`` is drawn in each of ``n_boot`` resamples with replacement
    of ``n_items`` draws, (n_boot, n_items)."""
    draws = rng.integers(0, n_items, size=(n_boot, n_items))
    # One bincount for all resamples: each resample's draws are shifted into its own row.
    draws += n_items * np.arange(n_boot)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n_items).reshape(n_boot, n_items)


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
    repeat_counts = _draw_counts(rng, n_repeats, n_boot)
    totals = np.zeros(n_boot)
    for a, b, unit in zip(correct_a, correct_b, units, strict=True):
        diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
        codes = np.unique(np.asarray(unit), return_inverse=True)[1]
        n_units = int(codes.max()) + 1
        sizes = np.bincount(codes, minlength=n_units).astype(float)
        # Per repeat and unit: summed differences of the unit's clips.
        sums = np.stack([np.bincount(codes, weights=row, minlength=n_units) for row in diff])
        unit_counts = _draw_counts(rng, n_units, n_boot)
        numerator = np.einsum("br,ru,bu->b", repeat_counts, sums, unit_counts)
        totals += numerator / (n_repeats * (unit_counts @ sizes))
    return percentile_interval(totals / len(correct_a), confidence)


#: Bytes the arrays of one chunk of resamples may take in :func:`resampled_average_precision`
#: (the resamples are processed in chunks of as many as fit, at most ``CHUNK_RESAMPLES``).
CHUNK_BYTES = 256 * 2**20
#: Past about this many resamples the sparse product slows down (its block of counts,
#: n_units x resamples, leaves the cache; benchmarks/notes/scale.md).
CHUNK_RESAMPLES = 64


def _ranking_segments(scores: np.ndarray, truth: np.ndarray, codes: np.ndarray,
                      n_units: int) -> tuple[sparse.csr_array, np.ndarray, np.ndarray]:
    """Each class's ranking, cut into segments that end at the tie groups holding a positive.

    A positive's precision is read at the last clip of its tie group (clips with equal scores
    share one threshold), so only the counts of drawn clips and of drawn positives between two
    such group ends matter; clips ranked below a class's last positive matter not at all.

    Parameters
    ----------
    scores : np.ndarray, shape (n_clips, n_classes)
    truth : np.ndarray of bool, shape (n_clips, n_classes)
    codes : np.ndarray of int, shape (n_clips,)
        Resampling unit of each clip, ``0 .. n_units - 1``.
    n_units : int

    Returns
    -------
    matrix : scipy.sparse.csr_array, shape (2 * n_segments, n_units)
        Row ``s``: how many clips of each unit segment ``s`` holds; row ``n_segments + s``: how
        many of them are positives. A class's segments are consecutive, in ranking order.
    first : np.ndarray of int, shape (n_present,)
        Index of the first segment of each class with a positive.
    present : np.ndarray of int, shape (n_present,)
        Those classes, ascending.
    """
    n_clips, n_classes = scores.shape
    order = np.argsort(-scores, axis=0, kind="stable").T  # (n_classes, n_clips)
    ranked = np.take_along_axis(scores.T, order, axis=1)
    positive = np.take_along_axis(truth.T, order, axis=1)
    starts = np.ones(ranked.shape, dtype=bool)
    starts[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    # Tie groups numbered through all classes, so that one sorted array serves every class.
    group = np.cumsum(starts.ravel()).reshape(n_classes, n_clips)
    last = np.max(np.where(positive, group, 0), axis=1)  # 0: no positive (groups start at 1)
    ends = np.unique(group[positive])  # the segment ends: every group holding a positive
    kept = group <= last[:, None]
    segment = np.searchsorted(ends, group[kept])
    unit = codes[order][kept]
    rows = np.concatenate([segment, ends.size + segment[positive[kept]]])
    columns = np.concatenate([unit, unit[positive[kept]]])
    matrix = sparse.csr_array((np.ones(rows.size), (rows, columns)),
                              shape=(2 * ends.size, n_units))  # repeated entries add up
    present = np.flatnonzero(last)
    return matrix, np.searchsorted(ends, group[present, 0]), present


def resampled_average_precision(proba: np.ndarray, truth: np.ndarray, codes: np.ndarray,
                                counts: np.ndarray) -> np.ndarray:
    """Average precision of every class in many resamples of the clips at once.

    A resample draws units (recordings, or clips), each ``counts`` times; AP is scikit-learn's
    with those counts as ``sample_weight``: the sum over positives of count x precision at the
    positive's tie group (drawn positives over drawn clips scored at least as high), divided by
    the drawn positives. Each class is ranked once; per resample only the drawn clips and
    positives in each stretch of the ranking between two positives' tie groups are counted,
    for all classes and a chunk of resamples in one sparse product.

    Parameters
    ----------
    proba : np.ndarray, shape (n_clips, n_classes)
    truth : np.ndarray of {0, 1}, shape (n_clips, n_classes)
    codes : np.ndarray of int, shape (n_clips,)
        Resampling unit of each clip, ``0 .. n_units - 1``.
    counts : np.ndarray, shape (n_resamples, n_units)
        Draws of each unit in each resample (non-negative weights work too, up to rounding).

    Returns
    -------
    np.ndarray, shape (n_resamples, n_classes)
        AP (0-1); NaN where a class has no drawn positive.
    """
    scores = np.asarray(proba, dtype=np.float64)
    counts = np.asarray(counts)
    out = np.full((counts.shape[0], scores.shape[1]), np.nan)
    matrix, first, present = _ranking_segments(scores, np.asarray(truth) > 0, np.asarray(codes),
                                               counts.shape[1])
    if not present.size:
        return out
    n_segments = matrix.shape[0] // 2
    lengths = np.diff(np.r_[first, n_segments])  # segments of each class
    chunk = max(1, min(CHUNK_RESAMPLES, CHUNK_BYTES // (8 * (8 * n_segments + counts.shape[1]))))
    for low in range(0, counts.shape[0], chunk):
        # Drawn clips and drawn positives per segment, (2, n_segments, resamples of the chunk).
        drawn = (matrix @ np.ascontiguousarray(counts[low:low + chunk].T, dtype=np.float64)
                 ).reshape(2, n_segments, -1)
        # Running sums that restart at each class's first segment. Counts are integers, so
        # these sums and differences are exact and the precisions equal scikit-learn's.
        running = np.cumsum(drawn, axis=1)
        before = running[:, first - 1]
        before[:, first == 0] = 0.0
        running -= np.repeat(before, lengths, axis=1)
        clips, positives = running
        # A segment with no drawn clip at or above its end has no drawn positive either.
        precision = np.divide(positives, clips, out=np.zeros_like(clips), where=clips > 0)
        total = positives[first + lengths - 1]
        numerator = np.add.reduceat(drawn[1] * precision, first, axis=0)
        out[low:low + chunk, present] = np.divide(numerator, total,
                                                  out=np.full_like(total, np.nan),
                                                  where=total > 0).T
    return out


def bootstrap_map(probas: Sequence[np.ndarray], truth: Sequence[np.ndarray],
                  units: Sequence[np.ndarray], *, n_boot: int = 2000,
                  random_state: int | None = 0) -> np.ndarray:
    """Macro mAP of one system in each resample of the two-level bootstrap.

    The resampling is :func:`bootstrap_difference`'s (repeats, and the units of each test
    fold, drawn with replacement); in every resample each class's AP is taken on the drawn
    clips (:func:`resampled_average_precision`), macro-averaged over the classes with a drawn
    positive, averaged over the drawn repeats and then over folds. The draws depend only on
    ``random_state``, the number of repeats and the units, so two systems resampled with the
    same seed are paired, and the difference of their arrays is the paired difference (the
    classes averaged over depend on the drawn clips alone).

    Parameters
    ----------
    probas : sequence of np.ndarray, one per fold, (n_repeats, n_clips, n_classes)
    truth : sequence of np.ndarray, one per fold, (n_clips, n_classes) of {0, 1}
    units : sequence of np.ndarray, one per fold, (n_clips,)
    n_boot, random_state :
        As :func:`bootstrap_difference`.

    Returns
    -------
    np.ndarray, shape (n_boot,)
    """
    rng = np.random.default_rng(random_state)
    n_repeats = np.asarray(probas[0]).shape[0]
    repeat_counts = _draw_counts(rng, n_repeats, n_boot)
    totals = np.zeros(n_boot)
    for proba, labels, unit in zip(probas, truth, units, strict=True):
        proba, labels = np.asarray(proba), np.asarray(labels) > 0
        codes = np.unique(np.asarray(unit), return_inverse=True)[1]
        unit_counts = _draw_counts(rng, int(codes.max()) + 1, n_boot)
        for repeat in range(n_repeats):
            per_class = resampled_average_precision(proba[repeat], labels, codes, unit_counts)
            # Macro over the classes with a drawn positive (the others have no AP).
            scored = np.maximum(np.sum(~np.isnan(per_class), axis=1), 1)
            totals += repeat_counts[:, repeat] * np.nansum(per_class, axis=1) / scored
    return totals / (n_repeats * len(probas))


def percentile_interval(resampled: np.ndarray, confidence: float) -> tuple[float, float]:
    """Central percentile interval of resampled values.

    Parameters
    ----------
    resampled : np.ndarray, shape (n_boot,)
        A statistic in each resample (any unit; the bounds come in the same).
    confidence : float
        Share of the resamples inside the interval, e.g. 0.95.

    Returns
    -------
    (low, high) : tuple of float
    """
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_map_difference(proba_a: Sequence[np.ndarray], proba_b: Sequence[np.ndarray],
                             truth: Sequence[np.ndarray], units: Sequence[np.ndarray], *,
                             n_boot: int = 2000, confidence: float = 0.95,
                             random_state: int | None = 0) -> tuple[float, float]:
    """Two-level percentile bootstrap interval of the mean per-fold macro-mAP difference
    (:func:`bootstrap_map` of both systems with the same draws).

    Returns
    -------
    (low, high) : tuple of float
        Bounds of ``mAP(a) - mAP(b)`` (0-1 scale).
    """
    def resampled(probas: Sequence[np.ndarray]) -> np.ndarray:
        return bootstrap_map(probas, truth, units, n_boot=n_boot, random_state=random_state)

    return percentile_interval(resampled(proba_a) - resampled(proba_b), confidence)
