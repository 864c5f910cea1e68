"""Early and late fusion of feature branches, as scikit-learn classifiers and as building blocks.

*Early fusion* concatenates the columns of several branches and trains one head on them.
*Late fusion* trains one head per branch and combines their class probabilities with a
*fusion rule*:

``mean``
    the plain average;
``weighted``
    a convex combination whose weights minimise the log-loss of the branches' inner
    out-of-fold probabilities;
``stacking``
    a regularised multinomial logistic regression on the concatenated inner out-of-fold
    probabilities (its ``C`` picked by a second-level cross-validation over the same splits);
``calibrated``
    per-branch temperature scaling, then a log-linear pool whose weights (optionally per
    class) minimise the inner out-of-fold log-loss, kept only when a cross-fitted check over
    the inner splits says it beats the best branch (:class:`CalibratedFusion`).

The learned rules may fall back: the candidates they choose from always include every
single branch on its own ("pick the best branch", a one-hot weight vector), judged by the same
inner out-of-fold accuracy, so on the inner validation a learned fusion is never worse than
the best branch it fuses.

Inner out-of-fold probabilities come from :func:`featurekit.heads.inner_splits` over the
training rows only -- whole folds when ``groups`` (the training clips' folds) are given, a
stratified k-fold otherwise -- so no second-level learner ever sees a prediction made on a
clip its head was trained on, and no test clip reaches any ``fit``.

New rules register in :data:`FUSION_RULES` (name -> class with ``fit(oof, y, splits)`` and
``combine(probas)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.optimize import minimize, minimize_scalar
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from featurekit.errors import ConfigError
from featurekit.heads import (
    HeadSpec,
    Split,
    aligned_proba,
    clone_head,
    fit_head,
    get_head_spec,
    inner_splits,
    make_head,
    take_rows,
    tune_head,
)

#: A branch's columns: a column-name prefix, a list of column names, or positions.
Selector = str | Sequence[str] | Sequence[int] | np.ndarray
#: A head: a registry name, a :class:`~featurekit.heads.HeadSpec`, or an unfitted estimator.
Head = str | HeadSpec | Any

_EPS = 1e-12


# --------------------------------------------------------------------------------------------
# Column selection
# --------------------------------------------------------------------------------------------

def resolve_columns(selector: Selector, columns: Sequence[str] | None,
                    n_features: int) -> np.ndarray:
    """Positions of a branch's columns.

    Parameters
    ----------
    selector : str, sequence of str, sequence of int or boolean mask
        A prefix (``"pitch."``), exact column names, positions, or a mask of length
        ``n_features``. Names and prefixes need ``columns``.
    columns : sequence of str, optional
        Column names of the input (``None`` for a plain array).
    n_features : int
        Number of input columns.

    Returns
    -------
    np.ndarray of int
        Column positions, in input order for prefixes, in the given order otherwise.
    """
    if isinstance(selector, str):
        if columns is None:
            raise ConfigError(f"column prefix {selector!r} needs a DataFrame input")
        positions = np.flatnonzero([str(c).startswith(selector) for c in columns])
        if positions.size == 0:
            raise ConfigError(f"no column starts with {selector!r}")
        return positions
    values = np.asarray(selector)
    if values.dtype == bool:
        if values.shape != (n_features,):
            raise ConfigError(f"boolean column mask has length {values.size}, "
                              f"expected {n_features}")
        positions = np.flatnonzero(values)
    elif values.dtype.kind in "iu":
        positions = values.astype(int).ravel()
        if positions.size and (positions.min() < -n_features or positions.max() >= n_features):
            raise ConfigError(f"column positions out of range for {n_features} columns")
        positions = positions % n_features if n_features else positions
    else:
        if columns is None:
            raise ConfigError("column names need a DataFrame input")
        index = {str(c): i for i, c in enumerate(columns)}
        missing = [str(c) for c in values.ravel() if str(c) not in index]
        if missing:
            raise ConfigError(f"unknown columns: {', '.join(missing[:5])}"
                              + (" ..." if len(missing) > 5 else ""))
        positions = np.array([index[str(c)] for c in values.ravel()], dtype=int)
    if positions.size == 0:
        raise ConfigError("a branch selects no column")
    return positions


# --------------------------------------------------------------------------------------------
# One branch: seeded members and their inner out-of-fold probabilities
# --------------------------------------------------------------------------------------------

def is_seeded(head: Head) -> bool:
    """Whether ``head`` depends on a seed (runs once per seed) or is deterministic."""
    if isinstance(head, str | HeadSpec):
        return get_head_spec(head).seeded
    return "random_state" in head.get_params()


def build_head(head: Head, *, random_state: int | None, params: Mapping[str, Any]) -> Any:
    """An unfitted head from a name, a spec or a template estimator."""
    if isinstance(head, str | HeadSpec):
        return make_head(head, random_state=random_state, **params)
    return clone_head(head, random_state=random_state).set_params(**params)


def member_seeds(head: Head, seeds: Sequence[int]) -> list[int]:
    """The seeds a head actually runs with: all of them, or the first for a deterministic one."""
    return list(seeds) if is_seeded(head) else list(seeds[:1])


@dataclass
class FittedBranch:
    """Members of one branch and, when asked for, their inner out-of-fold probabilities.

    Attributes
    ----------
    members : list
        One fitted head per seed (one for a deterministic head), trained on all given rows.
    oof : np.ndarray or None, shape (n_members, n_rows, n_classes)
        Probabilities each member's twin predicted for rows it was not trained on.
    params : dict
        Hyper-parameters used (the search result when tuning was on).
    twins : list of list, optional
        With ``keep_twins``: per member, the fitted twin of each inner split (in split order).
    """

    members: list[Any]
    oof: np.ndarray | None
    params: dict[str, Any]
    twins: list[list[Any]] | None = None


def fit_branch(head: Head, X: Any, y: np.ndarray, groups: np.ndarray | None = None, *,
               n_classes: int, seeds: Sequence[int] = (0,), splits: Sequence[Split] | None = None,
               tune: bool = False, tune_splits: int = 3, tune_random_state: int | None = 0,
               keep_twins: bool = False) -> FittedBranch:
    """Fit one head per seed on ``X`` and, with ``splits``, its inner out-of-fold twins.

    Parameters
    ----------
    head : str, HeadSpec or estimator
    X : np.ndarray, shape (n_rows, n_features), or mapping of str to arrays
        Training rows of the branch's columns (a multi-stream sequence head takes a mapping
        of stream name to sequences of the same rows).
    y : np.ndarray of int, shape (n_rows,)
        Class indices ``0 .. n_classes - 1``.
    groups : np.ndarray, optional
        Fold of each training row (used by the heads' early-stopping split and the search).
    n_classes : int
        Number of classes of the task (columns of every probability array).
    seeds : sequence of int
        One member per seed.
    splits : sequence of (train, validation) index pairs, optional
        Inner splits of the training rows; when given, out-of-fold probabilities are computed.
    tune : bool
        Run :func:`featurekit.heads.tune_head` first (registry heads only).
    tune_splits, tune_random_state :
        Inner cross-validation of the search.
    keep_twins : bool
        Keep the fitted out-of-fold twins (e.g. to embed their validation rows).
    """
    params: dict[str, Any] = {}
    if tune:
        if not isinstance(head, str | HeadSpec):
            raise ConfigError("tuning needs a registry head (a name or a HeadSpec)")
        params = tune_head(head, X, y, groups, n_splits=tune_splits,
                           random_state=tune_random_state)
    classes = np.arange(n_classes)
    members, oof, twins = [], [], []
    for seed in member_seeds(head, seeds):
        members.append(fit_head(build_head(head, random_state=seed, params=params), X, y,
                                groups))
        if splits is None:
            continue
        member_oof = np.zeros((len(y), n_classes))
        member_twins = []
        for train, val in splits:
            twin = build_head(head, random_state=seed, params=params)
            fit_head(twin, take_rows(X, train), y[train],
                     None if groups is None else groups[train])
            member_oof[val] = aligned_proba(twin, take_rows(X, val), classes)
            member_twins.append(twin)
        oof.append(member_oof)
        twins.append(member_twins)
    return FittedBranch(members, np.stack(oof) if splits is not None else None, params,
                        twins if keep_twins and splits is not None else None)


def predict_members(members: Sequence[Any], X: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities of each member, shape (n_members, n_rows, n_classes)."""
    classes = np.arange(n_classes)
    return np.stack([aligned_proba(member, X, classes) for member in members])


# --------------------------------------------------------------------------------------------
# Fusion rules
# --------------------------------------------------------------------------------------------

class FusionRule(Protocol):
    """Combines per-branch class probabilities; fitted on inner out-of-fold probabilities.

    Implementations are scikit-learn style objects (parameters in ``__init__``, fitted state
    ending in ``_``), registered by name in :data:`FUSION_RULES`.
    """

    #: Human-readable description of what the fitted rule chose (for reports).
    choice_: str

    def fit(self, oof: Sequence[np.ndarray], y: np.ndarray,
            splits: Sequence[Split]) -> FusionRule:
        """Learn from per-branch out-of-fold probabilities (each (n_rows, n_classes))."""
        ...

    def combine(self, probas: Sequence[np.ndarray]) -> np.ndarray:
        """Fused probabilities, shape (n_rows, n_classes)."""
        ...


def _accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(proba, axis=1) == y))


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(y.size), y], _EPS, None))))


