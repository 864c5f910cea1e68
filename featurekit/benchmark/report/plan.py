"""The plan and its cost as text: what ``featurekit benchmark --plan`` prints, and the "Plan
and cost" section of ``report.md`` (from ``results.json``'s ``plan``, see
:mod:`featurekit.benchmark.estimate`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from featurekit.benchmark.report.common import table


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _bytes(value: int | None) -> str:
    return "—" if value is None else f"{value / 2 ** 30:.2f} GiB"


def plan_lines(plan: Mapping[str, Any]) -> list[str]:
    """The plan as Markdown: the work per stage and head, then each stage's estimated (and,
    after a run, measured) seconds, the totals and peak memory, and what is not estimated.

    Parameters
    ----------
    plan : mapping
        :meth:`~featurekit.benchmark.estimate.CostPlan.to_dict` (``results["plan"]``).

    Returns
    -------
    list of str
    """
    lines = ["## Plan and cost", "",
             f"**Work.** {plan['units']} units ({plan['fits']} fits) on {plan['workers']} "
             f"worker(s); {len(plan['systems'])} systems and selections scored, "
             f"{plan['comparisons']} paired comparisons.", ""]
    if plan["work"]:
        # Search fits only where there was a search (--tune).
        search = any(w["search_fits"] for w in plan["work"])
        lines += table(["Stage", "Head", "Units", "Fits"] + (["Search fits"] if search else []),
                       [[str(w["stage"]) + ("" if w["fraction"] is None
                                            else f" (curve {w['fraction']:g})"),
                         w["head"], str(w["units"]), str(w["fits"])]
                        + ([str(w["search_fits"])] if search else []) for w in plan["work"]])
    rows = [[stage["name"], _seconds(stage["estimated_s"]), _seconds(stage["measured_s"]),
             stage["note"]] for stage in plan["stages"]]
    rows.append(["**total**", _seconds(plan["estimated_wall_s"]),
                 _seconds(plan.get("measured_wall_s")), "wall time"])
    lines += table(["Stage", "Estimated (s)", "Measured (s)", "How estimated"], rows)
    peak = f"**Peak memory.** Estimated {_bytes(plan['estimated_peak_rss_bytes'])}"
    if plan.get("measured_peak_rss_bytes") is not None:
        peak += (f", measured {_bytes(plan['measured_peak_rss_bytes'])} (this process's peak "
                 "plus each worker's)")
    lines += [peak + ".", ""]
    lines += [f"Note: {note}" for note in plan["notes"]]
    return lines + ([""] if plan["notes"] else [])
