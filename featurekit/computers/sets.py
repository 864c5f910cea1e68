"""Feature sets: featurekit's own descriptors and the field's reference sets, as store branches.

=====================  ======================  ==========================  =====================
set                    store branch            computed by                 extra
=====================  ======================  ==========================  =====================
``featurekit``         ``handcrafted``         every featurekit family     (core)
``essentia``           ``essentia``            Essentia's low-level        ``featurekit[essentia]``
                                               spectral extractors         (AGPL-3.0)
``opensmile.egemaps``  ``opensmile.egemaps``   openSMILE eGeMAPSv02        ``featurekit[opensmile]``
                                               functionals (88)
``opensmile.compare``  ``opensmile.compare``   openSMILE ComParE_2016      ``featurekit[opensmile]``
                                               functionals (6373)
=====================  ======================  ==========================  =====================

Each reference set is a :class:`~featurekit.computers.base.BranchComputer`, so ``featurekit extract
--set NAME`` stores it with the resumability, per-clip error log and provenance of the
handcrafted branch, and the benchmark compares sets side by side
(:mod:`featurekit.benchmark.sets`). Columns are ``<set>.<descriptor>.<statistic>``.

This module imports no engine at import time: Essentia and openSMILE are loaded (through
:func:`featurekit._util.optional.require`, which names the extra when one is missing) when a branch
is created.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurekit.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from featurekit.computers.base import BranchComputer
    from featurekit.config import ExtractionConfig
    from featurekit.store.records import ClipResult

__all__ = ["FEATUREKIT_SET", "FEATURE_SETS", "OPENSMILE_SETS", "EssentiaBranch", "FeatureSet",
           "OpenSmileBranch", "parse_sets", "set_columns", "set_computer"]

FEATUREKIT_SET = "featurekit"
#: openSMILE's name of the feature set behind each openSMILE set.
OPENSMILE_SETS = {"opensmile.egemaps": "eGeMAPSv02", "opensmile.compare": "ComParE_2016"}


@dataclass(frozen=True)
class FeatureSet:
    """One feature set: its store branch and the extra that installs its engine.

    Attributes
    ----------
    name : str
        Set name, also the column prefix of a reference set.
    branch : str
        Store branch holding it.
    extra : str or None
        ``featurekit[extra]`` installs its engine (None: the core).
    description : str
        One line for help texts and reports.
    """

    name: str
    branch: str
    extra: str | None
    description: str


FEATURE_SETS: dict[str, FeatureSet] = {s.name: s for s in (
    FeatureSet(FEATUREKIT_SET, "handcrafted", None,
               "featurekit's descriptor families (featurekit features --list)"),
    FeatureSet("essentia", "essentia", "essentia",
               "Essentia low-level spectral descriptors (LowLevelSpectralExtractor and its "
               "equal-loudness twin) summarised per clip; AGPL-3.0"),
    FeatureSet("opensmile.egemaps", "opensmile.egemaps", "opensmile",
               "openSMILE eGeMAPSv02 functionals"),
    FeatureSet("opensmile.compare", "opensmile.compare", "opensmile",
               "openSMILE ComParE_2016 functionals"),
)}


def parse_sets(text: str | Sequence[str]) -> tuple[str, ...]:
    """Set names from ``"featurekit,essentia"`` (or a sequence), checked, duplicates refused."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)
             if n.strip()]
    unknown = [name for name in names if name not in FEATURE_SETS]
    if unknown:
        raise ConfigError(f"unknown feature set {unknown[0]!r}; choose from "
                          f"{', '.join(FEATURE_SETS)}")
    if not names:
        raise ConfigError("name at least one feature set")
    if len(set(names)) != len(names):
        raise ConfigError(f"feature sets repeat a name: {', '.join(names)}")
    return tuple(names)


