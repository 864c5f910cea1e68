"""The torch training kit every network head shares: seeded deterministic blocks, targets and
losses for class labels and label sets, early stopping and one training loop (AdamW, cosine
schedule, shuffled batches).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """Seed torch and switch on deterministic algorithms for the block (then restore)."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    # warn_only: a CUDA kernel without a deterministic variant must not stop a run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


class EarlyStopping:
    """Keeps the weights of the epoch with the lowest validation loss and says when to stop.

    Parameters
    ----------
    patience : int
        Epochs without an improvement of more than ``min_delta`` before stopping.
    min_delta : float
    """

    def __init__(self, patience: int, min_delta: float = 1e-4) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best_loss = math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, Any] | None = None
        self.stale = 0

    def update(self, epoch: int, loss: float, network: nn.Module) -> bool:
        """Record ``epoch``'s validation loss; True when training should stop."""
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.stale = loss, epoch, 0
            self.best_state = copy.deepcopy(network.state_dict())
            return False
        self.stale += 1
        return self.stale >= self.patience

    def restore(self, network: nn.Module) -> None:
        """Load the best epoch's weights (nothing when no epoch was validated)."""
        if self.best_state is not None:
            network.load_state_dict(self.best_state)


def target_tensor(encoded: np.ndarray, multilabel: bool, device: torch.device) -> torch.Tensor:
    """Class indices (int64) or label indicators (float32) on ``device``."""
    return torch.from_numpy(encoded.astype(np.float32 if multilabel else np.int64)).to(device)


def target_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class indices, or binary cross-entropy (per class, averaged) of label
    indicators."""
    if targets.dtype.is_floating_point:
        return nn.functional.binary_cross_entropy_with_logits(logits, targets)
    return nn.functional.cross_entropy(logits, targets)


def info_nce(embeddings: Sequence[torch.Tensor], *, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between the streams' embeddings of the same clips.

    For every pair of streams, each clip's embedding in one stream should be most similar
    (cosine similarity divided by ``temperature``) to the same clip's embedding in the other
    stream among the batch's clips: the cross-entropy of that choice, in both directions,
    averaged over pairs (van den Oord et al., 2018; CLIP's symmetric form, Radford et al.,
    2021).

    Parameters
    ----------
    embeddings : sequence of torch.Tensor, each (batch, dim)
        Two or more streams' embeddings, rows are the same clips.
    temperature : float, keyword-only
        Greater than 0; smaller sharpens the similarities.

    Returns
    -------
    torch.Tensor
        Scalar loss; ``log(batch)`` for embeddings that carry no information about the clip.
    """
    normalised = [nn.functional.normalize(embedding, dim=1) for embedding in embeddings]
    same_clip = torch.arange(normalised[0].shape[0], device=normalised[0].device)
    losses = []
    for first, second in itertools.combinations(normalised, 2):
        similarity = first @ second.T / temperature
        losses += [nn.functional.cross_entropy(similarity, same_clip),
                   nn.functional.cross_entropy(similarity.T, same_clip)]
    return torch.stack(losses).mean()


def logits_to_proba(logits: torch.Tensor, multilabel: bool) -> np.ndarray:
    """Softmax class probabilities, or independent sigmoid probabilities of label sets."""
    logits = logits.double()
    return (torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)).cpu().numpy()


def train_epochs(network: nn.Module, *, train: np.ndarray, val: np.ndarray | None,
                 step: Callable[[np.ndarray], torch.Tensor],
                 validation_loss: Callable[[np.ndarray], float], rng: np.random.Generator,
                 batch_size: int, max_epochs: int, learning_rate: float, weight_decay: float,
                 patience: int) -> tuple[int, int]:
    """Train ``network`` with AdamW and a cosine schedule, stopping early on ``val``.

    Each epoch visits the ``train`` rows in a fresh order drawn from ``rng``, in batches of
    ``batch_size``; a last batch of one row is skipped (normalisation statistics and the loss
    of one clip are noise). ``step(rows)`` returns the batch's loss. With ``val``, training
    stops ``patience`` epochs after the lowest ``validation_loss(val)`` and that epoch's
    weights are restored (:class:`EarlyStopping`).

    Returns
    -------
    (n_epochs, best_epoch) : tuple of int
        Epochs run, and the epoch whose weights the network holds.
    """
    optimiser = torch.optim.AdamW(network.parameters(), lr=learning_rate,
                                  weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max_epochs)
    stopping = EarlyStopping(patience)
    n_epochs = 0
    for epoch in range(1, max_epochs + 1):
        network.train()
        order = rng.permutation(train)
        for start in range(0, order.size, batch_size):
            rows = order[start:start + batch_size]
            if rows.size < 2 and order.size > 1:
                continue
            optimiser.zero_grad()
            step(rows).backward()
            optimiser.step()
        schedule.step()
        n_epochs = epoch
        if val is not None and stopping.update(epoch, validation_loss(val), network):
            break
    stopping.restore(network)
    return n_epochs, stopping.best_epoch or n_epochs
