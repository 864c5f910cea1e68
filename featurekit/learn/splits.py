"""Splits drawn from training rows only: inner cross-validation folds and early-stopping holds.

Both keep groups (each clip's source recording, when known) whole, so clips of one recording
are never on both sides of a split, and stratify by class (a multi-label row by its rarest
label, :func:`stratification_labels`).
"""

from __future__ import annotations

import math
import warnings

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
        with warnings.catch_warnings():
            # A class with fewer groups than splits is placed where it fits; scikit-learn's
            # warning about it came once per split of every fit (thousands in a label-set
            # run, whose rarest-label strata are small) and said nothing a caller can act on.
            warnings.filterwarnings("ignore", message="The least populated class",
                                    category=UserWarning)
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
    split = _grouped_split(y, groups, fraction, random_state)
    return split if split is not None else _stratified_split(y, fraction, random_state)


def _grouped_split(y: np.ndarray, groups: np.ndarray | None, fraction: float,
                   random_state: int | None) -> Split | None:
    """Whole groups held out as :func:`validation_split` draws them, or None."""
    if groups is None:
        return None
    classes, encoded = np.unique(y, return_inverse=True)
    ids, group_of_row = np.unique(np.asarray(groups), return_inverse=True)
    if ids.size < max(2, round(1.0 / fraction)):
        return None
    val_groups = _held_out_groups(encoded, group_of_row, ids.size, classes.size, fraction,
                                  random_state)
    is_val = np.isin(group_of_row, val_groups)
    if np.unique(encoded[~is_val]).size < classes.size:
        return None
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _stratified_split(y: np.ndarray, fraction: float, random_state: int | None) -> Split | None:
    """A stratified ``fraction`` of the rows held out, or None where some class has one row
    or the validation rows would be fewer than the classes."""
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2 or math.ceil(fraction * y.shape[0]) < classes.size:
        return None
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=random_state)
    train, val = next(splitter.split(np.zeros((y.shape[0], 1)), y))
    return np.sort(train), np.sort(val)


def _keeping_every_class(y: np.ndarray, groups: np.ndarray, n_val: int,
                         random_state: int | None) -> Split | None:
    """Up to ``n_val`` whole groups held out, visited in random order and taken only when
    every class keeps a row on the training side; None when no group can go."""
    _, encoded = np.unique(y, return_inverse=True)
    ids, group_of_row = np.unique(groups, return_inverse=True)
    per_group = np.zeros((ids.size, int(encoded.max()) + 1), dtype=np.int64)
    np.add.at(per_group, (group_of_row, encoded), 1)
    remaining = per_group.sum(axis=0)
    held_out = []
    for group in np.random.default_rng(random_state).permutation(ids.size):
        if len(held_out) == n_val:
            break
        if np.all(remaining > per_group[group]):
            held_out.append(group)
            remaining -= per_group[group]
    if not held_out:
        return None
    is_val = np.isin(group_of_row, held_out)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


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


#: What an early-stopping split held out (a head's ``validation_kind_``): whole groups, a share
#: of the clips, or nothing (the head trained without validation rows).
VALIDATION_KINDS = ("groups", "clips", "none")
#: A head's ``validation_kind``: one of :data:`VALIDATION_KINDS` to impose, or ``"auto"``.
AUTO_VALIDATION = "auto"


def early_stopping_split(encoded: np.ndarray, groups: np.ndarray | None, *, fraction: float,
                         random_state: int, kind: str = AUTO_VALIDATION,
                         ) -> tuple[Split | None, str]:
    """The held-out rows that a head's early stopping scores epochs or rounds on, and their
    kind (one of :data:`VALIDATION_KINDS`).

    Rows are encoded targets (class indices or label indicators), stratified by
    :func:`stratification_labels`. ``kind="auto"`` draws :func:`validation_split`: whole
    ``groups`` where they allow it, else a stratified share of the clips, else nothing. A kind
    given is imposed -- how a benchmark makes a member's inner out-of-fold twins, which train
    on fewer rows, stop early the way the member does: ``"groups"`` and ``"clips"`` first try
    the draw of ``"auto"``; where it fails, up to the same share of groups (clips) is held out,
    at random, keeping a row of every class on the training side. Only where that too is
    impossible (fewer than two groups; no class with two rows) does a split fall back to the
    next kind, and the kind returned says what was drawn.

    Parameters
    ----------
    encoded : np.ndarray, shape (n_samples,) or (n_samples, n_classes)
    groups : np.ndarray, shape (n_samples,), optional
        Group id of each row (e.g. source recording).
    fraction : float
        Share of the groups (or rows) held out.
    random_state : int
        Seed of the draw.
    kind : {"auto", "groups", "clips", "none"}

    Returns
    -------
    split : (train_index, validation_index) or None
        Positional indices into ``encoded``; None for kind ``"none"``.
    kind : str
        What was held out.

    Raises
    ------
    ConfigError
        An unknown ``kind``.
    """
    if kind != AUTO_VALIDATION and kind not in VALIDATION_KINDS:
        raise ConfigError(f"validation_kind must be {AUTO_VALIDATION!r} or one of "
                          f"{', '.join(map(repr, VALIDATION_KINDS))}, got {kind!r}")
    y = stratification_labels(encoded)
    imposed = kind != AUTO_VALIDATION
    if kind in (AUTO_VALIDATION, "groups") and groups is not None:
        groups = np.asarray(groups)
        split = _grouped_split(y, groups, fraction, random_state)
        if split is None and imposed:
            n_groups = np.unique(groups).size
            split = _keeping_every_class(y, groups, max(1, round(fraction * n_groups)),
                                         random_state)
        if split is not None:
            return split, "groups"
    if kind != "none":
        split = _stratified_split(y, fraction, random_state)
        if split is None and imposed:
            split = _keeping_every_class(y, np.arange(y.shape[0]),
                                         max(1, math.ceil(fraction * y.shape[0])), random_state)
        if split is not None:
            return split, "clips"
    return None, "none"
