"""Frozen AudioSet-pretrained CNNs implemented in torch: EfficientAT MobileNets and PANNs.

>>> from featurekit.neural import load_pretrained          # doctest: +SKIP
>>> model = load_pretrained("mn04_as")                     # doctest: +SKIP
>>> out = model(waveforms)  # (batch, samples) at model.sample_rate  # doctest: +SKIP
>>> out["embedding"].shape, out["tags"].shape              # doctest: +SKIP
(torch.Size([batch, 384]), torch.Size([batch, 527]))
"""

from __future__ import annotations

from featurekit._util.lazy import lazy_getattr
from featurekit.names import embedding_names
from featurekit.neural.labels import audioset_labels
from featurekit.neural.registry import (
    ENTRY_POINT_GROUP,
    UNTRAINED,
    ModelInfo,
    available_models,
    load_pretrained,
    model_info,
    register_model,
    resolve_weights,
    weights_cache_dir,
)

# Names whose modules import torch, imported on first use: the registry's table (the CLI's
# model choices) is enough to build parsers.
__getattr__ = lazy_getattr(__name__, {
    "AudioTagger": "featurekit.neural.base",
    "PretrainedEmbedder": "featurekit.neural.embedder",
}, globals())

__all__ = ["ENTRY_POINT_GROUP", "UNTRAINED", "AudioTagger", "ModelInfo", "PretrainedEmbedder",
           "audioset_labels", "available_models", "embedding_names", "load_pretrained",
           "model_info", "register_model", "resolve_weights", "weights_cache_dir"]
