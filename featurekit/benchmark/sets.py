"""Feature sets side by side: featurekit's descriptors against the field's reference sets.

``featurekit benchmark --sets featurekit,essentia,opensmile.egemaps,opensmile.compare`` makes
each set (:mod:`featurekit.feature_sets`) one benchmark branch beside the pretrained CNN's, and
asks the engine for:

* every set alone, the CNN alone, each set fused with the CNN, and all of them together (the
  primary comparison's ``auto``);
* per set, three paired comparisons (:class:`~featurekit.benchmark.plan.BranchComparison`),
  each side chosen per outer fold and repeat by inner cross-validation on the training folds
  (head; head and fusion for fused systems): the set with the CNN against the CNN alone (what
  the set adds), the set alone against the CNN alone, and featurekit alone against the set
  alone; intervals are the engine's paired two-level bootstrap.

Everything is computed by the engine's plan, fits, fusions and statistics; this module only
chooses the branch subsets and pairs, and renders the comparison (a table and a plot) from
``results.json`` alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from featurekit.benchmark.config import AUTO, NEURAL_AUTO, SEQUENCE_HEAD_NAMES, selection_name
from featurekit.benchmark.data import is_neural
from featurekit.errors import ConfigError, StoreError
from featurekit.feature_sets import FEATURE_SETS, FEATUREKIT_SET, parse_sets, set_columns

__all__ = ["SETS_PLOT", "plot_sets", "run_sets", "set_ablation", "set_selectors", "sets_rows",
           "sets_section", "sets_summary"]

#: File name of the comparison plot in the output directory.
SETS_PLOT = "feature_sets.png"


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


def _in_order(names: Sequence[str], branches: Sequence[str]) -> tuple[str, ...]:
    return tuple(branch for branch in branches if branch in names)


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
            subsets.setdefault(_in_order((name, model), branches), []).append(f"{name}+{model}")
    if len(branches) >= 2:
        subsets.setdefault(tuple(branches), []).append("all")
    pairs = [(_in_order((name, model), branches), model) for model in neural for name in sets]
    pairs += [((name,), model) for model in neural for name in sets]
    if FEATUREKIT_SET in sets:
        pairs += [((FEATUREKIT_SET,), name) for name in sets if name != FEATUREKIT_SET]
    return subsets, pairs


def _selection(subset: Sequence[str], branches: Sequence[str]) -> str:
    # The names make_plan gives a BranchComparison's sides.
    if tuple(subset) == tuple(branches):
        return AUTO
    neural = [name for name in branches if is_neural(name)]
    if len(subset) == 1 and neural == list(subset):
        return NEURAL_AUTO
    return selection_name(tuple(subset))


def sets_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per set and neural branch of a comparison of sets (accuracies in %, gains in
    percentage points with their 95 % intervals; None where the benchmark did not run it)."""
    info = results["feature_sets"]
    branches = list(results["branches"])
    systems = {system["name"]: system for system in results["systems"]}
    comparisons = {(c["system"], c["reference"]): c
                   for c in results.get("branch_comparisons", [])}

    def accuracy(name: str) -> dict[str, float] | None:
        system = systems.get(name)
        return None if system is None else {"mean": 100 * system["mean"]["accuracy"],
                                            "std": 100 * system["std"]["accuracy"]}

    def gain(system: str, reference: str) -> dict[str, Any] | None:
        found = comparisons.get((system, reference))
        return None if found is None else {"pp": found["gain_pp"], "ci95": found["ci95_pp"]}

    rows = []
    featurekit = _selection((FEATUREKIT_SET,), branches)
    for model in info["neural"] or [None]:
        reference = _selection((model,), branches) if model else None
        for name in info["sets"]:
            alone = _selection((name,), branches)
            fused = _selection(_in_order((name, model), branches), branches) if model else None
            rows.append({
                "set": name, "neural": model, "columns": results["branches"][name],
                "alone": accuracy(alone),
                "with_neural": accuracy(fused) if fused else None,
                "neural_alone": accuracy(reference) if reference else None,
                "adds_to_neural": gain(fused, reference) if model else None,
                "featurekit_minus_set": (gain(featurekit, alone)
                                         if name != FEATUREKIT_SET else None),
            })
    return rows


