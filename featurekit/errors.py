"""Exception hierarchy.

Every error featurekit raises on purpose derives from :class:`FeaturekitError`, so the CLI can
turn it into a one-line message and exit code 2 while real bugs still show a traceback.
"""

from __future__ import annotations


class FeaturekitError(Exception):
    """Base class of the errors featurekit raises deliberately."""


class AudioError(FeaturekitError, ValueError):
    """An audio file or array cannot be turned into a valid waveform.

    The message names the file (when there is one) and the cause.
    """


class ConfigError(FeaturekitError, ValueError):
    """An extraction or model configuration is invalid."""


class DatasetError(FeaturekitError, ValueError):
    """A dataset's layout, metadata or manifest is invalid or incomplete."""


class DownloadError(FeaturekitError, OSError):
    """A download failed or its checksum did not match."""


class StoreError(FeaturekitError, RuntimeError):
    """A feature store cannot be read or written as asked (config mismatch, lock held, ...)."""


class WeightsError(FeaturekitError, FileNotFoundError):
    """Pretrained weights cannot be found, fetched or loaded."""


class MissingDependencyError(FeaturekitError, ImportError):
    """An optional engine (Dask, openSMILE, Essentia) is used but not installed.

    The message names the ``featurekit[extra]`` that installs it.
    """


class ArtifactError(FeaturekitError, ValueError):
    """A trained-model file is corrupt, truncated, or from an incompatible featurekit."""
