"""Branches: the columns a branch reads, and its seeded heads with their out-of-fold twins.

A *branch* is a group of columns (a descriptor family, a pretrained embedding) with a head of
its own. :func:`fit_branch` fits one member per seed on all given rows and, with inner splits,
one twin per member and split whose predictions on the split's validation rows are the
branch's *out-of-fold* probabilities -- what every learned fusion is trained on, so no
second-level learner sees a prediction made on a row its head was trained on. A twin stops
early the way its member did: the member's early-stopping split kind (whole groups, clips or
none, decided on all given rows) is imposed on its twins, whose fewer rows alone could
decide otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featurekit.errors import ConfigError
from featurekit.learn.fitting import aligned_proba, clone_head, fit_head, take_rows
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.heads.registry import get_head_spec, make_head
from featurekit.learn.splits import Split
from featurekit.learn.tuning import tune_head

#: A branch's columns: a column-name prefix, a list of column names, or positions.
Selector = str | Sequence[str] | Sequence[int] | np.ndarray
#: A head: a registry name, a :class:`~featurekit.learn.heads.base.HeadSpec`, or an unfitted
# estimator.
Head = str | HeadSpec | Any



# --------------------------------------------------------------------------------------------
# Column selection
# --------------------------------------------------------------------------------------------

def resolve_columns(selector: Selector, columns: Sequence[str] | None,
                    n_features: int) -> np.ndarray:
    """Positions of a branch's columns.

    Parameters
    ----------
    selector : str, sequence of str, sequence of int or boolean mask
        A prefix (``"pitch."``), exact column names, positions, or a mask of length
        ``n_features``. Names and prefixes need ``columns``.
    columns : sequence of str, optional
        Column names of the input (``None`` for a plain array).
    n_features : int
        Number of input columns.

    Returns
    -------
    np.ndarray of int
        Column positions, in input order for prefixes, in the given order otherwise.
    """
    if isinstance(selector, str):
        if columns is None:
            raise ConfigError(f"column prefix {selector!r} needs a DataFrame input")
        positions = np.flatnonzero([str(c).startswith(selector) for c in columns])
        if positions.size == 0:
            raise ConfigError(f"no column starts with {selector!r}")
        return positions
    values = np.asarray(selector)
    if values.dtype == bool:
        if values.shape != (n_features,):
            raise ConfigError(f"boolean column mask has length {values.size}, "
                              f"expected {n_features}")
        positions = np.flatnonzero(values)
    elif values.dtype.kind in "iu":
        positions = values.astype(int).ravel()
        if positions.size and (positions.min() < -n_features or positions.max() >= n_features):
            raise ConfigError(f"column positions out of range for {n_features} columns")
        positions = positions % n_features if n_features else positions
    else:
        if columns is None:
            raise ConfigError("column names need a DataFrame input")
        index = {str(c): i for i, c in enumerate(columns)}
        missing = [str(c) for c in values.ravel() if str(c) not in index]
        if missing:
            raise ConfigError(f"unknown columns: {', '.join(missing[:5])}"
                              + (" ..." if len(missing) > 5 else ""))
        positions = np.array([index[str(c)] for c in values.ravel()], dtype=int)
    if positions.size == 0:
        raise ConfigError("a branch selects no column")
    return positions


# --------------------------------------------------------------------------------------------
# One branch: seeded members and their inner out-of-fold probabilities
# --------------------------------------------------------------------------------------------

def is_seeded(head: Head) -> bool:
    """Whether ``head`` depends on a seed (runs once per seed) or is deterministic."""
    if isinstance(head, str | HeadSpec):
        return get_head_spec(head).seeded
    return "random_state" in head.get_params()


def build_head(head: Head, *, random_state: int | None, params: Mapping[str, Any]) -> Any:
    """An unfitted head from a name, a spec or a template estimator."""
    if isinstance(head, str | HeadSpec):
        return make_head(head, random_state=random_state, **params)
    return clone_head(head, random_state=random_state).set_params(**params)


def _twin_of(member: Any, head: Head, *, random_state: int | None,
             params: Mapping[str, Any]) -> Any:
    """An unfitted inner twin of a fitted ``member``: the same head, seed and parameters, with
    the member's early-stopping split kind imposed (``validation_kind``) where the head has
    one, so that twin and member stop early alike."""
    twin = build_head(head, random_state=random_state, params=params)
    kind = getattr(member, "validation_kind_", None)
    if kind is not None and "validation_kind" in twin.get_params():
        twin.set_params(validation_kind=kind)
    return twin


def _validation_kind(fitted: Any) -> str:
    """What a fitted head's early-stopping split held out (``"none"`` for a head without)."""
    return getattr(fitted, "validation_kind_", "none")


def member_seeds(head: Head, seeds: Sequence[int]) -> list[int]:
    """The seeds a head actually runs with: all of them, or the first for a deterministic one."""
    return list(seeds) if is_seeded(head) else list(seeds[:1])


@dataclass
class FittedBranch:
    """Members of one branch and, when asked for, their inner out-of-fold probabilities.

    Attributes
    ----------
    members : list
        One fitted head per seed (one for a deterministic head), trained on all given rows.
    oof : np.ndarray or None, shape (n_members, n_rows, n_classes)
        Probabilities each member's twin predicted for rows it was not trained on (NaN for a
        row no split validates: it has no out-of-fold prediction).
    params : dict
        Hyper-parameters of the members (the search result when tuning was on; each twin
        ran a search of its own, see :func:`fit_branch`).
    twins : list of list, optional
        With ``keep_twins``: per member, the fitted twin of each inner split (in split order).
    validation_kinds : list of str
        What the early-stopping split of every fit held out (each member followed by its twins):
        ``"groups"``, ``"clips"`` or ``"none"`` (also a head without early stopping).
    """

    members: list[Any]
    oof: np.ndarray | None
    params: dict[str, Any]
    twins: list[list[Any]] | None = None
    validation_kinds: list[str] = field(default_factory=list)


