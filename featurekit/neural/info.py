"""A registry entry: what featurekit knows of one model, whichever way it joined."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featurekit.neural.base import AudioTagger

__all__ = ["REGISTERED", "ModelInfo"]

#: ``ModelInfo.family`` of a model whose factory loads its own weights: added by
#: ``register_model``, an entry point, or a door (``hear:``, ``hf:``).
REGISTERED = "registered"


@dataclass(frozen=True)
class ModelInfo:
    """Registry entry of one pretrained model.

    Attributes
    ----------
    name : str
        featurekit name (``mn04_as``, ``cnn14`` ...).
    family : str
        ``"efficientat"``, ``"panns"``, or ``"registered"`` (``register_model``, an entry
        point or a door: the factory loads its own weights; ``file_name`` is empty).
    file_name : str
        Published checkpoint file name.
    url : str
        Official download URL.
    sha256, md5 : str or None
        Checksums of the published file, where known.
    sample_rate : int
        Input rate, Hz.
    embedding_dim : int
        Embedding size.
    license : str
        License of the weights.
    citation : str
        Paper to cite.
    build : callable
        Returns the model, untrained for the built-in families.
    version : str
        Registered models: the version their registration declares, part of a store
        branch's configuration (so a changed model does not mix with stored embeddings).
    source : mapping, optional
        Models of a door (``hear:``, ``hf:``): what identifies them (module or model, weights
        file and its SHA-256, layer), part of a store branch's configuration in place of the
        factory's name and version.
    window_s : float, optional
        The model's own window length, seconds (:attr:`AudioTagger.window_s
        <featurekit.neural.base.AudioTagger.window_s>`, which the built model must have);
        None: featurekit's 10-s windows.
    """

    name: str
    family: str
    file_name: str
    url: str
    sha256: str | None
    md5: str | None
    sample_rate: int
    embedding_dim: int
    license: str
    citation: str
    build: Callable[[], AudioTagger]
    version: str = ""
    source: Mapping[str, Any] | None = None
    window_s: float | None = None

    @property
    def registered(self) -> bool:
        """Whether the model's factory loads its own weights (``register_model``, an entry
        point, a door)."""
        return self.family == REGISTERED
