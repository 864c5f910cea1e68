"""How many values a fitted head learned: the size of what a system is, beside its score.

What counts, per kind of head (the input standardisation -- imputation medians, scaling
statistics -- is left out everywhere: it is the same for every head on a branch and is not
fitted to the labels):

* logistic regression: coefficients and intercepts (multi-label, one regression per class:
  of every class's; a class fitted constant, without positive or without negative training
  rows, counts its one constant, as scikit-learn's one-vs-rest constant predictor does);
* MLP: every layer's weights and biases;
* XGBoost: the nodes of the trees the head predicts with (its ``n_rounds_`` rounds): one
  learned value per node, a split's threshold or a leaf's output (the split's feature choice is
  not counted apart);
* torch heads (the sequence head, its joint model, the end-to-end CNN): every trainable
  tensor element of the network, class layers included.

A head of another kind (a caller's own) has no count: None.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from featurekit.learn.linear import MultiLabelLogisticRegression


def xgb_nodes(booster: Any, n_rounds: int) -> int:
    """Nodes (splits and leaves) of the trees of ``booster``'s first ``n_rounds`` rounds, as
    its text dump lists them (one line per node)."""
    return sum(len(tree.strip().splitlines()) for tree in booster[0:n_rounds].get_dump())


def _linear(model: Any) -> int:
    """Coefficients and intercepts of a fitted scikit-learn linear model, one-vs-rest or
    :class:`~featurekit.learn.linear.MultiLabelLogisticRegression`."""
    if isinstance(model, MultiLabelLogisticRegression):
        # A constant class stores zero coefficients and an infinite intercept: one value.
        solved = int(np.sum(~model.constant_))
        return solved * (model.coef_.shape[1] + 1) + int(np.sum(model.constant_))
    if hasattr(model, "estimators_"):
        return sum(_linear(each) for each in model.estimators_)
    if not hasattr(model, "coef_"):
        return 1  # one-vs-rest's constant predictor of a class without positives
    return int(np.size(model.coef_) + np.size(model.intercept_))


def n_parameters(head: Any) -> int | None:
    """Learned values of a fitted head (see the module docstring).

    Parameters
    ----------
    head : estimator
        A fitted :class:`~featurekit.learn.heads.LogRegHead`, ``MLPHead``, ``XGBHead``, a
        torch head (any estimator with a fitted ``network_`` module), or a scikit-learn
        linear model.

    Returns
    -------
    int or None
        None for a head of another kind.
    """
    # Here, not at the top: the late-fusion rules count their stackers with this module, and
    # must not import XGBoost for it.
    from featurekit.learn.heads.logreg import LogRegHead
    from featurekit.learn.heads.mlp import MLPHead
    from featurekit.learn.heads.xgb import XGBHead

    network = getattr(head, "network_", None)
    if network is not None:  # torch: read without importing it here
        return int(sum(p.numel() for p in network.parameters() if p.requires_grad))
    if isinstance(head, MLPHead):
        return int(sum(np.size(w) for w in head.coefs_)
                   + sum(np.size(b) for b in head.intercepts_))
    if isinstance(head, XGBHead):
        return xgb_nodes(head.model_.get_booster(), head.n_rounds_)
    if isinstance(head, LogRegHead):
        return _linear(head.pipeline_[-1])
    if hasattr(head, "coef_") or hasattr(head, "estimators_"):
        return _linear(head)
    return None


def mean_parameters(heads: Any) -> float | None:
    """Mean :func:`n_parameters` of several fitted heads (a branch's seeded members); None
    when one of them has no count."""
    counts = [n_parameters(head) for head in heads]
    if not counts or any(count is None for count in counts):
        return None
    return float(np.mean(counts))
