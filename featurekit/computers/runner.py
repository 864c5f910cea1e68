"""Run a :class:`~featurekit.computers.base.BranchComputer` over a dataset into a feature store.

The clips not yet stored are cut into batches; batches run in worker processes (joblib, loky
or Dask) and come back as soon as each finishes, in any order, and each finished batch is
written as one Parquet part right away. Memory therefore depends on the batch size and the
number of workers, not on the dataset, and an interrupted run loses at most the batches in
flight: a rerun skips every stored clip (see :mod:`featurekit.store`). A clip that kills its
worker process is found and recorded as failed; the run goes on (see :func:`run_branch`). An
exception in this process (Ctrl-C, or the command line's SIGTERM as
:class:`~featurekit.errors.Interrupted`) stops the workers before it leaves
:func:`run_branch`, and an :class:`~featurekit.errors.Interrupted` learns how many clips the
branch holds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from joblib import delayed, effective_n_jobs

from featurekit._util.parallel import check_backend, run_tasks
from featurekit._util.progress import progress_bar
from featurekit.computers.base import BranchComputer, compute_batch_safely
from featurekit.datasets.base import CLIP_COLUMNS
from featurekit.errors import DatasetError, Interrupted, StoreError
from featurekit.store.reader import FeatureStore
from featurekit.store.records import ClipFailure, ClipResult

__all__ = ["RunSummary", "default_batch_size", "run_branch"]

logger = logging.getLogger(__name__)

#: Largest automatic batch: bounds what a killed run loses and what a worker holds.
MAX_AUTO_BATCH = 32


@dataclass(frozen=True)
class RunSummary:
    """Outcome of :func:`run_branch`.

    Attributes
    ----------
    dataset, branch : str
    store : pathlib.Path
        Root of the feature store.
    total : int
        Clips in the dataset.
    done : int
        Clips computed and stored by this run.
    skipped : int
        Clips already stored by an earlier run.
    failed : int
        Clips that failed in this run (recorded in the branch's ``_errors.parquet``).
    seconds : float
        Wall time of the run.
    strict : bool
        Whether any failure makes the run fail.
    failures : tuple of (clip_id, error_type, message)
        This run's failures.
    """

    dataset: str
    branch: str
    store: Path
    total: int
    done: int
    skipped: int
    failed: int
    seconds: float
    strict: bool = False
    failures: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)

    @property
    def exit_code(self) -> int:
        """0 on success (also with some failures); 1 when every attempted clip failed and
        nothing is stored, or when ``strict`` and any clip failed."""
        if self.failed and (self.strict or self.done + self.skipped == 0):
            return 1
        return 0

    def __str__(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        lines = [f"{self.dataset}/{self.branch} -> {self.store}: {self.total} clips, "
                 f"{self.done} computed, {self.skipped} already stored, {self.failed} failed "
                 f"in {self.seconds:.1f} s ({rate:.1f} clips/s)"]
        for clip_id, error_type, message in self.failures[:5]:
            lines.append(f"  failed {clip_id}: {error_type}: {message}")
        if self.failed > 5:
            lines.append(f"  ... and {self.failed - 5} more")
        if self.failed:
            lines.append(f"  all failures: FeatureStore({str(self.store)!r})"
                         f".errors({self.dataset!r}, {self.branch!r})")
        return "\n".join(lines)


def default_batch_size(n_clips: int, n_workers: int) -> int:
    """Clips per task: about four tasks per worker, at most :data:`MAX_AUTO_BATCH`."""
    return max(1, min(MAX_AUTO_BATCH, math.ceil(n_clips / (4 * max(1, n_workers)))))


def _execute(computer: BranchComputer, batches: Sequence[pd.DataFrame], *, n_jobs: int,
             frames: bool, backend: str, scheduler: str | None,
             ) -> Iterator[tuple[int, list[ClipResult | ClipFailure]]]:
    """Yield ``(batch index, outcomes)`` as batches finish, in completion order."""
    pin = bool(computer.process_parallel)
    paths = [batch["path"].astype(str).tolist() for batch in batches]
    if not pin or (backend == "loky" and effective_n_jobs(n_jobs) == 1):
        for index, batch_paths in enumerate(paths):
            yield compute_batch_safely(computer, index, batch_paths, frames, pin)
        return
    if backend == "loky":
        yield from _in_loky_workers(computer, paths, n_jobs=n_jobs, frames=frames)
        return
    tasks = [delayed(compute_batch_safely)(computer, index, batch_paths, frames, pin)
             for index, batch_paths in enumerate(paths)]
    yield from run_tasks(tasks, n_jobs=n_jobs, backend=backend, scheduler=scheduler,
                         ordered=False)


def _in_loky_workers(computer: BranchComputer, paths: Sequence[list[str]], *, n_jobs: int,
                     frames: bool) -> Iterator[tuple[int, list[ClipResult | ClipFailure]]]:
    """Batches in loky worker processes; a clip that kills its worker is isolated.

    A worker that dies (a segfault in a decoder, ``os._exit``, the OS killing it for memory)
    breaks the whole pool: joblib raises ``TerminatedWorkerError`` and drops every batch in
    flight. Those batches are known by their ``running`` files (see
    :func:`~featurekit.computers.base.compute_batch_safely`); each is retried alone in a fresh
    worker, and the one that dies again is retried clip by clip, so that only the clip that
    kills its worker is recorded as failed. The other batches then go on in parallel.
    """
    remaining = dict(enumerate(paths))
    with tempfile.TemporaryDirectory(prefix="featurekit-running-") as running:
        while remaining:
            tasks = [delayed(compute_batch_safely)(computer, index, batch_paths, frames, True,
                                                   running=os.path.join(running, str(index)))
                     for index, batch_paths in remaining.items()]
            try:
                # retries=0: the batch that killed its worker is isolated below instead.
                with contextlib.closing(run_tasks(tasks, n_jobs=n_jobs, ordered=False,
                                                  retries=0)) as done:
                    for index, outcomes in done:
                        del remaining[index]
                        yield index, outcomes
            except BrokenProcessPool:
                in_flight = sorted(int(name) for name in os.listdir(running))
                if not in_flight:  # died outside any batch: nothing to isolate
                    raise
                logger.warning("a worker process died; retrying the %d batch(es) it may have "
                               "been computing one by one", len(in_flight))
                for index in in_flight:
                    os.remove(os.path.join(running, str(index)))
                    yield index, _isolated_batch(computer, remaining.pop(index), n_jobs=n_jobs,
                                                 frames=frames)


def _isolated_batch(computer: BranchComputer, paths: list[str], *, n_jobs: int,
                    frames: bool) -> list[ClipResult | ClipFailure]:
    """Outcomes of a batch run alone in a worker, else clip by clip, each alone."""
    def alone(chunk: list[str]) -> list[ClipResult | ClipFailure]:
        [(_, outcomes)] = run_tasks([delayed(compute_batch_safely)(computer, 0, chunk, frames,
                                                                   True)],
                                    n_jobs=n_jobs, ordered=False, retries=0)
        return outcomes

    if len(paths) > 1:
        with contextlib.suppress(BrokenProcessPool):
            return alone(paths)
    outcomes: list[ClipResult | ClipFailure] = []
    for path in paths:
        try:
            outcomes.extend(alone([path]))
        except BrokenProcessPool as exc:
            logger.warning("%s kills the worker process that computes it; recorded as failed",
                           path)
            outcomes.append(ClipFailure(type(exc).__name__, _worker_death(exc)))
    return outcomes


def _worker_death(exc: BrokenProcessPool) -> str:
    """What a clip that killed its worker is recorded with, exit code included."""
    exit_codes = re.search(r"exit codes? of the workers? (?:are|is) \{([^}]*)\}", str(exc))
    code = f" (exit code {exit_codes.group(1)})" if exit_codes else ""
    return (f"the worker process computing this clip alone died{code}: a crash in native "
            "code (e.g. the audio decoder) or the operating system killing it for memory")


def _clip_table(dataset: Any) -> pd.DataFrame:
    name = getattr(dataset, "name", None)
    clips = getattr(dataset, "clips", None)
    if not isinstance(name, str) or not isinstance(clips, pd.DataFrame):
        raise DatasetError("run_branch needs a dataset with a 'name' and a 'clips' DataFrame "
                           "(see featurekit.load_dataset)")
    missing = [column for column in CLIP_COLUMNS if column not in clips.columns]
    if missing:
        raise DatasetError(f"clips table of dataset {name!r} lacks columns {missing}")
    duplicated = clips["clip_id"][clips["clip_id"].duplicated()]
    if len(duplicated):
        raise DatasetError(f"dataset {name!r} has duplicate clip ids, e.g. "
                           f"{duplicated.iloc[0]!r}")
    return clips[list(CLIP_COLUMNS)].reset_index(drop=True)


def run_branch(computer: BranchComputer, dataset: Any, store: FeatureStore | str | Path, *,
               n_jobs: int = 1, batch_size: int | None = None, frames: bool = False,
               overwrite: bool = False, strict: bool = False, backend: str = "loky",
               scheduler: str | None = None, progress: bool = True,
               on_progress: Callable[[int, int], None] | None = None) -> RunSummary:
    """Compute one branch for every clip of a dataset not yet in the store.

    Parameters
    ----------
    computer : BranchComputer
        What computes the features (e.g. ``HandcraftedBranch(config)``).
    dataset : object
        A dataset from :func:`featurekit.load_dataset`: ``.name`` and a ``.clips`` DataFrame
        with ``clip_id, path, label, label_id, fold``.
    store : FeatureStore or path-like
    n_jobs : int, keyword-only
        Worker processes (joblib convention: ``-1`` = all cores). Each worker is pinned to one
        BLAS/OpenMP thread. Ignored when ``computer.process_parallel`` is false: such
        computers (torch models) run in this process. With loky workers, a clip that kills
        its worker (a decoder segfault, an out-of-memory kill) is isolated: the batches in
        flight are retried alone, the culprit's clip by clip, the culprit is recorded as a
        ``TerminatedWorkerError`` failure with the exit code, and the run goes on. With
        ``n_jobs=1`` clips run in this process, where such a clip ends the run.
    batch_size : int, optional
        Clips per task and per Parquet part; default the computer's ``clips_per_task`` where
        it has one (see :class:`~featurekit.computers.base.BranchComputer`), else
        :func:`default_batch_size`.
    frames : bool
        Also store frame-level descriptors.
    overwrite : bool
        Replace the branch if it was computed with another configuration (otherwise
        :class:`~featurekit.errors.StoreError`).
    strict : bool
        Make :attr:`RunSummary.exit_code` 1 as soon as any clip failed. The run still
        completes and stores every clip it can.
    backend : {"loky", "dask"}
        ``"dask"`` runs the batches through joblib's Dask backend on the ``distributed``
        scheduler at ``scheduler``, or on a LocalCluster of ``n_jobs`` single-threaded worker
        processes started (and closed) for this run. The stored result is the same.
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    progress : bool
        Show a progress bar (clips/s, ETA) on stderr.
    on_progress : callable, optional
        Called as ``on_progress(finished, to_do)`` after each stored batch.

    Returns
    -------
    RunSummary

    Raises
    ------
    StoreError
        The branch holds another configuration, or another run holds its lock.
    ConfigError
        Unknown backend, or a scheduler address without ``backend="dask"``.
    DatasetError
        The dataset object lacks the clips table or has duplicate clip ids.
    """
    check_backend(backend, scheduler)  # before the store is opened
    if not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise StoreError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise StoreError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(computer, BranchComputer):
        raise TypeError(f"{type(computer).__name__} does not implement BranchComputer")
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    clips = _clip_table(dataset)
    provenance = {**computer.provenance(), "config_hash": computer.config_hash()}
    started = time.perf_counter()
    failures: list[tuple[str, str, str]] = []
    done = 0
    with store.writer(dataset.name, computer.branch, feature_names=computer.feature_names,
                      provenance=provenance, frames=frames, overwrite=overwrite) as writer:
        todo = clips[~clips["clip_id"].isin(writer.done)].reset_index(drop=True)
        workers = effective_n_jobs(n_jobs) if computer.process_parallel else 1
        size = (batch_size or getattr(computer, "clips_per_task", None)
                or default_batch_size(len(todo), workers))
        batches = [todo.iloc[start:start + size] for start in range(0, len(todo), size)]
        finished = 0
        # Closed on the way out of an exception, so that the workers stop here (joblib kills
        # its loky workers, a LocalCluster closes), not whenever the generator is collected.
        running = contextlib.closing(_execute(computer, batches, n_jobs=n_jobs, frames=frames,
                                              backend=backend, scheduler=scheduler))
        try:
            with running as finished_batches, progress_bar(
                    total=len(todo), desc=f"{dataset.name}/{computer.branch}",
                    disable=None if progress else True) as bar:
                for index, outcomes in finished_batches:
                    batch = batches[index]
                    stored, batch_failures = writer.write_batch(batch, outcomes)
                    done += stored
                    if batch_failures:
                        failures.extend(batch_failures)
                        bar.set_postfix(failed=len(failures))
                    finished += len(batch)
                    bar.update(len(batch))
                    if on_progress is not None:
                        on_progress(finished, len(todo))
        except Interrupted as stop:
            # Counted on disk: the signal may land between a part's commit and the writer's
            # bookkeeping, and the message must say what a rerun will find.
            on_disk = len(store.stored_clip_ids(dataset.name, computer.branch))
            stop.stored.append(f"{on_disk} of {len(clips)} clips of "
                               f"{dataset.name}/{computer.branch}")
            raise
    return RunSummary(dataset=dataset.name, branch=computer.branch, store=store.path,
                      total=len(clips), done=done, skipped=len(clips) - len(todo),
                      failed=len(failures),
                      seconds=time.perf_counter() - started, strict=strict,
                      failures=tuple(failures))
