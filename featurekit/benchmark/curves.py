"""Learning curves: does what the handcrafted branches add depend on how much data there is?

For each training fraction, every outer fold's training set is subsampled by whole source
recordings, stratified by class (:func:`subsample_training`), anew for every repeat, so the
draw's noise enters the intervals with the training noise. On those rows the benchmark runs
only the systems of each :class:`~featurekit.benchmark.plan.BranchComparison` of the full run
(by default handcrafted + a neural branch against that branch alone; the pairs of a comparison
of feature sets or of a caller's plan otherwise) and of its synergy comparison (``auto``
against ``single-auto``) when it has one, each side chosen by inner cross-validation of the
subsample, and scores them on the full, untouched test folds. A fraction of 1 is the full
benchmark's own comparison. The draws of different fractions are independent (each seeded by
the base seed, fold and repeat), not nested subsets of each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from featurekit.benchmark.config import BenchmarkConfig
from featurekit.benchmark.data import BenchmarkData
from featurekit.benchmark.execute import execute, validation_counts
from featurekit.benchmark.fuse import Key, Prediction, fuse
from featurekit.benchmark.plan import Plan, Unit, make_plan
from featurekit.benchmark.results import curve_comparisons
from featurekit.errors import ConfigError
from featurekit.learn.heads.base import HeadSpec
from featurekit.names import TRAIN_VAL_EVAL


def check_curve(config: BenchmarkConfig, *, protocol: str, comparisons: bool) -> None:
    """Refuse a learning curve that cannot be drawn (the drivers call it before any work).

    Parameters
    ----------
    config : BenchmarkConfig
        Its ``train_fractions`` ask for the curve.
    protocol : str
        The evaluation protocol: curves subsample leave-one-fold-out training sets.
    comparisons : bool
        Whether the benchmark compares branches (handcrafted + a neural branch against that
        branch alone): the only systems a curve runs.

    Raises
    ------
    ConfigError
        Fractions with the official train-val-eval split, or with nothing to compare.
    """
    if not config.train_fractions:
        return
    if protocol == TRAIN_VAL_EVAL:
        raise ConfigError("learning curves subsample leave-one-fold-out training sets; "
                          "they are not available on an official train-val-eval split")
    if not comparisons:
        raise ConfigError("learning curves compare handcrafted branches + each neural branch "
                          "against that branch alone: the benchmark needs both kinds")


def subsample_training(y: np.ndarray, groups: np.ndarray, fraction: float, *,
                       random_state: int | Sequence[int]) -> np.ndarray:
    """Rows of a training set kept at ``fraction`` of its groups, stratified by class.

    Each group (source recording) belongs to the class most of its rows have; within each
    class ``ceil(fraction * groups of the class)`` groups are drawn without replacement
    (at least one), and every row of a drawn group is kept.

    Parameters
    ----------
    y : np.ndarray of int, shape (n_rows,)
    groups : np.ndarray, shape (n_rows,)
        Group of each row; rows of one group are kept or dropped together.
    fraction : float
        In (0, 1].
    random_state : int or sequence of int
        Seed of the draw (``numpy.random.default_rng``).

    Returns
    -------
    np.ndarray of int
        Sorted positions into ``y`` of the kept rows.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"a training fraction must be in (0, 1], got {fraction}")
    codes, group_of_row = np.unique(np.asarray(groups), return_inverse=True)
    classes, y_codes = np.unique(np.asarray(y), return_inverse=True)
    counts = np.zeros((codes.size, classes.size), dtype=np.int64)
    np.add.at(counts, (group_of_row, y_codes), 1)
    group_class = counts.argmax(axis=1)
    rng = np.random.default_rng(random_state)
    kept = np.zeros(codes.size, dtype=bool)
    for label in range(classes.size):
        members = np.flatnonzero(group_class == label)
        if members.size:
            wanted = max(1, math.ceil(fraction * members.size))
            kept[rng.choice(members, size=wanted, replace=False)] = True
    return np.flatnonzero(kept[group_of_row])


def subsampled_rows(plan: Plan, data: BenchmarkData, fraction: float,
                    config: BenchmarkConfig) -> dict[tuple[int, int], np.ndarray]:
    """Training rows of each outer fold and repeat at ``fraction`` of its recordings (its
    clips where recordings are unknown)."""
    groups = data.groups if data.recordings_known else np.arange(data.y.size)
    return {(fold, repeat): train[subsample_training(
                data.y[train], groups[train], fraction,
                random_state=(config.seed, fold, repeat))]
            for fold, train, _ in plan.outer for repeat in range(config.repeats)}