def set_columns(name: str, columns: Sequence[str]) -> list[str]:
    """The columns of set ``name`` among a store read's ``columns`` (in their order)."""
    if name == FEATUREKIT_SET:
        from featurekit.config import FAMILIES

        prefixes = tuple(f"{family}." for family in FAMILIES)
    else:
        prefixes = (f"{FEATURE_SETS[name].name}.",)
    return [str(column) for column in columns if str(column).startswith(prefixes)]


def set_computer(name: str, *, extraction: ExtractionConfig | None = None,
                 skip_silent: bool = False, frames: bool = False) -> BranchComputer:
    """The branch computer of set ``name``.

    Parameters
    ----------
    name : str
        One of :data:`FEATURE_SETS`.
    extraction : ExtractionConfig, optional
        Configuration of the ``featurekit`` set (the reference sets have fixed settings).
    skip_silent : bool, keyword-only
        Record digitally silent clips as failures (every set).
    frames : bool, keyword-only
        Whether frame-level descriptors will be asked for (the featurekit set only has them).

    Raises
    ------
    ConfigError
        Unknown set, or an extraction configuration or frames asked of a reference set.
    MissingDependencyError
        The set's engine is not installed (the message names the extra).
    """
    (name,) = parse_sets([name])
    if name == FEATUREKIT_SET:
        from featurekit.computers.handcrafted import HandcraftedBranch

        return HandcraftedBranch(extraction, skip_silent=skip_silent)
    if extraction is not None:
        raise ConfigError(f"--config and --families apply to the featurekit set, not {name}")
    if frames:
        raise ConfigError(f"{name} stores clip-level functionals only; frame-level "
                          "descriptors are stored for the featurekit set")
    if name == "essentia":
        return EssentiaBranch(skip_silent=skip_silent)
    return OpenSmileBranch(name, skip_silent=skip_silent)


def _split_statistic(name: str) -> str:
    # openSMILE names end in their functional ("..._sma3nz_amean"); dots inside a name
    # ("From27.5Hz") would break the <set>.<descriptor>.<statistic> pattern.
    descriptor, _, statistic = name.replace(".", "p").rpartition("_")
    return f"{descriptor}.{statistic}" if descriptor else f"{statistic}.value"


