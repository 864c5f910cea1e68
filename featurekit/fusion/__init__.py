"""Fusion of feature branches: one scikit-learn estimator per method, built from public steps.

A *branch* is a group of columns (a descriptor family, a pretrained embedding) or a stream of
frame sequences. The eight fusions, and the estimator implementing each:

``early``
    one head on the concatenated columns -- :class:`EarlyFusionClassifier`;
``mean``, ``weighted``, ``stacking``, ``calibrated``
    one head per branch, their class probabilities combined by a late-fusion rule fitted on
    inner out-of-fold probabilities (:data:`FUSION_RULES`: :class:`MeanFusion`,
    :class:`WeightedFusion`, :class:`StackingFusion`, :class:`CalibratedFusion`) --
    :class:`LateFusionClassifier` with ``fusion=<rule>``;
``oof_features``
    a target branch's head reading its own columns plus the other branches' out-of-fold
    log-probabilities -- :class:`OOFFeaturesClassifier`;
``blend``
    frozen per-stream sequence embeddings blended by a linear classifier per inner split --
    :class:`EmbeddingBlendClassifier`;
``joint``
    one sequence model with an encoder per stream trained together, blended by a learned
    per-clip gate -- :class:`JointSequenceClassifier`.

The steps are public so that a benchmark composes the same computations:
:func:`fit_branch` / :func:`predict_members` (seeded heads and their out-of-fold twins),
:func:`make_fusion` (rules), :func:`cross_fitted_proba` (a rule's honest out-of-fold score on
training rows, with :func:`restrict_splits`), :func:`log_probability_features` and
:func:`fit_blender` / :func:`blend_probabilities`.

Modules: :mod:`~featurekit.fusion.branches`, :mod:`~featurekit.fusion.rules`,
:mod:`~featurekit.fusion.crossfit`, :mod:`~featurekit.fusion.estimators`,
:mod:`~featurekit.fusion.oof_features`, :mod:`~featurekit.fusion.blend` and
:mod:`~featurekit.fusion.joint`. The last two are loaded on first use of their names, so
``import featurekit.fusion`` does not import torch.
"""

from __future__ import annotations

from featurekit._util.lazy import lazy_getattr
from featurekit.fusion.branches import (
    FittedBranch,
    Head,
    Selector,
    build_head,
    fit_branch,
    is_seeded,
    member_seeds,
    predict_members,
    resolve_columns,
)
from featurekit.fusion.crossfit import cross_fitted_proba, restrict_splits
from featurekit.fusion.estimators import EarlyFusionClassifier, LateFusionClassifier
from featurekit.fusion.oof_features import OOFFeaturesClassifier, log_probability_features
from featurekit.fusion.rules import (
    FUSION_RULES,
    FUSIONS,
    CalibratedFusion,
    FusionRule,
    MeanFusion,
    StackingFusion,
    WeightedFusion,
    fit_temperature,
    make_fusion,
)

#: Names of the sequence-model fusions, by module (loaded on first use: torch).
_LAZY = {
    "EmbeddingBlendClassifier": "featurekit.fusion.blend",
    "blend_probabilities": "featurekit.fusion.blend",
    "fit_blender": "featurekit.fusion.blend",
    "JointSequenceClassifier": "featurekit.fusion.joint",
}

__all__ = [
    "FUSIONS",
    "FUSION_RULES",
    "CalibratedFusion",
    "EarlyFusionClassifier",
    "FittedBranch",
    "FusionRule",
    "Head",
    "LateFusionClassifier",
    "MeanFusion",
    "OOFFeaturesClassifier",
    "Selector",
    "StackingFusion",
    "WeightedFusion",
    "build_head",
    "cross_fitted_proba",
    "fit_branch",
    "fit_temperature",
    "is_seeded",
    "log_probability_features",
    "make_fusion",
    "member_seeds",
    "predict_members",
    "resolve_columns",
    "restrict_splits",
    *_LAZY,
]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
