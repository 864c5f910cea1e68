"""One L2 logistic regression for all the classes of a multi-label target.

With a label-indicator matrix ``Y`` (n_samples, n_classes), one-vs-rest fits ``n_classes``
independent binary regressions, each an L-BFGS (or newton-cg) solve whose every iteration is
a matrix-vector product with ``X``. The classes share no parameter and their L2-regularised
losses are independent, so the *sum* of the per-class objectives has exactly the one-vs-rest
optimum; :class:`MultiLabelLogisticRegression` minimises that sum with a single L-BFGS over
the whole (n_classes, n_features + 1) parameter matrix, whose iterations are matrix-matrix
products (one BLAS call for every class at once instead of one per class).

The objective is scikit-learn's, so ``C`` and ``tol`` mean what they mean for
:class:`sklearn.linear_model.LogisticRegression` with ``solver="lbfgs"``: per class
``C * sum_i logloss_i + 0.5 * ||w||^2`` (intercept not penalised), divided by ``C * n`` for
conditioning; the iterations stop when the largest gradient entry (over every class) is at
most ``tol``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from featurekit.errors import ConfigError
from featurekit.learn.targets import check_label_matrix, proba_to_labels


def loss_and_gradient(params: np.ndarray, X: np.ndarray, Y: np.ndarray,
                      l2: float) -> tuple[float, np.ndarray]:
    """The summed per-class objective and its gradient, as the L-BFGS solve sees them.

    ``sum_c [ mean_i logloss(y_ic, x_i . w_c + b_c) + l2 / 2 * ||w_c||^2 ]``: with
    ``l2 = 1 / (C * n)`` this is scikit-learn's per-class objective divided by ``C * n``,
    summed over the classes.

    Parameters
    ----------
    params : np.ndarray, shape (n_classes * (n_features + 1),)
        Row-major (n_classes, n_features + 1): each class's coefficients, then its intercept.
    X : np.ndarray, shape (n_samples, n_features)
    Y : np.ndarray of float, shape (n_samples, n_classes)
        0/1 label indicators.
    l2 : float
        L2 strength on the coefficients (intercepts are not penalised).

    Returns
    -------
    loss : float
    gradient : np.ndarray, shape like ``params``
    """
    n, d = X.shape
    P = params.reshape(Y.shape[1], d + 1)
    W, b = P[:, :d], P[:, d]
    Z = X @ W.T + b  # (n, k) logits: one matrix-matrix product for every class
    # log(1 + e^z) - y z is the binary log-loss in logits; logaddexp keeps it finite.
    loss = float(np.sum(np.logaddexp(0.0, Z) - Y * Z)) / n + 0.5 * l2 * float(np.sum(W * W))
    R = (expit(Z) - Y) / n
    gradient = np.empty_like(P)
    # X.T @ R, not R.T @ X: the same product, several times faster through OpenBLAS here
    # (the (k, d) output layout picks a slow kernel).
    gradient[:, :d] = (X.T @ R).T + l2 * W
    gradient[:, d] = R.sum(axis=0)
    return loss, gradient.ravel()


class MultiLabelLogisticRegression(ClassifierMixin, BaseEstimator):
    """L2 logistic regression per class of a label-indicator matrix, solved jointly.

    The same fitted model as scikit-learn's
    ``OneVsRestClassifier(LogisticRegression(C=C, max_iter=max_iter, tol=tol))`` (the same
    optimum; see the module docstring), found by one L-BFGS over all the classes.

    Parameters
    ----------
    C : float
        Inverse L2 strength, as in :class:`sklearn.linear_model.LogisticRegression`.
    max_iter : int
        L-BFGS iterations of the joint solve.
    tol : float
        The solve stops when no gradient entry of the (``C * n``-scaled) objective exceeds it.

    Attributes
    ----------
    classes_ : np.ndarray of int, shape (n_classes,)
        ``arange(n_classes)``: the columns of ``Y``.
    coef_ : np.ndarray, shape (n_classes, n_features)
        Coefficients (zeros for a constant class).
    intercept_ : np.ndarray, shape (n_classes,)
        Intercepts; ``-inf`` or ``+inf`` for a class without positive or without negative
        training rows (its log-odds: probability 0 or 1).
    constant_ : np.ndarray of bool, shape (n_classes,)
        Classes predicted constant (all training rows negative, or all positive), as
        one-vs-rest does; they take no part in the solve.
    n_iter_ : int
        L-BFGS iterations run (0 when every class is constant).
    n_features_in_ : int
    """

    def __init__(self, *, C: float = 1.0, max_iter: int = 500, tol: float = 1e-4) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def _check_params(self) -> None:
        if not (np.isfinite(self.C) and self.C > 0):
            raise ConfigError(f"MultiLabelLogisticRegression: C must be a positive finite "
                              f"number, got {self.C!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int | np.integer) \
                or self.max_iter < 1:
            raise ConfigError(f"MultiLabelLogisticRegression: max_iter must be an integer "
                              f">= 1, got {self.max_iter!r}")
        if not (np.isfinite(self.tol) and self.tol > 0):
            raise ConfigError(f"MultiLabelLogisticRegression: tol must be a positive finite "
                              f"number, got {self.tol!r}")

    def fit(self, X: Any, Y: Any) -> MultiLabelLogisticRegression:
        """Fit every class's regression.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Finite values (impute and standardise before).
        Y : array-like of {0, 1}, shape (n_samples, n_classes)
            Label indicators, ``n_classes >= 2``.

        Returns
        -------
        self

        Raises
        ------
        ConfigError
            A parameter out of range.
        ValueError
            ``X`` not 2-D numeric and finite, ``Y`` not a 0/1 matrix, or not as many rows.
        """
        self._check_params()
        Y = check_label_matrix(np.asarray(Y), who=type(self).__name__)
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite=True)
        if X.shape[0] != Y.shape[0]:
            raise ValueError(f"{type(self).__name__}: X has {X.shape[0]} rows but Y has "
                             f"{Y.shape[0]}")
        n, d = X.shape
        k = Y.shape[1]
        rate = Y.mean(axis=0)
        # A class seen only negative (or only positive) has its optimum at infinity: it is
        # predicted constant, as one-vs-rest does, and left out of the solve so that it can
        # neither slow it down nor push it towards huge coefficients.
        self.constant_ = (rate == 0.0) | (rate == 1.0)
        solved = np.flatnonzero(~self.constant_)
        self.classes_ = np.arange(k)
        self.coef_ = np.zeros((k, d))
        self.intercept_ = np.where(rate > 0.5, np.inf, -np.inf)
        self.n_iter_ = 0
        if solved.size:
            targets = np.ascontiguousarray(Y[:, solved], dtype=np.float64)
            start = np.zeros((solved.size, d + 1))
            # The intercept-only optimum: a start that already has each class's base rate.
            start[:, d] = logit(rate[solved])
            result = minimize(loss_and_gradient, start.ravel(), jac=True, method="L-BFGS-B",
                              args=(X, targets, 1.0 / (self.C * n)),
                              # scikit-learn's lbfgs settings: the gradient tolerance decides.
                              options={"maxiter": self.max_iter, "maxls": 50, "gtol": self.tol,
                                       "ftol": 64 * np.finfo(float).eps})
            params = result.x.reshape(solved.size, d + 1)
            self.coef_[solved] = params[:, :d]
            self.intercept_[solved] = params[:, d]
            self.n_iter_ = int(min(result.nit, self.max_iter))
            if result.status != 0:
                # The same warning scikit-learn's lbfgs gives, so callers filter it alike.
                warnings.warn(f"MultiLabelLogisticRegression: L-BFGS stopped after "
                              f"{self.n_iter_} iteration(s) without converging "
                              f"({result.message}); increase max_iter or scale the data",
                              ConvergenceWarning, stacklevel=2)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Per-class log-odds, shape (n_samples, n_classes) (``+-inf`` for constant classes)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite=True, reset=False)
        return X @ self.coef_.T + self.intercept_

    def predict_proba(self, X: Any) -> np.ndarray:
        """Independent per-class probabilities, shape (n_samples, n_classes); rows need not
        sum to 1."""
        return expit(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        """Label indicators, shape (n_samples, n_classes): 1 where the probability is at
        least 0.5."""
        return proba_to_labels(self.predict_proba(X), self.classes_, multilabel=True)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_label = True
        return tags


__all__ = ["MultiLabelLogisticRegression", "loss_and_gradient"]
