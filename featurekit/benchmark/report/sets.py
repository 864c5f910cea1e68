"""The comparison of feature sets in the report: its table, its plot and its command-line lines.

Rendered from ``results.json`` alone: the systems and paired comparisons that
:func:`featurekit.benchmark.sets.set_ablation` asked the engine for, found by the names the
plan gives them (:func:`side_name`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from featurekit.benchmark.config import in_order, side_name
from featurekit.benchmark.report.common import table
from featurekit.benchmark.report.plots import save_png, signed_colours
from featurekit.computers.sets import FEATUREKIT_SET

__all__ = ["SETS_PLOT", "plot_sets", "sets_rows", "sets_section", "sets_summary"]

#: File name of the comparison plot in the output directory.
SETS_PLOT = "feature_sets.png"






def sets_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per set and neural branch of a comparison of sets.

    Parameters
    ----------
    results : mapping
        Benchmark results with ``feature_sets``.

    Returns
    -------
    list of dict
        ``set``, ``neural`` (None without a neural branch), ``columns``; accuracies
        ``alone``, ``with_neural`` and ``neural_alone`` (``mean`` and ``std`` in %); gains
        ``adds_to_neural`` and ``featurekit_minus_set`` (``pp`` and ``ci95``, percentage
        points). A figure is None where the benchmark did not run it.
    """
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
    featurekit = side_name((FEATUREKIT_SET,), branches)
    for model in info["neural"] or [None]:
        reference = side_name((model,), branches) if model else None
        for name in info["sets"]:
            alone = side_name((name,), branches)
            fused = side_name(in_order((name, model), branches), branches) if model else None
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
    """An accuracy of :func:`sets_rows` as ``mean ± sd``, or a gain (``key="pp"``) with its
    interval; ``–`` where the benchmark did not run it."""
    if value is None:
        return "–"
    if key == "pp":
        low, high = value["ci95"]
        return f"{value['pp']:+.1f} [{low:+.1f}, {high:+.1f}]"
    return f"{value['mean']:.1f} ± {value['std']:.1f}"


def sets_section(results: Mapping[str, Any]) -> list[str]:
    """The report's Markdown section on the sets.

    Parameters
    ----------
    results : mapping
        Benchmark results.

    Returns
    -------
    list of str
        The section's lines; empty without ``feature_sets``.
    """
    if not results.get("feature_sets"):
        return []
    lines = ["## Feature sets side by side", "",
             "Each set alone, fused with the pretrained CNN, and what it adds to the CNN. Every "
             "figure is a system chosen per outer fold and repeat by inner cross-validation on "
             "the training folds (the head; head and fusion for a fused system), so nothing "
             "here is picked on the test folds. Accuracy: mean ± sd over folds (%); gains: "
             "percentage points with the paired two-level bootstrap 95 % interval.", ""]
    header = ["Set", "Columns", "Alone (%)", "Neural", "Neural alone (%)", "Set + neural (%)",
              "Adds to neural (pp)", "featurekit alone − set alone (pp)"]
    rows = [[f"`{row['set']}`", str(row["columns"]), _cell(row["alone"]),
             f"`{row['neural']}`" if row["neural"] else "–", _cell(row["neural_alone"]),
             _cell(row["with_neural"]), _cell(row["adds_to_neural"], "pp"),
             _cell(row["featurekit_minus_set"], "pp")]
            for row in sets_rows(results)]
    return [*lines, *table(header, rows)]


def sets_summary(results: Mapping[str, Any]) -> list[str]:
    """One line per row of :func:`sets_rows`, for the command line.

    Parameters
    ----------
    results : mapping
        Benchmark results with ``feature_sets``.

    Returns
    -------
    list of str
    """
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
    each set brings to the CNN with its 95 % interval.

    Parameters
    ----------
    results : mapping
        Benchmark results with ``feature_sets``.
    target : Path
        The PNG written.
    """
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
        # A figure the benchmark did not run is an empty bar.
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
                    color=signed_colours(values))
        axes[1].axhline(0.0, color="black", linewidth=0.8)
        axes[1].set_ylabel(f"gain over {model} alone (pp)")
        axes[1].set_title("what each set adds (95 % interval)")
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_title("inner-CV-chosen systems (error bars: fold sd)")
    axes[0].legend(fontsize=7, loc="lower right")
    for axis in axes:
        axis.set_xticks(positions, names, rotation=20, ha="right")
    figure.suptitle(f"{results['dataset']}: feature sets side by side")
    save_png(figure, target)
