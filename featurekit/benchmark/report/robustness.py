"""Robustness in the report: its tables and its plot, from ``results.json`` alone.

The entries are :mod:`featurekit.benchmark.robustness`'s: ``robustness`` (``auto`` against
``neural-auto`` and ``single-auto`` under each corruption) and ``robustness_systems`` (each
choice's and each single branch's score, clean and corrupted).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from featurekit.benchmark.config import AUTO, HANDCRAFTED_AUTO, SINGLE_AUTO
from featurekit.benchmark.report.common import metric_title, pct, table
from featurekit.benchmark.report.plots import save_png

__all__ = ["ROBUSTNESS_PLOT", "plot_robustness", "robustness_section"]

#: File name of the plot in the output directory.
ROBUSTNESS_PLOT = "robustness.png"


def _choices(results: Mapping[str, Any]) -> list[str]:
    """The inner-CV choices a robustness run scored, headline first."""
    scored = {entry["system"] for entry in results.get("robustness_systems", [])}
    reference = (results.get("primary") or {}).get("reference")
    return [name for name in (AUTO, reference, SINGLE_AUTO, HANDCRAFTED_AUTO)
            if name in scored]


def _interval(ci95: Any) -> str:
    low, high = ci95
    return f"[{low:+.1f}, {high:+.1f}]"


def robustness_section(results: Mapping[str, Any]) -> list[str]:
    """The robustness section: how it was measured, the pre-registered comparisons under
    each corruption, and every scored system's clean and corrupted score."""
    entries = results.get("robustness") or []
    systems = results.get("robustness_systems") or []
    if not systems:
        return []
    metric = metric_title(results)
    corruptions = list(dict.fromkeys(entry["name"] for entry in systems))
    lines = ["## Robustness to corrupted test audio", "",
             "Every head, fusion and choice was fitted and made on clean training audio only "
             "(exactly the clean run's); the same fitted systems then predicted corrupted "
             "copies of the outer test clips, each corruption seeded per clip. Changes from "
             f"clean are in points of {metric}, on the clips that have a corrupted copy.",
             ""]
    if entries:
        rows = [[f"{e['corruption']} {e['severity']}", e["comparison"],
                 f"{e['system']} {pct(e['value'])} ({-e['drop_pp']:+.1f})",
                 f"{e['reference']} {pct(e['reference_value'])} ({-e['reference_drop_pp']:+.1f})",
                 f"{e['gain_pp']:+.2f}", _interval(e["ci95_pp"]),
                 f"{e['n_clips']}" + (f" ({e['n_missing']} missing)" if e["n_missing"] else "")]
                for e in entries]
        lines += [f"Pre-registered comparisons under corruption ({metric} %, change from "
                  "clean in brackets; gain and 95 % interval in points, paired as on clean "
                  "audio):",
                  "", *table(["corruption", "comparison", "system", "reference",
                              "gain pp", "95 % CI", "test clips"], rows)]
    values = {(entry["name"], entry["system"]): entry for entry in systems}
    clean = {entry["system"]: entry["clean_value"] for entry in systems
             if entry["name"] == corruptions[0]}
    names = list(dict.fromkeys(entry["system"] for entry in systems))
    rows = [[name, pct(clean[name]),
             *(f"{pct(values[c, name]['value'])} ({-values[c, name]['drop_pp']:+.1f})"
               for c in corruptions)] for name in names]
    lines += [f"Each choice and single branch ({metric} %, change from clean in brackets; "
              "the clean column is on the first corruption's clips):", "",
              *table(["system", "clean", *corruptions], rows)]
    return lines


def plot_robustness(results: Mapping[str, Any], target: Path) -> None:
    """The score of each inner-CV choice against severity, one panel per kind of corruption
    (clean audio as the first point of every line)."""
    systems = results["robustness_systems"]
    kinds = list(dict.fromkeys(entry["corruption"] for entry in systems))
    choices = _choices(results)
    figure = Figure(figsize=(4.2 * len(kinds), 3.4))
    axes = figure.subplots(1, len(kinds), squeeze=False)[0]
    for axis, kind in zip(axes, kinds, strict=True):
        names = list(dict.fromkeys(e["name"] for e in systems if e["corruption"] == kind))
        severities = [next(e["severity"] for e in systems if e["name"] == name)
                      for name in names]
        # Dashed and dotted lines keep a choice visible when another choice made the same.
        for system, style in zip(choices, ("-", "--", ":", "-."), strict=False):
            points = [next(e for e in systems if e["name"] == name and e["system"] == system)
                      for name in names]
            axis.plot(range(len(names) + 1),
                      [100 * points[0]["clean_value"], *(100 * p["value"] for p in points)],
                      marker="o", linestyle=style, label=system)
        axis.set_xticks(range(len(names) + 1), ["clean", *severities])
        axis.set_title(kind)
        axis.set_ylabel(f"{metric_title(results)} (%)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    figure.tight_layout()
    save_png(figure, target)
