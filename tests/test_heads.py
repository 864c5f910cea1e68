"""Heads: splits inside training rows, each head on separable data, tiny data, search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyClassifier

from featurekit.errors import ConfigError
from featurekit.heads import (
    HEADS,
    HeadSpec,
    LogRegHead,
    MLPHead,
    XGBHead,
    aligned_proba,
    fit_head,
    get_head_spec,
    inner_splits,
    make_head,
    tune_head,
    validation_split,
)


def blobs(n: int = 150, n_classes: int = 3, width: int = 6, seed: int = 0,
          separation: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    centres = rng.normal(size=(n_classes, width)) * separation
    return centres[y] + rng.normal(size=(n, width)), y


def test_inner_splits_keep_groups_apart_and_cover_every_row() -> None:
    y = np.arange(60) % 3
    groups = np.repeat([1, 2, 3, 4], 15)
    splits = inner_splits(y, groups, n_splits=3, random_state=0)
    assert len(splits) == 3
    covered = np.concatenate([val for _, val in splits])
    assert sorted(covered.tolist()) == list(range(60))
    for train, val in splits:
        assert not set(groups[train]) & set(groups[val])


def test_inner_splits_never_exceed_the_number_of_groups() -> None:
    y = np.arange(40) % 2
    assert len(inner_splits(y, np.repeat([5, 7], 20), n_splits=5)) == 2


def test_inner_splits_stratify_without_groups_and_survive_rare_classes() -> None:
    y = np.arange(36) % 3
    for train, val in inner_splits(y, None, n_splits=3):
        assert np.bincount(y[val]).tolist() == [4, 4, 4]
        assert len(train) == 24
    rare = np.array([0, 0, 0, 0, 1, 1, 1, 2])  # class 2 has one clip: no stratification
    splits = inner_splits(rare, None, n_splits=3)
    assert sorted(np.concatenate([val for _, val in splits]).tolist()) == list(range(8))


def test_inner_splits_reject_bad_requests() -> None:
    with pytest.raises(ConfigError, match="at least 2 splits"):
        inner_splits(np.arange(10) % 2, n_splits=1)
    with pytest.raises(ConfigError, match="2 training rows"):
        inner_splits(np.array([1]))


def test_validation_split_holds_out_whole_groups_when_there_are_enough() -> None:
    y = np.arange(160) % 4
    groups = np.repeat(np.arange(8), 20)
    train, val = validation_split(y, groups, fraction=0.15, random_state=0)
    assert not set(groups[train]) & set(groups[val])
    assert set(y[train]) == {0, 1, 2, 3}


def test_validation_split_is_stratified_or_absent_on_small_data() -> None:
    y = np.arange(100) % 4
    train, val = validation_split(y, None, fraction=0.2, random_state=0)
    assert np.bincount(y[val]).tolist() == [5, 5, 5, 5]
    assert len(train) == 80
    assert validation_split(np.arange(10) % 5, None, fraction=0.15) is None


@pytest.mark.parametrize("name", sorted(HEADS))
def test_each_head_learns_separable_classes(name: str) -> None:
    X, y = blobs()
    labels = np.array(["cat", "dog", "eel"])[y]
    head = fit_head(make_head(name, random_state=0), X[:100], labels[:100])
    assert head.classes_.tolist() == ["cat", "dog", "eel"]
    proba = head.predict_proba(X[100:])
    assert proba.shape == (50, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert np.mean(head.predict(X[100:]) == labels[100:]) > 0.9


@pytest.mark.parametrize("name", sorted(HEADS))
def test_each_head_takes_nan_and_empty_columns(name: str) -> None:
    X, y = blobs(seed=1)
    X[::7, 0] = np.nan
    X[:, 3] = np.nan  # a descriptor undefined for every clip
    head = fit_head(make_head(name, random_state=0), X[:100], y[:100],
                    groups=np.arange(100) % 4)
    assert np.isfinite(head.predict_proba(X[100:])).all()
    assert np.mean(head.predict(X[100:]) == y[100:]) > 0.8


@pytest.mark.parametrize("name", sorted(HEADS))
def test_each_head_fits_ten_clips(name: str) -> None:
    X, y = blobs(n=10, n_classes=5, seed=2)
    head = fit_head(make_head(name, random_state=0), X, y)
    assert head.predict_proba(X).shape == (10, 5)


def test_heads_refuse_a_single_class_and_infinite_values() -> None:
    X, _ = blobs(n=20)
    with pytest.raises(ValueError, match="at least 2 classes"):
        LogRegHead().fit(X, np.zeros(20))
    X[0, 0] = np.inf
    with pytest.raises(ValueError):
        XGBHead().fit(X, np.arange(20) % 2)


def test_xgb_stops_early_on_a_validation_split() -> None:
    X, y = blobs(n=300, separation=6.0)
    head = XGBHead(n_estimators=150, early_stopping_rounds=5, random_state=0).fit(X, y)
    assert head.n_rounds_ < 150


@pytest.mark.parametrize("head_class", [XGBHead, MLPHead])
def test_seeded_heads_are_deterministic(head_class: type) -> None:
    X, y = blobs(seed=3, separation=1.0)
    first = head_class(random_state=7).fit(X, y).predict_proba(X)
    second = head_class(random_state=7).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)


def test_heads_follow_scikit_learn_parameter_conventions() -> None:
    head = XGBHead(max_depth=3, random_state=1)
    copy = clone(head)
    assert copy.get_params() == head.get_params()
    assert not hasattr(copy, "classes_")
    assert MLPHead(alpha=0.5).set_params(alpha=0.1).alpha == 0.1


def test_registry_lookup_and_seeding() -> None:
    assert get_head_spec("xgb").seeded and not get_head_spec("logreg").seeded
    assert make_head("mlp", random_state=4).random_state == 4
    assert isinstance(make_head("logreg", random_state=4), LogRegHead)
    with pytest.raises(ConfigError, match="unknown head 'svm'"):
        get_head_spec("svm")


def test_aligned_proba_fills_classes_a_head_never_saw() -> None:
    X, y = blobs(n=60, n_classes=3)
    keep = y != 1
    head = LogRegHead().fit(X[keep], y[keep])
    proba = aligned_proba(head, X, np.arange(4))
    assert proba.shape == (60, 4)
    assert np.all(proba[:, [1, 3]] == 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_tune_head_picks_the_better_candidate_by_inner_cv() -> None:
    X, y = blobs(n=90, separation=1.5)

    def factory(kind: str) -> object:
        return DummyClassifier() if kind == "constant" else LogRegHead()

    spec = HeadSpec("probe", factory, seeded=False,
                    param_grid={"kind": ["constant", "logistic"]})
    assert tune_head(spec, X, y, np.arange(90) // 30, n_splits=3) == {"kind": "logistic"}
    assert tune_head(HeadSpec("logreg", LogRegHead, seeded=False), X, y) == {}
