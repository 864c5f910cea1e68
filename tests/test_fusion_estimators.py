"""Every fusion as an estimator on a user's own arrays; each equals its composition of the
public steps; cross-fitted fusion probabilities never see the labels they are scored on."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.base import clone
from sklearn.model_selection import PredefinedSplit, cross_val_score

from featurekit.errors import ConfigError
from featurekit.fusion import (
    FUSION_RULES,
    EarlyFusionClassifier,
    EmbeddingBlendClassifier,
    JointSequenceClassifier,
    LateFusionClassifier,
    OOFFeaturesClassifier,
    StackingFusion,
    cross_fitted_proba,
    fit_branch,
    log_probability_features,
    make_fusion,
    predict_members,
    restrict_splits,
)
from featurekit.learn.splits import inner_splits

N_CLASSES = 4
#: Column positions of the two branches of :func:`half_known`.
BRANCHES = {"a": np.arange(0, 4), "b": np.arange(4, 8)}
#: A tiny sequence model: two epochs of an 8-channel encoder.
TINY = {"max_epochs": 2, "width": 8, "embedding_dim": 4, "batch_size": 16}


def half_known(n_rows: int, *, strength: float = 3.0,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, labels and folds (1-3) where branch ``a`` (columns 0-3) tells classes 0 and 1
    apart but not 2 from 3, and branch ``b`` (columns 4-7) the reverse."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n_rows) % N_CLASSES)
    centres = rng.normal(size=(2, 3, 4))
    # Classes a branch cannot tell apart share one centre (index 2).
    code_a = np.where(y < 2, y, 2)
    code_b = np.where(y >= 2, y - 2, 2)
    X = np.hstack([centres[0][code_a], centres[1][code_b]]) * strength
    X += rng.normal(size=X.shape)
    return X, y, np.arange(n_rows) % 3 + 1


def accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(proba, axis=1) == y))


def tiny_streams(y: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Two short sequence streams, one carrying bit 0 of the class, the other bit 1, as a
    shift of their first dimension; the last frames of every third clip are padding."""
    rng = np.random.default_rng(seed)
    streams = {}
    for name, code, n_dims in (("a", y % 2, 2), ("b", y // 2, 3)):
        values = rng.normal(size=(y.size, 6, n_dims)).astype(np.float32)
        values[:, :, 0] += 1.5 * (2.0 * code - 1.0)[:, None]
        values[::3, 4:] = np.nan
        streams[name] = values
    return streams


def check_probabilities(proba: np.ndarray, n_rows: int) -> None:
    assert proba.shape == (n_rows, N_CLASSES)
    assert np.all(proba >= 0.0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


# --------------------------------------------------------------------------------------------
# Each estimator on plain arrays
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    *[lambda rule=rule: LateFusionClassifier(BRANCHES, head="logreg", fusion=rule,
                                             random_state=0) for rule in FUSION_RULES],
    lambda: EarlyFusionClassifier(BRANCHES, head="logreg"),
    lambda: OOFFeaturesClassifier(BRANCHES, target="a", random_state=0),
], ids=[*(f"late-{rule}" for rule in FUSION_RULES), "early", "oof_features"])
def test_feature_estimators_fit_predict_and_clone(make) -> None:
    X, y, _ = half_known(120)
    model = make()
    proba = model.fit(X[:90], y[:90]).predict_proba(X[90:])
    check_probabilities(proba, 30)
    assert model.n_features_in_ == 8
    assert model.classes_.tolist() == list(range(N_CLASSES))
    fresh = clone(model)
    assert not hasattr(fresh, "classes_")
    np.testing.assert_allclose(fresh.fit(X[:90], y[:90]).predict_proba(X[90:]), proba,
                               atol=1e-12)
    assert model.predict(X[90:]).shape == (30,)


def test_oof_features_beats_its_target_branch_alone() -> None:
    X, y, folds = half_known(240)
    train, test = folds != 3, folds == 3
    model = OOFFeaturesClassifier(BRANCHES, target="a", random_state=0)
    fused = accuracy(model.fit(X[train], y[train], folds[train]).predict_proba(X[test]), y[test])
    alone = LateFusionClassifier({"a": BRANCHES["a"]}, head="logreg", fusion="mean")
    target = accuracy(alone.fit(X[train], y[train]).predict_proba(X[test]), y[test])
    assert model.sources_ == ["b"]
    assert target < 0.8
    assert fused > 0.95 > target + 0.15


def test_oof_features_in_cross_val_score_with_predefined_folds() -> None:
    X, y, folds = half_known(180)
    scores = cross_val_score(OOFFeaturesClassifier(BRANCHES, target="b", random_state=0),
                             X, y, cv=PredefinedSplit(folds - 1), params={"groups": folds})
    assert scores.shape == (3,)
    assert scores.mean() > 0.9


def test_oof_features_configuration_is_checked() -> None:
    X, y, _ = half_known(60)
    with pytest.raises(ConfigError, match="target branch 'c' is not among"):
        OOFFeaturesClassifier(BRANCHES, target="c").fit(X, y)
    with pytest.raises(ConfigError, match="besides the target"):
        OOFFeaturesClassifier({"a": BRANCHES["a"]}, target="a").fit(X, y)
    with pytest.raises(ValueError, match="groups must have one entry per row"):
        OOFFeaturesClassifier(BRANCHES, target="a").fit(X, y, groups=np.zeros(3))
    model = OOFFeaturesClassifier(BRANCHES, target="a").fit(X, y)
    with pytest.raises(ValueError, match="expecting 8 features"):
        model.predict_proba(X[:, :5])


def test_log_probability_features_append_clipped_logs_in_order() -> None:
    features = np.array([[1.0, 2.0], [3.0, 4.0]])
    first = np.array([[0.5, 0.5], [1.0, 0.0]])
    second = np.array([[0.25, 0.75], [0.1, 0.9]])
    out = log_probability_features(features, [first, second])
    assert out.dtype == np.float32 and out.shape == (2, 6)
    expected = np.hstack([features, np.log([[0.5, 0.5], [1.0, 1e-6]]), np.log(second)])
    np.testing.assert_allclose(out, expected.astype(np.float32))
    with pytest.raises(ValueError, match="probabilities must be"):
        log_probability_features(features, [first[:1]])


# --------------------------------------------------------------------------------------------
# Estimators equal the composition of the public steps
# --------------------------------------------------------------------------------------------

def test_oof_features_equals_its_composition_of_public_steps() -> None:
    X, y, folds = half_known(150, seed=1)
    train, test = folds != 1, folds == 1
    X_train, y_train, groups = X[train], y[train], folds[train]
    model = OOFFeaturesClassifier(BRANCHES, target="b", head="logreg", n_seeds=2,
                                  random_state=5)
    fused = model.fit(X_train, y_train, groups).predict_proba(X[test])

    splits = inner_splits(y_train, groups, n_splits=3, random_state=5)
    source = fit_branch("logreg", X_train[:, BRANCHES["a"]], y_train, groups,
                        n_classes=N_CLASSES, seeds=(5, 6), splits=splits)
    target = fit_branch("logreg", log_probability_features(X_train[:, BRANCHES["b"]],
                                                           [source.oof.mean(axis=0)]),
                        y_train, groups, n_classes=N_CLASSES, seeds=(5, 6))
    test_features = log_probability_features(
        X[test][:, BRANCHES["b"]],
        [predict_members(source.members, X[test][:, BRANCHES["a"]], N_CLASSES).mean(axis=0)])
    expected = predict_members(target.members, test_features, N_CLASSES).mean(axis=0)
    np.testing.assert_allclose(fused, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rule", list(FUSION_RULES))
def test_late_fusion_equals_its_composition_of_public_steps(rule: str) -> None:
    X, y, folds = half_known(150, seed=2)
    train, test = folds != 2, folds == 2
    X_train, y_train, groups = X[train], y[train], folds[train]
    model = LateFusionClassifier(BRANCHES, head="logreg", fusion=rule, random_state=1)
    fused = model.fit(X_train, y_train, groups).predict_proba(X[test])

    splits = inner_splits(y_train, groups, n_splits=3, random_state=1)
    fitted = [fit_branch("logreg", X_train[:, columns], y_train, groups, n_classes=N_CLASSES,
                         seeds=(1,), splits=splits) for columns in BRANCHES.values()]
    fusion = make_fusion(rule).fit([branch.oof.mean(axis=0) for branch in fitted], y_train,
                                   splits)
    expected = fusion.combine([predict_members(branch.members, X[test][:, columns],
                                               N_CLASSES).mean(axis=0)
                               for branch, columns in zip(fitted, BRANCHES.values(),
                                                          strict=True)])
    assert model.fusion_.choice_ == fusion.choice_
    np.testing.assert_allclose(fused, expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Cross-fitted fusion probabilities
# --------------------------------------------------------------------------------------------

def complementary_probas(n_rows: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Labels and three branches' probabilities: one knows bit 0 of the class, one bit 1, the
    third is noise (so every learned rule has weights to learn)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n_rows) % N_CLASSES)
    classes = np.arange(N_CLASSES)[None, :]
    a = softmax(2.5 * (classes % 2 == (y % 2)[:, None]) + rng.normal(size=(n_rows, 4)), axis=1)
    b = softmax(2.5 * (classes // 2 == (y // 2)[:, None]) + rng.normal(size=(n_rows, 4)),
                axis=1)
    noise = softmax(3.0 * rng.normal(size=(n_rows, 4)), axis=1)
    return y, [a, b, noise]


def leaky_proba(rule: str, oof: list[np.ndarray], y: np.ndarray, splits) -> np.ndarray:
    """The dishonest score: one rule fitted on every row, combining the same rows."""
    return make_fusion(rule).fit(oof, y, splits).combine(oof)


def test_restrict_splits_keeps_and_reindexes_the_given_rows() -> None:
    splits = [(np.array([2, 3, 4, 5]), np.array([0, 1])),
              (np.array([0, 1, 4, 5]), np.array([2, 3])),
              (np.array([0, 1, 2, 3]), np.array([4, 5]))]
    restricted = restrict_splits(splits, np.array([5, 4, 3, 2]))  # outside split 0's validation
    assert [(t.tolist(), v.tolist()) for t, v in restricted] == [([1, 0], [3, 2]),
                                                                 ([3, 2], [1, 0])]
    assert restrict_splits(splits, np.array([0, 1])) == []


def test_cross_fitted_mean_is_the_plain_average() -> None:
    y, oof = complementary_probas(90)
    splits = inner_splits(y, n_splits=3, random_state=0)
    np.testing.assert_allclose(cross_fitted_proba("mean", oof, y, splits),
                               np.mean(oof, axis=0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_splits", [2, 3])
@pytest.mark.parametrize("rule", ["weighted", "stacking", "calibrated"])
def test_cross_fitted_probabilities_never_see_their_own_labels(rule: str,
                                                               n_splits: int) -> None:
    y, oof = complementary_probas(240, seed=n_splits)
    splits = inner_splits(y, n_splits=n_splits, random_state=0)
    honest = cross_fitted_proba(rule, oof, y, splits)
    leaky = leaky_proba(rule, oof, y, splits)
    assert not np.isnan(honest).any()
    check_probabilities(honest, y.size)
    rng = np.random.default_rng(0)
    for _, val in splits:
        permuted = y.copy()
        permuted[val] = rng.permutation(y[val])
        np.testing.assert_array_equal(cross_fitted_proba(rule, oof, permuted, splits)[val],
                                      honest[val])
        # The leaky variant reads these labels: the test could fail.
        assert not np.allclose(leaky_proba(rule, oof, permuted, splits)[val], leaky[val])


def test_cross_fitted_proba_takes_a_rule_object_and_checks_shapes() -> None:
    y, oof = complementary_probas(120)
    splits = inner_splits(y, n_splits=3, random_state=0)
    rule = StackingFusion(C_grid=(1.0,))
    fused = cross_fitted_proba(rule, oof, y, splits)
    check_probabilities(fused, y.size)
    assert not hasattr(rule, "choice_")  # cloned, never fitted itself
    with pytest.raises(ValueError, match="expected"):
        cross_fitted_proba("mean", oof, y[:10], splits)
    with pytest.raises(ValueError, match="must all be"):
        cross_fitted_proba("mean", [oof[0], oof[1][:10]], y, splits)


# --------------------------------------------------------------------------------------------
# Sequence fusions
# --------------------------------------------------------------------------------------------

def test_embedding_blend_fits_predicts_and_clones() -> None:
    y = np.arange(48) % N_CLASSES
    streams = tiny_streams(y)
    model = EmbeddingBlendClassifier(TINY, n_splits=2, random_state=0)
    proba = model.fit(streams, y).predict_proba(streams)
    check_probabilities(proba, y.size)
    assert len(model.blenders_) == 2 and model.streams_ == ["a", "b"]
    np.testing.assert_array_equal(clone(model).fit(streams, y).predict_proba(streams), proba)


def test_joint_model_fits_predicts_clones_and_needs_two_streams() -> None:
    y = np.arange(48) % N_CLASSES
    streams = tiny_streams(y)
    model = JointSequenceClassifier(random_state=0, **TINY)
    proba = model.fit(streams, y).predict_proba(streams)
    check_probabilities(proba, y.size)
    weights = model.stream_weights(streams)
    assert weights.shape == (y.size, 2)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    fresh = clone(model)
    assert fresh.get_params()["max_epochs"] == 2
    np.testing.assert_array_equal(fresh.fit(streams, y).predict_proba(streams), proba)
    with pytest.raises(ValueError, match=r"at least two streams.*got ndarray"):
        JointSequenceClassifier(**TINY).fit(streams["a"], y)
    with pytest.raises(ValueError, match="got a mapping of 1 stream"):
        JointSequenceClassifier(**TINY).fit({"a": streams["a"]}, y)


def test_importing_fusion_does_not_import_torch() -> None:
    code = ("import sys, featurekit.fusion as fusion; fusion.fit_blender; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
