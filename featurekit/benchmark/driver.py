"""The benchmark's driver: plan -> execute -> fuse -> score -> results (and report).

Three entry points, each doing what the one below it does plus one step:

* :func:`run` -- from a dataset directory: computes what the store lacks (handcrafted
  descriptors, embeddings, frames for the sequence head), benchmarks, writes ``results.json``,
  ``report.md`` and plots. ``featurekit benchmark`` only parses its arguments into this call.
* :func:`benchmark_store` -- from a feature store.
* :func:`run_benchmark` -- from a features table (:meth:`featurekit.FeatureStore.read`).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from featurekit.benchmark.config import (
    E2E_BRANCH,
    E2E_HEAD,
    HANDCRAFTED_BRANCH,
    SEQUENCE_HEAD_NAMES,
    BenchmarkConfig,
    head_spec,
)
from featurekit.benchmark.curves import learning_curve
from featurekit.benchmark.data import SINGLE_LABEL_FUSIONS, branch_selectors, prepare_data
from featurekit.benchmark.execute import execute
from featurekit.benchmark.fuse import fuse
from featurekit.benchmark.plan import LEAVE_ONE_FOLD_OUT, TRAIN_VAL_EVAL, make_plan, official_split
from featurekit.benchmark.results import assemble_results, save_results
from featurekit.errors import ConfigError, StoreError
from featurekit.fusion import Selector
from featurekit.heads import HeadSpec
from featurekit.neural.logmel import LOGMEL_BRANCH, LogMelBranch
from featurekit.versions import package_versions


def _check_provenance(provenance: Mapping[str, Mapping[str, Any]]) -> None:
    for branch, facts in provenance.items():
        if facts.get("untrained"):
            raise ConfigError(f"branch {branch!r} was computed with untrained (random) weights; "
                              "the benchmark only runs on pretrained embeddings (re-embed "
                              "with real weights)")


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
                  protocol: str = LEAVE_ONE_FOLD_OUT) -> dict[str, Any]:
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
        Parallel fits (-1: all cores). Results do not depend on it, nor on the backend.
    backend : {"loky", "dask"}
        joblib processes on this machine, or a Dask cluster (``scheduler``; a LocalCluster of
        ``n_jobs`` workers without one).
    scheduler : str, optional
        Address of a running Dask scheduler.
    progress : bool, optional
        Progress bar on stderr (default: on unless ``FEATUREKIT_NO_PROGRESS`` is set).
    sequences : mapping of str to np.ndarray, optional
        Branch -> frame sequences (n_clips, n_frames, n_dims), NaN-padded, rows in ``data``'s
        order (:func:`featurekit.sequence.load_sequences`); the sequence head needs them.
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

    Returns
    -------
    dict
        The results (:mod:`featurekit.benchmark.results`): ``primary`` first, then every
        system with per-fold and per-repeat scores, comparisons, contributions, versions,
        config hashes and timings.
    """
    started = time.perf_counter()
    config = config or BenchmarkConfig()
    if protocol not in (LEAVE_ONE_FOLD_OUT, TRAIN_VAL_EVAL):
        raise ConfigError(f"unknown protocol {protocol!r}; choose {LEAVE_ONE_FOLD_OUT} or "
                          f"{TRAIN_VAL_EVAL}")
    if multilabel:
        config = _multilabel_config(config)
    provenance = dict(provenance or {})
    _check_provenance(provenance)
    table = prepare_data(data, config, branches=branches, sequences=sequences,
                         multilabel=multilabel)
    specs = {name: head_spec(name, head_specs) for name in config.heads}
    if E2E_BRANCH in table.branches:
        specs[E2E_HEAD] = head_spec(E2E_HEAD, head_specs)
    outer, fixed_inner = (official_split(table.folds) if protocol == TRAIN_VAL_EVAL
                          else (None, None))
    plan = make_plan(table.branches, config, table.folds,
                     sequence_branches=list(table.sequences), subsets=subsets, pairs=pairs,
                     outer=outer)
    if fixed_inner is not None:
        if config.train_fractions:
            raise ConfigError("learning curves subsample leave-one-fold-out training sets; "
                              "they are not available on an official train-val-eval split")
        plan = replace(plan, fixed_inner=fixed_inner)
    if config.train_fractions and not plan.branch_comparisons:
        raise ConfigError("learning curves compare handcrafted branches + each neural branch "
                          "against that branch alone: the benchmark needs both kinds")
    outputs, splits = execute(
        plan, table, specs, seeds_of=config.seeds, inner_splits_count=config.inner_splits,
        tune=config.tune, with_embeddings="blend" in config.fusions, n_jobs=n_jobs,
        backend=backend, scheduler=scheduler, progress=progress, desc=f"benchmark {dataset}")
    fit_seconds = time.perf_counter() - started
    predictions = fuse(plan, table, outputs, splits, config.seeds, n_jobs=n_jobs,
                       backend=backend, scheduler=scheduler)
    results = assemble_results(plan, table, predictions, config, dataset=dataset)
    curve_fits, curve_seconds = 0, 0.0
    if config.train_fractions:
        curve_started = time.perf_counter()
        results["learning_curve"], curve_fits = learning_curve(
            plan, table, predictions, config, specs, n_jobs=n_jobs, backend=backend,
            scheduler=scheduler, progress=progress)
        curve_seconds = time.perf_counter() - curve_started
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
    if config.tune:
        results["tuned_params"] = {
            f"{unit.fold}:{unit.repeat}:{'+'.join(unit.branches)}/{unit.head}/{unit.kind}":
                output.params for unit, output in outputs.items()}
    return results


