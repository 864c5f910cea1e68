"""Late-fusion rules: how per-branch class probabilities become one prediction.

Every rule is fitted on the branches' *inner out-of-fold* probabilities of the training rows
(:func:`featurekit.fusion.fit_branch` with :func:`featurekit.learn.splits.inner_splits`) and then
combines the probabilities of rows to predict:

``mean``
    the plain average (:class:`MeanFusion`);
``weighted``
    a convex combination whose weights minimise the log-loss of the branches' inner
    out-of-fold probabilities (:class:`WeightedFusion`);
``stacking``
    a regularised multinomial logistic regression on the concatenated inner out-of-fold
    probabilities, its ``C`` picked by a second-level cross-validation over the same splits
    (:class:`StackingFusion`);
``calibrated``
    per-branch temperature scaling, then a log-linear pool whose weights (optionally per
    class) minimise the inner out-of-fold log-loss, kept only when a cross-fitted check over
    the inner splits says it beats the best branch (:class:`CalibratedFusion`).

The learned rules may fall back: the candidates they choose from always include every
single branch on its own ("pick the best branch", a one-hot weight vector), judged by the same
inner out-of-fold accuracy, so on the inner validation a learned fusion is never worse than
the best branch it fuses.

A rule's fit sees the labels of every row it is given, so its combination of those rows is
not an honest estimate of how well it fuses: :mod:`featurekit.fusion.crossfit` gives one.

New rules register in :data:`FUSION_RULES` (name -> class with ``fit(oof, y, splits)`` and
``combine(probas)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from featurekit.errors import ConfigError
from featurekit.learn.fitting import aligned_proba
from featurekit.learn.linear import MultiLabelLogisticRegression
from featurekit.learn.parameters import n_parameters
from featurekit.learn.selection import oof_score, select_by_inner_cv
from featurekit.learn.splits import Split

_EPS = 1e-12


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


def _truth_likelihood(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The probability each row's labels get: of its class (class indices), or of each
    class's observed outcome, ``p`` for a label and ``1 - p`` otherwise (label indicators).
    Both are linear in ``proba``, so a convex mixture's log-loss depends on nothing else."""
    proba = np.asarray(proba)
    if np.ndim(y) == 2:
        return np.where(np.asarray(y) > 0, proba, 1.0 - proba)
    return proba[..., np.arange(np.size(y)), y]


def _accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(proba, axis=1) == y))


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(_truth_likelihood(proba, y), _EPS, None))))


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

        # Probability each branch gives the truth: the log-loss of a convex mixture depends
        # on nothing else. Weights are a softmax of free logits (no constraints).
        true_class = np.clip(_truth_likelihood(stacked, y), _EPS, None).reshape(n_branches, -1)

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
            return oof_score(y, fused), -_log_loss(fused, y)

        scores = [score(weights) for _, weights in candidates]
        best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
        self.choice_, self.weights_ = candidates[best]
        self.choice_ += " [" + ", ".join(f"{w:.2f}" for w in self.weights_) + "]"
        return self


class _BranchAlone(ClassifierMixin, BaseEstimator):
    """One branch's own prediction, read from the concatenated probabilities (nothing is
    learned): the stacker's fallback as a candidate of the same inner-CV selection."""

    def __init__(self, branch: int = 0, n_classes: int = 2) -> None:
        self.branch = branch
        self.n_classes = n_classes

    def fit(self, X: np.ndarray, y: np.ndarray) -> _BranchAlone:
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        start = self.branch * self.n_classes
        return np.asarray(X)[:, start:start + self.n_classes]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)


