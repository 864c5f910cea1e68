"""Descriptor families and the assembly of their named clip vectors and frame matrices.

One module per family (:mod:`~featurekit.descriptors.pitch`,
:mod:`~featurekit.descriptors.timbre`, :mod:`~featurekit.descriptors.spectral`,
:mod:`~featurekit.descriptors.modulation`, :mod:`~featurekit.descriptors.rhythm`,
:mod:`~featurekit.descriptors.loudness`, :mod:`~featurekit.descriptors.stationarity`), each with
``FAMILY``, ``DESCRIPTORS`` and ``compute(analysis) -> (frame_values, clip_values)``. Names and
values are both generated from ``DESCRIPTORS``, family by family, in
:data:`featurekit.config.FAMILIES` order.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from featurekit.config import ExtractionConfig
from featurekit.descriptors import (
    loudness,
    modulation,
    pitch,
    rhythm,
    spectral,
    stationarity,
    timbre,
)
from featurekit.descriptors.base import FUNCTIONAL_MEANINGS, Descriptor, apply_functionals

if TYPE_CHECKING:
    from featurekit.dsp.analysis import Analysis

__all__ = ["FAMILY_MODULES", "CatalogEntry", "catalog", "clip_vector", "feature_names",
           "frame_matrix", "frame_names"]

FAMILY_MODULES: dict[str, ModuleType] = {
    module.FAMILY: module
    for module in (pitch, timbre, spectral, modulation, rhythm, loudness, stationarity)
}


class CatalogEntry(NamedTuple):
    """One clip-level column: its name, one-line meaning and unit."""

    name: str
    meaning: str
    unit: str


def _descriptors(config: ExtractionConfig) -> list[tuple[str, Descriptor]]:
    return [(family, d) for family in config.families
            for d in FAMILY_MODULES[family].DESCRIPTORS]


def feature_names(config: ExtractionConfig) -> list[str]:
    """Clip-level column names, ``family.descriptor.statistic``, in value order."""
    return [name for family, d in _descriptors(config) for name in d.columns(family, config)]


def frame_names(config: ExtractionConfig) -> list[str]:
    """Frame-level (LLD) column names, ``family.descriptor``, in matrix order."""
    return [name for family, d in _descriptors(config) if d.frame_level
            for name in d.frame_columns(family, config)]


def _stat_unit(unit: str, stat: str) -> str:
    if stat in ("skew", "kurtosis", "fraction"):
        return "1"
    if stat == "slope":
        return f"{unit}/s"
    if stat == "jitter":
        return f"{unit}/frame"
    return unit


def catalog(config: ExtractionConfig) -> list[CatalogEntry]:
    """Every clip-level column with its meaning and unit, in value order."""
    entries = []
    for family, d in _descriptors(config):
        for base in d.frame_columns(family, config):
            for stat in d.statistics(config):
                summary = FUNCTIONAL_MEANINGS[stat]
                if d.voiced_only:
                    summary = summary.replace("over frames", "over voiced frames")
                meaning = f"{d.meaning}; {summary}"
                entries.append(CatalogEntry(f"{base}.{stat}", meaning, _stat_unit(d.unit, stat)))
    return entries


def _family_values(analysis: Analysis):
    for family in analysis.config.families:
        module = FAMILY_MODULES[family]
        frames, clip = module.compute(analysis)
        yield family, module.DESCRIPTORS, frames, clip


def clip_vector(analysis: Analysis) -> np.ndarray:
    """The clip-level feature vector, float32, in :func:`feature_names` order.

    Descriptors summarised by the same statistics are stacked column-wise and summarised in
    one call, then scattered back into name order.

    Raises
    ------
    FloatingPointError
        If any value is not finite. Inputs that could cause it (NaN/Inf, magnitudes beyond
        :data:`featurekit.io.audio.MAX_ABS_SAMPLE`) are refused by the loader, so this is a bug.
    """
    config = analysis.config
    parts: list[np.ndarray | None] = []
    pending: dict[tuple[str, ...], list[tuple[int, np.ndarray]]] = {}
    for _, descriptors, frames, clip in _family_values(analysis):
        for d in descriptors:
            if d.name in clip:
                parts.append(np.asarray(clip[d.name], dtype=np.float64).ravel())
            else:
                values = frames[d.name].reshape(analysis.n_frames, -1)
                pending.setdefault(d.statistics(config), []).append((len(parts), values))
                parts.append(None)
    for stats, blocks in pending.items():
        stacked = np.concatenate([values for _, values in blocks], axis=1).astype(np.float64)
        summary = apply_functionals(stacked, analysis.times, stats)
        start = 0
        for position, values in blocks:
            width = values.shape[1]
            parts[position] = summary[start : start + width].ravel()
            start += width
    vector = np.concatenate(parts)
    if not np.all(np.isfinite(vector)):
        names = np.asarray(feature_names(config))[~np.isfinite(vector)]
        raise FloatingPointError(f"non-finite descriptor values: {list(names[:5])}")
    return vector.astype(np.float32)


def frame_matrix(analysis: Analysis) -> np.ndarray:
    """Frame-level descriptors, ``(n_frames, len(frame_names(config)))`` float32."""
    columns = []
    for _, descriptors, frames, _ in _family_values(analysis):
        for d in descriptors:
            if d.frame_level:
                columns.append(frames[d.name].reshape(analysis.n_frames, -1))
    return np.concatenate(columns, axis=1).astype(np.float32)
