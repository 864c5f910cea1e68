"""Corrupted copies of clips: the test-time corruptions of a robustness benchmark.

A corruption spec names one kind and its severities, e.g. ``noise:snr=20/10/0``,
``lowpass:hz=4000/2000``, ``gain:db=-30``, ``mp3:kbps=32``, ``reverb:rt60=0.6`` or
``background:dir=PATH:snr=10`` (real recordings mixed in as background); several specs are
joined by commas (:func:`parse_corruptions`). Each severity is one :class:`Corruption`.

:class:`CorruptedComputer` wraps any store branch's computer: it decodes each clip at its own
rate, corrupts it deterministically (the generator is seeded by the run's seed, the
corruption and the clip's file name, so a clip is corrupted the same way in any process and
on any rerun), and hands the corrupted audio to the wrapped computer as a float32 WAV file in
a temporary folder. The computer's values are those it computes on that audio; the wrapper's
configuration hash adds the corruption and the seed, so a store never mixes corrupted and
clean values, or two corruptions.

The signal functions are :mod:`featurekit.dsp.corruptions` (ours, not an augmentation
library's: audiomentations draws every random value from the process-global ``random`` and
``numpy.random`` states, scales noise to an expected rather than a measured power, and has
no reverberation parameterised by RT60).
"""

from __future__ import annotations

import hashlib
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from featurekit.computers.base import BranchComputer
from featurekit.dsp import corruptions as dsp
from featurekit.errors import ConfigError
from featurekit.io.audio import load_audio

__all__ = ["CORRUPTION_KINDS", "CorruptedComputer", "Corruption", "parse_corruptions"]

#: Each kind's severity parameter, its unit, and the bounds a value must lie in.
CORRUPTION_KINDS: dict[str, tuple[str, str, float, float]] = {
    "noise": ("snr", "dB SNR", -30.0, 100.0),
    "background": ("snr", "dB SNR", -30.0, 100.0),
    "lowpass": ("hz", "Hz cutoff", 20.0, 96_000.0),
    "gain": ("db", "dB", -120.0, 40.0),
    "mp3": ("kbps", "kbit/s", 8.0, 320.0),
    "reverb": ("rt60", "s RT60", 0.05, 10.0),
}

#: Audio files a background folder may hold.
BACKGROUND_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass(frozen=True)
class Corruption:
    """One corruption at one severity.

    Attributes
    ----------
    kind : str
        A key of :data:`CORRUPTION_KINDS`.
    value : float
        The severity, in the kind's unit (dB SNR, Hz, dB, kbit/s, seconds).
    background : tuple of str
        ``background``: the recordings mixed in (absolute paths, sorted).
    source : str
        ``background``: the folder they came from.
    """

    kind: str
    value: float
    background: tuple[str, ...] = field(default=(), repr=False)
    source: str = ""

    @property
    def parameter(self) -> str:
        return CORRUPTION_KINDS[self.kind][0]

    @property
    def name(self) -> str:
        """A plain name for folders and results: ``noise-snr10``, ``lowpass-hz2000``,
        ``background-street-snr10``."""
        where = f"-{Path(self.source).name}" if self.source else ""
        return f"{self.kind}{where}-{self.parameter}{self.value:g}"

    @property
    def severity(self) -> str:
        """``snr=10``, ``hz=2000``: the severity as the spec wrote it."""
        return f"{self.parameter}={self.value:g}"

    def to_dict(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"kind": self.kind, self.parameter: self.value,
                                 "unit": CORRUPTION_KINDS[self.kind][1]}
        if self.kind == "background":
            facts.update(dir=self.source, n_recordings=len(self.background))
        return facts

    def apply(self, y: np.ndarray, sr: int, *, rng: np.random.Generator) -> np.ndarray:
        """The corrupted copy of ``y`` (float32 mono at ``sr`` Hz)."""
        if self.kind == "noise":
            return dsp.add_white_noise(y, snr_db=self.value, rng=rng)
        if self.kind == "lowpass":
            if self.value >= sr / 2:  # nothing above the clip's Nyquist frequency to remove
                return y
            return dsp.lowpass(y, sr=sr, cutoff_hz=self.value)
        if self.kind == "gain":
            return dsp.apply_gain(y, gain_db=self.value)
        if self.kind == "reverb":
            return dsp.reverberate(y, sr=sr, rt60_s=self.value, rng=rng)
        if self.kind == "mp3":  # at a rate the bitrate allows, and back (mp3_rate_for)
            return dsp.mp3_roundtrip(y, sr=sr, kbps=int(self.value))
        if self.kind == "background":
            recording = self.background[int(rng.integers(len(self.background)))]
            noise, _ = load_audio(recording, sr=sr)
            return dsp.add_background(y, noise, snr_db=self.value, rng=rng)
        raise ValueError(f"unknown corruption kind {self.kind!r}")


def _number(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"corruption {item!r}: {text!r} is not a number") from None
    if not np.isfinite(value):
        raise ConfigError(f"corruption {item!r}: {text!r} is not a finite number")
    return value


def _background_files(folder: str, item: str) -> tuple[str, ...]:
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(f"corruption {item!r}: background folder {folder!r} does not exist")
    files = sorted(str(path.resolve()) for path in root.rglob("*")
                   if path.is_file() and path.suffix.lower() in BACKGROUND_SUFFIXES)
    if not files:
        raise ConfigError(f"corruption {item!r}: background folder {folder!r} holds no audio "
                          f"file ({', '.join(BACKGROUND_SUFFIXES)})")
    return tuple(files)


