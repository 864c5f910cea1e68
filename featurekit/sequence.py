"""Learned per-branch sequence embeddings: encoders of frame sequences and their classifier.

Each branch is also available as a *sequence* of frame-level descriptors (stored with
``featurekit extract --frames`` / ``featurekit embed --frames``). A :class:`SequenceClassifier`
turns one such stream into a 64-d embedding with a small encoder trained by cross-entropy, and
classifies from it; given several streams it trains one encoder per stream jointly, blended by
a learned per-clip gate (the joint two-stream model,
:class:`featurekit.fusion.JointSequenceClassifier`). The blend of frozen per-stream embeddings
(the "diverse embeddings" method) is :class:`featurekit.fusion.EmbeddingBlendClassifier`.

Streams (:func:`stream_columns`):

``pitch``
    f0 in cents, voicing probability, salience and the 12 chroma bins.
``timbre``
    MFCC, their deltas and the mel-band energies.
``spectral``
    every ``spectral.*`` frame descriptor.
``neural.<model>``
    the pretrained CNN's last feature map averaged over frequency (the "neuralogram").
``e2e``
    the log-mel frames the end-to-end stream learns from (store branch ``logmel``,
    :mod:`featurekit.neural.logmel`).

Sequence arrays are float32 of shape (n_clips, n_frames, n_dims), padded at the end with NaN:
a frame whose every value is NaN is padding (:func:`load_sequences` writes them, the classifier
masks them out). Isolated NaN values inside real frames are read as the training mean.

Encoders (each well under 0.5 M parameters for inputs up to a few hundred dimensions):

``cnn``
    a pointwise input projection to ``width`` channels, ``n_layers`` pre-norm residual blocks
    of two 1-D convolutions (kernel ``kernel_size``);
``transformer``
    a linear input projection plus sinusoidal positions, ``n_layers`` pre-norm Transformer
    layers (``n_heads`` heads, feed-forward ``2 * width``), padding masked in attention.

Both pool over real frames -- by default mean and standard deviation ("statistics pooling"),
the clip-level statistics a functionals head reads (how the defaults were chosen, on ESC-10:
``benchmarks/notes/sequence.md``) -- and end in ``Linear(pooled, embedding_dim)`` and GELU
(the embedding), then dropout and the linear class layer, so a linear model on the embedding
can express the encoder's own classifier.

Everything learned -- standardisation, encoder weights, the early-stopping split -- comes from
the rows given to ``fit``.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from torch import nn

from featurekit.benchmark.config import E2E_BRANCH
from featurekit.errors import ConfigError, StoreError
from featurekit.heads import (
    HeadSpec,
    check_label_matrix,
    stratification_labels,
    validation_split,
)
from featurekit.neural.embedding import torch_threads
from featurekit.neural.logmel import LOGMEL_BRANCH

__all__ = ["ENCODERS", "SEQUENCE_HEADS", "SequenceClassifier", "load_sequences",
           "stream_columns", "stream_store_branch"]

#: Frame-column patterns of the handcrafted streams (glob patterns, in stream order).
HANDCRAFTED_STREAMS: dict[str, tuple[str, ...]] = {
    "pitch": ("pitch.f0_cents", "pitch.voicing_prob", "pitch.salience", "pitch.chroma_*"),
    "timbre": ("timbre.mfcc_[0-9][0-9]", "timbre.mfcc_delta_*", "timbre.melband_*"),
    "spectral": ("spectral.*",),
}
#: Store branch holding the handcrafted frames.
HANDCRAFTED_BRANCH = "handcrafted"
#: Frame columns of the end-to-end stream (store branch ``logmel``).
E2E_PATTERNS = (f"{LOGMEL_BRANCH}.band_*",)
#: Stream name of an array given instead of a mapping of streams.
SINGLE_STREAM = "sequence"
#: Standardised inputs are clipped to this many standard deviations.
INPUT_CLIP = 5.0


# --------------------------------------------------------------------------------------------
# Streams and loading
# --------------------------------------------------------------------------------------------

def stream_store_branch(stream: str) -> str:
    """Store branch whose frames make up ``stream`` (``handcrafted``, ``neural.<model>`` or
    ``logmel``)."""
    if stream in HANDCRAFTED_STREAMS:
        return HANDCRAFTED_BRANCH
    if stream == E2E_BRANCH:
        return LOGMEL_BRANCH
    if stream.startswith("neural.") and stream.count(".") == 1:
        return stream
    raise ConfigError(f"unknown sequence stream {stream!r}; choose from "
                      f"{', '.join(HANDCRAFTED_STREAMS)}, {E2E_BRANCH} or neural.<model>")


def stream_columns(stream: str, available: Sequence[str]) -> list[str]:
    """Frame columns of ``stream`` among ``available`` (a frames table's columns), in order.

    Raises
    ------
    StoreError
        None of the stream's columns is present.
    """
    stream_store_branch(stream)
    patterns = (E2E_PATTERNS if stream == E2E_BRANCH
                else HANDCRAFTED_STREAMS.get(stream, (f"{stream}.neuralogram_*",)))
    names = [str(name) for name in available]
    chosen = list(dict.fromkeys(name for pattern in patterns
                                for name in fnmatch.filter(names, pattern)))
    if not chosen:
        raise StoreError(f"no frame column of stream {stream!r} (patterns "
                         f"{', '.join(patterns)}) among the stored frames")
    return chosen


def load_sequences(store: Any, dataset: str, streams: Sequence[str], clip_ids: Sequence[str],
                   *, max_frames: int | None = None,
                   chunk_size: int = 256) -> dict[str, np.ndarray]:
    """Frame sequences of clips from a feature store, NaN-padded.

    Parameters
    ----------
    store : FeatureStore
    dataset : str
    streams : sequence of str
        Stream names (see the module documentation).
    clip_ids : sequence of str
        Clips wanted, in the order of the returned rows.
    max_frames : int, optional
        Keep at most this many frames per clip (the first ones).
    chunk_size : int
        Clips read at a time (bounds the size of the intermediate frames table).

    Returns
    -------
    dict of str to np.ndarray
        Stream -> float32 array (n_clips, n_frames, n_dims), where ``n_frames`` is the longest
        clip (capped by ``max_frames``) and shorter clips are padded with all-NaN frames.

    Raises
    ------
    StoreError
        A branch was stored without frames, or a wanted clip has none.
    """
    clip_ids = [str(clip) for clip in clip_ids]
    row_of = {clip: row for row, clip in enumerate(clip_ids)}
    by_branch: dict[str, list[str]] = {}
    for stream in streams:
        by_branch.setdefault(stream_store_branch(stream), []).append(stream)
    out: dict[str, np.ndarray] = {}
    for branch, branch_streams in by_branch.items():
        pieces: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {s: [] for s in branch_streams}
        columns: dict[str, list[str]] = {}
        seen: set[str] = set()
        for start in range(0, len(clip_ids), chunk_size):
            wanted = clip_ids[start:start + chunk_size]
            frames = store.frames(dataset, branch, clip_ids=wanted)
            if not columns:
                columns = {s: stream_columns(s, frames.columns) for s in branch_streams}
            clips = frames["clip_id"].to_numpy()
            unique, first, counts = np.unique(clips, return_index=True, return_counts=True)
            seen.update(unique.tolist())
            position = np.arange(len(frames)) - np.repeat(first, counts)
            keep = position < (max_frames or np.iinfo(np.int64).max)
            rows = np.array([row_of[clip] for clip in clips[keep]], dtype=np.int64)
            for stream in branch_streams:
                values = frames[columns[stream]].to_numpy(dtype=np.float32)[keep]
                pieces[stream].append((rows, position[keep], values))
            del frames
        missing = [clip for clip in clip_ids if clip not in seen]
        if missing:
            raise StoreError(f"{len(missing)} clip(s) have no stored frames in "
                             f"{dataset}/{branch}, e.g. {missing[0]!r}")
        for stream in branch_streams:
            n_frames = 1 + max(int(positions.max()) for _, positions, _ in pieces[stream])
            array = np.full((len(clip_ids), n_frames, len(columns[stream])), np.nan,
                            dtype=np.float32)
            for rows, positions, values in pieces[stream]:
                array[rows, positions] = values
            out[stream] = array
            pieces[stream].clear()
    return out


def check_sequences(X: Any) -> np.ndarray:
    """One stream as float32 (n_clips, n_frames, n_dims), infinities read as NaN."""
    array = np.asarray(X, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"sequence input must be 3-D (clips, frames, dims), got shape "
                         f"{array.shape}")
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"sequence input has no frames or no dimensions: {array.shape}")
    if np.isinf(array).any():
        array = np.where(np.isinf(array), np.nan, array)
    return array


def _check_streams(X: Any) -> dict[str, np.ndarray]:
    """One array or a non-empty mapping of stream name to arrays of the same clips."""
    if not isinstance(X, Mapping):
        return {SINGLE_STREAM: check_sequences(X)}
    if not X:
        raise ValueError("X must be a sequence array or a non-empty mapping of stream name "
                         "to sequence arrays")
    streams = {str(name): check_sequences(values) for name, values in X.items()}
    sizes = {values.shape[0] for values in streams.values()}
    if len(sizes) != 1:
        raise ValueError(f"streams hold different numbers of clips: {sorted(sizes)}")
    return streams


def frame_mask(X: np.ndarray) -> np.ndarray:
    """Real (non-padding) frames, shape (n_clips, n_frames); a clip without any real frame
    gets its first frame marked real (it reads as the training mean)."""
    mask = ~np.isnan(X).all(axis=2)
    mask[~mask.any(axis=1), 0] = True
    return mask


# --------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------

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


class _Network(nn.Module):
    """Stream encoders, their gated blend and the class layer.

    With several streams, a softmax gate computed from the concatenated stream embeddings
    weighs each clip's stream embeddings into one (the fused embedding), and every stream has
    an auxiliary class layer of its own so that each encoder learns to classify on its own
    rather than lean on the strongest stream.
    """

    def __init__(self, encoders: Sequence[nn.Module], embedding_dim: int, n_classes: int,
                 dropout: float) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Linear(embedding_dim, n_classes)
        joint = len(encoders) > 1
        self.gate = nn.Linear(len(encoders) * embedding_dim, len(encoders)) if joint else None
        self.auxiliary = nn.ModuleList(nn.Linear(embedding_dim, n_classes)
                                       for _ in encoders) if joint else nn.ModuleList()

    def forward(self, inputs: Sequence[tuple[torch.Tensor, torch.Tensor]],
                hidden: torch.Tensor | None = None) -> _Outputs:
        """``hidden`` (batch, n_streams) bool: streams left out of each clip's blend (stream
        dropout; never all of a clip's streams)."""
        embeddings = [encoder(x, mask) for encoder, (x, mask) in zip(self.encoders, inputs,
                                                                      strict=True)]
        if self.gate is None:
            fused, weights, auxiliary = embeddings[0], None, []
        else:
            scores = self.gate(torch.cat(embeddings, dim=1))
            if hidden is not None:
                scores = scores.masked_fill(hidden, -torch.inf)
            weights = torch.softmax(scores, dim=1)
            fused = (torch.stack(embeddings, dim=1) * weights.unsqueeze(-1)).sum(dim=1)
            auxiliary = [layer(self.dropout(embedding))
                         for layer, embedding in zip(self.auxiliary, embeddings, strict=True)]
        return _Outputs(self.classify(self.dropout(fused)), fused, weights, auxiliary)


class _Outputs(NamedTuple):
    logits: torch.Tensor
    embedding: torch.Tensor
    weights: torch.Tensor | None  # (batch, n_streams) gate weights; None for one stream
    auxiliary: list[torch.Tensor]  # per-stream logits; empty for one stream


class StreamScaling:
    """Standardisation and time pooling of one stream, learned from training clips.

    Parameters
    ----------
    X : np.ndarray, shape (n_clips, n_frames, n_dims)
    rows : np.ndarray of int
        Training clips: the mean and scale come from their real frames only.
    max_steps : int, optional
        See :class:`SequenceClassifier`.
    """

    def __init__(self, X: np.ndarray, rows: np.ndarray, max_steps: int | None) -> None:
        total = np.zeros(X.shape[2])
        squares = np.zeros(X.shape[2])
        counts = np.zeros(X.shape[2])
        for start in range(0, rows.size, 256):  # chunks: no float64 copy of the whole input
            values = X[rows[start:start + 256]].astype(np.float64)
            finite = ~np.isnan(values)
            values = np.where(finite, values, 0.0)
            total += values.sum(axis=(0, 1))
            squares += (values ** 2).sum(axis=(0, 1))
            counts += finite.sum(axis=(0, 1))
        counts = np.maximum(counts, 1.0)
        mean = total / counts
        scale = np.sqrt(np.maximum(squares / counts - mean ** 2, 0.0))
        self.mean = mean.astype(np.float32)
        self.scale = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
        self.n_dims = X.shape[2]
        self.pool = 1 if max_steps is None else max(1, math.ceil(X.shape[1] / max_steps))

    def batch(self, X: np.ndarray, index: np.ndarray,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised, clipped, NaN-free, time-pooled batch trimmed to its longest clip,
        and its mask."""
        values = X[index]
        mask = frame_mask(values)
        last = int(np.flatnonzero(mask.any(axis=0)).max()) + 1
        values, mask = values[:, :last], mask[:, :last]
        values = np.clip((values - self.mean) / self.scale, -INPUT_CLIP, INPUT_CLIP)
        values = np.where(np.isnan(values) | ~mask[..., None], 0.0, values)
        if self.pool > 1:
            # Mean of each run of `pool` frames over its real frames; a run without any is
            # padding.
            n, steps = values.shape[0], math.ceil(last / self.pool)
            extra = steps * self.pool - last
            values = np.pad(values, ((0, 0), (0, extra), (0, 0)))
            mask = np.pad(mask, ((0, 0), (0, extra)))
            counts = mask.reshape(n, steps, self.pool).sum(axis=2)
            values = (values.reshape(n, steps, self.pool, -1).sum(axis=2)
                      / np.maximum(counts, 1)[..., None])
            mask = counts > 0
        return (torch.from_numpy(values.astype(np.float32)).to(device),
                torch.from_numpy(mask).to(device))


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


def encode_targets(y: Any, n_clips: int, who: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """``classes_``, the encoded targets and whether they are label sets, for a network head.

    Class labels (1-D) are encoded as class indices; a label-indicator matrix (2-D) is kept
    as 0/1, its columns the classes (multi-label: sigmoid outputs, binary cross-entropy).
    """
    y = np.asarray(y)
    if y.shape[0] != n_clips:
        raise ValueError(f"X has {n_clips} clips but y has {y.shape[0]}")
    if y.ndim == 2:
        encoded = check_label_matrix(y, who=who)
        return np.arange(encoded.shape[1]), encoded, True
    check_classification_targets(y)
    classes, encoded = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"{who} needs at least 2 classes, got {classes.size}")
    return classes, encoded, False


def target_tensor(encoded: np.ndarray, multilabel: bool, device: torch.device) -> torch.Tensor:
    """Class indices (int64) or label indicators (float32) on ``device``."""
    return torch.from_numpy(encoded.astype(np.float32 if multilabel else np.int64)).to(device)


def target_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class indices, or binary cross-entropy (per class, averaged) of label
    indicators."""
    if targets.dtype.is_floating_point:
        return nn.functional.binary_cross_entropy_with_logits(logits, targets)
    return nn.functional.cross_entropy(logits, targets)


def logits_to_proba(logits: torch.Tensor, multilabel: bool) -> np.ndarray:
    """Softmax class probabilities, or independent sigmoid probabilities of label sets."""
    logits = logits.double()
    return (torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)).cpu().numpy()


def proba_to_labels(proba: np.ndarray, classes: np.ndarray, multilabel: bool) -> np.ndarray:
    """Most probable class of each clip; for label sets, indicators of probabilities >= 0.5."""
    if multilabel:
        return (proba >= 0.5).astype(np.int64)
    return classes[np.argmax(proba, axis=1)]


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


# --------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------

class SequenceClassifier(ClassifierMixin, BaseEstimator):
    """Sequence encoders trained by cross-entropy; classify and embed frame sequences.

    Given one stream (an array), one encoder turns each clip into an embedding and a linear
    layer classifies it. Given several streams (a mapping of name to array, same clips in the
    same order), each stream has its own encoder and the model is trained jointly: a learned
    gate weighs each clip's stream embeddings into one fused embedding that is classified, and
    an auxiliary class layer per stream adds ``aux_weight`` times the mean of the streams' own
    losses (the joint two-stream model; :meth:`stream_weights` tells how much each stream is
    relied on).

    Parameters
    ----------
    encoder : {"cnn", "transformer"}
        Encoder architecture (see the module documentation), the same for every stream.
    width : int
        Channels of the encoder.
    embedding_dim : int
        Size of the embedding returned by :meth:`transform`.
    n_layers : int
        Residual blocks (``cnn``) or Transformer layers.
    n_heads : int
        Attention heads (``transformer``).
    kernel_size : int
        Convolution kernel, frames (``cnn``).
    dropout : float
    pooling : {"meanstd", "mean"}
        Pooling over time of the encoder's real frames: their mean and standard deviation
        (statistics pooling; the embedding layer reads twice as many inputs), or their mean
        only. How the default was chosen: ``benchmarks/notes/sequence.md``.
    frame_dropout : float
        Share of each training clip's real frames hidden from the encoders at every step
        (time masking, an augmentation); never all of a clip's frames. 0 turns it off.
    stream_dropout : float
        Several streams: probability that a stream is left out of a training clip's blend at
        a step (never all of a clip's streams), a regularisation meant to keep the blend from
        relying on one stream alone. 0 turns it off. How the default was chosen:
        ``benchmarks/notes/sequence.md``.
    max_steps : int, optional
        Sequences longer than this are average-pooled over time by the smallest integer
        factor that brings them to at most ``max_steps`` steps (e.g. 173 handcrafted frames
        of 23 ms -> 44 steps of 93 ms); this bounds the cost per clip. ``None``: no pooling.
    max_epochs : int
        Upper bound on training epochs.
    batch_size : int
    learning_rate, weight_decay : float
        AdamW step size (cosine-decayed over ``max_epochs``) and decoupled weight decay.
    label_smoothing : float
        Of the training cross-entropy.
    aux_weight : float
        Weight of the per-stream auxiliary losses (several streams only).
    patience : int
        Stop after this many epochs without a lower validation log-loss; the best epoch's
        weights are kept.
    validation_fraction : float
        Share of the training clips held out for early stopping, whole groups (folds) when
        ``groups`` allow it (:func:`featurekit.heads.validation_split`); without a possible
        validation set, training runs ``max_epochs``.
    n_jobs : int
        torch threads.
    device : str, optional
        Default CUDA when available, else CPU.
    random_state : int, optional
        Seed of weights, batching, dropout, frame dropout and the validation split. On CPU a
        seed gives identical results; on GPU, determinism is as good as the kernels allow.

    Attributes
    ----------
    classes_ : np.ndarray
    streams_ : list of str
        Stream names in input order (``["sequence"]`` for an array input).
    n_dims_ : dict of str to int
        Dimensions per frame of each stream.
    pool_ : dict of str to int
        Time-pooling factor applied to each stream's frames (see ``max_steps``).
    network_ : torch.nn.Module
    n_epochs_ : int
        Epochs run; ``best_epoch_`` the one whose weights were kept.
    n_parameters_ : int
        Parameters of the encoders (and gate), without the class layers.

    Notes
    -----
    Each stream is float (n_clips, n_frames, n_dims) with all-NaN padding frames (see
    :func:`load_sequences`); standardisation comes from the training clips' real frames.
    """

    def __init__(self, *, encoder: str = "cnn", width: int = 64, embedding_dim: int = 64,
                 n_layers: int = 2, n_heads: int = 4, kernel_size: int = 5,
                 dropout: float = 0.1, pooling: str = "meanstd", frame_dropout: float = 0.0,
                 stream_dropout: float = 0.0, max_steps: int | None = 48,
                 max_epochs: int = 30, batch_size: int = 64,
                 learning_rate: float = 2e-3, weight_decay: float = 1e-2,
                 label_smoothing: float = 0.1, aux_weight: float = 0.5, patience: int = 6,
                 validation_fraction: float = 0.15, n_jobs: int = 1,
                 device: str | None = None, random_state: int | None = None) -> None:
        self.encoder = encoder
        self.width = width
        self.embedding_dim = embedding_dim
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.pooling = pooling
        self.frame_dropout = frame_dropout
        self.stream_dropout = stream_dropout
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.aux_weight = aux_weight
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.n_jobs = n_jobs
        self.device = device
        self.random_state = random_state

    # ----------------------------------------------------------------- helpers
    def _device(self) -> torch.device:
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def build_encoder(self, n_inputs: int) -> nn.Module:
        """An untrained encoder of this configuration for ``n_inputs`` dimensions."""
        if self.encoder not in ENCODERS:
            raise ConfigError(f"unknown encoder {self.encoder!r}; choose from "
                              f"{', '.join(ENCODERS)}")
        options: dict[str, Any] = dict(width=self.width, embedding_dim=self.embedding_dim,
                                       n_layers=self.n_layers, dropout=self.dropout,
                                       pooling=self.pooling)
        if self.encoder == "cnn":
            options["kernel_size"] = self.kernel_size
        else:
            options["n_heads"] = self.n_heads
        return ENCODERS[self.encoder](n_inputs, **options)

    def _check_options(self) -> None:
        for name in ("frame_dropout", "stream_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.aux_weight < 0.0:
            raise ConfigError(f"aux_weight must be >= 0, got {self.aux_weight}")

    def _inputs(self, X: np.ndarray | Mapping[str, np.ndarray], index: np.ndarray,
                device: torch.device, rng: np.random.Generator | None = None
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each stream's batch of clips ``index``; with ``rng``, frames are dropped at random
        (training)."""
        batches = []
        for name, scaling in zip(self.streams_, self.scaling_, strict=True):
            values, mask = scaling.batch(X[name], index, device)
            if rng is not None and self.frame_dropout > 0.0:
                hidden = torch.from_numpy(rng.random(tuple(mask.shape)) < self.frame_dropout)
                kept = mask & ~hidden.to(device)
                # A clip keeps its frames when dropout would have hidden every one of them.
                mask = torch.where(kept.any(dim=1, keepdim=True), kept, mask)
            batches.append((values, mask))
        return batches

    def _hidden_streams(self, n_clips: int, rng: np.random.Generator,
                        device: torch.device) -> torch.Tensor | None:
        """Streams left out of each training clip's blend (stream dropout), or None."""
        if len(self.streams_) < 2 or self.stream_dropout <= 0.0:
            return None
        hidden = rng.random((n_clips, len(self.streams_))) < self.stream_dropout
        hidden[hidden.all(axis=1), rng.integers(len(self.streams_))] = False
        return torch.from_numpy(hidden).to(device)

    def _forward_rows(self, X: Mapping[str, np.ndarray], rows: np.ndarray,
                      device: torch.device) -> _Outputs:
        self.network_.eval()
        outputs = []
        with torch.no_grad():
            for start in range(0, rows.size, 256):
                outputs.append(self.network_(self._inputs(X, rows[start:start + 256], device)))
        weights = [out.weights for out in outputs]
        return _Outputs(torch.cat([out.logits for out in outputs]),
                        torch.cat([out.embedding for out in outputs]),
                        None if weights[0] is None else torch.cat(weights), [])

    def _loss(self, outputs: _Outputs, targets: torch.Tensor,
              criterion: nn.Module) -> torch.Tensor:
        loss = criterion(outputs.logits, targets)
        if outputs.auxiliary and self.aux_weight > 0.0:
            loss = loss + self.aux_weight * torch.stack(
                [criterion(logits, targets) for logits in outputs.auxiliary]).mean()
        return loss

    # --------------------------------------------------------------------- API
    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> SequenceClassifier:
        """Train on clips ``X`` -- one stream (n_clips, n_frames, n_dims) or a mapping of
        stream name to such arrays -- with labels ``y``; ``groups`` (their folds) shape the
        early-stopping split."""
        self._check_options()
        streams = _check_streams(X)
        n_clips = next(iter(streams.values())).shape[0]
        self.classes_, encoded, self.multilabel_ = encode_targets(y, n_clips,
                                                                  "SequenceClassifier")
        seed = 0 if self.random_state is None else int(self.random_state)
        split = validation_split(stratification_labels(encoded),
                                 None if groups is None else np.asarray(groups),
                                 fraction=self.validation_fraction, random_state=seed)
        train, val = split if split is not None else (np.arange(n_clips), None)
        self.streams_ = list(streams)
        self.scaling_ = [StreamScaling(values, train, self.max_steps)
                         for values in streams.values()]
        self.n_dims_ = {name: s.n_dims for name, s in zip(self.streams_, self.scaling_,
                                                          strict=True)}
        self.pool_ = {name: s.pool for name, s in zip(self.streams_, self.scaling_,
                                                      strict=True)}
        device = self._device()
        rng = np.random.default_rng(seed)
        with torch_threads(self.n_jobs), deterministic_torch(seed):
            self.network_ = _Network([self.build_encoder(s.n_dims) for s in self.scaling_],
                                     self.embedding_dim, self.classes_.size,
                                     self.dropout).to(device)
            self.n_parameters_ = sum(p.numel() for name, p in self.network_.named_parameters()
                                     if name.startswith(("encoders.", "gate.")))
            # Label sets: binary cross-entropy per class (no smoothing of label sets).
            criterion = (nn.BCEWithLogitsLoss() if self.multilabel_
                         else nn.CrossEntropyLoss(label_smoothing=self.label_smoothing))
            targets = target_tensor(encoded, self.multilabel_, device)

            def step(rows: np.ndarray) -> torch.Tensor:
                outputs = self.network_(self._inputs(streams, rows, device, rng),
                                        self._hidden_streams(rows.size, rng, device))
                return self._loss(outputs, targets[rows], criterion)

            def validation_loss(rows: np.ndarray) -> float:
                logits = self._forward_rows(streams, rows, device).logits
                return float(target_loss(logits, targets[rows]))

            self.n_epochs_, self.best_epoch_ = train_epochs(
                self.network_, train=train, val=val, step=step,
                validation_loss=validation_loss, rng=rng, batch_size=self.batch_size,
                max_epochs=self.max_epochs, learning_rate=self.learning_rate,
                weight_decay=self.weight_decay, patience=self.patience)
        self.network_.eval()
        return self

    def _outputs(self, X: Any) -> _Outputs:
        check_is_fitted(self, "network_")
        streams = _check_streams(X)
        if list(streams) != self.streams_:
            raise ValueError(f"expected streams {self.streams_}, got {list(streams)}")
        for name, values in streams.items():
            if values.shape[2] != self.n_dims_[name]:
                raise ValueError(f"stream {name!r} has {values.shape[2]} dimensions per frame, "
                                 f"the classifier was fitted with {self.n_dims_[name]}")
        device = next(self.network_.parameters()).device
        n_clips = next(iter(streams.values())).shape[0]
        with torch_threads(self.n_jobs):
            return self._forward_rows(streams, np.arange(n_clips), device)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_clips, n_classes), columns in ``classes_`` order
        (independent per-class probabilities when fitted on label sets)."""
        return logits_to_proba(self._outputs(X).logits, self.multilabel_)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each clip; label sets: indicators of probabilities >= 0.5."""
        return proba_to_labels(self.predict_proba(X), self.classes_, self.multilabel_)

    def transform(self, X: Any) -> np.ndarray:
        """The learned (fused) embedding of each clip, shape (n_clips, embedding_dim),
        float32."""
        return self._outputs(X).embedding.cpu().numpy().astype(np.float32)

    def stream_weights(self, X: Any) -> np.ndarray:
        """Gate weight of each stream for each clip, shape (n_clips, n_streams), rows sum to
        1, columns in ``streams_`` order (all ones for a single stream)."""
        outputs = self._outputs(X)
        if outputs.weights is None:
            return np.ones((outputs.logits.shape[0], 1))
        return outputs.weights.double().cpu().numpy()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``seq_emb_00`` ... names of the :meth:`transform` columns."""
        width = max(2, len(str(self.embedding_dim - 1)))
        return np.array([f"seq_emb_{i:0{width}d}" for i in range(self.embedding_dim)],
                        dtype=object)


#: The benchmark's sequence head (looked up by :mod:`featurekit.benchmark` next to
#: :data:`featurekit.heads.HEADS`); its search grid stays small because every candidate
#: trains ``inner_splits`` encoders.
SEQUENCE_HEADS: dict[str, HeadSpec] = {
    "seq": HeadSpec("seq", SequenceClassifier, seeded=True,
                    param_grid={"encoder": ["cnn", "transformer"]}),
}
