"""What the report's Markdown and its plots share: which systems they show, and number formats.

Everything here reads a results dict alone (see :mod:`featurekit.benchmark.report`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: How the primary metric of results.json (``"metric"``) is named in the report.
METRIC_NAMES = {"accuracy": "accuracy", "map": "macro mAP"}


def primary_metric(results: Mapping[str, Any]) -> str:
    """The metric comparisons are made in: ``accuracy``, or ``map`` for multi-label tasks."""
    return results.get("metric", "accuracy")


def metric_title(results: Mapping[str, Any]) -> str:
    """The primary metric as the report names it (``macro mAP`` for ``map``)."""
    metric = primary_metric(results)
    return METRIC_NAMES.get(metric, metric)


def grouping(results: Mapping[str, Any]) -> str:
    """What the run's groups were (results.json ``grouping``): ``recordings``, ``clips``
    (recordings unknown, each clip its own) or ``folds``; older results say only whether
    recordings were known, and grouped by folds when they were not."""
    return results.get("grouping") or ("recordings" if results.get("recordings_known", True)
                                       else "folds")


def subsampled_units(results: Mapping[str, Any]) -> str:
    """What a learning curve's fractions draw: source recordings where known, else clips."""
    return "source recordings" if grouping(results) == "recordings" else "clips"


def size_text(system: Mapping[str, Any], key: str) -> str:
    """A system's parameter count ``key`` (``n_parameters``, ``n_frozen_parameters``), short:
    ``579``, ``12.3 k``, ``1.23 M``; ``?`` where unknown; empty in results written before
    the counts existed."""
    if key not in system:
        return ""
    value = system[key]
    if value is None:
        return "?"
    if value < 1e3:
        return f"{value:.0f}"
    return f"{value / 1e3:.1f} k" if value < 1e6 else f"{value / 1e6:.2f} M"


def pct(value: float) -> str:
    """A fraction as a percentage with one decimal, without the sign: ``0.8123 -> "81.2"``.

    Parameters
    ----------
    value : float
        A score in [0, 1].

    Returns
    -------
    str
    """
    return f"{100.0 * value:.1f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table and the blank line that ends it.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : sequence of sequence of str
        Cells, one sequence per row, as many as ``header``.

    Returns
    -------
    list of str
        The report's lines.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def per_class_key(results: Mapping[str, Any]) -> str:
    """The per-class score of each system entry: ``per_class_ap`` for multi-label results,
    else ``per_class_f1``."""
    return "per_class_ap" if results.get("multilabel") else "per_class_f1"


def headline_system(results: Mapping[str, Any]) -> Mapping[str, Any]:
    """The primary comparison's system, else the one with the highest mean primary metric.

    Parameters
    ----------
    results : mapping
        Benchmark results.

    Returns
    -------
    mapping
        The system's entry of ``results["systems"]``.
    """
    primary = results.get("primary")
    if primary:
        return next(s for s in results["systems"] if s["name"] == primary["system"])
    metric = primary_metric(results)
    return max(results["systems"], key=lambda system: system["mean"][metric])


def gain_pair(results: Mapping[str, Any]) -> tuple[str, str]:
    """The systems whose per-class gains are shown: the primary comparison's, else the best
    fusion over the best neural branch.

    Parameters
    ----------
    results : mapping
        Benchmark results with a primary comparison or a ``best_fusion``.

    Returns
    -------
    system, reference : str
    """
    primary = results.get("primary")
    if primary:
        return primary["system"], primary["reference"]
    return results["best_fusion"], results["reference_for_gain"]
