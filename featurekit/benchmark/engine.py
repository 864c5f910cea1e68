"""The engine's one pass over a features table: plan -> execute -> fuse -> score -> results.

:func:`run_benchmark` evaluates every feature group alone, together and left out, by
leave-one-fold-out or on an official train -> validation -> eval split; the drivers
(:mod:`featurekit.benchmark.driver`, :mod:`featurekit.benchmark.sets`) feed it a store read.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from featurekit._util.versions import package_versions
from featurekit.benchmark.config import BenchmarkConfig, head_spec
from featurekit.benchmark.curves import check_curve, learning_curve
from featurekit.benchmark.data import SINGLE_LABEL_FUSIONS, prepare_data
from featurekit.benchmark.estimate import Stage, estimate, measured_peak_rss
from featurekit.benchmark.execute import execute, validation_counts
from featurekit.benchmark.fuse import fuse
from featurekit.benchmark.head_settings import settings_record, with_settings
from featurekit.benchmark.plan import make_plan, official_split
from featurekit.benchmark.results import assemble_results
from featurekit.benchmark.robustness import CorruptedTable, robustness_plan, robustness_results
from featurekit.errors import ConfigError
from featurekit.fusion import Selector
from featurekit.learn.heads.base import HeadSpec
from featurekit.names import (
    E2E_BRANCH,
    E2E_HEAD,
    LEAVE_ONE_FOLD_OUT,
    TRAIN_VAL_EVAL,
)
from featurekit.pipeline import (
    check_provenance,
)


def run_benchmark(data: pd.DataFrame, *, dataset: str,
                  branches: Mapping[str, Selector] | None = None,
                  config: BenchmarkConfig | None = None,
                  head_specs: Mapping[str, HeadSpec] | None = None,
                  provenance: Mapping[str, Mapping[str, Any]] | None = None,
                  expected_folds: Sequence[int] | None = None, n_jobs: int = 1,
                  backend: str = "loky", scheduler: str | None = None,
                  progress: bool | None = None,
                  sequences: Mapping[str, np.ndarray] | None = None,
                  subsets: Mapping[tuple[str, ...], Sequence[str]] | None = None,
                  pairs: Sequence[tuple[tuple[str, ...], str]] | None = None,
                  multilabel: bool = False,
                  protocol: str = LEAVE_ONE_FOLD_OUT, calibrate: bool = False,
                  plan_only: bool = False,
                  on_plan: Callable[[dict[str, Any]], None] | None = None,
                  stages: Sequence[Stage] = (),
                  corrupted: Sequence[CorruptedTable] = ()) -> dict[str, Any]:
    """Evaluate every branch alone, together and left out, by leave-one-fold-out (or on an
    official train -> validation -> eval split).

    Parameters
    ----------
    data : pandas.DataFrame
        ``clip_id, fold, label, label_id`` (and ``recording``, each clip's source recording,
        when known) then feature columns (a store read). NaN features are allowed;
        infinities are treated as NaN.
    dataset : str
        Dataset name recorded in the results.
    branches : mapping of str to selector, optional
        Benchmark branches and their columns; default
        :func:`~featurekit.benchmark.branch_selectors`.
    config : BenchmarkConfig, optional
    head_specs : mapping of str to HeadSpec, optional
        Extra or replacement heads by name (looked up before the registry).
    provenance : mapping of str to dict, optional
        Store branch -> its provenance; a branch marked ``untrained`` is refused.
    expected_folds : sequence of int, optional
        The dataset's complete fold list, to report missing folds.
    n_jobs : int
        Parallel fits, fusions and bootstraps of the comparisons (-1: all cores). Results do
        not depend on it, nor on the backend.
    backend : {"loky", "dask"}
        joblib processes on this machine, or a Dask cluster (``scheduler``; a LocalCluster of
        ``n_jobs`` workers without one).
    scheduler : str, optional
        Address of a running Dask scheduler.
    progress : bool, optional
        Progress bar on stderr (default: on unless ``FEATUREKIT_NO_PROGRESS`` is set).
    sequences : mapping of str to np.ndarray, optional
        Branch -> frame sequences (n_clips, n_frames, n_dims), NaN-padded, rows in ``data``'s
        order (:func:`featurekit.store.sequences.load_sequences`); the sequence head needs them.
    subsets, pairs : optional
        Branch subsets and comparison pairs of :func:`~featurekit.benchmark.plan.make_plan`
        (default: the ablation of handcrafted and neural branches).
    multilabel : bool
        Each clip's ``label`` is its label set joined by commas: heads fit label indicators,
        fusions combine per-class probabilities, selections and comparisons use macro mAP.
        The fusions that need one class per clip (``calibrated``, ``blend``) are dropped
        from ``config`` with a warning.
    protocol : {"leave-one-fold-out", "train-val-eval"}
        ``train-val-eval``: folds 1, 2, 3 are the official train, validation and eval sets
        (:func:`~featurekit.benchmark.plan.official_split`); the eval clips are scored once
        and intervals resample them.
    calibrate : bool
        Estimate each stage's seconds and the peak memory before fitting, from a short
        calibration on this machine (:mod:`featurekit.benchmark.calibrate`: a few fits of
        each head on a sample of the first outer fold's training rows, fusions of synthetic
        probabilities); without, the plan counts the work and the run measures each stage.
    plan_only : bool
        Return ``{"plan": ...}`` (:func:`~featurekit.benchmark.estimate.estimate`, calibrated)
        without fitting any unit.
    on_plan : callable, optional
        Called with the plan (:meth:`~featurekit.benchmark.estimate.CostPlan.to_dict`) once
        it is estimated, before any unit is fitted.
    stages : sequence of Stage
        Stages a driver already estimated or ran (filling the store, reading it), which the
        plan records beside its own.
    corrupted : sequence of CorruptedTable
        A robustness run: the features of corrupted copies of the test clips, which the
        systems fitted and chosen on clean audio also predict
        (:mod:`featurekit.benchmark.robustness`; clip-level heads only).

    Returns
    -------
    dict
        The results (:mod:`featurekit.benchmark.results`): ``primary`` first, then every
        system with per-fold and per-repeat scores, comparisons, contributions, versions,
        config hashes, timings, ``plan`` (the work and the estimated and measured seconds of
        each stage, :mod:`featurekit.benchmark.estimate`), and ``validation_splits``: per
        head, how many fits (members and inner twins) stopped early on held-out groups (named
        by ``grouping``), on held-out clips, or had no validation rows
        (``learning_curve_validation_splits`` per fraction); with train fractions,
        ``learning_curve`` and ``learning_curve_synergy``.
    """
    started = time.perf_counter()
    config = config or BenchmarkConfig()
    config.validate(head_specs)
    if protocol not in (LEAVE_ONE_FOLD_OUT, TRAIN_VAL_EVAL):
        raise ConfigError(f"unknown protocol {protocol!r}; choose {LEAVE_ONE_FOLD_OUT} or "
                          f"{TRAIN_VAL_EVAL}")
    if multilabel:
        config = _multilabel_config(config)
    provenance = dict(provenance or {})
    check_provenance(provenance)
    if corrupted and sequences:
        raise ConfigError("corruptions are scored on clip-level features: a robustness run "
                          "takes no frame sequences (sequence heads, the e2e stream)")
    table = prepare_data(data, config, branches=branches, sequences=sequences,
                         multilabel=multilabel,
                         corrupted={entry.name: entry.table for entry in corrupted})
    specs = {name: head_spec(name, head_specs) for name in config.heads}
    if E2E_BRANCH in table.branches:
        specs[E2E_HEAD] = head_spec(E2E_HEAD, head_specs)
    specs = with_settings(specs, config.head_settings)
    outer, fixed_inner = (official_split(table.folds) if protocol == TRAIN_VAL_EVAL
                          else (None, None))
    plan = make_plan(table.branches, config, table.folds,
                     sequence_branches=list(table.sequences), subsets=subsets, pairs=pairs,
                     outer=outer)
    check_curve(config, protocol=protocol, comparisons=bool(plan.branch_comparisons))
    if fixed_inner is not None:
        plan = replace(plan, fixed_inner=fixed_inner)
    if corrupted:
        plan = robustness_plan(plan)
    cost = estimate(plan, table, config, specs, dataset=dataset, n_jobs=n_jobs,
                    backend=backend, scheduler=scheduler, stages=stages,
                    calibrated=calibrate or plan_only)
    if on_plan is not None:
        on_plan(cost.to_dict())
    if plan_only:
        return {"plan": cost.to_dict()}
    fits_started = time.perf_counter()
    outputs, splits = execute(
        plan, table, specs, seeds_of=config.seeds, inner_splits_count=config.inner_splits,
        tune=config.tune, with_embeddings="blend" in config.fusions, n_jobs=n_jobs,
        backend=backend, scheduler=scheduler, progress=progress, desc=f"benchmark {dataset}",
        unit_seconds=cost.unit_seconds.get(None))
    fit_seconds = time.perf_counter() - started
    fusion_started = time.perf_counter()
    cost.stage("fits").measured_s = fusion_started - fits_started
    predictions = fuse(plan, table, outputs, splits, config.seeds, n_jobs=n_jobs,
                       backend=backend, scheduler=scheduler)
    cost.stage("fusion").measured_s = time.perf_counter() - fusion_started
    statistics_started = time.perf_counter()
    results = assemble_results(plan, table, predictions, config, dataset=dataset,
                               n_jobs=n_jobs, backend=backend, scheduler=scheduler)
    if corrupted:
        results.update(robustness_results(plan, table, predictions, config, corrupted,
                                          n_jobs=n_jobs, backend=backend,
                                          scheduler=scheduler))
    cost.stage("statistics").measured_s = time.perf_counter() - statistics_started
    results["validation_splits"] = validation_counts(outputs, table.grouping)
    results["head_settings"] = settings_record(specs, dataset, config.head_settings)
    curve_fits, curve_seconds = 0, 0.0
    if config.train_fractions:
        curve_started = time.perf_counter()
        (results["learning_curve"], results["learning_curve_synergy"], curve_fits,
         results["learning_curve_validation_splits"]) = learning_curve(
            plan, table, predictions, config, specs, n_jobs=n_jobs, backend=backend,
            scheduler=scheduler, progress=progress, unit_seconds=cost.unit_seconds)
        curve_seconds = time.perf_counter() - curve_started
        cost.stage("learning_curve").measured_s = curve_seconds
    present = [int(f) for f in np.unique(table.folds)]
    results.update({
        "expected_folds": sorted(int(f) for f in expected_folds) if expected_folds else present,
        "missing_folds": sorted(set(int(f) for f in expected_folds or ()) - set(present)),
        "n_fits": sum(output.n_fits for output in outputs.values()) + curve_fits,
        "versions": package_versions("featurekit", "numpy", "pandas", "scipy", "scikit-learn",
                                     "xgboost", "torch"),
        "config_hashes": {"benchmark": config.config_hash(head_specs),
                          **{branch: facts.get("config_hash")
                             for branch, facts in provenance.items()}},
        "provenance": provenance,
        "timings_s": {"total": time.perf_counter() - started, "fits": fit_seconds,
                      **{f"fit_{head}": sum(output.seconds for unit, output in outputs.items()
                                            if unit.head == head) for head in specs},
                      "learning_curve": curve_seconds,
                      "fusion_and_statistics": (time.perf_counter() - started - fit_seconds
                                                - curve_seconds)},
    })
    cost.measured_wall_s = (time.perf_counter() - started
                            + sum(stage.measured_s or 0.0 for stage in stages))
    cost.measured_peak_rss_bytes = measured_peak_rss(outputs.values())
    results["plan"] = cost.to_dict()
    if config.tune:
        results["tuned_params"] = {
            f"{unit.fold}:{unit.repeat}:{'+'.join(unit.branches)}/{unit.head}/{unit.kind}":
                output.params for unit, output in outputs.items()}
    return results


def dataset_task(dataset: Any) -> dict[str, Any]:
    """The options of :func:`run_benchmark` that a dataset's own task fixes: ``multilabel``
    (its clips carry label sets) and ``protocol`` (its official train-val-eval split, else
    leave-one-fold-out), so that every driver scores a dataset as its protocol says.

    Parameters
    ----------
    dataset : Dataset
        A loaded dataset (:func:`featurekit.datasets.load_dataset`).

    Returns
    -------
    dict
        ``{"multilabel": bool, "protocol": str}``.
    """
    return {"multilabel": bool(dataset.multilabel),
            "protocol": (TRAIN_VAL_EVAL if dataset.protocol == TRAIN_VAL_EVAL
                         else LEAVE_ONE_FOLD_OUT)}


def _multilabel_config(config: BenchmarkConfig) -> BenchmarkConfig:
    """``config`` without the fusions that need one class per clip (warned about)."""
    dropped = [name for name in config.fusions if name in SINGLE_LABEL_FUSIONS]
    if not dropped:
        return config
    warnings.warn(f"multi-label task: fusion(s) {', '.join(dropped)} need one class per clip "
                  "and are left out", UserWarning, stacklevel=3)
    return replace(config, fusions=tuple(name for name in config.fusions
                                         if name not in SINGLE_LABEL_FUSIONS))