class _WeightedAverage(BaseEstimator):
    """Shared part of the weight-vector rules: a convex combination of branch probabilities."""

    weights_: np.ndarray

    def combine(self, probas: Sequence[np.ndarray]) -> np.ndarray:
        check_is_fitted(self, "weights_")
        return np.tensordot(self.weights_, np.stack(probas), axes=1)


class MeanFusion(_WeightedAverage):
    """Plain average of the branches' probabilities (nothing is learned)."""

    def fit(self, oof: Sequence[np.ndarray], y: np.ndarray,
            splits: Sequence[Split]) -> MeanFusion:
        self.weights_ = np.full(len(oof), 1.0 / len(oof))
        self.choice_ = "mean"
        return self


class WeightedFusion(_WeightedAverage):
    """Convex weights learned on inner out-of-fold probabilities, with a best-branch fallback.

    The weights minimising the out-of-fold log-loss are one candidate; the uniform weights and
    each branch alone (one-hot weights) are the others. The candidate with the best out-of-fold
    accuracy wins (log-loss breaks ties; single branches win exact ties).
    """

    def fit(self, oof: Sequence[np.ndarray], y: np.ndarray,
            splits: Sequence[Split]) -> WeightedFusion:
        stacked = np.stack(oof)
        n_branches = stacked.shape[0]

        # Probability each branch gives the true class: the log-loss of a convex mixture
        # depends on nothing else. Weights are a softmax of free logits (no constraints).
        true_class = np.clip(stacked[:, np.arange(y.size), y], _EPS, None)

        def loss_and_gradient(logits: np.ndarray) -> tuple[float, np.ndarray]:
            weights = softmax(logits)
            mixed = weights @ true_class
            d_weights = -(true_class / mixed).mean(axis=1)
            d_logits = weights * (d_weights - weights @ d_weights)
            return float(-np.mean(np.log(mixed))), d_logits

        learned = softmax(minimize(loss_and_gradient, np.zeros(n_branches), jac=True,
                                   method="L-BFGS-B").x)
        candidates = [(f"branch {i}", np.eye(n_branches)[i]) for i in range(n_branches)]
        candidates += [("uniform", np.full(n_branches, 1.0 / n_branches)),
                       ("learned", learned)]

        def score(weights: np.ndarray) -> tuple[float, float]:
            fused = np.tensordot(weights, stacked, axes=1)
            return _accuracy(fused, y), -_log_loss(fused, y)

        scores = [score(weights) for _, weights in candidates]
        best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
        self.choice_, self.weights_ = candidates[best]
        self.choice_ += " [" + ", ".join(f"{w:.2f}" for w in self.weights_) + "]"
        return self


