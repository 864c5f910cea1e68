"""The fusion stage's tasks: each fold and repeat split by head, and further when the workers
outnumber them, give the predictions and selections of one whole fold fused in one process."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit

import featurekit.benchmark.fuse as fuse_module
from featurekit.benchmark import BenchmarkConfig
from featurekit.benchmark.config import head_spec
from featurekit.benchmark.data import prepare_data
from featurekit.benchmark.execute import execute
from featurekit.benchmark.fuse import fuse, fuse_fold, fusion_tasks
from featurekit.benchmark.plan import make_plan, official_split

CONFIG = BenchmarkConfig(heads=("logreg", "xgb"), fusions=("early", "weighted", "stacking"),
                         repeats=2, n_seeds=1, n_bootstrap=100)


@pytest.fixture(scope="module")
def official_run() -> tuple:
    """Units of an official train -> validation -> eval split (one outer fold)."""
    frame = feature_frame(n_clips=90, n_folds=3, widths={"pitch": 3, "spectral": 3,
                                                         "neural.m": 4},
                          signal={"pitch": (low_bit, 1.5), "spectral": (high_bit, 1.5),
                                  "neural.m": (full_label, 0.7)})
    data = prepare_data(frame, CONFIG)
    outer, fixed_inner = official_split(data.folds)
    plan = replace(make_plan(data.branches, CONFIG, data.folds, outer=outer),
                   fixed_inner=fixed_inner)
    specs = {name: head_spec(name) for name in CONFIG.heads}
    outputs, splits = execute(plan, data, specs, seeds_of=CONFIG.seeds,
                              inner_splits_count=CONFIG.inner_splits, tune=CONFIG.tune,
                              with_embeddings=False, progress=False)
    return plan, data, outputs, splits


def test_tasks_hold_each_system_once_per_fold_and_repeat_and_one_head_each(
        official_run: tuple) -> None:
    plan = official_run[0]
    names = sorted(system.name for system in plan.systems)
    for workers, per_head in [(1, 1), (4, 1), (16, 4)]:  # 1 fold x 2 repeats x 2 heads
        tasks = fusion_tasks(plan, workers)
        assert len(tasks) == 2 * 2 * per_head
        for repeat in (0, 1):
            held = [system.name for _, r, systems in tasks if r == repeat for system in systems]
            assert sorted(held) == names
        assert all(len({system.head for system in systems}) == 1 for _, _, systems in tasks)
    # Dealt by fusion: every part of a head gets its share of the costly stackings (in plan
    # order, three parts put every stacking of a head in one).
    stackings = sum(system.fusion == "stacking" for system in plan.systems
                    if system.head == "logreg")
    for workers in (12, 16):
        parts = [systems for _, repeat, systems in fusion_tasks(plan, workers) if repeat == 0]
        counts = [sum(system.fusion == "stacking" for system in systems) for systems in parts]
        assert max(counts) - min(counts) <= 1 and sum(counts) == 2 * stackings


def test_many_tasks_give_the_predictions_and_choices_of_one_fold_fused_whole(
        official_run: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    plan, data, outputs, splits = official_run
    # As for 16 workers, run here one after the other.
    monkeypatch.setattr(fuse_module, "fusion_tasks", lambda plan, workers: fusion_tasks(plan, 16))
    split = fuse(plan, data, outputs, splits, CONFIG.seeds)
    (fold, _, test), = plan.outer
    for repeat in (0, 1):
        whole = fuse_fold(plan, data.targets[plan.training(fold, repeat)], data.targets[test],
                          fold, repeat, {unit: output for unit, output in outputs.items()
                                         if unit.repeat == repeat},
                          splits[fold, repeat], data.n_classes, CONFIG.seeds(repeat)[0],
                          data.groups[plan.training(fold, repeat)])
        assert {key for key in split if key[2] == repeat} == set(whole)
        assert any(prediction.selected for prediction in whole.values())
        for key, prediction in whole.items():
            other = split[key]
            np.testing.assert_array_equal(other.test, prediction.test)
            if prediction.inner is None:
                assert other.inner is None
            else:
                np.testing.assert_array_equal(other.inner, prediction.inner)
            assert (other.choice, other.selected, other.metrics) == (
                prediction.choice, prediction.selected, prediction.metrics)
