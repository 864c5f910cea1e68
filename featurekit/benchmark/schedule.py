"""Longest first: the order in which a stage's units go to the workers.

joblib hands tasks out in the order they are given, each to the first free worker; a long
unit given last runs alone while the other workers sit idle (a 68-minute run with the
end-to-end stream spent its last quarter of an hour on one core). Units are therefore given
costliest first: by the calibrated cost model (:mod:`featurekit.benchmark.estimate`) when the
run has one for every head of the stage, else by a static key -- the torch heads (the e2e
CNN, the sequence head), then the MLP, XGBoost and logistic regression, and within a head the
most rows x columns fitted. The order changes when a unit runs, never what it computes: each
unit's seeds and inner splits are its own (its fold and repeat's), and the executor hands the
results back in the plan's order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from featurekit.benchmark.config import OOF_FEATURES
from featurekit.benchmark.data import BenchmarkData
from featurekit.benchmark.plan import Plan, Unit, oof_feature_target
from featurekit.learn.splits import Split
from featurekit.names import E2E_HEAD, SEQUENCE_HEAD_NAMES

#: Heads by the cost of one fit, costliest first, where no calibration says: the torch heads,
#: then the tabular ones. A head not named here (given by a caller) comes after them.
HEAD_ORDER = (E2E_HEAD, *SEQUENCE_HEAD_NAMES, "mlp", "xgb", "logreg")


def unit_width(unit: Unit, data: BenchmarkData) -> int:
    """Numbers a unit's head reads per clip: its columns (an ``oof_features`` unit's target
    columns and one log-probability per class of each other branch), or the values of its
    frame sequences (the e2e stream counted by its log-mel frames, which its CNN's frames
    replace for a sequence head)."""
    if unit.head in SEQUENCE_HEAD_NAMES or unit.head == E2E_HEAD:
        return int(sum(np.prod(np.shape(data.sequences[name])[1:]) for name in unit.branches))
    if unit.kind == OOF_FEATURES:
        target = oof_feature_target(unit.branches)
        return int(data.columns(target).size + data.n_classes
                   * (len(unit.branches) - len(target)))
    return int(data.columns(unit.branches).size)


def static_cost(unit: Unit, data: BenchmarkData, train: np.ndarray,
                splits: Sequence[Split]) -> tuple[int, int]:
    """A unit's cost key without a calibration: its head's rank (:data:`HEAD_ORDER`, negated
    so that a larger key is costlier), then the rows it fits (its training rows, and its inner
    twins' with ``unit.inner``) times its :func:`unit_width`.

    Parameters
    ----------
    unit : Unit
    data : BenchmarkData
    train : np.ndarray of int
        The training rows of the unit's outer fold and repeat.
    splits : sequence of (train, validation)
        Their inner splits in the unit's repeat.

    Returns
    -------
    tuple of int
    """
    rank = HEAD_ORDER.index(unit.head) if unit.head in HEAD_ORDER else len(HEAD_ORDER)
    rows = len(train) + (sum(len(fit) for fit, _ in splits) if unit.inner else 0)
    return -rank, rows * unit_width(unit, data)


def longest_first(units: Sequence[Unit], cost: Callable[[Unit], Any]) -> list[int]:
    """Positions of ``units``, costliest first by ``cost``; equal costs keep their order."""
    return sorted(range(len(units)), key=lambda position: cost(units[position]), reverse=True)


def submission_order(stage: Sequence[Unit], plan: Plan, data: BenchmarkData,
                     splits: Mapping[tuple[int, int], Sequence[Split]],
                     unit_seconds: Mapping[Unit, float] | None = None) -> list[int]:
    """The order in which the executor gives a stage's units to the workers.

    Parameters
    ----------
    stage : sequence of Unit
        One stage of ``plan``.
    plan : Plan
    data : BenchmarkData
    splits : mapping of (fold, repeat) to list of (train, validation)
        The inner splits of each outer fold and repeat.
    unit_seconds : mapping of Unit to float, optional
        Modelled seconds of the plan's units (:attr:`featurekit.benchmark.estimate.CostPlan.
        unit_seconds`); used when it covers the whole stage, else :func:`static_cost`.

    Returns
    -------
    list of int
        Positions into ``stage``, costliest first (:func:`longest_first`).
    """
    if unit_seconds is not None and all(unit in unit_seconds for unit in stage):
        return longest_first(stage, unit_seconds.__getitem__)
    return longest_first(stage, lambda unit: static_cost(
        unit, data, plan.training(unit.fold, unit.repeat), splits[unit.fold, unit.repeat]))