def fit_branch(head: Head, X: Any, y: np.ndarray, groups: np.ndarray | None = None, *,
               n_classes: int, seeds: Sequence[int] = (0,), splits: Sequence[Split] | None = None,
               tune: bool = False, tune_splits: int = 3, tune_random_state: int | None = 0,
               keep_twins: bool = False, refit: bool = True) -> FittedBranch:
    """Fit one head per seed on ``X`` and, with ``splits``, its inner out-of-fold twins, each
    twin stopping early on the kind of split its member used (whole groups, clips or none).

    Without ``refit`` there are no twins: ``splits`` is one fixed split (an official train /
    validation split), each member is fitted on its training rows only and predicts its
    validation rows, which are the out-of-fold probabilities.

    Parameters
    ----------
    head : str, HeadSpec or estimator
    X : np.ndarray, shape (n_rows, n_features), or mapping of str to arrays
        Training rows of the branch's columns (a multi-stream sequence head takes a mapping
        of stream name to sequences of the same rows).
    y : np.ndarray of int, shape (n_rows,)
        Class indices ``0 .. n_classes - 1``.
    groups : np.ndarray, optional
        Fold of each training row (used by the heads' early-stopping split and the search).
    n_classes : int
        Number of classes of the task (columns of every probability array).
    seeds : sequence of int
        One member per seed.
    splits : sequence of (train, validation) index pairs, optional
        Inner splits of the training rows; when given, out-of-fold probabilities are computed.
    tune : bool
        Run :func:`featurekit.learn.tuning.tune_head` first (registry heads only): once on all
        rows for the members, and once inside each split's training rows for that split's
        twins (nested), so that no out-of-fold probability comes from a head whose
        hyper-parameters were chosen with its validation rows' labels.
    tune_splits, tune_random_state :
        Inner cross-validation of each search.
    keep_twins : bool
        Keep the fitted out-of-fold twins (e.g. to embed their validation rows); without
        ``refit``, the members stand for them.
    refit : bool
        Fit the members on all rows besides the twins (``True``), or fit them on the one
        split's training rows and use them as their own twins (``False``).

    Raises
    ------
    ConfigError
        Tuning an estimator instance, or ``refit=False`` without exactly one split.
    """
    if tune and not isinstance(head, str | HeadSpec):
        raise ConfigError("tuning needs a registry head (a name or a HeadSpec)")
    if not refit and (splits is None or len(splits) != 1):
        raise ConfigError("without refit the members are fitted on the training rows of one "
                          f"split; got {0 if splits is None else len(splits)} splits")

    def search(rows: np.ndarray) -> dict[str, Any]:
        """Hyper-parameters chosen on ``rows`` alone; none without tuning."""
        if not tune:
            return {}
        return tune_head(head, take_rows(X, rows), y[rows],
                         None if groups is None else groups[rows], n_splits=tune_splits,
                         random_state=tune_random_state)

    def fit_rows(estimator: Any, rows: np.ndarray) -> Any:
        """``estimator`` fitted on ``rows`` alone (a twin, or a member without refit)."""
        return fit_head(estimator, take_rows(X, rows), y[rows],
                        None if groups is None else groups[rows])

    classes = np.arange(n_classes)
    members, oof, twins, kinds = [], [], [], []
    if not refit:
        (train, val), = splits
        params = search(train)
        for seed in member_seeds(head, seeds):
            member = fit_rows(build_head(head, random_state=seed, params=params), train)
            member_oof = np.full((len(y), n_classes), np.nan)
            member_oof[val] = aligned_proba(member, take_rows(X, val), classes)
            members.append(member)
            kinds.append(_validation_kind(member))
            oof.append(member_oof)
            twins.append([member])
        return FittedBranch(members, np.stack(oof), params, twins if keep_twins else None,
                            kinds)
    params = search(np.arange(len(y)))
    # The search does not depend on the member's seed: one per split serves every member.
    twin_params = [search(train) for train, _ in splits or ()]
    for seed in member_seeds(head, seeds):
        member = fit_head(build_head(head, random_state=seed, params=params), X, y, groups)
        members.append(member)
        kinds.append(_validation_kind(member))
        if splits is None:
            continue
        member_oof = np.full((len(y), n_classes), np.nan)
        member_twins = []
        for (train, val), split_params in zip(splits, twin_params, strict=True):
            twin = fit_rows(_twin_of(member, head, random_state=seed, params=split_params),
                            train)
            member_oof[val] = aligned_proba(twin, take_rows(X, val), classes)
            member_twins.append(twin)
            kinds.append(_validation_kind(twin))
        oof.append(member_oof)
        twins.append(member_twins)
    return FittedBranch(members, np.stack(oof) if splits is not None else None, params,
                        twins if keep_twins and splits is not None else None, kinds)


def predict_members(members: Sequence[Any], X: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities of each member, shape (n_members, n_rows, n_classes)."""
    classes = np.arange(n_classes)
    return np.stack([aligned_proba(member, X, classes) for member in members])


__all__ = ["FittedBranch", "Head", "Selector", "build_head", "fit_branch", "is_seeded",
           "member_seeds", "predict_members", "resolve_columns"]
