"""The report's PNG plots, drawn from a results dict alone (see :mod:`featurekit.benchmark.report`).

Figures are drawn with matplotlib's object-oriented API on the Agg canvas (no display, no
global pyplot state) and written by :func:`save_png`, the one place that sets how a plot is
saved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from featurekit._util.fsutil import atomic_path
from featurekit.benchmark.report.common import (
    gain_pair,
    headline_system,
    metric_title,
    pct,
    per_class_key,
    subsampled_units,
)


def save_png(figure: Figure, target: Path) -> None:
    """Write ``figure`` to ``target`` as a PNG.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        A figure made without pyplot; it is given an Agg canvas here.
    target : Path
        The file written (atomically: a reader never sees half a plot).
    """
    FigureCanvasAgg(figure)
    with atomic_path(target, suffix=".png") as tmp:
        # No "Software" entry: the bytes do not change with the matplotlib version.
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight",
                       metadata={"Software": None})


def signed_colours(values: Sequence[float]) -> list[str]:
    """Bar colours of gains: green for a gain of zero or more, red otherwise (NaN: red)."""
    return ["tab:green" if value >= 0 else "tab:red" for value in values]


def plot_contributions(results: Mapping[str, Any], target: Path) -> None:
    """Bars of each branch's accuracy alone and its marginal gain, fold standard deviations as
    error bars.

    Parameters
    ----------
    results : mapping
        Benchmark results with ``contributions``.
    target : Path
        The PNG written.
    """
    contributions = results["contributions"]
    names = list(contributions["branches"])
    entries = [contributions["branches"][name] for name in names]
    has_marginal = all("marginal_pp" in entry for entry in entries)
    figure = Figure(figsize=(4.0 + 2.5 * has_marginal + 0.4 * len(names), 3.6),
                    layout="constrained")
    axes = figure.subplots(1, 2 if has_marginal else 1, squeeze=False)[0]
    positions = np.arange(len(names))
    axes[0].bar(positions, [e["alone_pct"]["mean"] for e in entries],
                yerr=[e["alone_pct"]["std"] for e in entries], capsize=4, color="tab:blue")
    axes[0].set_ylabel("accuracy alone (%)")
    axes[0].set_title(f"alone ({contributions['head']})")
    if has_marginal:
        values = [e["marginal_pp"]["mean"] for e in entries]
        axes[1].bar(positions, values, yerr=[e["marginal_pp"]["std"] for e in entries],
                    capsize=4, color=signed_colours(values))
        axes[1].axhline(0.0, color="black", linewidth=0.8)
        axes[1].set_ylabel("all − all-but-branch (pp)")
        axes[1].set_title(f"marginal ({contributions['head']}, {contributions['fusion']})")
    for axis in axes:
        axis.set_xticks(positions, names, rotation=30, ha="right")
    figure.suptitle(f"{results['dataset']}: branch contributions (error bars: fold sd)")
    save_png(figure, target)


def plot_learning_curve(results: Mapping[str, Any], target: Path) -> None:
    """Gain of each paired comparison (by default handcrafted + a neural branch over it alone)
    in points of the run's metric against the training fraction, 95 % intervals as error
    bars.

    Parameters
    ----------
    results : mapping
        Benchmark results with ``learning_curve``.
    target : Path
        The PNG written.
    """
    curve = results["learning_curve"]
    figure = Figure(figsize=(5.5, 3.6), layout="constrained")
    axis = figure.subplots()
    # One line per comparison: a branch may be the reference of several (feature sets).
    pairs = list(dict.fromkeys((entry["system"], entry["reference"]) for entry in curve))
    # Each line's points are shifted a little along the log axis so error bars don't overlap.
    for offset, (system, reference) in zip(np.linspace(-0.015, 0.015, len(pairs)), pairs,
                                           strict=True):
        points = sorted((e for e in curve if (e["system"], e["reference"])
                         == (system, reference)), key=lambda e: e["fraction"])
        x = np.array([e["fraction"] for e in points]) * (1.0 + offset)
        gains = np.array([e["gain_pp"] for e in points])
        bounds = np.array([e["ci95_pp"] for e in points])
        axis.errorbar(x, gains, yerr=[gains - bounds[:, 0], bounds[:, 1] - gains], capsize=4,
                      marker="o", label=f"{system} vs {reference}")
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xscale("log")
    fractions = sorted({e["fraction"] for e in curve})
    axis.set_xticks(fractions, [f"{f:g}" for f in fractions])
    axis.set_xlabel(f"fraction of the training {subsampled_units(results)}")
    axis.set_ylabel(f"{metric_title(results)} gain (pp)")
    axis.legend(fontsize=8)
    figure.suptitle(f"{results['dataset']}: learning curve (95 % CI)")
    save_png(figure, target)


def plot_confusion(results: Mapping[str, Any], target: Path) -> None:
    """Row-normalised confusion matrix of the headline system over all test folds.

    Parameters
    ----------
    results : mapping
        Single-label benchmark results (systems with ``confusion``).
    target : Path
        The PNG written.
    """
    system = headline_system(results)
    counts = np.asarray(system["confusion"], dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    classes = results["classes"]
    size = 2.5 + 0.45 * len(classes)
    figure = Figure(figsize=(size + 1.0, size), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(rates, vmin=0.0, vmax=1.0, cmap="Blues")
    if len(classes) <= 20:  # beyond that the counts no longer fit in their cells
        for (row, column), count in np.ndenumerate(counts):
            if count:
                axis.text(column, row, f"{int(count)}", ha="center", va="center", fontsize=7,
                          color="white" if rates[row, column] > 0.5 else "black")
    ticks = np.arange(len(classes))
    axis.set_xticks(ticks, classes, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(ticks, classes, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"{system['name']} ({pct(system['mean']['accuracy'])} %)", fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of true class")
    save_png(figure, target)


def plot_per_class_gain(results: Mapping[str, Any], target: Path) -> None:
    """Per-class F1 (multi-label: AP) gain of the primary system over its reference.

    Parameters
    ----------
    results : mapping
        Benchmark results with a primary comparison or a best fusion
        (:func:`~featurekit.benchmark.report.common.gain_pair`).
    target : Path
        The PNG written.
    """
    systems = {system["name"]: system for system in results["systems"]}
    fused_name, base_name = gain_pair(results)
    key = per_class_key(results)
    fused = systems[fused_name][key]
    base = systems[base_name][key]
    classes = results["classes"]
    gains = [fused[name] - base[name] for name in classes]
    figure = Figure(figsize=(6.0, 1.5 + 0.3 * len(classes)), layout="constrained")
    axis = figure.subplots()
    axis.barh(np.arange(len(classes)), gains, color=signed_colours(gains))
    axis.axvline(0.0, color="black", linewidth=0.8)
    axis.set_yticks(np.arange(len(classes)), classes, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("AP gain" if key == "per_class_ap" else "F1 gain")
    axis.set_title(f"{fused_name}\nover {base_name}", fontsize=9)
    save_png(figure, target)


def plot_per_class_ap(results: Mapping[str, Any], target: Path) -> None:
    """Average precision of each class for the headline system and, with a primary
    comparison, its reference (multi-label results).

    Parameters
    ----------
    results : mapping
        Multi-label benchmark results (systems with ``per_class_ap``).
    target : Path
        The PNG written.
    """
    systems = [headline_system(results)]
    primary = results.get("primary")
    if primary:
        systems.append(next(s for s in results["systems"]
                            if s["name"] == primary["reference"]))
    classes = results["classes"]
    rows = np.arange(len(classes))
    height = 0.8 / len(systems)
    figure = Figure(figsize=(6.0, 1.5 + 0.3 * len(classes)), layout="constrained")
    axis = figure.subplots()
    for index, system in enumerate(systems):
        values = [system["per_class_ap"][name] for name in classes]
        # A class without positives has no AP (NaN): drawn as an empty bar.
        axis.barh(rows + index * height, np.nan_to_num(values, nan=0.0), height=height,
                  label=f"{system['name']} (mAP {pct(system['mean']['map'])} %)")
    axis.set_yticks(rows + height * (len(systems) - 1) / 2, classes, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0.0, 1.0)
    axis.set_xlabel("average precision")
    axis.legend(fontsize=7, loc="lower right")
    save_png(figure, target)
