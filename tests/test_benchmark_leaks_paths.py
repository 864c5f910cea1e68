"""Leak checks of the newer paths: the e2e CNN and the heads on its frames, learning curves,
the official train -> validation -> eval split, and the hyper-parameter search.

The spies and checks are those of ``test_benchmark_leaks.py``; each check here is shown to
fail when a leak is put in on purpose (the ``*_catch_*`` tests).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import test_benchmark_leaks as leaks
from test_benchmark_leaks import (
    FUNCTIONALS,
    N_CLASSES,
    SEQUENCE,
    SPY,
    SPY_SEQ,
    WIDTHS,
    Log,
    SpyHead,
    check_fits,
    check_second_level,
    clip_ids,
    id_sequences,
    second_level_positions,
    signal,
    spy_frame,
)

import featurekit.benchmark.curves as curves_module
import featurekit.benchmark.engine as engine_module
import featurekit.benchmark.execute as execute_module
import featurekit.benchmark.fuse as fuse_module
import featurekit.fusion.branches as branches_module
import featurekit.fusion.rules as rules_module
from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.config import OOF_FEATURES
from featurekit.benchmark.data import prepare_data
from featurekit.benchmark.plan import (
    EVAL_FOLD,
    LEAVE_ONE_FOLD_OUT,
    TRAIN_FOLD,
    TRAIN_VAL_EVAL,
    VALIDATION_FOLD,
    make_plan,
    official_split,
    oof_feature_target,
)
from featurekit.fusion.oof_features import MIN_PROBABILITY
from featurekit.learn.heads.base import HeadSpec
from featurekit.names import E2E_BRANCH, E2E_HEAD

#: The spies' fixture (a fresh log, and spies on units, rules, selections and the blender).
spied = leaks.spied

# --------------------------------------------------------------------------------------------
# The e2e CNN's spy
# --------------------------------------------------------------------------------------------


class CNNSpy(SpyHead):
    """Stands in for the e2e CNN: a spy whose frames carry each clip's id in frame 0 (so the
    sequence heads reading them are spied too) and its signal after."""

    def frames(self, X: Any) -> np.ndarray:
        ids, values = clip_ids(X), signal(X)
        out = np.zeros((len(ids), 3, values.shape[1]), dtype=np.float32)
        out[:, 0, 0] = ids
        out[:, 1:] = values[:, None, :]
        return out


E2E_SPIES = {**SPY, **SPY_SEQ, E2E_HEAD: HeadSpec(E2E_HEAD, CNNSpy, seeded=True)}
E2E = BenchmarkConfig(heads=("spy", "seq"), fusions=("mean", "weighted", "oof_features"),
                      repeats=1, n_seeds=2, n_bootstrap=100)
CURVES = replace(FUNCTIONALS, repeats=1, train_fractions=(0.5, 1.0))
HANDCRAFTED = {"pitch": 3, "spectral": 3}


def run_e2e(frame: pd.DataFrame) -> dict:
    return run_benchmark(frame, dataset="spied", config=E2E, head_specs=E2E_SPIES,
                         sequences=id_sequences(frame, (E2E_BRANCH,)), progress=False)


def run_curves(frame: pd.DataFrame) -> dict:
    return run_benchmark(frame, dataset="spied", config=CURVES, head_specs=SPY,
                         progress=False)


def run_official(frame: pd.DataFrame) -> dict:
    return run_benchmark(frame, dataset="spied", config=FUNCTIONALS, head_specs=SPY,
                         protocol=TRAIN_VAL_EVAL, progress=False)


def plan_of(frame: pd.DataFrame, config: BenchmarkConfig, protocol: str = LEAVE_ONE_FOLD_OUT,
            sequences: dict[str, np.ndarray] | None = None) -> Any:
    data = prepare_data(frame, config, sequences=sequences)
    outer = official_split(data.folds)[0] if protocol == TRAIN_VAL_EVAL else None
    return make_plan(data.branches, config, data.folds, sequence_branches=list(data.sequences),
                     outer=outer)


def check_oof_features_rows(log: Log, frame: pd.DataFrame, plan: Any,
                            protocol: str = LEAVE_ONE_FOLD_OUT) -> None:
    """Every fit of an ``oof_features`` target head (members and twins) is on rows with real
    out-of-fold probabilities of the other branches: no row at the floor in every class of a
    branch (a filler), no NaN, and (by id) only the fold's second-level rows."""
    fits = [fit for fit in log.fits if fit["unit"].kind == OOF_FEATURES]
    assert fits, "no oof_features target was fitted"
    floor = np.log(MIN_PROBABILITY)
    for fit in fits:
        unit = fit["unit"]
        n_sources = len(unit.branches) - len(oof_feature_target(unit.branches))
        logs = fit["X"][:, fit["X"].shape[1] - n_sources * N_CLASSES:]
        for block in np.split(logs, n_sources, axis=1):
            assert not np.isnan(block).any(), f"{unit} was fitted on rows without probabilities"
            assert not np.any(np.all(block <= floor + 1e-6, axis=1)), \
                f"{unit} was fitted on filler rows (log({MIN_PROBABILITY:g}) in every class)"
        train = next(rows for fold, rows, _ in plan.outer if fold == unit.fold)
        allowed = train[second_level_positions(frame, plan, protocol, unit.fold, len(train))]
        assert set(fit["ids"].tolist()) <= set(allowed.tolist()), \
            f"{unit} was fitted on rows that have no out-of-fold probabilities"


