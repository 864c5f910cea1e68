"""Early and late fusion of feature branches as scikit-learn classifiers.

*Early fusion* (:class:`EarlyFusionClassifier`) concatenates the columns of several branches
and trains one head on them. *Late fusion* (:class:`LateFusionClassifier`) trains one head per
branch and combines their class probabilities with a rule of
:data:`featurekit.fusion.FUSION_RULES`, fitted on the branches' inner out-of-fold
probabilities.

Inner out-of-fold probabilities come from :func:`featurekit.learn.splits.inner_splits` over the
training rows only -- whole folds when ``groups`` (the training clips' folds) are given, a
stratified k-fold otherwise -- so no second-level learner ever sees a prediction made on a
clip its head was trained on, and no test clip reaches any ``fit``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from featurekit.errors import ConfigError
from featurekit.fusion.branches import Head, Selector, fit_branch, predict_members, resolve_columns
from featurekit.fusion.rules import make_fusion
from featurekit.learn.splits import Split, inner_splits


class _BranchClassifier(ClassifierMixin, BaseEstimator):
    """Input handling and branch fitting shared by the fusion estimators.

    Subclasses store ``branches``, ``head``, ``n_seeds``, ``inner_splits``, ``tune`` and
    ``random_state``.
    """

    def _fit_input(self, X: Any, y: Any,
                   groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Validated float array, class indices and groups; sets ``classes_``,
        ``n_features_in_``, ``feature_names_in_`` (DataFrame input with string column names) and
        ``columns_``."""
        columns = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
        # validate_data: sklearn's checks and messages (2-D, no sparse, no inf, y given and
        # one per row), n_features_in_ and feature_names_in_ (string column names); NaN
        # passes to the heads, which impute it.
        array, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (array.shape[0],):
                raise ValueError(f"groups must have one entry per row ({array.shape[0]}), "
                                 f"got shape {groups.shape}")
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if not self.branches:
            raise ConfigError("no branch given")
        self.columns_ = {name: resolve_columns(selector, columns, array.shape[1])
                         for name, selector in self.branches.items()}
        return array, encoded, groups

    def _predict_input(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "classes_")
        if isinstance(X, pd.DataFrame) and hasattr(self, "feature_names_in_"):
            X = X[list(self.feature_names_in_)]  # the training columns, in training order
        return validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                             reset=False)

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _seeds(self) -> list[int]:
        return [self._seed() + i for i in range(self.n_seeds)]

    def _head_of(self, branch: str) -> Head:
        if isinstance(self.head, Mapping):
            if branch not in self.head:
                raise ConfigError(f"no head given for branch {branch!r}")
            return self.head[branch]
        return self.head

    def _inner_splits(self, encoded: np.ndarray, groups: np.ndarray | None) -> list[Split]:
        return inner_splits(encoded, groups, n_splits=self.inner_splits,
                            random_state=self._seed())

    def _fit_branches(self, names: Sequence[str], array: np.ndarray, encoded: np.ndarray,
                      groups: np.ndarray | None, splits: Sequence[Split] | None
                      ) -> tuple[dict[str, list[Any]], list[np.ndarray]]:
        """Members of each named branch on its columns and, with ``splits``, the seed mean of
        its out-of-fold probabilities (one (n_rows, n_classes) array per branch)."""
        members, oof = {}, []
        for name in names:
            fitted = fit_branch(self._head_of(name), array[:, self.columns_[name]], encoded,
                                groups, n_classes=self.classes_.size, seeds=self._seeds(),
                                splits=splits, tune=self.tune, tune_splits=self.inner_splits,
                                tune_random_state=self._seed())
            members[name] = fitted.members
            if splits is not None:
                oof.append(fitted.oof.mean(axis=0))
        return members, oof

    def _branch_probas(self, names: Sequence[str], array: np.ndarray) -> list[np.ndarray]:
        """Seed-mean probabilities of each named branch's members on ``array``'s rows."""
        return [predict_members(self.members_[name], array[:, self.columns_[name]],
                                self.classes_.size).mean(axis=0) for name in names]

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each row."""
        proba = self.predict_proba(X)  # first: an unfitted estimator raises NotFittedError
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # passed to the heads, which impute it
        return tags


class LateFusionClassifier(_BranchClassifier):
    """One head per branch, fused by a rule learned on inner out-of-fold probabilities.

    Parameters
    ----------
    branches : mapping of str to selector
        Branch name -> its columns: a prefix such as ``"pitch."`` (DataFrame input), a list of
        column names, positions or a boolean mask.
    head : str, HeadSpec, estimator, or mapping of branch name to one of those
        The head of every branch (``"xgb"``, ``"mlp"``, ``"logreg"``) or one per branch.
    fusion : {"mean", "weighted", "stacking", "calibrated"}
        The late-fusion rule (see :mod:`featurekit.fusion.rules`).
    n_seeds : int
        Members per branch (seeds ``random_state + i``); their probabilities are averaged.
    inner_splits : int
        Inner cross-validation splits for the out-of-fold probabilities (and the search).
    tune : bool
        Hyper-parameter search of each branch's head inside the training rows.
    random_state : int, optional
        Base seed.

    Attributes
    ----------
    classes_ : np.ndarray
    n_features_in_ : int
    columns_ : dict of str to np.ndarray
        Column positions of each branch.
    members_ : dict of str to list
        Fitted heads of each branch.
    fusion_ : FusionRule
        The fitted rule; ``fusion_.choice_`` says what it chose.

    Notes
    -----
    ``fit(X, y, groups=folds)`` makes the inner splits keep the training clips' folds apart;
    with :func:`~sklearn.model_selection.cross_val_score` pass
    ``params={"groups": folds}`` so each training split receives its own rows' folds.
    """

    def __init__(self, branches: Mapping[str, Selector], head: Head | Mapping[str, Head] = "mlp",
                 fusion: str = "stacking", *, n_seeds: int = 1, inner_splits: int = 3,
                 tune: bool = False, random_state: int | None = None) -> None:
        self.branches = branches
        self.head = head
        self.fusion = fusion
        self.n_seeds = n_seeds
        self.inner_splits = inner_splits
        self.tune = tune
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> LateFusionClassifier:
        """Fit every branch's members and out-of-fold twins, then the fusion rule."""
        rule = make_fusion(self.fusion)
        array, encoded, groups = self._fit_input(X, y, groups)
        splits = self._inner_splits(encoded, groups)
        self.members_, oof = self._fit_branches(list(self.columns_), array, encoded, groups,
                                                splits)
        self.fusion_ = rule.fit(oof, encoded, splits)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Fused class probabilities, shape (n_samples, n_classes)."""
        array = self._predict_input(X)
        return self.fusion_.combine(self._branch_probas(list(self.columns_), array))


class EarlyFusionClassifier(_BranchClassifier):
    """One head on the concatenated columns of several branches.

    Parameters
    ----------
    branches : mapping of str to selector
        As in :class:`LateFusionClassifier`; columns are concatenated in branch order.
    head : str, HeadSpec or estimator
    n_seeds, inner_splits, tune, random_state :
        As in :class:`LateFusionClassifier` (``inner_splits`` only serves the search).

    Attributes
    ----------
    classes_ : np.ndarray
    n_features_in_ : int
    positions_ : np.ndarray
        The concatenated columns' positions.
    members_ : list
        Fitted heads, one per seed (one for a deterministic head).
    """

    def __init__(self, branches: Mapping[str, Selector], head: Head = "mlp", *,
                 n_seeds: int = 1, inner_splits: int = 3, tune: bool = False,
                 random_state: int | None = None) -> None:
        self.branches = branches
        self.head = head
        self.n_seeds = n_seeds
        self.inner_splits = inner_splits
        self.tune = tune
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> EarlyFusionClassifier:
        """Fit the head's members on the concatenated branch columns."""
        array, encoded, groups = self._fit_input(X, y, groups)
        self.positions_ = np.concatenate(list(self.columns_.values()))
        fitted = fit_branch(self.head, array[:, self.positions_], encoded, groups,
                            n_classes=self.classes_.size, seeds=self._seeds(), tune=self.tune,
                            tune_splits=self.inner_splits, tune_random_state=self._seed())
        self.members_ = fitted.members
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes)."""
        array = self._predict_input(X)
        return predict_members(self.members_, array[:, self.positions_],
                               self.classes_.size).mean(axis=0)


__all__ = ["EarlyFusionClassifier", "LateFusionClassifier"]