def parse_corruptions(spec: str | Sequence[str]) -> list[Corruption]:
    """The corruptions of a spec, one per severity, in the spec's order.

    Parameters
    ----------
    spec : str or sequence of str
        Comma-separated items ``KIND:PARAM=V1/V2/...``; ``background`` also takes
        ``dir=PATH`` (a folder of recordings, searched recursively; the path may hold neither
        ``,`` nor ``:``). Kinds and parameters: ``noise:snr`` (white noise, dB SNR),
        ``background:snr`` (dB SNR), ``lowpass:hz`` (cutoff, Hz), ``gain:db``,
        ``mp3:kbps`` (an MP3 round trip; needs ``featurekit[mp3]``) and ``reverb:rt60``
        (seconds; a synthetic room).

    Returns
    -------
    list of Corruption

    Raises
    ------
    ConfigError
        An unknown kind or parameter, a value that is not a number or lies outside the kind's
        bounds, a severity given twice, a background folder without audio.
    MissingDependencyError
        ``mp3`` without its encoder installed (the message names the extra).
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    items = [item.strip() for text in items for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError("no corruption given; e.g. noise:snr=20/10/0,lowpass:hz=2000")
    corruptions: list[Corruption] = []
    for item in items:
        kind, *fields = item.split(":")
        if kind not in CORRUPTION_KINDS:
            raise ConfigError(f"unknown corruption {kind!r} in {item!r}; choose from "
                              f"{', '.join(CORRUPTION_KINDS)}")
        parameter, unit, low, high = CORRUPTION_KINDS[kind]
        options = dict(part.partition("=")[::2] for part in fields)
        allowed = {parameter, "dir"} if kind == "background" else {parameter}
        unknown = sorted(set(options) - allowed)
        if unknown or parameter not in options or any(not part.count("=") for part in fields):
            raise ConfigError(f"corruption {item!r}: write {kind}:{parameter}=V1/V2/..."
                              + (":dir=PATH" if kind == "background" else "")
                              + (f" (unknown {', '.join(unknown)})" if unknown else ""))
        background: tuple[str, ...] = ()
        source = ""
        if kind == "background":
            if not options.get("dir"):
                raise ConfigError(f"corruption {item!r}: name the recordings' folder with "
                                  "dir=PATH")
            background, source = _background_files(options["dir"], item), options["dir"]
        if kind == "mp3":
            from featurekit._util.optional import require

            require("lameenc", extra="mp3", purpose="the mp3 corruption")
        for text in options[parameter].split("/"):
            value = _number(text, item)
            if not low <= value <= high:
                raise ConfigError(f"corruption {item!r}: {parameter}={text} lies outside "
                                  f"{low:g} to {high:g} {unit}")
            if kind == "mp3":
                try:
                    dsp.check_mp3_bitrate(int(value) if value.is_integer() else value)
                except ValueError as exc:
                    raise ConfigError(f"corruption {item!r}: {exc}") from None
            corruption = Corruption(kind, value, background, source)
            if corruption.name in {c.name for c in corruptions}:
                raise ConfigError(f"corruption {corruption.name} is given twice")
            corruptions.append(corruption)
    return corruptions


def clip_rng(seed: int, corruption: Corruption, path: str | Path) -> np.random.Generator:
    """The generator that corrupts one clip: from the run's seed, the corruption and the
    clip's file name (not its folder, so that a moved dataset is corrupted alike)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF,
                                  zlib.crc32(corruption.name.encode("utf-8")),
                                  zlib.crc32(Path(path).name.encode("utf-8"))])


class CorruptedComputer:
    """A store branch's computer run on corrupted copies of the clips.

    Parameters
    ----------
    computer : BranchComputer
        What computes the branch on clean audio.
    corruption : Corruption
    seed : int
        The run's seed (with the corruption and each file name, the clip's seed).
    """

    def __init__(self, computer: BranchComputer, corruption: Corruption, seed: int) -> None:
        self.computer, self.corruption, self.seed = computer, corruption, int(seed)

    @property
    def branch(self) -> str:
        return self.computer.branch

    @property
    def process_parallel(self) -> bool:
        return self.computer.process_parallel

    @property
    def clips_per_task(self) -> int | None:
        return getattr(self.computer, "clips_per_task", None)

    @property
    def feature_names(self) -> list[str]:
        return self.computer.feature_names

    def config_hash(self) -> str:
        text = f"{self.computer.config_hash()}|{self.corruption.name}|seed={self.seed}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def provenance(self) -> Mapping[str, Any]:
        facts = dict(self.computer.provenance())
        return {**facts, "config_hash": self.config_hash(),
                "clean_config_hash": facts.get("config_hash"),
                "corruption": {**self.corruption.to_dict(), "seed": self.seed}}

    def compute_batch(self, paths: Sequence[str], *, frames: bool = False) -> list[Any]:
        """The wrapped computer's outcomes on each clip's corrupted copy (a clip that cannot
        be read or corrupted gets its exception, as any per-clip failure)."""
        outcomes: list[Any] = [None] * len(paths)
        with tempfile.TemporaryDirectory(prefix="featurekit-corrupted-") as folder:
            written: list[tuple[int, str]] = []
            for index, path in enumerate(paths):
                try:
                    y, sr = load_audio(path, sr=None)
                    corrupted = self.corruption.apply(
                        y, sr, rng=clip_rng(self.seed, self.corruption, path))
                    target = Path(folder) / f"{index:05d}-{Path(path).stem}.wav"
                    sf.write(target, corrupted, sr, subtype="FLOAT")
                    written.append((index, str(target)))
                except Exception as exc:  # one clip's problem is recorded, never raised
                    outcomes[index] = exc
            if written:
                results = self.computer.compute_batch([target for _, target in written],
                                                      frames=frames)
                for (index, _), result in zip(written, results, strict=True):
                    outcomes[index] = result
        return outcomes

