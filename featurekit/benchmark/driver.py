"""The benchmark's driver: plan -> execute -> fuse -> score -> results (and report).

Three entry points, each doing what the one below it does plus one step:

* :func:`run` -- from a dataset directory: computes what the store lacks (handcrafted
  descriptors, embeddings, frames for the sequence head, reference feature sets), benchmarks,
  writes ``results.json``, ``report.md`` and plots. ``featurekit benchmark`` only parses its
  arguments into this call.
* :func:`benchmark_store` -- from a feature store (:func:`featurekit.benchmark.sets.
  benchmark_sets` for a comparison of feature sets).
* :func:`~featurekit.benchmark.engine.run_benchmark` -- from a features table
  (:meth:`featurekit.FeatureStore.read`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from featurekit._util.parallel import check_backend
from featurekit.benchmark.config import DEFAULT_ABLATION, BenchmarkConfig
from featurekit.benchmark.curves import check_curve
from featurekit.benchmark.data import branch_selectors
from featurekit.benchmark.engine import dataset_task, run_benchmark
from featurekit.benchmark.estimate import (
    CostPlan,
    corrupt_stage,
    fill_stage,
    read_stage,
    record_stage,
    save_plan,
)
from featurekit.benchmark.plan import leave_one_fold_out, official_split
from featurekit.benchmark.results import save_results
from featurekit.benchmark.robustness import CorruptedTable, check_robustness
from featurekit.computers.corrupted import Corruption, parse_corruptions
from featurekit.computers.imported import imported_models
from featurekit.computers.sets import FEATURE_SETS, parse_sets
from featurekit.errors import ConfigError
from featurekit.names import (
    E2E_BRANCH,
    HANDCRAFTED_BRANCH,
    LEAVE_ONE_FOLD_OUT,
    SEQUENCE_HEAD_NAMES,
    neural_branch,
)
from featurekit.pipeline import (
    check_corruptible,
    check_models,
    check_n_jobs,
    corrupted_dataset,
    estimate_fill,
    fill_store,
    model_names,
    read_features,
    stored_extraction,
)


def benchmark_store(store: Any, dataset: str, *, model: str | Sequence[str] | None = None,
                    config: BenchmarkConfig | None = None,
                    expected_folds: Sequence[int] | None = None,
                    recordings: Mapping[str, str] | pd.Series | None = None,
                    clips: pd.DataFrame | None = None,
                    **options: Any) -> dict[str, Any]:
    """Read ``handcrafted`` (and ``neural.<model>``) from a store and run the benchmark.

    With the sequence head among ``config.heads``, every branch's frame sequences are loaded
    too (:func:`featurekit.store.sequences.load_sequences`; the store must hold frames), into
    memory-mapped files in a temporary directory (``TMPDIR``) removed after the run.

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
    clips : pandas.DataFrame, optional
        The dataset's clips table (``Dataset.clips``): folds, labels and recordings come from
        it rather than from the store (:func:`featurekit.pipeline.read_features`).
    **options
        ``n_jobs``, ``backend``, ``scheduler``, ``progress``, ``multilabel``, ``protocol``,
        ``calibrate``, ``plan_only``, ``on_plan``, ``stages`` of :func:`run_benchmark` (the
        read joins the stages).

    Raises
    ------
    StoreError
        A branch is missing from the store, or lacks frames that the sequence head needs.
    ConfigError
        The neural branch was computed with untrained weights.
    """
    from featurekit.store.reader import FeatureStore

    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    started = time.perf_counter()
    data, provenance = read_features(store, dataset, model=model, clips=clips,
                                     recordings=recordings)
    streams = [E2E_BRANCH] if E2E_BRANCH in model_names(model) else []
    if any(head in SEQUENCE_HEAD_NAMES for head in (config or BenchmarkConfig()).heads):
        streams += list(branch_selectors([str(c) for c in data.columns]))
    with contextlib.ExitStack() as cleanup:
        sequences = None
        if streams:
            from featurekit.store.sequences import load_sequences

            # Memory-mapped for the run: the workers map the same files (on a Dask cluster,
            # TMPDIR must be a path every worker sees).
            directory = cleanup.enter_context(
                tempfile.TemporaryDirectory(prefix="featurekit-sequences-"))
            sequences = load_sequences(store, dataset, streams, data["clip_id"].tolist(),
                                       directory=directory)
        read_seconds = time.perf_counter() - started
        stages = [*options.pop("stages", ()),
                  read_stage(read_seconds, plan_only=options.get("plan_only", False))]
        results = run_benchmark(data, dataset=dataset, config=config, provenance=provenance,
                                expected_folds=expected_folds, sequences=sequences,
                                stages=stages, **options)
    if "timings_s" in results:  # not for a plan alone
        results["timings_s"]["read_store"] = read_seconds
        results["timings_s"]["total"] += read_seconds
    return results


@dataclass(frozen=True)
class BenchmarkRun:
    """What :func:`run` produced: the results and the files written."""

    results: dict[str, Any]
    written: list[Path]


def run(dataset: str, data_dir: str | os.PathLike[str], store: str | os.PathLike[str], *,
        model: str | Sequence[str] | None = "mn04_as", sets: str | Sequence[str] | None = None,
        weights: str | None = None,
        config: BenchmarkConfig | None = None, extraction: Any = None,
        out: str | os.PathLike[str] | None = None, n_jobs: int = 1, backend: str = "loky",
        scheduler: str | None = None, progress: bool | None = None, plan_only: bool = False,
        on_plan: Callable[[dict[str, Any]], None] | None = None,
        corruptions: str | Sequence[str] | None = None) -> BenchmarkRun:
    """Benchmark a dataset end to end: compute what the store lacks, evaluate, write reports.

    The plan (:mod:`featurekit.benchmark.estimate`: the work, and each stage's estimated
    seconds and the peak memory on this machine) is made before any unit is fitted, after the
    store is filled; the results record it with the measured seconds of each stage.

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
        trained from scratch on the task (:mod:`featurekit.learn.torch.e2e`); None for handcrafted
        branches only.
    sets : str or sequence of str, optional
        Compare feature sets side by side instead (``"featurekit,essentia"``; names of
        :data:`featurekit.computers.sets.FEATURE_SETS`): each set is a feature group beside the
        neural branches (:mod:`featurekit.benchmark.sets`); ``extraction`` configures the
        featurekit set.
    weights : str, optional
        Checkpoint file of the model (default: resolved as by ``featurekit embed``).
    config : BenchmarkConfig, optional
    extraction : ExtractionConfig, optional
        Handcrafted configuration; default: the one already stored, else the defaults.
    out : path-like, optional
        Output directory (default ``benchmark-<dataset>``).
    n_jobs, backend, scheduler, progress :
        Parallelism for extraction, embedding and fits (see :func:`run_benchmark`).
    plan_only : bool
        Compute, fill and fit nothing: estimate the fill from a few clips of each branch the
        store lacks and, when every branch is stored, the rest of the run from a short
        calibration; the results are ``{"plan": ...}``, written as ``plan.json`` into ``out``
        when given.
    on_plan : callable, optional
        Called with the plan as soon as it is made (before any unit is fitted).
    corruptions : str or sequence of str, optional
        A robustness run (:mod:`featurekit.benchmark.robustness`): corruption specs
        (:func:`featurekit.computers.corrupted.parse_corruptions`, e.g.
        ``"noise:snr=20/10/0,lowpass:hz=2000"``). Every branch is computed on corrupted copies
        of the outer test clips, each corruption into its own dataset of the store
        (``<dataset>@<corruption>``, resumable like any branch); the systems fitted and chosen
        on clean audio predict them.

    Returns
    -------
    BenchmarkRun

    Raises
    ------
    StoreError
        The sequence head needs frames that a stored branch was computed without.
    ConfigError
        Bad parallelism, backend or configuration (unknown heads, fusions or models, outer
        folds the dataset lacks, a learning curve it cannot draw); unknown sets, or sets with
        the sequence head (sets are compared on clip-level functionals) or with an ablation
        mode other than the default (their subsets are their own). All of these are raised
        before anything is computed; a model name is known when registered, ``e2e``, or
        imported into the store (``featurekit import-embeddings``).
    MissingDependencyError
        A set's engine is not installed (the message names the extra).
    """
    from joblib import effective_n_jobs

    from featurekit.benchmark.report import write_report
    from featurekit.benchmark.sets import benchmark_sets, set_ablation
    from featurekit.datasets import load_dataset
    from featurekit.store.reader import FeatureStore

    started = time.perf_counter()
    # Every argument is checked before the store is touched: extraction and embedding take
    # hours on a full dataset, and a typo found after them costs all of it.
    check_n_jobs(n_jobs)
    check_backend(backend, scheduler)
    config = config or BenchmarkConfig()
    config.validate()
    frames = any(head in SEQUENCE_HEAD_NAMES for head in config.heads)
    names = None if sets is None else parse_sets(sets)
    if names is not None and frames:
        raise ConfigError("feature sets are compared on clip-level functionals: drop the "
                          "sequence head from --heads")
    corrupt = None if corruptions is None else parse_corruptions(corruptions)
    if corrupt is not None and names is not None:
        raise ConfigError("corruptions are scored on the ablation of branches, not on a "
                          "comparison of feature sets: drop --sets or --corruptions")
    if names is not None and config.ablation != DEFAULT_ABLATION:
        raise ConfigError(f"ablation {config.ablation!r} chooses among subsets of branch "
                          "families; feature sets are compared on subsets of their own: "
                          "leave the ablation at its default with sets")
    data = load_dataset(dataset, data_dir)
    feature_store = FeatureStore(store)
    # Names of imported embeddings are known only to the store (read, not written, here).
    models = check_models(model, imported=imported_models(feature_store, data.name))
    task = dataset_task(data)
    protocol = task["protocol"]
    if protocol == LEAVE_ONE_FOLD_OUT:
        leave_one_fold_out(data.clips["fold"].to_numpy(), config.outer_folds)
    if corrupt is not None:
        check_robustness(config, models)
        check_corruptible(feature_store, data.name, models)
    neural = [E2E_BRANCH if name == E2E_BRANCH else neural_branch(name) for name in models]
    check_curve(config, protocol=protocol,
                comparisons=bool(neural) if names is None
                else bool(set_ablation([*names, *neural])[1]))
    # The sequence head learns from frame-level descriptors: compute (and keep computing)
    # frames whenever it is asked for or a branch already holds them.
    fill_options = {"model": models, "weights": weights, "extraction": extraction,
                    "branches": ((HANDCRAFTED_BRANCH,) if names is None
                                 else [FEATURE_SETS[name].branch for name in names]),
                    "frames": frames, "n_jobs": n_jobs}
    fill = estimate_fill(data, feature_store, **fill_options)
    stage = fill_stage(fill)
    absent = [e.branch for e in fill if e.missing == len(data.clips)]
    if plan_only and absent:
        cost = CostPlan(dataset=data.name, workers=effective_n_jobs(n_jobs), stages=[stage],
                        notes=[f"the store lacks {', '.join(absent)}: only the fill is "
                               "estimated; run --plan again once it is filled"])
        return _plan_run(cost.to_dict(), out, on_plan)
    stages = [stage]
    corrupted: list[CorruptedTable] = []
    if not plan_only:
        fill_started = time.perf_counter()
        fill_store(data, feature_store, backend=backend, scheduler=scheduler,
                   progress=progress, **fill_options)
        stage.measured_s = time.perf_counter() - fill_started
    if corrupt is not None:
        # After the clean fill: the copies are computed with the clean branch's settings.
        clip_ids = test_clip_ids(data.clips, protocol=protocol, outer_folds=config.outer_folds)
        options = {**fill_options, "extraction": stored_extraction(feature_store, data.name),
                   "frames": False, "clip_ids": clip_ids, "seed": config.seed}
        stages.append(corrupt_stage({c.name: estimate_fill(data, feature_store, corruption=c,
                                                           **options) for c in corrupt},
                                    len(clip_ids)))
        if not plan_only:
            corrupt_started = time.perf_counter()
            corrupted = fill_corrupted(data, feature_store, corrupt, options=options,
                                       backend=backend, scheduler=scheduler, progress=progress)
            stages[-1].measured_s = time.perf_counter() - corrupt_started
    options = {"n_jobs": n_jobs, "backend": backend, "scheduler": scheduler,
               "progress": progress, "calibrate": True, "plan_only": plan_only,
               # A plan alone is printed once complete (below).
               "on_plan": None if plan_only else on_plan, "stages": stages}
    if names is not None:
        results = benchmark_sets(feature_store, data, names, model=models, config=config,
                                 **options)
    else:
        results = benchmark_store(feature_store, data.name, model=models, config=config,
                                  expected_folds=data.expected_folds,
                                  clips=data.clips, corrupted=corrupted, **task, **options)
    if plan_only:
        partial = [e.branch for e in fill if e.missing]
        if partial:
            results["plan"]["notes"].append(
                f"{', '.join(partial)} lack some clips: the stages after the fill are "
                "estimated on the clips stored")
        return _plan_run(results["plan"], out, on_plan)
    target = Path(out or f"benchmark-{data.name}")
    report_started = time.perf_counter()
    written = list(write_report(results, target).values())
    # The report's own time is known only once it is written: results.json records it.
    record_stage(results["plan"], "report", time.perf_counter() - report_started,
                 wall_s=time.perf_counter() - started)
    return BenchmarkRun(results, [save_results(results, target), *written])


def _plan_run(plan: dict[str, Any], out: str | os.PathLike[str] | None,
              on_plan: Callable[[dict[str, Any]], None] | None) -> BenchmarkRun:
    """What :func:`run` returns for a plan alone: ``{"plan": plan}`` and ``plan.json`` in
    ``out`` (when given); ``on_plan`` is called first."""
    if on_plan is not None:
        on_plan(plan)
    written = [] if out is None else [save_plan(plan, out)]
    return BenchmarkRun({"plan": plan}, written)


def test_clip_ids(clips: pd.DataFrame, *, protocol: str,
                  outer_folds: Sequence[int] | None) -> list[str]:
    """The clips some outer fold tests: every clip of the outer folds under
    leave-one-fold-out, the eval clips under an official split."""
    folds = clips["fold"].to_numpy()
    outer = (leave_one_fold_out(folds, outer_folds) if protocol == LEAVE_ONE_FOLD_OUT
             else official_split(folds)[0])
    return [str(clip) for _, _, test in outer for clip in clips["clip_id"].iloc[test]]


def fill_corrupted(data: Any, feature_store: Any, corruptions: Sequence[Corruption], *,
                   options: Mapping[str, Any], backend: str, scheduler: str | None,
                   progress: bool | None) -> list[CorruptedTable]:
    """Compute every branch on each corruption's copies of the clips ``options["clip_ids"]``
    (what the store lacks of them) and read them back.

    ``options`` are :func:`~featurekit.pipeline.fill_store`'s: the clean branch's handcrafted
    configuration (so that corrupted and clean columns mean the same), the test clips, and the
    run's seed (each clip's corruption is seeded by it, the corruption and the file name).
    """
    tables = []
    for corruption in corruptions:
        fill_store(data, feature_store, corruption=corruption, backend=backend,
                   scheduler=scheduler, progress=progress, **options)
        copy = corrupted_dataset(data, corruption, options["clip_ids"])
        table, provenance = read_features(feature_store, copy.name, model=options["model"],
                                          clips=copy.clips)
        facts = {**corruption.to_dict(), "seed": options["seed"], "store_dataset": copy.name,
                 "config_hashes": {branch: facts.get("config_hash")
                                   for branch, facts in provenance.items()}}
        tables.append(CorruptedTable(corruption.name, corruption.kind, corruption.severity,
                                     facts, table))
    return tables
