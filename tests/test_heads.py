"""Heads: splits inside training rows, each head on separable data, tiny data, search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from threadpoolctl import threadpool_limits

from featurekit.errors import ConfigError
from featurekit.fusion import fit_branch
from featurekit.learn.fitting import aligned_proba, fit_head
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.heads.logreg import LogRegHead
from featurekit.learn.heads.mlp import MLPHead
from featurekit.learn.heads.registry import HEADS, get_head_spec, make_head
from featurekit.learn.heads.xgb import XGBHead
from featurekit.learn.splits import early_stopping_split, inner_splits, validation_split
from featurekit.learn.tuning import tune_head


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """One BLAS/OpenMP thread, as in the benchmark; OpenMP spinning on a busy machine can
    otherwise make a tiny XGBoost fit take seconds."""
    with threadpool_limits(limits=1):
        yield


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


@pytest.mark.filterwarnings("error")
def test_inner_splits_of_groups_with_a_rare_class_cover_every_row_quietly() -> None:
    # One clip per group (label sets: FSD50K, mixtures) and a class seen once: scikit-learn
    # warned on every split; the rows are still all validated once.
    y = np.r_[np.zeros(20, dtype=int), 1, 2]
    splits = inner_splits(y, np.arange(22), n_splits=5)
    assert sorted(np.concatenate([val for _, val in splits]).tolist()) == list(range(22))


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


def stopping_head(head_class: type, **params: object) -> object:
    """A head that chooses its rounds or epochs on a validation split (opt-in for XGBoost)."""
    if head_class is XGBHead:
        params.setdefault("early_stopping", True)
    return head_class(**params)


def test_xgb_stops_early_on_a_validation_split() -> None:
    X, y = blobs(n=300, separation=6.0)
    head = XGBHead(n_estimators=150, early_stopping_rounds=5, early_stopping=True,
                   random_state=0).fit(X, y)
    assert head.n_rounds_ < 150


@pytest.fixture
def xgb_fit_calls(monkeypatch: pytest.MonkeyPatch) -> list:
    """Rows and eval_set of every XGBClassifier.fit the heads make."""
    import featurekit.learn.heads.xgb as xgb_module

    calls: list = []
    original_fit = xgb_module.XGBClassifier.fit

    def fit_spy(self: object, X_fit: np.ndarray, y_fit: np.ndarray, **kwargs: object) -> object:
        calls.append((X_fit.shape[0], kwargs.get("eval_set")))
        return original_fit(self, X_fit, y_fit, **kwargs)

    monkeypatch.setattr(xgb_module.XGBClassifier, "fit", fit_spy)
    return calls


def test_xgb_default_boosts_all_rows_for_a_fixed_number_of_rounds(xgb_fit_calls: list) -> None:
    X, y, groups = recordings_problem()
    calls = xgb_fit_calls
    head = XGBHead(n_estimators=30, random_state=0).fit(X, y, groups=groups)
    assert calls == [(X.shape[0], None)]
    assert head.validation_rows_ is None and head.n_rounds_ == 30
    assert head.model_.get_booster().num_boosted_rounds() == 30


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


# --------------------------------------------------------------------------------------------
# Early stopping: which rows choose the rounds/epochs
# --------------------------------------------------------------------------------------------

def recordings_problem(n_groups: int = 40, per_group: int = 4, n_classes: int = 4,
                       seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blobs where every group (recording) holds clips of one class, like real recordings."""
    rng = np.random.default_rng(seed)
    group_class = np.arange(n_groups) % n_classes
    groups = np.repeat(np.arange(n_groups) * 7 + 3, per_group)  # ids are not positions
    y = np.repeat(group_class, per_group)
    centres = rng.normal(size=(n_classes, 6)) * 3.0
    return centres[y] + rng.normal(size=(y.size, 6)), y, groups


def _assert_whole_groups(groups: np.ndarray, val: np.ndarray) -> None:
    held_out = set(groups[val])
    kept = set(groups[np.setdiff1d(np.arange(groups.size), val)])
    assert held_out and not held_out & kept
    for group in held_out:  # every row of a held-out group is held out
        assert set(np.flatnonzero(groups == group)) <= set(val.tolist())


@pytest.mark.parametrize("head_class", [XGBHead, MLPHead])
def test_early_stopping_holds_out_whole_groups(head_class: type) -> None:
    X, y, groups = recordings_problem()
    head = stopping_head(head_class, random_state=0).fit(X, y, groups=groups)
    train, val = validation_split(y, groups, fraction=head.validation_fraction, random_state=0)
    np.testing.assert_array_equal(head.validation_rows_, val)
    assert head.validation_kind_ == "groups"
    _assert_whole_groups(groups, head.validation_rows_)
    assert set(y[train]) == set(y)
    curve = head.validation_curve_
    assert len(curve["logloss"]) == len(curve["error"]) >= 1


