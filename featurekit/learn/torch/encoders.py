"""Sequence encoders: frames (batch, frames, dims) with a padding mask -> one embedding per clip.

``cnn``
    a pointwise input projection to ``width`` channels, ``n_layers`` pre-norm residual blocks
    of two 1-D convolutions (kernel ``kernel_size``);
``transformer``
    a linear input projection plus sinusoidal positions, ``n_layers`` pre-norm Transformer
    layers (``n_heads`` heads, feed-forward ``2 * width``), padding masked in attention.

Both pool over real frames -- mean, or mean and standard deviation ("statistics pooling") --
and end in ``Linear(pooled, embedding_dim)`` and GELU.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from featurekit.errors import ConfigError


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real frames: x (batch, frames, channels), mask (batch, frames) bool."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _pool(x: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Masked mean (``mean``), or mean and standard deviation (``meanstd``, statistics
    pooling) over real frames, (batch, channels) or (batch, 2 * channels)."""
    mean = _masked_mean(x, mask)
    if pooling == "mean":
        return mean
    variance = _masked_mean((x - mean.unsqueeze(1)) ** 2, mask)
    return torch.cat([mean, torch.sqrt(variance + 1e-5)], dim=1)


#: Pooling over time of the encoders, and the width of the pooled vector per channel.
POOLINGS = {"mean": 1, "meanstd": 2}


class _ResidualConvBlock(nn.Module):
    def __init__(self, width: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.conv1 = nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Padding frames are zeroed before each convolution so they never leak into real ones.
        keep = mask.unsqueeze(-1).to(x.dtype)
        h = (self.norm(x) * keep).transpose(1, 2)
        h = self.conv2(self.dropout(nn.functional.gelu(self.conv1(h))) * keep.transpose(1, 2))
        return x + self.dropout(h.transpose(1, 2))


class _PooledReadout(nn.Module):
    """The end of every encoder: LayerNorm, pooling over real frames, Linear and GELU."""

    def __init__(self, width: int, embedding_dim: int, pooling: str) -> None:
        super().__init__()
        self.pooling = _check_pooling(pooling)
        self.norm = nn.LayerNorm(width)
        self.embed = nn.Linear(POOLINGS[pooling] * width, embedding_dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.embed(_pool(self.norm(h), mask, self.pooling)))


class ConvSequenceEncoder(nn.Module):
    """Residual 1-D CNN: (batch, frames, n_inputs) and mask -> (batch, embedding_dim)."""

    def __init__(self, n_inputs: int, *, width: int = 64, embedding_dim: int = 64,
                 n_layers: int = 2, kernel_size: int = 5, dropout: float = 0.1,
                 pooling: str = "meanstd") -> None:
        super().__init__()
        self.project = nn.Linear(n_inputs, width)
        self.blocks = nn.ModuleList(_ResidualConvBlock(width, kernel_size, dropout)
                                    for _ in range(n_layers))
        self.readout = _PooledReadout(width, embedding_dim, pooling)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.project(x)
        for block in self.blocks:
            h = block(h, mask)
        return self.readout(h, mask)


class TransformerSequenceEncoder(nn.Module):
    """Small Transformer: (batch, frames, n_inputs) and mask -> (batch, embedding_dim)."""

    def __init__(self, n_inputs: int, *, width: int = 64, embedding_dim: int = 64,
                 n_layers: int = 2, n_heads: int = 4, dropout: float = 0.1,
                 pooling: str = "meanstd") -> None:
        super().__init__()
        if width % n_heads:
            raise ConfigError(f"width {width} is not divisible by n_heads {n_heads}")
        self.width = width
        self.project = nn.Linear(n_inputs, width)
        layer = nn.TransformerEncoderLayer(width, n_heads, dim_feedforward=2 * width,
                                           dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.readout = _PooledReadout(width, embedding_dim, pooling)

    def _positions(self, n_frames: int, device: torch.device) -> torch.Tensor:
        position = torch.arange(n_frames, device=device, dtype=torch.float32).unsqueeze(1)
        rate = torch.exp(torch.arange(0, self.width, 2, device=device, dtype=torch.float32)
                         * (-math.log(10000.0) / self.width))
        table = torch.zeros(n_frames, self.width, device=device)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate)
        return table

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.project(x) + self._positions(x.shape[1], x.device)
        return self.readout(self.layers(h, src_key_padding_mask=~mask), mask)


def _check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
    return pooling


#: Encoder classes by name.
ENCODERS: dict[str, type[nn.Module]] = {"cnn": ConvSequenceEncoder,
                                        "transformer": TransformerSequenceEncoder}
