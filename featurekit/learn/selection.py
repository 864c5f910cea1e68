"""One inner cross-validation selection for every choice made inside training rows.

Hyper-parameter searches of heads, the regularisation of stackers and blenders, and the
benchmark's ``auto`` system all pick "the candidate with the best score on inner out-of-fold
predictions". :func:`select_by_inner_cv` is that one procedure; callers give the candidates,
how to build an estimator from one, and the inner splits (drawn from training rows only, see
:func:`featurekit.learn.splits.inner_splits`), so a test row never takes part in a choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score

from featurekit.errors import ConfigError

Split = tuple[np.ndarray, np.ndarray]


def oof_score(y: np.ndarray, proba: np.ndarray) -> float:
    """The score every inner choice maximises: accuracy of the most probable class for class
    labels ``y``; for a label-indicator matrix, macro average precision over the classes with
    a positive row (multi-label tasks are ranked, not thresholded)."""
    y, proba = np.asarray(y), np.asarray(proba)
    if y.ndim == 2:
        present = np.flatnonzero(y.sum(axis=0) > 0)
        if present.size == 0:
            return float("nan")
        return float(np.mean(average_precision_score(y[:, present], proba[:, present],
                                                     average=None)))
    return float(accuracy_score(y, np.argmax(proba, axis=1)))


@dataclass(frozen=True)
class Selection:
    """Outcome of :func:`select_by_inner_cv`.

    Attributes
    ----------
    best : object
        The winning candidate (the first one on ties).
    index : int
        Its position among the candidates.
    scores : tuple of float
        Inner out-of-fold accuracy of every candidate, in candidate order (NaN for a candidate
        no split could score).
    """

    best: Any
    index: int
    scores: tuple[float, ...]


def select_by_inner_cv(candidates: Sequence[Any], build: Callable[[Any], Any], X: Any,
                       y: np.ndarray, splits: Sequence[Split], *,
                       groups: np.ndarray | None = None,
                       min_classes: int = 2) -> Selection:
    """Pick the candidate whose estimators score best on the inner validation rows.

    Parameters
    ----------
    candidates : sequence
        Anything ``build`` understands (parameter dicts, ``C`` values...). At least one.
    build : callable
        ``build(candidate)`` returns an unfitted estimator with ``fit`` and ``predict``.
    X : array-like or mapping of str to arrays
        Training rows (a mapping: several inputs with the same rows, e.g. sequence streams).
    y : np.ndarray, shape (n_rows,)
        Labels of the training rows.
    splits : sequence of (train, validation) index pairs
        Inner splits of these rows (positions into ``y``).
    groups : np.ndarray, optional
        Passed to ``fit`` as ``groups=groups[train]`` when the estimator accepts it.
    min_classes : int
        A split whose training rows hold fewer classes is skipped.

    Returns
    -------
    Selection
        Accuracy is pooled over all scored validation rows (each row counts once); for a
        label-indicator ``y``, :func:`oof_score` of the pooled ``predict_proba``. With a single
        candidate nothing is fitted and its score is NaN.
    """
    if not candidates:
        raise ConfigError("select_by_inner_cv needs at least one candidate")
    if len(candidates) == 1:
        return Selection(candidates[0], 0, (float("nan"),))
    from featurekit.learn.fitting import fit_head, take_rows  # heads import this module

    y = np.asarray(y)
    multilabel = y.ndim == 2
    scores = []
    for candidate in candidates:
        truth, predicted = [], []
        for train, val in splits:
            if not multilabel and np.unique(y[train]).size < min_classes:
                continue
            model = fit_head(build(candidate), take_rows(X, train), y[train],
                             None if groups is None else np.asarray(groups)[train])
            truth.append(y[val])
            predicted.append(model.predict_proba(take_rows(X, val)) if multilabel
                             else model.predict(take_rows(X, val)))
        if not truth:
            scores.append(float("nan"))
        elif multilabel:
            scores.append(oof_score(np.concatenate(truth), np.concatenate(predicted)))
        else:
            scores.append(float(accuracy_score(np.concatenate(truth),
                                               np.concatenate(predicted))))
    return _best(candidates, scores)


def select_by_oof(candidates: Sequence[Any], probas: Sequence[np.ndarray],
                  y: np.ndarray) -> Selection:
    """Pick the candidate whose inner out-of-fold probabilities are the most accurate.

    For systems whose out-of-fold predictions on the training rows already exist (e.g. the
    benchmark's ``auto`` choice among fused systems): the same rule as
    :func:`select_by_inner_cv` without refitting.

    Parameters
    ----------
    candidates : sequence
        Names (or anything) of the candidates. At least one.
    probas : sequence of np.ndarray, each (n_rows, n_classes)
        Each candidate's out-of-fold probabilities of the same training rows.
    y : np.ndarray of int, shape (n_rows,), or of {0, 1}, shape (n_rows, n_classes)
        Class indices (columns of the probabilities), or label indicators (multi-label:
        scored by macro average precision, :func:`oof_score`).
    """
    if not candidates or len(candidates) != len(probas):
        raise ConfigError("select_by_oof needs one probability array per candidate, and at "
                          "least one candidate")
    return _best(candidates, [oof_score(y, proba) for proba in probas])


def _best(candidates: Sequence[Any], scores: Sequence[float]) -> Selection:
    """The first candidate of the highest score (NaN scores never win)."""
    finite = np.where(np.isnan(scores), -np.inf, scores)
    index = int(np.argmax(finite))
    return Selection(candidates[index], index, tuple(float(s) for s in scores))


__all__ = ["Selection", "oof_score", "select_by_inner_cv", "select_by_oof"]
