"""Clips to waveforms at a model's rate, decoded and resampled by threads ahead of the network.

Decoding (libsndfile) and resampling (soxr HQ) of a clip cost from a third of mn04_as's
forward pass on one CPU core (UrbanSound8K's FLAC) to as much as the pass (ESC-10's OGG), and
many times the pass on a GPU. :func:`load_clips` spreads them over threads of the calling
process, which hand the clips over in order.

Why threads, on the CPU and on CUDA alike: both libraries release the GIL while they work, so
threads decode in parallel without starting processes or pickling every waveform back from
them, and no second process could ever initialise CUDA. ``benchmarks/bench_decoding.py``
measured, on two cores, ESC-10 (5-s OGG) at 102 clips/s in one thread, 183 in two threads,
86 in two loky processes; UrbanSound8K (short FLAC) at 352, 355 and 228. Threads win on the
CPU; on CUDA the decoding is the same CPU work beside a thread that mostly waits for the GPU
(not measured here: no GPU; ``benchmarks/gpu_check.sh`` runs the script there). A decoder
that crashes in native code now ends the command instead of a worker (a store run resumes
where it stopped), as it always did with one job.

How far ahead: at most ``ahead`` clips are decoded, or being decoded, and not yet taken (a
few batches, see :func:`featurekit.neural.embedding.load_for`), however many sources there
are; ``sources`` may be a generator, read only as far as that. ``overlap`` says whether
decoding goes on while the consumer works: on a GPU it should (the CPU would otherwise idle),
on the CPU it should not (the decoding threads would take the cores of the network's torch
threads, and an intra-op thread that loses its core stalls the others at the next barrier:
the network runs several times slower), so the next ``ahead`` clips are decoded on every core
and only then handed over.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from itertools import islice

import numpy as np

from featurekit.errors import ConfigError
from featurekit.io.audio import load_audio_with_info, prepare_waveform

__all__ = ["LoadedClip", "load_clip", "load_clips"]

#: A clip ready for the model: float32 mono samples, and what the loader did to it.
LoadedClip = tuple[np.ndarray, tuple[str, ...]]
Source = str | os.PathLike[str] | np.ndarray


def load_clip(source: Source, rate: int, *, min_samples: int,
              sr: int | None = None) -> LoadedClip | Exception:
    """One clip as float32 mono at ``rate`` Hz, or the exception that loading it raised.

    Parameters
    ----------
    source : path-like or np.ndarray
        Audio file, or samples at ``sr`` Hz (``(n,)`` or ``(n, channels)``).
    rate : int
        Model rate, Hz.
    min_samples : int, keyword-only
        Shorter clips are zero-padded to this many samples (with a note).
    sr : int, keyword-only, optional
        Rate of array sources, Hz.

    Returns
    -------
    (np.ndarray, tuple of str) or Exception
        The samples and the loader's notes; an exception is returned, not raised, so that one
        bad clip cannot stop the others.
    """
    try:
        if isinstance(source, np.ndarray):
            if sr is None:
                raise ConfigError("arrays need their sample rate (sr)")
            y, info = prepare_waveform(source, sr, target_sr=rate, min_samples=min_samples)
        else:
            y, info = load_audio_with_info(source, rate, min_samples=min_samples)
    except Exception as exc:  # recorded per clip by the caller
        return exc
    return y, info.notes


def load_clips(sources: Iterable[Source], rate: int, *, min_samples: int,
               sr: int | None = None, n_jobs: int = 1, ahead: int = 32,
               overlap: bool = True) -> Iterator[LoadedClip | Exception]:
    """:func:`load_clip` of each source, in order, computed by ``n_jobs`` threads.

    Parameters
    ----------
    sources : iterable of path-like or np.ndarray
        Read lazily: at most ``ahead`` sources beyond those already yielded.
    rate, min_samples, sr
        As in :func:`load_clip`.
    n_jobs : int, keyword-only
        Decoding threads (joblib convention: ``-1`` = all cores); with 1 the clips are
        loaded in the calling thread, each when it is asked for.
    ahead : int, keyword-only
        Most clips decoded, or being decoded, and not yet yielded.
    overlap : bool, keyword-only
        Go on decoding while the consumer works (on a GPU); with ``False``, decode the next
        ``ahead`` clips only once the consumer asks for one, and yield them once all are
        decoded (on the CPU, see the module docstring).

    Yields
    ------
    (np.ndarray, tuple of str) or Exception
        As :func:`load_clip` returns them.
    """
    from joblib import effective_n_jobs

    if ahead < 1:
        raise ConfigError(f"ahead must be >= 1, got {ahead}")
    load = partial(load_clip, rate=rate, min_samples=min_samples, sr=sr)
    n_threads = effective_n_jobs(n_jobs)
    if n_threads == 1:
        yield from map(load, sources)
        return
    pool = ThreadPoolExecutor(n_threads, thread_name_prefix="featurekit-decoding")
    remaining = iter(sources)
    waiting: deque[Future[LoadedClip | Exception]] = deque()
    try:
        while True:
            if overlap or not waiting:
                waiting.extend(pool.submit(load, source)
                               for source in islice(remaining, ahead - len(waiting)))
                if not overlap:
                    wait(waiting)
            if not waiting:
                return
            yield waiting.popleft().result()
    finally:
        # Left early (the consumer failed, Ctrl-C): drop what has not started; at most one
        # clip per thread is still finished.
        pool.shutdown(wait=True, cancel_futures=True)