def _multilabel_config(config: BenchmarkConfig) -> BenchmarkConfig:
    """``config`` without the fusions that need one class per clip (warned about)."""
    dropped = [name for name in config.fusions if name in SINGLE_LABEL_FUSIONS]
    if not dropped:
        return config
    warnings.warn(f"multi-label task: fusion(s) {', '.join(dropped)} need one class per clip "
                  "and are left out", UserWarning, stacklevel=3)
    return replace(config, fusions=tuple(name for name in config.fusions
                                         if name not in SINGLE_LABEL_FUSIONS))


def read_features(store: Any, dataset: str, *, model: str | Sequence[str] | None = None,
                  recordings: Mapping[str, str] | pd.Series | None = None,
                  branches: Sequence[str] = (HANDCRAFTED_BRANCH,),
                  ) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The features table a benchmark reads: ``handcrafted`` (and ``neural.<model>``).

    Parameters
    ----------
    store : FeatureStore
    dataset : str
    model : str or sequence of str, optional
        Neural model(s) whose branch ``neural.<model>`` joins the handcrafted families;
        ``e2e`` (the end-to-end stream) reads the ``logmel`` branch, so that only clips with
        log-mel frames are kept.
    recordings : mapping of clip_id to recording id, optional
        Inserted as the ``recording`` column (a clip without one is its own recording).
    branches : sequence of str
        Store branches read beside the neural ones (default ``handcrafted``; the reference
        feature sets' branches for a comparison of sets).

    Returns
    -------
    table : pandas.DataFrame
        ``clip_id, fold, label, label_id`` (``recording``) then feature columns.
    provenance : dict
        Store branch -> its provenance.

    Raises
    ------
    StoreError
        A branch is missing from the store.
    ConfigError
        A neural branch was computed with untrained weights.
    """
    models = model_names(model)
    wanted = list(branches) + [LOGMEL_BRANCH if name == E2E_BRANCH else f"neural.{name}"
                               for name in models]
    present = store.branches(dataset)
    missing = [branch for branch in wanted if branch not in present]
    if missing:
        raise StoreError(f"store {store.path} lacks branch(es) {', '.join(missing)} of "
                         f"dataset {dataset!r}; run featurekit extract / embed first")
    provenance = {branch: store.provenance(dataset, branch) for branch in wanted}
    _check_provenance(provenance)
    data = store.read(dataset, branches=wanted)
    if recordings is not None:
        mapped = data["clip_id"].map(pd.Series(recordings) if isinstance(recordings, Mapping)
                                     else recordings)
        data.insert(4, "recording", mapped.fillna(data["clip_id"]).astype(str))
    return data, provenance


def benchmark_store(store: Any, dataset: str, *, model: str | Sequence[str] | None = None,
                    config: BenchmarkConfig | None = None,
                    expected_folds: Sequence[int] | None = None,
                    recordings: Mapping[str, str] | pd.Series | None = None,
                    **options: Any) -> dict[str, Any]:
    """Read ``handcrafted`` (and ``neural.<model>``) from a store and run the benchmark.

    With the sequence head among ``config.heads``, every branch's frame sequences are loaded
    too (:func:`featurekit.sequence.load_sequences`); the store must hold frames.

    Parameters
    ----------
    store : FeatureStore or path-like
    dataset : str
    model : str or sequence of str, optional
        Neural model(s) whose branch ``neural.<model>`` joins the handcrafted families.
    config, expected_folds :
        See :func:`run_benchmark`.
    recordings : mapping of clip_id to recording id, optional
        Source recordings (``Dataset.clips["recording"]``): inner splits and early stopping
        keep them whole, and intervals resample them.
    **options
        ``n_jobs``, ``backend``, ``scheduler``, ``progress``, ``multilabel``, ``protocol`` of
        :func:`run_benchmark`.

    Raises
    ------
    StoreError
        A branch is missing from the store, or lacks frames that the sequence head needs.
    ConfigError
        The neural branch was computed with untrained weights.
    """
    from featurekit.store import FeatureStore

    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    started = time.perf_counter()
    data, provenance = read_features(store, dataset, model=model, recordings=recordings)
    streams = [E2E_BRANCH] if E2E_BRANCH in model_names(model) else []
    if any(head in SEQUENCE_HEAD_NAMES for head in (config or BenchmarkConfig()).heads):
        streams += list(branch_selectors([str(c) for c in data.columns]))
    sequences = None
    if streams:
        from featurekit.sequence import load_sequences

        sequences = load_sequences(store, dataset, streams, data["clip_id"].tolist())
    read_seconds = time.perf_counter() - started
    results = run_benchmark(data, dataset=dataset, config=config, provenance=provenance,
                            expected_folds=expected_folds, sequences=sequences, **options)
    results["timings_s"]["read_store"] = read_seconds
    results["timings_s"]["total"] += read_seconds
    return results


def model_names(model: str | Sequence[str] | None) -> list[str]:
    """Model names of a ``model`` argument (``e2e`` for the end-to-end stream)."""
    return [model] if isinstance(model, str) else list(model or [])


@dataclass(frozen=True)
class BenchmarkRun:
    """What :func:`run` produced: the results and the files written."""

    results: dict[str, Any]
    written: list[Path]


def run(dataset: str, data_dir: str | os.PathLike[str], store: str | os.PathLike[str], *,
        model: str | Sequence[str] | None = "mn04_as", weights: str | None = None,
        config: BenchmarkConfig | None = None, extraction: Any = None,
        out: str | os.PathLike[str] | None = None, n_jobs: int = 1, backend: str = "loky",
        scheduler: str | None = None, progress: bool | None = None) -> BenchmarkRun:
    """Benchmark a dataset end to end: compute what the store lacks, evaluate, write reports.

    Parameters
    ----------
    dataset : str
        Dataset name (``urbansound8k``, ``esc50``, ``esc10``, ``folder``, ``csv``).
    data_dir : path-like
        Where the dataset lies.
    store : path-like
        Feature store (created if missing; resumed when it holds part of the work).
    model : str or sequence of str, optional
        Pretrained model(s) of the neural branch(es), and ``e2e`` for the end-to-end stream
        trained from scratch on the task (:mod:`featurekit.neural.e2e`); None for handcrafted
        branches only.
    weights : str, optional
        Checkpoint file of the model (default: resolved as by ``featurekit embed``).
    config : BenchmarkConfig, optional
    extraction : ExtractionConfig, optional
        Handcrafted configuration; default: the one already stored, else the defaults.
    out : path-like, optional
        Output directory (default ``benchmark-<dataset>``).
    n_jobs, backend, scheduler, progress :
        Parallelism for extraction, embedding and fits (see :func:`run_benchmark`).

    Returns
    -------
    BenchmarkRun

    Raises
    ------
    StoreError
        The sequence head needs frames that a stored branch was computed without.
    ConfigError
        Bad parallelism or configuration.
    """
    from featurekit.benchmark.report import write_report
    from featurekit.datasets import load_dataset
    from featurekit.store import FeatureStore

    if n_jobs == 0 or n_jobs < -1:
        raise ConfigError("n_jobs must be a positive count or -1")
    config = config or BenchmarkConfig()
    data = load_dataset(dataset, data_dir)
    feature_store = FeatureStore(store)
    models = model_names(model)
    # The sequence head learns from frame-level descriptors: compute (and keep computing)
    # frames whenever it is asked for or a branch already holds them.
    fill_store(data, feature_store, model=models, weights=weights, extraction=extraction,
               frames=any(head in SEQUENCE_HEAD_NAMES for head in config.heads),
               n_jobs=n_jobs, backend=backend, scheduler=scheduler, progress=progress)
    results = benchmark_store(feature_store, data.name, model=models, config=config,
                              expected_folds=data.expected_folds,
                              recordings=data.clips.set_index("clip_id")["recording"],
                              n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                              progress=progress, multilabel=data.multilabel,
                              protocol=(TRAIN_VAL_EVAL if data.protocol == TRAIN_VAL_EVAL
                                        else LEAVE_ONE_FOLD_OUT))
    target = Path(out or f"benchmark-{data.name}")
    written = [save_results(results, target), *write_report(results, target).values()]
    return BenchmarkRun(results, written)


def fill_store(data: Any, feature_store: Any, *, model: str | Sequence[str] | None,
               weights: str | None = None, extraction: Any = None, frames: bool = False,
               n_jobs: int = 1, backend: str = "loky", scheduler: str | None = None,
               progress: bool | None = None) -> list[Any]:
    """Compute whatever ``feature_store`` lacks of a dataset's branches, as :func:`run` does.

    Parameters
    ----------
    data : Dataset
        From :func:`featurekit.load_dataset`.
    feature_store : FeatureStore
    model : str or sequence of str, optional
        Pretrained model(s) of the neural branch(es); ``e2e`` adds the ``logmel`` branch.
    weights : str, optional
        Checkpoint file of the model (default: resolved as by ``featurekit embed``).
    extraction : ExtractionConfig, optional
        Handcrafted configuration; default: the one already stored, else the defaults.
    frames : bool
        Frame-level descriptors are needed (kept computing for a branch that holds them).
    n_jobs, backend, scheduler, progress :
        Parallelism of extraction and embedding.

    Returns
    -------
    list of BranchComputer
        The computers of the branches (``handcrafted`` first, then each ``neural.<model>``).

    Raises
    ------
    StoreError
        Frames are needed from a branch stored without them, or computing a branch failed.
    """
    from joblib import effective_n_jobs

    from featurekit.config import ExtractionConfig
    from featurekit.handcrafted import HandcraftedBranch
    from featurekit.runner import run_branch

    models = model_names(model)
    pretrained = [name for name in models if name != E2E_BRANCH]
    if extraction is None:
        extraction = (ExtractionConfig.from_dict(feature_store.provenance(
            data.name, HANDCRAFTED_BRANCH)["config"])
            if HANDCRAFTED_BRANCH in feature_store.branches(data.name) else ExtractionConfig())
    computers: list[Any] = [HandcraftedBranch(extraction)]
    if pretrained:
        from featurekit.neural.branch import NeuralBranch

        computers += [NeuralBranch(name, weights, n_threads=effective_n_jobs(n_jobs))
                      for name in pretrained]
    if E2E_BRANCH in models:
        computers.append(LogMelBranch())
    for computer in computers:
        stored = computer.branch in feature_store.branches(data.name)
        # The e2e stream's branch is nothing but frames.
        has_frames = computer.branch == LOGMEL_BRANCH or (
            stored and bool(feature_store.metadata(data.name, computer.branch).get("frames")))
        if frames and stored and not has_frames:
            command = "extract" if computer.branch == HANDCRAFTED_BRANCH else "embed"
            raise StoreError(f"the sequence head needs frame-level descriptors, but "
                             f"{data.name}/{computer.branch} in store {feature_store.path} was "
                             f"computed without them; use another store, or recompute the "
                             f"branch with `featurekit {command} --frames --overwrite`")
        summary = run_branch(computer, data, feature_store, n_jobs=n_jobs,
                             frames=frames or has_frames, backend=backend,
                             scheduler=scheduler,
                             progress=progress is not False)
        print(summary, file=sys.stderr)
        if summary.exit_code:
            raise StoreError(f"computing {data.name}/{computer.branch} failed: {summary}")
    return computers