class _ReferenceSetBranch:
    """What the reference sets share: loading, per-clip failures, provenance, hashing.

    Subclasses set ``branch``, ``sample_rate``, ``min_samples`` and :meth:`_settings`, and
    implement :meth:`_names` and :meth:`_describe`.
    """

    process_parallel = True
    branch: str
    sample_rate: int
    min_samples: int
    package: str

    def __init__(self, *, skip_silent: bool = False) -> None:
        self.skip_silent = skip_silent
        self._engine: Any = None
        self._feature_names: list[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_engine": None}  # engines are rebuilt in each worker

    def _settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def _names(self) -> list[str]:
        raise NotImplementedError

    def _describe(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def feature_names(self) -> list[str]:
        if self._feature_names is None:
            self._feature_names = self._names()
        return self._feature_names

    def _config(self) -> dict[str, Any]:
        from featurekit._util.versions import package_versions

        # The engine's version changes values as much as a setting does.
        return {"set": self.branch, "sample_rate": self.sample_rate,
                "min_samples": self.min_samples, **self._settings(),
                "engine_version": package_versions(self.package)[self.package]}

    def config_hash(self) -> str:
        text = json.dumps(self._config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def provenance(self) -> dict[str, Any]:
        from featurekit._util.versions import package_versions

        return {"config": self._config(), "config_hash": self.config_hash(),
                "versions": package_versions("featurekit", self.package, "numpy", "soxr",
                                             "soundfile"), "untrained": False}

    def compute_batch(self, paths: Sequence[Any], *, frames: bool = False,
                      sr: int | None = None) -> list[ClipResult | BaseException]:
        """Functionals of each file (or 1-D array at ``sr`` Hz), or the exception it raised.

        ``frames`` is accepted for the :class:`~featurekit.computers.base.BranchComputer` contract;
        reference sets have no frame-level table (:func:`set_computer` refuses it).
        """
        import numpy as np

        from featurekit.computers.handcrafted import SilentAudio
        from featurekit.io.audio import SILENCE_NOTE, load_audio_with_info, prepare_waveform
        from featurekit.store.records import ClipResult

        results: list[ClipResult | BaseException] = []
        for source in paths:
            try:
                if isinstance(source, np.ndarray):
                    if sr is None:
                        raise ConfigError("arrays need their sample rate (sr)")
                    y, info = prepare_waveform(source, sr, target_sr=self.sample_rate,
                                               min_samples=self.min_samples)
                else:
                    y, info = load_audio_with_info(source, self.sample_rate,
                                                   min_samples=self.min_samples)
                if self.skip_silent and SILENCE_NOTE in info.notes:
                    raise SilentAudio(f"{source}: {SILENCE_NOTE}")
                values = np.asarray(self._describe(y), dtype=np.float32)
                results.append(ClipResult(values=values, notes=info.notes))
            except Exception as exc:  # one bad clip must never fail its whole batch
                results.append(exc)
        return results


#: Functionals of Essentia's frame descriptors (those of its extractors' pools, without the
#: second derivatives).
ESSENTIA_STATS = ("mean", "var", "median", "min", "max", "dmean", "dvar")


class EssentiaBranch(_ReferenceSetBranch):
    """Store branch ``essentia``: Essentia's low-level spectral descriptors, per clip.

    ``essentia.standard.LowLevelSpectralExtractor`` (Bark bands, MFCC, HFC, pitch and its
    confidence, silence rates, spectral complexity, crest, decrease, energy and its four
    bands, flatness, flux, RMS, roll-off, strong peak, zero-crossing rate, inharmonicity,
    tristimulus, odd-to-even ratio) and ``LowLevelSpectralEqloudExtractor`` on the
    equal-loudness-filtered signal (dissonance, spectral contrast and valleys, centroid,
    kurtosis, skewness, spread): the low-level part of Essentia's Freesound and music
    extractors, with their frame and hop (2048 and 1024 samples at 44.1 kHz). Each frame
    descriptor is summarised by :data:`ESSENTIA_STATS` over its finite frame values.

    Essentia is AGPL-3.0: installing ``featurekit[essentia]`` brings that licence.
    """

    branch = "essentia"
    sample_rate = 44100
    frame_size, hop_size = 2048, 1024
    min_samples = frame_size
    package = "essentia"

    def __init__(self, *, skip_silent: bool = False) -> None:
        super().__init__(skip_silent=skip_silent)
        self._load()  # fail now, with the extra's name, not in every clip of a run

    def _settings(self) -> dict[str, Any]:
        return {"frame_size": self.frame_size, "hop_size": self.hop_size,
                "stats": list(ESSENTIA_STATS)}

    def _load(self) -> Any:
        if self._engine is None:
            from featurekit._util.optional import require

            essentia = require("essentia", extra="essentia", purpose="the essentia set")
            # Otherwise INFO lines on import and per extractor, and a WARNING per clipped ratio.
            essentia.log.infoActive = essentia.log.warningActive = False
            standard = require("essentia.standard", extra="essentia",
                               purpose="the essentia set")
            options = {"frameSize": self.frame_size, "hopSize": self.hop_size,
                       "sampleRate": self.sample_rate}
            self._engine = (standard.LowLevelSpectralExtractor(**options),
                            standard.LowLevelSpectralEqloudExtractor(**options),
                            standard.EqualLoudness(sampleRate=self.sample_rate))
        return self._engine

    def _frame_descriptors(self, y: np.ndarray) -> list[tuple[str, np.ndarray]]:
        import numpy as np

        spectral, eqloud, equal_loudness = self._load()
        for algorithm in (spectral, eqloud, equal_loudness):
            # Filters and flux keep the previous clip's state: a clip's values must not
            # depend on which clip the worker computed before.
            algorithm.reset()
        signal = np.ascontiguousarray(y, dtype=np.float32)
        named = list(zip(spectral.outputNames(), spectral(signal), strict=True))
        named += zip(eqloud.outputNames(), eqloud(equal_loudness(signal)), strict=True)
        return [(name, np.asarray(values, dtype=np.float64).reshape(len(values), -1))
                for name, values in named]

    def _names(self) -> list[str]:
        import numpy as np

        probe = 0.1 * np.random.default_rng(0).standard_normal(self.sample_rate)
        names = []
        for name, values in self._frame_descriptors(probe):
            bases = ([name] if values.shape[1] == 1
                     else [f"{name}_{band:02d}" for band in range(values.shape[1])])
            names += [f"essentia.{base}.{stat}" for base in bases for stat in ESSENTIA_STATS]
        return names

    def _describe(self, y: np.ndarray) -> np.ndarray:
        import warnings

        import numpy as np

        # A descriptor undefined on every frame is stored as NaN (the benchmark imputes it);
        # numpy's all-NaN warning would fire for every such clip.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.concatenate([_essentia_functionals(values)
                                   for _, values in self._frame_descriptors(y)])


def _essentia_functionals(values: np.ndarray) -> np.ndarray:
    """:data:`ESSENTIA_STATS` of ``(n_frames, width)`` frame values over their finite values,
    ``(width * len(ESSENTIA_STATS),)``, band-major (descriptors differ in frame counts: the
    extractors drop some frames of some descriptors)."""
    import numpy as np

    values = np.where(np.isfinite(values), values, np.nan)  # e.g. flatness dB of silence
    change = np.diff(values, axis=0)
    no_change = np.zeros(values.shape[1])
    stats = np.stack([
        np.nanmean(values, axis=0), np.nanvar(values, axis=0), np.nanmedian(values, axis=0),
        np.nanmin(values, axis=0), np.nanmax(values, axis=0),
        np.nanmean(np.abs(change), axis=0) if len(change) else no_change,
        np.nanvar(change, axis=0) if len(change) else no_change,
    ], axis=1)
    return stats.ravel()


class OpenSmileBranch(_ReferenceSetBranch):
    """Store branch ``opensmile.egemaps`` or ``opensmile.compare``: openSMILE functionals.

    Parameters
    ----------
    name : {"opensmile.egemaps", "opensmile.compare"}
        The set (:data:`OPENSMILE_SETS` gives openSMILE's feature set, computed at its
        functionals level as shipped with the ``opensmile`` package).
    skip_silent : bool, keyword-only

    Notes
    -----
    Clips are resampled to 22.05 kHz, the featurekit analysis rate, so both see the same
    band; clips shorter than 0.1 s are zero-padded to it (openSMILE's ComParE window is 60 ms).
    """

    sample_rate = 22050
    min_samples = 2205
    package = "opensmile"

    def __init__(self, name: str, *, skip_silent: bool = False) -> None:
        if name not in OPENSMILE_SETS:
            raise ConfigError(f"unknown openSMILE set {name!r}; choose from "
                              f"{', '.join(OPENSMILE_SETS)}")
        super().__init__(skip_silent=skip_silent)
        self.branch = name
        self.feature_set = OPENSMILE_SETS[name]
        self._load()

    def _settings(self) -> dict[str, Any]:
        return {"feature_set": self.feature_set, "feature_level": "Functionals"}

    def _load(self) -> Any:
        if self._engine is None:
            from featurekit._util.optional import require

            opensmile = require("opensmile", extra="opensmile", purpose=f"the {self.branch} set")
            self._engine = opensmile.Smile(
                feature_set=getattr(opensmile.FeatureSet, self.feature_set),
                feature_level=opensmile.FeatureLevel.Functionals)
        return self._engine

    def _names(self) -> list[str]:
        return [f"{self.branch}.{_split_statistic(name)}" for name in self._load().feature_names]

    def _describe(self, y: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(self._load().process_signal(y, self.sample_rate)).reshape(-1)
