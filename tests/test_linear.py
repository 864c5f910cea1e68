"""The joint multi-label logistic regression: its loss and gradient, agreement with
scikit-learn's one-vs-rest, constant classes, input checks, and its use by the logistic head and
the stacking fusion (small synthetic data, seconds in all)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from featurekit.errors import ConfigError
from featurekit.fusion.rules import StackingFusion, rule_parameters
from featurekit.learn.heads.logreg import LogRegHead
from featurekit.learn.linear import MultiLabelLogisticRegression, loss_and_gradient
from featurekit.learn.parameters import n_parameters
from featurekit.learn.selection import oof_score
from featurekit.learn.splits import inner_splits, stratification_labels


def label_data(n: int = 200, d: int = 8, k: int = 4,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard normal X; each label a noisy linear function of X (overlapping classes)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = (X @ rng.normal(size=(d, k)) + 2.0 * rng.normal(size=(n, k)) > 1.0).astype(int)
    assert np.all((Y.mean(axis=0) > 0) & (Y.mean(axis=0) < 1))
    return X, Y


def one_vs_rest(C: float, X: np.ndarray, Y: np.ndarray, **tight: float) -> OneVsRestClassifier:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Label .* present in all training")
        return OneVsRestClassifier(LogisticRegression(C=C, **tight)).fit(X, Y)


def class_objectives(coef: np.ndarray, intercept: np.ndarray, X: np.ndarray, Y: np.ndarray,
                     C: float) -> np.ndarray:
    """scikit-learn's objective of each class: ``C * sum_i logloss + ||w||^2 / 2``."""
    Z = X @ coef.T + intercept
    return C * np.sum(np.logaddexp(0.0, Z) - Y * Z, axis=0) + 0.5 * np.sum(coef ** 2, axis=1)


TIGHT = {"tol": 1e-10, "max_iter": 10_000}


def test_gradient_matches_finite_differences() -> None:
    X, Y = label_data(n=40, d=5, k=3)
    params = np.random.default_rng(1).normal(size=3 * 6) * 0.5
    loss, gradient = loss_and_gradient(params, X, Y.astype(float), 0.3)
    step = 1e-6
    numeric = np.array([(loss_and_gradient(params + step * e, X, Y.astype(float), 0.3)[0]
                         - loss_and_gradient(params - step * e, X, Y.astype(float), 0.3)[0])
                        / (2 * step) for e in np.eye(params.size)])
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8)
    # The loss itself: mean binary log-loss summed over classes, coefficients penalised only.
    P = params.reshape(3, 6)
    proba = expit(X @ P[:, :5].T + P[:, 5])
    expected = (-np.mean(Y * np.log(proba) + (1 - Y) * np.log(1 - proba), axis=0).sum()
                + 0.15 * np.sum(P[:, :5] ** 2))
    assert loss == pytest.approx(expected, rel=1e-12)