def test_xgb_scores_rounds_on_exactly_the_held_out_rows(xgb_fit_calls: list) -> None:
    X, y, groups = recordings_problem()
    calls = xgb_fit_calls
    head = XGBHead(early_stopping=True, random_state=1).fit(X, y, groups=groups)
    (n_first, eval_set), (n_final, no_eval) = calls  # first model, then the refit
    val = head.validation_rows_
    np.testing.assert_array_equal(eval_set[0][0], X[val].astype(np.float32))
    assert n_first == X.shape[0] - val.size
    assert n_final == X.shape[0] and no_eval is None  # refit on all training rows
    assert head.model_.get_booster().num_boosted_rounds() == head.n_rounds_


def test_mlp_scores_epochs_on_exactly_the_held_out_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import featurekit.learn.heads.mlp as mlp_module

    X, y, groups = recordings_problem()
    seen: list = []
    original = mlp_module._Network.train_with_validation

    def spy(self: object, Z: np.ndarray, encoded: np.ndarray, Z_val: np.ndarray,
            encoded_val: np.ndarray) -> object:
        seen.append((Z.shape[0], encoded_val.copy()))
        return original(self, Z, encoded, Z_val, encoded_val)

    monkeypatch.setattr(mlp_module._Network, "train_with_validation", spy)
    head = MLPHead(random_state=2, max_iter=30).fit(X, y, groups=groups)
    ((n_train, encoded_val),) = seen
    val = head.validation_rows_
    assert n_train == X.shape[0] - val.size
    np.testing.assert_array_equal(encoded_val, y[val])
    _assert_whole_groups(groups, val)


@pytest.mark.parametrize("head_class", [XGBHead, MLPHead])
def test_without_groups_early_stopping_is_a_stratified_clip_split(head_class: type) -> None:
    X, y = blobs(n=200, n_classes=4, seed=4)
    head = stopping_head(head_class, random_state=3, validation_fraction=0.2).fit(X, y)
    assert np.bincount(y[head.validation_rows_]).tolist() == [10, 10, 10, 10]


@pytest.mark.parametrize("head_class", [XGBHead, MLPHead])
def test_seeded_heads_are_deterministic_with_groups(head_class: type) -> None:
    X, y, groups = recordings_problem(seed=6)
    first = stopping_head(head_class, random_state=11).fit(X, y, groups=groups)
    second = stopping_head(head_class, random_state=11).fit(X, y, groups=groups)
    np.testing.assert_array_equal(first.validation_rows_, second.validation_rows_)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    other = stopping_head(head_class, random_state=12).fit(X, y, groups=groups)
    assert not np.array_equal(first.validation_rows_, other.validation_rows_)


@pytest.mark.parametrize("head_class", [XGBHead, MLPHead])
@pytest.mark.parametrize("refit", [True, False])
def test_heads_learn_with_recording_groups_either_way(head_class: type, refit: bool) -> None:
    X, y, groups = recordings_problem(n_groups=60, seed=7)
    train = np.isin(groups, np.unique(groups)[:45])
    head = stopping_head(head_class, random_state=0, refit=refit)
    head.fit(X[train], y[train], groups=groups[train])
    assert np.mean(head.predict(X[~train]) == y[~train]) > 0.9
    size = head.n_rounds_ if head_class is XGBHead else head.n_iter_
    curve = head.validation_curve_["logloss"]
    assert 1 <= size <= curve.size  # chosen on the curve the first model ran


def test_stopping_metric_error_breaks_ties_by_log_loss() -> None:
    from featurekit.learn.heads.base import stopping_point

    losses = [0.9, 0.7, 0.5, 0.6]
    errors = [0.3, 0.1, 0.1, 0.1]
    assert stopping_point(losses, errors, "error") == 2
    assert stopping_point([0.9, 0.4, 0.5], [0.3, 0.2, 0.1], "logloss") == 1
    with pytest.raises(ConfigError, match="stopping_metric"):
        XGBHead(stopping_metric="auc").fit(*blobs(n=40))


def test_mlp_without_validation_split_trains_to_convergence() -> None:
    X, y = blobs(n=10, n_classes=5, seed=2)
    head = MLPHead(random_state=0, max_iter=50).fit(X, y)
    assert head.validation_rows_ is None and head.validation_curve_ == {}
    assert 1 <= head.n_iter_ <= 50
    assert MLPHead(random_state=0, early_stopping=False).fit(*blobs()).validation_rows_ is None


def test_validation_split_many_groups_is_stratified_by_group_class() -> None:
    y = np.repeat(np.arange(300) % 3, 2)  # 300 groups of 2 clips, one class each
    groups = np.repeat(np.arange(300), 2)
    train, val = validation_split(y, groups, fraction=0.1, random_state=0)
    _assert_whole_groups(groups, val)
    assert np.bincount(y[val]).tolist() == [20, 20, 20]
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(600))


