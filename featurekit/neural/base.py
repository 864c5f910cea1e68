"""What every pretrained audio-tagging model of featurekit offers, whatever its family."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AudioTagger"]


class AudioTagger(nn.Module):
    """Base of the frozen AudioSet models: waveform in, embedding, tags and neuralogram out.

    Subclasses set the attributes below and implement :meth:`logmel` and :meth:`trunk`.
    Only the evaluation-mode forward pass is implemented (dropout, SpecAugment and mixup are
    training devices and change nothing at inference).

    Attributes
    ----------
    sample_rate : int
        Rate the input waveforms must have, Hz.
    embedding_dim : int
        Size of ``embedding``.
    n_classes : int
        Size of ``tags`` (527 AudioSet classes).
    frame_period_s : float
        Time between consecutive rows of ``frames``, seconds.
    first_frame_s : float or None
        Time of the first row of ``frames`` from the start of the input, seconds; None (the
        default): the centre of the first period, ``frame_period_s / 2``.
    window_s : float or None
        Length of the windows longer clips are cut into, seconds: the model's own input
        length where it has one; None (the default): featurekit's
        :data:`~featurekit.neural.embedding.WINDOW_S`.
    """

    sample_rate: int
    embedding_dim: int
    n_classes: int = 527
    frame_period_s: float
    first_frame_s: float | None = None
    window_s: float | None = None

    def logmel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Front-end output in the publisher's convention (see the subclass)."""
        raise NotImplementedError

    def trunk(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``embedding``, ``logits`` and the last feature map ``fmap`` as
        (batch, channels, time, freq)."""
        raise NotImplementedError

    def forward(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the model on float32 ``waveforms`` of shape (batch, samples).

        Returns
        -------
        dict
            ``embedding`` (batch, embedding_dim); ``logits`` (batch, 527); ``tags``
            (batch, 527), sigmoid probabilities; ``frames`` (batch, time, channels), the last
            convolutional feature map averaged over frequency (a "neuralogram", one row per
            ``frame_period_s``).
        """
        if waveforms.ndim != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), "
                             f"got {tuple(waveforms.shape)}")
        out = self.trunk(waveforms)
        fmap = out.pop("fmap")
        out["tags"] = torch.sigmoid(out["logits"])
        out["frames"] = fmap.mean(dim=3).transpose(1, 2)
        return out