def _cell(value: Mapping[str, Any] | None, key: str = "mean") -> str:
    if value is None:
        return "–"
    if key == "pp":
        low, high = value["ci95"]
        return f"{value['pp']:+.1f} [{low:+.1f}, {high:+.1f}]"
    return f"{value['mean']:.1f} ± {value['std']:.1f}"


def sets_section(results: Mapping[str, Any]) -> list[str]:
    """The report's Markdown section on the sets (empty without ``feature_sets``)."""
    if not results.get("feature_sets"):
        return []
    rows = sets_rows(results)
    lines = ["## Feature sets side by side", "",
             "Each set alone, fused with the pretrained CNN, and what it adds to the CNN. Every "
             "figure is a system chosen per outer fold and repeat by inner cross-validation on "
             "the training folds (the head; head and fusion for a fused system), so nothing "
             "here is picked on the test folds. Accuracy: mean ± sd over folds (%); gains: "
             "percentage points with the paired two-level bootstrap 95 % interval.", ""]
    header = ["Set", "Columns", "Alone (%)", "Neural", "Neural alone (%)", "Set + neural (%)",
              "Adds to neural (pp)", "featurekit alone − set alone (pp)"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join([
            f"`{row['set']}`", str(row["columns"]), _cell(row["alone"]),
            f"`{row['neural']}`" if row["neural"] else "–", _cell(row["neural_alone"]),
            _cell(row["with_neural"]), _cell(row["adds_to_neural"], "pp"),
            _cell(row["featurekit_minus_set"], "pp")]) + " |")
    return [*lines, ""]


def sets_summary(results: Mapping[str, Any]) -> list[str]:
    """One line per row of :func:`sets_rows`, for the command line."""
    lines = []
    for row in sets_rows(results):
        text = f"set {row['set']}: alone {_cell(row['alone'])} %"
        if row["neural"]:
            text += (f"; + {row['neural']} {_cell(row['with_neural'])} % "
                     f"(adds {_cell(row['adds_to_neural'], 'pp')} pp)")
        if row["featurekit_minus_set"]:
            text += f"; featurekit alone minus it {_cell(row['featurekit_minus_set'], 'pp')} pp"
        lines.append(text)
    return lines


