"""Rows of a large array, read only when a batch asks for them.

Frame sequences grow with the dataset (FSD50K's log-mel input alone is about 4 GB, the
handcrafted frames tens of GB), so the benchmark keeps them in memory-mapped ``.npy`` files
(:func:`featurekit.store.sequences.load_sequences`) and hands each head a :class:`RowView`:
the clips of its training or test rows, by position, without copying them. Heads read it
batch by batch (``view[index]``), so what a fit holds is one batch, not the set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RowView"]


def _reopened(path: str, shape: tuple[int, ...], rows: np.ndarray) -> RowView:
    values = np.load(path, mmap_mode="r")
    if values.shape != tuple(shape):
        raise ValueError(f"{path} holds an array of shape {values.shape}, not the "
                         f"{tuple(shape)} it held when this view was made")
    return RowView(values, rows)


class RowView:
    """Rows ``rows`` of ``values`` (positions along its first axis), read on indexing.

    Parameters
    ----------
    values : np.ndarray
        The whole array, typically a read-only :class:`numpy.memmap` of a ``.npy`` file.
    rows : array-like of int
        Positions of this view's rows in ``values``, in order (repeats allowed).

    Notes
    -----
    ``view[index]`` returns the rows ``index`` of the view as an in-memory array;
    :meth:`take` returns a narrower view without reading anything. Pickled (to a loky or Dask
    worker), a view of a memory-mapped ``.npy`` file carries its path and rows only, so the
    worker maps the same file (which it must see at the same path); a view of an in-memory
    array carries its own rows.
    """

    def __init__(self, values: np.ndarray, rows: Any) -> None:
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise ValueError(f"rows must be a 1-D array of integer positions, got "
                             f"{rows.dtype} of shape {rows.shape}")
        rows = rows.astype(np.int64)
        if rows.size and (rows.min() < -len(values) or rows.max() >= len(values)):
            raise IndexError(f"rows out of range for an array of {len(values)} rows")
        self.values = values
        self.rows = rows

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows.size, *self.values.shape[1:])

    @property
    def ndim(self) -> int:
        return self.values.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    def __len__(self) -> int:
        return self.rows.size

    def __getitem__(self, index: Any) -> np.ndarray:
        """Rows of the view read into memory, indexed as the array they stand for: the first
        index (an int, a slice, integer positions or a boolean mask) picks rows, any further
        ones apply to what was read (``view[rows, :, 2]``, ``view[..., 2]``)."""
        first, rest = (index[0], index[1:]) if isinstance(index, tuple) else (index, ())
        if first is Ellipsis:
            return np.asarray(self)[index]
        picked = self.rows[first]
        values = np.asarray(self.values[picked])
        if not rest:
            return values
        return values[(slice(None), *rest)] if np.ndim(picked) else values[rest]

    def take(self, index: Any) -> RowView:
        """The view of rows ``index`` of this view; reads nothing."""
        return RowView(self.values, np.atleast_1d(self.rows[index]))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("a RowView cannot be turned into an array without a copy")
        values = np.asarray(self.values[self.rows])
        return values if dtype is None else values.astype(dtype, copy=False)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        filename = getattr(self.values, "filename", None)
        if isinstance(self.values, np.memmap) and filename is not None \
                and Path(filename).suffix == ".npy":
            return _reopened, (str(filename), self.values.shape, self.rows)
        return RowView, (np.asarray(self), np.arange(self.rows.size))

    def __repr__(self) -> str:
        source = getattr(self.values, "filename", None) or "an in-memory array"
        return f"RowView({self.rows.size} of {len(self.values)} rows of {source})"
