"""The plan before the run: the work a benchmark will do, and its cost on this machine.

:func:`estimate` counts the units and fits of every head in each stage of a
:class:`~featurekit.benchmark.plan.Plan`, the systems scored and the paired comparisons, and
estimates each stage of the run from a short :func:`~featurekit.benchmark.calibrate.calibrate`:

* fits -- each fit of a head costs ``(a + b * columns) * rows ** e`` (:class:`~featurekit.
  benchmark.calibrate.HeadCost`), summed over each unit's members, inner twins and searches;
  the units of a stage go to the workers costliest first by these seconds, as the run gives
  them (:func:`~featurekit.benchmark.schedule.submission_order`), each to the first that is
  free, and the stage lasts until the last one finishes;
* fusion -- per fusion kind, and apart for the systems that compete in a selection (whose
  inner predictions are made too), the timed fusion of one system of one outer fold and
  repeat, summed over each of the run's fusion tasks (each fold, repeat and head, split
  further when they are fewer than the workers), the tasks spread over the workers;
* statistics -- the timed bootstrap of one comparison (label sets: one system's resampling)
  per comparison (label sets: per system the comparisons may read), spread over the workers;
* learning curve -- the same three for the plan of every fraction below 1;
* fill and read -- measured by the driver (:func:`featurekit.pipeline.estimate_fill` times a
  few clips of each branch the store lacks), report -- a fixed allowance.

Peak memory: this process's peak so far (the features read, the calibration) plus the unit
outputs and predictions it will hold, plus, with worker processes, each worker's peak after
its calibration fits (the widest fit's growth scaled to the run's rows).

A :class:`CostPlan` is what ``featurekit benchmark --plan`` prints and writes as
``plan.json``; a real run records it with the measured seconds of each stage in
``results.json`` (``"plan"``).
"""

from __future__ import annotations

import heapq
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import ParameterGrid

from featurekit._util.fsutil import atomic_write_text
from featurekit._util.memory import peak_rss_bytes
from featurekit.benchmark.calibrate import Calibration, HeadCost, calibrate, fusion_kind
from featurekit.benchmark.config import OOF_FEATURES, BenchmarkConfig
from featurekit.benchmark.curves import fraction_plan
from featurekit.benchmark.data import BenchmarkData
from featurekit.benchmark.execute import UnitOutput, repeat_splits, second_level_rows
from featurekit.benchmark.fuse import fusion_tasks
from featurekit.benchmark.plan import Plan, Unit
from featurekit.benchmark.results import planned_comparisons, statistics_tasks
from featurekit.benchmark.schedule import longest_first, unit_width
from featurekit.fusion.branches import member_seeds
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.splits import Split
from featurekit.pipeline import FillEstimate

#: The stages of a run, in order.
STAGES = ("fill", "corrupt", "read", "calibration", "fits", "fusion", "statistics",
          "learning_curve", "report")
#: Seconds allowed for results.json, report.md and its plots (not calibrated: about a
#: second on UrbanSound8K's 185 systems, plus matplotlib's import).
REPORT_ALLOWANCE_S = 3.0
#: File name of the plan in an output directory.
PLAN_FILE = "plan.json"


@dataclass
class Stage:
    """One stage of a run: its estimated and measured seconds.

    Attributes
    ----------
    name : str
        One of :data:`STAGES`.
    estimated_s : float or None
        None where nothing could be estimated (``note`` says why).
    measured_s : float or None
        None before the run (or for a stage it did not reach).
    note : str
        How the estimate was made.
    """

    name: str
    estimated_s: float | None
    measured_s: float | None = None
    note: str = ""


