"""Results: the JSON-ready record of a benchmark (the results.json contract), saved and read.

Keys: ``dataset, folds, protocol, systems, primary, synergy, synergy_note, best_single,
best_fusion, fusion_gain, comparisons, fusion_vs_own_branches, sequence_vs_functionals,
contributions, versions, config_hashes, timings_s, validation_splits`` (the engine adds the last
four) and facts about the data. ``primary`` is the headline: ``auto`` (per outer fold, the head
x fusion over every branch that won the inner cross-validation of the training folds) against
``neural-auto`` (the same among single neural branches and, with several, their fusions), each
side's pool in ``candidates``. ``synergy``, the second pre-registered comparison, has the same
keys: ``auto`` against ``single-auto`` (the same among systems made of
one group only: the handcrafted branches together, or one neural branch alone); it is None,
``synergy_note`` saying why, when the run lacks handcrafted or neural branches. The best single
branch and best fusion by test accuracy are kept as exploratory figures: chosen on the test
folds, they favour themselves. Every system entry has ``n_parameters``, the values it learned
(:mod:`featurekit.learn.parameters`, the fusion's own added; mean over folds and repeats), and
``n_frozen_parameters``, those of the frozen pretrained networks its branches read
(``frozen_parameters``: per neural branch); None where a part has no count.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Container, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featurekit._util.fsutil import atomic_write_text
from featurekit.benchmark.config import AUTO, SINGLE_AUTO, BenchmarkConfig, unit_head
from featurekit.benchmark.data import BenchmarkData
from featurekit.benchmark.fuse import Key, Prediction
from featurekit.benchmark.plan import BranchComparison, Plan, system_name
from featurekit.benchmark.score import (
    SystemScores,
    ci_method,
    compare,
    compare_map,
    confusion,
    metric_names,
    per_class_ap,
    per_class_f1,
    primary_metric,
    resample_pairs,
    resample_systems,
)
from featurekit.errors import ConfigError
from featurekit.names import NEURAL_PREFIX, SEQUENCE_HEAD_NAMES, is_neural


def _per_class(name: str, data: BenchmarkData, plan: Plan,
               predictions: Mapping[Key, Prediction], repeats: int) -> dict[str, Any]:
    """Per-class scores over all test folds: F1 and the confusion counts (per repeat) of a
    single-label task; each class's average precision (mean over folds and repeats, NaN where
    a class has no positive test clip) of a multi-label one."""
    if data.multilabel:
        ap = np.nanmean([per_class_ap(data.Y[test], predictions[name, fold, r].test)
                         for fold, _, test in plan.outer for r in range(repeats)], axis=0)
        return {"per_class_ap": dict(zip(data.classes, ap.round(6).tolist(), strict=True))}
    truth = np.concatenate([data.y[test] for _, _, test in plan.outer for _ in range(repeats)])
    predicted = np.concatenate([np.argmax(predictions[name, fold, r].test, axis=1)
                                for fold, _, _ in plan.outer for r in range(repeats)])
    return {"per_class_f1": dict(zip(data.classes, per_class_f1(
                truth, predicted, data.n_classes).round(6).tolist(), strict=True)),
            "confusion": (confusion(truth, predicted, data.n_classes) / repeats).tolist()}


def frozen_parameters(branches: Sequence[str]) -> dict[str, int | None]:
    """Per pretrained neural branch, the parameters of its frozen network
    (:func:`~featurekit.neural.parameters.model_parameters`; None for a model the registry does
    not know)."""
    from featurekit.neural.parameters import model_parameters

    counts: dict[str, int | None] = {}
    for name in branches:
        if name.startswith(NEURAL_PREFIX):
            try:
                counts[name] = model_parameters(name.removeprefix(NEURAL_PREFIX))
            except ConfigError:
                counts[name] = None
    return counts


def _sizes(name: str, plan: Plan, predictions: Mapping[Key, Prediction], repeats: int,
           frozen: Mapping[str, int | None]) -> dict[str, float | None]:
    """A system's ``n_parameters`` (learned values, mean over folds and repeats) and
    ``n_frozen_parameters`` (those of the frozen networks its branches read; for a selection,
    of the systems it chose, averaged); None where a count is unknown."""
    branches = {system.name: system.branches for system in plan.systems}

    def mean(values: list[float | None]) -> float | None:
        return None if any(v is None for v in values) else float(np.mean(values))

    chosen = [predictions[name, fold, r] for fold in plan.folds for r in range(repeats)]
    learned = mean([prediction.n_parameters for prediction in chosen])
    fixed = mean([None if any(frozen.get(b, 0) is None for b in branches[system]) else
                  sum(frozen.get(b) or 0 for b in branches[system])
                  for system in (prediction.selected or name for prediction in chosen)])
    return {"n_parameters": learned, "n_frozen_parameters": fixed}


def system_entry(name: str, branches: Sequence[str], head: str | None, fusion: str | None,
                  roles: Sequence[str], data: BenchmarkData, plan: Plan,
                  predictions: Mapping[Key, Prediction], repeats: int,
                  frozen: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """One system's scores (and, given the ``frozen`` networks' counts, its sizes)."""
    metrics, primary = metric_names(data.multilabel), primary_metric(data.multilabel)
    per_fold, per_repeat = {}, np.zeros((repeats, len(plan.folds)))
    for index, (fold, _, _) in enumerate(plan.outer):
        scores = [predictions[name, fold, r].metrics for r in range(repeats)]
        per_fold[str(fold)] = {metric: float(np.mean([s[metric] for s in scores]))
                               for metric in metrics}
        per_repeat[:, index] = [s[primary] for s in scores]
    values = {metric: np.array([scores[metric] for scores in per_fold.values()])
              for metric in metrics}
    repeat_score = per_repeat.mean(axis=1)
    entry = {"name": name, "branches": list(branches), "head": head, "fusion": fusion,
             "per_fold": per_fold,
             **({} if frozen is None else _sizes(name, plan, predictions, repeats, frozen)),
             "mean": {m: float(v.mean()) for m, v in values.items()},
             "std": {m: float(v.std(ddof=1)) if v.size > 1 else 0.0 for m, v in values.items()},
             "repeats": {primary: repeat_score.tolist()},
             "repeat_sd": {primary: float(repeat_score.std(ddof=1)) if repeats > 1 else 0.0},
             "ablation": list(roles),
             **_per_class(name, data, plan, predictions, repeats)}
    choices = {f"{fold}": [predictions[name, fold, r].choice for r in range(repeats)]
               for fold in plan.folds}
    if any(choice is not None for values in choices.values() for choice in values):
        entry["fusion_choice"] = {fold: "; ".join(f"r{r}: {c}" for r, c in enumerate(values))
                                  if len(set(values)) > 1 else values[0]
                                  for fold, values in choices.items()}
    return entry


def assemble_results(plan: Plan, data: BenchmarkData, predictions: Mapping[Key, Prediction],
                     config: BenchmarkConfig, *, dataset: str, n_jobs: int = 1,
                     backend: str = "loky", scheduler: str | None = None) -> dict[str, Any]:
    """Every system's scores and the comparisons between them (see the module docstring).

    The comparisons' bootstraps run as tasks on ``n_jobs`` workers of ``backend`` (at
    ``scheduler``), as the fits do (:func:`comparer`); the results do not depend on them.
    """
    repeats = config.repeats
    frozen = frozen_parameters(data.branches)
    systems = [system_entry(s.name, s.branches, s.head, s.fusion, s.roles, data, plan,
                             predictions, repeats, frozen) for s in plan.systems]
    for name, branches in selection_branches(plan, data).items():
        systems.append(system_entry(name, branches, None, name,
                                     ("selected on inner cross-validation",), data, plan,
                                     predictions, repeats, frozen))
    by_name = {system["name"]: system for system in systems}
    metric = primary_metric(data.multilabel)

    studied = [s for s in systems if s["head"] is not None]
    singles = [s for s in studied if s["fusion"] is None]
    fused = [s for s in studied if s["fusion"] is not None]
    best_single = max(singles, key=lambda s: s["mean"][metric])["name"]
    best_fusion = max(fused, key=lambda s: s["mean"][metric])["name"] if fused else None
    own_best: dict[str, str] = {}  # each fusion's best branch evaluated alone
    for system in fused:
        # An ablation mode that leaves some branches' single systems out (``none``) compares
        # a fusion with those of its branches that were evaluated alone, if any.
        own = [by_name[name] for name in _own_singles(system["branches"], system["head"],
                                                       by_name)]
        if own:
            own_best[system["name"]] = max(own, key=lambda s: s["mean"][metric])["name"]
    # (branch, its sequence head's system, the best of its functionals' systems)
    sequence_pairs: list[tuple[str, str, str]] = []
    for head in (h for h in config.heads if h in SEQUENCE_HEAD_NAMES):
        for name in data.branches:
            learned = by_name.get(system_name((name,), head, None))
            functionals = [s for s in singles if s["branches"] == [name]
                           and s["head"] not in SEQUENCE_HEAD_NAMES]
            if learned and functionals:
                reference = max(functionals, key=lambda s: s["mean"][metric])["name"]
                sequence_pairs.append((name, learned["name"], reference))
    headline = bool(plan.auto_candidates and plan.reference_candidates)
    # Every comparison reported below, resampled up front on the workers.
    pairs = [*([(AUTO, plan.reference)] if headline else []),
             *([(AUTO, SINGLE_AUTO)] if plan.synergy_candidates else []),
             *((c.system, c.reference) for c in plan.branch_comparisons),
             *((s["name"], best_single) for s in fused), *own_best.items(),
             *((learned, reference) for _, learned, reference in sequence_pairs)]
    comparison = comparer(pairs, plan, data, predictions, config, n_jobs=n_jobs,
                          backend=backend, scheduler=scheduler)
    primary = (_headline(comparison, plan.reference, by_name, data, config, plan) if headline
               else None)
    comparisons = [comparison(s["name"], best_single) for s in fused]
    fusion_vs_own = [comparison(name, reference) for name, reference in own_best.items()]
    sequence_vs_functionals = [{"branch": branch, **comparison(learned, reference)}
                               for branch, learned, reference in sequence_pairs]
    neural_singles = [s for s in singles if is_neural(s["branches"][0])]
    anchor = by_name[_most_chosen(predictions, plan) or best_fusion or best_single]
    return {
        "dataset": dataset, "folds": plan.folds, "protocol": plan.protocol,
        "multilabel": data.multilabel, "metric": metric,
        "primary": primary,
        "synergy": (_headline(comparison, SINGLE_AUTO, by_name, data, config, plan)
                    if plan.synergy_candidates else None),
        "synergy_note": plan.synergy_note,
        "branch_comparisons": [_branch_comparison(c, by_name, comparison, metric)
                               for c in plan.branch_comparisons],
        "systems": systems,
        "best_single": best_single, "best_fusion": best_fusion,
        "fusion_gain": next((c for c in comparisons if c["system"] == best_fusion), None),
        "selection_note": f"best_single, best_fusion, fusion_gain and comparisons pick systems "
                          f"by their test {metric}: exploratory, not the headline",
        "classes": data.classes,
        "clips_per_fold": {str(fold): len(test) for fold, _, test in plan.outer},
        "n_clips": len(data.y),
        "recordings_known": data.recordings_known,
        "grouping": data.grouping,
        "branches": {name: len(cols) for name, cols in data.positions.items()},
        "frozen_parameters": frozen,
        "config": config.to_dict(),
        "comparisons": comparisons,
        "fusion_vs_own_branches": fusion_vs_own,
        "sequence_vs_functionals": sequence_vs_functionals,
        "sequence_dims": {name: list(np.shape(values)[1:])
                          for name, values in data.sequences.items()},
        "contributions": _contributions(by_name, data.branches, plan.folds, anchor, metric),
        "reference_for_gain": (max(neural_singles, key=lambda s: s["mean"][metric])["name"]
                               if neural_singles else best_single),
    }


def _own_singles(branches: Sequence[str], head: str, names: Container[str]) -> list[str]:
    """The single-branch systems among ``names`` of a fusion's ``branches`` with its head
    (the e2e stream's with its CNN)."""
    singles = [system_name((name,), unit_head(head, name), None) for name in branches]
    return [name for name in singles if name in names]


def _headline(comparison: Any, reference: str, by_name: Mapping[str, Mapping[str, Any]],
              data: BenchmarkData, config: BenchmarkConfig, plan: Plan) -> dict[str, Any]:
    """``auto`` against ``reference``, both chosen by inner cross-validation, as results.json
    states a pre-registered comparison (``primary``, ``synergy``): with each side's choices
    per fold and the systems it chose among (``candidates``)."""
    entry = comparison(AUTO, reference)
    entry["gain_pp"] = entry.pop("mean_pp")
    pools = dict(plan.selections)
    entry.update(metric=primary_metric(data.multilabel), selection="inner_cv",
                 n_repeats=config.repeats,
                 ci_method=ci_method(data.recordings_known, config.repeats, config.n_bootstrap),
                 choices={name: by_name[name]["fusion_choice"] for name in (AUTO, reference)},
                 candidates={name: list(pools[name]) for name in (AUTO, reference)})
    return entry


def _planned_pairs(plan: Plan, *, curve_point: bool = False
                   ) -> list[tuple[str, frozenset[str]]]:
    """The paired comparisons :func:`assemble_results` makes for ``plan`` (a learning-curve
    point, :func:`curve_comparisons`: the branch comparisons and the synergy one), each as its
    system and the systems its reference may be: the best single branch, a fusion's best own
    branch and a sequence head's best functionals are picked by their test scores, after the
    run."""
    synergy = [(AUTO, frozenset({SINGLE_AUTO}))] if plan.synergy_candidates else []
    branch = [(c.system, frozenset({c.reference})) for c in plan.branch_comparisons]
    if curve_point:
        return [*branch, *synergy]
    singles = [system for system in plan.systems if system.fusion is None]
    fused = [system for system in plan.systems if system.fusion is not None]
    names = frozenset(system.name for system in singles)
    primary = ([(AUTO, frozenset({plan.reference}))]
               if plan.auto_candidates and plan.reference_candidates else [])
    own = [(system.name, frozenset(_own_singles(system.branches, system.head, names)))
           for system in fused]
    sequence = [(system.name, frozenset(
        other.name for other in singles if other.branches == system.branches
        and other.head not in SEQUENCE_HEAD_NAMES)) for system in singles
        if system.head in SEQUENCE_HEAD_NAMES]
    return [*primary, *synergy, *branch, *((system.name, names) for system in fused),
            *((name, references) for name, references in [*own, *sequence] if references)]


def planned_comparisons(plan: Plan) -> int:
    """How many paired comparisons :func:`assemble_results` makes for ``plan`` (each one
    bootstrap): the primary and synergy ones, each branch comparison, each fusion against the
    best single branch and against its own branches, and each sequence head against the
    functionals of its branch."""
    return len(_planned_pairs(plan))


def statistics_tasks(plan: Plan, multilabel: bool, *, curve_point: bool = False) -> int:
    """How many bootstraps the statistics of ``plan`` (a learning-curve point's with
    ``curve_point``) give the workers (:func:`comparer`), at most: one per comparison, or for
    label sets one per system the comparisons may read (which single branch is the best is
    known only after the run, and systems with identical probabilities share one)."""
    pairs = _planned_pairs(plan, curve_point=curve_point)
    if not multilabel:
        return len(pairs)
    return len({name for system, references in pairs for name in (system, *references)})


def selection_branches(plan: Plan, data: BenchmarkData) -> dict[str, list[str]]:
    """Branches each selection of the plan chooses among."""
    everything = data.branches
    out = {AUTO: everything, SINGLE_AUTO: everything,
           plan.reference: [b for b in everything if is_neural(b)] or everything}
    for comparison in plan.branch_comparisons:
        out[comparison.system] = list(comparison.branches)
        out[comparison.reference] = [comparison.branch]
    branches = {system.name: system.branches for system in plan.systems}
    for name, candidates in plan.extra_selections.items():
        out[name] = [b for b in everything if any(b in branches[c] for c in candidates)]
    return {name: out[name] for name, _ in plan.selections}


def bootstrap_units(plan: Plan, data: BenchmarkData) -> list[np.ndarray]:
    """Per outer fold, the resampling unit of each test clip (recording, else the clip)."""
    return [data.groups[test] if data.recordings_known else test
            for _, _, test in plan.outer]


def comparer(pairs: Sequence[tuple[str, str]], plan: Plan, data: BenchmarkData,
             predictions: Mapping[Key, Prediction], config: BenchmarkConfig, *,
             n_jobs: int = 1, backend: str = "loky",
             scheduler: str | None = None) -> Callable[[str, str], dict[str, Any]]:
    """``comparison(name, reference)`` of two systems of ``pairs``: paired, in points of the
    task's primary metric, with the two-level bootstrap over the test units and the repeats
    (:func:`~featurekit.benchmark.score.compare`; for label sets
    :func:`~featurekit.benchmark.score.compare_map`, which takes macro mAP in every
    resample).

    The bootstraps of ``pairs`` (system, reference) are computed here, as tasks on ``n_jobs``
    workers of ``backend`` (at ``scheduler``; one loky worker: in this process): for label
    sets each distinct system's resamples
    (:func:`~featurekit.benchmark.score.resample_systems`), else each pair's interval
    (:func:`~featurekit.benchmark.score.resample_pairs`). Another pair of these systems is
    resampled when asked, in this process.
    """
    names = list(dict.fromkeys(name for pair in pairs for name in pair))
    units = bootstrap_units(plan, data)
    repeats = range(config.repeats)
    options = {"n_boot": config.n_bootstrap, "random_state": config.seed}
    workers = {"n_jobs": n_jobs, "backend": backend, "scheduler": scheduler}
    if data.multilabel:
        probas = {name: [np.stack([predictions[name, fold, r].test for r in repeats])
                         for fold, _, _ in plan.outer] for name in names}
        truth = [data.Y[test] for _, _, test in plan.outer]
        memo: dict[str, SystemScores] = {}  # each system resampled once for all its comparisons
        resample_systems(names, probas, truth, units, memo=memo, **options, **workers)

        def comparison(name: str, reference: str) -> dict[str, Any]:
            return compare_map(name, reference, probas, truth, units, plan.folds, memo=memo,
                               **options)
        return comparison
    # Per system and outer fold, whether each repeat got each test clip right.
    correct = {name: [np.stack([np.argmax(predictions[name, fold, r].test, axis=1)
                                == data.y[test] for r in repeats])
                      for fold, _, test in plan.outer]
               for name in names}
    intervals: dict[tuple[str, str], tuple[float, float]] = {}
    resample_pairs(pairs, correct, units, memo=intervals, **options, **workers)

    def comparison(name: str, reference: str) -> dict[str, Any]:
        return compare(name, reference, correct, units, plan.folds, memo=intervals, **options)
    return comparison


def _branch_comparison(comparison: BranchComparison, by_name: Mapping[str, Mapping[str, Any]],
                       compare_systems: Any, metric: str) -> dict[str, Any]:
    """One :class:`BranchComparison` as results.json states it (accuracies and ``metric``'s
    scores 0-1, gain in points of ``metric``)."""
    result = compare_systems(comparison.system, comparison.reference)
    return {"branch": comparison.branch, "system": comparison.system,
            "reference": comparison.reference, "metric": metric,
            "score": by_name[comparison.system]["mean"][metric],
            "reference_score": by_name[comparison.reference]["mean"][metric],
            "accuracy": by_name[comparison.system]["mean"]["accuracy"],
            "reference_accuracy": by_name[comparison.reference]["mean"]["accuracy"],
            "gain_pp": result["mean_pp"], "ci95_pp": result["ci95_pp"],
            "per_fold_pp": result["per_fold_pp"], "n_better": result["n_better"],
            "n_worse": result["n_worse"],
            "choices": {name: by_name[name].get("fusion_choice")
                        for name in (comparison.system, comparison.reference)}}


def curve_comparisons(plan: Plan, data: BenchmarkData, predictions: Mapping[Key, Prediction],
                      config: BenchmarkConfig, *, n_jobs: int = 1, backend: str = "loky",
                      scheduler: str | None = None
                      ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The comparisons of a learning-curve point, each side chosen by inner cross-validation,
    with the paired two-level bootstrap interval of the gain, their bootstraps run together
    on the workers (:func:`comparer`).

    Returns
    -------
    branch_comparisons : list of dict
        Handcrafted + each neural branch against that branch alone (the entries of
        ``results.json``'s ``branch_comparisons``).
    synergy : dict or None
        ``results.json``'s ``synergy`` keys, and both sides' ``score`` and ``accuracy`` (0-1;
        the curve keeps no system entries); None when the plan has no synergy comparison.
    """
    synergy = [(AUTO, SINGLE_AUTO)] if plan.synergy_candidates else []
    pairs = [*((c.system, c.reference) for c in plan.branch_comparisons), *synergy]
    branches = selection_branches(plan, data)
    by_name = {name: system_entry(name, branches[name], None, name, (), data, plan,
                                   predictions, config.repeats)
               for name in dict.fromkeys(name for pair in pairs for name in pair)}
    comparison = comparer(pairs, plan, data, predictions, config, n_jobs=n_jobs,
                          backend=backend, scheduler=scheduler)
    metric = primary_metric(data.multilabel)
    entries = [_branch_comparison(c, by_name, comparison, metric)
               for c in plan.branch_comparisons]
    if not synergy:
        return entries, None
    entry = _headline(comparison, SINGLE_AUTO, by_name, data, config, plan)
    return entries, {**entry, "score": by_name[AUTO]["mean"][metric],
                     "reference_score": by_name[SINGLE_AUTO]["mean"][metric],
                     "accuracy": by_name[AUTO]["mean"]["accuracy"],
                     "reference_accuracy": by_name[SINGLE_AUTO]["mean"]["accuracy"]}


def _most_chosen(predictions: Mapping[Key, Prediction], plan: Plan) -> str | None:
    """The system ``auto`` chose most often over folds and repeats (ties: the first)."""
    chosen = [prediction.selected for (name, _, _), prediction in predictions.items()
              if name == AUTO]
    if not chosen:
        return None
    return max(plan.auto_candidates, key=chosen.count)


def _contributions(by_name: Mapping[str, Mapping[str, Any]], branch_names: Sequence[str],
                   fold_ids: Sequence[int], anchor: Mapping[str, Any],
                   metric: str = "accuracy") -> dict[str, Any]:
    """Each branch alone and its marginal value (all minus all-but-it), with ``anchor``'s head
    and fusion (the branches the ablation mode evaluated alone; a marginal value where it
    evaluated all but the branch), per fold and as mean and standard deviation over folds,
    in points of ``metric`` (the keys keep their historical ``_pct`` names)."""
    head, fusion = anchor["head"], anchor["fusion"]

    def lookup(subset: Sequence[str]) -> Mapping[str, Any] | None:
        if len(subset) == 1:
            return by_name.get(system_name(subset, unit_head(head, subset[0]), None))
        return by_name.get(system_name(subset, head, fusion))

    def summary(values: Sequence[float]) -> dict[str, Any]:
        array = np.asarray(values)
        return {"per_fold": {str(f): float(v) for f, v in zip(fold_ids, array, strict=True)},
                "mean": float(array.mean()),
                "std": float(array.std(ddof=1)) if array.size > 1 else 0.0}

    def accuracy(system: Mapping[str, Any]) -> list[float]:
        return [100.0 * system["per_fold"][str(f)][metric] for f in fold_ids]

    everything = lookup(branch_names)
    out: dict[str, Any] = {"head": head, "fusion": fusion, "branches": {}}
    for name in branch_names:
        alone = lookup((name,))
        if alone is None:  # not evaluated alone in this ablation mode
            continue
        entry: dict[str, Any] = {"alone_pct": summary(accuracy(alone))}
        rest = [other for other in branch_names if other != name]
        without = lookup(rest) if rest else None
        if everything is not None and without is not None:
            entry["marginal_pp"] = summary([a - b for a, b in zip(
                accuracy(everything), accuracy(without), strict=True)])
        out["branches"][name] = entry
    return out


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def save_results(results: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` into ``out_dir`` atomically and return its path."""
    target = Path(out_dir) / "results.json"
    atomic_write_text(target, json.dumps(_json_ready(results), indent=1) + "\n")
    return target


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``results.json`` written by :func:`save_results`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
