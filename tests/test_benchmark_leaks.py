"""No row of an outer test fold, and no clip of a test-fold recording, reaches any fit.

Three mechanisms, each shown to fail when a leak is put in on purpose:

* spy heads (a functionals head and a sequence head registered as ``seq``) read each clip's
  row id from the first column (first frame of the sequences) and record what every fit,
  early-stopping split, prediction and embedding saw;
* the late rules, the blender and the ``auto`` selections record what they are fitted on;
* a black-box invariance: the stages run twice, the second time with the labels (or the
  features) of outer test fold 1 changed, and nothing fitted for fold 1 may change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit
from sklearn.base import BaseEstimator, ClassifierMixin

import featurekit.benchmark.execute as execute_module
import featurekit.benchmark.fuse as fuse_module
import featurekit.benchmark.plan as plan_module
import featurekit.fusion.blend as blend_module
import featurekit.fusion.rules as rules_module
from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.config import head_spec, unit_head
from featurekit.benchmark.data import prepare_data
from featurekit.benchmark.execute import execute
from featurekit.benchmark.fuse import fuse
from featurekit.benchmark.plan import LEAVE_ONE_FOLD_OUT, VALIDATION_FOLD, make_plan
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.splits import inner_splits, validation_split

N_CLIPS, N_FOLDS, N_CLASSES = 72, 3, 3


# --------------------------------------------------------------------------------------------
# Spies
# --------------------------------------------------------------------------------------------

class Log:
    """What the spies saw during one benchmark."""

    def __init__(self) -> None:
        self.fits: list[dict[str, Any]] = []
        self.predictions: list[tuple[int, np.ndarray]] = []  # (fit serial, clip ids)
        self.rule_fits: list[dict[str, Any]] = []
        self.selections: list[dict[str, Any]] = []
        self.blenders: list[dict[str, Any]] = []
        self.context: dict[str, Any] = {}


LOG = Log()


def clip_ids(X: Any) -> np.ndarray:
    """Row ids: first column of a table, first frame's first dimension of sequences."""
    if isinstance(X, Mapping):
        ids = [clip_ids(values) for values in X.values()]
        assert all(np.array_equal(ids[0], other) for other in ids), \
            "streams of one call hold different clips"
        return ids[0]
    X = np.asarray(X)
    return (X[:, 0, 0] if X.ndim == 3 else X[:, 0]).astype(int)


def signal(X: Any) -> np.ndarray:
    """Everything but the id, one row per clip."""
    if isinstance(X, Mapping):
        return np.hstack([signal(values) for values in X.values()])
    X = np.asarray(X, dtype=float)
    values = np.nanmean(X[:, 1:, :], axis=1) if X.ndim == 3 else X[:, 1:]
    return np.nan_to_num(values)


