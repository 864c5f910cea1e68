"""What every tabular head shares: input and label validation, prediction from probabilities, the
standardising steps, early-stopping bookkeeping, and :class:`HeadSpec` (how to build a head).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from featurekit.errors import ConfigError
from featurekit.learn.targets import encode_targets, proba_to_labels


class BaseHead(ClassifierMixin, BaseEstimator):
    """Shared plumbing: input validation, label encoding, probability and label prediction.

    A 2-D ``y`` is a label-indicator matrix (multi-label): ``classes_`` is then the column
    positions and ``multilabel_`` is True.
    """

    def _validate_fit_input(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        # np.asarray, not np.ndim: array-likes that only implement __array__ must work too.
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan",
                             multi_output=np.asarray(y).ndim == 2)
        self.classes_, encoded, self.multilabel_ = encode_targets(y, who=type(self).__name__)
        return X, encoded

    def _validate_predict_input(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "classes_")
        return validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                             reset=False)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each row; multi-label: the indicator of probabilities of at
        least 0.5."""
        return proba_to_labels(self.predict_proba(X), self.classes_, self.multilabel_)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def standardising_steps(clip: float) -> list[tuple[str, Any]]:
    # Median imputation keeps all-NaN columns (as zeros) so column positions never shift;
    # clipping the standardised values stops heavy-tailed descriptors (kurtosis, flux peaks)
    # from dominating a linear layer.
    return [("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("clip", FunctionTransformer(np.clip, kw_args={"a_min": -clip, "a_max": clip}))]


def stopping_point(losses: Sequence[float], errors: Sequence[float], metric: str) -> int:
    """Position of the best entry of a validation curve (the first one on ties).

    ``"logloss"`` ranks by log-loss; ``"error"`` ranks by classification error and breaks ties
    by log-loss, so a plateau of equal error keeps improving in calibration.
    """
    if metric == "logloss":
        return int(np.argmin(losses))
    order = np.lexsort((np.asarray(losses, dtype=np.float64),
                        np.asarray(errors, dtype=np.float64)))
    return int(order[0])


def check_stopping_metric(metric: str) -> None:
    if metric not in ("logloss", "error"):
        raise ConfigError(f"stopping_metric must be 'logloss' or 'error', got {metric!r}")


def softmax_loss_and_error(proba: np.ndarray, encoded: np.ndarray) -> tuple[float, float]:
    picked = np.clip(proba[np.arange(encoded.size), encoded], 1e-15, None)
    return (float(-np.mean(np.log(picked))),
            float(np.mean(np.argmax(proba, axis=1) != encoded)))


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
    defaults_chosen_on : tuple of str
        Datasets (``esc10``, ``urbansound8k``, ...) whose data chose the parameters
        ``factory`` builds with; empty when no data chose them. Figures on these datasets are
        not independent of the choice (:mod:`featurekit.benchmark.head_settings`).
    """

    name: str
    factory: Callable[..., Any]
    seeded: bool
    param_grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    defaults_chosen_on: tuple[str, ...] = ()
