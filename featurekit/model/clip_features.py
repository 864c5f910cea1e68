"""Features of new clips (file paths or arrays), without a dataset or a store: what a trained
model computes before it predicts, and the embeddings of its imported branches, which it is
given.

The computers are the ones that fill a store (:func:`featurekit.computers.factory.make_computer`),
with the training configuration; imported embeddings are read as ``featurekit
import-embeddings`` reads them (:func:`featurekit.computers.imported.read_embeddings`). A clip
that fails any computer, or that an embeddings file lacks, is reported, not guessed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from featurekit._util.parallel import run_tasks
from featurekit.computers.base import BranchComputer, compute_batch_safely
from featurekit.computers.factory import make_computer
from featurekit.computers.imported import EmbeddingTable, read_embeddings
from featurekit.computers.runner import default_batch_size
from featurekit.config import ExtractionConfig
from featurekit.errors import ConfigError, EmbeddingImportError, WeightsError
from featurekit.io.audio import SILENCE_NOTE
from featurekit.names import embedding_names, neural_branch
from featurekit.store.records import ClipFailure, ClipResult

__all__ = ["clip_computers", "clip_features", "clip_sources", "imported_features",
           "imported_tables", "source_name"]


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
                   weights_sha256: Mapping[str, str | None] | None = None
                   ) -> list[BranchComputer]:
    """Computers of store branches; with ``weights_sha256`` (neural branch -> checksum), each
    of those branches' weights must have its checksum.

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
        expected = (weights_sha256 or {}).get(branch)
        if branch in (weights_sha256 or {}) and computer.weights_sha256 != expected:
            raise WeightsError(f"weights {computer.weights_path} of {branch} have sha256 "
                               f"{computer.weights_sha256}, but the model was trained on "
                               f"embeddings of weights with sha256 {expected}: "
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


def imported_tables(embeddings: Mapping[str, str | os.PathLike[str]] | None,
                    expected: Mapping[str, int], sources: Sequence[Any]
                    ) -> dict[str, EmbeddingTable]:
    """The new clips' embeddings of each imported model a trained model reads, from the files
    given for them, checked before any feature is computed.

    Parameters
    ----------
    embeddings : mapping of str to path-like, optional
        Model name -> file, in a format ``featurekit import-embeddings`` reads
        (:func:`~featurekit.computers.imported.read_embeddings`): Parquet or CSV with a
        ``clip_id`` column (each clip named as given, :func:`source_name`) or a ``path``
        column (audio files, relative to the current directory); or a ``.npy`` matrix whose
        rows are the clips, in order.
    expected : mapping of str to int
        Imported model name -> dimension the model was trained on.
    sources : sequence of str or np.ndarray
        The clips (:func:`clip_sources`).

    Returns
    -------
    dict of str to EmbeddingTable

    Raises
    ------
    ConfigError
        An imported model without a file (naming its branch and ``--embeddings``), or a file
        for a name that is not an imported model of the trained model.
    EmbeddingImportError
        A file that cannot be read (see :func:`~featurekit.computers.imported.read_embeddings`;
        an id matching none of the clips among them), or of another dimension.
    """
    given = dict(embeddings or {})
    unknown = [name for name in given if name not in expected]
    if unknown:
        raise ConfigError(f"embeddings given for {unknown[0]!r}, but the model reads no "
                          f"imported branch {neural_branch(unknown[0])} (its imported "
                          f"branches: {', '.join(map(neural_branch, expected)) or 'none'})")
    for name in expected:
        if name not in given:
            raise ConfigError(f"the model reads branch {neural_branch(name)}, embeddings "
                              "imported from elsewhere that featurekit cannot compute: give "
                              f"the new files' embeddings with --embeddings {name}=FILE "
                              f"(embeddings={{{name!r}: FILE}} in Python)")
    names = [source_name(sources, index) for index in range(len(sources))]
    clips = pd.DataFrame({"clip_id": names, "path": names})
    tables = {}
    for name, path in given.items():
        table = read_embeddings(path, clips,
                                ids=names if Path(path).suffix.lower() == ".npy" else None)
        if table.dimension != expected[name]:
            raise EmbeddingImportError(f"{path}: {table.dimension} dimensions, but the model "
                                       f"was trained on {expected[name]} of "
                                       f"{neural_branch(name)}")
        tables[name] = table
    return tables


def imported_features(tables: Mapping[str, EmbeddingTable], sources: Sequence[Any]
                      ) -> tuple[pd.DataFrame, dict[int, ClipFailure]]:
    """The imported models' columns of each clip (NaN rows where a file lacks the clip), and
    a ``MissingEmbedding`` failure by position for each clip a file lacks.

    Parameters
    ----------
    tables : mapping of str to EmbeddingTable
        From :func:`imported_tables`.
    sources : sequence of str or np.ndarray
    """
    names = [source_name(sources, index) for index in range(len(sources))]
    parts, failures = [pd.DataFrame(index=range(len(sources)))], {}
    for model, table in tables.items():
        row_of = {clip: row for row, clip in enumerate(table.clip_ids)}
        block = np.full((len(sources), table.dimension), np.nan, dtype=np.float32)
        for index, name in enumerate(names):
            if name in row_of:
                block[index] = table.values[row_of[name]]
            else:
                failures.setdefault(index, ClipFailure(
                    "MissingEmbedding", f"no embedding of {neural_branch(model)} in "
                                        f"{table.path}"))
        parts.append(pd.DataFrame(block, columns=embedding_names(model, table.dimension)))
    return pd.concat(parts, axis=1), failures