class StackingFusion(BaseEstimator):
    """Multinomial logistic regression on concatenated out-of-fold probabilities.

    ``C`` is chosen from ``C_grid`` by a second-level cross-validation over the same inner
    splits; the stacker is kept only when its cross-validated accuracy is at least that of the
    best single branch's out-of-fold predictions, otherwise that branch is used alone.

    Parameters
    ----------
    C_grid : sequence of float
        Inverse L2 strengths tried.
    """

    def __init__(self, C_grid: Sequence[float] = (0.1, 1.0, 10.0)) -> None:
        self.C_grid = C_grid

    def fit(self, oof: Sequence[np.ndarray], y: np.ndarray,
            splits: Sequence[Split]) -> StackingFusion:
        self.n_classes_ = oof[0].shape[1]
        features = np.hstack(oof)
        cv_accuracy = []
        for C in self.C_grid:
            correct = 0
            for train, val in splits:
                stacker = self._stacker(C).fit(features[train], y[train])
                correct += int(np.sum(stacker.predict(features[val]) == y[val]))
            cv_accuracy.append(correct / sum(len(val) for _, val in splits))
        branch_accuracy = [_accuracy(proba, y) for proba in oof]
        best_C = self.C_grid[int(np.argmax(cv_accuracy))]
        if max(cv_accuracy) >= max(branch_accuracy):
            self.stacker_ = self._stacker(best_C).fit(features, y)
            self.fallback_ = None
            self.choice_ = f"stacker C={best_C:g}"
        else:
            self.stacker_ = None
            self.fallback_ = int(np.argmax(branch_accuracy))
            self.choice_ = f"branch {self.fallback_}"
        return self

    @staticmethod
    def _stacker(C: float) -> LogisticRegression:
        return LogisticRegression(C=C, solver="newton-cg", max_iter=200)

    def combine(self, probas: Sequence[np.ndarray]) -> np.ndarray:
        check_is_fitted(self, "choice_")
        if self.stacker_ is None:
            return np.asarray(probas[self.fallback_])
        return aligned_proba(self.stacker_, np.hstack(probas), np.arange(self.n_classes_))


