"""Clips to waveforms at a model's rate, decoded and resampled in worker processes.

Decoding (libsndfile) and resampling (soxr HQ) of a clip cost from a third of mn04_as's
forward pass on one CPU core (UrbanSound8K's FLAC) to as much as the pass (ESC-10's OGG), and
many times the pass on a GPU. :func:`load_clips` therefore spreads them over joblib's loky
worker processes (the one dispatch, :func:`featurekit._util.parallel.run_tasks`), which hand the
clips back in order, decoding ahead of the consumer.

This module imports neither torch nor the models, so the worker processes that unpickle its
functions never load torch, let alone initialise CUDA: the network runs in the calling
process only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from featurekit._util.parallel import run_tasks
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


def load_clips(sources: Sequence[Source], rate: int, *, min_samples: int,
               sr: int | None = None, n_jobs: int = 1) -> Iterator[LoadedClip | Exception]:
    """:func:`load_clip` of each source, in order, computed by ``n_jobs`` worker processes.

    Parameters
    ----------
    sources : sequence of path-like or np.ndarray
    rate, min_samples, sr
        As in :func:`load_clip`.
    n_jobs : int, keyword-only
        Worker processes (joblib convention: ``-1`` = all cores); with 1 the clips are
        loaded in this process, one when it is asked for.

    Yields
    ------
    (np.ndarray, tuple of str) or Exception
        As :func:`load_clip` returns them. The workers do not wait for the consumer: every
        clip of ``sources`` may be in memory at once. A worker process that dies (a decoder
        crash) raises joblib's ``TerminatedWorkerError`` here.
    """
    from joblib import delayed

    yield from run_tasks([delayed(load_clip)(source, rate, min_samples=min_samples, sr=sr)
                          for source in sources], n_jobs=n_jobs)
