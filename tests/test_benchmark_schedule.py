"""Longest first: a stage's costliest units go to the workers first (by the calibrated model
when there is one, as the plan's estimate assumes), and the order changes no result."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit

import featurekit.benchmark.engine as engine_module
import featurekit.benchmark.execute as execute_module
from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.estimate import makespan
from featurekit.benchmark.plan import Unit
from featurekit.benchmark.schedule import longest_first, static_cost

CONFIG = BenchmarkConfig(heads=("logreg", "xgb", "mlp"), fusions=("early", "mean"),
                         repeats=1, n_bootstrap=100)


def _frame() -> Any:
    return feature_frame(n_clips=60, n_folds=3, widths={"pitch": 3, "spectral": 6,
                                                        "neural.tiny": 4},
                         signal={"pitch": (low_bit, 3.0), "spectral": (high_bit, 3.0),
                                 "neural.tiny": (full_label, 0.8)})


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The names of the units each call of the executor's ``run_tasks`` was given, in order."""
    calls: list[list[str]] = []
    original = execute_module.run_tasks

    def spy(tasks: Any, **options: Any) -> Any:
        calls.append(list(options["names"]))
        return original(tasks, **options)

    monkeypatch.setattr(execute_module, "run_tasks", spy)
    return calls


def _head(name: str) -> str:
    """The head of a unit as ``execute._described`` names it."""
    return name.split(": ")[1].split(" on ")[0]


def test_the_static_key_ranks_torch_heads_then_by_rows_and_columns() -> None:
    data = SimpleNamespace(sequences={"e2e": np.zeros((2, 40, 16))},
                           columns=lambda branches: np.arange(5 * len(branches)))
    train, splits = np.arange(100), [(np.arange(60), np.arange(60, 100))] * 2
    units = [Unit(1, 0, "logreg", ("a", "b"), "early", True),
             Unit(1, 0, "xgb", ("a",), "branch", False),
             Unit(1, 0, "mlp", ("a",), "branch", False),
             Unit(1, 0, "xgb", ("a", "b"), "early", False),
             Unit(1, 0, "cnn", ("e2e",), "branch", False),
             Unit(1, 0, "mine", ("a", "b"), "early", True),
             Unit(1, 0, "mlp", ("a",), "branch", True)]
    order = longest_first(units, lambda unit: static_cost(unit, data, train, splits))
    # cnn; mlp with inner twins (220 rows) before without; xgb wider first; logreg; a head
    # the key does not know last.
    assert order == [4, 6, 2, 3, 1, 0, 5]
    # Equal costs keep the plan's order.
    assert longest_first(units[1:2] * 3, lambda unit: 0) == [0, 1, 2]


def test_costly_units_go_first_and_the_order_changes_no_result(
        submitted: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    reordered = run_benchmark(_frame(), dataset="generated", config=CONFIG, progress=False)
    first = submitted[0]
    heads = [_head(name) for name in first]
    ranks = [("mlp", "xgb", "logreg").index(head) for head in heads]
    assert ranks == sorted(ranks) and heads[0] == "mlp"
    # Within a head, the widest input first: early fusion of every branch.
    assert first[0].endswith("mlp on pitch+spectral+neural.tiny (early)")
    # The plan's own order (the executor's before longest-first) gives the same results.
    submitted.clear()
    monkeypatch.setattr(execute_module, "submission_order",
                        lambda stage, *args: list(range(len(stage))))
    planned = run_benchmark(_frame(), dataset="generated", config=CONFIG, progress=False)
    assert [_head(name) for name in submitted[0]] != heads
    for key in ("primary", "systems", "comparisons", "fusion_vs_own_branches",
                "branch_comparisons", "contributions", "validation_splits", "n_fits"):
        assert reordered[key] == planned[key], key
    assert list(reordered["timings_s"]) == list(planned["timings_s"])


def test_a_calibrated_run_gives_its_units_in_the_order_its_plan_assumed(
        submitted: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    given: dict[str, Any] = {}
    original = engine_module.execute

    def spy(plan: Any, *args: Any, **options: Any) -> Any:
        given.update(plan=plan, seconds=options["unit_seconds"])
        return original(plan, *args, **options)

    monkeypatch.setattr(engine_module, "execute", spy)
    results = run_benchmark(_frame(), dataset="generated", config=CONFIG, progress=False,
                            calibrate=True)
    seconds = given["seconds"]
    assert set(seconds) == set(given["plan"].units)
    for stage, names in zip(given["plan"].stages, submitted, strict=True):
        costs = sorted((seconds[unit] for unit in stage), reverse=True)
        by_name = {execute_module._described(unit): seconds[unit] for unit in stage}
        assert [by_name[name] for name in names] == costs
    # The plan's estimate of the fits handed them out in that order too.
    fits = next(stage for stage in results["plan"]["stages"] if stage["name"] == "fits")
    assert fits["estimated_s"] == pytest.approx(sum(
        makespan(sorted((seconds[unit] for unit in stage), reverse=True),
                 results["plan"]["workers"]) for stage in given["plan"].stages))
    assert "costliest first" in fits["note"]
    assert "unit_seconds" not in results["plan"]
