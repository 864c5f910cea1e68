"""``ExtractionConfig``: every parameter that changes a handcrafted feature value.

Immutable, validated on construction, serialisable to/from a dict or TOML, and hashable into a
stable :meth:`ExtractionConfig.config_hash` that a feature store uses to refuse mixing
incompatible values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from featurekit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DESCRIPTOR_VERSION", "FAMILIES", "FUNCTIONALS", "ExtractionConfig"]

#: Descriptor families, in column order.
FAMILIES = ("pitch", "timbre", "spectral", "modulation", "rhythm", "loudness", "stationarity")
#: Functionals applied to frame-level descriptors, in column order.
FUNCTIONALS = ("mean", "std", "min", "max", "p10", "p50", "p90", "skew", "kurtosis", "slope")
#: Bumped whenever a code change alters any value, so old stores are refused, not mixed.
DESCRIPTOR_VERSION = 4


@dataclass(frozen=True)
class ExtractionConfig:
    """Parameters of the handcrafted descriptor extraction.

    Parameters
    ----------
    sample_rate : int
        Analysis rate, Hz; audio is resampled to it.
    n_fft : int
        STFT size and analysis frame length, samples (also the pitch frame).
    hop_length : int
        Hop between frames, samples.
    n_mels : int
        Mel bands for MFCC and the mel-band energy summary.
    n_mfcc : int
        MFCC coefficients, including the 0th.
    fmin_hz, fmax_hz : float
        Pitch search range, Hz. ``sample_rate / fmin_hz`` must fit in half a frame.
    mel_fmax_hz : float or None
        Upper edge of the mel filterbank, Hz (``None`` = Nyquist).
    voicing_threshold : float
        Voicing probability above which a frame counts as voiced, 0-1.
    n_harmonics : int
        Harmonics used by the harmonic descriptors.
    contrast_bands : int
        Octave bands of spectral contrast (above ``contrast_fmin_hz``).
    contrast_fmin_hz : float
        Upper edge of the lowest contrast band, Hz.
    envelope_bands : int
        Mel-band groups whose amplitude envelopes (at a quarter of the hop) feed the
        modulation and stationarity families.
    families : tuple of str
        Subset of :data:`FAMILIES`; kept in canonical order.
    functionals : tuple of str
        Subset of :data:`FUNCTIONALS` applied to scalar frame descriptors.
    max_duration_s : float or None
        Clips are truncated to this many seconds (``None`` = no limit).
    """

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 64
    n_mfcc: int = 20
    fmin_hz: float = 65.0
    fmax_hz: float = 2093.0
    mel_fmax_hz: float | None = None
    voicing_threshold: float = 0.5
    n_harmonics: int = 10
    contrast_bands: int = 6
    contrast_fmin_hz: float = 200.0
    envelope_bands: int = 6
    families: tuple[str, ...] = FAMILIES
    functionals: tuple[str, ...] = FUNCTIONALS
    max_duration_s: float | None = None

    def __post_init__(self) -> None:
        ints = ("sample_rate", "n_fft", "hop_length", "n_mels", "n_mfcc", "n_harmonics",
                "contrast_bands", "envelope_bands")
        for name in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("fmin_hz", "fmax_hz", "contrast_fmin_hz"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of Hz, got {value!r}")
            object.__setattr__(self, name, float(value))
        nyquist = self.sample_rate / 2
        if self.n_fft < 64 or self.n_fft & (self.n_fft - 1):
            raise ConfigError(f"n_fft must be a power of two >= 64, got {self.n_fft}")
        if self.hop_length > self.n_fft:
            raise ConfigError(f"hop_length ({self.hop_length}) exceeds n_fft ({self.n_fft})")
        if not self.fmin_hz < self.fmax_hz <= nyquist:
            raise ConfigError(f"need fmin_hz < fmax_hz <= Nyquist ({nyquist:g} Hz), got "
                              f"{self.fmin_hz:g} and {self.fmax_hz:g}")
        if self.sample_rate / self.fmin_hz >= self.n_fft // 2:
            raise ConfigError(
                f"fmin_hz={self.fmin_hz:g} Hz needs a lag of {self.sample_rate / self.fmin_hz:.0f}"
                f" samples, more than half the frame (n_fft/2={self.n_fft // 2}); raise fmin_hz"
                " or n_fft")
        if self.mel_fmax_hz is not None:
            if not 0 < self.mel_fmax_hz <= nyquist:
                raise ConfigError(f"mel_fmax_hz must be in (0, {nyquist:g}] Hz")
            object.__setattr__(self, "mel_fmax_hz", float(self.mel_fmax_hz))
        if self.n_mfcc > self.n_mels:
            raise ConfigError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")
        if not 0.0 < float(self.voicing_threshold) < 1.0:
            raise ConfigError("voicing_threshold must lie strictly between 0 and 1")
        object.__setattr__(self, "voicing_threshold", float(self.voicing_threshold))
        if self.contrast_fmin_hz * 2 ** self.contrast_bands > nyquist * 2:
            raise ConfigError("contrast bands exceed Nyquist: lower contrast_bands or "
                              "contrast_fmin_hz")
        object.__setattr__(self, "families",
                           _canonical_subset(self.families, FAMILIES, "families"))
        object.__setattr__(self, "functionals",
                           _canonical_subset(self.functionals, FUNCTIONALS, "functionals"))
        if self.max_duration_s is not None:
            if not float(self.max_duration_s) > 0:
                raise ConfigError("max_duration_s must be positive or None")
            object.__setattr__(self, "max_duration_s", float(self.max_duration_s))

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the parameters (lists for tuples; ``None`` values kept)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExtractionConfig:
        """Build from a mapping; unknown keys raise :class:`ConfigError`."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"configuration must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration key(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def to_toml(self) -> str:
        """TOML text; ``None`` values are omitted (TOML has no null) and restored on load."""
        return tomli_w.dumps({k: v for k, v in self.to_dict().items() if v is not None})

    @classmethod
    def from_toml(cls, source: str | os.PathLike[str]) -> ExtractionConfig:
        """Read a TOML file (a path) or TOML text. A ``[extraction]`` table is also accepted."""
        text = str(source)
        if isinstance(source, os.PathLike) or (("=" not in text) and Path(text).exists()):
            path = Path(source)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read configuration ({exc})") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML configuration: {exc}") from exc
        return cls.from_dict(data.get("extraction", data))

    def replace(self, **changes: Any) -> ExtractionConfig:
        """A copy with some parameters changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def config_hash(self) -> str:
        """16 hex digits identifying the values this configuration produces.

        A SHA-256 of canonical JSON (sorted keys, fixed float formatting) plus
        :data:`DESCRIPTOR_VERSION`, so it is the same on every platform and run.
        """
        payload = {"descriptor_version": DESCRIPTOR_VERSION, **self.to_dict()}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _canonical_subset(values: Any, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = tuple(v.strip() for v in values.split(",") if v.strip())
    values = tuple(values)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ConfigError(f"unknown {what} {unknown}; choose from {list(allowed)}")
    if not values:
        raise ConfigError(f"{what} must not be empty")
    return tuple(v for v in allowed if v in values)
