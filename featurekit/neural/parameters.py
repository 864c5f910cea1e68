"""How big a registered model's network is, counted without reading its weights."""

from __future__ import annotations

from featurekit.neural.registry import model_info

__all__ = ["model_parameters"]


def model_parameters(name: str) -> int:
    """Parameters of model ``name``'s network: its architecture built with untrained weights,
    so that no checkpoint is read or downloaded (loading one changes no count).

    Raises
    ------
    ConfigError
        ``name`` is not in the registry.
    """
    info = model_info(name)  # first: an unknown name raises without importing torch
    import torch

    with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as it was
        model = info.build()
    return int(sum(p.numel() for p in model.parameters()))
