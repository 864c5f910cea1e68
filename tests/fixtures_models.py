"""Tiny pretrained-model stand-ins that a test registers by name
(:func:`featurekit.neural.register_model`): no download, no weights file.
"""

from __future__ import annotations

import torch
from torch import nn

from featurekit.neural import AudioTagger


class FrameStats(AudioTagger):
    """A trivial tagger: per 0.1-s frame, mean and spread of the waveform, projected to 4."""

    sample_rate = 8000
    embedding_dim = 4
    frame_period_s = 0.1

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.project = nn.Linear(2, self.embedding_dim)

    def trunk(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        frames = waveforms.unfold(1, 800, 800)
        hidden = self.project(torch.stack([frames.mean(-1), frames.std(-1)], dim=-1))
        return {"embedding": hidden.mean(dim=1),
                "logits": torch.zeros(len(waveforms), self.n_classes),
                "fmap": hidden.transpose(1, 2).unsqueeze(-1)}


#: What a package's entry point names: register_model's arguments, factory included.
FRAME_STATS = {"factory": FrameStats, "sample_rate": 8000, "embedding_dim": 4,
               "version": "1", "license": "MIT"}
