"""One factory for every store branch's computer: a branch name in, its computer out."""

from __future__ import annotations

import os

from featurekit.computers.base import BranchComputer
from featurekit.config import ExtractionConfig
from featurekit.errors import ConfigError
from featurekit.names import HANDCRAFTED_BRANCH, LOGMEL_BRANCH, NEURAL_PREFIX

__all__ = ["make_computer"]


def make_computer(branch: str, *, extraction: ExtractionConfig | None = None,
                  weights: str | os.PathLike[str] | None = None,
                  n_threads: int = 1) -> BranchComputer:
    """The computer that fills store branch ``branch``.

    Parameters
    ----------
    branch : str
        ``handcrafted``, ``neural.<model>``, ``logmel`` or a reference feature set's branch
        (:data:`featurekit.computers.sets.FEATURE_SETS`).
    extraction : ExtractionConfig, optional
        Configuration of the handcrafted branch (default: the defaults).
    weights : path-like, optional
        Checkpoint of a neural branch's model (default: resolved as by ``featurekit embed``).
    n_threads : int
        Torch threads of a neural branch.

    Raises
    ------
    ConfigError
        Unknown branch.
    MissingDependencyError
        A reference set's engine is not installed (the message names the extra).
    """
    # Each engine (librosa, torch, Essentia, openSMILE) loads only for the branch asked for.
    if branch == HANDCRAFTED_BRANCH:
        from featurekit.computers.handcrafted import HandcraftedBranch

        return HandcraftedBranch(extraction)
    if branch == LOGMEL_BRANCH:
        from featurekit.computers.logmel import LogMelBranch

        return LogMelBranch()
    if branch.startswith(NEURAL_PREFIX):
        from featurekit.computers.neural import NeuralBranch

        return NeuralBranch(branch.removeprefix(NEURAL_PREFIX), weights, n_threads=n_threads)
    from featurekit.computers.sets import FEATURE_SETS, set_computer

    sets = {feature_set.branch: name for name, feature_set in FEATURE_SETS.items()}
    if branch in sets:
        return set_computer(sets[branch])
    raise ConfigError(f"no computer fills store branch {branch!r}; known: "
                      f"{HANDCRAFTED_BRANCH}, {NEURAL_PREFIX}<model>, {LOGMEL_BRANCH}, "
                      f"{', '.join(sorted(set(sets) - {HANDCRAFTED_BRANCH}))}")
