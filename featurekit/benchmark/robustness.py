"""Robustness: the clean run's systems scored on corrupted copies of the test clips.

Nothing is fitted or chosen on corrupted audio. Every head is fitted on clean training rows,
every fusion and every inner-CV choice (``auto``, ``neural-auto``, ``single-auto``,
``handcrafted-auto``) is made exactly as on clean audio; the same fitted systems then predict
the corrupted copies of the outer test clips (:mod:`featurekit.benchmark.execute`,
:mod:`featurekit.benchmark.fuse`), and this module scores them.

Per corruption and severity it states, in results.json:

* ``robustness``: the pre-registered comparisons under corruption -- ``auto`` against
  ``neural-auto`` (``comparison: "primary"``) and against ``single-auto`` (``"synergy"``) --
  with the engine's paired two-level bootstrap interval, and how much each side loses from
  clean audio (``drop_pp``, ``reference_drop_pp``: clean minus corrupted, in points);
* ``robustness_systems``: the score of each choice and of each single-branch system, clean
  and corrupted, and its drop.

Scores under a corruption, and the clean scores they are compared with, are taken on the test
clips that have a corrupted copy (``n_clips``; ``n_missing`` could not be corrupted or
computed, e.g. a silent clip has no SNR).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from featurekit.benchmark.config import (
    AUTO,
    HANDCRAFTED_AUTO,
    SINGLE_AUTO,
    BenchmarkConfig,
)
from featurekit.benchmark.data import BenchmarkData
from featurekit.benchmark.fuse import Key, Prediction
from featurekit.benchmark.plan import Plan
from featurekit.benchmark.results import comparer, selection_branches, system_entry
from featurekit.benchmark.score import primary_metric, task_metrics
from featurekit.errors import ConfigError
from featurekit.names import E2E_BRANCH, SEQUENCE_HEAD_NAMES, is_neural

__all__ = ["CorruptedTable", "check_robustness", "robustness_plan", "robustness_results"]


@dataclass(frozen=True)
class CorruptedTable:
    """The features of one corruption's copies of the test clips.

    Attributes
    ----------
    name : str
        ``noise-snr10``: its key in results.json and in the store (``<dataset>@<name>``).
    corruption : str
        The kind (``noise``, ``lowpass`` ...).
    severity : str
        ``snr=10``, ``hz=2000``.
    facts : dict
        What the corruption was (kind, value, unit, seed, background folder ...).
    table : pandas.DataFrame
        The store read of the corrupted copies: ``clip_id`` and the clean run's feature
        columns.
    """

    name: str
    corruption: str
    severity: str
    facts: Mapping[str, Any]
    table: pd.DataFrame


def check_robustness(config: BenchmarkConfig, models: Sequence[str]) -> None:
    """Refuse what a robustness run cannot score yet: the sequence heads and the ``e2e``
    stream read frame sequences, which corrupted copies do not store.

    Raises
    ------
    ConfigError
    """
    if any(head in SEQUENCE_HEAD_NAMES for head in config.heads):
        raise ConfigError("corruptions are scored on clip-level features: drop the sequence "
                          "head from --heads")
    if E2E_BRANCH in models:
        raise ConfigError("corruptions are scored on clip-level features; the e2e stream "
                          "learns from log-mel frames: leave e2e out of --model")


def robustness_plan(plan: Plan) -> Plan:
    """``plan`` with the ``handcrafted-auto`` choice: the best of the synergy pool's systems
    over handcrafted branches alone, chosen by the same inner cross-validation."""
    branches = {system.name: system.branches for system in plan.systems}
    handcrafted = [name for name in plan.synergy_candidates
                   if not any(is_neural(branch) for branch in branches[name])]
    if not handcrafted or not any(is_neural(b) for s in plan.systems for b in s.branches):
        return plan
    return replace(plan, extra_selections={**plan.extra_selections,
                                           HANDCRAFTED_AUTO: handcrafted})


def _scored_on(plan: Plan, data: BenchmarkData, predictions: Mapping[Key, Prediction],
               keep: Mapping[int, np.ndarray], corruption: str | None,
               names: Sequence[str], repeats: int) -> tuple[Plan, dict[Key, Prediction]]:
    """``plan`` restricted to the test clips ``keep`` of each fold, and the predictions of
    ``names`` there: of the clean clips (``corruption`` None) or of their corrupted copies."""
    outer = [(fold, train, test[keep[fold]]) for fold, train, test in plan.outer]
    scored: dict[Key, Prediction] = {}
    for fold, _, test in outer:
        truth = data.targets[test]
        for name in names:
            for repeat in range(repeats):
                prediction = predictions[name, fold, repeat]
                proba = (prediction.test if corruption is None
                         else prediction.corrupted[corruption])[keep[fold]]
                scored[name, fold, repeat] = Prediction(
                    proba, selected=prediction.selected, metrics=task_metrics(truth, proba),
                    n_parameters=prediction.n_parameters)
    return replace(plan, outer=outer), scored


def robustness_results(plan: Plan, data: BenchmarkData, predictions: Mapping[Key, Prediction],
                       config: BenchmarkConfig, corrupted: Sequence[CorruptedTable], *,
                       n_jobs: int = 1, backend: str = "loky",
                       scheduler: str | None = None) -> dict[str, Any]:
    """``robustness``, ``robustness_systems`` and ``corruptions`` for results.json (see the
    module docstring).

    Parameters
    ----------
    plan : Plan
        The clean run's plan (with :func:`robustness_plan`'s choice).
    data : BenchmarkData
        With :attr:`~featurekit.benchmark.data.BenchmarkData.corrupted` features.
    predictions : mapping
        The clean run's predictions, each with its ``corrupted`` probabilities.
    config : BenchmarkConfig
    corrupted : sequence of CorruptedTable
    n_jobs, backend, scheduler :
        The workers the comparisons' bootstraps run on
        (:func:`~featurekit.benchmark.results.comparer`); results do not depend on them.

    Returns
    -------
    dict
    """
    repeats = config.repeats
    metric = primary_metric(data.multilabel)
    chooses = selection_branches(plan, data)
    selections = [name for name in (AUTO, plan.reference, SINGLE_AUTO, HANDCRAFTED_AUTO)
                  if name in chooses]
    singles = [system for system in plan.systems if system.fusion is None]
    names = [*selections, *(system.name for system in singles)]
    described = {name: (chooses[name], None, name) for name in selections}
    described.update({system.name: (system.branches, system.head, None) for system in singles})
    pairs = [(comparison, reference) for comparison, reference
             in (("primary", plan.reference), ("synergy", SINGLE_AUTO))
             if AUTO in selections and reference in selections]
    entries: list[dict[str, Any]] = []
    systems: list[dict[str, Any]] = []
    for corruption in corrupted:
        present = data.corrupted_rows[corruption.name]
        keep = {fold: present[test] for fold, _, test in plan.outer}
        n_clips = int(sum(mask.sum() for mask in keep.values()))
        n_missing = int(sum((~mask).sum() for mask in keep.values()))
        if n_clips == 0:
            raise ConfigError(f"no test clip has a corrupted copy under {corruption.name}")
        scores = {}
        for which in (None, corruption.name):
            sub_plan, scored = _scored_on(plan, data, predictions, keep, which, names,
                                          repeats)
            scores[which] = {name: system_entry(name, *described[name], (), data, sub_plan,
                                                 scored, repeats)["mean"][metric]
                             for name in names}
            if which is not None:
                compare = comparer([(AUTO, reference) for _, reference in pairs], sub_plan,
                                   data, scored, config, n_jobs=n_jobs, backend=backend,
                                   scheduler=scheduler)
        clean, noisy = scores[None], scores[corruption.name]
        where = {"corruption": corruption.corruption, "severity": corruption.severity,
                 "name": corruption.name}
        for name in names:
            systems.append({**where, "system": name, "metric": metric, "value": noisy[name],
                            "clean_value": clean[name],
                            "drop_pp": 100.0 * (clean[name] - noisy[name])})
        for comparison, reference in pairs:
            result = compare(AUTO, reference)
            entries.append({
                **where, "comparison": comparison, "system": AUTO, "reference": reference,
                "metric": metric, "value": noisy[AUTO], "reference_value": noisy[reference],
                "clean_value": clean[AUTO], "reference_clean_value": clean[reference],
                "gain_pp": result["mean_pp"], "ci95_pp": result["ci95_pp"],
                "per_fold_pp": result["per_fold_pp"], "n_better": result["n_better"],
                "n_worse": result["n_worse"],
                "drop_pp": 100.0 * (clean[AUTO] - noisy[AUTO]),
                "reference_drop_pp": 100.0 * (clean[reference] - noisy[reference]),
                "n_clips": n_clips, "n_missing": n_missing})
    return {"robustness": entries, "robustness_systems": systems,
            "corruptions": [{"name": c.name, "corruption": c.corruption,
                             "severity": c.severity, **c.facts} for c in corrupted]}
