"""Plan: which systems a benchmark evaluates and which fits (work units) they need.

A *system* is a branch set, a head and a fusion (none for one branch), e.g.
``pitch+timbre/mlp/stacking``. A *unit* is one fit job: one head on one input (a branch, the
concatenated branches of early fusion, the streams of the joint model, or a neural branch with
the others' out-of-fold log-probabilities) for one outer fold and one repeat. Units are plain
data, so any executor can run them; late fusions, the blend and the ``auto`` selection need no
unit of their own: they are fitted from the units' outputs (:mod:`featurekit.benchmark.fuse`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from featurekit.benchmark.config import (
    HANDCRAFTED_FAMILIES,
    LATE_FUSIONS,
    NEURAL_AUTO,
    OOF_FEATURES,
    SEQUENCE_HEAD_NAMES,
    SINGLE_AUTO,
    BenchmarkConfig,
)
from featurekit.benchmark.data import is_neural
from featurekit.errors import ConfigError, DatasetError

#: Unit kinds: one branch, early fusion, the joint sequence model, out-of-fold features.
UNIT_KINDS = ("branch", "early", "joint", OOF_FEATURES)


def ablation_subsets(branches: Sequence[str]) -> dict[tuple[str, ...], list[str]]:
    """Branch subsets of the ablation and why each is there.

    Returns
    -------
    dict
        ``subset -> labels``: ``alone:<b>`` for each branch, ``handcrafted`` (all handcrafted
        branches, when two or more), ``all`` (two or more branches) and ``all_but:<b>`` (three
        or more). A subset reached for several reasons carries every label.
    """
    subsets: dict[tuple[str, ...], list[str]] = {}
    for name in branches:
        subsets.setdefault((name,), []).append(f"alone:{name}")
    handcrafted = tuple(name for name in branches if name in HANDCRAFTED_FAMILIES)
    if len(handcrafted) >= 2:
        subsets.setdefault(handcrafted, []).append("handcrafted")
    if len(branches) >= 2:
        subsets.setdefault(tuple(branches), []).append("all")
    if len(branches) >= 3:
        for name in branches:
            rest = tuple(other for other in branches if other != name)
            subsets.setdefault(rest, []).append(f"all_but:{name}")
    return subsets


def system_name(subset: Sequence[str], head: str, fusion: str | None) -> str:
    """``pitch/xgb`` for a single branch, ``pitch+timbre/mlp/stacking`` for a fusion."""
    return "/".join(["+".join(subset), head] + ([fusion] if fusion else []))


def oof_feature_target(subset: Sequence[str]) -> str | None:
    """The branch whose head reads the others' log-probabilities under ``oof_features``: the
    subset's only neural branch, beside at least one other branch."""
    neural = [name for name in subset if is_neural(name)]
    return neural[0] if len(neural) == 1 and len(subset) > 1 else None


