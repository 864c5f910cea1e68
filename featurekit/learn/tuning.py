"""The optional hyper-parameter search: a small grid per head (``HeadSpec.param_grid``) tried by
inner cross-validation over the training rows' own folds
(:func:`~featurekit.learn.splits.inner_splits`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.model_selection import (
    ParameterGrid,
)

from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.heads.registry import get_head_spec, make_head
from featurekit.learn.selection import select_by_inner_cv
from featurekit.learn.splits import inner_splits


def tune_head(head: str | HeadSpec, X: Any, y: np.ndarray,
              groups: np.ndarray | None = None, *, n_splits: int = 3,
              random_state: int | None = 0) -> dict[str, Any]:
    """Pick the head's hyper-parameters by inner cross-validation on training rows only.

    Every candidate of ``HeadSpec.param_grid`` is fitted on the :func:`inner_splits` of the
    given rows and scored by pooled validation accuracy
    (:func:`featurekit.learn.selection.select_by_inner_cv`); the best (first on ties) is returned.
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
