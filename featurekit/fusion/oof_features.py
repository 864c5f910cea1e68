"""Out-of-fold log-probabilities of other branches as extra features of one branch.

The ``oof_features`` fusion lets one *target* branch's head (typically a pretrained
embedding's) read, beside its own columns, the other branches' class log-probabilities, so it
can learn where their evidence helps. On the training rows those probabilities must be
out-of-fold -- from twins that never saw the row -- or the head learns to trust predictions
that are only good because the other heads memorised these rows; on new rows they come from
the other branches' members fitted on all training rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from featurekit.errors import ConfigError
from featurekit.fusion.branches import Head, Selector, fit_branch, predict_members
from featurekit.fusion.estimators import _BranchClassifier

#: Probabilities are clipped to this before their logarithm becomes a feature, so a class a
#: head rules out reads as a large negative value instead of -inf.
MIN_PROBABILITY = 1e-6


def log_probability_features(features: np.ndarray, probas: Sequence[np.ndarray]) -> np.ndarray:
    """``features`` with the log of each probability array appended as columns.

    Parameters
    ----------
    features : np.ndarray, shape (n_rows, n_features)
    probas : sequence of np.ndarray, each (n_rows, n_classes)
        Class probabilities of the same rows, appended in order.

    Returns
    -------
    np.ndarray of float32, shape (n_rows, n_features + len(probas) * n_classes)
        ``features``, then ``log(clip(p, 1e-6, 1))`` of each ``p`` in ``probas``.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D, got shape {features.shape}")
    logs = [np.log(np.clip(np.asarray(proba, dtype=np.float64), MIN_PROBABILITY, 1.0))
            for proba in probas]
    for log in logs:
        if log.ndim != 2 or log.shape[0] != features.shape[0]:
            raise ValueError(f"probabilities must be ({features.shape[0]}, n_classes), got "
                             f"shape {log.shape}")
    return np.hstack([features, *logs]).astype(np.float32)


class OOFFeaturesClassifier(_BranchClassifier):
    """A target branch's head on its own columns plus the other branches' log-probabilities.

    ``fit`` draws inner splits of the training rows (:func:`featurekit.learn.splits.inner_splits`),
    fits every branch other than ``target`` with its out-of-fold twins
    (:func:`featurekit.fusion.fit_branch`), appends their seed-mean out-of-fold probabilities
    to the target's columns (:func:`log_probability_features`) and fits the target's head on
    the result. ``predict_proba`` appends the other branches' members' probabilities instead.

    Parameters
    ----------
    branches : mapping of str to selector
        Branch name -> its columns (as in :class:`~featurekit.fusion.LateFusionClassifier`);
        at least two branches, one of them ``target``.
    target : str
        The branch whose head reads the others' log-probabilities (appended in branch order).
    head : str, HeadSpec, estimator, or mapping of branch name to one of those
        The head of every branch, or one per branch.
    n_seeds : int
        Members per branch (seeds ``random_state + i``); their probabilities are averaged.
    inner_splits : int
        Inner cross-validation splits for the out-of-fold probabilities (and the search).
    tune : bool
        Hyper-parameter search of each head inside the training rows (the target's on its
        augmented columns).
    random_state : int, optional
        Base seed.

    Attributes
    ----------
    classes_ : np.ndarray
    n_features_in_ : int
    columns_ : dict of str to np.ndarray
        Column positions of each branch.
    sources_ : list of str
        The branches whose log-probabilities the target reads, in column order.
    members_ : dict of str to list
        Fitted heads of each branch, the target's fitted on its augmented columns.

    Notes
    -----
    ``fit(X, y, groups=folds)`` makes the inner splits keep the training clips' folds apart;
    with :func:`~sklearn.model_selection.cross_val_score` pass ``params={"groups": folds}``.
    """

    def __init__(self, branches: Mapping[str, Selector], target: str,
                 head: Head | Mapping[str, Head] = "logreg", *, n_seeds: int = 1,
                 inner_splits: int = 3, tune: bool = False,
                 random_state: int | None = None) -> None:
        self.branches = branches
        self.target = target
        self.head = head
        self.n_seeds = n_seeds
        self.inner_splits = inner_splits
        self.tune = tune
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> OOFFeaturesClassifier:
        """Fit the other branches with out-of-fold twins, then the target on the
        augmented columns."""
        if self.target not in self.branches:
            raise ConfigError(f"target branch {self.target!r} is not among the branches "
                              f"({', '.join(map(str, self.branches))})")
        if len(self.branches) < 2:
            raise ConfigError("oof_features needs at least one branch besides the target")
        array, encoded, groups = self._fit_input(X, y, groups)
        self.sources_ = [name for name in self.columns_ if name != self.target]
        splits = self._inner_splits(encoded, groups)
        self.members_, oof = self._fit_branches(self.sources_, array, encoded, groups, splits)
        features = log_probability_features(array[:, self.columns_[self.target]], oof)
        self.members_[self.target] = fit_branch(
            self._head_of(self.target), features, encoded, groups,
            n_classes=self.classes_.size, seeds=self._seeds(), tune=self.tune,
            tune_splits=self.inner_splits, tune_random_state=self._seed()).members
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the target's members, shape (n_samples, n_classes)."""
        array = self._predict_input(X)
        features = log_probability_features(array[:, self.columns_[self.target]],
                                            self._branch_probas(self.sources_, array))
        return predict_members(self.members_[self.target], features,
                               self.classes_.size).mean(axis=0)


__all__ = ["MIN_PROBABILITY", "OOFFeaturesClassifier", "log_probability_features"]
