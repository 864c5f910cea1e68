"""The contract between what computes features for one clip and what runs it over a dataset.

A *branch* is one group of columns in a feature store (``handcrafted``, ``neural.mn04_as``).
Anything that implements :class:`BranchComputer` can be run by
:func:`featurekit.computers.runner.run_branch` over a dataset's clips, with batching, resumption,
per-clip error records and a progress bar.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from threadpoolctl import threadpool_limits

from featurekit.store.records import ClipFailure, ClipResult

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)




@runtime_checkable
class BranchComputer(Protocol):
    """Computes one branch's features for batches of audio files.

    Implementations must be picklable (the runner ships them to worker processes) and
    deterministic: the same file gives bit-identical values in any process.

    A computer may also have a ``clips_per_task`` attribute (int or ``None``): the clips it
    wants per :meth:`compute_batch` call when the caller does not choose (a neural branch on
    a GPU asks for many, so that its decoding workers keep the GPU busy).
    """

    #: Store branch name, e.g. ``"handcrafted"`` or ``"neural.mn04_as"``.
    branch: str
    #: Whether the runner may spread batches over worker processes. Models that use many
    #: threads internally (torch) say ``False`` and are run in the calling process.
    process_parallel: bool

    @property
    def feature_names(self) -> list[str]:
        """Column names, in value order."""
        ...

    def provenance(self) -> Mapping[str, Any]:
        """JSON-serialisable facts stored with every part: ``config`` (dict),
        ``config_hash`` (str), ``versions`` (dict) and any flags such as ``untrained``."""
        ...

    def config_hash(self) -> str:
        """Stable hash of everything that changes the values; a store refuses to mix hashes."""
        ...

    def compute_batch(self, paths: Sequence[str], *,
                      frames: bool = False) -> list[ClipResult | BaseException]:
        """Features of each path, or the exception that clip raised (never raised itself
        for a per-clip problem, so one bad file cannot stop a batch)."""
        ...




def compute_batch_safely(computer: BranchComputer, index: int, paths: Sequence[str],
                         frames: bool, pin_threads: bool, *, running: str | None = None,
                         ) -> tuple[int, list[ClipResult | ClipFailure]]:
    """Worker task: one batch's outcomes, every exception turned into a :class:`ClipFailure`.

    It lives here, beside the contract, so that a worker process imports only this module and
    the computer's own (not the store, pandas or pyarrow): workers start in about half the time.

    ``running`` names a file that exists exactly while the batch is computed: when a clip
    kills its worker process, the runner finds the batches that were in flight from these
    files (see :func:`featurekit.computers.runner.run_branch`).
    """
    limits = threadpool_limits(limits=1) if pin_threads else contextlib.nullcontext()
    if running:
        Path(running).touch()
    try:
        with limits:
            outcomes = list(computer.compute_batch(list(paths), frames=frames))
    except Exception as exc:  # a failure of the whole batch must not end a long run
        logger.exception("compute_batch failed for a whole batch")
        return index, [ClipFailure.from_exception(exc)] * len(paths)
    finally:
        if running:
            Path(running).unlink()
    if len(outcomes) != len(paths):
        failure = ClipFailure("RuntimeError", f"compute_batch returned {len(outcomes)} "
                                              f"results for {len(paths)} paths")
        return index, [failure] * len(paths)
    return index, [ClipFailure.from_exception(outcome) if isinstance(outcome, BaseException)
                   else outcome for outcome in outcomes]
