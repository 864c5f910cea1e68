"""How much memory this process has held at most, for the benchmark's plan and its record."""

from __future__ import annotations

import sys


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process so far, in bytes.

    Returns
    -------
    int or None
        ``getrusage``'s ``ru_maxrss`` (kibibytes on Linux, bytes on macOS) in bytes; None where
        the :mod:`resource` module does not exist (Windows).
    """
    try:
        import resource
    except ImportError:
        return None
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024
