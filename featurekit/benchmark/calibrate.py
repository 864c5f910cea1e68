"""Calibration: a few real computations, timed on this machine, that the cost model scales.

:func:`calibrate` times, for every head of a plan, the fits of the cost model
(:class:`HeadCost`: its narrowest and widest inputs on a sample of an outer fold's training rows,
and the widest on an inner split's share of them), the fusions of a few systems of each
fusion kind for one outer fold and repeat on synthetic unit outputs, and one paired
comparison's bootstrap at the run's size. The fits and
the fusions run as tasks of the run's own workers, side by side like the run's, so that the
time of a fit on this machine under this load is what is measured. Nothing here fits a unit
of the plan (:func:`~featurekit.benchmark.execute.fit_unit` is never called): the heads see a
sample of training rows, the fusions random probabilities.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from joblib import delayed
from threadpoolctl import threadpool_limits

from featurekit._util.memory import peak_rss_bytes
from featurekit._util.parallel import run_tasks
from featurekit.benchmark.config import OOF_FEATURES, BenchmarkConfig
from featurekit.benchmark.data import BenchmarkData
from featurekit.benchmark.execute import UnitOutput, repeat_splits, unit_input
from featurekit.benchmark.fuse import fuse_fold
from featurekit.benchmark.plan import Plan, System, Unit
from featurekit.benchmark.results import bootstrap_units
from featurekit.benchmark.schedule import unit_width
from featurekit.benchmark.score import compare, compare_map
from featurekit.fusion import fit_branch
from featurekit.fusion.branches import member_seeds
from featurekit.learn.heads.base import HeadSpec
from featurekit.names import E2E_HEAD, SEQUENCE_HEAD_NAMES

#: Training rows a calibration fit of a tabular head reads at most (a sample of an outer
#: fold's); of a sequence head or the e2e CNN, whose fits train networks for many epochs.
CALIBRATION_ROWS = 1500
NETWORK_CALIBRATION_ROWS = 200
#: Systems of each fusion kind whose fusion is timed.
FUSION_SAMPLE = 3
#: Suffix of a fusion kind whose systems compete in a selection (:func:`fusion_kind`).
INNER = "+inner"
#: Bounds of the fitted row exponent of a head's cost (a noisy pair of fits, e.g. an MLP that
#: stops early after 7 epochs on one and 100 on the other, must not predict a cubic).
ROW_EXPONENT_BOUNDS = (0.5, 2.0)


@dataclass(frozen=True)
class HeadCost:
    """Seconds of one fit of a head:
    ``(intercept + slope * columns) * (rows / sample_rows) ** exponent``.

    Attributes
    ----------
    intercept, slope : float
        Seconds of a fit on ``sample_rows`` rows: without columns, and per column.
    exponent : float
        How a fit's seconds grow with its rows.
    sample_rows : int
        Training rows of the calibration fits.
    seconds : dict of str to float
        The timed fits: ``narrow``, ``wide`` and (with inner splits) ``wide_inner``.
    """

    intercept: float
    slope: float
    exponent: float
    sample_rows: int
    seconds: dict[str, float]

    def __call__(self, rows: float, columns: float) -> float:
        return ((self.intercept + self.slope * columns)
                * (rows / self.sample_rows) ** self.exponent)

    @classmethod
    def fitted(cls, rows: Sequence[int], columns: Sequence[int],
               seconds: Mapping[str, float]) -> HeadCost:
        """The model through the timed fits.

        The narrow and wide fits give the cost of a column; where the wide fit is no slower
        (an MLP that runs all its epochs on a few columns and stops early on many), every
        input costs what the wide one did: most of an ablation's inputs are wide (every
        branch together, all but one, all handcrafted ones). The wide fit on an inner split's
        share of the rows gives the row exponent (bounded by :data:`ROW_EXPONENT_BOUNDS`;
        1 without inner splits).

        Parameters
        ----------
        rows : (int, int)
            Rows of the ``narrow`` and ``wide`` fits, and of ``wide_inner``.
        columns : (int, int)
            Columns of the narrowest and the widest input.
        seconds : mapping
            ``narrow``, ``wide`` and optionally ``wide_inner`` seconds.
        """
        narrow, wide = seconds["narrow"], seconds["wide"]
        slope, intercept = 0.0, wide
        if wide > narrow and columns[1] > columns[0]:
            slope = (wide - narrow) / (columns[1] - columns[0])
            intercept = narrow - slope * columns[0]
        exponent = 1.0
        if "wide_inner" in seconds and rows[1] < rows[0] and seconds["wide_inner"] > 0:
            exponent = math.log(seconds["wide_inner"] / wide) / math.log(rows[1] / rows[0])
            exponent = min(max(exponent, ROW_EXPONENT_BOUNDS[0]), ROW_EXPONENT_BOUNDS[1])
        return cls(intercept, slope, exponent, int(rows[0]), dict(seconds))


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` measured.

    Attributes
    ----------
    heads : dict of str to HeadCost
        Heads that could be timed (not those whose only inputs are stage-2 ones).
    fusion_s : dict of str to float
        Per :func:`fusion_kind` (a fusion, and whether its systems compete in a selection),
        seconds per system of one outer fold and repeat of
        :func:`~featurekit.benchmark.fuse.fuse_fold` (a sample of the kind's systems timed;
        the blend not).
    comparison_s : float
        One paired comparison (single-label) or one system's resampling (label sets).
    worker_peak_rss : int
        Peak resident set of a worker after its calibration fits, in bytes (0: unknown).
    wide_fit_rss : int
        What the widest calibration fit added to it.
    seconds : float
        Wall time of the whole calibration.
    """

    heads: dict[str, HeadCost]
    fusion_s: dict[str, float]
    comparison_s: float
    worker_peak_rss: int
    wide_fit_rss: int
    seconds: float