def leave_one_fold_out(folds: np.ndarray, outer_folds: Sequence[int] | None = None
                       ) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Outer splits: each fold of ``outer_folds`` (default all) against all other folds.

    Returns
    -------
    list of (fold, train_index, test_index)
        In increasing fold order.
    """
    folds = np.asarray(folds)
    present = np.unique(folds)
    if present.size < 2:
        raise DatasetError(f"leave-one-fold-out needs at least 2 folds, found {present.tolist()}")
    chosen = present if outer_folds is None else np.unique(outer_folds)
    unknown = sorted(set(chosen.tolist()) - set(present.tolist()))
    if unknown:
        raise ConfigError(f"outer fold(s) {unknown} not in the data (folds present: "
                          f"{present.tolist()})")
    return [(int(fold), np.flatnonzero(folds != fold), np.flatnonzero(folds == fold))
            for fold in chosen]


@dataclass(frozen=True)
class System:
    """One evaluated system.

    Attributes
    ----------
    branches : tuple of str
    head : str
    fusion : str or None
        None for a single branch.
    roles : tuple of str
        Why its branch set is in the ablation (:func:`ablation_subsets`).
    """

    branches: tuple[str, ...]
    head: str
    fusion: str | None
    roles: tuple[str, ...]

    @property
    def name(self) -> str:
        return system_name(self.branches, self.head, self.fusion)


@dataclass(frozen=True)
class Unit:
    """One fit job of one outer fold and repeat.

    Attributes
    ----------
    fold, repeat : int
    head : str
    branches : tuple of str
        One branch (``kind="branch"``), or the branches it fuses.
    kind : str
        One of :data:`UNIT_KINDS`.
    inner : bool
        Also fit the inner out-of-fold twins (their probabilities teach late fusions and
        score ``auto`` candidates).
    """

    fold: int
    repeat: int
    head: str
    branches: tuple[str, ...]
    kind: str
    inner: bool


@dataclass(frozen=True)
class Plan:
    """Systems, and the units that produce them, in dependency stages.

    Attributes
    ----------
    outer : list of (fold, train_index, test_index)
    systems : list of System
    stages : list of list of Unit
        Stage 2 (``oof_features``) reads stage 1's out-of-fold probabilities.
    auto_candidates : list of str
        Systems over every branch, any requested head and fusion with an inner score.
    reference_candidates : list of str
        Single neural-branch systems (every single-branch system without a neural branch).
    reference : str
        ``neural-auto`` or ``single-auto``.
    """

    outer: list[tuple[int, np.ndarray, np.ndarray]]
    systems: list[System]
    stages: list[list[Unit]]
    auto_candidates: list[str]
    reference_candidates: list[str]
    reference: str

    @property
    def folds(self) -> list[int]:
        return [fold for fold, _, _ in self.outer]

    @property
    def units(self) -> list[Unit]:
        return [unit for stage in self.stages for unit in stage]


def make_plan(branches: Sequence[str], config: BenchmarkConfig, folds: np.ndarray, *,
              sequence_branches: Sequence[str] = (),
              outer: Sequence[tuple[int, np.ndarray, np.ndarray]] | None = None) -> Plan:
    """Every system of the ablation and the units they need.

    Parameters
    ----------
    branches : sequence of str
        Benchmark branches, in column order.
    config : BenchmarkConfig
    folds : np.ndarray of int
        Official fold of each clip.
    sequence_branches : sequence of str
        Branches with frame sequences (the only ones the sequence head runs on).
    outer : sequence of (fold, train_index, test_index), optional
        The outer splits; default :func:`leave_one_fold_out` of ``folds`` over
        ``config.outer_folds`` (:func:`featurekit.model.train` plans one split of its own).
    """
    outer = leave_one_fold_out(folds, config.outer_folds) if outer is None else list(outer)
    subsets = ablation_subsets(branches)
    everything = tuple(branches)
    late = [name for name in config.fusions if name in LATE_FUSIONS]

    def runs(head: str, subset: Sequence[str]) -> bool:
        return head not in SEQUENCE_HEAD_NAMES or all(b in sequence_branches for b in subset)

    systems: list[System] = []
    for subset, roles in subsets.items():
        for head in config.heads:
            if not runs(head, subset):
                continue
            sequence = head in SEQUENCE_HEAD_NAMES
            if len(subset) == 1:
                fusions: list[str | None] = [None]
            else:
                fusions = [name for name in config.fusions
                           if (name == "early" and not sequence)
                           or name in late
                           or (name == OOF_FEATURES and not sequence
                               and oof_feature_target(subset))
                           or (name in ("blend", "joint") and sequence)]
            systems += [System(subset, head, fusion, tuple(roles)) for fusion in fusions]
    if not systems:
        raise ConfigError("nothing to evaluate: no head applies to any branch (the sequence "
                          "head needs frame sequences)")

    # What needs inner out-of-fold predictions: the branches of every late fusion, blend and
    # oof_features system (they learn from them), and every auto / reference candidate (they
    # are scored by them).
    auto_candidates = [s.name for s in systems if s.branches == everything and s.fusion
                       and s.fusion != "blend"]
    neural = [b for b in branches if is_neural(b)]
    reference_pool = neural or list(branches)
    reference_candidates = [s.name for s in systems
                            if len(s.branches) == 1 and s.branches[0] in reference_pool]
    reference = NEURAL_AUTO if neural else SINGLE_AUTO

    stage1: dict[tuple[int, int, str, tuple[str, ...], str], bool] = {}
    stage2: dict[tuple[int, int, str, tuple[str, ...], str], bool] = {}
    for fold, _, _ in outer:
        for repeat in range(config.repeats):
            for system in systems:
                candidate = system.name in auto_candidates
                key = (fold, repeat, system.head)
                if system.fusion is None:
                    inner = stage1.get((*key, system.branches, "branch"), False)
                    stage1[(*key, system.branches, "branch")] = inner or candidate \
                        or system.name in reference_candidates
                    continue
                if system.fusion in ("early", "joint"):
                    stage1[(*key, system.branches, system.fusion)] = candidate
                    continue
                # Late rules, blend and oof_features read their branches' inner predictions.
                for name in system.branches:
                    if system.fusion == OOF_FEATURES and name == oof_feature_target(
                            system.branches):
                        continue
                    stage1[(*key, (name,), "branch")] = True
                if system.fusion == OOF_FEATURES:
                    stage2[(*key, system.branches, OOF_FEATURES)] = candidate
    stages = [[Unit(fold, repeat, head, subset, kind, inner)
               for (fold, repeat, head, subset, kind), inner in table.items()]
              for table in (stage1, stage2) if table]
    return Plan(outer=outer, systems=systems, stages=stages, auto_candidates=auto_candidates,
                reference_candidates=reference_candidates, reference=reference)
