"""L2 logistic regression on standardised inputs: the linear reference head.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from featurekit.learn.heads.base import BaseHead, standardising_steps
from featurekit.learn.linear import MultiLabelLogisticRegression


class LogRegHead(BaseHead):
    """L2-regularised multinomial logistic regression on standardised inputs; for a
    multi-label target, one binary regression per class, all solved by one L-BFGS
    (:class:`~featurekit.learn.linear.MultiLabelLogisticRegression`: the one-vs-rest optimum).

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    max_iter : int
        L-BFGS iterations.
    clip : float
        Standardised inputs are clipped to ``[-clip, clip]``.

    Attributes
    ----------
    classes_ : np.ndarray
    pipeline_ : sklearn.pipeline.Pipeline
        Imputation, standardisation, clipping and the regression(s).
    n_iter_ : int
        L-BFGS iterations run (of the joint solve of every class when multi-label).
    """

    def __init__(self, *, C: float = 1.0, max_iter: int = 500, clip: float = 5.0) -> None:
        self.C = C
        self.max_iter = max_iter
        self.clip = clip

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> LogRegHead:
        """Fit on training rows (``groups`` is accepted for a uniform interface)."""
        X, encoded = self._validate_fit_input(X, y)
        model: LogisticRegression | MultiLabelLogisticRegression
        if self.multilabel_:
            model = MultiLabelLogisticRegression(C=self.C, max_iter=self.max_iter)
        else:
            model = LogisticRegression(C=self.C, max_iter=self.max_iter)
        self.pipeline_ = Pipeline([*standardising_steps(self.clip), ("logreg", model)])
        with _quiet_convergence():
            self.pipeline_.fit(X, encoded)
        self.n_iter_ = int(np.max(self.pipeline_[-1].n_iter_))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        X = self._validate_predict_input(X)  # first: an unfitted head raises NotFittedError
        return self.pipeline_.predict_proba(X)


@contextlib.contextmanager
def _quiet_convergence() -> Iterator[None]:
    # An iteration cap reached is the documented speed/accuracy trade-off of the defaults, not
    # something a benchmark user can act on per fit (both solvers warn with
    # ConvergenceWarning). A class with no positive training clip is predicted constant
    # without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
