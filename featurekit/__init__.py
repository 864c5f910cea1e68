"""featurekit: domain-knowledge audio descriptors next to pretrained audio embeddings.

Public names are imported lazily so that ``import featurekit`` stays fast and does not pull in
torch or xgboost until they are used.
"""

from __future__ import annotations

from featurekit._util.lazy import lazy_getattr

__version__ = "0.1.0"

_PUBLIC = {
    "load_audio": "featurekit.io.audio",
    "ExtractionConfig": "featurekit.config",
    "FeatureExtractor": "featurekit.extractor",
    "frame_descriptors": "featurekit.computers.handcrafted",
    "feature_catalog": "featurekit.computers.handcrafted",
    "load_dataset": "featurekit.datasets",
    "FeatureStore": "featurekit.store.reader",
    "PretrainedEmbedder": "featurekit.neural.embedder",
    "LateFusionClassifier": "featurekit.fusion",
    "AudioClassifier": "featurekit.model.classifier",
    "load_model": "featurekit.model.load",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