class SpyHead(ClassifierMixin, BaseEstimator):
    """Nearest class centre; records the ids of every fit, its early-stopping split (drawn as a
    real head draws it) and every prediction. Implements the sequence head's interface too
    (``transform``, ``stream_weights``) so that it can stand in for ``seq``."""

    def __init__(self, random_state: int | None = None) -> None:
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> SpyHead:
        ids, y = clip_ids(X), np.asarray(y)
        split = validation_split(y, groups, random_state=self.random_state or 0)
        self.serial_ = len(LOG.fits)
        LOG.fits.append({"ids": ids, "groups": None if groups is None else np.array(groups),
                         "stopping": None if split is None else (ids[split[0]], ids[split[1]]),
                         "streams": list(X) if isinstance(X, Mapping) else None,
                         "X": None if isinstance(X, Mapping) else np.array(X, dtype=float),
                         **LOG.context})
        self.classes_ = np.unique(y)
        Z = signal(X)
        self.centres_ = np.stack([Z[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        LOG.predictions.append((self.serial_, clip_ids(X)))
        distance = ((signal(X)[:, None, :] - self.centres_[None]) ** 2).sum(axis=2)
        logits = -(distance - distance.min(axis=1, keepdims=True))
        proba = np.exp(logits / max(1.0, float(np.median(np.abs(logits)))))
        return proba / proba.sum(axis=1, keepdims=True)

    def transform(self, X: Any) -> np.ndarray:
        """Embedding: [clip id, fit serial, class probabilities]."""
        proba = self.predict_proba(X)
        ids = clip_ids(X)
        return np.column_stack([ids, np.full(len(ids), self.serial_), proba]).astype(np.float32)

    def stream_weights(self, X: Any) -> np.ndarray:
        n_streams = len(X) if isinstance(X, Mapping) else 1
        return np.full((len(clip_ids(X)), n_streams), 1.0 / n_streams)


SPY = {"spy": HeadSpec("spy", SpyHead, seeded=True)}
SPY_SEQ = {"seq": HeadSpec("seq", SpyHead, seeded=True)}
EMBEDDING_WIDTH = 2 + N_CLASSES


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> Log:
    """A fresh log, and spies on units, late rules, the selections and the blender."""
    global LOG
    LOG = Log()
    real_fit_unit = execute_module.fit_unit

    def fit_unit(unit, spec, data, train, test, **kwargs):
        LOG.context = {"unit": unit, "test": set(clip_ids(data.X[test]).tolist()),
                       "train": set(clip_ids(data.X[train]).tolist())}
        try:
            return real_fit_unit(unit, spec, data, train, test, **kwargs)
        finally:
            LOG.context = {}

    real_fuse_systems = fuse_module.fuse_systems

    def fuse_systems(systems, scored, y_train, y_test, fold, repeat, outputs, *args,
                     **kwargs):
        LOG.context = {"fold": fold, "repeat": repeat, "y_train": np.array(y_train),
                       "outputs": dict(outputs)}
        return real_fuse_systems(systems, scored, y_train, y_test, fold, repeat, outputs,
                                 *args, **kwargs)

    real_select_systems = fuse_module.select_systems

    def select_systems(plan, predictions, y_train, fold, repeat, *args, **kwargs):
        LOG.context = {"fold": fold, "repeat": repeat, "y_train": np.array(y_train)}
        return real_select_systems(plan, predictions, y_train, fold, repeat, *args,
                                   **kwargs)

    real_fuse_system = fuse_module._fuse_system

    def fuse_system(system, *args, **kwargs):
        LOG.context["system"] = system.name
        return real_fuse_system(system, *args, **kwargs)

    def spy_rule(name: str, base: type) -> type:
        class Spy(base):
            def fit(self, oof, y, splits):
                LOG.rule_fits.append({"rule": name, "n": len(y), "y": np.array(y),
                                      "rows": {len(p) for p in oof},
                                      "oof": [np.array(p) for p in oof], **LOG.context})
                return super().fit(oof, y, splits)

        return Spy

    for name, rule in list(rules_module.FUSION_RULES.items()):
        monkeypatch.setitem(rules_module.FUSION_RULES, name, spy_rule(name, rule))
    real_select = fuse_module.select_by_oof

    def select_by_oof(candidates, probas, y):
        LOG.selections.append({"candidates": list(candidates), "y": np.array(y),
                               "rows": {len(p) for p in probas}, **LOG.context})
        return real_select(candidates, probas, y)

    real_fit_blender = blend_module.fit_blender

    def fit_blender(Z, y, **kwargs):
        LOG.blenders.append({"Z": np.array(Z), **LOG.context})
        return real_fit_blender(Z, y, **kwargs)

    monkeypatch.setattr(execute_module, "fit_unit", fit_unit)
    monkeypatch.setattr(fuse_module, "fuse_systems", fuse_systems)
    monkeypatch.setattr(fuse_module, "select_systems", select_systems)
    monkeypatch.setattr(fuse_module, "_fuse_system", fuse_system)
    monkeypatch.setattr(fuse_module, "select_by_oof", select_by_oof)
    monkeypatch.setattr(blend_module, "fit_blender", fit_blender)
    return LOG


# --------------------------------------------------------------------------------------------
# Data: recordings of two clips, each inside one fold
# --------------------------------------------------------------------------------------------

def recordings_of(n_clips: int = N_CLIPS) -> np.ndarray:
    """Clips i and i + N_FOLDS (same fold) share a recording: a clip-level split would divide
    it, a recording-level one never does."""
    index = np.arange(n_clips)
    return np.array([f"rec{i // (2 * N_FOLDS)}_{i % N_FOLDS}" for i in index])


def spy_frame(widths: Mapping[str, int]) -> pd.DataFrame:
    frame = feature_frame(n_clips=N_CLIPS, n_folds=N_FOLDS, n_classes=N_CLASSES, widths=widths,
                          signal={name: (full_label, 2.0) for name in widths}, id_column=True)
    frame.insert(4, "recording", recordings_of())
    return frame


def id_sequences(frame: pd.DataFrame, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    y = frame["label_id"].to_numpy()
    out = {}
    for code, name in zip((low_bit, high_bit), names, strict=False):
        values = rng.normal(size=(len(frame), 6, 2)).astype(np.float32)
        values[:, 1:, 1] += 2.0 * code(y)[:, None]
        values[:, 0, 0] = np.arange(len(frame))  # the clip's row id in frame 0
        out[name] = values
    return out


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

def check_fits(log: Log, frame: pd.DataFrame) -> None:
    """Every spy fit, early-stopping split and prediction keeps outer test folds and
    recordings apart."""
    recording = frame["recording"].to_numpy()
    fold_of = frame["fold"].to_numpy()
    assert log.fits, "no spy was fitted"
    for fit in log.fits:
        ids, test = fit["ids"], fit["test"]
        assert test and not test & set(ids.tolist()), \
            f"{fit['unit']} was fitted on a row of its outer test fold"
        assert set(ids.tolist()) <= fit["train"], \
            f"{fit['unit']} was fitted on a row outside its training rows"
        test_recordings = set(recording[sorted(test)])
        assert not test_recordings & set(recording[ids]), \
            f"{fit['unit']} was fitted on a clip sharing a recording with a test clip"
        assert len(set(fold_of[ids])) < N_FOLDS, "a fit saw every fold"
        # The head is told the recordings, and its early-stopping split keeps them whole.
        assert fit["groups"] is not None, "a head was fitted without groups"
        pairs = set(zip(fit["groups"].tolist(), recording[ids].tolist(), strict=True))
        assert len(pairs) == len(set(fit["groups"].tolist())) == len(set(recording[ids])), \
            "the groups given to a head are not the source recordings"
        if fit["stopping"] is not None:
            train, val = fit["stopping"]
            assert not set(recording[train]) & set(recording[val]), \
                "an early-stopping split divided a recording"
    for serial, ids in log.predictions:
        learned = set(recording[log.fits[serial]["ids"]])
        assert not learned & set(recording[ids]), \
            "a head predicted a clip whose recording it was trained on"


def second_level_positions(frame: pd.DataFrame, plan: Any, protocol: str, fold: int,
                           n_train: int) -> np.ndarray:
    """Positions among a fold's training rows of the rows with real out-of-fold probabilities
    (what the second level may learn from): all of them under inner cross-validation, the
    validation clips under an official split."""
    if protocol == LEAVE_ONE_FOLD_OUT:
        return np.arange(n_train)
    train = next(rows for index, rows, _ in plan.outer if index == fold)
    return np.flatnonzero(frame["fold"].to_numpy()[train] == VALIDATION_FOLD)


def rule_rows(fit: dict[str, Any], plan: Any) -> np.ndarray:
    """Positions among its fold's training rows of the rows a late rule was fitted on, found
    by their out-of-fold probabilities in the outputs of the system's branch units (a row
    found nowhere, or in several places -- a filler -- fails)."""
    system = next(system for system in plan.systems if system.name == fit["system"])
    found = []
    for name, proba in zip(system.branches, fit["oof"], strict=True):
        output = next(output for unit, output in fit["outputs"].items()
                      if (unit.head, unit.branches, unit.kind)
                      == (unit_head(system.head, name), (name,), "branch"))
        where: dict[bytes, list[int]] = {}
        for position, row in enumerate(output.oof.mean(axis=0)):
            where.setdefault(row.tobytes(), []).append(position)
        matches = [where.get(row.tobytes(), []) for row in proba]
        assert all(len(match) == 1 for match in matches), \
            f"{fit['rule']} of {fit['system']} was fitted on rows that are not out-of-fold " \
            "predictions of its fold's training rows"
        found.append(np.array([match[0] for match in matches]))
    assert all(np.array_equal(found[0], other) for other in found), \
        f"{fit['rule']} of {fit['system']} combined different rows of its branches"
    return found[0]


def check_second_level(log: Log, frame: pd.DataFrame, plan: Any,
                       protocol: str = LEAVE_ONE_FOLD_OUT) -> None:
    """Late rules, blenders and selections learn from the training rows of their fold only,
    and from those with real out-of-fold probabilities (which rows, not only how many)."""
    recording = frame["recording"].to_numpy()
    train_rows = {fold: train for fold, train, _ in plan.outer}
    test_rows = {fold: set(test.tolist()) for fold, _, test in plan.outer}
    for fit in log.rule_fits:
        n_train = len(train_rows[fit["fold"]])
        assert fit["n"] <= n_train and fit["rows"] == {fit["n"]}, \
            f"{fit['rule']} of {fit['system']} was fitted on more rows than the fold trains on"
        rows = rule_rows(fit, plan)
        allowed = second_level_positions(frame, plan, protocol, fit["fold"], len(fit["y_train"]))
        assert set(rows.tolist()) <= set(allowed.tolist()), \
            f"{fit['rule']} of {fit['system']} was fitted on rows without out-of-fold " \
            "probabilities"
        assert np.array_equal(fit["y"], fit["y_train"][rows]), \
            f"{fit['rule']} of {fit['system']} was given other labels than its rows'"
    for fit in log.selections:
        allowed = second_level_positions(frame, plan, protocol, fit["fold"], len(fit["y_train"]))
        assert np.array_equal(fit["y"], fit["y_train"][allowed]) \
            and fit["rows"] == {len(allowed)}, \
            "a selection saw other rows than its fold's rows with out-of-fold probabilities"
    for fit in log.blenders:
        for start in range(0, fit["Z"].shape[1], EMBEDDING_WIDTH):
            block = fit["Z"][:, start:start + EMBEDDING_WIDTH]
            ids = block[:, 0].astype(int)
            assert not test_rows[fit["fold"]] & set(ids.tolist()), \
                "a blender saw a test-fold clip"
            for serial in np.unique(block[:, 1]).astype(int):
                learned = set(recording[log.fits[serial]["ids"]])
                assert not learned & set(recording[ids[block[:, 1] == serial]]), \
                    "a blender saw an embedding of a clip its encoder was trained on"
            if protocol != LEAVE_ONE_FOLD_OUT:
                validation = train_rows[fit["fold"]][second_level_positions(
                    frame, plan, protocol, fit["fold"], len(fit["y_train"]))]
                assert sorted(ids.tolist()) == sorted(validation.tolist()), \
                    "a blender of the official split learned on other clips than validation's"


FUNCTIONALS = BenchmarkConfig(heads=("spy",),
                              fusions=("early", "mean", "weighted", "stacking", "calibrated",
                                       "oof_features"),
                              repeats=2, n_seeds=2, n_bootstrap=100)
SEQUENCE = BenchmarkConfig(heads=("seq",), fusions=("weighted", "blend", "joint"), repeats=2,
                           n_seeds=1, n_bootstrap=100)
WIDTHS = {"pitch": 3, "spectral": 3, "neural.m": 4}


def run_functionals(frame: pd.DataFrame) -> dict:
    return run_benchmark(frame, dataset="spied", config=FUNCTIONALS, head_specs=SPY,
                         progress=False)


def run_sequences(frame: pd.DataFrame) -> dict:
    return run_benchmark(frame, dataset="spied", config=SEQUENCE, head_specs=SPY_SEQ,
                         sequences=id_sequences(frame, ("pitch", "spectral")), progress=False)


def test_functionals_units_late_rules_and_auto_never_see_the_test_fold(spied: Log) -> None:
    frame = spy_frame(WIDTHS)
    results = run_functionals(frame)
    data = prepare_data(frame, FUNCTIONALS)
    plan = make_plan(data.branches, FUNCTIONALS, data.folds)
    check_fits(spied, frame)
    check_second_level(spied, frame, plan)
    # Every kind of unit, rule and selection was exercised.
    assert {fit["unit"].kind for fit in spied.fits} == {"branch", "early", "oof_features"}
    assert {fit["rule"] for fit in spied.rule_fits} == {"mean", "weighted", "stacking",
                                                         "calibrated"}
    main_fits = [fit for fit in spied.rule_fits
                 if np.array_equal(fit["y"], fit["y_train"])]
    n_late = sum(s.fusion in rules_module.FUSION_RULES for s in plan.systems)
    assert len(main_fits) >= n_late * N_FOLDS * FUNCTIONALS.repeats
    # auto, neural-auto and single-auto (the synergy reference), per fold and repeat
    assert len(spied.selections) == 3 * N_FOLDS * FUNCTIONALS.repeats
    assert results["primary"]["reference"] == "neural-auto"


def test_sequence_head_blend_and_joint_never_see_the_test_fold(spied: Log) -> None:
    frame = spy_frame({"pitch": 2, "spectral": 2})
    run_sequences(frame)
    data = prepare_data(frame, SEQUENCE, sequences=id_sequences(frame, ("pitch", "spectral")))
    plan = make_plan(data.branches, SEQUENCE, data.folds, sequence_branches=["pitch",
                                                                            "spectral"])
    check_fits(spied, frame)
    check_second_level(spied, frame, plan)
    assert {fit["unit"].kind for fit in spied.fits} == {"branch", "joint"}
    assert any(fit["streams"] == ["pitch", "spectral"] for fit in spied.fits)
    # outer folds x repeats x inner splits (two training folds of recordings: at least 2)
    assert len(spied.blenders) >= N_FOLDS * SEQUENCE.repeats * 2
    assert {fit["rule"] for fit in spied.rule_fits} == {"weighted"}


# --------------------------------------------------------------------------------------------
# The checks catch leaks put in on purpose
# --------------------------------------------------------------------------------------------

def leak_outer_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outer split trains on one row of its own test fold."""
    real = plan_module.leave_one_fold_out

    def leaky(folds, outer_folds=None):
        return [(fold, np.sort(np.append(train, test[0])), test)
                for fold, train, test in real(folds, outer_folds)]

    monkeypatch.setattr(plan_module, "leave_one_fold_out", leaky)


def leak_inner_recordings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner splits ignore the recordings (clip-level stratified splits)."""
    def leaky(data, train, n_splits, seed):
        return inner_splits(data.y[train], None, n_splits=n_splits, random_state=seed)

    monkeypatch.setattr(execute_module, "unit_splits", leaky)


def leak_stopping_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Heads are told that every clip is its own recording."""
    real = execute_module.fit_branch

    def leaky(spec, X, y, groups=None, **kwargs):
        return real(spec, X, y, np.arange(len(y)), **kwargs)

    monkeypatch.setattr(execute_module, "fit_branch", leaky)


@pytest.mark.parametrize("leak", [leak_outer_row, leak_inner_recordings, leak_stopping_groups])
@pytest.mark.parametrize("runner", [run_functionals, run_sequences])
def test_the_spies_catch_a_leak(spied: Log, monkeypatch: pytest.MonkeyPatch, leak: Any,
                                runner: Any) -> None:
    frame = spy_frame(WIDTHS if runner is run_functionals else {"pitch": 2, "spectral": 2})
    leak(monkeypatch)
    runner(frame)
    with pytest.raises(AssertionError):
        check_fits(spied, frame)


def test_the_second_level_checks_catch_a_leak(spied: Log,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A late rule fitted on the training and the test rows is caught by its row count."""
    frame = spy_frame(WIDTHS)
    real = fuse_module._fuse_system  # the spied one: it sets the log's context

    def leaky(system, y_train, splits, outputs, *args, **kwargs):
        if system.fusion in rules_module.FUSION_RULES:
            rule = rules_module.make_fusion(system.fusion)
            parts = [outputs[system.head, (name,), "branch"] for name in system.branches]
            # training rows' out-of-fold and test probabilities, with made-up test labels
            oof = [np.vstack([p.oof.mean(axis=0), p.test.mean(axis=0)]) for p in parts]
            y = np.concatenate([y_train, np.zeros(parts[0].test.shape[1], dtype=int)])
            LOG.context["system"] = system.name  # fold and y_train: set by the fold spy
            rule.fit(oof, y, None)
        return real(system, y_train, splits, outputs, *args, **kwargs)

    monkeypatch.setattr(fuse_module, "_fuse_system", leaky)
    config = BenchmarkConfig(heads=("spy",), fusions=("mean",), repeats=1, n_bootstrap=100)
    results = run_benchmark(frame, dataset="spied", config=config, head_specs=SPY,
                            progress=False)
    plan = make_plan(list(results["branches"]), config, frame["fold"].to_numpy())
    with pytest.raises(AssertionError, match="more rows than the fold trains on"):
        check_second_level(spied, frame, plan)


# --------------------------------------------------------------------------------------------
# Black box: changing outer test fold 1 changes nothing fitted for it
# --------------------------------------------------------------------------------------------

INVARIANCE = BenchmarkConfig(heads=("logreg", "seq"), repeats=2, n_seeds=1, n_bootstrap=100)


def run_stages(frame: pd.DataFrame, sequences: Mapping[str, np.ndarray]) -> tuple:
    global LOG
    LOG = Log()  # fit serials (in the spy's embeddings) count from 0 in every run
    config = INVARIANCE
    data = prepare_data(frame, config, sequences=sequences)
    plan = make_plan(data.branches, config, data.folds, sequence_branches=list(data.sequences))
    specs = {name: head_spec(name, SPY_SEQ) for name in config.heads}
    outputs, splits = execute(plan, data, specs, seeds_of=config.seeds,
                              inner_splits_count=config.inner_splits, tune=config.tune,
                              with_embeddings=True, progress=False)
    return plan, outputs, splits, fuse(plan, data, outputs, splits, config.seeds)


def invariance_inputs() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    frame = feature_frame(n_clips=N_CLIPS, n_folds=N_FOLDS, n_classes=N_CLASSES,
                          widths={"pitch": 3, "spectral": 3, "neural.m": 4},
                          signal={"pitch": (low_bit, 1.5), "spectral": (high_bit, 1.5),
                                  "neural.m": (full_label, 0.7)})
    frame.insert(4, "recording", recordings_of())
    return frame, id_sequences(frame, ("pitch", "spectral"))


def permute_test_labels(frame: pd.DataFrame) -> pd.DataFrame:
    changed = frame.copy()
    rows = np.flatnonzero(frame["fold"].to_numpy() == 1)
    order = np.random.default_rng(0).permutation(rows)
    changed.loc[rows, ["label", "label_id"]] = frame.loc[order, ["label", "label_id"]].to_numpy()
    assert (changed["label_id"] != frame["label_id"]).sum() > len(rows) // 2
    return changed


def noisy_test_features(frame: pd.DataFrame, sequences: Mapping[str, np.ndarray]) -> tuple:
    changed, noisy = frame.copy(), {k: v.copy() for k, v in sequences.items()}
    rows = np.flatnonzero(frame["fold"].to_numpy() == 1)
    rng = np.random.default_rng(1)
    columns = [c for c in frame.columns if "." in c]
    changed.loc[rows, columns] = rng.normal(size=(len(rows), len(columns))).astype(np.float32)
    for values in noisy.values():
        values[rows, 1:] = rng.normal(size=values[rows, 1:].shape)
    return changed, noisy


def assert_same_fits(first: tuple, second: tuple, *, test_too: bool) -> None:
    """Everything fitted for outer fold 1 is identical (and its test probabilities too)."""
    _, outputs, splits, predictions = first
    _, outputs_2, splits_2, predictions_2 = second
    for repeat in range(INVARIANCE.repeats):
        for (a_train, a_val), (b_train, b_val) in zip(splits[1, repeat], splits_2[1, repeat],
                                                      strict=True):
            np.testing.assert_array_equal(a_train, b_train)
            np.testing.assert_array_equal(a_val, b_val)
    for unit, output in outputs.items():
        if unit.fold != 1:
            continue
        other = outputs_2[unit]
        assert output.params == other.params
        if output.oof is not None:
            np.testing.assert_array_equal(output.oof, other.oof, err_msg=str(unit))
        if output.oof_embedding is not None:
            np.testing.assert_array_equal(output.oof_embedding, other.oof_embedding)
        if test_too:
            np.testing.assert_array_equal(output.test, other.test, err_msg=str(unit))
    names = {key[0] for key in predictions}
    assert {"auto", "neural-auto"} <= names
    for key, prediction in predictions.items():
        if key[1] != 1:
            continue
        other = predictions_2[key]
        assert prediction.selected == other.selected, key
        if not key[0].endswith("/joint"):  # the joint model reports its test-clip gates
            assert prediction.choice == other.choice, key
        if prediction.inner is not None:
            np.testing.assert_array_equal(prediction.inner, other.inner, err_msg=str(key))
        if test_too:
            np.testing.assert_array_equal(prediction.test, other.test, err_msg=str(key))


@pytest.fixture(scope="module")
def baseline() -> tuple:
    frame, sequences = invariance_inputs()
    return frame, sequences, run_stages(frame, sequences)


def test_labels_of_the_test_fold_reach_nothing(baseline: tuple) -> None:
    frame, sequences, first = baseline
    second = run_stages(permute_test_labels(frame), sequences)
    kinds = {unit.kind for unit in first[1]}
    assert kinds == {"branch", "early", "joint", "oof_features"}
    fusions = {system.fusion for system in first[0].systems}
    assert fusions == {None, "early", "mean", "weighted", "stacking", "calibrated",
                       "oof_features", "blend", "joint"}
    assert_same_fits(first, second, test_too=True)


def test_features_of_the_test_fold_reach_no_fit_nor_choice(baseline: tuple) -> None:
    frame, sequences, first = baseline
    second = run_stages(*noisy_test_features(frame, sequences))
    assert_same_fits(first, second, test_too=False)
    # ... while the test probabilities do read the (changed) test features
    changed = [key for key, prediction in first[3].items() if key[1] == 1
               and not np.array_equal(prediction.test, second[3][key].test)]
    assert len(changed) > len(first[0].systems) // 2


def test_the_invariance_check_catches_a_leak(baseline: tuple,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    frame, sequences, _ = baseline
    leak_outer_row(monkeypatch)
    first = run_stages(frame, sequences)
    second = run_stages(permute_test_labels(frame), sequences)
    with pytest.raises(AssertionError):
        assert_same_fits(first, second, test_too=True)
