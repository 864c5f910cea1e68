"""Fuse: every system's probabilities per outer fold and repeat, from the units' outputs.

Single branches, early fusion, the joint model and ``oof_features`` are units of their own;
the late rules, the blend and the primary comparison's ``auto`` choices are fitted here, on the
units' inner out-of-fold predictions of the training rows, with the estimators' own steps from
:mod:`featurekit.fusion` (:func:`~featurekit.fusion.make_fusion` rules,
:func:`~featurekit.fusion.cross_fitted_proba`, :func:`~featurekit.fusion.blend_probabilities`)
and the selection rule of :func:`featurekit.learn.selection.select_by_oof`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from joblib import delayed
from threadpoolctl import threadpool_limits

from featurekit._util.parallel import run_tasks
from featurekit.benchmark.config import LATE_FUSIONS, OOF_FEATURES, unit_head
from featurekit.benchmark.data import BenchmarkData
from featurekit.benchmark.execute import UnitOutput, second_level_rows
from featurekit.benchmark.plan import Plan, System, Unit, oof_feature_target
from featurekit.benchmark.score import primary_metric, task_metrics
from featurekit.fusion import blend_probabilities, cross_fitted_proba, make_fusion
from featurekit.fusion.rules import rule_parameters
from featurekit.learn.selection import select_by_oof
from featurekit.learn.splits import Split
from featurekit.names import E2E_BRANCH, E2E_HEAD, SEQUENCE_HEAD_NAMES


@dataclass
class Prediction:
    """One system's output for one outer fold and repeat.

    Attributes
    ----------
    test : np.ndarray, (n_test, n_classes)
        Probabilities of the outer test rows (members averaged).
    inner : np.ndarray or None, (n_train, n_classes)
        Inner out-of-fold probabilities of the training rows, for systems that compete in a
        selection.
    choice : str or None
        What a learned fusion or a selection chose (for the report).
    selected : str or None
        For ``auto`` and its reference: the system chosen.
    metrics : dict of str to float
        :func:`featurekit.benchmark.score.fold_metrics` of ``test`` (computed where the
        prediction is made, in parallel).
    n_parameters : float or None
        Learned values of the system: its heads' (members averaged) and its fusion's own
        (:func:`~featurekit.fusion.rules.rule_parameters`); a selection's, those of the system
        it chose. None where a part has no count (a caller's head, the blend's blender).
    corrupted : dict of str to np.ndarray, (n_test, n_classes)
        A robustness run: per corruption, the probabilities of the test rows' corrupted
        copies, by the same fitted system (a selection's: the chosen system's).
    """

    test: np.ndarray
    inner: np.ndarray | None = None
    choice: str | None = None
    selected: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    n_parameters: float | None = None
    corrupted: dict[str, np.ndarray] = field(default_factory=dict)


Key = tuple[str, int, int]  # system name, fold, repeat
UnitKey = tuple[str, tuple[str, ...], str]  # head, branches, kind: one unit per fold and repeat


def _total(counts: Sequence[float | None]) -> float | None:
    """Sum of parameter counts; None when one is unknown."""
    return None if any(count is None for count in counts) else float(sum(counts))


def _named(choice: str, branches: Sequence[str]) -> str:
    for index in reversed(range(len(branches))):  # "branch 10" before "branch 1"
        choice = choice.replace(f"branch {index}", branches[index])
    return choice


def _fuse_system(system: System, y_train: np.ndarray, splits: Sequence[Split],
                 outputs: Mapping[UnitKey, UnitOutput], n_classes: int, seed: int,
                 scored: bool, twins: tuple[np.ndarray, Sequence[Split]]) -> Prediction:
    """One system's prediction from its units' outputs.

    ``y_train``, ``splits`` and the outputs' ``oof`` are the second level's rows
    (:func:`~featurekit.benchmark.execute.second_level_rows`); ``twins`` are the targets of
    every training row and the inner splits the units' twins were fitted on, which the blend
    needs (each twin's embeddings belong to its own split).
    """
    head = system.head
    if system.fusion is None or system.fusion in ("early", "joint", OOF_FEATURES):
        output = outputs[head, system.branches, system.fusion or "branch"]
        choice = None
        if system.fusion == "joint":
            choice = "mean gate weights on the test clips: " + ", ".join(
                f"{name} {weight:.2f}" for name, weight in zip(
                    system.branches, output.stream_weights, strict=True))
        elif system.fusion == OOF_FEATURES:
            target = oof_feature_target(system.branches)
            choice = (f"{'+'.join(target)} features + out-of-fold log-probabilities of "
                      + ", ".join(name for name in system.branches if name not in target))
        inner = output.oof.mean(axis=0) if scored and output.oof is not None else None
        # oof_features predicts through the other branches' heads too, a sequence head on
        # the e2e stream through the CNN whose frames it reads.
        others = ([outputs[unit_head(head, name), (name,), "branch"].n_parameters
                   for name in system.branches if name not in oof_feature_target(
                       system.branches)] if system.fusion == OOF_FEATURES else [])
        if head in SEQUENCE_HEAD_NAMES and E2E_BRANCH in system.branches:
            others.append(outputs[E2E_HEAD, (E2E_BRANCH,), "branch"].n_parameters)
        return Prediction(output.test.mean(axis=0), inner, choice,
                          n_parameters=_total([output.n_parameters, *others]),
                          corrupted={name: values.mean(axis=0)
                                     for name, values in output.corrupted.items()})
    parts = [outputs[unit_head(head, name), (name,), "branch"] for name in system.branches]
    if system.fusion == "blend":
        y_twins, twin_splits = twins
        members = [blend_probabilities(
            [np.hstack([part.oof_embedding[m][val] for part in parts])
             for _, val in twin_splits],
            [y_twins[val] for _, val in twin_splits],
            [np.hstack([part.test_embedding[m][k] for part in parts])
             for k in range(len(twin_splits))], n_classes=n_classes, random_state=seed)
            for m in range(parts[0].oof_embedding.shape[0])]
        return Prediction(np.mean(members, axis=0), None,
                          f"linear blend of {len(parts)} x {parts[0].oof_embedding.shape[2]}-d "
                          f"embeddings, {len(twin_splits)} inner splits")
    if system.fusion not in LATE_FUSIONS:
        raise ValueError(f"no fusion step for {system.fusion!r}")
    oof = [part.oof.mean(axis=0) for part in parts]
    rule = make_fusion(system.fusion).fit(oof, y_train, splits)
    test = rule.combine([part.test.mean(axis=0) for part in parts])
    inner = cross_fitted_proba(system.fusion, oof, y_train, splits) if scored else None
    corrupted = {name: rule.combine([part.corrupted[name].mean(axis=0) for part in parts])
                 for name in parts[0].corrupted}
    return Prediction(test, inner, _named(rule.choice_, system.branches), n_parameters=_total(
        [*(part.n_parameters for part in parts), rule_parameters(rule)]), corrupted=corrupted)


def _second_level(y_train: np.ndarray, outputs: Mapping[Unit, UnitOutput],
                  splits: Sequence[Split], groups: np.ndarray | None, seed: int
                  ) -> tuple[np.ndarray, dict[Unit, UnitOutput], list[Split]]:
    """Targets, inner predictions and splits restricted to the :func:`second_level_rows`.

    Inner cross-validation predicts every training row, and nothing changes. A fixed train ->
    validation split (:func:`~featurekit.benchmark.plan.official_split`) predicts only the
    validation rows: fusions then learn, and selections score, on those rows alone.
    """
    rows, second_splits = second_level_rows(y_train, groups, splits, seed)
    if rows.size == len(y_train):
        return y_train, dict(outputs), second_splits
    restricted = {unit: replace(output, oof=None if output.oof is None
                                else output.oof[:, rows])
                  for unit, output in outputs.items()}
    return y_train[rows], restricted, second_splits


def fuse_systems(systems: Sequence[System], scored: Collection[str], y_train: np.ndarray,
                 y_test: np.ndarray, fold: int, repeat: int,
                 outputs: Mapping[Unit, UnitOutput], splits: Sequence[Split], n_classes: int,
                 seed: int, groups: np.ndarray | None = None) -> dict[Key, Prediction]:
    """The predictions of ``systems`` for one outer fold and repeat, from their units'
    ``outputs``; those ``scored`` (:attr:`Plan.scored`) with their inner out-of-fold
    probabilities. ``groups`` (source recordings of the training rows) keep a recording
    whole in the splits drawn inside a fixed validation set."""
    twins = (y_train, list(splits))
    y_train, outputs, splits = _second_level(y_train, outputs, splits, groups, seed)
    by_key = {(unit.head, unit.branches, unit.kind): output
              for unit, output in outputs.items()}
    predictions: dict[Key, Prediction] = {}
    # Small second-level fits: one thread is fastest.
    with threadpool_limits(limits=1):
        for system in systems:
            prediction = _fuse_system(system, y_train, splits, by_key, n_classes, seed,
                                      system.name in scored, twins)
            prediction.metrics = task_metrics(y_test, prediction.test)
            predictions[system.name, fold, repeat] = prediction
    return predictions


def select_systems(plan: Plan, predictions: dict[Key, Prediction], y_train: np.ndarray,
                   fold: int, repeat: int, splits: Sequence[Split], seed: int,
                   groups: np.ndarray | None = None) -> dict[Key, Prediction]:
    """Add the selections of :attr:`Plan.selections` for one outer fold and repeat to
    ``predictions`` (which hold their candidates' inner probabilities) and return it.

    Each selection (``auto``: the system among ``plan.auto_candidates`` whose inner
    out-of-fold probabilities of the training rows are the most accurate -- for label sets,
    of the highest macro average precision; its reference, ``neural-auto`` or
    ``single-branch-auto``, likewise among ``plan.reference_candidates``; the synergy
    reference ``single-auto`` among ``plan.synergy_candidates``; the two sides of each branch
    comparison) sees training rows only (those of :func:`second_level_rows`); its test
    probabilities are those of the chosen system.
    """
    y_train = _second_level(y_train, {}, splits, groups, seed)[0]  # as fuse_systems'
    metric = primary_metric(np.ndim(y_train) == 2)
    for name, candidates in plan.selections:
        chosen = select_by_oof(candidates, [predictions[c, fold, repeat].inner
                                            for c in candidates], y_train)
        best = predictions[chosen.best, fold, repeat]
        predictions[name, fold, repeat] = Prediction(
            best.test, None,
            f"{chosen.best} (inner {metric} {100 * chosen.scores[chosen.index]:.1f} %)",
            chosen.best, best.metrics, best.n_parameters, best.corrupted)
    return predictions


def fuse_fold(plan: Plan, y_train: np.ndarray, y_test: np.ndarray, fold: int, repeat: int,
              outputs: Mapping[Unit, UnitOutput], splits: Sequence[Split], n_classes: int,
              seed: int, groups: np.ndarray | None = None) -> dict[Key, Prediction]:
    """Every system's prediction for one outer fold and repeat (:func:`fuse_systems`), and
    its selections (:func:`select_systems`), in this process."""
    predictions = fuse_systems(plan.systems, plan.scored, y_train, y_test, fold, repeat,
                               outputs, splits, n_classes, seed, groups)
    return select_systems(plan, predictions, y_train, fold, repeat, splits, seed, groups)


def fusion_tasks(plan: Plan, workers: int) -> list[tuple[int, int, list[System]]]:
    """The fusion stage's tasks: ``(fold, repeat, systems)``.

    Per outer fold and repeat, the systems of each head, whose units no other head's
    systems read (but the e2e CNN's); where these tasks are fewer than the workers (an
    official split has one fold: with three repeats and three heads, nine tasks for 16
    workers), each head's systems are dealt into as many parts as fill the workers, by
    fusion (so that the costly stackings spread over the parts, not one part's share in
    plan order).
    """
    pairs = sorted({(unit.fold, unit.repeat) for unit in plan.units})
    heads = list(dict.fromkeys(system.head for system in plan.systems))
    parts = max(1, math.ceil(workers / max(1, len(pairs) * len(heads))))
    tasks = []
    for fold, repeat in pairs:
        for head in heads:
            # Sorted by fusion, stably: the dealing then gives each part every n-th system
            # of each fusion.
            systems = sorted((system for system in plan.systems if system.head == head),
                             key=lambda system: system.fusion or "")
            tasks += [(fold, repeat, systems[part::parts]) for part in range(parts)
                      if systems[part::parts]]
    return tasks


def fuse(plan: Plan, data: BenchmarkData, outputs: Mapping[Unit, UnitOutput],
         splits: Mapping[tuple[int, int], Sequence[Split]],
         seeds_of: Callable[[int], list[int]], *, n_jobs: int = 1, backend: str = "loky",
         scheduler: str | None = None) -> dict[Key, Prediction]:
    """Probabilities of every system of ``plan``, and of ``auto`` and its reference, for
    every outer fold and repeat: :func:`fusion_tasks` run in parallel like the units (each
    sent only its head's unit outputs), then the selections of each fold and repeat."""
    from joblib import effective_n_jobs

    tests = {fold: test for fold, _, test in plan.outer}
    scored = plan.scored
    tasks = []
    for fold, repeat, systems in fusion_tasks(plan, effective_n_jobs(n_jobs)):
        train = plan.training(fold, repeat)
        read = {systems[0].head, E2E_HEAD}
        tasks.append(delayed(fuse_systems)(
            systems, scored, data.targets[train], data.targets[tests[fold]], fold, repeat,
            {unit: output for unit, output in outputs.items()
             if (unit.fold, unit.repeat) == (fold, repeat) and unit.head in read},
            splits[fold, repeat], data.n_classes, seeds_of(repeat)[0], data.groups[train]))
    predictions: dict[Key, Prediction] = {}
    # Closed on any exception, so that the workers stop then (see run_tasks).
    with contextlib.closing(run_tasks(tasks, n_jobs=n_jobs, backend=backend,
                                      scheduler=scheduler)) as parts:
        for part in parts:
            predictions.update(part)
    for fold, repeat in splits:
        train = plan.training(fold, repeat)
        select_systems(plan, predictions, data.targets[train], fold, repeat,
                       splits[fold, repeat], seeds_of(repeat)[0], data.groups[train])
    return predictions
