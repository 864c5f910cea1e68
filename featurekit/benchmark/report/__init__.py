"""``report.md`` and PNG plots from benchmark results (see :mod:`featurekit.benchmark`).

Everything here is computed from the results dict alone, so a report can be rebuilt from a
saved ``results.json``:

* :mod:`~featurekit.benchmark.report.markdown` -- the text, one function per section;
* :mod:`~featurekit.benchmark.report.plots` -- the plots and how a plot is saved;
* :mod:`~featurekit.benchmark.report.sets` -- the comparison of feature sets (its section, its
  plot and its command-line summary);
* :mod:`~featurekit.benchmark.report.common` -- which systems both text and plots show, and
  how numbers are written.

:func:`write_report` puts them together in an output directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featurekit._util.fsutil import atomic_write_text
from featurekit.benchmark.report.common import METRIC_NAMES, headline_system
from featurekit.benchmark.report.markdown import render_markdown
from featurekit.benchmark.report.plots import (
    plot_confusion,
    plot_contributions,
    plot_learning_curve,
    plot_per_class_ap,
    plot_per_class_gain,
)
from featurekit.benchmark.report.robustness import ROBUSTNESS_PLOT, plot_robustness
from featurekit.benchmark.report.sets import SETS_PLOT, plot_sets, sets_section, sets_summary

__all__ = ["AP_PLOT", "CONFUSION_PLOT", "CONTRIBUTION_PLOT", "CURVE_PLOT", "GAIN_PLOT",
           "METRIC_NAMES", "REPORT_FILE", "ROBUSTNESS_PLOT", "SETS_PLOT", "headline_system",
           "plot_confusion", "plot_contributions", "plot_learning_curve", "plot_per_class_ap",
           "plot_per_class_gain", "plot_robustness", "plot_sets", "render_markdown",
           "sets_section", "sets_summary", "write_report"]

#: File names written into the output directory.
REPORT_FILE = "report.md"
CONTRIBUTION_PLOT = "branch_contributions.png"
CONFUSION_PLOT = "confusion_best.png"
GAIN_PLOT = "per_class_gain.png"
CURVE_PLOT = "learning_curve.png"
AP_PLOT = "per_class_ap.png"


def write_report(results: Mapping[str, Any],
                 out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.md`` and its plots into ``out_dir``.

    Parameters
    ----------
    results : mapping
        Benchmark results (as :func:`featurekit.benchmark.load_results` reads them).
    out_dir : str or path-like
        Output directory, created if needed.

    Returns
    -------
    dict of str to Path
        ``report`` and one entry per plot written (``contributions``, ``feature_sets`` for a
        comparison of sets, ``learning_curve`` with train fractions, ``robustness`` with
        corruptions, ``confusion`` (multi-label:
        ``per_class_ap``), ``per_class_gain`` -- the last only when a fusion was run).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plots: dict[str, str] = {}
    if results.get("contributions", {}).get("branches"):
        plot_contributions(results, out / CONTRIBUTION_PLOT)
        written["contributions"] = out / CONTRIBUTION_PLOT
        plots["Branch contributions"] = CONTRIBUTION_PLOT
    if results.get("feature_sets"):
        plot_sets(results, out / SETS_PLOT)
        written["feature_sets"] = out / SETS_PLOT
        plots["Feature sets side by side"] = SETS_PLOT
    if results.get("learning_curve"):
        plot_learning_curve(results, out / CURVE_PLOT)
        written["learning_curve"] = out / CURVE_PLOT
        plots["Learning curve: gain of the handcrafted branches"] = CURVE_PLOT
    if results.get("robustness_systems"):
        plot_robustness(results, out / ROBUSTNESS_PLOT)
        written["robustness"] = out / ROBUSTNESS_PLOT
        plots["Robustness: score against severity"] = ROBUSTNESS_PLOT
    if results.get("multilabel"):  # label sets have no confusion matrix
        plot_per_class_ap(results, out / AP_PLOT)
        written["per_class_ap"] = out / AP_PLOT
        plots["Per-class average precision"] = AP_PLOT
    else:
        plot_confusion(results, out / CONFUSION_PLOT)
        written["confusion"] = out / CONFUSION_PLOT
        plots["Confusion matrix of the headline system"] = CONFUSION_PLOT
    if results.get("best_fusion") and results.get("reference_for_gain"):
        plot_per_class_gain(results, out / GAIN_PLOT)
        written["per_class_gain"] = out / GAIN_PLOT
        plots[f"Per-class {'AP' if results.get('multilabel') else 'F1'} gain of the "
              "primary comparison"] = GAIN_PLOT
    atomic_write_text(out / REPORT_FILE, render_markdown(results, plots))
    written["report"] = out / REPORT_FILE
    return written