def _timed_head(spec: HeadSpec, fits: Sequence[tuple[str, Any, np.ndarray, np.ndarray]],
                n_classes: int, seed: int) -> tuple[dict[str, float], int, int]:
    """Seconds of one member's fit of each of ``fits`` (name, X, targets, groups), after an
    untimed fit of the first (a process's first fit of a head pays one-off costs that the
    run's many fits share), and the worker's peak memory before and after the last-but-one
    (the widest, on the most rows)."""
    seconds, before, after = {}, 0, 0

    def fit(X: Any, y: np.ndarray, groups: np.ndarray) -> None:
        fit_branch(spec, X, y, groups, n_classes=n_classes, seeds=[seed])

    # One thread, as every unit's fit (execute.fit_unit).
    with threadpool_limits(limits=1):
        fit(*fits[0][1:])
        for name, X, y, groups in fits:
            if name == "wide":
                before = peak_rss_bytes() or 0
            started = time.perf_counter()
            fit(X, y, groups)
            seconds[name] = time.perf_counter() - started
            if name == "wide":
                after = peak_rss_bytes() or 0
    return seconds, before, after


def _timed_fusions(plans: Mapping[str, Plan], y_train: np.ndarray, y_test: np.ndarray,
                   fold: int, outputs: Mapping[Unit, UnitOutput], splits: Sequence[Any],
                   n_classes: int, seed: int, groups: np.ndarray) -> dict[str, float]:
    """Seconds per system of one outer fold and repeat of each kind's sampled systems."""
    seconds = {}
    for kind, plan in plans.items():
        started = time.perf_counter()
        fuse_fold(plan, y_train, y_test, fold, 0, outputs, splits, n_classes, seed, groups)
        seconds[kind] = (time.perf_counter() - started) / len(plan.systems)
    return seconds


