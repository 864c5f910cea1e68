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
import itertools
import logging
import warnings
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from typing import Any

from featurekit._util.optional import require
from featurekit.errors import ConfigError, WorkerLostError

logger = logging.getLogger(__name__)

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
              scheduler: str | None = None, ordered: bool = True,
              here: Collection[int] = (), retries: int = 1,
              names: Sequence[str] | None = None) -> Iterator[Any]:
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
    here : collection of int
        Positions of the tasks to run in this process, one after the other, while the
        workers compute the others: tasks that use a GPU this process owns, so that no
        worker ever initialises CUDA.
    retries : int
        loky backend: how many times the tasks lost with a worker process that died (a crash
        in native code, the operating system killing it for memory) run again on fresh
        workers. Tasks must be deterministic (the same result in any process); results
        already computed are kept. With 0, joblib's ``TerminatedWorkerError`` is raised at
        once, for callers that isolate the task that kills its worker themselves. (Dask
        reschedules the tasks of a lost worker itself.)
    names : sequence of str, optional
        What each task computes, for the error that names the tasks still lost.

    Yields
    ------
    object
        Each task's return value.

    Raises
    ------
    WorkerLostError
        Workers still died after ``retries`` runs (``retries`` > 0); it names the tasks left.

    Notes
    -----
    Close the generator when leaving early (``contextlib.closing``): closing it, or an
    exception raised while it waits (Ctrl-C), kills the loky workers at once, or drops the
    Dask tasks not yet started and closes the LocalCluster (tasks already running on an
    existing scheduler's workers cannot be preempted and finish there unused). A generator
    left open keeps its workers computing until it is garbage collected.

    loky's warning "A worker stopped while some jobs were given to the executor" is not a
    lost task: a worker whose memory grew by more than 300 MB since its first task (loky's
    leak protection; importing torch alone adds about 220 MB, so a worker whose first fit
    was not a torch head's grows that much with its first torch fit) hands its result back,
    exits, and is replaced; the tasks waiting go to the other workers.
    """
    from joblib import effective_n_jobs, parallel_config

    local = set(here)
    if backend == "loky" and effective_n_jobs(n_jobs) == 1:
        local = set(range(len(tasks)))
    with contextlib.ExitStack() as stack:
        if backend == "loky":
            stack.enter_context(parallel_config(backend="loky", inner_max_num_threads=1))
        else:
            stack.enter_context(dask_client(scheduler, effective_n_jobs(n_jobs)))
            stack.enter_context(parallel_config(backend="dask"))
            n_jobs = -1

        def start(positions: list[int]) -> Generator[tuple[int, Any], None, None]:
            return _dispatched(tasks, positions, n_jobs=n_jobs, ordered=ordered)

        remote = [position for position in range(len(tasks)) if position not in local]
        # Dispatched first (joblib starts at once), so that the workers compute while this
        # process runs its own tasks; no pool is started for none.
        results = (_retried(start(remote), start, remote, names=names,
                            retries=retries if backend == "loky" else 0) if remote else None)
        # Computed as the caller asks for results (lazily, like the workers' results).
        own = ((position, _called(tasks[position])) for position in sorted(local))
        done: dict[int, Any] = {}  # ordered: results waiting for those before them
        following = 0  # ordered: the next position to yield
        try:
            for position, result in itertools.chain(own, results or ()):
                if not ordered:
                    yield result
                    continue
                done[position] = result
                while following in done:
                    yield done.pop(following)
                    following += 1
        finally:
            if results is not None:
                results.close()


def _called(task: Any) -> Any:
    function, args, kwargs = task
    return function(*args, **kwargs)


class _Numbered:
    """``function``, returning ``(position, its result)``: a worker's result tells its task.
    Named as ``function``, which Dask names its tasks after."""

    def __init__(self, position: int, function: Callable[..., Any]) -> None:
        self.position, self.function = position, function
        self.__name__ = getattr(function, "__name__", type(function).__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        return self.position, self.function(*args, **kwargs)


def _dispatched(tasks: Sequence[Any], positions: list[int], *, n_jobs: int,
                ordered: bool) -> Generator[tuple[int, Any], None, None]:
    """``(position, result)`` of the tasks at ``positions``, under the joblib backend in force;
    joblib dispatches them at once (not when the generator is first advanced)."""
    from joblib import Parallel

    returned = "generator" if ordered else "generator_unordered"
    options: dict[str, Any] = {} if ordered else {"batch_size": 1}
    numbered = []
    for position in positions:
        function, args, kwargs = tasks[position]
        numbered.append((_Numbered(position, function), args, kwargs))
    return Parallel(n_jobs=n_jobs, return_as=returned, **options)(numbered)


def _retried(results: Generator[tuple[int, Any], None, None],
             start: Callable[[list[int]], Generator[tuple[int, Any], None, None]],
             positions: list[int], *, retries: int,
             names: Sequence[str] | None) -> Generator[tuple[int, Any], None, None]:
    """``results`` of the tasks at ``positions``; the tasks lost with a dead worker are
    started again by ``start`` (at most ``retries`` times)."""
    from concurrent.futures.process import BrokenProcessPool

    left = dict.fromkeys(positions)  # the positions not yielded, in order
    attempt = 0
    while True:
        try:
            with contextlib.closing(_closed_quietly(results)) as each:
                for position, result in each:
                    del left[position]
                    yield position, result
            return
        except BrokenProcessPool as exc:
            if not retries:
                raise
            lost = [names[position] if names else f"task {position}" for position in left]
            if attempt == retries:
                shown = ", ".join(lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5
                                               else "")
                raise WorkerLostError(
                    f"a worker process died again after {retries} retr"
                    f"{'y' if retries == 1 else 'ies'}; {len(lost)} task(s) not computed: "
                    f"{shown}. {exc}") from exc
            attempt += 1
            logger.warning("a worker process died; running the %d task(s) it may have lost "
                           "again (%d of %d retries): %s", len(lost), attempt, retries, exc)
            results = start(list(left))


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
