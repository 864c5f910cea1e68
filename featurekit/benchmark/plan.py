"""Plan: which systems a benchmark evaluates and which fits (work units) they need.

A *system* is a branch set, a head and a fusion (none for one branch), e.g.
``pitch+timbre/mlp/stacking``. A *unit* is one fit job: one head on one input (a branch, the
concatenated branches of early fusion, the streams of the joint model, or a neural branch with
the others' out-of-fold log-probabilities) for one outer fold and one repeat. Units are plain
data, so any executor can run them; late fusions, the blend and the ``auto`` selection need no
unit of their own: they are fitted from the units' outputs (:mod:`featurekit.benchmark.fuse`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from featurekit.benchmark.ablation import (
    ablation_subsets,
    handcrafted_with_each_neural,
    neural_together,
)
from featurekit.benchmark.config import (
    AUTO,
    LATE_FUSIONS,
    NEURAL_AUTO,
    OOF_FEATURES,
    SINGLE_AUTO,
    SINGLE_BRANCH_AUTO,
    BenchmarkConfig,
    selection_name,
    unit_head,
)
from featurekit.errors import ConfigError, DatasetError
from featurekit.names import (
    E2E_BRANCH,
    E2E_HEAD,
    LEAVE_ONE_FOLD_OUT,
    SEQUENCE_HEAD_NAMES,
    TRAIN_VAL_EVAL,
    is_neural,
)

#: Unit kinds: one branch, early fusion, the joint sequence model, out-of-fold features.
UNIT_KINDS = ("branch", "early", "joint", OOF_FEATURES)


def one_group_subsets(branches: Sequence[str]) -> tuple[list[tuple[str, ...]], str | None]:
    """The branch sets of the synergy comparison's reference ``single-auto``: systems made of
    one group of streams only.

    Returns
    -------
    subsets : list of tuple of str
        The handcrafted (non-neural) branches together, then each neural branch alone; empty
        when the run lacks either kind.
    reason : str or None
        Why there is no synergy comparison (None when there is one).
    """
    handcrafted = tuple(name for name in branches if not is_neural(name))
    neural = [name for name in branches if is_neural(name)]
    if not neural:
        return [], ("no neural branch: the handcrafted branches are the only group, so `auto` "
                    "is itself a one-group system")
    if not handcrafted:
        # Its pool would be the single neural branches: the primary comparison's own.
        return [], ("no handcrafted branch: the one-group systems are the single neural "
                    "branches, and the primary comparison already is `auto` against them")
    return [handcrafted, *((name,) for name in neural)], None


def system_name(subset: Sequence[str], head: str, fusion: str | None) -> str:
    """``pitch/xgb`` for a single branch, ``pitch+timbre/mlp/stacking`` for a fusion."""
    return "/".join(["+".join(subset), head] + ([fusion] if fusion else []))


def oof_feature_target(subset: Sequence[str]) -> tuple[str, ...]:
    """The branches whose concatenated columns a head reads, with the others'
    log-probabilities, under ``oof_features``; empty where the fusion does not apply.

    The subset's only pretrained neural branch, beside at least one other branch; without a
    pretrained one, every branch with columns beside the ``e2e`` stream (which has no
    features to extend, but whose probabilities can be read).
    """
    pretrained = [name for name in subset if is_neural(name) and name != E2E_BRANCH]
    if len(pretrained) == 1 and len(subset) > 1:
        return (pretrained[0],)
    if not pretrained and E2E_BRANCH in subset and len(subset) > 1:
        return tuple(name for name in subset if name != E2E_BRANCH)
    return ()


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


#: Folds of a dataset with an official split (:data:`TRAIN_VAL_EVAL`).
TRAIN_FOLD, VALIDATION_FOLD, EVAL_FOLD = 1, 2, 3


def official_split(folds: np.ndarray) -> tuple[list[tuple[int, np.ndarray, np.ndarray]],
                                               dict[int, list[tuple[np.ndarray, np.ndarray]]]]:
    """The one outer split of a dataset with an official train / validation / eval split.

    Heads are fitted on the train clips (fold :data:`TRAIN_FOLD`) and predict the validation
    clips (fold :data:`VALIDATION_FOLD`): those predictions are the inner ones that teach the
    fusions (the late rules, the ``oof_features`` head) on the validation clips and decide
    every selection. The same fits then predict the eval clips (fold :data:`EVAL_FOLD`),
    which the systems score once: the dataset's own protocol (FSD50K: train on ``train``,
    every choice on ``val``), one fit per head instead of a refit on train + validation, and
    fusions applied to the very models whose validation outputs they learned from.

    Returns
    -------
    outer : list of one (fold, train_index, test_index)
        The eval fold, the train + validation rows, the eval rows.
    inner : dict of int to list of (train, validation)
        The eval fold -> its one inner split, as positions into the outer training rows.

    Raises
    ------
    DatasetError
        When the train, validation or eval clips are missing, or other folds are present.
    """
    folds = np.asarray(folds)
    expected = (TRAIN_FOLD, VALIDATION_FOLD, EVAL_FOLD)
    present = set(np.unique(folds).tolist())
    if present != set(expected):
        raise DatasetError(f"the train-val-eval protocol needs train (fold {TRAIN_FOLD}), "
                           f"validation (fold {VALIDATION_FOLD}) and eval (fold {EVAL_FOLD}) "
                           f"clips and nothing else; folds present: {sorted(present)}")
    training = np.flatnonzero(folds != EVAL_FOLD)
    inner = (np.flatnonzero(folds[training] == TRAIN_FOLD),
             np.flatnonzero(folds[training] == VALIDATION_FOLD))
    return [(EVAL_FOLD, training, np.flatnonzero(folds == EVAL_FOLD))], {EVAL_FOLD: [inner]}


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
        Why its branch set is in the ablation
        (:func:`~featurekit.benchmark.ablation.ablation_subsets`).
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
class BranchComparison:
    """Handcrafted branches + one neural branch against that branch alone (the paper's claim
    for each stream), each side chosen per outer fold and repeat by inner cross-validation.

    Attributes
    ----------
    branch : str
        The neural branch (``neural.<model>`` or ``e2e``).
    branches : tuple of str
        The handcrafted branches and ``branch``, in branch order.
    system, reference : str
        Selection names: ``auto(<handcrafted>+<branch>)`` and ``auto(<branch>)``.
    candidates, reference_candidates : list of str
        Systems each selection chooses from.
    """

    branch: str
    branches: tuple[str, ...]
    system: str
    reference: str
    candidates: list[str]
    reference_candidates: list[str]


@dataclass(frozen=True)
class Plan:
    """Systems, and the units that produce them, in dependency stages.

    Attributes
    ----------
    outer : list of (fold, train_index, test_index)
    systems : list of System
    stages : list of list of Unit
        Stage 2 reads stage 1: ``oof_features`` its out-of-fold probabilities, sequence heads
        on the ``e2e`` stream its CNN's frames.
    auto_candidates : list of str
        Systems over every branch, any requested head and fusion with an inner score.
    reference_candidates : list of str
        Single neural-branch systems and, with two or more neural branches beside other
        branches, the systems over those neural branches together
        (:func:`~featurekit.benchmark.ablation.neural_together`); every single-branch system
        without a neural branch.
    reference : str
        ``neural-auto``, or ``single-branch-auto`` without a neural branch.
    branch_comparisons : list of BranchComparison
    synergy_candidates : list of str
        The synergy comparison's reference pool (``single-auto``): the selectable systems over
        one group only (:func:`one_group_subsets`); empty when there is no such comparison.
    synergy_note : str or None
        Why there is none (None when there is one).
    train_rows : dict of (fold, repeat) to np.ndarray, optional
        Learning curves: the subsampled training rows of each outer fold and repeat
        (default: all of the fold's training rows).
    fixed_inner : dict of int to list of (train, validation), optional
        Official splits (:func:`official_split`): each outer fold's inner split, the same in
        every repeat, whose train-clip fits also predict the test rows (no refit; default:
        group-aware inner splits drawn per repeat, members refitted on all training rows).
    extra_selections : dict of str to list of str
        Further inner-CV choices among systems the plan already scores (a robustness run's
        ``handcrafted-auto``, :func:`featurekit.benchmark.robustness.robustness_plan`).
    """

    outer: list[tuple[int, np.ndarray, np.ndarray]]
    systems: list[System]
    stages: list[list[Unit]]
    auto_candidates: list[str]
    reference_candidates: list[str]
    reference: str
    branch_comparisons: list[BranchComparison] = field(default_factory=list)
    synergy_candidates: list[str] = field(default_factory=list)
    synergy_note: str | None = None
    train_rows: dict[tuple[int, int], np.ndarray] | None = None
    fixed_inner: dict[int, list[tuple[np.ndarray, np.ndarray]]] | None = None
    extra_selections: dict[str, list[str]] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return LEAVE_ONE_FOLD_OUT if self.fixed_inner is None else TRAIN_VAL_EVAL

    @property
    def refits(self) -> bool:
        """Whether each unit's members are refitted on all training rows after its inner
        twins (inner cross-validation), rather than being the official split's train-clip
        fits themselves."""
        return self.fixed_inner is None

    @property
    def folds(self) -> list[int]:
        return [fold for fold, _, _ in self.outer]

    @property
    def scored(self) -> set[str]:
        """Systems that compete in a selection: their inner out-of-fold predictions of the
        training rows are made too (for a learned fusion, by fitting it again per inner
        split)."""
        return {name for _, candidates in self.selections for name in candidates}

    def training(self, fold: int, repeat: int) -> np.ndarray:
        """Training rows of outer fold ``fold`` in repeat ``repeat``."""
        if self.train_rows is not None:
            return self.train_rows[fold, repeat]
        return next(train for index, train, _ in self.outer if index == fold)

    @property
    def selections(self) -> list[tuple[str, list[str]]]:
        """Every inner-CV choice the plan makes: (name, candidate systems), non-empty."""
        pairs = [(AUTO, self.auto_candidates), (self.reference, self.reference_candidates),
                 (SINGLE_AUTO, self.synergy_candidates), *self.extra_selections.items()]
        for comparison in self.branch_comparisons:
            pairs += [(comparison.system, comparison.candidates),
                      (comparison.reference, comparison.reference_candidates)]
        return list({name: candidates for name, candidates in pairs if candidates}.items())

    @property
    def units(self) -> list[Unit]:
        return [unit for stage in self.stages for unit in stage]


def _fusions_of(subset: Sequence[str], head: str, config: BenchmarkConfig) -> list[str | None]:
    """Fusions a system of ``head`` over ``subset`` can use ([None] for one branch)."""
    if len(subset) == 1:
        return [None]
    sequence = head in SEQUENCE_HEAD_NAMES
    # The e2e stream has no columns to concatenate: only fusions of probabilities apply.
    columns = E2E_BRANCH not in subset
    return [name for name in config.fusions
            if (name == "early" and not sequence and columns)
            or name in LATE_FUSIONS
            or (name == OOF_FEATURES and not sequence and oof_feature_target(subset))
            or (name == "joint" and sequence)
            # The blend reads inner twins' embeddings, which the CNN's frames do not have.
            or (name == "blend" and sequence and columns)]


def _heads_of(subset: Sequence[str], config: BenchmarkConfig,
              sequence_branches: Sequence[str]) -> list[str]:
    """Heads of the systems over ``subset``: for the e2e stream alone its CNN (and the
    sequence heads, on the CNN's frames); sequence heads only where every branch has frames."""
    sequence_heads = [head for head in config.heads if head in SEQUENCE_HEAD_NAMES]
    if tuple(subset) == (E2E_BRANCH,):
        return [E2E_HEAD, *sequence_heads]
    return [head for head in config.heads
            if head not in SEQUENCE_HEAD_NAMES or all(b in sequence_branches for b in subset)]


def make_plan(branches: Sequence[str], config: BenchmarkConfig, folds: np.ndarray, *,
              sequence_branches: Sequence[str] = (),
              outer: Sequence[tuple[int, np.ndarray, np.ndarray]] | None = None,
              comparisons_only: bool = False,
              train_rows: dict[tuple[int, int], np.ndarray] | None = None,
              subsets: Mapping[tuple[str, ...], Sequence[str]] | None = None,
              pairs: Sequence[tuple[tuple[str, ...], str]] | None = None) -> Plan:
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
    comparisons_only : bool
        Only the systems of the :class:`BranchComparison` of each neural branch and of the
        synergy comparison (a learning curve's point).
    train_rows : dict of (fold, repeat) to np.ndarray, optional
        Subsampled training rows (see :attr:`Plan.train_rows`).
    subsets : mapping of tuple of str to sequence of str, optional
        Branch subsets to evaluate and their roles; default
        :func:`~featurekit.benchmark.ablation.ablation_subsets` in ``config.ablation``'s mode
        (:func:`featurekit.benchmark.sets.set_ablation` compares feature sets instead).
    pairs : sequence of (tuple of str, str), optional
        The :class:`BranchComparison` pairs (subset, single branch); default the handcrafted
        branches with each neural branch. Both sides must be among the subsets.
    """
    outer = leave_one_fold_out(folds, config.outer_folds) if outer is None else list(outer)
    pairs = (handcrafted_with_each_neural(branches) if pairs is None
             else [(tuple(fused), branch) for fused, branch in pairs])
    subsets = (ablation_subsets(branches, config.ablation) if subsets is None
               else {tuple(subset): list(roles) for subset, roles in subsets.items()})
    everything = tuple(branches)
    groups, synergy_note = one_group_subsets(branches)
    if groups and not all(group in subsets for group in groups):
        groups, synergy_note = [], ("the handcrafted branches together are not among the "
                                    "evaluated branch sets")
    if comparisons_only:
        subsets = {subset: roles for subset, roles in subsets.items()
                   if any(subset in (fused, (neural,)) for fused, neural in pairs)
                   or (groups and subset in (everything, *groups))}

    systems = [System(subset, head, fusion, tuple(roles))
               for subset, roles in subsets.items()
               for head in _heads_of(subset, config, sequence_branches)
               for fusion in _fusions_of(subset, head, config)]
    if not systems:
        raise ConfigError("nothing to evaluate: no head applies to any branch (the sequence "
                          "head needs frame sequences)")

    def selectable(subset: tuple[str, ...]) -> list[str]:
        """Systems over ``subset`` an inner-CV choice picks from: every fusion but the blend
        (it has no inner predictions), or every head of a single branch. Sequence heads on
        the e2e stream are left out: the CNN whose frames they read was fitted on every
        training row, inner validation rows included, so their inner scores flatter them."""
        return [s.name for s in systems if s.branches == subset
                and (len(subset) == 1 or (s.fusion and s.fusion != "blend"))
                and not (s.head in SEQUENCE_HEAD_NAMES and E2E_BRANCH in subset)]

    auto_candidates = selectable(everything) if len(everything) > 1 else []
    neural = [b for b in branches if is_neural(b)]
    reference_pool = [(branch,) for branch in neural or branches]
    # Every network alone and all of them together; never everything, which is auto's pool.
    if neural_together(branches) not in ((), everything):
        reference_pool.append(neural_together(branches))
    reference_candidates = [name for subset in reference_pool for name in selectable(subset)]
    reference = NEURAL_AUTO if neural else SINGLE_BRANCH_AUTO
    synergy_candidates = ([name for group in groups for name in selectable(group)]
                          if auto_candidates else [])
    if comparisons_only:
        # The synergy comparison's auto stays: the learning curve repeats it.
        auto_candidates = auto_candidates if synergy_candidates else []
        reference_candidates = []
    # With one neural branch beside the handcrafted ones, its comparison is the primary one
    # and keeps the primary names.
    comparisons = [BranchComparison(
        branch, fused, AUTO if fused == everything else selection_name(fused),
        NEURAL_AUTO if neural == [branch] else selection_name((branch,)),
        selectable(fused), selectable((branch,))) for fused, branch in pairs]
    # What needs inner out-of-fold predictions: the branches of every late fusion, blend and
    # oof_features system (they learn from them), and every candidate of a selection (they
    # are scored by them).
    scored = set(auto_candidates) | set(reference_candidates) | set(synergy_candidates)
    for comparison in comparisons:
        scored |= set(comparison.candidates) | set(comparison.reference_candidates)

    stage1: dict[tuple[int, int, str, tuple[str, ...], str], bool] = {}
    stage2: dict[tuple[int, int, str, tuple[str, ...], str], bool] = {}
    for fold, _, _ in outer:
        for repeat in range(config.repeats):
            for system in systems:
                candidate = system.name in scored
                if system.fusion is None:
                    key = (fold, repeat, system.head, system.branches, "branch")
                    stage1[key] = stage1.get(key, False) or candidate
                    continue
                if system.fusion in ("early", "joint"):
                    stage1[(fold, repeat, system.head, system.branches, system.fusion)] = \
                        candidate
                    continue
                # Late rules, blend and oof_features read their branches' inner predictions.
                for name in system.branches:
                    if system.fusion == OOF_FEATURES and name in oof_feature_target(
                            system.branches):
                        continue
                    stage1[(fold, repeat, unit_head(system.head, name), (name,), "branch")] = \
                        True
                if system.fusion == OOF_FEATURES:
                    stage2[(fold, repeat, system.head, system.branches, OOF_FEATURES)] = \
                        candidate
    # A sequence head reads the e2e stream as the frames of its CNN, fitted in stage 1.
    for key in [key for key in stage1 if key[2] in SEQUENCE_HEAD_NAMES and E2E_BRANCH in key[3]]:
        stage2[key] = stage1.pop(key)
        stage1.setdefault((key[0], key[1], E2E_HEAD, (E2E_BRANCH,), "branch"), False)
    stages = [[Unit(fold, repeat, head, subset, kind, inner)
               for (fold, repeat, head, subset, kind), inner in table.items()]
              for table in (stage1, stage2) if table]
    return Plan(outer=outer, systems=systems, stages=stages, auto_candidates=auto_candidates,
                reference_candidates=reference_candidates, reference=reference,
                branch_comparisons=comparisons, synergy_candidates=synergy_candidates,
                synergy_note=None if synergy_candidates else synergy_note or (
                    "no system over every branch to choose `auto` from"),
                train_rows=train_rows)
