"""The one progress-bar helper: tqdm on stderr, silent when asked or when not a terminal in CI."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled(disable: bool | None = None) -> bool:
    """Whether bars should be drawn: explicit choice, else off under ``FEATUREKIT_NO_PROGRESS``."""
    if disable is not None:
        return not disable
    return not os.environ.get("FEATUREKIT_NO_PROGRESS")


def progress_bar(iterable: Iterable[T] | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "clip", disable: bool | None = None,
                 **kwargs: Any) -> tqdm:
    """Return a tqdm bar with featurekit's defaults (rate and ETA shown, stderr).

    Parameters
    ----------
    iterable : iterable, optional
        What to wrap; ``None`` for a manually updated bar.
    total : int, optional
        Number of items, when ``iterable`` has no length.
    desc : str
        Label in front of the bar.
    unit : str
        Item name used for the rate (``clip/s``).
    disable : bool, optional
        Force the bar off (``True``) or on (``False``); by default it follows
        :func:`progress_enabled`.
    """
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr,
                disable=not progress_enabled(disable), dynamic_ncols=True, smoothing=0.1,
                **kwargs)
