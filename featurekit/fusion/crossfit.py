"""Honest out-of-fold probabilities of a fused system: cross-fitting a late-fusion rule.

A rule of :mod:`featurekit.fusion.rules` is fitted on the labels of every row it is given, so
its combination of those rows is not an honest estimate of how well it fuses.
:func:`cross_fitted_proba` gives one: each inner validation set is combined by a rule fitted
on the other rows only (over the other splits restricted to them, :func:`restrict_splits`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import clone

from featurekit.errors import ConfigError
from featurekit.fusion.rules import FusionRule, make_fusion
from featurekit.learn.splits import Split, inner_splits, stratification_labels

__all__ = ["cross_fitted_proba", "restrict_splits"]


def restrict_splits(splits: Sequence[Split], rows: np.ndarray) -> list[Split]:
    """Splits restricted to ``rows`` and re-indexed to positions within ``rows``.

    Parameters
    ----------
    splits : sequence of (train, validation) index pairs
        Positions into the full set of rows.
    rows : np.ndarray of int
        The rows kept, in the order that defines the new positions.

    Returns
    -------
    list of (train, validation)
        Each split's rows that are in ``rows``, as positions into ``rows`` (order within a
        split kept); splits left without training or without validation rows are dropped.
    """
    rows = np.asarray(rows, dtype=np.int64)
    largest = max([int(np.max(rows, initial=-1))]
                  + [int(np.max(index, initial=-1)) for split in splits for index in split])
    position = np.full(largest + 1, -1, dtype=np.int64)
    position[rows] = np.arange(rows.size)
    restricted = []
    for train, val in splits:
        kept_train, kept_val = position[train], position[val]
        kept_train, kept_val = kept_train[kept_train >= 0], kept_val[kept_val >= 0]
        if kept_train.size and kept_val.size:
            restricted.append((kept_train, kept_val))
    return restricted


def _fresh_rule(rule: str | FusionRule) -> FusionRule:
    """An unfitted rule for one split: no split's fit may leak into another's."""
    return make_fusion(rule) if isinstance(rule, str) else clone(rule)


def cross_fitted_proba(rule: str | FusionRule, oof: Sequence[np.ndarray], y: np.ndarray,
                       splits: Sequence[Split]) -> np.ndarray:
    """Inner out-of-fold probabilities of the fused system, by a rule that never saw the
    labels of the rows it combines.

    For each inner split ``k``, a fresh rule is fitted on the branches' out-of-fold
    probabilities of the rows outside validation set ``k`` (with the other splits restricted
    to those rows, :func:`restrict_splits`) and combines split ``k``'s validation rows. This is
    how a late fusion is scored on training rows without letting it grade itself; for
    ``mean``, which learns nothing, it is the plain average.

    Parameters
    ----------
    rule : str or FusionRule
        A name of :data:`~featurekit.fusion.rules.FUSION_RULES`, or an unfitted rule (cloned
        for every split, so it must be a scikit-learn style object).
    oof : sequence of np.ndarray, each (n_rows, n_classes)
        Each branch's inner out-of-fold probabilities (e.g. the seed mean of
        :attr:`~featurekit.fusion.branches.FittedBranch.oof`).
    y : np.ndarray of int, shape (n_rows,), or of {0, 1}, shape (n_rows, n_classes)
        Class indices of the rows, or their label indicators (multi-label).
    splits : sequence of (train, validation) index pairs
        The inner splits that produced ``oof``.

    Returns
    -------
    np.ndarray, shape (n_rows, n_classes)
        Fused probabilities; rows in no validation set are NaN.

    Notes
    -----
    With two splits, the rows outside one validation set are the other one, and no inner
    split of them remains for the rule's own choices (the stacker's ``C``, the guards); the
    rule then gets a stratified split of those rows (:func:`featurekit.learn.splits.inner_splits`
    without groups).
    """
    if not oof:
        raise ConfigError("cross_fitted_proba needs the probabilities of at least one branch")
    oof = [np.asarray(proba, dtype=np.float64) for proba in oof]
    y = np.asarray(y)
    if len({proba.shape for proba in oof}) != 1 or oof[0].ndim != 2:
        raise ValueError(f"branch probabilities must all be (n_rows, n_classes), got shapes "
                         f"{[proba.shape for proba in oof]}")
    if y.shape[:1] != (oof[0].shape[0],) or y.ndim not in (1, 2):
        raise ValueError(f"y has shape {y.shape}, expected ({oof[0].shape[0]},) or "
                         f"({oof[0].shape[0]}, n_classes)")
    fused = np.full(oof[0].shape, np.nan)
    for train, val in splits:
        inner = restrict_splits(splits, train) or inner_splits(stratification_labels(y[train]))
        fitted = _fresh_rule(rule).fit([proba[train] for proba in oof], y[train], inner)
        fused[val] = fitted.combine([proba[val] for proba in oof])
    return fused
