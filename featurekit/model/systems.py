"""Which benchmark system a trained model fits: the plan of its one training split, the check
of a system's name before any work, and the :mod:`featurekit.fusion` estimator of a system.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from featurekit.benchmark.config import (
    AUTO,
    HANDCRAFTED_FAMILIES,
    LATE_FUSIONS,
    OOF_FEATURES,
    BenchmarkConfig,
    head_spec,
)
from featurekit.benchmark.plan import Plan, System, make_plan, oof_feature_target
from featurekit.config import ExtractionConfig
from featurekit.errors import ConfigError
from featurekit.names import HANDCRAFTED_BRANCH
from featurekit.pipeline import model_branches

__all__ = ["TRAINING_SPLIT", "check_system", "store_branch", "system_estimator",
           "training_plan"]


#: Fold label of the single outer split :func:`train` plans over its training clips.
TRAINING_SPLIT = 0


def store_branch(branch: str) -> str:
    """The feature-store branch holding a benchmark branch's columns."""
    return HANDCRAFTED_BRANCH if branch in HANDCRAFTED_FAMILIES else branch


def training_plan(system: Any, branches: Sequence[str], config: BenchmarkConfig,
                  rows: np.ndarray) -> Plan:
    """The plan of one split that trains on ``rows`` (and tests on them), refusing a
    ``system`` it cannot fit.

    :func:`~featurekit.model.train.train` calls it (through :func:`check_system`) before any
    work, with the branches the store will hold and no rows, so that a mistyped system stops
    it before extraction.

    Parameters
    ----------
    system : str
        ``"auto"`` or a system name (:class:`AudioClassifier`).
    branches : sequence of str
        Benchmark branches, in column order.
    config : BenchmarkConfig
    rows : np.ndarray of int
        The training clips.

    Returns
    -------
    Plan

    Raises
    ------
    ConfigError
        An unknown head in ``config``; ``system`` is not a system of the plan, or is
        ``auto`` with nothing to choose from.
    """
    config.validate()
    if not isinstance(system, str) or not system:
        raise ConfigError(f"system must be 'auto' or a system name, got {system!r}")
    plan = make_plan(branches, config, np.full(rows.size, TRAINING_SPLIT),
                     outer=[(TRAINING_SPLIT, rows, rows)])
    names = [candidate.name for candidate in plan.systems]
    if system == AUTO and not plan.auto_candidates:
        raise ConfigError("'auto' chooses among fused systems over every branch, and there "
                          f"is only {', '.join(branches)}: name a system instead")
    if system != AUTO and system not in names:
        raise ConfigError(f"unknown system {system!r} for branches {', '.join(branches)} and "
                          f"heads {', '.join(config.heads)}; e.g. {', '.join(names[:3])}, or "
                          "'auto'")
    return plan


def check_system(system: Any, extraction: ExtractionConfig, model: str | None,
                 config: BenchmarkConfig) -> None:
    """Refuse, before any feature is computed, a ``system`` that the branches of
    ``extraction``'s families and ``model``'s embeddings cannot make (see
    :func:`training_plan`)."""
    training_plan(system, [*extraction.families, *model_branches(model)], config,
                  np.arange(0))


def system_estimator(system: System, columns: Mapping[str, np.ndarray],
                      config: BenchmarkConfig) -> BaseEstimator:
    """The :mod:`featurekit.fusion` estimator of a benchmark system, seeded as its first
    repeat (``columns``: each branch's positions in the estimator's input)."""
    from featurekit.fusion import (
        EarlyFusionClassifier,
        LateFusionClassifier,
        OOFFeaturesClassifier,
    )

    head = head_spec(system.head)
    options = {"n_seeds": config.n_seeds, "inner_splits": config.inner_splits,
               "tune": config.tune, "random_state": config.seeds(0)[0]}
    branches = {name: columns[name] for name in system.branches}
    # A single branch is early fusion of one branch: the same seeded members on its columns.
    if system.fusion in (None, "early"):
        return EarlyFusionClassifier(branches, head, **options)
    if system.fusion in LATE_FUSIONS:
        return LateFusionClassifier(branches, head, system.fusion, **options)
    if system.fusion == OOF_FEATURES:
        target, = oof_feature_target(system.branches)  # one branch without the e2e stream
        return OOFFeaturesClassifier(branches, target, head, **options)
    raise ConfigError(f"system {system.name!r}: training {system.fusion!r} systems is not "
                      f"supported (functionals heads with early, late or oof_features "
                      f"fusion are)")
