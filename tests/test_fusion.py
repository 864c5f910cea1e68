"""Fusion rules, the fallback guard, and the fusion estimators inside scikit-learn CV."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit
from scipy.special import softmax
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import PredefinedSplit, cross_val_score

from featurekit.errors import ConfigError
from featurekit.fusion import (
    FUSION_RULES,
    CalibratedFusion,
    EarlyFusionClassifier,
    LateFusionClassifier,
    MeanFusion,
    StackingFusion,
    WeightedFusion,
    fit_branch,
    fit_temperature,
    make_fusion,
    resolve_columns,
)
from featurekit.learn.heads.logreg import LogRegHead
from featurekit.learn.splits import inner_splits

BRANCHES = {"pitch": "pitch.", "spectral": "spectral."}


def branch_probas(y: np.ndarray, strengths: list[float], n_classes: int,
                  seed: int = 0) -> list[np.ndarray]:
    """Per-branch probabilities: logits = strength * one-hot(truth) + noise."""
    rng = np.random.default_rng(seed)
    onehot = np.eye(n_classes)[y]
    return [softmax(strength * onehot + rng.normal(size=onehot.shape), axis=1)
            for strength in strengths]


def accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(proba, axis=1) == y))


def test_resolve_columns_accepts_prefixes_names_positions_and_masks() -> None:
    columns = ["pitch.a", "pitch.b", "timbre.a"]
    assert resolve_columns("pitch.", columns, 3).tolist() == [0, 1]
    assert resolve_columns(["timbre.a", "pitch.a"], columns, 3).tolist() == [2, 0]
    assert resolve_columns([2, -1], None, 3).tolist() == [2, 2]
    assert resolve_columns(np.array([True, False, True]), None, 3).tolist() == [0, 2]
    with pytest.raises(ConfigError, match=r"no column starts with 'neural\.'"):
        resolve_columns("neural.", columns, 3)
    with pytest.raises(ConfigError, match=r"unknown columns: spectral\.x"):
        resolve_columns(["spectral.x"], columns, 3)
    with pytest.raises(ConfigError, match="needs a DataFrame"):
        resolve_columns("pitch.", None, 3)
    with pytest.raises(ConfigError, match="out of range"):
        resolve_columns([5], None, 3)


def test_mean_fusion_averages() -> None:
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    rule = MeanFusion().fit([a, b], np.array([0]), [])
    np.testing.assert_allclose(rule.combine([a, b]), [[0.5, 0.5]])


def test_learned_weights_favour_the_informative_branch() -> None:
    y = np.arange(300) % 5
    strong, weak = branch_probas(y, [3.0, 0.8], 5)
    rule = WeightedFusion().fit([strong, weak], y, [])
    assert rule.weights_[0] > rule.weights_[1]
    assert rule.weights_.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", ["weighted", "stacking"])
def test_learned_fusion_never_loses_to_its_best_branch_on_inner_validation(
        name: str, seed: int) -> None:
    y = np.arange(240) % 4
    probas = branch_probas(y, [2.0, 0.0, 0.5], 4, seed=seed)  # one good, one noise, one weak
    splits = inner_splits(y, n_splits=3, random_state=seed)
    rule = make_fusion(name).fit(probas, y, splits)
    assert accuracy(rule.combine(probas), y) >= max(accuracy(p, y) for p in probas) - 1e-12


def test_weighted_fusion_falls_back_when_the_learned_weights_lose(
        monkeypatch: pytest.MonkeyPatch) -> None:
    y = np.arange(200) % 4
    good, noise = branch_probas(y, [2.0, 0.0], 4, seed=1)

    def optimiser_stuck_on_noise(fun, x0, **kwargs):
        return SimpleNamespace(x=np.array([-10.0, 10.0]))

    monkeypatch.setattr("featurekit.fusion.rules.minimize", optimiser_stuck_on_noise)
    rule = WeightedFusion().fit([good, noise], y, [])
    assert rule.choice_.startswith("branch 0")
    np.testing.assert_array_equal(rule.combine([good, noise]), good)


def test_stacking_falls_back_when_the_stacker_loses(monkeypatch: pytest.MonkeyPatch) -> None:
    y = np.arange(200) % 4
    probas = branch_probas(y, [0.0, 2.0], 4, seed=2)
    monkeypatch.setattr(StackingFusion, "_stacker", staticmethod(lambda C: DummyClassifier()))
    rule = StackingFusion().fit(probas, y, inner_splits(y))
    assert rule.choice_ == "branch 1"
    np.testing.assert_array_equal(rule.combine(probas), probas[1])


def test_stacking_combines_complementary_branches() -> None:
    y = np.arange(400) % 4
    rng = np.random.default_rng(0)
    # Branch a knows bit 0 of the class, branch b knows bit 1.
    a = softmax(3.0 * (np.arange(4)[None, :] % 2 == (y % 2)[:, None])
                + rng.normal(size=(400, 4)) * 0.3, axis=1)
    b = softmax(3.0 * (np.arange(4)[None, :] // 2 == (y // 2)[:, None])
                + rng.normal(size=(400, 4)) * 0.3, axis=1)
    rule = StackingFusion().fit([a, b], y, inner_splits(y))
    assert rule.choice_.startswith("stacker")
    assert accuracy(rule.combine([a, b]), y) > 0.95 > max(accuracy(a, y), accuracy(b, y)) + 0.3


def test_unknown_fusion_is_refused() -> None:
    assert set(FUSION_RULES) == {"mean", "weighted", "stacking", "calibrated"}
    with pytest.raises(ConfigError, match="unknown late fusion 'median'"):
        make_fusion("median")


def recorded_fits() -> tuple[np.ndarray, np.ndarray, list[set[int]], type]:
    """Features whose first column is the clip id, targets, the list each fit appends its
    training ids to, and the logistic head that records them."""
    frame = feature_frame(n_clips=60, signal={"pitch": (full_label, 2.0)}, id_column=True)
    seen: list[set[int]] = []

    class Recording(LogRegHead):
        def fit(self, X, y, groups=None):
            seen.append(set(np.asarray(X)[:, 0].astype(int)))
            return super().fit(X, y)

    return frame.filter(like="pitch.").to_numpy(), frame["label_id"].to_numpy(), seen, Recording


def test_fit_branch_out_of_fold_rows_come_from_twins_that_never_saw_them() -> None:
    X, y, seen, Recording = recorded_fits()
    splits = inner_splits(y, n_splits=3, random_state=0)
    fitted = fit_branch(Recording(), X, y, n_classes=4, seeds=(0, 1), splits=splits)
    assert fitted.oof.shape == (1, 60, 4)  # deterministic head: one member whatever the seeds
    assert len(seen) == 4
    for (_, val), rows in zip(splits, seen[1:], strict=True):
        assert not rows & set(val.tolist())


def test_fit_branch_without_refit_fits_members_on_the_split_and_predicts_its_rest() -> None:
    X, y, seen, Recording = recorded_fits()
    train, val = np.arange(40), np.arange(40, 50)  # rows 50-59: neither (a test fold)
    fitted = fit_branch(Recording(), X, y, n_classes=4, splits=[(train, val)], refit=False,
                        keep_twins=True)
    assert seen == [set(X[train, 0].astype(int).tolist())]  # one fit, nothing refitted
    assert np.isfinite(fitted.oof[0, val]).all() and np.isnan(fitted.oof[0, 50:]).all()
    np.testing.assert_allclose(fitted.oof[0, val], fitted.members[0].predict_proba(X[val]))
    assert fitted.twins == [[fitted.members[0]]]
    with pytest.raises(ConfigError, match="one split"):
        fit_branch(Recording(), X, y, n_classes=4, splits=inner_splits(y), refit=False)


@pytest.mark.parametrize("fusion", ["mean", "weighted", "stacking"])
def test_late_fusion_of_complementary_branches_beats_each_branch_in_cross_val_score(
        fusion: str) -> None:
    frame = feature_frame(n_clips=160, n_folds=4,
                          signal={"pitch": (low_bit, 3.0), "spectral": (high_bit, 3.0)})
    X = frame.drop(columns=["clip_id", "fold", "label", "label_id"])
    y = frame["label"].to_numpy()
    folds = frame["fold"].to_numpy()
    cv = PredefinedSplit(folds - 1)
    fused = cross_val_score(LateFusionClassifier(BRANCHES, head="logreg", fusion=fusion,
                                                 random_state=0),
                            X, y, cv=cv, params={"groups": folds})
    singles = [cross_val_score(LateFusionClassifier({name: prefix}, head="logreg",
                                                    fusion=fusion, random_state=0),
                               X, y, cv=cv, params={"groups": folds})
               for name, prefix in BRANCHES.items()]
    assert fused.shape == (4,)
    assert fused.mean() > 0.9
    assert all(fused.mean() > single.mean() + 0.25 for single in singles)


def test_early_fusion_classifier_in_cross_val_score() -> None:
    frame = feature_frame(n_clips=120, signal={"pitch": (low_bit, 3.0),
                                              "spectral": (high_bit, 3.0)})
    X = frame.drop(columns=["clip_id", "fold", "label", "label_id"])
    scores = cross_val_score(EarlyFusionClassifier(BRANCHES, head="logreg"), X,
                             frame["label_id"], cv=PredefinedSplit(frame["fold"] - 1))
    assert scores.mean() > 0.9


def test_late_fusion_estimator_conventions_and_determinism() -> None:
    frame = feature_frame(n_clips=90, signal={"pitch": (full_label, 1.0),
                                             "spectral": (full_label, 1.0)})
    X = frame.drop(columns=["clip_id", "fold", "label", "label_id"])
    y = frame["label"]
    model = LateFusionClassifier(BRANCHES, head={"pitch": "xgb", "spectral": "mlp"},
                                 fusion="weighted", n_seeds=2, random_state=3)
    assert clone(model).get_params()["head"] == {"pitch": "xgb", "spectral": "mlp"}
    first = model.fit(X, y).predict_proba(X)
    second = clone(model).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    assert len(model.members_["pitch"]) == 2
    assert model.classes_.tolist() == ["class0", "class1", "class2", "class3"]
    # Columns are matched by name at predict time.
    np.testing.assert_array_equal(model.predict_proba(X[X.columns[::-1]]), first)
    with pytest.raises(ValueError, match=r"expecting \d+ features"):
        model.predict_proba(X.to_numpy()[:, :3])


def test_late_fusion_accepts_positions_and_rejects_bad_configuration() -> None:
    frame = feature_frame(n_clips=60, signal={"pitch": (full_label, 2.0)})
    X = frame.filter(regex=r"^(pitch|spectral)\.").to_numpy()
    y = frame["label_id"].to_numpy()
    model = LateFusionClassifier({"a": np.arange(5), "b": np.arange(5, 10)}, head="logreg",
                                 fusion="mean").fit(X, y)
    assert model.predict(X).shape == (60,)
    with pytest.raises(ConfigError, match="unknown late fusion"):
        LateFusionClassifier({"a": [0]}, fusion="early").fit(X, y)
    with pytest.raises(ConfigError, match="no head given for branch 'b'"):
        LateFusionClassifier({"a": [0], "b": [1]}, head={"a": "logreg"}).fit(X, y)
    with pytest.raises(ConfigError, match="no branch"):
        LateFusionClassifier({}).fit(X, y)


@pytest.mark.parametrize("per_class", [False, True])
def test_calibrated_fusion_falls_back_when_a_branch_is_noise(per_class: bool) -> None:
    y = np.arange(300) % 4
    good, noise = branch_probas(y, [2.5, 0.0], 4)
    for order in ([good, noise], [noise, good]):
        rule = CalibratedFusion(per_class=per_class).fit(order, y, inner_splits(y))
        expected = 0 if order[0] is good else 1
        assert rule.choice_ == f"branch {expected}"
        np.testing.assert_array_equal(rule.combine(order), order[expected])


@pytest.mark.parametrize("per_class", [False, True])
def test_calibrated_fusion_pools_complementary_branches(per_class: bool) -> None:
    y = np.arange(400) % 4
    rng = np.random.default_rng(3)
    # Branch a knows bit 0 of the class, branch b bit 1: only together do they know it.
    a = softmax(3.0 * (np.arange(4)[None, :] % 2 == (y % 2)[:, None])
                + rng.normal(size=(400, 4)) * 0.3, axis=1)
    b = softmax(3.0 * (np.arange(4)[None, :] // 2 == (y // 2)[:, None])
                + rng.normal(size=(400, 4)) * 0.3, axis=1)
    rule = CalibratedFusion(per_class=per_class).fit([a, b], y, inner_splits(y))
    assert rule.choice_.startswith("calibrated")
    assert rule.weights_.shape == (2, 4) and np.all(rule.weights_ > 0)
    fused = rule.combine([a, b])
    np.testing.assert_allclose(fused.sum(axis=1), 1.0)
    assert accuracy(fused, y) > 0.95 > max(accuracy(a, y), accuracy(b, y)) + 0.3
    fused_score, branch_score = rule.cv_scores_["fused"], rule.cv_scores_["best_branch"]
    assert fused_score[0] > branch_score[0] and fused_score[1] < branch_score[1]


def test_temperature_undoes_a_known_sharpening() -> None:
    rng = np.random.default_rng(0)
    logits = 2.0 * rng.normal(size=(4000, 5))
    calibrated = softmax(logits, axis=1)
    # Labels drawn from the probabilities themselves: these are calibrated by construction.
    y = (calibrated.cumsum(axis=1) < rng.random((4000, 1))).sum(axis=1)
    # Temperature 1/3 sharpens the calibrated probabilities; fitting must find T close to 3.
    sharpened = softmax(3.0 * logits, axis=1)
    assert fit_temperature(calibrated, y) == pytest.approx(1.0, abs=0.15)
    assert fit_temperature(sharpened, y) == pytest.approx(3.0, rel=0.1)
