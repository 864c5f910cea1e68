"""Features of new clips (file paths or arrays), without a dataset or a store: what a trained
model computes before it predicts.

The computers are the ones that fill a store (:func:`featurekit.computers.factory.make_computer`),
with the training configuration; a clip that fails any computer is reported, not guessed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from featurekit._util.parallel import run_tasks
from featurekit.computers.base import BranchComputer, compute_batch_safely
from featurekit.computers.factory import make_computer
from featurekit.computers.runner import default_batch_size
from featurekit.config import ExtractionConfig
from featurekit.errors import WeightsError
from featurekit.io.audio import SILENCE_NOTE
from featurekit.names import NEURAL_PREFIX
from featurekit.store.records import ClipFailure, ClipResult

__all__ = ["clip_computers", "clip_features", "clip_sources", "source_name"]


def clip_sources(X: Any) -> list[Any]:
    """A sequence of clips as a list of paths (str) and 1-D arrays."""
    if isinstance(X, (str, os.PathLike)):
        raise TypeError("X must be a sequence of clips (paths or 1-D arrays), not a single "
                        "path")
    if isinstance(X, np.ndarray) and X.dtype != object:
        X = list(X) if X.ndim == 2 else [X]
    return [os.fspath(clip) if isinstance(clip, (str, os.PathLike)) else np.asarray(clip)
            for clip in X]


def source_name(sources: Sequence[Any], index: int) -> str:
    """A clip's name in messages: its path, or ``<array i>``."""
    source = sources[index]
    return source if isinstance(source, str) else f"<array {index}>"


def clip_computers(branches: Sequence[str], extraction: ExtractionConfig, *,
                   weights: str | os.PathLike[str] | None, n_jobs: int,
                   weights_sha256: str | None = None) -> list[BranchComputer]:
    """Computers of store branches; with ``weights_sha256``, the neural weights must have that
    checksum.

    Raises
    ------
    WeightsError
        The neural weights differ from the ones the model was trained on.
    """
    from joblib import effective_n_jobs

    computers = []
    for branch in branches:
        computer = make_computer(branch, extraction=extraction, weights=weights,
                                 n_threads=effective_n_jobs(n_jobs))
        if (weights_sha256 is not None and branch.startswith(NEURAL_PREFIX)
                and computer.weights_sha256 != weights_sha256):
            raise WeightsError(f"weights {computer.weights_path} of {branch} have sha256 "
                               f"{computer.weights_sha256}, but the model was trained on "
                               f"embeddings of weights with sha256 {weights_sha256}: "
                               f"pass that checkpoint")
        computers.append(computer)
    return computers


def clip_features(computers: Sequence[BranchComputer], sources: Sequence[Any], sr: int | None,
                  *, n_jobs: int) -> tuple[pd.DataFrame, dict[int, ClipFailure]]:
    """Feature columns of every computer for each clip (rows of failed clips are NaN), and each
    failed clip's first failure by position.

    Parameters
    ----------
    computers : sequence of BranchComputer
    sources : sequence of str or np.ndarray
        Audio files, or 1-D arrays at ``sr`` Hz.
    sr : int, optional
        Sample rate of array clips, Hz.
    n_jobs : int
        Worker processes for computers that allow them (file clips only).
    """
    failures: dict[int, ClipFailure] = {}
    parts = []
    for computer in computers:
        todo = [i for i in range(len(sources)) if i not in failures]
        block = np.full((len(sources), len(computer.feature_names)), np.nan, dtype=np.float32)
        outcomes = _outcomes(computer, [sources[i] for i in todo], sr, n_jobs=n_jobs)
        for index, outcome in zip(todo, outcomes, strict=True):
            if isinstance(outcome, ClipFailure):
                failures[index] = outcome
            elif SILENCE_NOTE in outcome.notes:
                # Silence carries no evidence of any class: refuse to guess.
                failures[index] = ClipFailure("SilentAudio", SILENCE_NOTE)
            else:
                block[index] = outcome.values
        parts.append(pd.DataFrame(block, columns=computer.feature_names))
    return pd.concat(parts, axis=1), dict(sorted(failures.items()))


def _outcomes(computer: BranchComputer, sources: Sequence[Any], sr: int | None, *,
              n_jobs: int) -> list[ClipResult | ClipFailure]:
    """One computer's outcomes: worker processes for files when it allows them, else in this
    process (torch models use threads; arrays are not shipped to workers)."""
    from joblib import delayed, effective_n_jobs

    workers = effective_n_jobs(n_jobs) if computer.process_parallel else 1
    if workers == 1 or any(isinstance(source, np.ndarray) for source in sources):
        return [ClipFailure.from_exception(outcome) if isinstance(outcome, BaseException)
                else outcome for outcome in computer.compute_batch(sources, sr=sr)]
    size = default_batch_size(len(sources), workers)
    tasks = [delayed(compute_batch_safely)(computer, index, sources[start:start + size],
                                           False, True)
             for index, start in enumerate(range(0, len(sources), size))]
    # Closed on any exception, so that the workers stop then (see run_tasks).
    with contextlib.closing(run_tasks(tasks, n_jobs=workers)) as batches:
        return [outcome for _, outcomes in batches for outcome in outcomes]
