"""The one way featurekit runs tasks in parallel: joblib processes on this machine, or a Dask
cluster through joblib's Dask backend.

Extraction (:mod:`featurekit.computers.runner`), the benchmark's fits and fusions
(:mod:`featurekit.benchmark.execute`, :mod:`featurekit.benchmark.fuse`) and the features of new
clips (:mod:`featurekit.model.clip_features`) all dispatch through :func:`run_tasks`. joblib and
distributed
are imported on first use: the CLI reads :data:`BACKENDS` to build its parser.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from featurekit._util.optional import require
from featurekit.errors import ConfigError

__all__ = ["BACKENDS", "check_backend", "dask_client", "run_tasks"]

#: Where tasks run: joblib's loky processes on this machine, or a Dask cluster.
BACKENDS = ("loky", "dask")


def check_backend(backend: str, scheduler: str | None) -> None:
    """Refuse an unknown backend, a scheduler address without the Dask backend, or the Dask
    backend without its extra (before any work starts).

    Raises
    ------
    ConfigError
        Unknown backend, or a scheduler without ``backend="dask"``.
    MissingDependencyError
        ``backend="dask"`` without ``featurekit[dask]``.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if scheduler is not None and backend != "dask":
        raise ConfigError("a scheduler address needs backend='dask'")
    if backend == "dask":
        _distributed()


def _distributed() -> Any:
    return require("distributed", extra="dask", purpose="backend='dask'")


@contextlib.contextmanager
def dask_client(scheduler: str | None, n_workers: int) -> Iterator[Any]:
    """A distributed client on ``scheduler``, or on a LocalCluster that lives as long as it.

    Raises
    ------
    ConfigError
        The scheduler cannot be reached.
    """
    distributed = _distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        with client:
            yield client
        return
    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def run_tasks(tasks: Sequence[Any], *, n_jobs: int, backend: str = "loky",
              scheduler: str | None = None, ordered: bool = True) -> Iterator[Any]:
    """Results of joblib ``delayed`` tasks on processes or a Dask cluster.

    Parameters
    ----------
    tasks : sequence of joblib delayed calls
    n_jobs : int
        Worker processes (joblib convention: ``-1`` = all cores). With the loky backend and
        one worker, tasks run in this process, one after the other.
    backend : {"loky", "dask"}
        Each loky worker is pinned to one BLAS/OpenMP thread; ``"dask"`` runs on the
        scheduler at ``scheduler``, or on a LocalCluster of ``n_jobs`` single-threaded
        workers started (and closed) for these tasks.
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    ordered : bool
        Yield results in task order (``True``), or each as soon as it finishes, one task per
        dispatch (``False``: long tasks do not hold back short ones).

    Yields
    ------
    object
        Each task's return value.

    Notes
    -----
    Close the generator when leaving early (``contextlib.closing``): closing it, or an
    exception raised while it waits (Ctrl-C), kills the loky workers at once, or drops the
    Dask tasks not yet started and closes the LocalCluster (tasks already running on an
    existing scheduler's workers cannot be preempted and finish there unused). A generator
    left open keeps its workers computing until it is garbage collected.
    """
    from joblib import Parallel, effective_n_jobs, parallel_config

    returned = "generator" if ordered else "generator_unordered"
    options: dict[str, Any] = {} if ordered else {"batch_size": 1}
    if backend == "loky":
        if effective_n_jobs(n_jobs) == 1:
            for function, args, kwargs in tasks:
                yield function(*args, **kwargs)
            return
        with parallel_config(backend="loky", inner_max_num_threads=1):
            yield from _closed_quietly(
                Parallel(n_jobs=n_jobs, return_as=returned, **options)(tasks))
        return
    with dask_client(scheduler, effective_n_jobs(n_jobs)), parallel_config(backend="dask"):
        yield from _closed_quietly(Parallel(n_jobs=-1, return_as=returned, **options)(tasks))


def _closed_quietly(results: Generator[Any, None, None]) -> Iterator[Any]:
    """``results``, closed without joblib's warning that tasks were cancelled or unused: a
    caller that stops early (an exception, Ctrl-C) means to, and the warning's advice (adjust
    the task iterator) would mislead."""
    try:
        # Not ``yield from``: it would close ``results`` before the filter below is in place.
        for result in results:  # noqa: UP028
            yield result
    finally:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"\d+ tasks", category=UserWarning)
            results.close()