def _log_proba(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(proba, _EPS, None))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """Temperature ``T`` minimising the log-loss of ``softmax(log(proba) / T)`` (bounded to
    ``[0.05, 20]``)."""
    log_p = _log_proba(proba)

    def loss(log_t: float) -> float:
        return -float(np.mean(_log_softmax(log_p / np.exp(log_t))[np.arange(y.size), y]))

    result = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


class CalibratedFusion(BaseEstimator):
    """Temperature-scaled branches pooled log-linearly, with a guard for the best branch.

    Each branch's out-of-fold probabilities are first temperature-scaled
    (:func:`fit_temperature`); the fused class scores are then
    ``sum_b w_b * log p_b(calibrated)`` followed by a softmax, with non-negative weights
    ``w_b`` (one per branch, or per branch and class with ``per_class=True``, shrunk towards
    the branch weight by ``class_penalty``) minimising the out-of-fold log-loss.

    The guard: the whole procedure is cross-fitted over the inner splits (temperatures and
    weights learned on the other splits' rows, scored on each split's validation rows) and
    compared with the best single branch chosen and calibrated the same way. Fusion
    is kept only when its cross-fitted accuracy is at least the branch's and its cross-fitted
    log-loss is lower by more than ``min_gain`` nats and by more than ``min_z`` standard
    errors of the paired per-clip log-loss differences; otherwise the rule returns the best
    branch's probabilities unchanged.

    Parameters
    ----------
    per_class : bool
        One weight per branch and class instead of per branch.
    class_penalty : float
        L2 penalty on the per-class deviations (log scale) from the branch weight.
    min_gain : float
        Log-loss improvement (nats) fusion must show to be kept.
    min_z : float
        The improvement must also exceed this many standard errors (a one-sided paired test
        at about 2.5 % for the default).
    """

    def __init__(self, per_class: bool = False, class_penalty: float = 1.0,
                 min_gain: float = 0.005, min_z: float = 2.0) -> None:
        self.per_class = per_class
        self.class_penalty = class_penalty
        self.min_gain = min_gain
        self.min_z = min_z

    def _fit_params(self, oof: Sequence[np.ndarray],
                    y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        temperatures = np.array([fit_temperature(proba, y) for proba in oof])
        calibrated = np.stack([_log_softmax(_log_proba(proba) / t)
                               for proba, t in zip(oof, temperatures, strict=True)])
        n_branches, n_rows, n_classes = calibrated.shape
        target = np.zeros((n_rows, n_classes))
        target[np.arange(n_rows), y] = 1.0
        n_class_params = n_branches * n_classes if self.per_class else 0

        def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
            branch_log = theta[:n_branches]
            deviation = theta[n_branches:].reshape(n_branches, -1) if self.per_class else 0.0
            weights = np.exp(branch_log[:, None] + deviation) * np.ones((1, n_classes))
            scores = np.einsum("bc,bnc->nc", weights, calibrated)
            log_fused = _log_softmax(scores)
            loss = -float(np.mean(log_fused[np.arange(n_rows), y]))
            d_scores = (np.exp(log_fused) - target) / n_rows
            d_weights = np.einsum("nc,bnc->bc", d_scores, calibrated) * weights
            gradient = d_weights.sum(axis=1)
            if not self.per_class:
                return loss, gradient
            loss += 0.5 * self.class_penalty * float(np.sum(deviation ** 2)) / n_classes
            d_deviation = d_weights + self.class_penalty * deviation / n_classes
            return loss, np.concatenate([gradient, d_deviation.ravel()])

        start = np.concatenate([np.full(n_branches, -np.log(n_branches)),
                                np.zeros(n_class_params)])
        theta = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B").x
        deviation = theta[n_branches:].reshape(n_branches, -1) if self.per_class else 0.0
        weights = np.exp(theta[:n_branches, None] + deviation) * np.ones((1, n_classes))
        return temperatures, weights

    @staticmethod
    def _combine(probas: Sequence[np.ndarray], temperatures: np.ndarray,
                 weights: np.ndarray) -> np.ndarray:
        calibrated = np.stack([_log_softmax(_log_proba(proba) / t)
                               for proba, t in zip(probas, temperatures, strict=True)])
        return np.exp(_log_softmax(np.einsum("bc,bnc->nc", weights, calibrated)))

    def fit(self, oof: Sequence[np.ndarray], y: np.ndarray,
            splits: Sequence[Split]) -> CalibratedFusion:
        oof = [np.asarray(proba, dtype=np.float64) for proba in oof]
        fused = np.zeros_like(oof[0])
        single = np.zeros_like(oof[0])
        for train, val in splits:
            temperatures, weights = self._fit_params([proba[train] for proba in oof], y[train])
            fused[val] = self._combine([proba[val] for proba in oof], temperatures, weights)
            branch = max(range(len(oof)), key=lambda b: (_accuracy(oof[b][train], y[train]),
                                                         -_log_loss(oof[b][train], y[train])))
            # The reference is that branch through the same procedure alone (temperature and,
            # per class, weights), so what calibration alone gains is not credited to fusion.
            single[val] = self._combine([oof[branch][val]],
                                        *self._fit_params([oof[branch][train]], y[train]))
        covered = np.concatenate([val for _, val in splits])
        fused, single, truth = fused[covered], single[covered], y[covered]
        fused_score = (_accuracy(fused, truth), _log_loss(fused, truth))
        single_score = (_accuracy(single, truth), _log_loss(single, truth))
        self.cv_scores_ = {"fused": fused_score, "best_branch": single_score}
        rows = np.arange(truth.size)
        gain = (np.log(np.clip(fused[rows, truth], _EPS, None))
                - np.log(np.clip(single[rows, truth], _EPS, None)))
        noise = self.min_z * gain.std(ddof=1) / np.sqrt(gain.size) if gain.size > 1 else 0.0
        helps = (fused_score[0] >= single_score[0]
                 and gain.mean() > max(self.min_gain, noise))
        if helps:
            self.temperatures_, self.weights_ = self._fit_params(oof, y)
            self.fallback_ = None
            branch_weights = self.weights_.mean(axis=1)
            self.choice_ = ("calibrated T=[" + ", ".join(f"{t:.2f}" for t in self.temperatures_)
                            + "] w=[" + ", ".join(f"{w:.2f}" for w in branch_weights) + "]")
        else:
            self.fallback_ = max(range(len(oof)), key=lambda b: (_accuracy(oof[b], y),
                                                                 -_log_loss(oof[b], y)))
            self.choice_ = f"branch {self.fallback_}"
        return self

    def combine(self, probas: Sequence[np.ndarray]) -> np.ndarray:
        check_is_fitted(self, "choice_")
        if self.fallback_ is not None:
            return np.asarray(probas[self.fallback_])
        return self._combine([np.asarray(p, dtype=np.float64) for p in probas],
                             self.temperatures_, self.weights_)


#: Late-fusion rules by name.
FUSION_RULES: dict[str, type] = {"mean": MeanFusion, "weighted": WeightedFusion,
                                 "stacking": StackingFusion, "calibrated": CalibratedFusion}
#: Every fusion a benchmark can run: early fusion and the late rules.
FUSIONS: tuple[str, ...] = ("early", *FUSION_RULES)


def make_fusion(name: str) -> FusionRule:
    """An unfitted late-fusion rule by name."""
    try:
        return FUSION_RULES[name]()
    except KeyError:
        raise ConfigError(f"unknown late fusion {name!r}; choose from "
                          f"{', '.join(FUSION_RULES)}") from None


# --------------------------------------------------------------------------------------------
# scikit-learn estimators
# --------------------------------------------------------------------------------------------

class _BranchClassifier(ClassifierMixin, BaseEstimator):
    """Input handling shared by the fusion estimators."""

    def _fit_input(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
            columns: list[str] | None = [str(c) for c in X.columns]
        else:
            columns = None
        array = np.asarray(X, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {array.shape}")
        y = np.asarray(y)
        if y.shape[0] != array.shape[0]:
            raise ValueError(f"X has {array.shape[0]} rows but y has {y.shape[0]}")
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        self.n_features_in_ = array.shape[1]
        if not self.branches:
            raise ConfigError("no branch given")
        self.columns_ = {name: resolve_columns(selector, columns, array.shape[1])
                         for name, selector in self.branches.items()}
        return array, encoded

    def _predict_input(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "classes_")
        if isinstance(X, pd.DataFrame) and hasattr(self, "feature_names_in_"):
            X = X[list(self.feature_names_in_)]
        array = np.asarray(X, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have {self.n_features_in_} columns, got shape "
                             f"{array.shape}")
        return array

    def _seeds(self) -> list[int]:
        base = 0 if self.random_state is None else int(self.random_state)
        return [base + i for i in range(self.n_seeds)]

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


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
        The late-fusion rule (see the module documentation).
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

    def _head_of(self, branch: str) -> Head:
        if isinstance(self.head, Mapping):
            if branch not in self.head:
                raise ConfigError(f"no head given for branch {branch!r}")
            return self.head[branch]
        return self.head

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> LateFusionClassifier:
        """Fit every branch's members and out-of-fold twins, then the fusion rule."""
        rule = make_fusion(self.fusion)
        array, encoded = self._fit_input(X, y)
        groups = None if groups is None else np.asarray(groups)
        seed = 0 if self.random_state is None else int(self.random_state)
        splits = inner_splits(encoded, groups, n_splits=self.inner_splits, random_state=seed)
        self.members_, oof = {}, []
        for name, positions in self.columns_.items():
            fitted = fit_branch(self._head_of(name), array[:, positions], encoded, groups,
                                n_classes=self.classes_.size, seeds=self._seeds(),
                                splits=splits, tune=self.tune, tune_splits=self.inner_splits,
                                tune_random_state=seed)
            self.members_[name] = fitted.members
            oof.append(fitted.oof.mean(axis=0))
        self.fusion_ = rule.fit(oof, encoded, splits)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Fused class probabilities, shape (n_samples, n_classes)."""
        array = self._predict_input(X)
        probas = [predict_members(self.members_[name], array[:, positions],
                                  self.classes_.size).mean(axis=0)
                  for name, positions in self.columns_.items()]
        return self.fusion_.combine(probas)


class EarlyFusionClassifier(_BranchClassifier):
    """One head on the concatenated columns of several branches.

    Parameters
    ----------
    branches : mapping of str to selector
        As in :class:`LateFusionClassifier`; columns are concatenated in branch order.
    head : str, HeadSpec or estimator
    n_seeds, inner_splits, tune, random_state :
        As in :class:`LateFusionClassifier` (``inner_splits`` only serves the search).
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
        array, encoded = self._fit_input(X, y)
        self.positions_ = np.concatenate(list(self.columns_.values()))
        seed = 0 if self.random_state is None else int(self.random_state)
        fitted = fit_branch(self.head, array[:, self.positions_], encoded,
                            None if groups is None else np.asarray(groups),
                            n_classes=self.classes_.size, seeds=self._seeds(), tune=self.tune,
                            tune_splits=self.inner_splits, tune_random_state=seed)
        self.members_ = fitted.members
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes)."""
        array = self._predict_input(X)
        return predict_members(self.members_, array[:, self.positions_],
                               self.classes_.size).mean(axis=0)
