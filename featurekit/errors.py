"""Exception hierarchy.

Every error featurekit raises on purpose derives from :class:`FeaturekitError`, so the CLI can
turn it into a one-line message and exit code 2 while real bugs still show a traceback.
:class:`Interrupted` is apart: a run stopped by a signal, not an error.
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


class EmbeddingImportError(FeaturekitError, ValueError):
    """Embeddings computed elsewhere cannot be imported into a store: the file is missing or
    unreadable, or an id names no clip of the dataset, appears twice, or a row is ragged,
    non-finite or of another dimension than the branch already stored.

    The message names the file and the first offending id or row.
    """


class WorkerLostError(FeaturekitError, RuntimeError):
    """Worker processes kept dying while computing tasks; the message names the tasks lost."""


class ArtifactError(FeaturekitError, ValueError):
    """A trained-model file is corrupt, truncated, or from an incompatible featurekit."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal: SIGINT (Ctrl-C) or SIGTERM.

    The command line's signal handlers raise it (library code installs none), so that it
    unwinds through every ``with`` block like Ctrl-C does: store locks are released and
    worker processes stopped on the way out. A :class:`KeyboardInterrupt`, so that code which
    catches :class:`Exception` (per-clip error capture) never swallows it.

    Parameters
    ----------
    signum : int
        The signal that stopped the run.

    Attributes
    ----------
    signum : int
    stored : list of str
        What the stopped run had stored, one entry per store branch it was filling (e.g.
        ``"12 of 80 clips of esc50/handcrafted"``), added as the exception passes through.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.stored: list[str] = []
