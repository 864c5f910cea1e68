"""The branch subsets of the ablation, in one of :data:`~featurekit.benchmark.config.
ABLATION_MODES`.

``families`` (the default) is every subset a benchmark always evaluated (and, with two or more
neural branches, those branches together); ``full`` adds every pair of branches (their
synergies; the subsets grow with the square of the branches); ``none`` keeps only the subsets
the primary comparison (``auto`` against ``neural-auto`` or ``single-branch-auto``), the
synergy comparison and the branch comparisons (handcrafted + each neural branch against it
alone) read, for a run where the whole ablation would cost too much.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from featurekit.benchmark.config import (
    ABLATION_MODES,
    DEFAULT_ABLATION,
    HANDCRAFTED_FAMILIES,
)
from featurekit.errors import ConfigError
from featurekit.names import is_neural


def ablation_subsets(branches: Sequence[str], mode: str = DEFAULT_ABLATION
                     ) -> dict[tuple[str, ...], list[str]]:
    """Branch subsets of the ablation and why each is there.

    Parameters
    ----------
    branches : sequence of str
        Benchmark branches, in column order.
    mode : {"families", "full", "none"}
        ``families``: ``alone:<b>`` for each branch, ``handcrafted`` (all handcrafted
        branches, when two or more), ``neural`` (all neural branches, when two or more:
        :func:`neural_together`), ``all`` (two or more branches), ``all_but:<b>`` (three
        or more) and ``handcrafted+<b>`` (the handcrafted branches with one neural branch
        ``b``, the comparison of :class:`~featurekit.benchmark.plan.BranchComparison`).
        ``full``: those and ``pair:<a>+<b>`` for every pair of branches. ``none``: ``all``,
        ``handcrafted``, ``neural``, ``handcrafted+<b>`` and ``alone:<b>`` of each neural
        branch (of every branch when none is neural, as ``single-auto`` chooses among them;
        of the only handcrafted branch, which stands for ``handcrafted`` then).

    Returns
    -------
    dict
        ``subset -> labels``, in the order of ``families`` (``full``'s pairs after it). A
        subset reached for several reasons carries every label.

    Raises
    ------
    ConfigError
        An unknown ``mode``.
    """
    if mode not in ABLATION_MODES:
        raise ConfigError(f"unknown ablation {mode!r}; choose from {', '.join(ABLATION_MODES)}")
    subsets = _families(branches)
    if mode == "full":
        for first, second in itertools.combinations(branches, 2):
            subsets.setdefault((first, second), []).append(f"pair:{first}+{second}")
    elif mode == "none":
        kept = ((subset, [label for label in labels if _needed(label, branches)])
                for subset, labels in subsets.items())
        subsets = {subset: labels for subset, labels in kept if labels}
    return subsets


def _families(branches: Sequence[str]) -> dict[tuple[str, ...], list[str]]:
    """The subsets of the ``families`` mode (:func:`ablation_subsets`)."""
    subsets: dict[tuple[str, ...], list[str]] = {}
    for name in branches:
        subsets.setdefault((name,), []).append(f"alone:{name}")
    handcrafted = tuple(name for name in branches if name in HANDCRAFTED_FAMILIES)
    if len(handcrafted) >= 2:
        subsets.setdefault(handcrafted, []).append("handcrafted")
    together = neural_together(branches)
    if together:
        subsets.setdefault(together, []).append("neural")
    if len(branches) >= 2:
        subsets.setdefault(tuple(branches), []).append("all")
    if len(branches) >= 3:
        for name in branches:
            rest = tuple(other for other in branches if other != name)
            subsets.setdefault(rest, []).append(f"all_but:{name}")
    for subset, neural in handcrafted_with_each_neural(branches):
        subsets.setdefault(subset, []).append(f"handcrafted+{neural}")
    return subsets


def _needed(label: str, branches: Sequence[str]) -> bool:
    """Whether the ``none`` mode keeps a subset of this label (:func:`ablation_subsets`)."""
    if label in ("all", "handcrafted", "neural") or label.startswith("handcrafted+"):
        return True
    if not label.startswith("alone:"):
        return False
    name = label.removeprefix("alone:")
    neural = [branch for branch in branches if is_neural(branch)]
    handcrafted = [branch for branch in branches if not is_neural(branch)]
    return is_neural(name) or not neural or handcrafted == [name]


def neural_together(branches: Sequence[str]) -> tuple[str, ...]:
    """The neural branches together, in branch order, when there are two or more (every
    network the user brings, fused); else empty.

    ``neural-auto`` chooses among their fused systems beside each neural branch alone
    (:func:`~featurekit.benchmark.plan.make_plan`), so that ``auto`` against it measures what
    the handcrafted branches add on top of all the networks.
    """
    neural = tuple(name for name in branches if is_neural(name))
    return neural if len(neural) >= 2 else ()


def handcrafted_with_each_neural(branches: Sequence[str]) -> list[tuple[tuple[str, ...], str]]:
    """(handcrafted branches + neural branch, that neural branch) for each neural branch, in
    branch order; empty without handcrafted branches."""
    handcrafted = [name for name in branches if not is_neural(name)]
    if not handcrafted:
        return []
    return [(tuple(name for name in branches if name in handcrafted or name == neural), neural)
            for neural in branches if is_neural(neural)]
