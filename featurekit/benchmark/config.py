"""What a benchmark runs: :class:`BenchmarkConfig` and the names of branches and fusions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from featurekit.benchmark.head_settings import HeadSettings
from featurekit.config import FAMILIES
from featurekit.errors import ConfigError
from featurekit.names import E2E_BRANCH, E2E_HEAD, SEQUENCE_HEAD_NAMES, is_neural

if TYPE_CHECKING:
    from featurekit.learn.heads.base import HeadSpec

# Light on purpose: the CLI builds its parser from these defaults, so the heads (scikit-learn,
# XGBoost) are imported only by the methods that need them.

#: Families of the store's ``handcrafted`` branch, each a benchmark branch of its own.
HANDCRAFTED_FAMILIES = FAMILIES
#: Late-fusion rules (see :mod:`featurekit.fusion`).
LATE_FUSIONS = ("mean", "weighted", "stacking", "calibrated")
#: A neural branch's head reading the other branches' out-of-fold log-probabilities.
OOF_FEATURES = "oof_features"
#: Fusions of sequence-head branches only: the blend of frozen learned embeddings, and the
#: jointly trained multi-stream model.
SEQUENCE_FUSIONS = ("blend", "joint")
#: Every fusion a benchmark can run.
BENCHMARK_FUSIONS = ("early", *LATE_FUSIONS, OOF_FEATURES, *SEQUENCE_FUSIONS)
#: The pre-registered comparisons' systems, each chosen per outer fold and repeat by the inner
#: cross-validation of the training folds: ``auto``, the head x fusion over every branch; the
#: primary comparison's reference ``neural-auto``, the best single neural-branch system or,
#: with several neural branches, fusion of them all (``single-branch-auto``, among every
#: single branch, when there is no neural branch); the
#: synergy comparison's reference ``single-auto``, the best system made of one group only (the
#: handcrafted branches together, or one neural branch alone).
AUTO, NEURAL_AUTO, SINGLE_AUTO = "auto", "neural-auto", "single-auto"
#: A robustness run's fourth choice: the best system over the handcrafted branches alone
#: (among the synergy pool's handcrafted systems), scored under each corruption beside them.
HANDCRAFTED_AUTO = "handcrafted-auto"
#: How much of the ablation a benchmark runs (:mod:`featurekit.benchmark.ablation`): ``full``
#: adds every pair of branches to ``families``; ``none`` keeps only what the primary
#: comparison and the report's headline need.
ABLATION_MODES = ("full", "families", "none")
#: The default mode: the subsets every earlier run evaluated.
DEFAULT_ABLATION = "families"
SINGLE_BRANCH_AUTO = "single-branch-auto"


def unit_head(head: str, branch: str) -> str:
    """The head a system with head ``head`` fits on ``branch`` (the CNN for ``e2e``)."""
    return E2E_HEAD if branch == E2E_BRANCH else head


def selection_name(branches: tuple[str, ...] | list[str]) -> str:
    """Name of the inner-CV choice among the systems over ``branches``:
    ``auto(pitch+timbre+spectral+e2e)``."""
    return f"{AUTO}({'+'.join(branches)})"


def in_order(names: Sequence[str], branches: Sequence[str]) -> tuple[str, ...]:
    """The branch subset ``names`` in benchmark-branch order, as the plan names its systems.

    Parameters
    ----------
    names : sequence of str
        Branches of the subset, in any order.
    branches : sequence of str
        Every benchmark branch, in order.

    Returns
    -------
    tuple of str
    """
    return tuple(branch for branch in branches if branch in names)


def side_name(subset: Sequence[str], branches: Sequence[str]) -> str:
    """The name :func:`featurekit.benchmark.plan.make_plan` gives the side of a
    :class:`~featurekit.benchmark.plan.BranchComparison` over ``subset``.

    Parameters
    ----------
    subset : sequence of str
        The side's branches, in benchmark-branch order (:func:`in_order`).
    branches : sequence of str
        Every benchmark branch, in order.

    Returns
    -------
    str
        ``auto`` for every branch, ``neural-auto`` for the only neural branch, else
        :func:`~featurekit.benchmark.config.selection_name`.
    """
    if tuple(subset) == tuple(branches):
        return AUTO
    neural = [name for name in branches if is_neural(name)]
    if len(subset) == 1 and neural == list(subset):
        return NEURAL_AUTO
    return selection_name(tuple(subset))


@dataclass(frozen=True)
class BenchmarkConfig:
    """What a benchmark runs; everything that changes its numbers (hashed into the results).

    Attributes
    ----------
    heads : tuple of str
        Head names of :data:`featurekit.learn.heads.registry.HEADS`, ``seq`` (the sequence head),
        or of
        ``head_specs`` given to :func:`featurekit.benchmark.run_benchmark`.
    fusions : tuple of str
        Any of :data:`BENCHMARK_FUSIONS`: ``early``, the late rules, ``oof_features``
        (functionals heads, branch sets with exactly one neural branch), ``blend`` and
        ``joint`` (sequence head only).
    repeats : int
        Every system is fitted this many times per outer fold, each time with other seeds and
        another draw of the inner splits; scores are averaged over repeats, and their spread
        enters every interval.
    n_seeds : int
        Members per seeded head within one repeat (seeds ``s .. s + n_seeds - 1``),
        probabilities averaged.
    seed : int
        Base seed: repeat ``r`` uses seeds from ``seed + 1000 * r``; the bootstrap uses
        ``seed``.
    inner_splits : int
        Inner cross-validation splits of the training folds (out-of-fold probabilities that
        teach the fusions and score the ``auto`` candidates, and the search).
    tune : bool
        Hyper-parameter search of every head inside the training folds, nested: each inner
        out-of-fold twin searches inside its own split's training rows (so the inner scores
        that teach the fusions and choose ``auto`` are not flattered by the search), which
        makes ``1 + inner_splits`` searches per unit.
    n_bootstrap : int
        Resamples of the two-level bootstrap.
    outer_folds : tuple of int, optional
        Outer folds to evaluate (each is the test set once, trained on all other folds);
        default every fold present.
    train_fractions : tuple of float
        Learning curve: shares of each outer fold's training set (whole source recordings
        where known, else clips; stratified by class, drawn anew for every repeat) on which
        the run's paired comparisons (by default handcrafted + each neural branch against
        that branch alone) are repeated. Empty: no curve. A fraction of 1 reuses the full
        benchmark.
    head_settings : HeadSettings, optional
        Parameters that replace some heads' defaults, and the datasets that chose them
        (:mod:`featurekit.benchmark.head_settings`; ``--head-settings FILE``).
    ablation : {"full", "families", "none"}
        Branch subsets evaluated (:func:`~featurekit.benchmark.ablation.ablation_subsets`):
        ``families`` (default) each branch alone, all handcrafted families, everything, all
        but each branch and handcrafted + each neural branch; ``full`` adds every pair of
        branches; ``none`` keeps what the primary comparison and the branch comparisons
        need (everything, each neural branch alone, the handcrafted families together and
        with each neural branch; each branch alone where none is neural).
    """

    heads: tuple[str, ...] = ("xgb", "mlp", "logreg")
    fusions: tuple[str, ...] = BENCHMARK_FUSIONS
    repeats: int = 3
    n_seeds: int = 1
    seed: int = 0
    inner_splits: int = 3
    tune: bool = False
    n_bootstrap: int = 2000
    outer_folds: tuple[int, ...] | None = None
    train_fractions: tuple[float, ...] = ()
    head_settings: HeadSettings | None = None
    ablation: str = DEFAULT_ABLATION

    def __post_init__(self) -> None:
        if not self.heads:
            raise ConfigError("a benchmark needs at least one head")
        if len(set(self.heads)) != len(self.heads):
            raise ConfigError(f"heads repeat a name: {', '.join(self.heads)}")
        unknown = [name for name in self.fusions if name not in BENCHMARK_FUSIONS]
        if unknown:
            raise ConfigError(f"unknown fusion {unknown[0]!r}; choose from "
                              f"{', '.join(BENCHMARK_FUSIONS)}")
        for name, minimum in (("repeats", 1), ("n_seeds", 1), ("inner_splits", 2),
                              ("n_bootstrap", 100)):
            if getattr(self, name) < minimum:
                raise ConfigError(f"{name} must be at least {minimum}, got "
                                  f"{getattr(self, name)}")
        if self.outer_folds is not None and not self.outer_folds:
            raise ConfigError("outer_folds, when given, must name at least one fold")
        bad = [value for value in self.train_fractions if not 0.0 < value <= 1.0]
        if bad:
            raise ConfigError(f"train fractions must be in (0, 1], got {bad[0]}")
        if len(set(self.train_fractions)) != len(self.train_fractions):
            raise ConfigError(f"train fractions repeat a value: {list(self.train_fractions)}")
        if self.ablation not in ABLATION_MODES:
            raise ConfigError(f"unknown ablation {self.ablation!r}; choose from "
                              f"{', '.join(ABLATION_MODES)}")

    def validate(self, head_specs: Mapping[str, HeadSpec] | None = None) -> None:
        """Refuse a head that nothing knows, before any work starts.

        The other fields are checked when the configuration is made; the heads only here,
        because ``head_specs`` given to :func:`~featurekit.benchmark.run_benchmark` may name
        heads of their own.

        Parameters
        ----------
        head_specs : mapping of str to HeadSpec, optional
            Extra heads by name, beside :data:`~featurekit.learn.heads.registry.HEADS` and
            the sequence head.

        Raises
        ------
        ConfigError
            Naming the first unknown head and every valid choice; or head settings for a
            head the benchmark does not run, or with a parameter the head does not take.
        """
        from featurekit.benchmark.head_settings import with_settings
        from featurekit.learn.heads.registry import HEADS

        known = list(dict.fromkeys([*HEADS, *SEQUENCE_HEAD_NAMES, *(head_specs or {})]))
        unknown = [name for name in self.heads if name not in known]
        if unknown:
            raise ConfigError(f"unknown head {unknown[0]!r}; choose from {', '.join(known)}")
        if self.head_settings is not None:
            # The end-to-end CNN joins the heads only with the e2e branch, which the
            # configuration does not know of; its settings are checked against it regardless.
            names = [*self.heads, *([E2E_HEAD] if E2E_HEAD in self.head_settings.params
                                    else [])]
            with_settings({name: head_spec(name, head_specs) for name in names},
                          self.head_settings)

    def seeds(self, repeat: int) -> list[int]:
        """Member seeds of repeat ``repeat``."""
        base = self.seed + 1000 * repeat
        return [base + index for index in range(self.n_seeds)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (``head_settings`` only when given, so that a run with the heads'
        defaults keeps the hash it always had)."""
        copy = {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items() if key != "head_settings"}
        if self.head_settings is not None:
            copy["head_settings"] = self.head_settings.to_dict()
        return copy

    def config_hash(self, head_specs: Mapping[str, HeadSpec] | None = None) -> str:
        """Stable short hash of :meth:`to_dict` and of the heads' default parameters."""
        from featurekit.learn.heads.registry import HEADS

        specs = {name: head_spec(name, head_specs) for name in self.heads
                 if name in HEADS or name in SEQUENCE_HEAD_NAMES or name in (head_specs or {})}
        heads = {name: [repr(spec.factory().get_params()), repr(spec.param_grid)]
                 for name, spec in specs.items()}
        config = self.to_dict()
        if self.ablation == DEFAULT_ABLATION:
            # The mode is recorded in every to_dict, but hashed only when it is not the
            # default: a run of the default subsets keeps the hash it had before the option.
            del config["ablation"]
        text = json.dumps({"config": config, "heads": heads}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def head_spec(name: str, head_specs: Mapping[str, HeadSpec] | None = None) -> HeadSpec:
    """A head by name: ``head_specs`` first, then the sequence head, then the registry."""
    if head_specs and name in head_specs:
        return head_specs[name]
    if name in SEQUENCE_HEAD_NAMES:
        from featurekit.learn.torch.sequence import (
            SEQUENCE_HEADS,  # torch: imported only when asked for
        )

        return SEQUENCE_HEADS[name]
    if name == E2E_HEAD:
        from featurekit.learn.torch.e2e import E2E_HEADS

        return E2E_HEADS[name]
    from featurekit.learn.heads.registry import get_head_spec

    return get_head_spec(name)