def test_agrees_with_one_vs_rest_at_strong_regularisation() -> None:
    X, Y = label_data()
    ovr = one_vs_rest(0.01, X, Y, **TIGHT)
    joint = MultiLabelLogisticRegression(C=0.01, **TIGHT).fit(X, Y)
    coef = np.vstack([each.coef_ for each in ovr.estimators_])
    intercept = np.array([each.intercept_[0] for each in ovr.estimators_])
    scale = np.abs(coef).max()
    np.testing.assert_allclose(joint.coef_, coef, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(joint.intercept_, intercept, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(joint.predict_proba(X), ovr.predict_proba(X), atol=1e-4)
    assert joint.predict_proba(X).shape == Y.shape and 0 < joint.n_iter_ < TIGHT["max_iter"]


def test_reaches_one_vs_rests_objective_at_weak_regularisation() -> None:
    X, Y = label_data(seed=2)
    ovr = one_vs_rest(1.0, X, Y, **TIGHT)
    joint = MultiLabelLogisticRegression(C=1.0, **TIGHT).fit(X, Y)
    coef = np.vstack([each.coef_ for each in ovr.estimators_])
    intercept = np.array([each.intercept_[0] for each in ovr.estimators_])
    np.testing.assert_allclose(class_objectives(joint.coef_, joint.intercept_, X, Y, 1.0),
                               class_objectives(coef, intercept, X, Y, 1.0), rtol=1e-6)


def test_a_class_without_positives_or_negatives_is_predicted_constant() -> None:
    X, Y = label_data(k=3)
    padded = np.column_stack([Y[:, 0], np.zeros(len(Y), int), Y[:, 1], np.ones(len(Y), int),
                              Y[:, 2]])
    model = MultiLabelLogisticRegression(C=0.1).fit(X, padded)
    proba = model.predict_proba(X)
    assert model.constant_.tolist() == [False, True, False, True, False]
    assert np.all(proba[:, 1] == 0.0) and np.all(proba[:, 3] == 1.0)
    assert np.all(model.coef_[[1, 3]] == 0.0)
    np.testing.assert_array_equal(model.predict(X)[:, [1, 3]], [[0, 1]] * len(X))
    # The solvable classes are fitted exactly as without the constant ones (same solve) ...
    alone = MultiLabelLogisticRegression(C=0.1).fit(X, Y)
    np.testing.assert_array_equal(proba[:, [0, 2, 4]], alone.predict_proba(X))
    assert model.n_iter_ == alone.n_iter_
    # ... and the constants are one-vs-rest's.
    np.testing.assert_array_equal(proba[:, [1, 3]],
                                  one_vs_rest(0.1, X, padded).predict_proba(X)[:, [1, 3]])
    # Every class constant: nothing to solve.
    flat = MultiLabelLogisticRegression().fit(X, np.column_stack([np.zeros(len(X), int),
                                                                  np.ones(len(X), int)]))
    assert flat.n_iter_ == 0 and flat.predict_proba(X[:2]).tolist() == [[0.0, 1.0]] * 2


def test_fit_is_deterministic_and_predictions_agree() -> None:
    X, Y = label_data(seed=3)
    first = MultiLabelLogisticRegression(C=0.5).fit(X, Y)
    second = MultiLabelLogisticRegression(C=0.5).fit(X, Y)
    np.testing.assert_array_equal(first.coef_, second.coef_)
    np.testing.assert_array_equal(first.intercept_, second.intercept_)
    decision = first.decision_function(X)
    np.testing.assert_allclose(first.predict_proba(X), expit(decision))
    np.testing.assert_array_equal(first.predict(X), (decision >= 0).astype(int))
    assert first.classes_.tolist() == [0, 1, 2, 3] and first.n_features_in_ == 8


def test_reaching_max_iter_warns_like_scikit_learn() -> None:
    X, Y = label_data()
    with pytest.warns(ConvergenceWarning, match="1 iteration"):
        model = MultiLabelLogisticRegression(max_iter=1, tol=1e-12).fit(X, Y)
    assert model.n_iter_ == 1


@pytest.mark.parametrize(("params", "message"), [
    ({"C": 0.0}, "C must be"), ({"C": float("inf")}, "C must be"),
    ({"max_iter": 0}, "max_iter must be"), ({"max_iter": 2.5}, "max_iter must be"),
    ({"tol": -1.0}, "tol must be")])
def test_bad_parameters_are_refused(params: dict, message: str) -> None:
    X, Y = label_data(n=20)
    with pytest.raises(ConfigError, match=message):
        MultiLabelLogisticRegression(**params).fit(X, Y)


def test_bad_inputs_are_refused() -> None:
    X, Y = label_data(n=20)
    model = MultiLabelLogisticRegression()
    with pytest.raises(ValueError, match=r"multi-label target must be \(n_samples"):
        model.fit(X, Y[:, 0])  # class labels, not indicators
    with pytest.raises(ValueError, match="only 0 and 1"):
        model.fit(X, Y * 2)
    with pytest.raises(ValueError, match="X has 19 rows but Y has 20"):
        model.fit(X[:19], Y)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad, Y)
    with pytest.raises(NotFittedError):
        model.predict_proba(X)
    model.fit(X, Y)
    with pytest.raises(ValueError, match="features"):
        model.predict_proba(X[:, :3])
    with pytest.raises(ValueError, match="infinity"):
        model.predict_proba(np.where(bad > 0, np.inf, 0.0))


def test_the_logistic_head_fits_label_indicators_with_it() -> None:
    X, Y = label_data(n=160, seed=4)
    Y = np.column_stack([Y, np.zeros(len(Y), int)])  # a class without positives
    head = LogRegHead(C=0.1).fit(X, Y)
    model = head.pipeline_[-1]
    assert isinstance(model, MultiLabelLogisticRegression)
    proba = head.predict_proba(X[:30])
    assert proba.shape == (30, 5) and head.classes_.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(proba, model.predict_proba(head.pipeline_[:-1].transform(
        X[:30])))
    assert np.all(proba[:, 4] == 0.0)
    assert head.n_iter_ == model.n_iter_ > 0
    assert n_parameters(head) == 4 * (8 + 1) + 1  # the constant class counts its constant
    # The same regressions as one-vs-rest on the head's standardised inputs.
    ovr = one_vs_rest(0.1, head.pipeline_[:-1].transform(X), Y)
    np.testing.assert_allclose(proba, ovr.predict_proba(head.pipeline_[:-1].transform(X[:30])),
                               atol=1e-3)


def test_stacking_fuses_label_indicators_with_it() -> None:
    rng = np.random.default_rng(5)
    truth = (rng.random((240, 6)) < 0.3).astype(int)
    # Branch a knows classes 0-2, branch b classes 3-5; only a stacker reads both well.
    knows = np.arange(6) < 3
    a = np.where(knows, np.clip(0.6 * truth + 0.4 * rng.random(truth.shape), 0, 1),
                 rng.random(truth.shape))
    b = np.where(~knows, np.clip(0.6 * truth + 0.4 * rng.random(truth.shape), 0, 1),
                 rng.random(truth.shape))
    splits = inner_splits(stratification_labels(truth), n_splits=3)
    rule = StackingFusion().fit([a, b], truth, splits)
    assert rule.choice_.startswith("stacker") and rule.multilabel_
    assert isinstance(rule.stacker_, MultiLabelLogisticRegression)
    fused = rule.combine([a, b])
    assert fused.shape == truth.shape
    assert oof_score(truth, fused) > max(oof_score(truth, a), oof_score(truth, b)) + 0.2
    assert rule_parameters(rule) == 6 * (2 * 6 + 1)
