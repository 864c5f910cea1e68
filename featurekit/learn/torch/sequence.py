"""Learned per-stream sequence embeddings: :class:`SequenceClassifier` and its head spec.

Each feature group is also available as a *stream* of frame-level descriptors (stored with
``featurekit extract --frames`` / ``featurekit embed --frames``; the streams and how they are
read: :mod:`featurekit.store.sequences`). A :class:`SequenceClassifier` turns one stream into a
64-d embedding with a small encoder (:mod:`featurekit.learn.torch.encoders`) trained by
cross-entropy, and classifies from it; given several streams it trains one encoder per stream
jointly, blended by a learned per-clip gate (the joint two-stream model,
:class:`featurekit.fusion.JointSequenceClassifier`). The blend of frozen per-stream embeddings
(the "diverse embeddings" method) is :class:`featurekit.fusion.EmbeddingBlendClassifier`.

Padding frames (all NaN) are masked out; isolated NaN values inside real frames are read as
the training mean. The encoders pool over real frames -- by default mean and standard deviation
("statistics pooling", how the defaults were chosen, on ESC-10: ``benchmarks/notes/sequence.md``)
-- then dropout and the linear class layer, so a linear model on the embedding can express the
encoder's own classifier.

Everything learned -- standardisation, encoder weights, the early-stopping split -- comes from
the rows given to ``fit``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import TransformerTags
from sklearn.utils.validation import check_is_fitted
from torch import nn

from featurekit.errors import ConfigError
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.splits import AUTO_VALIDATION, early_stopping_split
from featurekit.learn.targets import encode_targets, proba_to_labels
from featurekit.learn.torch.encoders import ENCODERS
from featurekit.learn.torch.inputs import StreamScaling, check_streams
from featurekit.learn.torch.training import (
    deterministic_torch,
    info_nce,
    logits_to_proba,
    target_loss,
    target_tensor,
    train_epochs,
)
from featurekit.neural.embedding import torch_threads
from featurekit.neural.registry import default_device

__all__ = ["SEQUENCE_HEADS", "SequenceClassifier"]


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
            fused, weights, auxiliary, streams = embeddings[0], None, [], []
        else:
            scores = self.gate(torch.cat(embeddings, dim=1))
            if hidden is not None:
                scores = scores.masked_fill(hidden, -torch.inf)
            weights = torch.softmax(scores, dim=1)
            fused = (torch.stack(embeddings, dim=1) * weights.unsqueeze(-1)).sum(dim=1)
            auxiliary = [layer(self.dropout(embedding))
                         for layer, embedding in zip(self.auxiliary, embeddings, strict=True)]
            streams = embeddings
        return _Outputs(self.classify(self.dropout(fused)), fused, weights, auxiliary, streams)


class _Outputs(NamedTuple):
    logits: torch.Tensor
    embedding: torch.Tensor
    weights: torch.Tensor | None  # (batch, n_streams) gate weights; None for one stream
    auxiliary: list[torch.Tensor]  # per-stream logits; empty for one stream
    streams: list[torch.Tensor]  # per-stream embeddings; empty for one stream


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
    contrastive_weight : float
        Weight of the contrastive alignment of the streams (several streams only): a
        symmetric InfoNCE term (:func:`~featurekit.learn.torch.training.info_nce`) that pulls
        each stream's embedding of a clip towards the other streams' embeddings of the same
        clip and away from those of the batch's other clips. 0 (the default) trains without
        it: on ESC-10 neither 0.1 nor 0.5 beat 0 by more than the spread across folds, the
        rule fixed beforehand for adopting one (``benchmarks/notes/contrastive.md``).
    contrastive_temperature : float
        Temperature of the InfoNCE similarities (cosine similarity / temperature).
    patience : int
        Stop after this many epochs without a lower validation log-loss; the best epoch's
        weights are kept.
    validation_fraction : float
        Share of the training clips held out for early stopping, whole groups (folds) when
        ``groups`` allow it (:func:`featurekit.learn.splits.validation_split`); without a possible
        validation set, training runs ``max_epochs``.
    validation_kind : {"auto", "groups", "clips", "none"}
        What the early-stopping split holds out: ``"auto"`` the first that the clips allow, or
        a kind imposed (:func:`featurekit.learn.splits.early_stopping_split`; a benchmark's
        inner out-of-fold twins take their member's ``validation_kind_``).
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
    validation_kind_ : {"groups", "clips", "none"}
        What the early-stopping split held out (``"none"``: trained ``max_epochs``).

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
                 label_smoothing: float = 0.1, aux_weight: float = 0.5,
                 contrastive_weight: float = 0.0, contrastive_temperature: float = 0.1,
                 patience: int = 6,
                 validation_fraction: float = 0.15,
                 validation_kind: str = AUTO_VALIDATION, n_jobs: int = 1,
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
        self.contrastive_weight = contrastive_weight
        self.contrastive_temperature = contrastive_temperature
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.validation_kind = validation_kind
        self.n_jobs = n_jobs
        self.device = device
        self.random_state = random_state

    # ----------------------------------------------------------------- helpers
    def _device(self) -> torch.device:
        return torch.device(self.device or default_device())

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
        for name in ("aux_weight", "contrastive_weight"):
            if getattr(self, name) < 0.0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.contrastive_temperature <= 0.0:
            raise ConfigError("contrastive_temperature must be > 0, got "
                              f"{self.contrastive_temperature}")

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
                        None if weights[0] is None else torch.cat(weights), [], [])

    def _loss(self, outputs: _Outputs, targets: torch.Tensor,
              criterion: nn.Module) -> torch.Tensor:
        loss = criterion(outputs.logits, targets)
        if outputs.auxiliary and self.aux_weight > 0.0:
            loss = loss + self.aux_weight * torch.stack(
                [criterion(logits, targets) for logits in outputs.auxiliary]).mean()
        if outputs.streams and self.contrastive_weight > 0.0:
            loss = loss + self.contrastive_weight * info_nce(
                outputs.streams, temperature=self.contrastive_temperature)
        return loss

    # --------------------------------------------------------------------- API
    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> SequenceClassifier:
        """Train on clips ``X`` -- one stream (n_clips, n_frames, n_dims) or a mapping of
        stream name to such arrays -- with labels ``y``; ``groups`` (their folds) shape the
        early-stopping split."""
        self._check_options()
        streams = check_streams(X)
        n_clips = next(iter(streams.values())).shape[0]
        self.classes_, encoded, self.multilabel_ = encode_targets(y, who="SequenceClassifier",
                                                                  n_samples=n_clips)
        seed = 0 if self.random_state is None else int(self.random_state)
        split, self.validation_kind_ = early_stopping_split(
            encoded, groups, fraction=self.validation_fraction, random_state=seed,
            kind=self.validation_kind)
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
        streams = check_streams(X)
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

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Clips are 3-D (clips, frames, dims) arrays, or a mapping of stream name to them,
        # NaN frames being padding; transform embeds them (always float32).
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.dict = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags = TransformerTags(preserves_dtype=["float32"])
        return tags


#: The benchmark's sequence head (looked up by :mod:`featurekit.benchmark` next to
#: :data:`featurekit.learn.heads.registry.HEADS`); its search grid stays small because every
# candidate
#: trains ``inner_splits`` encoders.
SEQUENCE_HEADS: dict[str, HeadSpec] = {
    "seq": HeadSpec("seq", SequenceClassifier, seeded=True,
                    param_grid={"encoder": ["cnn", "transformer"]},
                    defaults_chosen_on=("esc10",)),
}