# --------------------------------------------------------------------------------------------
# The paths, spied
# --------------------------------------------------------------------------------------------

def test_e2e_cnn_and_the_heads_on_its_frames_never_see_the_test_fold(spied: Log) -> None:
    frame = spy_frame(HANDCRAFTED)
    run_e2e(frame)
    plan = plan_of(frame, E2E, sequences=id_sequences(frame, (E2E_BRANCH,)))
    check_fits(spied, frame)
    check_second_level(spied, frame, plan)
    check_oof_features_rows(spied, frame, plan)
    units = {(fit["unit"].head, fit["unit"].branches, fit["unit"].kind) for fit in spied.fits}
    assert (E2E_HEAD, (E2E_BRANCH,), "branch") in units
    assert ("seq", (E2E_BRANCH,), "branch") in units  # on the CNN's frames, ids intact
    assert ("spy", ("pitch", "spectral", E2E_BRANCH), OOF_FEATURES) in units
    # the CNN's inner twins (their out-of-fold probabilities teach the rules and oof_features)
    assert any(fit["unit"].head == E2E_HEAD and fit["ids"].size < len(fit["train"])
               for fit in spied.fits)


def test_learning_curve_fits_never_see_the_test_fold(spied: Log) -> None:
    frame = spy_frame(WIDTHS)
    results = run_curves(frame)
    plan = plan_of(frame, CURVES)
    check_fits(spied, frame)
    check_second_level(spied, frame, plan)
    check_oof_features_rows(spied, frame, plan)
    full = {fold: len(train) for fold, train, _ in plan.outer}
    subsampled = [fit for fit in spied.fits if len(fit["train"]) < full[fit["unit"].fold]]
    assert subsampled, "no unit of the learning curve was fitted"
    assert {entry["fraction"] for entry in results["learning_curve"]} == {0.5, 1.0}


# --------------------------------------------------------------------------------------------
# The checks catch leaks put in on purpose
# --------------------------------------------------------------------------------------------

def leak_e2e_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The e2e CNN (and it alone) trains on a row of its outer test fold in place of one of
    its training rows."""
    spied_fit_unit = execute_module.fit_unit

    def leaky(unit, spec, data, train, test, **kwargs):
        if unit.head == E2E_HEAD:
            train = np.concatenate([test[:1], train[1:]])
        return spied_fit_unit(unit, spec, data, train, test, **kwargs)

    monkeypatch.setattr(execute_module, "fit_unit", leaky)


def leak_curve_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The learning curve's subsamples include a row of the outer test fold."""
    real = curves_module.subsampled_rows

    def leaky(plan, data, fraction, config):
        tests = {fold: test for fold, _, test in plan.outer}
        return {(fold, repeat): np.sort(np.append(rows, tests[fold][0]))
                for (fold, repeat), rows in real(plan, data, fraction, config).items()}

    monkeypatch.setattr(curves_module, "subsampled_rows", leaky)


def leak_eval_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The official split trains on one eval clip."""
    def leaky(folds):
        ((fold, training, test),), inner = official_split(folds)
        return [(fold, np.sort(np.append(training, test[0])), test)], inner

    monkeypatch.setattr(engine_module, "official_split", leaky)


def leak_validation_into_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The official split's inner twins train on train + validation and predict validation."""
    def leaky(folds):
        outer, inner = official_split(folds)
        return outer, {fold: [(np.union1d(train, val), val) for train, val in splits]
                       for fold, splits in inner.items()}

    monkeypatch.setattr(engine_module, "official_split", leaky)


