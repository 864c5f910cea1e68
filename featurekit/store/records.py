"""What a store holds of one clip: its features (:class:`ClipResult`) or why it has none
(:class:`ClipFailure`). Computers produce them; writers store them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ClipResult:
    """Features of one clip.

    Attributes
    ----------
    values : np.ndarray, float32, shape (n_features,)
        Clip-level features, in the order of :attr:`BranchComputer.feature_names`.
    notes : tuple of str
        What the loader did to the clip (resampled, truncated, zero-padded ...).
    frames : pandas.DataFrame or None
        Frame-level descriptors (a ``time_s`` column then named LLD columns), only when the
        computer was asked for them.
    """

    values: np.ndarray
    notes: tuple[str, ...] = ()
    frames: pd.DataFrame | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ClipFailure:
    """Why one clip has no features: the exception type name and its message."""

    error_type: str
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> ClipFailure:
        """Describe ``exc`` (the exception itself may not survive pickling between processes)."""
        return cls(type(exc).__name__, str(exc) or repr(exc))
