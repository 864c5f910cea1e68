"""Classifier heads that sit on feature-store columns: XGBoost, an MLP and logistic regression.

Every head is a scikit-learn classifier whose ``fit`` accepts an optional ``groups`` array (one
id per training clip; a benchmark passes the clip's source recording). Anything a head learns
from data -- imputation medians, standardisation, the early-stopping split, hyper-parameters --
is taken from the rows given to ``fit`` only, so a head called on the training folds never sees
a test clip.

Heads that stop early hold out validation rows drawn by :func:`validation_split`: whole groups
when ``groups`` are given (so clips of one recording are never on both sides), a stratified
share of the clips otherwise. Defaults (chosen on ESC-10 and on single UrbanSound8K training
folds split by recording, never on a reported test fold; the measurements and the commands
that reproduce them are in ``benchmarks/notes/heads.md``):

* ``xgb``: histogram trees (16 bins), depth 4, 10 % of the columns per tree, learning rate
  0.2, 100 rounds on all training rows, no validation split. A multi-class round grows one
  tree per class, so rounds dominate the cost.
* ``mlp``: one hidden layer of 64 ReLU units on standardised inputs, Adam (step 3e-3,
  batches of about 256 clips), float32. A first network stops 30 epochs after its best
  validation error (ties broken by log-loss) on held-out groups; the final network is trained
  on all training rows for that many epochs.
* ``logreg``: L2 logistic regression (``C=0.1``) on standardised inputs, the linear reference;
  it has no early stopping and ignores ``groups``.

Every head also fits multi-label targets: given a label-indicator matrix ``y`` of shape
(n_samples, n_classes) it predicts independent per-class probabilities (XGBoost: one logistic
output per class; the MLP: sigmoid outputs with binary cross-entropy; logistic regression:
one-vs-rest), its early-stopping split stratified by each row's rarest label
(:func:`stratification_labels`).

The optional hyper-parameter search (:func:`tune_head`) tries a grid of at most four
candidates per head (``HeadSpec.param_grid``) by inner cross-validation over the training
rows' own folds (:func:`inner_splits`) and keeps the most accurate.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    ParameterGrid,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from xgboost import XGBClassifier

from featurekit.errors import ConfigError
from featurekit.selection import select_by_inner_cv

Split = tuple[np.ndarray, np.ndarray]


# --------------------------------------------------------------------------------------------
# Splits drawn from training rows only
# --------------------------------------------------------------------------------------------

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


def check_label_matrix(y: np.ndarray, *, who: str) -> np.ndarray:
    """A label-indicator matrix as int64 0/1, refused unless every entry is 0 or 1."""
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[1] < 2:
        raise ValueError(f"{who}: a multi-label target must be (n_samples, n_classes >= 2), "
                         f"got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{who}: a multi-label target must hold only 0 and 1")
    return y.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Heads
# --------------------------------------------------------------------------------------------

class _Head(ClassifierMixin, BaseEstimator):
    """Shared plumbing: input validation, label encoding, probability and label prediction.

    A 2-D ``y`` is a label-indicator matrix (multi-label): ``classes_`` is then the column
    positions and ``multilabel_`` is True.
    """

    def _validate_fit_input(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        if np.ndim(y) == 2:
            X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan",
                                 multi_output=True)
            encoded = check_label_matrix(y, who=type(self).__name__)
            self.classes_, self.multilabel_ = np.arange(encoded.shape[1]), True
            return X, encoded
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        self.multilabel_ = False
        if self.classes_.size < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y, "
                             f"got {self.classes_.size}")
        return X, encoded

    def _validate_predict_input(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "classes_")
        return validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                             reset=False)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each row; multi-label: the indicator of probabilities of at
        least 0.5."""
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _standardising_steps(clip: float) -> list[tuple[str, Any]]:
    # Median imputation keeps all-NaN columns (as zeros) so column positions never shift;
    # clipping the standardised values stops heavy-tailed descriptors (kurtosis, flux peaks)
    # from dominating a linear layer.
    return [("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("clip", FunctionTransformer(np.clip, kw_args={"a_min": -clip, "a_max": clip}))]


def _stopping_point(losses: Sequence[float], errors: Sequence[float], metric: str) -> int:
    """Position of the best entry of a validation curve (the first one on ties).

    ``"logloss"`` ranks by log-loss; ``"error"`` ranks by classification error and breaks ties
    by log-loss, so a plateau of equal error keeps improving in calibration.
    """
    if metric == "logloss":
        return int(np.argmin(losses))
    order = np.lexsort((np.asarray(losses, dtype=np.float64),
                        np.asarray(errors, dtype=np.float64)))
    return int(order[0])


def _check_stopping_metric(metric: str) -> None:
    if metric not in ("logloss", "error"):
        raise ConfigError(f"stopping_metric must be 'logloss' or 'error', got {metric!r}")


def _softmax_loss_and_error(proba: np.ndarray, encoded: np.ndarray) -> tuple[float, float]:
    picked = np.clip(proba[np.arange(encoded.size), encoded], 1e-15, None)
    return (float(-np.mean(np.log(picked))),
            float(np.mean(np.argmax(proba, axis=1) != encoded)))


class XGBHead(_Head):
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
    """

    def __init__(self, *, n_estimators: int = 100, learning_rate: float = 0.2,
                 max_depth: int = 4, subsample: float = 0.8, colsample_bytree: float = 0.1,
                 min_child_weight: float = 1.0, reg_lambda: float = 1.0, max_bin: int = 16,
                 early_stopping_rounds: int = 10, stopping_metric: str = "logloss",
                 validation_fraction: float = 0.15, refit: bool = True,
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
        _check_stopping_metric(self.stopping_metric)
        X, encoded = self._validate_fit_input(X, y)
        X = X.astype(np.float32)  # XGBoost's own precision; saves it a conversion
        seed = 0 if self.random_state is None else int(self.random_state)
        split = (validation_split(stratification_labels(encoded),
                                  None if groups is None else np.asarray(groups),
                                  fraction=self.validation_fraction, random_state=seed)
                 if self.early_stopping else None)
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
        self.n_rounds_ = 1 + _stopping_point(self.validation_curve_["logloss"],
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


class MLPHead(_Head):
    """A small multi-layer perceptron (ReLU, softmax, Adam, float32) on median-imputed,
    standardised, clipped inputs, with its number of epochs chosen inside the training rows.

    When the training rows allow a validation split (:func:`validation_split`; whole groups
    when ``groups`` are given and there are enough of them, stratified clips otherwise), a
    first network is trained on the remaining rows, scored on the held-out rows after every
    epoch, and stopped after ``n_iter_no_change`` epochs without a better score; the epoch with
    the best score is taken. With ``refit`` the held-out rows serve only this choice: the final
    network starts again from the same initialisation and is trained on all training rows for
    that many epochs. Without a validation split (or with ``early_stopping=False``) the network
    trains on all rows until the training loss has not improved by ``tol`` for
    ``n_iter_no_change`` epochs, or ``max_iter`` epochs.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Units per hidden layer.
    alpha : float
        L2 penalty on the weights (scaled like scikit-learn's ``MLPClassifier``).
    learning_rate_init : float
        Adam step size.
    batch_size : int
        Mini-batch size (capped at the number of rows).
    max_iter : int
        Maximum epochs.
    early_stopping : bool or "auto"
        Choose the number of epochs on a validation split. ``True`` and ``"auto"`` both fall
        back to training-loss convergence when the rows are too few for a validation set that
        holds every class.
    validation_fraction : float
        Share of the training rows held out to choose the number of epochs.
    n_iter_no_change : int
        Patience in epochs.
    stopping_metric : {"logloss", "error"}
        Validation score that picks the epoch: log-loss, or classification error with ties
        broken by log-loss.
    refit : bool
        Retrain on all training rows for the chosen number of epochs (``True``) or keep the
        first network's weights from the chosen epoch (``False``).
    tol : float
        Minimum training-loss improvement when no validation split is used.
    clip : float
        Standardised inputs are clipped to ``[-clip, clip]``.
    random_state : int, optional
        Seed of weight initialisation, batching and the validation split.

    Attributes
    ----------
    classes_ : np.ndarray
    preprocess_ : sklearn.pipeline.Pipeline
        Imputation, standardisation and clipping fitted on all training rows.
    coefs_, intercepts_ : list of np.ndarray
        Weights and biases of the final network (float32).
    n_iter_ : int
        Epochs of the final network.
    validation_rows_ : np.ndarray or None
        Positions (into the training rows) of the rows held out to choose the epochs; ``None``
        without a validation split.
    validation_curve_ : dict of str to np.ndarray
        ``"logloss"`` and ``"error"`` on the held-out rows after each epoch of the first
        network (empty without a validation split).
    """

    def __init__(self, *, hidden_layer_sizes: tuple[int, ...] = (64,), alpha: float = 1e-3,
                 learning_rate_init: float = 3e-3, batch_size: int = 256, max_iter: int = 200,
                 early_stopping: bool | str = "auto", validation_fraction: float = 0.1,
                 n_iter_no_change: int = 30, stopping_metric: str = "error",
                 refit: bool = True, tol: float = 1e-4, clip: float = 5.0,
                 random_state: int | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.stopping_metric = stopping_metric
        self.refit = refit
        self.tol = tol
        self.clip = clip
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> MLPHead:
        """Fit on training rows; ``groups`` (e.g. source recordings) are never split between
        the rows that train the first network and the rows that choose its epochs."""
        _check_stopping_metric(self.stopping_metric)
        X, encoded = self._validate_fit_input(X, y)
        seed = 0 if self.random_state is None else int(self.random_state)
        self.preprocess_ = Pipeline(_standardising_steps(self.clip))
        Z = self.preprocess_.fit_transform(X).astype(np.float32)
        split = (validation_split(stratification_labels(encoded),
                                  None if groups is None else np.asarray(groups),
                                  fraction=self.validation_fraction, random_state=seed)
                 if self.early_stopping in ("auto", True) else None)
        sizes = [Z.shape[1], *self.hidden_layer_sizes, self.classes_.size]
        self.validation_curve_: dict[str, np.ndarray] = {}
        if split is None:
            self.validation_rows_ = None
            network = _Network(sizes, self, seed)
            self.n_iter_ = network.train_to_convergence(Z, encoded)
        else:
            train, val = split
            self.validation_rows_ = np.asarray(val)
            network = _Network(sizes, self, seed)
            losses, errors, best_weights = network.train_with_validation(
                Z[train], encoded[train], Z[val], encoded[val])
            self.validation_curve_ = {"logloss": np.asarray(losses),
                                      "error": np.asarray(errors)}
            self.n_iter_ = 1 + _stopping_point(losses, errors, self.stopping_metric)
            if self.refit:
                network = _Network(sizes, self, seed)
                network.train_epochs(Z, encoded, self.n_iter_)
            else:
                network.weights, network.biases = best_weights[self.n_iter_ - 1]
        self.coefs_, self.intercepts_ = network.weights, network.biases
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        check_is_fitted(self, "coefs_")
        Z = self.preprocess_.transform(self._validate_predict_input(X)).astype(np.float32)
        return _forward(self.coefs_, self.intercepts_, Z,
                        sigmoid=self.multilabel_)[-1].astype(np.float64)


def _forward(weights: list[np.ndarray], biases: list[np.ndarray], Z: np.ndarray, *,
             sigmoid: bool = False) -> list[np.ndarray]:
    """Activations of every layer, the input first and the output (softmax; independent
    sigmoids for multi-label targets) last."""
    activations = [Z]
    for layer, (W, b) in enumerate(zip(weights, biases, strict=True)):
        out = activations[-1] @ W + b
        if layer < len(weights) - 1:
            np.maximum(out, 0.0, out=out)
        elif sigmoid:
            out = 0.5 * (1.0 + np.tanh(0.5 * out))  # overflow-free logistic
        else:
            out -= out.max(axis=1, keepdims=True)
            np.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
        activations.append(out)
    return activations


def _sigmoid_loss_and_error(proba: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Mean binary cross-entropy per label and Hamming error at 0.5 of multi-label outputs."""
    clipped = np.clip(proba, 1e-7, 1.0 - 1e-7)
    loss = -np.mean(target * np.log(clipped) + (1 - target) * np.log(1.0 - clipped))
    return float(loss), float(np.mean((proba >= 0.5) != (target > 0)))


class _Network:
    """Weights and Adam state of one :class:`MLPHead` training run."""

    beta1, beta2, epsilon = 0.9, 0.999, 1e-8

    def __init__(self, sizes: list[int], head: MLPHead, seed: int) -> None:
        self.head = head
        self.rng = np.random.default_rng(seed)
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform, as scikit-learn
            self.weights.append(self.rng.uniform(-bound, bound, (fan_in, fan_out))
                                .astype(np.float32))
            self.biases.append(self.rng.uniform(-bound, bound, fan_out).astype(np.float32))
        params = [*self.weights, *self.biases]
        self.first = [np.zeros_like(p) for p in params]
        self.second = [np.zeros_like(p) for p in params]
        self.steps = 0

    def epoch(self, Z: np.ndarray, encoded: np.ndarray) -> float:
        """One pass over shuffled mini-batches of near-equal size; returns the mean training
        loss (per clip; multi-label: binary cross-entropy summed over classes)."""
        n = Z.shape[0]
        n_batches = max(1, round(n / max(1, self.head.batch_size)))
        order = self.rng.permutation(n)
        sigmoid = encoded.ndim == 2
        target = (encoded.astype(np.float32) if sigmoid
                  else np.eye(self.weights[-1].shape[1], dtype=np.float32)[encoded])
        total = 0.0
        for rows in np.array_split(order, n_batches):
            acts = _forward(self.weights, self.biases, Z[rows], sigmoid=sigmoid)
            delta = acts[-1]
            if sigmoid:
                total += rows.size * delta.shape[1] * _sigmoid_loss_and_error(
                    delta, target[rows])[0]
            else:
                total -= float(np.sum(np.log(np.clip(
                    delta[np.arange(rows.size), encoded[rows]], 1e-7, None))))
            # Softmax with cross-entropy and sigmoids with binary cross-entropy share this
            # gradient at the output logits.
            delta -= target[rows]
            delta /= rows.size
            grads: list[np.ndarray] = [np.empty(0)] * (2 * len(self.weights))
            for layer in range(len(self.weights) - 1, -1, -1):
                grad = acts[layer].T @ delta
                grad += (self.head.alpha / rows.size) * self.weights[layer]
                grads[layer] = grad
                grads[len(self.weights) + layer] = delta.sum(axis=0)
                if layer:
                    delta = delta @ self.weights[layer].T
                    delta *= acts[layer] > 0
            self._adam(grads)
        return total / n

    def _adam(self, grads: list[np.ndarray]) -> None:
        self.steps += 1
        rate = (self.head.learning_rate_init * math.sqrt(1 - self.beta2 ** self.steps)
                / (1 - self.beta1 ** self.steps))
        for param, grad, first, second in zip([*self.weights, *self.biases], grads,
                                              self.first, self.second, strict=True):
            first *= self.beta1
            first += (1 - self.beta1) * grad
            second *= self.beta2
            np.square(grad, out=grad)
            grad *= 1 - self.beta2
            second += grad
            np.sqrt(second, out=grad)
            grad += self.epsilon
            np.divide(first, grad, out=grad)
            grad *= rate
            param -= grad

    def train_epochs(self, Z: np.ndarray, encoded: np.ndarray, n_epochs: int) -> None:
        for _ in range(n_epochs):
            self.epoch(Z, encoded)

    def train_to_convergence(self, Z: np.ndarray, encoded: np.ndarray) -> int:
        best, stale = np.inf, 0
        for epoch in range(1, self.head.max_iter + 1):
            loss = self.epoch(Z, encoded)
            stale = 0 if loss < best - self.head.tol else stale + 1
            best = min(best, loss)
            if stale >= self.head.n_iter_no_change:
                return epoch
        return self.head.max_iter

    def train_with_validation(self, Z: np.ndarray, encoded: np.ndarray, Z_val: np.ndarray,
                              encoded_val: np.ndarray,
                              ) -> tuple[list[float], list[float], list[Any]]:
        losses: list[float] = []
        errors: list[float] = []
        snapshots: list[Any] = []
        keep = not self.head.refit
        sigmoid = encoded.ndim == 2
        for _ in range(self.head.max_iter):
            self.epoch(Z, encoded)
            proba = _forward(self.weights, self.biases, Z_val, sigmoid=sigmoid)[-1]
            loss, error = (_sigmoid_loss_and_error(proba, encoded_val) if sigmoid
                           else _softmax_loss_and_error(proba, encoded_val))
            losses.append(loss)
            errors.append(error)
            best = _stopping_point(losses, errors, self.head.stopping_metric)
            # Only the best snapshot so far is worth keeping.
            snapshots.append(([w.copy() for w in self.weights], [b.copy() for b in self.biases])
                             if keep and best == len(losses) - 1 else None)
            if len(losses) - 1 - best >= self.head.n_iter_no_change:
                break
        return losses, errors, snapshots


class LogRegHead(_Head):
    """L2-regularised multinomial logistic regression on standardised inputs (one-vs-rest
    binary regressions for a multi-label target).

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    max_iter : int
        L-BFGS iterations.
    clip : float
        Standardised inputs are clipped to ``[-clip, clip]``.
    """

    def __init__(self, *, C: float = 0.1, max_iter: int = 500, clip: float = 5.0) -> None:
        self.C = C
        self.max_iter = max_iter
        self.clip = clip

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> LogRegHead:
        """Fit on training rows (``groups`` is accepted for a uniform interface)."""
        X, encoded = self._validate_fit_input(X, y)
        model = LogisticRegression(C=self.C, max_iter=self.max_iter)
        if self.multilabel_:
            model = OneVsRestClassifier(model)
        self.pipeline_ = Pipeline([*_standardising_steps(self.clip), ("logreg", model)])
        with _quiet_convergence():
            self.pipeline_.fit(X, encoded)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return self.pipeline_.predict_proba(self._validate_predict_input(X))


@contextlib.contextmanager
def _quiet_convergence() -> Iterator[None]:
    # An iteration cap reached is the documented speed/accuracy trade-off of the defaults, not
    # something a benchmark user can act on per fit; a class with no positive training clip
    # is predicted constant by one-vs-rest, which is right and needs no warning either.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="Label not .* present in all training")
        yield


# --------------------------------------------------------------------------------------------
# Registry, fitting helpers and the hyper-parameter search
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeadSpec:
    """How to build one kind of head.

    Attributes
    ----------
    name : str
        Registry key (``"xgb"``, ``"mlp"``, ``"logreg"``).
    factory : callable
        ``factory(**params)`` returns an unfitted classifier; seeded heads also take
        ``random_state``.
    seeded : bool
        Whether results depend on ``random_state`` (a deterministic head runs once per
        benchmark cell instead of once per seed).
    param_grid : mapping
        The small search space of :func:`tune_head`.
    """

    name: str
    factory: Callable[..., Any]
    seeded: bool
    param_grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)


HEADS: dict[str, HeadSpec] = {
    "xgb": HeadSpec("xgb", XGBHead, seeded=True,
                    param_grid={"max_depth": [3, 6], "colsample_bytree": [0.2, 0.5]}),
    "mlp": HeadSpec("mlp", MLPHead, seeded=True,
                    param_grid={"hidden_layer_sizes": [(128,), (512,)],
                                "alpha": [1e-4, 1e-2]}),
    "logreg": HeadSpec("logreg", LogRegHead, seeded=False,
                       param_grid={"C": [0.01, 0.1, 1.0, 10.0]}),
}


def get_head_spec(head: str | HeadSpec) -> HeadSpec:
    """Look a head up by name (or pass a :class:`HeadSpec` through)."""
    if isinstance(head, HeadSpec):
        return head
    try:
        return HEADS[head]
    except KeyError:
        raise ConfigError(f"unknown head {head!r}; choose from {', '.join(HEADS)}") from None


def make_head(head: str | HeadSpec, *, random_state: int | None = None,
              **params: Any) -> Any:
    """An unfitted head; ``random_state`` is passed only to seeded heads."""
    spec = get_head_spec(head)
    if spec.seeded:
        params["random_state"] = random_state
    return spec.factory(**params)


def take_rows(X: Any, rows: np.ndarray) -> Any:
    """Rows ``rows`` of a head's input: an array, or a mapping of stream name to arrays of the
    same rows (a multi-stream sequence head's input)."""
    if isinstance(X, Mapping):
        return {name: values[rows] for name, values in X.items()}
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


def tune_head(head: str | HeadSpec, X: Any, y: np.ndarray,
              groups: np.ndarray | None = None, *, n_splits: int = 3,
              random_state: int | None = 0) -> dict[str, Any]:
    """Pick the head's hyper-parameters by inner cross-validation on training rows only.

    Every candidate of ``HeadSpec.param_grid`` is fitted on the :func:`inner_splits` of the
    given rows and scored by pooled validation accuracy
    (:func:`featurekit.selection.select_by_inner_cv`); the best (first on ties) is returned.
    The cost is ``len(grid) * n_splits`` fits, the same for every branch and system of a
    benchmark; a grid of at most one candidate costs nothing.

    Returns
    -------
    dict
        Parameters to pass to :func:`make_head`.
    """
    spec = get_head_spec(head)
    X = X if isinstance(X, Mapping) else np.asarray(X)
    y = np.asarray(y)
    groups = None if groups is None else np.asarray(groups)
    candidates = [dict(params) for params in ParameterGrid(dict(spec.param_grid))]
    if len(candidates) <= 1:
        return candidates[0] if candidates else {}
    splits = inner_splits(y, groups, n_splits=n_splits, random_state=random_state)
    selection = select_by_inner_cv(
        candidates, lambda params: make_head(spec, random_state=random_state, **params),
        X, y, splits, groups=groups)
    return dict(selection.best)


def clone_head(estimator: Any, *, random_state: int | None) -> Any:
    """A fresh copy of a user-given head with ``random_state`` set when it has one."""
    fresh = clone(estimator)
    if "random_state" in fresh.get_params():
        fresh.set_params(random_state=random_state)
    return fresh