@pytest.mark.parametrize(("leak", "runner"), [
    (leak_e2e_row, run_e2e),
    (leaks.leak_outer_row, run_e2e),
    (leak_curve_row, run_curves),
    (leak_eval_row, run_official),
    (leak_validation_into_twins, run_official),
])
def test_the_spies_catch_a_leak_on_the_newer_paths(spied: Log, monkeypatch: pytest.MonkeyPatch,
                                                   leak: Any, runner: Any) -> None:
    frame = spy_frame(HANDCRAFTED if runner is run_e2e else WIDTHS)
    leak(monkeypatch)
    runner(frame)
    with pytest.raises(AssertionError):
        check_fits(spied, frame)


def test_the_second_level_check_catches_rows_swapped_for_test_rows(
        spied: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """A late rule fitted on as many rows as the fold trains on, some of them test rows: a
    count cannot see it, the rows' identities do."""
    real = fuse_module._fuse_system  # the spied one: it sets the log's context

    def leaky(system, y_train, splits, outputs, *args, **kwargs):
        if system.fusion in rules_module.FUSION_RULES:
            parts = [outputs[system.head, (name,), "branch"] for name in system.branches]
            oof = [np.vstack([part.test.mean(axis=0), part.oof.mean(axis=0)])[:len(y_train)]
                   for part in parts]
            leaks.LOG.context["system"] = system.name
            rules_module.make_fusion(system.fusion).fit(oof, y_train, None)
        return real(system, y_train, splits, outputs, *args, **kwargs)

    monkeypatch.setattr(fuse_module, "_fuse_system", leaky)
    frame = spy_frame(WIDTHS)
    config = BenchmarkConfig(heads=("spy",), fusions=("mean",), repeats=1, n_bootstrap=100)
    run_benchmark(frame, dataset="spied", config=config, head_specs=SPY, progress=False)
    with pytest.raises(AssertionError, match="not out-of-fold predictions"):
        check_second_level(spied, frame, plan_of(frame, config))


# --------------------------------------------------------------------------------------------
# The official split: the second level learns from real out-of-fold probabilities only
# --------------------------------------------------------------------------------------------

def test_official_split_fits_and_second_level_learn_from_real_rows_only(spied: Log) -> None:
    frame = spy_frame(WIDTHS)
    run_official(frame)
    plan = plan_of(frame, FUNCTIONALS, TRAIN_VAL_EVAL)
    check_fits(spied, frame)
    check_second_level(spied, frame, plan, TRAIN_VAL_EVAL)
    check_oof_features_rows(spied, frame, plan, TRAIN_VAL_EVAL)
    assert {fit["rule"] for fit in spied.rule_fits} == {"mean", "weighted", "stacking",
                                                         "calibrated"}
    # auto, neural-auto and single-auto (the synergy reference)
    assert len(spied.selections) == 3 * FUNCTIONALS.repeats
    # No refit on train + validation: each first-level fit reads the train clips alone, and
    # that same fit predicts the validation clips (for the second level) and the eval clips.
    fold_of = frame["fold"].to_numpy()
    predicted: dict[int, set[int]] = {}
    for serial, ids in spied.predictions:
        predicted.setdefault(serial, set()).update(fold_of[ids].tolist())
    first_level = [serial for serial, fit in enumerate(spied.fits)
                   if fit["unit"].kind != OOF_FEATURES]
    assert first_level
    for serial in first_level:
        assert set(fold_of[spied.fits[serial]["ids"]].tolist()) == {TRAIN_FOLD}
        assert predicted[serial] == {VALIDATION_FOLD, EVAL_FOLD}
    # One fit per member: units x seeds, nothing refitted.
    units = {fit["unit"] for fit in spied.fits if fit["unit"].kind != OOF_FEATURES}
    assert len(first_level) == len(units) * FUNCTIONALS.n_seeds


def test_the_filler_check_catches_a_target_fitted_on_every_training_row(
        spied: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before issue 20, the official split's oof_features target learned on every training
    row, the train clips carrying log(1e-6) in every class (their out-of-fold probabilities
    were zeros)."""
    def every_row(targets, groups, splits, seed):
        return np.arange(len(targets)), list(splits)

    monkeypatch.setattr(execute_module, "second_level_rows", every_row)
    frame = spy_frame(WIDTHS)
    run_official(frame)
    with pytest.raises(AssertionError, match=r"without probabilities|filler"):
        check_oof_features_rows(spied, frame, plan_of(frame, FUNCTIONALS, TRAIN_VAL_EVAL),
                                TRAIN_VAL_EVAL)


def test_the_second_level_check_catches_rules_fitted_on_fillers(
        spied: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules and selections of the official split fitted on every training row, the train
    clips' missing out-of-fold probabilities read as zeros: the count is right, the rows
    are not."""
    def every_row(y_train, outputs, splits, groups, seed):
        zeros = {unit: replace(output, oof=None if output.oof is None
                               else np.nan_to_num(output.oof))
                 for unit, output in outputs.items()}
        return y_train, zeros, list(splits)

    monkeypatch.setattr(fuse_module, "_second_level", every_row)
    frame = spy_frame(WIDTHS)
    config = replace(FUNCTIONALS, fusions=("mean", "weighted"), repeats=1)
    run_benchmark(frame, dataset="spied", config=config, head_specs=SPY,
                  protocol=TRAIN_VAL_EVAL, progress=False)
    with pytest.raises(AssertionError, match="out-of-fold"):
        check_second_level(spied, frame, plan_of(frame, config, TRAIN_VAL_EVAL),
                           TRAIN_VAL_EVAL)


# --------------------------------------------------------------------------------------------
# The blend under an official split
# --------------------------------------------------------------------------------------------

def run_official_sequences(frame: pd.DataFrame) -> dict:
    return run_benchmark(frame, dataset="spied", config=SEQUENCE, head_specs=SPY_SEQ,
                         sequences=id_sequences(frame, ("pitch", "spectral")),
                         protocol=TRAIN_VAL_EVAL, progress=False)


def test_blend_under_an_official_split_learns_on_the_validation_clips(spied: Log) -> None:
    """The blend read the embeddings of the wrong rows under an official split (an
    IndexError); its blender now learns on the validation clips, embedded by encoders
    trained on the train clips."""
    frame = spy_frame(HANDCRAFTED)
    results = run_official_sequences(frame)
    plan = plan_of(frame, SEQUENCE, TRAIN_VAL_EVAL,
                   sequences=id_sequences(frame, ("pitch", "spectral")))
    check_fits(spied, frame)
    check_second_level(spied, frame, plan, TRAIN_VAL_EVAL)
    assert len(spied.blenders) == SEQUENCE.repeats  # one inner split: one blender each
    by_name = {system["name"]: system for system in results["systems"]}
    assert 0.0 <= by_name["pitch+spectral/seq/blend"]["mean"]["accuracy"] <= 1.0


# --------------------------------------------------------------------------------------------
# The hyper-parameter search (--tune)
# --------------------------------------------------------------------------------------------

class TunedSpyHead(SpyHead):
    """A spy with a search space (``shrink``) that also records ``tag``: the search whose
    result it was built with (set by :func:`spy_searches`)."""

    def __init__(self, random_state: int | None = None, shrink: float = 0.0,
                 tag: int | None = None) -> None:
        super().__init__(random_state=random_state)
        self.shrink = shrink
        self.tag = tag

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> TunedSpyHead:
        super().fit(X, y, groups)
        self.centres_ = self.centres_ * (1.0 - self.shrink)
        leaks.LOG.fits[-1]["tag"] = self.tag
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class (the search scores accuracy)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


TUNED_SPY = {"spy": HeadSpec("spy", TunedSpyHead, seeded=True,
                             param_grid={"shrink": [0.0, 0.5]})}
TUNED = BenchmarkConfig(heads=("spy",), fusions=("mean", "oof_features"), repeats=1,
                        n_seeds=1, tune=True, n_bootstrap=100)


def spy_searches(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """Ids of the rows of every search; each search's result carries its index as ``tag``."""
    searches: list[set[int]] = []
    real = branches_module.tune_head

    def tune_head(head, X, y, groups=None, **kwargs):
        params = real(head, X, y, groups, **kwargs)
        searches.append(set(clip_ids(X).tolist()))
        return {**params, "tag": len(searches) - 1}

    monkeypatch.setattr(branches_module, "tune_head", tune_head)
    return searches


@pytest.mark.parametrize("protocol", [LEAVE_ONE_FOLD_OUT, TRAIN_VAL_EVAL])
def test_the_search_of_an_inner_twin_never_sees_its_validation_rows(
        spied: Log, monkeypatch: pytest.MonkeyPatch, protocol: str) -> None:
    """--tune: each twin's hyper-parameters come from a search on its own training rows, so
    its out-of-fold probabilities (the inner scores of every system) are not flattered by a
    search that saw the rows they are scored on."""
    searches = spy_searches(monkeypatch)
    frame = spy_frame(WIDTHS)
    run_benchmark(frame, dataset="spied", config=TUNED, head_specs=TUNED_SPY,
                  protocol=protocol, progress=False)
    check_fits(spied, frame)
    built = [fit for fit in spied.fits if fit.get("tag") is not None]
    twins = [fit for fit in built if fit["ids"].size < len(fit["train"])]
    assert twins, "no inner twin was built from a search"
    for fit in built:
        assert searches[fit["tag"]] <= set(fit["ids"].tolist()), \
            f"{fit['unit']}: a head was built from a search over rows it was not trained on"
