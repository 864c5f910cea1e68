"""PANNs audio taggers (Kong et al., IEEE/ACM TASLP 2020): Cnn14, Cnn14_16k, Cnn10, Cnn6 and
MobileNetV1, state-dict compatible with the published checkpoints.

All five share the front end (conv-STFT and mel tensors stored in the checkpoint, dB log-mel,
``bn0`` normalising each mel bin) and the head (frequency mean → max + mean over time → ``fc1``
+ ReLU = embedding → ``fc_audioset`` → sigmoid). They differ in the convolutional trunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from featurekit.neural.base import AudioTagger
from featurekit.neural.frontends import PannsLogMel, PannsSpectrogram

__all__ = ["PannsTagger", "cnn6", "cnn10", "cnn14", "cnn14_16k", "mobilenetv1"]

_N_MELS = 64


class _ConvBlock(nn.Module):
    """``n_convs`` × (conv k×k, no bias → BN → ReLU), then average pooling.

    Key order matches the published files: all convolutions first, then all BatchNorms.
    """

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int, n_convs: int,
                 pool: int) -> None:
        super().__init__()
        self.pool = pool
        self._names = [str(i + 1) for i in range(n_convs)]
        for i, name in enumerate(self._names):
            self.add_module(f"conv{name}", nn.Conv2d(in_ch if i == 0 else out_ch, out_ch,
                                                     kernel, padding=kernel // 2, bias=False))
        for name in self._names:
            self.add_module(f"bn{name}", nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._names:
            x = F.relu(getattr(self, f"bn{name}")(getattr(self, f"conv{name}")(x)))
        return F.avg_pool2d(x, self.pool) if self.pool > 1 else x


def _mobilenet_stage(in_ch: int, out_ch: int, stride: int, *, depthwise: bool) -> nn.Sequential:
    # PANNs' MobileNetV1 strides by average pooling placed between conv and BatchNorm.
    if not depthwise:
        return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                             nn.AvgPool2d(stride), nn.BatchNorm2d(out_ch), nn.ReLU())
    return nn.Sequential(nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False),
                         nn.AvgPool2d(stride), nn.BatchNorm2d(in_ch), nn.ReLU(),
                         nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch),
                         nn.ReLU())


_MOBILENET_STAGES = ((1, 32, 2), (32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2),
                     (256, 256, 1), (256, 512, 2), *[(512, 512, 1)] * 5, (512, 1024, 2),
                     (1024, 1024, 1))


class PannsTagger(AudioTagger):
    """A PANNs model: shared front end and head around a convolutional trunk.

    Parameters
    ----------
    trunk_modules : sequence of (name, module)
        The trunk, registered under the published names (``conv_block1`` … or
        ``features``), applied in order to the (batch, 1, frames, 64) normalised log-mel.
    channels : int
        Channels of the trunk output (= embedding size).
    time_stride : int
        Downsampling of the trunk along time (for ``frame_period_s``).
    sample_rate, n_fft, hop_length : int
        Front-end configuration (32000/1024/320, or 16000/512/160).
    fmin, fmax : float
        Mel bank edges, Hz.

    Notes
    -----
    ``logmel`` returns dB log-mel before ``bn0``, shape (batch, 1, 1 + samples // hop, 64).
    """

    def __init__(self, trunk_modules: Sequence[tuple[str, nn.Module]], *, channels: int,
                 time_stride: int, sample_rate: int = 32000, n_fft: int = 1024,
                 hop_length: int = 320, fmin: float = 50.0, fmax: float = 14000.0,
                 n_classes: int = 527) -> None:
        super().__init__()
        self.sample_rate, self.embedding_dim, self.n_classes = sample_rate, channels, n_classes
        self.frame_period_s = time_stride * hop_length / sample_rate
        self.spectrogram_extractor = PannsSpectrogram(n_fft, hop_length)
        self.logmel_extractor = PannsLogMel(sr=sample_rate, n_fft=n_fft, n_mels=_N_MELS,
                                            fmin=fmin, fmax=fmax)
        self.bn0 = nn.BatchNorm2d(_N_MELS)
        self._trunk_names = [name for name, _ in trunk_modules]
        for name, module in trunk_modules:
            self.add_module(name, module)
        self.fc1 = nn.Linear(channels, channels)
        self.fc_audioset = nn.Linear(channels, n_classes)

    def logmel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """PANNs dB log-mel, (batch, samples) → (batch, 1, frames, 64), before ``bn0``."""
        return self.logmel_extractor(self.spectrogram_extractor(waveforms))

    def trunk(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.bn0(self.logmel(waveforms).transpose(1, 3)).transpose(1, 3)
        for name in self._trunk_names:
            x = getattr(self, name)(x)
        per_time = x.mean(dim=3)
        pooled = per_time.amax(dim=2) + per_time.mean(dim=2)
        embedding = F.relu(self.fc1(pooled))
        return {"embedding": embedding, "logits": self.fc_audioset(embedding), "fmap": x}


def _cnn(channels: Sequence[int], *, kernel: int, n_convs: int, pools: Sequence[int],
         **frontend: float) -> PannsTagger:
    ins = [1, *channels[:-1]]
    blocks = [(f"conv_block{i + 1}",
               _ConvBlock(c_in, c_out, kernel=kernel, n_convs=n_convs, pool=pool))
              for i, (c_in, c_out, pool) in enumerate(zip(ins, channels, pools, strict=True))]
    time_stride = 1
    for pool in pools:
        time_stride *= pool
    return PannsTagger(blocks, channels=channels[-1], time_stride=time_stride, **frontend)


def cnn14() -> PannsTagger:
    """Cnn14 (32 kHz): six double-3×3 blocks, 64 … 2048 channels, 2048-d embedding."""
    return _cnn((64, 128, 256, 512, 1024, 2048), kernel=3, n_convs=2, pools=(2, 2, 2, 2, 2, 1))


def cnn14_16k() -> PannsTagger:
    """Cnn14 on the 16 kHz front end (window 512, hop 160, mel 50–8000 Hz)."""
    return _cnn((64, 128, 256, 512, 1024, 2048), kernel=3, n_convs=2, pools=(2, 2, 2, 2, 2, 1),
                sample_rate=16000, n_fft=512, hop_length=160, fmax=8000.0)


def cnn10() -> PannsTagger:
    """Cnn10 (32 kHz): four double-3×3 blocks, 64 … 512 channels, 512-d embedding."""
    return _cnn((64, 128, 256, 512), kernel=3, n_convs=2, pools=(2, 2, 2, 2))


def cnn6() -> PannsTagger:
    """Cnn6 (32 kHz): four single-5×5 blocks, 64 … 512 channels, 512-d embedding."""
    return _cnn((64, 128, 256, 512), kernel=5, n_convs=1, pools=(2, 2, 2, 2))


def mobilenetv1() -> PannsTagger:
    """PANNs MobileNetV1 (32 kHz): 14 stages, 1024-d embedding."""
    stages = [_mobilenet_stage(c_in, c_out, stride, depthwise=i > 0)
              for i, (c_in, c_out, stride) in enumerate(_MOBILENET_STAGES)]
    time_stride = 1
    for _, _, stride in _MOBILENET_STAGES:
        time_stride *= stride
    return PannsTagger([("features", nn.Sequential(*stages))], channels=1024,
                       time_stride=time_stride)
