"""featurekit: domain-knowledge audio descriptors next to pretrained audio embeddings.

Public names are imported lazily so that ``import featurekit`` stays fast and does not pull in
torch or xgboost until they are used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "load_audio": "featurekit.audio",
    "ExtractionConfig": "featurekit.config",
    "FeatureExtractor": "featurekit.extractor",
    "frame_descriptors": "featurekit.handcrafted",
    "feature_catalog": "featurekit.handcrafted",
    "load_dataset": "featurekit.datasets",
    "FeatureStore": "featurekit.store",
    "PretrainedEmbedder": "featurekit.neural.embedder",
    "LateFusionClassifier": "featurekit.fusion",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'featurekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