def test_tune_head_goes_through_select_by_inner_cv(monkeypatch: pytest.MonkeyPatch) -> None:
    import featurekit.learn.tuning as tuning_module
    from featurekit.learn.selection import select_by_inner_cv

    calls: list = []

    def spy(candidates: list, build: object, X: object, y: np.ndarray, splits: list,
            **kwargs: object) -> object:
        calls.append((candidates, splits, kwargs))
        return select_by_inner_cv(candidates, build, X, y, splits, **kwargs)

    monkeypatch.setattr(tuning_module, "select_by_inner_cv", spy)
    X, y = blobs(n=60)
    groups = np.arange(60) // 20
    assert tune_head("logreg", X, y, groups) in [{"C": c} for c in (0.01, 0.1, 1.0, 10.0)]
    ((candidates, splits, kwargs),) = calls
    assert len(candidates) == 4 and len(splits) == 3
    np.testing.assert_array_equal(kwargs["groups"], groups)


# --------------------------------------------------------------------------------------------
# Early stopping: the kind of split, and twins that stop early as their member does
# --------------------------------------------------------------------------------------------

def test_early_stopping_split_auto_is_validation_split_and_says_its_kind() -> None:
    _, y, groups = recordings_problem()
    split, kind = early_stopping_split(y, groups, fraction=0.15, random_state=0)
    expected = validation_split(y, groups, fraction=0.15, random_state=0)
    assert kind == "groups"
    for got, want in zip(split, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    # Too few groups: a stratified share of the clips; too few clips: nothing.
    assert early_stopping_split(y, groups[:40] % 2, fraction=0.15, random_state=0)[1] == "clips"
    assert early_stopping_split(np.arange(10) % 5, None, fraction=0.15,
                                random_state=0) == (None, "none")
    with pytest.raises(ConfigError, match="validation_kind"):
        early_stopping_split(y, groups, fraction=0.15, random_state=0, kind="recordings")


def test_an_imposed_kind_is_drawn_where_auto_would_fall_back() -> None:
    # Six groups (under round(1 / 0.15) = 7): auto holds out clips; imposed, whole groups.
    y = np.repeat(np.arange(6) % 3, 4)
    groups = np.repeat(np.arange(6), 4)
    assert early_stopping_split(y, groups, fraction=0.15, random_state=0)[1] == "clips"
    (train, val), kind = early_stopping_split(y, groups, fraction=0.15, random_state=0,
                                              kind="groups")
    assert kind == "groups"
    _assert_whole_groups(groups, val)
    assert set(y[train]) == {0, 1, 2}
    # Five clips of five classes and one more: auto has no split; imposed clips keep a clip of
    # every class for training.
    tiny = np.array([0, 1, 2, 3, 4, 0])
    assert early_stopping_split(tiny, None, fraction=0.15, random_state=0)[1] == "none"
    (train, val), kind = early_stopping_split(tiny, None, fraction=0.15, random_state=0,
                                              kind="clips")
    assert kind == "clips" and val.size == 1 and tiny[val[0]] == 0
    assert set(tiny[train]) == set(tiny)
    assert early_stopping_split(y, groups, fraction=0.15, random_state=0,
                                kind="none") == (None, "none")
    # Where groups cannot go without taking a class from training, clips are held out.
    assert early_stopping_split(np.array([0, 0, 1, 1]), np.array([5, 5, 6, 6]),
                                fraction=0.5, random_state=0, kind="groups")[1] == "clips"


@pytest.mark.parametrize("head_class", [XGBHead, MLPHead])
def test_inner_twins_stop_early_on_their_members_kind_of_split(head_class: type) -> None:
    # 12 recordings: the member holds out whole ones (at least round(1 / 0.1) = 10); each twin
    # trains on 6 and, left to itself, would hold out clips of recordings it trains on.
    X, y, groups = recordings_problem(n_groups=12, per_group=4, n_classes=3)
    small = {"max_iter": 20} if head_class is MLPHead else {"n_estimators": 10}
    head = stopping_head(head_class, validation_fraction=0.1, **small)
    splits = inner_splits(y, groups, n_splits=2, random_state=0)
    fitted = fit_branch(head, X, y, groups, n_classes=3, seeds=(0,), splits=splits,
                        keep_twins=True)
    (member,), (twins,) = fitted.members, fitted.twins
    assert member.validation_kind_ == "groups"
    assert fitted.validation_kinds == ["groups"] * 3
    for twin, (train, _) in zip(twins, splits, strict=True):
        assert twin.validation_kind_ == "groups"
        _assert_whole_groups(groups[train], twin.validation_rows_)
        kept = np.setdiff1d(np.arange(train.size), twin.validation_rows_)
        assert set(y[train][kept]) == {0, 1, 2}
    # A member without early stopping: its twins have none either.
    plain = fit_branch(MLPHead(early_stopping=False, max_iter=5), X, y, groups, n_classes=3,
                       splits=splits)
    assert plain.validation_kinds == ["none"] * 3