class StackingFusion(BaseEstimator):
    """Multinomial logistic regression on concatenated out-of-fold probabilities (for label
    indicators, one binary regression per class, each reading every branch's every class, all
    solved together: :class:`~featurekit.learn.linear.MultiLabelLogisticRegression`).

    One inner cross-validation over the given splits
    (:func:`featurekit.learn.selection.select_by_inner_cv`) chooses among the stacker with each
    ``C`` of ``C_grid`` and each branch alone, by pooled validation accuracy; stackers come
    first, so on a tie the stacker is kept. The chosen stacker is then refitted on all rows;
    a chosen branch is used alone.

    Parameters
    ----------
    C_grid : sequence of float
        Inverse L2 strengths tried.

    Attributes
    ----------
    stacker_ : LogisticRegression, MultiLabelLogisticRegression or None
        The fitted stacker (``None`` when a branch won).
    fallback_ : int or None
        The branch used alone, if any.
    cv_accuracy_ : tuple of float
        Inner out-of-fold accuracy of each candidate: stackers in ``C_grid`` order, then
        branches.
    choice_ : str
    """

    def __init__(self, C_grid: Sequence[float] = (0.1, 1.0, 10.0)) -> None:
        self.C_grid = C_grid

    def fit(self, oof: Sequence[np.ndarray], y: np.ndarray,
            splits: Sequence[Split]) -> StackingFusion:
        self.n_classes_ = oof[0].shape[1]
        features = np.hstack(oof)
        candidates = ([("stacker", C) for C in self.C_grid]
                      + [("branch", b) for b in range(len(oof))])

        def build(candidate: tuple[str, Any]) -> Any:
            kind, value = candidate
            if kind == "stacker":
                return self._stacker(value)
            return _BranchAlone(value, self.n_classes_)

        self.multilabel_ = np.ndim(y) == 2
        selection = select_by_inner_cv(candidates, build, features, np.asarray(y), splits)
        self.cv_accuracy_ = selection.scores
        kind, value = selection.best
        if kind == "stacker":
            self.stacker_ = self._stacker(value).fit(features, y)
            self.fallback_ = None
            self.choice_ = f"stacker C={value:g}"
        else:
            self.stacker_ = None
            self.fallback_ = int(value)
            self.choice_ = f"branch {self.fallback_}"
        return self

    def _stacker(self, C: float) -> Any:
        if self.multilabel_:
            # One L-BFGS for every class (the one-vs-rest optimum, matrix-matrix products):
            # its iterations are cheaper and less powerful than newton-cg's, so more of them.
            return MultiLabelLogisticRegression(C=C, max_iter=500)
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


#: Range of a branch's log-weight in :class:`CalibratedFusion` (a weight of e**5 ~ 148 on a
#: log-probability already makes one branch decide alone).
LOG_WEIGHT_BOUNDS = (-20.0, 5.0)


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
        # Bounded log-weights: on separable out-of-fold probabilities the unbounded optimum
        # runs to infinity and the exponentials overflow.
        bounds = ([LOG_WEIGHT_BOUNDS] * n_branches
                  + [(-LOG_WEIGHT_BOUNDS[1], LOG_WEIGHT_BOUNDS[1])] * n_class_params)
        theta = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B",
                         bounds=bounds).x
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
        if np.ndim(y) == 2:
            raise ConfigError("the calibrated fusion pools softmax outputs of one class per "
                              "clip; multi-label tasks fuse by mean, weighted or stacking")
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


def rule_parameters(rule: FusionRule) -> int:
    """Values a fitted late-fusion rule learned on the inner out-of-fold probabilities.

    None (0) for the mean, and for a rule that kept fixed weights or fell back on one branch;
    the weighted rule's learned weights (one per branch); the stacker's coefficients and
    intercepts; the calibrated rule's temperatures and weights.
    """
    if isinstance(rule, WeightedFusion):
        return int(np.size(rule.weights_)) if rule.choice_.startswith("learned") else 0
    if isinstance(rule, StackingFusion):
        return 0 if rule.stacker_ is None else int(n_parameters(rule.stacker_) or 0)
    if isinstance(rule, CalibratedFusion):
        return (0 if rule.fallback_ is not None
                else int(np.size(rule.temperatures_) + np.size(rule.weights_)))
    return 0


def make_fusion(name: str) -> FusionRule:
    """An unfitted late-fusion rule by name."""
    try:
        return FUSION_RULES[name]()
    except KeyError:
        raise ConfigError(f"unknown late fusion {name!r}; choose from "
                          f"{', '.join(FUSION_RULES)}") from None


__all__ = ["FUSIONS", "FUSION_RULES", "CalibratedFusion", "FusionRule", "MeanFusion",
           "StackingFusion", "WeightedFusion", "fit_temperature", "make_fusion",
           "rule_parameters"]
