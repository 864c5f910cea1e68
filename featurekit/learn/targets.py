"""Targets: class labels and label-indicator matrices, encoded and decoded once for every learner.

A 1-D ``y`` holds one class label per clip; a 2-D ``y`` is a label-indicator matrix (one 0/1
column per class, a clip may have several labels: multi-label).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.multiclass import check_classification_targets


def check_label_matrix(y: np.ndarray, *, who: str) -> np.ndarray:
    """A label-indicator matrix as int64 0/1, refused unless every entry is 0 or 1."""
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[1] < 2:
        raise ValueError(f"{who}: a multi-label target must be (n_samples, n_classes >= 2), "
                         f"got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{who}: a multi-label target must hold only 0 and 1")
    return y.astype(np.int64)


def encode_targets(y: Any, *, who: str,
                   n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """``classes_``, the encoded targets and whether they are label sets.

    Class labels (1-D) are encoded as indices into the sorted classes; a label-indicator
    matrix (2-D) is kept as 0/1, its column positions the classes.

    Parameters
    ----------
    y : array-like, shape (n_samples,) or (n_samples, n_classes)
    who : str
        The learner's name, for error messages.
    n_samples : int, optional
        Rows of the learner's input, which ``y`` must match.

    Returns
    -------
    classes : np.ndarray
    encoded : np.ndarray of int64
    multilabel : bool

    Raises
    ------
    ValueError
        Not classification targets, fewer than 2 classes, a malformed indicator matrix, or
        not ``n_samples`` rows.
    """
    y = np.asarray(y)
    if n_samples is not None and y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} clips but y has {y.shape[0]}")
    if y.ndim == 2:
        encoded = check_label_matrix(y, who=who)
        return np.arange(encoded.shape[1]), encoded, True
    check_classification_targets(y)
    classes, encoded = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"{who} needs at least 2 classes in y, got {classes.size} class")
    return classes, encoded, False


def proba_to_labels(proba: np.ndarray, classes: np.ndarray, multilabel: bool) -> np.ndarray:
    """Most probable class of each clip; for label sets, indicators of probabilities >= 0.5."""
    if multilabel:
        return (proba >= 0.5).astype(np.int64)
    return classes[np.argmax(proba, axis=1)]