def synthetic_proba(targets: np.ndarray, n_classes: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Probabilities that mostly agree with ``targets`` (class indices: a softmax; label
    indicators: independent sigmoids), for fusions to learn something real from."""
    if np.ndim(targets) == 2:
        return 1.0 / (1.0 + np.exp(-(4.0 * (targets - 0.5) + rng.normal(size=targets.shape))))
    logits = 3.0 * np.eye(n_classes)[targets] + rng.normal(size=(len(targets), n_classes))
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def fusion_kind(system: System, scored: Collection[str]) -> str:
    """What a system's fusion costs are timed by: its fusion (``single`` for one branch),
    ``+inner`` where it competes in a selection (``scored``, :attr:`Plan.scored`): its inner
    out-of-fold predictions are made too, which fits a learned fusion once more per inner
    split: timing the two alike would price every system at the rare scored ones' cost."""
    kind = system.fusion or "single"
    return f"{kind}{INNER}" if system.name in scored else kind


def _sampled_plans(plan: Plan) -> dict[str, Plan]:
    """Per :func:`fusion_kind`, a plan of at most :data:`FUSION_SAMPLE` of its systems (spread
    from the fewest branches to the most), those scored still selected from, as their inner
    predictions are made only for candidates. The blend, which reads the sequence heads'
    learned embeddings, is left out."""
    scored = plan.scored
    plans = {}
    for kind in dict.fromkeys(fusion_kind(s, scored) for s in plan.systems
                              if s.fusion != "blend"):
        systems = sorted((s for s in plan.systems if fusion_kind(s, scored) == kind),
                         key=lambda s: len(s.branches))
        picked = [systems[i] for i in sorted({round(x) for x in np.linspace(
            0, len(systems) - 1, min(FUSION_SAMPLE, len(systems)))})]
        plans[kind] = replace(plan, systems=picked, reference_candidates=[],
                              auto_candidates=[s.name for s in picked if s.name in scored],
                              branch_comparisons=[], synergy_candidates=[],
                              extra_selections={})
    return plans


def _fusion_task(plan: Plan, data: BenchmarkData, config: BenchmarkConfig,
                 specs: Mapping[str, HeadSpec], rng: np.random.Generator) -> Any:
    """The fusions of :func:`_sampled_plans` for the first outer fold and repeat, on
    synthetic unit outputs."""
    fold, train, test = plan.outer[0]
    train = plan.training(fold, 0)
    outputs = {}
    for unit in (u for u in plan.units if (u.fold, u.repeat) == (fold, 0)):
        members = len(member_seeds(specs[unit.head], config.seeds(0)))
        outputs[unit] = UnitOutput(
            test=np.stack([synthetic_proba(data.targets[test], data.n_classes, rng)
                           for _ in range(members)]),
            oof=np.stack([synthetic_proba(data.targets[train], data.n_classes, rng)
                          for _ in range(members)]) if unit.inner else None,
            params={}, seconds=0.0,
            stream_weights=(np.full(len(unit.branches), 1.0 / len(unit.branches))
                            if unit.kind == "joint" else None))
    splits = repeat_splits(plan, data, fold, 0, config.inner_splits, config.seeds)
    return delayed(_timed_fusions)(_sampled_plans(plan), data.targets[train],
                                   data.targets[test], fold, outputs, splits, data.n_classes,
                                   config.seeds(0)[0], data.groups[train])


def _time_comparison(plan: Plan, data: BenchmarkData, config: BenchmarkConfig,
                     rng: np.random.Generator) -> float:
    """Seconds of one paired comparison at the run's size (single-label: :func:`compare`,
    what every comparison calls), or of one system's resampling (label sets:
    :func:`compare_map` resamples each system once; two systems timed, halved)."""
    units = bootstrap_units(plan, data)
    tests = [test for _, _, test in plan.outer]
    names = ("a", "b")
    best = math.inf
    for _ in range(2):  # the second call is the steady state the run's many calls see
        started = time.perf_counter()
        if data.multilabel:
            probas = {name: [np.stack([synthetic_proba(data.Y[test], data.n_classes, rng)
                                       for _ in range(config.repeats)]) for test in tests]
                      for name in names}
            compare_map(*names, probas, [data.Y[test] for test in tests], units, plan.folds,
                        n_boot=config.n_bootstrap, random_state=config.seed)
        else:
            correct = {name: [rng.random((config.repeats, test.size)) < 0.8 for test in tests]
                       for name in names}
            compare(*names, correct, units, plan.folds, n_boot=config.n_bootstrap,
                    random_state=config.seed)
        best = min(best, time.perf_counter() - started)
    return best / 2 if data.multilabel else best


def _calibration_units(plan: Plan, data: BenchmarkData) -> dict[str, tuple[Unit, Unit]]:
    """Per head, its narrowest and widest first-stage input (not ``oof_features``, which
    reads other units' outputs; a head with stage-2 units only, a sequence head on the e2e
    CNN's frames, has none)."""
    chosen: dict[str, tuple[Unit, Unit]] = {}
    for head in dict.fromkeys(unit.head for unit in plan.units):
        candidates = sorted((u for u in plan.stages[0] if u.head == head
                             and u.kind != OOF_FEATURES), key=lambda u: unit_width(u, data))
        if candidates:
            chosen[head] = (candidates[0], candidates[-1])
    return chosen


def calibrate(plan: Plan, data: BenchmarkData, config: BenchmarkConfig,
              specs: Mapping[str, HeadSpec], *, n_jobs: int, backend: str = "loky",
              scheduler: str | None = None) -> Calibration:
    """Time what the cost model needs on this machine (see the module docstring).

    Parameters
    ----------
    plan : Plan
    data : BenchmarkData
    config : BenchmarkConfig
    specs : mapping of head name to HeadSpec
    n_jobs, backend, scheduler :
        The run's workers: the timed fits and fusions run as their tasks.

    Returns
    -------
    Calibration
    """
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    fold = plan.outer[0][0]
    train = plan.training(fold, 0)
    splits = repeat_splits(plan, data, fold, 0, config.inner_splits, config.seeds)
    inner_share = len(splits[0][0]) / len(train)
    inner = any(unit.inner for unit in plan.units)
    inputs = _calibration_units(plan, data)
    tasks, rows = [], {}
    for head, (narrow, wide) in inputs.items():
        network = head in SEQUENCE_HEAD_NAMES or head == E2E_HEAD
        size = min(len(train), NETWORK_CALIBRATION_ROWS if network else CALIBRATION_ROWS)
        sample = np.sort(rng.choice(train, size=size, replace=False))
        # An inner split's share of the sample, drawn from its training rows (stratified).
        inner_rows = train[splits[0][0]]
        inner_sample = np.sort(rng.choice(inner_rows, replace=False, size=min(
            inner_rows.size, max(2, round(size * inner_share)))))
        rows[head] = (size, len(inner_sample))
        fits = [("narrow", narrow, sample), ("wide", wide, sample)]
        if inner:
            fits.append(("wide_inner", wide, inner_sample))
        tasks.append(delayed(_timed_head)(
            specs[head], [(name, unit_input(unit, data, picked), data.targets[picked],
                           data.groups[picked]) for name, unit, picked in fits],
            data.n_classes, config.seeds(0)[0]))
    fusion_task = _fusion_task(plan, data, config, specs, rng)
    with contextlib.closing(run_tasks([*tasks, fusion_task], n_jobs=n_jobs, backend=backend,
                                      scheduler=scheduler)) as results:
        *timed, fusion_s = list(results)
    measured = dict(zip(inputs, timed, strict=True))
    heads = {head: HeadCost.fitted(rows[head], (unit_width(narrow, data),
                                                unit_width(wide, data)), measured[head][0])
             for head, (narrow, wide) in inputs.items()}
    peaks = [(before, after) for _, before, after in timed] or [(0, 0)]
    return Calibration(heads=heads, fusion_s=fusion_s,
                       comparison_s=_time_comparison(plan, data, config, rng),
                       worker_peak_rss=max(after for _, after in peaks),
                       wide_fit_rss=max(max(after - before, 0) for before, after in peaks),
                       seconds=time.perf_counter() - started)