@dataclass
class CostPlan:
    """The work of a benchmark and its estimated (and, after the run, measured) cost.

    Attributes
    ----------
    dataset : str
    workers : int
        Worker processes the estimate assumes.
    work : list of dict
        Per plan stage (1, 2), learning-curve ``fraction`` (None for the full run) and head:
        ``units``, ``fits`` (members and inner twins) and ``search_fits`` (hyper-parameter
        search).
    systems : list of str
        Systems scored, then the inner-CV selections.
    comparisons : int
        Paired comparisons (each one bootstrap of ``n_bootstrap`` resamples).
    stages : list of Stage
    estimated_peak_rss_bytes : int or None
    calibration : dict
        What the estimate was scaled from (per head cost models, per system fusion seconds,
        seconds per comparison, the calibration's own seconds).
    notes : list of str
        What is not estimated, and why.
    measured_wall_s, measured_peak_rss_bytes : float or int, optional
        After the run: its wall time, and this process's peak plus each worker's.
    unit_seconds : dict of (float or None) to dict of Unit to float
        Per learning-curve fraction (None for the full run), each unit's modelled seconds,
        where every head has a model: the order in which the run gives each stage's units to
        the workers (not in :meth:`to_dict`).
    """

    dataset: str
    workers: int
    work: list[dict[str, Any]] = field(default_factory=list)
    systems: list[str] = field(default_factory=list)
    comparisons: int = 0
    stages: list[Stage] = field(default_factory=list)
    estimated_peak_rss_bytes: int | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    measured_wall_s: float | None = None
    measured_peak_rss_bytes: int | None = None
    unit_seconds: dict[float | None, dict[Unit, float]] = field(default_factory=dict)

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (added, unestimated, if the plan lacks it)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        self.stages.append(Stage(name, None))
        self.stages.sort(key=lambda s: STAGES.index(s.name))
        return self.stage(name)

    @property
    def estimated_wall_s(self) -> float | None:
        """Sum of the stages' estimates (those that have one; None if none has)."""
        estimates = [s.estimated_s for s in self.stages if s.estimated_s is not None]
        return float(sum(estimates)) if estimates else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``units``, ``fits`` (of the full run, curve fractions apart),
        ``estimated_wall_s``, ``estimated_peak_rss_bytes`` first, then every attribute."""
        full = [entry for entry in self.work if entry["fraction"] is None]
        out = {"units": sum(entry["units"] for entry in full),
               "fits": sum(entry["fits"] for entry in full),
               "estimated_wall_s": self.estimated_wall_s,
               "estimated_peak_rss_bytes": self.estimated_peak_rss_bytes}
        # Without the units' seconds: keyed by units, not JSON, and a run's own business.
        out.update({key: value for key, value in asdict(replace(self, unit_seconds={})).items()
                    if key not in out and key != "unit_seconds"})
        return out


def _search_fits(spec: HeadSpec, config: BenchmarkConfig) -> int:
    """Fits of one hyper-parameter search of ``spec`` (none without tuning or a grid)."""
    grid = len(ParameterGrid(dict(spec.param_grid)))
    return grid * config.inner_splits if config.tune and grid > 1 else 0


def unit_fit_rows(unit: Unit, plan: Plan, data: BenchmarkData, config: BenchmarkConfig,
                  spec: HeadSpec, splits: Sequence[Split]) -> tuple[list[int], list[int]]:
    """Training rows of each fit of a unit, and of each fit of its searches.

    Members read the fold's training rows (an ``oof_features`` unit: its
    :func:`~featurekit.benchmark.execute.second_level_rows`), each inner twin its split's
    training rows (``splits``: the unit's fold and repeat's), as
    :func:`~featurekit.benchmark.execute.fit_unit` fits them; without refits (an official
    split) the members read the split's training rows and have no twins; a search fits every
    candidate on ``(k - 1) / k`` of the rows it searches on.
    """
    train = plan.training(unit.fold, unit.repeat)
    rows = np.arange(len(train))
    members = len(member_seeds(spec, config.seeds(unit.repeat)))
    share = (config.inner_splits - 1) / config.inner_splits
    if unit.kind == OOF_FEATURES:
        rows, splits = second_level_rows(data.targets[train], data.groups[train], splits,
                                         config.seeds(unit.repeat)[0])
    elif not plan.refits:
        fitted = len(splits[0][0])
        return [fitted] * members, [round(fitted * share)] * _search_fits(spec, config)
    twins = [len(fit) for fit, _ in splits] if unit.inner else []
    fits = [len(rows)] * members + twins * members
    searches = [round(n * share) for n in [len(rows), *twins]] * _search_fits(spec, config)
    return fits, searches


def makespan(costs: Iterable[float], workers: int) -> float:
    """Seconds until the last task ends when tasks go, in order, each to the first free
    worker (how joblib hands a stage's units out)."""
    free = [0.0] * max(workers, 1)
    for cost in costs:
        heapq.heappush(free, heapq.heappop(free) + cost)
    return max(free)


def _unit_costs(plan: Plan, data: BenchmarkData, config: BenchmarkConfig,
                specs: Mapping[str, HeadSpec], models: Mapping[str, HeadCost],
                fraction: float | None, work: list[dict[str, Any]]
                ) -> dict[Unit, float] | None:
    """Each unit's modelled seconds (:func:`unit_fit_rows` through its head's model), None
    where a head of the plan has no model; the work of each stage and head appended to
    ``work``."""
    splits = {key: repeat_splits(plan, data, *key, config.inner_splits, config.seeds)
              for key in {(unit.fold, unit.repeat) for unit in plan.units}}
    costs: dict[Unit, float] = {}
    for index, stage in enumerate(plan.stages, start=1):
        counts: dict[str, dict[str, Any]] = {}
        for unit in stage:
            fits, searches = unit_fit_rows(unit, plan, data, config, specs[unit.head],
                                           splits[unit.fold, unit.repeat])
            entry = counts.setdefault(unit.head, {"stage": index, "fraction": fraction,
                                                  "head": unit.head, "units": 0, "fits": 0,
                                                  "search_fits": 0})
            entry["units"] += 1
            entry["fits"] += len(fits)
            entry["search_fits"] += len(searches)
            model = models.get(unit.head)
            if model is not None:
                width = unit_width(unit, data)
                costs[unit] = sum(model(rows, width) for rows in [*fits, *searches])
        work.extend(counts.values())
    heads = {unit.head for unit in plan.units}
    return costs if heads <= set(models) else None


def _fits_s(plan: Plan, costs: Mapping[Unit, float], workers: int) -> float:
    """Every stage's makespan, its units given to the workers costliest first, as the run
    gives them when ``costs`` cover its units
    (:func:`~featurekit.benchmark.schedule.submission_order`)."""
    return sum(makespan([costs[stage[position]]
                         for position in longest_first(stage, costs.__getitem__)], workers)
               for stage in plan.stages)


def fusion_counts(plan: Plan) -> dict[str, int]:
    """Systems of each :func:`~featurekit.benchmark.calibrate.fusion_kind` of ``plan``."""
    scored = plan.scored
    return dict(Counter(fusion_kind(system, scored) for system in plan.systems))


def _fusion_s(plan: Plan, calibration: Calibration, workers: int) -> float:
    """The run's fusion tasks (:func:`~featurekit.benchmark.fuse.fusion_tasks`) on the
    workers, each the timed seconds of its systems' kinds (a kind not timed, the blend, at
    the mean of those timed), then the selections (negligible)."""
    timed = calibration.fusion_s
    fallback = float(np.mean(list(timed.values()))) if timed else 0.0
    scored = plan.scored
    return makespan([sum(timed.get(fusion_kind(system, scored), fallback)
                         for system in systems)
                     for _, _, systems in fusion_tasks(plan, workers)], workers)


def _statistics_s(plan: Plan, multilabel: bool, calibration: Calibration, workers: int, *,
                  curve_point: bool = False) -> float:
    """The comparisons' bootstraps (:func:`~featurekit.benchmark.results.statistics_tasks`),
    each the timed one's seconds, spread over the workers."""
    tasks = statistics_tasks(plan, multilabel, curve_point=curve_point)
    return math.ceil(tasks / workers) * calibration.comparison_s


def _held_bytes(plan: Plan, data: BenchmarkData, config: BenchmarkConfig,
                specs: Mapping[str, HeadSpec]) -> int:
    """Bytes of unit outputs and predictions this process holds until the results: each
    member's probabilities of the test rows (and of the training rows with inner twins), and
    each system's and selection's of both, per outer fold and repeat (float64)."""
    width = data.n_classes * np.dtype(np.float64).itemsize
    tests = {fold: len(test) for fold, _, test in plan.outer}
    outputs = sum(len(member_seeds(specs[u.head], config.seeds(u.repeat)))
                  * (tests[u.fold] + (len(plan.training(u.fold, u.repeat)) if u.inner else 0))
                  for u in plan.units)
    predictions = (len(plan.systems) + len(plan.selections)) * config.repeats * sum(
        tests[fold] + len(plan.training(fold, 0)) for fold in tests)
    return int((outputs + predictions) * width)


def estimate(plan: Plan, data: BenchmarkData, config: BenchmarkConfig,
             specs: Mapping[str, HeadSpec], *, dataset: str, n_jobs: int = 1,
             backend: str = "loky", scheduler: str | None = None,
             stages: Sequence[Stage] = (), calibrated: bool = True) -> CostPlan:
    """Count the work of ``plan`` and estimate its cost on this machine (module docstring).

    Parameters
    ----------
    plan : Plan
    data : BenchmarkData
    config : BenchmarkConfig
    specs : mapping of head name to HeadSpec
    dataset : str
    n_jobs, backend, scheduler :
        The run's workers (the calibration runs on them; the estimate assumes
        ``effective_n_jobs(n_jobs)`` of them, also for a Dask scheduler's cluster).
    stages : sequence of Stage
        Stages a driver already estimated or ran (fill, read).
    calibrated : bool
        Calibrate and estimate; without, only the work is counted (the stages' seconds are
        left to the run to measure).

    Returns
    -------
    CostPlan
        Its ``calibration`` stage is measured (the run repeats it).
    """
    from joblib import effective_n_jobs

    workers = effective_n_jobs(n_jobs)
    calibration = (calibrate(plan, data, config, specs, n_jobs=n_jobs, backend=backend,
                             scheduler=scheduler) if calibrated else None)
    models = calibration.heads if calibration else {}
    cost = CostPlan(dataset=dataset, workers=workers, stages=list(stages),
                    systems=[s.name for s in plan.systems] + [n for n, _ in plan.selections],
                    comparisons=planned_comparisons(plan))
    # Every unit's modelled seconds (None without a model for every head) and, as a side
    # effect, the work of each plan: the run's, then each learning-curve fraction's.
    plans = {None: plan, **{fraction: fraction_plan(plan, data, fraction, config)
                            for fraction in sorted(config.train_fractions) if fraction < 1.0}}
    costs = {fraction: _unit_costs(each, data, config, specs, models, fraction, cost.work)
             for fraction, each in plans.items()}
    cost.unit_seconds = {fraction: each for fraction, each in costs.items() if each is not None}
    for name in ("fits", "fusion", "statistics", "report"):
        cost.stage(name)
    if len(plans) > 1:
        cost.stage("learning_curve")
    if calibration is None:
        cost.notes.append("no calibration was asked for: the stages are measured only")
        return cost
    missing = sorted({unit.head for unit in plan.units} - set(models))
    if missing:
        cost.notes.append(f"fits of {', '.join(missing)} not estimated: they read only the "
                          "outputs of other units (no input to time before the run)")
    timed = cost.stage("calibration")
    timed.estimated_s = timed.measured_s = calibration.seconds
    timed.note = (f"measured: {sum(len(m.seconds) for m in models.values())} fits on a "
                  "sample, a few systems of each fusion, two comparisons")

    def seconds(fraction: float | None) -> dict[str, float | None]:
        """Estimated seconds of the fits, fusions and comparisons of one plan."""
        each = plans[fraction]
        return {"fits": (None if costs[fraction] is None else
                         _fits_s(each, costs[fraction], workers)),
                "fusion": _fusion_s(each, calibration, workers),
                "statistics": _statistics_s(each, data.multilabel, calibration, workers,
                                            curve_point=fraction is not None)}

    for name, value in seconds(None).items():
        cost.stage(name).estimated_s = value
    cost.stage("fits").note = (f"{len(plan.units)} units on {workers} worker(s), costliest "
                               "first; per fit (a + b * columns) * rows^e per head")
    counts = fusion_counts(plan)
    cost.stage("fusion").note = ("systems x seconds per outer fold and repeat: " + ", ".join(
        f"{kind} {counts.get(kind, 0)} x {value:.2g}"
        for kind, value in calibration.fusion_s.items()))
    cost.stage("statistics").note = (
        f"{cost.comparisons} comparisons "
        + (f"of up to {statistics_tasks(plan, True)} systems (each resampled once"
           if data.multilabel else "(a bootstrap each")
        + f", {calibration.comparison_s:.3g} s) on {workers} worker(s)")
    if len(plans) > 1:
        parts = [value for fraction in plans if fraction is not None
                 for value in seconds(fraction).values()]
        curve = cost.stage("learning_curve")
        curve.estimated_s = None if None in parts else float(sum(parts))
        curve.note = "fits, fusions and comparisons of each fraction below 1, as above"
    cost.stage("report").estimated_s = REPORT_ALLOWANCE_S
    cost.stage("report").note = "a fixed allowance"
    cost.estimated_peak_rss_bytes = _peak_rss(plan, data, config, specs, calibration, workers)
    cost.calibration = {
        "seconds": calibration.seconds,
        "heads": {head: asdict(model) for head, model in models.items()},
        "fusion_s_per_system": calibration.fusion_s,
        "fusion_systems": counts,
        "comparison_s": calibration.comparison_s,
        "worker_peak_rss_bytes": calibration.worker_peak_rss}
    return cost


def _peak_rss(plan: Plan, data: BenchmarkData, config: BenchmarkConfig,
              specs: Mapping[str, HeadSpec], calibration: Calibration, workers: int) -> int:
    """This process's peak so far, what it will hold (:func:`_held_bytes`), and each worker's
    peak after its calibration fits, the widest fit's growth scaled to the run's rows (in
    this process, without workers)."""
    sampled = max((m.sample_rows for m in calibration.heads.values()), default=1)
    scale = max(1.0, max(len(plan.training(u.fold, u.repeat)) for u in plan.units) / sampled)
    growth = (scale - 1.0) * calibration.wide_fit_rss
    workers_rss = workers * (calibration.worker_peak_rss + growth) if workers > 1 else growth
    return int((peak_rss_bytes() or 0) + _held_bytes(plan, data, config, specs) + workers_rss)


def measured_peak_rss(outputs: Iterable[UnitOutput]) -> int | None:
    """This process's peak resident set plus each worker's (the peaks of processes that ran
    side by side, added: an upper bound of what they held together)."""
    own = peak_rss_bytes()
    if own is None:
        return None
    workers: dict[int, int] = {}
    for output in outputs:
        pid, peak = output.peak_rss
        if pid and pid != os.getpid():
            workers[pid] = max(workers.get(pid, 0), peak)
    return own + sum(workers.values())


def save_plan(plan: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``plan.json`` (:meth:`CostPlan.to_dict`) into ``out_dir`` and return its path."""
    target = Path(out_dir) / PLAN_FILE
    atomic_write_text(target, json.dumps(plan, indent=1) + "\n")
    return target


def fill_stage(estimates: Sequence[FillEstimate]) -> Stage:
    """The fill stage of :func:`featurekit.pipeline.estimate_fill`'s estimates: one note per
    branch with missing clips (later stages are estimated on the clips stored)."""
    missing = [e for e in estimates if e.missing]
    note = "; ".join(f"{e.branch}: {e.missing} clips x {e.seconds_per_clip or 0:.3g} s / "
                     f"{e.workers} worker(s)" for e in missing)
    return Stage("fill", float(sum(e.estimated_s for e in estimates)),
                 note=note or "nothing missing")


def corrupt_stage(estimates: Mapping[str, Sequence[FillEstimate]], n_clips: int) -> Stage:
    """The corrupt stage of a robustness run: per corruption (its name to
    :func:`featurekit.pipeline.estimate_fill`'s estimates on its copies of ``n_clips`` test
    clips), every branch computed again."""
    parts = [f"{name}: " + ", ".join(
        f"{e.branch} {e.missing} x {e.seconds_per_clip or 0:.3g} s / {e.workers}"
        for e in per if e.missing) for name, per in estimates.items()
        if any(e.missing for e in per)]
    return Stage("corrupt", float(sum(e.estimated_s for per in estimates.values() for e in per)),
                 note=(f"{len(estimates)} corruption(s) of {n_clips} test clips"
                       + (f"; {'; '.join(parts)}" if parts else ", nothing missing")))


def read_stage(seconds: float, *, plan_only: bool) -> Stage:
    """The read stage: measured while planning, which a real run does before it fits."""
    return Stage("read", seconds, None if plan_only else seconds, "measured while planning")


def record_stage(plan: dict[str, Any], name: str, measured_s: float, *,
                 wall_s: float) -> None:
    """Record a stage a driver ran after the results were assembled (the report) in a
    :meth:`CostPlan.to_dict`, and the run's wall time.

    Parameters
    ----------
    plan : dict
        ``results["plan"]``, updated in place.
    name : str
        One of :data:`STAGES`.
    measured_s : float
    wall_s : float
        The whole run's measured seconds.
    """
    for stage in plan["stages"]:
        if stage["name"] == name:
            stage["measured_s"] = measured_s
    plan["measured_wall_s"] = wall_s
