"""Feature sets side by side: featurekit's descriptors against the field's reference sets.

``featurekit benchmark --sets featurekit,essentia,opensmile.egemaps,opensmile.compare`` makes
each set (:mod:`featurekit.computers.sets`) one benchmark branch beside the pretrained CNN's, and
asks the engine for:

* every set alone, the CNN alone, each set fused with the CNN, and all of them together (the
  primary comparison's ``auto``);
* per set, three paired comparisons (:class:`~featurekit.benchmark.plan.BranchComparison`),
  each side chosen per outer fold and repeat by inner cross-validation on the training folds
  (head; head and fusion for fused systems): the set with the CNN against the CNN alone (what
  the set adds), the set alone against the CNN alone, and featurekit alone against the set
  alone; intervals are the engine's paired two-level bootstrap.

Everything is computed by the engine's plan, fits, fusions and statistics; this module only
chooses the branch subsets and pairs. :mod:`featurekit.benchmark.report.sets` renders the
comparison (a table and a plot) from ``results.json`` alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from featurekit.benchmark.config import BenchmarkConfig, in_order
from featurekit.benchmark.engine import dataset_task, run_benchmark
from featurekit.benchmark.estimate import read_stage
from featurekit.computers.sets import FEATURE_SETS, FEATUREKIT_SET, set_columns
from featurekit.errors import StoreError
from featurekit.names import is_neural
from featurekit.pipeline import read_features

__all__ = ["benchmark_sets", "set_ablation", "set_selectors"]


def set_selectors(sets: Sequence[str], columns: Sequence[str]) -> dict[str, list[str]]:
    """Benchmark branches of a comparison of sets: each set's columns, then each neural branch's
    embedding columns, found among a store read's ``columns``.

    Raises
    ------
    StoreError
        A set has no column in ``columns``.
    """
    from featurekit.benchmark.data import branch_selectors

    selectors = {}
    for name in sets:
        selectors[name] = set_columns(name, columns)
        if not selectors[name]:
            raise StoreError(f"no column of feature set {name!r} in the features read")
    prefixes = {branch: prefix for branch, prefix in branch_selectors(columns).items()
                if is_neural(branch)}
    for branch, prefix in prefixes.items():
        selectors[branch] = [str(c) for c in columns if str(c).startswith(prefix)]
    return selectors


def set_ablation(branches: Sequence[str]) -> tuple[dict[tuple[str, ...], list[str]],
                                                   list[tuple[tuple[str, ...], str]]]:
    """Branch subsets and comparison pairs of a comparison of sets.

    Parameters
    ----------
    branches : sequence of str
        Benchmark branches: the sets, then the neural branches.

    Returns
    -------
    subsets : dict
        ``subset -> roles``: each branch alone, each set with each neural branch
        (``<set>+<neural>``), and every branch together (``all``, two or more branches).
    pairs : list of (subset, branch)
        Set + neural against the neural branch, set alone against the neural branch, and
        featurekit alone against each other set alone.
    """
    sets = [name for name in branches if not is_neural(name)]
    neural = [name for name in branches if is_neural(name)]
    subsets: dict[tuple[str, ...], list[str]] = {(name,): [f"alone:{name}"] for name in branches}
    for model in neural:
        for name in sets:
            subsets.setdefault(in_order((name, model), branches), []).append(f"{name}+{model}")
    if len(branches) >= 2:
        subsets.setdefault(tuple(branches), []).append("all")
    pairs = [(in_order((name, model), branches), model) for model in neural for name in sets]
    pairs += [((name,), model) for model in neural for name in sets]
    if FEATUREKIT_SET in sets:
        pairs += [((FEATUREKIT_SET,), name) for name in sets if name != FEATUREKIT_SET]
    return subsets, pairs


def benchmark_sets(feature_store: Any, data: Any, sets: Sequence[str], *,
                   model: str | Sequence[str] | None, config: BenchmarkConfig,
                   **options: Any) -> dict[str, Any]:
    """Compare feature sets from a store that holds them: read, benchmark, name the sets.

    Parameters
    ----------
    feature_store : FeatureStore
    data : Dataset
        The dataset (its name, folds, clips' source recordings, and its task: label sets and
        protocol, :func:`~featurekit.benchmark.engine.dataset_task`, as the other drivers
        honour them).
    sets : sequence of str
        Names of :data:`featurekit.computers.sets.FEATURE_SETS` (checked by
        :func:`~featurekit.computers.sets.parse_sets`).
    model : str or sequence of str, optional
        Neural model(s) whose branches join the sets.
    config : BenchmarkConfig
    **options
        ``n_jobs``, ``backend``, ``scheduler``, ``progress``, ``calibrate``, ``plan_only``,
        ``on_plan``, ``stages`` of :func:`~featurekit.benchmark.engine.run_benchmark` (the
        read joins the stages).

    Returns
    -------
    dict
        The results; ``results["feature_sets"]`` names the sets and neural branches, which
        :mod:`featurekit.benchmark.report.sets` renders side by side.

    Raises
    ------
    StoreError
        A set's branch is missing from the store or has no column.
    """
    started = time.perf_counter()
    table, provenance = read_features(
        feature_store, data.name, model=model,
        clips=data.clips,
        branches=[FEATURE_SETS[name].branch for name in sets])
    stages = [*options.pop("stages", ()),
              read_stage(time.perf_counter() - started,
                         plan_only=options.get("plan_only", False))]
    selectors = set_selectors(sets, [str(c) for c in table.columns])
    subsets, pairs = set_ablation(list(selectors))
    results = run_benchmark(table, dataset=data.name, branches=selectors, config=config,
                            provenance=provenance, expected_folds=data.expected_folds,
                            subsets=subsets, pairs=pairs, stages=stages, **dataset_task(data),
                            **options)
    results["feature_sets"] = {"sets": list(sets),
                               "neural": [b for b in selectors if is_neural(b)],
                               "descriptions": {name: FEATURE_SETS[name].description
                                                for name in sets}}
    return results
