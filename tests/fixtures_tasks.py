"""Tasks for worker processes, in a module of their own so that a fresh worker imports
little (loky starts new workers when one dies or is replaced)."""

from __future__ import annotations

import os
from pathlib import Path


def square(value: int) -> tuple[int, int]:
    """A deterministic result, and the process that computed it."""
    return value * value, os.getpid()


def square_dying_once(value: int, marker: str) -> tuple[int, int]:
    """Kills its worker process the first time it runs (as a crash in native code would)."""
    if not Path(marker).exists():
        Path(marker).touch()
        os._exit(3)
    return square(value)


def square_always_dying(value: int) -> tuple[int, int]:
    os._exit(3)


def square_with_restarts(value: int) -> tuple[int, int]:
    """Makes loky's leak protection replace this worker after each of its next tasks."""
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = -1
    process_executor._MEMORY_LEAK_CHECK_DELAY = -1
    return square(value)
