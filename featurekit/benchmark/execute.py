"""Execute: run work units in parallel (joblib processes, or a Dask cluster) and collect them.

Where units run: the tabular heads in the worker processes; the torch heads
(:data:`~featurekit.names.TORCH_HEAD_NAMES`: the sequence head, its joint model, the e2e CNN)
there too on a CPU-only machine, but in this process when torch would fit them on CUDA, one
after the other while the workers fit the rest of the stage: each worker would otherwise
initialise CUDA (a context of its own in GPU memory) and its fits would compete for the GPU,
while a fit on the GPU gains nothing from a worker (:func:`gpu_units`).

Each unit fits one head on the training rows of its outer fold and predicts the test rows;
with ``unit.inner`` it also fits the head's inner out-of-fold twins on the inner splits of the
training rows. Only training rows reach any ``fit``: the test rows are only predicted, and so
are their corrupted copies in a robustness run (by the same fitted members).

A second-level learner (the target head of ``oof_features`` here, the late rules in
:mod:`featurekit.benchmark.fuse`) learns only from rows with real out-of-fold probabilities:
every training row under inner cross-validation, the validation rows under an official
train -> validation split (:func:`second_level_rows`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import delayed
from threadpoolctl import threadpool_limits

from featurekit._util.memory import peak_rss_bytes
from featurekit._util.parallel import check_backend, run_tasks
from featurekit._util.progress import progress_bar
from featurekit.benchmark.config import OOF_FEATURES, unit_head
from featurekit.benchmark.data import BenchmarkData
from featurekit.benchmark.plan import Plan, Unit, oof_feature_target
from featurekit.benchmark.schedule import submission_order
from featurekit.fusion import fit_branch, log_probability_features, predict_members
from featurekit.learn.fitting import take_rows
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.parameters import mean_parameters
from featurekit.learn.splits import Split, inner_splits, stratification_labels
from featurekit.names import E2E_BRANCH, E2E_HEAD, SEQUENCE_HEAD_NAMES, TORCH_HEAD_NAMES


@dataclass
class UnitOutput:
    """What one unit hands back.

    Attributes
    ----------
    test : np.ndarray, (n_members, n_test, n_classes)
        Each member's probabilities of the outer test rows.
    oof : np.ndarray or None, (n_members, n_train, n_classes)
        Each member's twins' probabilities of the training rows they were not trained on.
    params : dict
        Hyper-parameters used (the search result when tuning).
    seconds : float
    oof_embedding : np.ndarray, optional, (n_members, n_train, dim)
        Sequence head with the blend: each twin's embedding of its own validation clips.
    test_embedding : np.ndarray, optional, (n_members, n_splits, n_test, dim)
        The same twins' embeddings of the test clips.
    stream_weights : np.ndarray, optional, (n_branches,)
        Joint model: mean gate weight of each branch on the test clips.
    frames : (np.ndarray, np.ndarray), optional
        The e2e CNN's frame sequences of the training and test clips (its first member's, so
        with ``n_seeds > 1`` the sequence heads' seeds do not vary the CNN), which sequence
        heads read as the ``e2e`` stream.
    peak_rss : (int, int)
        The process that fitted the unit and its peak resident set in bytes by then (0 where
        the platform cannot tell), which the run's record of its peak memory adds up.
    n_fits : int
        Heads fitted: the members and their inner twins (a search's fits not counted).
    validation_kinds : dict of str to int
        How many of those fits stopped early on held-out ``groups``, on held-out ``clips``, or
        had no validation rows (``none``).
    n_parameters : float or None
        Learned values of the head, the mean over its members
        (:func:`~featurekit.learn.parameters.n_parameters`; None for a head without a count).
    corrupted : dict of str to np.ndarray, (n_members, n_test, n_classes)
        A robustness run: per corruption, each member's probabilities of the outer test rows'
        corrupted copies (the same fitted members as ``test``).
    """

    test: np.ndarray
    oof: np.ndarray | None
    params: dict[str, Any]
    seconds: float
    n_fits: int = 0
    validation_kinds: dict[str, int] = field(default_factory=dict)
    n_parameters: float | None = None
    oof_embedding: np.ndarray | None = None
    test_embedding: np.ndarray | None = None
    stream_weights: np.ndarray | None = None
    frames: tuple[np.ndarray, np.ndarray] | None = None
    peak_rss: tuple[int, int] = (0, 0)
    corrupted: dict[str, np.ndarray] = field(default_factory=dict)


#: Splits of a fixed validation set for the second level's own choices and out-of-fold
#: predictions (as many as the benchmark's default inner splits).
VALIDATION_SPLITS = 3


def second_level_rows(targets: np.ndarray, groups: np.ndarray | None, splits: Sequence[Split],
                      seed: int) -> tuple[np.ndarray, list[Split]]:
    """The training rows a second-level learner may learn from, and its splits of them.

    Inner cross-validation predicts every training row out of fold: all rows, and ``splits``
    themselves. A fixed train -> validation split
    (:func:`~featurekit.benchmark.plan.official_split`) predicts only the validation rows; the
    others have no out-of-fold probability, so the second level learns on the validation rows
    alone, with :data:`VALIDATION_SPLITS` group-aware splits of them for its own choices (the
    stacker's ``C``, the guards) and its out-of-fold predictions.

    Parameters
    ----------
    targets : np.ndarray, (n_rows,) class indices or (n_rows, n_classes) label indicators
        Targets of the outer fold's training rows.
    groups : np.ndarray, optional, (n_rows,)
        Source recording of each training row (kept whole by the validation splits).
    splits : sequence of (train, validation)
        The inner splits of the training rows (positions).
    seed : int
        Seed of the validation splits (the repeat's first seed).

    Returns
    -------
    rows : np.ndarray of int
        Positions of the rows some split validates, sorted.
    splits : list of (train, validation)
        Splits of ``rows`` (positions into ``rows``).
    """
    rows = np.unique(np.concatenate([val for _, val in splits]))
    if rows.size == len(targets):
        return rows, list(splits)
    return rows, inner_splits(stratification_labels(targets[rows]),
                              None if groups is None else groups[rows],
                              n_splits=VALIDATION_SPLITS, random_state=seed)


def unit_splits(data: BenchmarkData, train: np.ndarray, n_splits: int,
                seed: int) -> list[Split]:
    """Inner splits of an outer fold's training rows (positions into ``train``), keeping each
    group (source recording, or fold) whole."""
    return inner_splits(data.y[train], data.groups[train], n_splits=n_splits,
                        random_state=seed)


def repeat_splits(plan: Plan, data: BenchmarkData, fold: int, repeat: int,
                  inner_splits_count: int, seeds_of: Callable[[int], list[int]]) -> list[Split]:
    """The inner splits of outer fold ``fold`` in repeat ``repeat``: the official split's
    fixed one, else :func:`unit_splits` drawn with the repeat's first seed."""
    if plan.fixed_inner is not None:
        return plan.fixed_inner[fold]
    return unit_splits(data, plan.training(fold, repeat), inner_splits_count,
                       seeds_of(repeat)[0])


def _scatter(blocks: Sequence[np.ndarray], indices: Sequence[np.ndarray],
             n_rows: int) -> np.ndarray:
    """Rows of ``blocks`` placed at ``indices`` of an (n_rows, dim) array."""
    out = np.zeros((n_rows, blocks[0].shape[1]), dtype=np.float32)
    for block, index in zip(blocks, indices, strict=True):
        out[index] = block
    return out


def _at_rows(oof: np.ndarray | None, rows: np.ndarray, n_rows: int) -> np.ndarray | None:
    """Out-of-fold probabilities of ``rows`` placed among ``n_rows`` training rows (NaN for the
    rows the head was not fitted on)."""
    if oof is None or rows.size == n_rows:
        return oof
    out = np.full((oof.shape[0], n_rows, oof.shape[2]), np.nan)
    out[:, rows] = oof
    return out


def _with_stream(branches: Sequence[str], X: Any, name: str, values: np.ndarray) -> Any:
    """A sequence head's input (one array, or a mapping by branch) with ``name``'s stream
    replaced by ``values``."""
    return values if len(branches) == 1 else {**X, name: values}


def unit_input(unit: Unit, data: BenchmarkData, rows: np.ndarray) -> Any:
    """What a unit's head reads of clips ``rows``: the frame sequences of its branches for a
    sequence head or the e2e CNN, else its branches' concatenated columns (an
    ``oof_features`` unit adds the other branches' log-probabilities, :func:`fit_unit`)."""
    if unit.head in SEQUENCE_HEAD_NAMES or unit.head == E2E_HEAD:
        return data.streams(unit.branches, rows)
    return data.X[np.ix_(rows, data.columns(unit.branches))]


def fit_unit(unit: Unit, spec: HeadSpec, data: BenchmarkData, train: np.ndarray,
             test: np.ndarray, *, seeds: Sequence[int], splits: Sequence[Split],
             tune: bool, tune_splits: int, with_embeddings: bool, with_frames: bool = False,
             other_outputs: Mapping[str, UnitOutput] | None = None,
             refit: bool = True) -> UnitOutput:
    """Fit one unit on ``train`` rows and predict ``test`` rows.

    Without ``refit`` (an official train / validation split: ``splits`` is that one split)
    the unit's heads are fitted on the split's training rows only, and the same fits
    predict the validation rows (their out-of-fold probabilities) and the ``test`` rows.

    ``splits`` are the inner splits of ``train`` for this repeat (used when ``unit.inner``,
    and by the search). ``other_outputs`` (``oof_features`` units): the stage-1 outputs of the
    unit's other branches, whose out-of-fold (training rows) and test probabilities become
    log-probability features of the target branch; (sequence heads on the ``e2e`` stream) the
    e2e CNN's output, whose frames are that stream. ``with_frames`` (e2e CNN units): keep the
    first member's frames of the training and test clips.

    An ``oof_features`` unit's target head is fitted on the :func:`second_level_rows` only (the
    rows whose out-of-fold probabilities are real) and its out-of-fold twins on their splits;
    its ``oof`` is NaN on the other training rows.
    """
    started = time.perf_counter()
    sequence = unit.head in SEQUENCE_HEAD_NAMES
    y_train, groups = data.targets[train], data.groups[train]
    # Positions into ``train`` of the rows the head is fitted on, and their inner splits.
    rows, fit_splits = np.arange(len(train)), list(splits)
    if unit.kind == OOF_FEATURES:
        # A second-level learner: it reads the other branches' out-of-fold probabilities, so
        # it learns only on rows that have them (under an official split, the validation rows).
        rows, fit_splits = second_level_rows(y_train, groups, splits, seeds[0])
        target = oof_feature_target(unit.branches)
        others = [other_outputs[name] for name in unit.branches if name not in target]
        target_columns = data.X[:, data.columns(target)]
        X_train = log_probability_features(target_columns[train[rows]],
                                           [part.oof.mean(axis=0)[rows] for part in others])
        X_test = log_probability_features(target_columns[test],
                                          [part.test.mean(axis=0) for part in others])
        # Corrupted test rows go through the same second level: the target branch's corrupted
        # columns and the other heads' probabilities of the corrupted copies.
        X_corrupted = {name: log_probability_features(
            values[np.ix_(test, data.columns(target))],
            [part.corrupted[name].mean(axis=0) for part in others])
            for name, values in data.corrupted.items()}
    else:
        X_train, X_test = unit_input(unit, data, train), unit_input(unit, data, test)
        X_corrupted = {name: values[np.ix_(test, data.columns(unit.branches))]
                       for name, values in data.corrupted.items()}
        if sequence and E2E_BRANCH in unit.branches:  # the CNN's frames, not its log-mel input
            X_train, X_test = (_with_stream(unit.branches, X, E2E_BRANCH, frames) for X, frames
                               in zip((X_train, X_test), other_outputs[E2E_BRANCH].frames,
                                      strict=True))
    # A second-level learner's splits are cross-validation splits of its rows, whatever the
    # outer protocol: its members are refitted on all of them.
    official = not refit and unit.kind != OOF_FEATURES
    # One BLAS/OpenMP thread per unit: these matrices are small, parallelism comes from
    # running units side by side, and threads competing for two cores cost up to 10x.
    with threadpool_limits(limits=1):
        fitted = fit_branch(spec, X_train, y_train[rows], groups[rows],
                            n_classes=data.n_classes, seeds=seeds,
                            splits=fit_splits if unit.inner or official else None, tune=tune,
                            tune_splits=tune_splits, tune_random_state=seeds[0],
                            keep_twins=sequence and with_embeddings and unit.inner,
                            refit=not official)
        oof = fitted.oof if unit.inner else None
        output = UnitOutput(test=predict_members(fitted.members, X_test, data.n_classes),
                            oof=_at_rows(oof, rows, len(train)), params=fitted.params,
                            seconds=0.0, n_fits=len(fitted.validation_kinds),
                            validation_kinds=dict(Counter(fitted.validation_kinds)),
                            n_parameters=mean_parameters(fitted.members),
                            corrupted={name: predict_members(fitted.members, X,
                                                             data.n_classes)
                                       for name, X in X_corrupted.items()})
        if with_frames:
            # One network's frames: the channels of different seeds' networks do not match.
            output.frames = (fitted.members[0].frames(X_train),
                             fitted.members[0].frames(X_test))
        if unit.kind == "joint":
            output.stream_weights = np.mean([member.stream_weights(X_test).mean(axis=0)
                                             for member in fitted.members], axis=0)
        if fitted.twins is not None:
            validation = [val for _, val in fit_splits]
            output.oof_embedding = np.stack([
                _scatter([twin.transform(take_rows(X_train, val))
                          for twin, val in zip(twins, validation, strict=True)],
                         validation, len(train)) for twins in fitted.twins])
            output.test_embedding = np.stack([[twin.transform(X_test) for twin in twins]
                                              for twins in fitted.twins])
    output.seconds = time.perf_counter() - started
    output.peak_rss = (os.getpid(), peak_rss_bytes() or 0)
    return output


def _described(unit: Unit) -> str:
    return (f"fold {unit.fold}, repeat {unit.repeat}: {unit.head} on {'+'.join(unit.branches)}"
            f" ({unit.kind})")


def validation_counts(outputs: Mapping[Unit, UnitOutput],
                      grouping: str) -> dict[str, dict[str, int]]:
    """Per head, how many fits (members and inner twins) stopped early on held-out groups --
    named by what the groups were, :attr:`BenchmarkData.grouping`: ``recordings``, ``folds``,
    or ``clips`` where each clip is its own -- on held-out ``clips``, or without validation
    rows (``none``)."""
    counts: dict[str, dict[str, int]] = {}
    for unit, output in outputs.items():
        head = counts.setdefault(unit.head, dict.fromkeys((grouping, "clips", "none"), 0))
        for kind, n in output.validation_kinds.items():
            head[grouping if kind == "groups" else kind] += n
    return counts


def torch_device() -> str:
    """The device the torch heads fit on when none is set: CUDA when torch sees a GPU."""
    from featurekit.neural.registry import default_device

    return default_device()


def gpu_units(units: Sequence[Unit]) -> list[int]:
    """Positions of the ``units`` that fit on the GPU, which this process owns (see the module
    docstring): those of torch heads when :func:`torch_device` is CUDA, else none."""
    torch_units = [position for position, unit in enumerate(units)
                   if unit.head in TORCH_HEAD_NAMES]
    if not torch_units or not torch_device().startswith("cuda"):
        return []
    return torch_units


def execute(plan: Plan, data: BenchmarkData, specs: Mapping[str, HeadSpec], *,
            seeds_of: Callable[[int], list[int]], inner_splits_count: int, tune: bool,
            with_embeddings: bool, n_jobs: int = 1, backend: str = "loky",
            scheduler: str | None = None, progress: bool | None = None,
            desc: str = "benchmark", unit_seconds: Mapping[Unit, float] | None = None
            ) -> tuple[dict[Unit, UnitOutput], dict]:
    """Run every unit of ``plan``, stage by stage, each stage's costliest units first
    (:func:`~featurekit.benchmark.schedule.submission_order`).

    Parameters
    ----------
    plan : Plan
    data : BenchmarkData
    specs : mapping of head name to HeadSpec
    seeds_of : callable
        ``seeds_of(repeat)`` -> member seeds of that repeat (its first seed also draws the
        repeat's inner splits).
    inner_splits_count : int
    tune : bool
    with_embeddings : bool
        Sequence units with inner twins also embed (for the blend).
    n_jobs : int
        Parallel units (-1: all cores); with CUDA, torch units run in this process meanwhile
        (:func:`gpu_units`). Results do not depend on it.
    backend : {"loky", "dask"}
        ``"dask"`` runs the units through joblib's Dask backend on the ``distributed``
        scheduler at ``scheduler``, or on a LocalCluster of ``n_jobs`` single-threaded workers.
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    progress : bool, optional
    desc : str
        Label of the progress bar.
    unit_seconds : mapping of Unit to float, optional
        The calibrated model's seconds of each unit, which order each stage it covers
        (default: a static key of head, rows and columns). Results do not depend on it.

    Returns
    -------
    outputs : dict of Unit to UnitOutput
        In the plan's order, whatever order the units ran in.
    splits : dict of (fold, repeat) to list of (train, validation)
        The inner splits each repeat used (positions into the fold's training rows).
    """
    check_backend(backend, scheduler)
    tests = {fold: test for fold, _, test in plan.outer}
    repeats = sorted({unit.repeat for unit in plan.units})
    rows = {(fold, repeat): (plan.training(fold, repeat), test)
            for fold, test in tests.items() for repeat in repeats}
    splits = {(fold, repeat): repeat_splits(plan, data, fold, repeat, inner_splits_count,
                                            seeds_of)
              for fold, repeat in rows}
    outputs: dict[Unit, UnitOutput] = {}

    def branch_output(unit: Unit, head: str, name: str) -> UnitOutput:
        """The stage-1 output of ``head`` on branch ``name`` in ``unit``'s fold and repeat."""
        return next(output for done, output in outputs.items()
                    if (done.fold, done.repeat, done.head, done.branches, done.kind)
                    == (unit.fold, unit.repeat, head, (name,), "branch"))

    sequence_on_e2e = any(unit.head in SEQUENCE_HEAD_NAMES and E2E_BRANCH in unit.branches
                          for unit in plan.units)

    def task(unit: Unit) -> Any:
        others = None
        if unit.kind == OOF_FEATURES:
            target = oof_feature_target(unit.branches)
            others = {name: branch_output(unit, unit_head(unit.head, name), name)
                      for name in unit.branches if name not in target}
        elif unit.head in SEQUENCE_HEAD_NAMES and E2E_BRANCH in unit.branches:
            others = {E2E_BRANCH: branch_output(unit, E2E_HEAD, E2E_BRANCH)}
        return delayed(fit_unit)(unit, specs[unit.head], data, *rows[unit.fold, unit.repeat],
                                 seeds=seeds_of(unit.repeat),
                                 splits=splits[unit.fold, unit.repeat], tune=tune,
                                 tune_splits=inner_splits_count,
                                 with_embeddings=with_embeddings,
                                 with_frames=sequence_on_e2e and unit.head == E2E_HEAD,
                                 other_outputs=others, refit=plan.refits)

    with progress_bar(total=len(plan.units), desc=desc, unit="fit",
                      disable=None if progress is None else not progress) as bar:
        for stage in plan.stages:
            order = [stage[position] for position in
                     submission_order(stage, plan, data, splits, unit_seconds)]
            results = run_tasks([task(unit) for unit in order], n_jobs=n_jobs,
                                backend=backend, scheduler=scheduler, here=gpu_units(order),
                                names=[_described(unit) for unit in order])
            done: dict[Unit, UnitOutput] = {}
            # Closed on any exception, so that the workers stop then (see run_tasks).
            with contextlib.closing(results):
                for unit, output in zip(order, results, strict=True):
                    done[unit] = output
                    bar.update(1)
            # In the plan's order: what iterates over the outputs (counts, timings, tuned
            # parameters in results.json) reads them as it did before the reordering.
            outputs.update((unit, done[unit]) for unit in stage)
    return outputs, splits