def plot_sets(results: Mapping[str, Any], target: Path) -> None:
    """Bars per set: accuracy alone and with the CNN (the CNN alone as a line), and the gain
    each set brings to the CNN with its 95 % interval."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from featurekit.fsutil import atomic_path

    neural = results["feature_sets"]["neural"]
    # With several neural branches, the plot shows the first; the table has them all.
    rows = [row for row in sets_rows(results) if row["neural"] == (neural[0] if neural else None)]
    names = [row["set"] for row in rows]
    positions = np.arange(len(rows))
    with_neural = [row for row in rows if row["with_neural"]]
    figure = Figure(figsize=(4.5 + 1.2 * len(rows) * (1 + bool(with_neural)), 3.8),
                    layout="constrained")
    axes = figure.subplots(1, 2 if with_neural else 1, squeeze=False)[0]
    width = 0.38 if with_neural else 0.6

    def bars(axis: Any, offset: float, key: str, label: str, colour: str) -> None:
        means = [row[key]["mean"] if row[key] else np.nan for row in rows]
        sds = [row[key]["std"] if row[key] else 0.0 for row in rows]
        axis.bar(positions + offset, means, width, yerr=sds, capsize=3, label=label,
                 color=colour)

    bars(axes[0], -width / 2 if with_neural else 0.0, "alone", "set alone", "tab:blue")
    if with_neural:
        model = rows[0]["neural"]
        bars(axes[0], width / 2, "with_neural", f"set + {model}", "tab:green")
        axes[0].axhline(rows[0]["neural_alone"]["mean"], color="black", linestyle="--",
                        linewidth=1, label=f"{model} alone")
        gains = [row["adds_to_neural"] for row in rows]
        values = np.array([g["pp"] if g else np.nan for g in gains])
        low = np.array([g["pp"] - g["ci95"][0] if g else 0.0 for g in gains])
        high = np.array([g["ci95"][1] - g["pp"] if g else 0.0 for g in gains])
        axes[1].bar(positions, values, 0.6, yerr=[low, high], capsize=4,
                    color=["tab:green" if v >= 0 else "tab:red" for v in values])
        axes[1].axhline(0.0, color="black", linewidth=0.8)
        axes[1].set_ylabel(f"gain over {model} alone (pp)")
        axes[1].set_title("what each set adds (95 % interval)")
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_title("inner-CV-chosen systems (error bars: fold sd)")
    axes[0].legend(fontsize=7, loc="lower right")
    for axis in axes:
        axis.set_xticks(positions, names, rotation=20, ha="right")
    figure.suptitle(f"{results['dataset']}: feature sets side by side")
    FigureCanvasAgg(figure)
    with atomic_path(target, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight",
                       metadata={"Software": None})


def run_sets(dataset: str, data_dir: str | os.PathLike[str], store: str | os.PathLike[str], *,
             sets: str | Sequence[str], model: str | Sequence[str] | None = "mn04_as",
             weights: str | None = None, config: Any = None, extraction: Any = None,
             out: str | os.PathLike[str] | None = None, n_jobs: int = 1,
             backend: str = "loky", scheduler: str | None = None,
             progress: bool | None = None) -> Any:
    """Compare feature sets end to end: compute what the store lacks, evaluate, report.

    Parameters
    ----------
    sets : str or sequence of str
        Names of :data:`featurekit.feature_sets.FEATURE_SETS` (``"featurekit,essentia"``).
    dataset, data_dir, store, model, weights, config, extraction, out, n_jobs, backend,
    scheduler, progress :
        As in :func:`featurekit.benchmark.run`; ``extraction`` configures the featurekit set.

    Returns
    -------
    BenchmarkRun
        ``results["feature_sets"]`` names the sets and neural branches; the report has the
        side-by-side table and :data:`SETS_PLOT`.

    Raises
    ------
    ConfigError
        Unknown sets, the sequence head (sets are compared on clip-level functionals), bad
        parallelism.
    MissingDependencyError
        A set's engine is not installed (the message names the extra).
    StoreError
        Computing a branch failed.
    """
    from featurekit.benchmark.config import BenchmarkConfig
    from featurekit.benchmark.driver import (
        BenchmarkRun,
        fill_store,
        model_names,
        read_features,
        run_benchmark,
    )
    from featurekit.benchmark.report import write_report
    from featurekit.benchmark.results import save_results
    from featurekit.datasets import load_dataset
    from featurekit.feature_sets import set_computer
    from featurekit.runner import run_branch
    from featurekit.store import FeatureStore

    names = parse_sets(sets)
    config = config or BenchmarkConfig()
    if any(head in SEQUENCE_HEAD_NAMES for head in config.heads):
        raise ConfigError("feature sets are compared on clip-level functionals: drop the "
                          "sequence head from --heads")
    if n_jobs == 0 or n_jobs < -1:
        raise ConfigError("n_jobs must be a positive count or -1")
    computers = [set_computer(name) for name in names if name != FEATUREKIT_SET]  # fail early
    data = load_dataset(dataset, data_dir)
    feature_store = FeatureStore(store)
    models = model_names(model)
    # featurekit's branch and the embeddings, then each reference set.
    fill_store(data, feature_store, model=models, weights=weights, extraction=extraction,
               n_jobs=n_jobs, backend=backend, scheduler=scheduler, progress=progress)
    for computer in computers:
        summary = run_branch(computer, data, feature_store, n_jobs=n_jobs, backend=backend,
                             scheduler=scheduler, progress=progress is not False)
        print(summary, file=sys.stderr)
        if summary.exit_code:
            raise StoreError(f"computing {data.name}/{computer.branch} failed: {summary}")
    table, provenance = read_features(
        feature_store, data.name, model=models,
        recordings=data.clips.set_index("clip_id")["recording"],
        branches=[FEATURE_SETS[name].branch for name in names])
    selectors = set_selectors(names, [str(c) for c in table.columns])
    subsets, pairs = set_ablation(list(selectors))
    results = run_benchmark(table, dataset=data.name, branches=selectors, config=config,
                            provenance=provenance, expected_folds=data.expected_folds,
                            subsets=subsets, pairs=pairs, n_jobs=n_jobs, backend=backend,
                            scheduler=scheduler, progress=progress)
    results["feature_sets"] = {"sets": list(names),
                               "neural": [b for b in selectors if is_neural(b)],
                               "descriptions": {name: FEATURE_SETS[name].description
                                                for name in names}}
    target = Path(out or f"benchmark-{data.name}")
    written = [save_results(results, target), *write_report(results, target).values()]
    return BenchmarkRun(results, written)