def fraction_plan(plan: Plan, data: BenchmarkData, fraction: float,
                  config: BenchmarkConfig) -> Plan:
    """The plan of one learning-curve point: the comparisons of ``plan`` on its training rows
    subsampled at ``fraction`` (:func:`subsampled_rows`).

    The full run's own subsets and pairs (a comparison of feature sets, a caller's plan), not
    the default ablation: every fraction compares the systems of fraction 1.
    """
    subsets = {system.branches: list(system.roles) for system in plan.systems}
    pairs = [(comparison.branches, comparison.branch) for comparison in plan.branch_comparisons]
    return make_plan(data.branches, config, data.folds, sequence_branches=list(data.sequences),
                     outer=plan.outer, comparisons_only=True, subsets=subsets, pairs=pairs,
                     train_rows=subsampled_rows(plan, data, fraction, config))


def _entries(plan: Plan, data: BenchmarkData, predictions: Mapping[Key, Prediction],
             config: BenchmarkConfig, fraction: float, **workers: Any
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One fraction's branch comparisons and its synergy comparison (none without one), their
    bootstraps on the ``workers`` (``n_jobs``, ``backend``, ``scheduler``)."""
    sizes = [plan.training(fold, repeat).size for fold in plan.folds
             for repeat in range(config.repeats)]
    point = {"fraction": fraction, "train_clips": float(np.mean(sizes))}
    entries, synergy = curve_comparisons(plan, data, predictions, config, **workers)
    return ([{**point, **entry} for entry in entries],
            [] if synergy is None else [{**point, **synergy}])


def learning_curve(plan: Plan, data: BenchmarkData, predictions: Mapping[Key, Prediction],
                   config: BenchmarkConfig, specs: Mapping[str, HeadSpec],
                   unit_seconds: Mapping[float | None, Mapping[Unit, float]] | None = None,
                   **options: Any,
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int,
                              dict[str, dict[str, dict[str, int]]]]:
    """The branch comparisons and the synergy comparison at every fraction of
    ``config.train_fractions``.

    Parameters
    ----------
    plan, data, predictions :
        The full benchmark's plan, data and predictions (fraction 1).
    config : BenchmarkConfig
    specs : mapping of head name to HeadSpec
    unit_seconds : mapping of float to mapping of Unit to float, optional
        Per fraction, the modelled seconds of its units
        (:attr:`~featurekit.benchmark.estimate.CostPlan.unit_seconds`), which order its fits
        as the estimate did.
    **options
        ``n_jobs``, ``backend``, ``scheduler``, ``progress`` of
        :func:`~featurekit.benchmark.execute.execute` (the fusions and the comparisons'
        bootstraps get the first three).

    Returns
    -------
    entries : list of dict
        ``fraction, branch, system, reference, accuracy, reference_accuracy`` (0-1),
        ``gain_pp, ci95_pp, per_fold_pp`` (percentage points), ``train_clips`` (mean training
        clips per outer fold and repeat) and the selections' choices; by fraction, then branch.
    synergy : list of dict
        Per fraction, ``fraction``, ``train_clips``, the keys of results.json's ``synergy``
        (:func:`~featurekit.benchmark.results.curve_comparisons`), ``score, reference_score,
        accuracy, reference_accuracy``; empty when the run has no synergy comparison.
    n_fits : int
        Heads fitted for the fractions below 1.
    validation : dict of str to dict
        Per fraction below 1 (``"0.1"``), the early-stopping split counts of its fits
        (:func:`~featurekit.benchmark.execute.validation_counts`).
    """
    entries: list[dict[str, Any]] = []
    synergy: list[dict[str, Any]] = []
    n_fits = 0
    validation: dict[str, dict[str, dict[str, int]]] = {}
    workers = {key: value for key, value in options.items() if key != "progress"}
    for fraction in sorted(config.train_fractions):
        if fraction == 1.0:
            pairs, point = _entries(plan, data, predictions, config, fraction, **workers)
            entries, synergy = entries + pairs, synergy + point
            continue
        curve_plan = fraction_plan(plan, data, fraction, config)
        outputs, splits = execute(
            curve_plan, data, specs, seeds_of=config.seeds,
            inner_splits_count=config.inner_splits, tune=config.tune,
            with_embeddings="blend" in config.fusions, desc=f"learning curve {fraction:g}",
            unit_seconds=(unit_seconds or {}).get(fraction), **options)
        n_fits += sum(output.n_fits for output in outputs.values())
        validation[f"{fraction:g}"] = validation_counts(outputs, data.grouping)
        curve_predictions = fuse(curve_plan, data, outputs, splits, config.seeds, **workers)
        pairs, point = _entries(curve_plan, data, curve_predictions, config, fraction,
                                **workers)
        entries, synergy = entries + pairs, synergy + point
    return entries, synergy, n_fits, validation
