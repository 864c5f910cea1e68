"""Fitting any head the same way: row selection (arrays or mappings of streams), ``groups`` passed
when a head takes them, probabilities aligned to a fixed class list, seeded copies.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import clone

from featurekit.learn.rows import RowView


def take_rows(X: Any, rows: np.ndarray) -> Any:
    """Rows ``rows`` of a head's input: an array, or a mapping of stream name to arrays of the
    same rows (a multi-stream sequence head's input). Rows of memory-mapped frame sequences
    (3-D) or of a :class:`~featurekit.learn.rows.RowView` stay a view, read later batch by
    batch."""
    if isinstance(X, Mapping):
        return {name: take_rows(values, rows) for name, values in X.items()}
    if isinstance(X, RowView):
        return X.take(rows)
    if isinstance(X, np.memmap) and X.ndim == 3:
        return RowView(X, rows)
    return X[rows]


def fit_head(estimator: Any, X: Any, y: np.ndarray, groups: np.ndarray | None = None) -> Any:
    """Fit ``estimator``, passing ``groups`` when its ``fit`` accepts them."""
    if groups is not None and "groups" in inspect.signature(estimator.fit).parameters:
        return estimator.fit(X, y, groups=groups)
    return estimator.fit(X, y)


def aligned_proba(estimator: Any, X: Any, classes: np.ndarray) -> np.ndarray:
    """``predict_proba`` with one column per entry of ``classes`` (zeros for classes the
    estimator never saw in training), shape (n_samples, n_classes)."""
    proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    out = np.zeros((proba.shape[0], len(classes)))
    out[:, np.searchsorted(classes, estimator.classes_)] = proba
    return out


def clone_head(estimator: Any, *, random_state: int | None) -> Any:
    """A fresh copy of a user-given head with ``random_state`` set when it has one."""
    fresh = clone(estimator)
    if "random_state" in fresh.get_params():
        fresh.set_params(random_state=random_state)
    return fresh
