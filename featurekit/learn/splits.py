"""Splits drawn from training rows only: inner cross-validation folds and early-stopping holds.

Both keep groups (each clip's source recording, when known) whole, so clips of one recording
are never on both sides of a split, and stratify by class (a multi-label row by its rarest
label, :func:`stratification_labels`).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
)

from featurekit.errors import ConfigError

Split = tuple[np.ndarray, np.ndarray]


def inner_splits(y: np.ndarray, groups: np.ndarray | None = None, *, n_splits: int = 3,
                 random_state: int | None = 0) -> list[Split]:
    """Cross-validation splits of training rows, group-aware when groups allow it.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Class labels of the training rows.
    groups : np.ndarray, shape (n_samples,), optional
        Fold (or recording) id of each row. With at least two distinct ids the splits keep
        each id on one side (``StratifiedGroupKFold`` with ``min(n_splits, n_ids)`` splits),
        which mirrors the outer protocol. Otherwise rows are split by stratified k-fold.
    n_splits : int
        Wanted number of splits (at least 2).
    random_state : int, optional
        Seed of the shuffling.

    Returns
    -------
    list of (train_index, validation_index)
        Positional indices into ``y``.
    """
    y = np.asarray(y)
    if n_splits < 2:
        raise ConfigError(f"inner cross-validation needs at least 2 splits, got {n_splits}")
    if y.shape[0] < 2:
        raise ConfigError("inner cross-validation needs at least 2 training rows")
    placeholder = np.zeros((y.shape[0], 1))
    _, counts = np.unique(y, return_counts=True)
    if groups is not None and np.unique(groups).size >= 2:
        n_groups = np.unique(groups).size
        wanted = min(n_splits, n_groups)
        if counts.max() < wanted:  # no class can be stratified: whole groups, unstratified
            splitter = GroupKFold(n_splits=wanted, shuffle=True, random_state=random_state)
            return list(splitter.split(placeholder, y, groups))
        splitter = StratifiedGroupKFold(n_splits=wanted, shuffle=True,
                                        random_state=random_state)
        return list(splitter.split(placeholder, y, groups))
    if counts.min() >= n_splits:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        return list(splitter.split(placeholder, y))
    # Too few clips of some class to stratify: plain shuffled k-fold still gives every row an
    # out-of-fold prediction.
    splitter = KFold(n_splits=min(n_splits, y.shape[0]), shuffle=True,
                     random_state=random_state)
    return list(splitter.split(placeholder))


def validation_split(y: np.ndarray, groups: np.ndarray | None = None, *, fraction: float = 0.15,
                     random_state: int | None = 0) -> Split | None:
    """One train/validation split of training rows for early stopping, or ``None``.

    With ``groups`` and at least ``round(1 / fraction)`` distinct ids, whole groups are held
    out: a ``fraction`` of the groups (at least one), drawn stratified by each group's most
    frequent class when every such class has at least two groups, at random otherwise. If the
    remaining rows would miss a class, or without enough groups, a stratified random
    ``fraction`` of the rows is held out instead. When the data are too small for a validation
    set holding every class (fewer than two clips of a class, or fewer validation rows than
    classes) ``None`` is returned and the caller trains without a validation split.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Class labels of the training rows.
    groups : np.ndarray, shape (n_samples,), optional
        Group id of each row (e.g. source recording); rows of one id stay on one side.
    fraction : float
        Share of the groups (or rows) held out.
    random_state : int, optional
        Seed of the draw.

    Returns
    -------
    (train_index, validation_index) or None
        Sorted positional indices into ``y``.
    """
    y = np.asarray(y)
    classes, encoded, counts = np.unique(y, return_inverse=True, return_counts=True)
    placeholder = np.zeros((y.shape[0], 1))
    wanted_groups = max(2, round(1.0 / fraction))
    if groups is not None:
        ids, group_of_row = np.unique(np.asarray(groups), return_inverse=True)
        if ids.size >= wanted_groups:
            val_groups = _held_out_groups(encoded, group_of_row, ids.size, classes.size,
                                          fraction, random_state)
            is_val = np.isin(group_of_row, val_groups)
            if np.unique(encoded[~is_val]).size == classes.size:
                return np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if counts.min() < 2 or math.ceil(fraction * y.shape[0]) < classes.size:
        return None
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=random_state)
    train, val = next(splitter.split(placeholder, y))
    return np.sort(train), np.sort(val)


def _held_out_groups(encoded: np.ndarray, group_of_row: np.ndarray, n_groups: int,
                     n_classes: int, fraction: float, random_state: int | None) -> np.ndarray:
    """Indices of the groups to hold out (linear time; many recordings are common)."""
    per_group = np.zeros((n_groups, n_classes), dtype=np.int64)
    np.add.at(per_group, (group_of_row, encoded), 1)
    group_class = per_group.argmax(axis=1)
    n_val = max(1, round(fraction * n_groups))
    placeholder = np.zeros((n_groups, 1))
    strata = np.unique(group_class, return_counts=True)[1]
    if strata.min() >= 2 and strata.size <= n_val <= n_groups - strata.size:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val,
                                          random_state=random_state)
        return next(splitter.split(placeholder, group_class))[1]
    return np.random.default_rng(random_state).permutation(n_groups)[:n_val]


def stratification_labels(y: np.ndarray) -> np.ndarray:
    """One class per row to stratify splits by: ``y`` itself for class labels; for a
    label-indicator matrix, each row's rarest label (the label that most needs spreading over
    splits), the first class for a row without labels.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,) or (n_samples, n_classes)

    Returns
    -------
    np.ndarray, shape (n_samples,)
    """
    y = np.asarray(y)
    if y.ndim != 2:
        return y
    frequency = y.sum(axis=0)
    rarity = np.where(y > 0, frequency[None, :], np.inf)
    return np.argmin(rarity, axis=1).astype(np.int64)


def early_stopping_split(encoded: np.ndarray, groups: np.ndarray | None, *, fraction: float,
                         random_state: int) -> Split | None:
    """The held-out rows that a head's early stopping scores epochs or rounds on: a
    :func:`validation_split` of encoded targets (class indices or label indicators), stratified
    by :func:`stratification_labels`, keeping ``groups`` whole; None when none is possible."""
    return validation_split(stratification_labels(encoded),
                            None if groups is None else np.asarray(groups),
                            fraction=fraction, random_state=random_state)
