"""Gradient-boosted trees (XGBoost ``hist``) as a featurekit head.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xgboost import XGBClassifier

from featurekit.learn.heads.base import BaseHead, check_stopping_metric, stopping_point
from featurekit.learn.splits import AUTO_VALIDATION, early_stopping_split


class XGBHead(BaseHead):
    """Gradient-boosted trees (XGBoost ``hist``): a fixed number of rounds, or one chosen
    inside the training rows.

    By default (``early_stopping=False``) the model is boosted on all training rows for
    ``n_estimators`` rounds. With ``early_stopping``, when the training rows allow a validation
    split (:func:`validation_split`; whole groups
    when ``groups`` are given and there are enough of them, stratified clips otherwise), a
    first model is boosted on the remaining rows until the validation metric has not improved
    for ``early_stopping_rounds`` rounds, and the round with the best validation score is
    taken. With ``refit`` the held-out rows serve only this choice: the final model is boosted
    on all training rows for that many rounds. Without a validation split the final model runs
    ``min(n_estimators, 100)`` rounds on all rows.

    Parameters
    ----------
    n_estimators : int
        Maximum number of boosting rounds.
    learning_rate, max_depth, subsample, colsample_bytree, min_child_weight, reg_lambda,
    max_bin :
        Passed to :class:`xgboost.XGBClassifier`.
    early_stopping_rounds : int
        Patience: stop the first model after this many rounds without a better validation
        score.
    stopping_metric : {"logloss", "error"}
        Validation score that picks the round: log-loss, or classification error with ties
        broken by log-loss.
    validation_fraction : float
        Share of the training rows held out to choose the number of rounds.
    validation_kind : {"auto", "groups", "clips", "none"}
        What the validation split holds out: ``"auto"`` the first that the rows allow (as
        above); a kind given is imposed where at all possible
        (:func:`~featurekit.learn.splits.early_stopping_split`), e.g. a benchmark's inner
        out-of-fold twins take their member's ``validation_kind_``.
    refit : bool
        Refit on all training rows for the chosen number of rounds (``True``) or keep the
        first model, truncated at the chosen round (``False``).
    early_stopping : bool
        Choose the number of rounds on held-out rows as above (``True``), or boost all
        training rows for exactly ``n_estimators`` rounds (``False``: no validation split).
    n_jobs : int, optional
        Threads of XGBoost (default: its own choice).
    random_state : int, optional
        Seed of row/column subsampling and of the validation split.

    Attributes
    ----------
    classes_ : np.ndarray
    model_ : xgboost.XGBClassifier
        The final model.
    n_rounds_ : int
        Boosting rounds of the final model.
    validation_rows_ : np.ndarray or None
        Positions (into the training rows) of the rows held out to choose the rounds; ``None``
        when no validation split was possible.
    validation_curve_ : dict of str to np.ndarray
        ``"logloss"`` and ``"error"`` of the first model on the held-out rows after each round
        (empty without a validation split).
    validation_kind_ : {"groups", "clips", "none"}
        What the validation split held out (``"none"``: no validation split, also without
        ``early_stopping``).
    """

    def __init__(self, *, n_estimators: int = 100, learning_rate: float = 0.2,
                 max_depth: int = 4, subsample: float = 0.8, colsample_bytree: float = 0.1,
                 min_child_weight: float = 1.0, reg_lambda: float = 1.0, max_bin: int = 16,
                 early_stopping_rounds: int = 10, stopping_metric: str = "logloss",
                 validation_fraction: float = 0.15,
                 validation_kind: str = AUTO_VALIDATION, refit: bool = True,
                 early_stopping: bool = False, n_jobs: int | None = None,
                 random_state: int | None = None) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.stopping_metric = stopping_metric
        self.validation_fraction = validation_fraction
        self.validation_kind = validation_kind
        self.refit = refit
        self.early_stopping = early_stopping
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _model(self, n_rounds: int, seed: int, **extra: Any) -> XGBClassifier:
        return XGBClassifier(tree_method="hist", n_estimators=n_rounds,
                             learning_rate=self.learning_rate, max_depth=self.max_depth,
                             subsample=self.subsample, colsample_bytree=self.colsample_bytree,
                             min_child_weight=self.min_child_weight, reg_lambda=self.reg_lambda,
                             max_bin=self.max_bin, n_jobs=self.n_jobs, random_state=seed,
                             **extra)

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> XGBHead:
        """Fit on training rows; ``groups`` (e.g. source recordings) are never split between
        the rows that fit the first model and the rows that choose its number of rounds."""
        check_stopping_metric(self.stopping_metric)
        X, encoded = self._validate_fit_input(X, y)
        X = X.astype(np.float32)  # XGBoost's own precision; saves it a conversion
        seed = 0 if self.random_state is None else int(self.random_state)
        split, self.validation_kind_ = early_stopping_split(
            encoded, groups, fraction=self.validation_fraction, random_state=seed,
            kind=self.validation_kind if self.early_stopping else "none")
        self.validation_curve_: dict[str, np.ndarray] = {}
        if split is None:
            self.validation_rows_ = None
            self.n_rounds_ = (self.n_estimators if not self.early_stopping
                              else min(self.n_estimators, 100))
            self.model_ = self._model(self.n_rounds_, seed).fit(X, encoded)
            return self
        train, val = split
        self.validation_rows_ = np.asarray(val)
        # Multi-label outputs are per-class logistic: their metrics are the binary ones.
        binary = self.classes_.size == 2 or self.multilabel_
        metrics = ["logloss", "error"] if binary else ["mlogloss", "merror"]
        # XGBoost stops on the last metric listed.
        order = metrics if self.stopping_metric == "error" else metrics[::-1]
        first = self._model(self.n_estimators, seed, eval_metric=order,
                            early_stopping_rounds=self.early_stopping_rounds)
        first.fit(X[train], encoded[train], eval_set=[(X[val], encoded[val])], verbose=False)
        history = first.evals_result()["validation_0"]
        self.validation_curve_ = {"logloss": np.asarray(history[metrics[0]]),
                                  "error": np.asarray(history[metrics[1]])}
        self.n_rounds_ = 1 + stopping_point(self.validation_curve_["logloss"],
                                             self.validation_curve_["error"],
                                             self.stopping_metric)
        if self.refit:
            self.model_ = self._model(self.n_rounds_, seed).fit(X, encoded)
        else:
            self.model_ = first
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        X = self._validate_predict_input(X).astype(np.float32)
        if self.refit or self.validation_rows_ is None:
            return self.model_.predict_proba(X)
        return self.model_.predict_proba(X, iteration_range=(0, self.n_rounds_))
