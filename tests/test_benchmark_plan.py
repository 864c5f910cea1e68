"""The plan: systems and work units as data, which units fit inner twins, the candidates of
the primary comparison, and the outer folds."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from featurekit.benchmark import BenchmarkConfig
from featurekit.benchmark.plan import Unit, leave_one_fold_out, make_plan
from featurekit.errors import ConfigError, DatasetError

FOLDS = np.repeat([1, 2, 3], 4)
BRANCHES = ["pitch", "spectral", "neural.m"]


def config(**kwargs: object) -> BenchmarkConfig:
    return BenchmarkConfig(**{"heads": ("logreg",), "repeats": 1, **kwargs})


def inner_of(plan) -> dict[tuple, bool]:
    """(branches, kind) -> inner, for fold 1 and repeat 0."""
    return {(unit.branches, unit.kind): unit.inner for unit in plan.units
            if unit.fold == 1 and unit.repeat == 0}


def test_units_are_plain_hashable_data() -> None:
    plan = make_plan(BRANCHES, config(fusions=("early", "mean", "oof_features"), repeats=2),
                     FOLDS)
    units = plan.units
    assert len(units) == len(set(units))
    assert pickle.loads(pickle.dumps(units)) == units
    assert all(isinstance(unit, Unit) for unit in units)
    assert {unit.fold for unit in units} == {1, 2, 3}
    assert {unit.repeat for unit in units} == {0, 1}
    # oof_features reads the other branches' out-of-fold predictions: a second stage
    assert {unit.kind for unit in plan.stages[1]} == {"oof_features"}
    assert all(unit.kind != "oof_features" for unit in plan.stages[0])
    per_cell = {(u.branches, u.kind, u.inner) for u in units if u.fold == 1 and u.repeat == 0}
    assert len(units) == 3 * 2 * len(per_cell)


def test_only_units_whose_out_of_fold_predictions_are_needed_get_inner_twins() -> None:
    plan = make_plan(BRANCHES, config(fusions=("early",)), FOLDS)
    assert inner_of(plan) == {
        (("pitch",), "branch"): False,
        (("spectral",), "branch"): False,
        (("neural.m",), "branch"): True,  # a reference candidate
        (("pitch", "spectral"), "early"): True,  # a synergy reference candidate
        (("spectral", "neural.m"), "early"): False,
        (("pitch", "neural.m"), "early"): False,
        (("pitch", "spectral", "neural.m"), "early"): True,  # an auto candidate
    }
    assert plan.auto_candidates == ["pitch+spectral+neural.m/logreg/early"]
    assert plan.reference_candidates == ["neural.m/logreg"]
    assert plan.reference == "neural-auto"
    # A late rule learns from its branches' out-of-fold predictions: every branch gets twins.
    late = inner_of(make_plan(BRANCHES, config(fusions=("mean",)), FOLDS))
    assert late == {((name,), "branch"): True for name in BRANCHES}


def test_the_synergy_reference_chooses_among_one_group_systems_only() -> None:
    plan = make_plan(["pitch", "spectral", "neural.a", "neural.b"],
                     config(heads=("logreg", "mlp"), fusions=("early", "mean")), FOLDS)
    # The handcrafted branches together (fused, any head), or one neural branch (any head).
    assert sorted(plan.synergy_candidates) == sorted([
        "pitch+spectral/logreg/early", "pitch+spectral/logreg/mean",
        "pitch+spectral/mlp/early", "pitch+spectral/mlp/mean",
        "neural.a/logreg", "neural.a/mlp", "neural.b/logreg", "neural.b/mlp"])
    assert plan.synergy_note is None
    assert ("single-auto", plan.synergy_candidates) in plan.selections
    assert ("auto", plan.auto_candidates) in plan.selections
    # Every candidate is scored on inner predictions, so it gets its inner twins.
    assert inner_of(plan)[(("pitch", "spectral"), "early")]
    # One handcrafted branch is a group of its own.
    one = make_plan(["pitch", "neural.m"], config(fusions=("early",)), FOLDS)
    assert one.synergy_candidates == ["pitch/logreg", "neural.m/logreg"]


@pytest.mark.parametrize(("branches", "reason"), [
    (["pitch", "spectral"], "no neural branch"),
    (["neural.a", "neural.b"], "no handcrafted branch")])
def test_without_two_kinds_of_groups_there_is_no_synergy_comparison(
        branches: list[str], reason: str) -> None:
    plan = make_plan(branches, config(fusions=("early",)), FOLDS)
    assert plan.synergy_candidates == [] and reason in plan.synergy_note
    assert "single-auto" not in dict(plan.selections)


def test_a_learning_curve_plan_keeps_the_synergy_comparisons_systems() -> None:
    branches = ["pitch", "spectral", "neural.a", "neural.b"]
    full = make_plan(branches, config(fusions=("early",)), FOLDS)
    curve = make_plan(branches, config(fusions=("early",)), FOLDS, comparisons_only=True)
    assert curve.synergy_candidates == full.synergy_candidates
    assert curve.auto_candidates == full.auto_candidates
    assert curve.reference_candidates == []  # the primary comparison is not repeated
    # Without the handcrafted set among the subsets, there is no complete one-group pool.
    partial = make_plan(branches, config(fusions=("early",)), FOLDS,
                        subsets={(name,): ["alone"] for name in branches}
                        | {tuple(branches): ["all"]})
    assert partial.synergy_candidates == [] and "not among" in partial.synergy_note


def test_oof_features_units_and_their_inputs() -> None:
    plan = make_plan(["pitch", "neural.m"], config(fusions=("oof_features",)), FOLDS)
    assert inner_of(plan) == {(("pitch",), "branch"): True, (("neural.m",), "branch"): True,
                              (("pitch", "neural.m"), "oof_features"): True}
    # no neural branch, or two of them: no target, no system
    none = make_plan(["pitch", "spectral"], config(fusions=("early", "oof_features")), FOLDS)
    assert all(system.fusion != "oof_features" for system in none.systems)


def test_auto_candidates_are_every_fusion_over_all_branches_but_the_blend() -> None:
    fusions = ("early", "mean", "stacking", "oof_features", "blend", "joint")
    plan = make_plan(["pitch", "neural.m"], config(heads=("logreg", "seq"), fusions=fusions),
                     FOLDS, sequence_branches=["pitch", "neural.m"])
    assert sorted(plan.auto_candidates) == sorted([
        "pitch+neural.m/logreg/early", "pitch+neural.m/logreg/mean",
        "pitch+neural.m/logreg/stacking", "pitch+neural.m/logreg/oof_features",
        "pitch+neural.m/seq/mean", "pitch+neural.m/seq/stacking", "pitch+neural.m/seq/joint"])
    assert "pitch+neural.m/seq/blend" in {system.name for system in plan.systems}
    assert plan.reference_candidates == ["neural.m/logreg", "neural.m/seq"]


def test_without_neural_branches_every_single_branch_is_a_reference_candidate() -> None:
    plan = make_plan(["pitch", "spectral", "timbre"], config(fusions=("weighted",)), FOLDS)
    assert plan.reference == "single-branch-auto"
    assert plan.reference_candidates == ["pitch/logreg", "spectral/logreg", "timbre/logreg"]
    assert plan.auto_candidates == ["pitch+spectral+timbre/logreg/weighted"]
    single = make_plan(["pitch"], config(), FOLDS)
    assert single.auto_candidates == [] and single.reference_candidates == ["pitch/logreg"]


def test_the_sequence_head_runs_only_on_branches_with_sequences() -> None:
    plan = make_plan(["pitch", "neural.m"], config(heads=("logreg", "seq"),
                                                   fusions=("blend", "joint", "early")),
                     FOLDS, sequence_branches=["pitch"])
    seq = {system.name for system in plan.systems if system.head == "seq"}
    assert seq == {"pitch/seq"}
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        make_plan(["pitch"], config(heads=("seq",)), FOLDS)


def test_outer_folds_restrict_the_plan_and_unknown_folds_are_refused() -> None:
    plan = make_plan(BRANCHES, config(fusions=("early",), outer_folds=(2,)), FOLDS)
    assert plan.folds == [2]
    assert {unit.fold for unit in plan.units} == {2}
    _, train, test = plan.outer[0]
    assert set(FOLDS[test]) == {2} and set(FOLDS[train]) == {1, 3}
    with pytest.raises(ConfigError, match=r"outer fold\(s\) \[7\] not in the data"):
        make_plan(BRANCHES, config(outer_folds=(2, 7)), FOLDS)
    with pytest.raises(ConfigError, match="at least one fold"):
        config(outer_folds=())


def test_leave_one_fold_out_splits() -> None:
    folds = np.array([3, 1, 3, 2, 1])
    splits = leave_one_fold_out(folds)
    assert [fold for fold, _, _ in splits] == [1, 2, 3]
    for fold, train, test in splits:
        assert set(folds[test]) == {fold} and fold not in set(folds[train])
        assert sorted([*train, *test]) == list(range(5))
    with pytest.raises(DatasetError, match="at least 2 folds"):
        leave_one_fold_out(np.ones(4, dtype=int))
