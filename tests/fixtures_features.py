"""Generated feature tables (store-read layout) where the answer is known.

Columns follow the store: ``clip_id, fold, label, label_id``, then ``pitch.*``, ``timbre.*``,
``spectral.*`` (the handcrafted families) and ``neural.<model>.emb_*`` columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

#: Maps class indices to the code a branch carries (``lambda y: y`` = the full label).
Code = Callable[[np.ndarray], np.ndarray]


def feature_frame(*, n_clips: int = 120, n_folds: int = 3, n_classes: int = 4,
                  widths: Mapping[str, int] | None = None,
                  signal: Mapping[str, tuple[Code, float]] | None = None,
                  id_column: bool = False, seed: int = 0) -> pd.DataFrame:
    """A feature table whose branches carry chosen parts of the label.

    Parameters
    ----------
    widths : mapping of branch name to column count
        Default: 5 columns each of pitch, timbre and spectral.
    signal : mapping of branch name to (code, strength)
        Branch columns are Gaussian noise plus ``strength`` times a random class-centre of
        ``code(y)``; branches not named are pure noise.
    id_column : bool
        Make the first column of every branch the row number (to trace rows into ``fit``).
    """
    widths = dict(widths or {"pitch": 5, "timbre": 5, "spectral": 5})
    signal = dict(signal or {})
    rng = np.random.default_rng(seed)
    y = np.arange(n_clips) % n_classes
    rng.shuffle(y)
    columns: dict[str, np.ndarray] = {}
    for branch, width in widths.items():
        if branch.startswith("neural."):
            names = [f"{branch}.emb_{j:03d}" for j in range(width)]
        else:
            names = [f"{branch}.d{j}.mean" for j in range(width)]
        values = rng.normal(size=(n_clips, width))
        if branch in signal:
            code, strength = signal[branch]
            codes = code(y)
            centres = rng.normal(size=(int(codes.max()) + 1, width))
            values += strength * centres[codes]
        if id_column:
            values[:, 0] = np.arange(n_clips)
        columns.update({name: values[:, j].astype(np.float32) for j, name in enumerate(names)})
    return pd.DataFrame({"clip_id": [f"clip{i:05d}" for i in range(n_clips)],
                         "fold": np.arange(n_clips) % n_folds + 1,
                         "label": [f"class{c}" for c in y], "label_id": y, **columns})


def full_label(y: np.ndarray) -> np.ndarray:
    """Code carrying the whole label."""
    return y


def low_bit(y: np.ndarray) -> np.ndarray:
    """Code carrying bit 0 of the class index."""
    return y % 2


def high_bit(y: np.ndarray) -> np.ndarray:
    """Code carrying bit 1 of the class index."""
    return (y // 2) % 2
