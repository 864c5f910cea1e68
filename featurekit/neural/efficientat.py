"""EfficientAT MobileNetV3 (Schmid, Koutini & Widmer, ICASSP 2023), any width multiplier.

State-dict compatible with the published ``mnXX_as`` checkpoints (plain state dicts): module
names and nesting follow the published layout (``features.N.block.M``, SE under
``conc_se_layers.0``, an MLP ``classifier``). Block configuration: MobileNetV3-Large with all
channel counts scaled by the width multiplier (see ``../specs``-derived :data:`BASE_BLOCKS`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from featurekit.neural.base import AudioTagger
from featurekit.neural.frontends import KaldiLogMel

__all__ = ["BASE_BLOCKS", "EfficientATMobileNet", "make_divisible"]

_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01


class BlockSpec(NamedTuple):
    """One inverted-residual block at width 1.0."""

    in_ch: int
    kernel: int
    expanded_ch: int
    out_ch: int
    squeeze_excite: bool
    hardswish: bool
    stride: int


#: MobileNetV3-Large blocks at width 1.0, in ``features.1`` … ``features.15`` order.
BASE_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(16, 3, 16, 16, False, False, 1),
    BlockSpec(16, 3, 64, 24, False, False, 2),
    BlockSpec(24, 3, 72, 24, False, False, 1),
    BlockSpec(24, 5, 72, 40, True, False, 2),
    BlockSpec(40, 5, 120, 40, True, False, 1),
    BlockSpec(40, 5, 120, 40, True, False, 1),
    BlockSpec(40, 3, 240, 80, False, True, 2),
    BlockSpec(80, 3, 200, 80, False, True, 1),
    BlockSpec(80, 3, 184, 80, False, True, 1),
    BlockSpec(80, 3, 184, 80, False, True, 1),
    BlockSpec(80, 3, 480, 112, True, True, 1),
    BlockSpec(112, 3, 672, 112, True, True, 1),
    BlockSpec(112, 5, 672, 160, True, True, 2),
    BlockSpec(160, 5, 960, 160, True, True, 1),
    BlockSpec(160, 5, 960, 160, True, True, 1),
)
_BASE_HEAD_HIDDEN = 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor`` (at least ``divisor``), never more than
    10 % below it: the MobileNet channel rounding."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _conv_bn(in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, groups: int = 1,
             activation: type[nn.Module] | None) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_ch, eps=_BN_EPS, momentum=_BN_MOMENTUM),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class _ChannelSqueezeExcite(nn.Module):
    """Channel attention: mean over (freq, time) → fc1 → ReLU → fc2 → sigmoid → rescale."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeezed)
        self.fc2 = nn.Linear(squeezed, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.relu(self.fc1(x.mean(dim=(2, 3))))
        scale = torch.sigmoid(self.fc2(scale))
        return x * scale[:, :, None, None]


class _SqueezeExciteGroup(nn.Module):
    """Holder that gives the SE layer its published key path (``conc_se_layers.0``).

    EfficientAT can run several SE layers concurrently and take their element-wise maximum;
    the AudioSet models use the channel one only, for which that maximum is the layer itself.
    """

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([_ChannelSqueezeExcite(channels, squeezed)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class _InvertedResidual(nn.Module):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        activation = nn.Hardswish if spec.hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if spec.expanded_ch != spec.in_ch:
            layers.append(_conv_bn(spec.in_ch, spec.expanded_ch, 1, activation=activation))
        layers.append(_conv_bn(spec.expanded_ch, spec.expanded_ch, spec.kernel,
                               stride=spec.stride, groups=spec.expanded_ch,
                               activation=activation))
        if spec.squeeze_excite:
            layers.append(_SqueezeExciteGroup(spec.expanded_ch,
                                              make_divisible(spec.expanded_ch // 4)))
        layers.append(_conv_bn(spec.expanded_ch, spec.out_ch, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.residual = spec.stride == 1 and spec.in_ch == spec.out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


def _scaled(spec: BlockSpec, width: float) -> BlockSpec:
    return spec._replace(in_ch=make_divisible(spec.in_ch * width),
                         expanded_ch=make_divisible(spec.expanded_ch * width),
                         out_ch=make_divisible(spec.out_ch * width))


class EfficientATMobileNet(AudioTagger):
    """EfficientAT AudioSet tagger: Kaldi-style log-mel → MobileNetV3 → 527 logits.

    Parameters
    ----------
    width : float
        Width multiplier (0.4 for ``mn04_as``, 1.0 for ``mn10_as`` …).
    n_classes : int
        Output classes.

    Notes
    -----
    ``logmel`` returns the normalised log-mel, shape (batch, 128, frames), 100 frames per
    second. ``embedding`` is the global average of the last feature map (6 × the last block's
    channels; 384 at width 0.4). The neuralogram has one row per 32 front-end frames (0.32 s).
    """

    def __init__(self, width: float, *, n_classes: int = 527) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width multiplier must be positive, got {width}")
        self.width, self.n_classes = width, n_classes
        self.mel = KaldiLogMel()
        self.sample_rate = self.mel.sr
        blocks = [_scaled(spec, width) for spec in BASE_BLOCKS]
        last_ch = blocks[-1].out_ch
        self.embedding_dim = self.embedding_size(width)
        layers: list[nn.Module] = [_conv_bn(1, blocks[0].in_ch, 3, stride=2,
                                            activation=nn.Hardswish)]
        layers += [_InvertedResidual(spec) for spec in blocks]
        layers.append(_conv_bn(last_ch, self.embedding_dim, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        hidden = make_divisible(_BASE_HEAD_HIDDEN * width)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(self.embedding_dim, hidden),
            nn.Hardswish(), nn.Dropout(0.2), nn.Linear(hidden, n_classes))
        total_stride = 2 ** (1 + sum(spec.stride == 2 for spec in blocks))
        self.frame_period_s = total_stride * self.mel.hop_length / self.sample_rate

    @staticmethod
    def embedding_size(width: float) -> int:
        """Embedding size at width multiplier ``width``: 6 × the last block's channels."""
        return 6 * _scaled(BASE_BLOCKS[-1], width).out_ch

    def logmel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """EfficientAT's normalised log-mel, (batch, samples) → (batch, 128, frames)."""
        return self.mel(waveforms)

    def trunk(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        fmap = self.features(self.logmel(waveforms)[:, None])  # (batch, C, freq, time)
        return {"embedding": fmap.mean(dim=(2, 3)), "logits": self.classifier(fmap),
                "fmap": fmap.transpose(2, 3)}
