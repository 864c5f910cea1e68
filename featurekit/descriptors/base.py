"""What a descriptor is, how its columns are named, and the functionals that summarise it.

Each family module declares its descriptors as :class:`Descriptor` records (name, meaning, unit,
how it is summarised) and computes their values from an :class:`~featurekit.dsp.analysis.Analysis`.
Column names and values are generated from the same records, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from featurekit.config import ExtractionConfig

__all__ = ["FUNCTIONAL_MEANINGS", "Descriptor", "apply_functionals"]

FUNCTIONAL_MEANINGS = {
    "mean": "mean over frames",
    "std": "standard deviation over frames",
    "min": "minimum over frames",
    "max": "maximum over frames",
    "p10": "10th percentile over frames",
    "p50": "median over frames",
    "p90": "90th percentile over frames",
    "skew": "skewness over frames (0 when constant)",
    "kurtosis": "excess kurtosis over frames (0 when constant)",
    "slope": "least-squares slope over time, per second",
    "value": "clip-level value",
    "median": "median over voiced frames (0 when none)",
    "iqr": "interquartile range over voiced frames",
    "range": "5th-to-95th percentile range over voiced frames",
    "jitter": "mean absolute change between consecutive voiced frames",
    "fraction": "share of frames",
}


@dataclass(frozen=True)
class Descriptor:
    """One low-level descriptor (or one clip-level quantity) and how it becomes columns.

    Attributes
    ----------
    name : str
        Descriptor name inside its family (``"centroid_hz"``); banded descriptors get a
        two-digit band index appended (``"mfcc_03"``).
    meaning : str
        One line: what it measures.
    unit : str
        Unit of the frame values (``"Hz"``, ``"dB"``, ``"1"`` for dimensionless).
    bands : int, str, callable or None
        ``None`` for a scalar per frame; for a vector per frame, its width: an int, the name
        of an :class:`ExtractionConfig` field, or a function of the configuration.
    stats : tuple of str or None
        Statistics taken. ``None`` means the configuration's ``functionals`` (frame
        descriptors); an explicit tuple for compact summaries or clip-level quantities.
    frame_level : bool
        Whether it is also a column of the frame-level (LLD) matrix.
    voiced_only : bool
        Summarised over voiced frames only (and 0 on unvoiced frames of the LLD matrix).
    """

    name: str
    meaning: str
    unit: str
    bands: int | str | Callable[[ExtractionConfig], int] | None = None
    stats: tuple[str, ...] | None = None
    frame_level: bool = True
    voiced_only: bool = False

    def n_bands(self, config: ExtractionConfig) -> int | None:
        if self.bands is None or isinstance(self.bands, int):
            return self.bands
        if isinstance(self.bands, str):
            return int(getattr(config, self.bands))
        return int(self.bands(config))

    def statistics(self, config: ExtractionConfig) -> tuple[str, ...]:
        return config.functionals if self.stats is None else self.stats

    def frame_columns(self, family: str, config: ExtractionConfig) -> list[str]:
        """Names of this descriptor's LLD columns (``family.name`` or ``family.name_03``)."""
        n = self.n_bands(config)
        if n is None:
            return [f"{family}.{self.name}"]
        return [f"{family}.{self.name}_{band:02d}" for band in range(n)]

    def columns(self, family: str, config: ExtractionConfig) -> list[str]:
        """Names of this descriptor's clip-level columns, band-major then statistic."""
        return [f"{base}.{stat}" for base in self.frame_columns(family, config)
                for stat in self.statistics(config)]


def _moments(centred: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Constant descriptors have undefined shape statistics; 0 keeps vectors finite.
    safe = np.where(std > 1e-12, std, 1.0)
    z = centred / safe
    valid = std > 1e-12
    skew = np.where(valid, np.mean(z**3, axis=0), 0.0)
    kurt = np.where(valid, np.mean(z**4, axis=0) - 3.0, 0.0)
    return skew, kurt


def _slope(values: np.ndarray, times: np.ndarray) -> np.ndarray:
    if values.shape[0] < 2:
        return np.zeros(values.shape[1])
    t = times - times.mean()
    return (t @ (values - values.mean(axis=0))) / (t @ t)


_STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "mean": lambda v, t, c: v.mean(axis=0),
    "std": lambda v, t, c: v.std(axis=0),
    "min": lambda v, t, c: v.min(axis=0),
    "max": lambda v, t, c: v.max(axis=0),
    "p10": lambda v, t, c: c["percentiles"][0],
    "p50": lambda v, t, c: c["percentiles"][1],
    "p90": lambda v, t, c: c["percentiles"][2],
    "skew": lambda v, t, c: c["moments"][0],
    "kurtosis": lambda v, t, c: c["moments"][1],
    "slope": lambda v, t, c: _slope(v, t),
}


def apply_functionals(values: np.ndarray, times: np.ndarray,
                      stats: Sequence[str]) -> np.ndarray:
    """Summarise frame values by statistics, column by column.

    Parameters
    ----------
    values : np.ndarray, shape (n_frames, n_columns)
        Frame-level values. With zero frames every statistic is 0.
    times : np.ndarray, shape (n_frames,)
        Frame times, seconds (for ``slope``).
    stats : sequence of str
        Names from :data:`FUNCTIONAL_MEANINGS` (except ``"value"``).

    Returns
    -------
    np.ndarray, shape (n_columns, len(stats))
        Finite float64 values; column-major order matches :meth:`Descriptor.columns`.
    """
    n_columns = values.shape[1]
    if values.shape[0] == 0:
        return np.zeros((n_columns, len(stats)))
    cache: dict[str, tuple[np.ndarray, ...]] = {}
    if {"p10", "p50", "p90"} & set(stats):
        cache["percentiles"] = tuple(np.percentile(values, [10, 50, 90], axis=0))
    if {"skew", "kurtosis"} & set(stats):
        mean = values.mean(axis=0)
        cache["moments"] = _moments(values - mean, values.std(axis=0))
    out = np.empty((n_columns, len(stats)))
    for j, stat in enumerate(stats):
        out[:, j] = _STATISTICS[stat](values, times, cache)
    return out
