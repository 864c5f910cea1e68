"""The end-to-end stream: a compact CNN trained from scratch on the task's log-mel spectrograms.

The paper this project serves (arXiv 2309.08751) fuses pitch, timbre, a pretrained network's
"neuralogram" and an end-to-end network trained on the task itself. :class:`E2EClassifier` is
that fourth stream: a scikit-learn classifier whose input is each clip's log-mel frames (the
``logmel`` store branch, :mod:`featurekit.computers.logmel`; NaN-padded sequences of shape
(n_clips, n_frames, n_mels)), trained from random initialisation on the rows given to ``fit``
only.

Architecture (:class:`E2ECNN`, 0.25 M parameters for 10 classes): four stages of 3x3
convolutions without bias, batch normalisation and ReLU (16, 32, 64 and 128 channels; one
convolution in each of the first three stages, two in the last); the first convolution has
stride 2, and the second and third stages end in 2x2 average pooling. The last feature map
averaged over frequency is the stream's frame sequence (one 128-d frame per 8 input frames,
160 ms at the default 20 ms hop; :meth:`E2EClassifier.frames`); its mean and maximum over real
frames (the clip embedding, :meth:`E2EClassifier.transform`) feed dropout and a linear class
layer.

Training recipe: inputs standardised per band with the training clips' real frames; at every
step, each clip is shifted in time (circularly within its real frames) and masked SpecAugment-
style (``time_masks`` spans of up to ``time_mask_share`` of its frames and ``freq_masks`` bands
of up to ``freq_mask_bands`` bands set to the training mean), then mixed with another clip of
the batch (mixup, weight drawn from Beta(``mixup_alpha``, ``mixup_alpha``)). AdamW with a cosine
schedule over ``max_epochs``; early stopping on the validation loss of held-out source
recordings (:func:`featurekit.learn.splits.validation_split` with ``groups``), keeping the best
epoch's weights. On CPU a fixed ``random_state`` and ``n_jobs`` give the same network on every
run (the thread count changes float rounding, which moves a small network); it uses
CUDA when present (``device=None``).

The recipe is a standard one fixed before any benchmark (not tuned on any test fold); its
accuracy alone and its cost are in ``benchmarks/notes/e2e.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

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
from featurekit.learn.torch.inputs import StreamScaling, check_sequences
from featurekit.learn.torch.training import (
    deterministic_torch,
    logits_to_proba,
    target_loss,
    target_tensor,
    train_epochs,
)
from featurekit.neural.embedding import torch_threads
from featurekit.neural.registry import default_device

__all__ = ["E2ECNN", "E2E_HEADS", "E2EClassifier"]

#: Clips per forward pass at prediction time.
PREDICT_BATCH = 128


def _pool_mask(mask: torch.Tensor) -> torch.Tensor:
    """Real steps after a 2x average pooling over time: a step is real if either frame is."""
    steps = mask.shape[1] // 2
    return mask[:, : 2 * steps].reshape(mask.shape[0], steps, 2).any(dim=2)


class E2ECNN(nn.Module):
    """Convolution stages over log-mel spectrograms, frame sequence, pooled class layer.

    Parameters
    ----------
    n_classes : int
    channels : sequence of int
        Channels of each stage.
    convs_per_stage : sequence of int
        3x3 convolutions in each stage.
    dropout : float
        Dropout before the class layer.
    """

    def __init__(self, n_classes: int, *, channels: Sequence[int] = (16, 32, 64, 128),
                 convs_per_stage: Sequence[int] = (1, 1, 1, 2), dropout: float = 0.3) -> None:
        super().__init__()
        if len(channels) != len(convs_per_stage) or not channels:
            raise ConfigError("channels and convs_per_stage must be non-empty and of equal "
                              "length")
        stages, previous = [], 1
        last = len(channels) - 1
        for index, (width, count) in enumerate(zip(channels, convs_per_stage, strict=True)):
            layers: list[nn.Module] = []
            for conv in range(count):
                # The first stage halves the resolution by its stride rather than by pooling:
                # full-resolution feature maps would cost half of the training time on a CPU.
                stride = 2 if index == 0 and conv == 0 and last > 0 else 1
                layers += [nn.Conv2d(previous, width, 3, stride=stride, padding=1, bias=False),
                           nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                previous = width
            if 0 < index < last:
                layers.append(nn.AvgPool2d(2))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.n_pools = len(channels) - 1
        self.width = previous
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * previous, n_classes)

    @property
    def time_step(self) -> int:
        """Input frames per output frame."""
        return 2 ** self.n_pools

    def frames(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame sequence (batch, steps, width) of inputs x (batch, frames, bands) whose frame
        count is a multiple of :attr:`time_step`, and its mask (batch, steps)."""
        h = x.transpose(1, 2).unsqueeze(1)  # (batch, 1, bands, frames)
        for stage in self.stages:
            h = stage(h)
        for _ in range(self.n_pools):
            mask = _pool_mask(mask)
        return h.mean(dim=2).transpose(1, 2), mask[:, : h.shape[3]]

    def embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean and maximum of the frames over real steps, (batch, 2 * width)."""
        frames, mask = self.frames(x, mask)
        weights = mask.unsqueeze(-1).to(frames.dtype)
        mean = (frames * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        peak = frames.masked_fill(~mask.unsqueeze(-1), -math.inf).amax(dim=1)
        return torch.cat([mean, peak], dim=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, n_classes)."""
        return self.classifier(self.dropout(self.embed(x, mask)))


class E2EClassifier(ClassifierMixin, BaseEstimator):
    """A compact CNN trained from scratch on log-mel frame sequences (see the module docs).

    Parameters
    ----------
    channels : tuple of int
        Channels of each convolution stage (see :class:`E2ECNN`).
    convs_per_stage : tuple of int
        3x3 convolutions in each stage.
    dropout : float
        Dropout before the class layer.
    max_epochs : int
        Upper bound of training epochs (the cosine schedule spans them).
    patience : int
        Epochs without a better validation loss before training stops.
    batch_size : int
        Training clips per step.
    learning_rate : float
        Initial AdamW step (cosine-annealed to 0 over ``max_epochs``).
    weight_decay : float
        AdamW weight decay.
    mixup_alpha : float
        Beta parameter of the mixup weight; 0 turns mixup off.
    time_masks, freq_masks : int
        SpecAugment masks per clip and step.
    time_mask_share : float
        Longest time mask, as a share of the clip's real frames.
    freq_mask_bands : int
        Widest frequency mask, bands.
    time_shift : bool
        Circular shift of each training clip within its real frames.
    validation_fraction : float
        Share of the training recordings held out for early stopping.
    validation_kind : {"auto", "groups", "clips", "none"}
        What the early-stopping split holds out: ``"auto"`` the first that the clips allow, or
        a kind imposed (:func:`featurekit.learn.splits.early_stopping_split`; a benchmark's
        inner out-of-fold twins take their member's ``validation_kind_``).
    n_jobs : int
        torch threads.
    device : str, optional
        ``"cpu"``, ``"cuda"``, …; default CUDA when available.
    random_state : int, optional
        Seed of the initialisation, batch order, augmentation and early-stopping split;
        ``None`` means seed 0, so that a refit gives the same network (on the CPU, with the
        same ``n_jobs``).

    Attributes
    ----------
    classes_ : np.ndarray
    multilabel_ : bool
        Whether ``y`` was a label-indicator matrix (sigmoid outputs) rather than labels.
    n_bands_ : int
        Bands per input frame.
    network_ : E2ECNN
    scaling_ : featurekit.learn.torch.inputs.StreamScaling
        Per-band standardisation learned from the training clips' real frames.
    n_parameters_ : int
    best_epoch_, n_epochs_ : int
        Epoch whose weights were kept, and epochs run.
    validation_kind_ : {"groups", "clips", "none"}
        What the early-stopping split held out (``"none"``: trained ``max_epochs``).

    Notes
    -----
    Every batch is trimmed to its longest clip and padded with zeros (the training mean) at
    the input; inside the network, batch normalisation shifts that padding, and the 3x3
    convolutions read it at a clip's end. A clip's outputs therefore depend slightly on how
    long the other clips of its batch are (in the order of 1 % of a probability for a short
    clip beside 4-s clips). Keeping the padding at zero after every layer removes that, but
    on training folds it cost about 10 points of accuracy (UrbanSound8K fold 2 split by
    recording: 47.3 % against 36.8 %), so it is not done; see ``benchmarks/notes/e2e.md``.
    """

    def __init__(self, *, channels: tuple[int, ...] = (16, 32, 64, 128),
                 convs_per_stage: tuple[int, ...] = (1, 1, 1, 2), dropout: float = 0.3,
                 max_epochs: int = 30, patience: int = 6, batch_size: int = 32,
                 learning_rate: float = 3e-3, weight_decay: float = 1e-3,
                 mixup_alpha: float = 0.3, time_masks: int = 2, freq_masks: int = 2,
                 time_mask_share: float = 0.1, freq_mask_bands: int = 8,
                 time_shift: bool = True, validation_fraction: float = 0.15,
                 validation_kind: str = AUTO_VALIDATION, n_jobs: int = 1,
                 device: str | None = None, random_state: int | None = None) -> None:
        self.channels = channels
        self.convs_per_stage = convs_per_stage
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.mixup_alpha = mixup_alpha
        self.time_masks = time_masks
        self.freq_masks = freq_masks
        self.time_mask_share = time_mask_share
        self.freq_mask_bands = freq_mask_bands
        self.time_shift = time_shift
        self.validation_fraction = validation_fraction
        self.validation_kind = validation_kind
        self.n_jobs = n_jobs
        self.device = device
        self.random_state = random_state

    # ----------------------------------------------------------------- helpers
    def _check_options(self) -> None:
        if self.max_epochs < 1 or self.patience < 1 or self.batch_size < 2:
            raise ConfigError("max_epochs and patience must be >= 1 and batch_size >= 2")
        if self.mixup_alpha < 0.0:
            raise ConfigError(f"mixup_alpha must be >= 0, got {self.mixup_alpha}")
        if not 0.0 <= self.time_mask_share < 1.0:
            raise ConfigError(f"time_mask_share must be in [0, 1), got {self.time_mask_share}")

    def _device(self) -> torch.device:
        return torch.device(self.device or default_device())

    def _batch(self, X: np.ndarray, rows: np.ndarray,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised clips ``rows`` padded with zeros (the training mean) to a whole number
        of output frames (not real) and of output bands."""
        values, mask = self.scaling_.batch(X, rows, device)
        step = self.network_.time_step
        extra_frames, extra_bands = (-values.shape[1]) % step, (-values.shape[2]) % step
        if extra_frames or extra_bands:
            values = nn.functional.pad(values, (0, extra_bands, 0, extra_frames))
            mask = nn.functional.pad(mask, (0, extra_frames), value=False)
        return values, mask

    def _augment(self, values: torch.Tensor, mask: torch.Tensor,
                 rng: np.random.Generator) -> torch.Tensor:
        """Time shift and SpecAugment masks of a training batch (batch, frames, bands)."""
        n_clips, n_frames, n_bands = values.shape
        lengths = mask.sum(dim=1).cpu().numpy()
        positions = np.arange(n_frames)[None, :]
        if self.time_shift:
            shifts = (rng.random(n_clips) * lengths).astype(np.int64)[:, None]
            source = np.where(positions < lengths[:, None],
                              (positions + shifts) % np.maximum(lengths[:, None], 1), positions)
            index = torch.from_numpy(source).to(values.device)
            values = torch.gather(values, 1, index.unsqueeze(-1).expand(-1, -1, n_bands))
        hidden = np.zeros((n_clips, n_frames), dtype=bool)
        for _ in range(self.time_masks):
            widths = (rng.random(n_clips) * (self.time_mask_share * lengths + 1)).astype(int)
            starts = (rng.random(n_clips) * np.maximum(lengths - widths, 1)).astype(int)
            hidden |= (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])
        bands = np.arange(n_bands)[None, :]
        silenced = np.zeros((n_clips, n_bands), dtype=bool)
        for _ in range(self.freq_masks):
            widths = rng.integers(0, self.freq_mask_bands + 1, size=n_clips)
            starts = (rng.random(n_clips) * np.maximum(n_bands - widths, 1)).astype(int)
            silenced |= (bands >= starts[:, None]) & (bands < (starts + widths)[:, None])
        keep = ~(hidden[:, :, None] | silenced[:, None, :])
        return values * torch.from_numpy(keep).to(values.device, values.dtype)

    def _eval_batches(self, X: np.ndarray, rows: np.ndarray,
                      device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Inputs and masks of clips ``rows`` in prediction batches, the network in eval mode
        and without gradients."""
        self.network_.eval()
        with torch.no_grad():
            for start in range(0, rows.size, PREDICT_BATCH):
                yield self._batch(X, rows[start:start + PREDICT_BATCH], device)

    def _logits(self, X: np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
        return torch.cat([self.network_(values, mask)
                          for values, mask in self._eval_batches(X, rows, device)])

    # --------------------------------------------------------------------- API
    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> E2EClassifier:
        """Train on log-mel sequences ``X`` (n_clips, n_frames, n_bands), NaN-padded, with
        labels ``y``; ``groups`` (source recordings) shape the early-stopping split."""
        self._check_options()
        X = check_sequences(X)
        self.classes_, encoded, self.multilabel_ = encode_targets(y, who="E2EClassifier",
                                                                  n_samples=X.shape[0])
        seed = 0 if self.random_state is None else int(self.random_state)
        split, self.validation_kind_ = early_stopping_split(
            encoded, groups, fraction=self.validation_fraction, random_state=seed,
            kind=self.validation_kind)
        train, val = split if split is not None else (np.arange(X.shape[0]), None)
        self.scaling_ = StreamScaling(X, train, None)
        self.n_bands_ = X.shape[2]
        device = self._device()
        rng = np.random.default_rng(seed)
        with torch_threads(self.n_jobs), deterministic_torch(seed):
            self.network_ = E2ECNN(self.classes_.size, channels=self.channels,
                                   convs_per_stage=self.convs_per_stage,
                                   dropout=self.dropout).to(device)
            self.n_parameters_ = sum(p.numel() for p in self.network_.parameters())
            targets = target_tensor(encoded, self.multilabel_, device)

            def step(rows: np.ndarray) -> torch.Tensor:
                values, mask = self._batch(X, rows, device)
                values = self._augment(values, mask, rng)
                shares = [(targets[rows], 1.0)]
                if self.mixup_alpha > 0.0:
                    weight = float(rng.beta(self.mixup_alpha, self.mixup_alpha))
                    partner = torch.from_numpy(rng.permutation(rows.size)).to(device)
                    values = weight * values + (1.0 - weight) * values[partner]
                    mask = mask | mask[partner]
                    shares = [(targets[rows], weight), (targets[rows][partner], 1.0 - weight)]
                logits = self.network_(values, mask)
                return sum(share * target_loss(logits, target) for target, share in shares)

            def validation_loss(rows: np.ndarray) -> float:
                return float(target_loss(self._logits(X, rows, device), targets[rows]))

            self.n_epochs_, self.best_epoch_ = train_epochs(
                self.network_, train=train, val=val, step=step,
                validation_loss=validation_loss, rng=rng, batch_size=self.batch_size,
                max_epochs=self.max_epochs, learning_rate=self.learning_rate,
                weight_decay=self.weight_decay, patience=self.patience)
        self.network_.eval()
        return self

    def _checked(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = check_sequences(X)
        if X.shape[2] != self.n_bands_:
            raise ValueError(f"X has {X.shape[2]} bands per frame, the classifier was fitted "
                             f"with {self.n_bands_}")
        return X

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_clips, n_classes), columns in ``classes_`` order
        (independent per-class probabilities when fitted on label sets)."""
        logits = torch.cat([self.network_(values, mask) for values, mask in self._batches_of(X)])
        return logits_to_proba(logits, self.multilabel_)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each clip; label sets: indicators of probabilities >= 0.5."""
        return proba_to_labels(self.predict_proba(X), self.classes_, self.multilabel_)

    def transform(self, X: Any) -> np.ndarray:
        """Clip embeddings (n_clips, 2 * last channels): mean and maximum of the frames."""
        return np.concatenate([self.network_.embed(values, mask).cpu().numpy()
                               for values, mask in self._batches_of(X)]).astype(np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``e2e_emb_000`` ... names of the :meth:`transform` columns (frame means, then
        maxima)."""
        check_is_fitted(self, "network_")
        n_columns = 2 * self.channels[-1]
        width = max(2, len(str(n_columns - 1)))
        return np.array([f"e2e_emb_{i:0{width}d}" for i in range(n_columns)], dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Clips are NaN-padded 3-D (clips, frames, bands) arrays; transform embeds them
        # (always float32).
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags = TransformerTags(preserves_dtype=["float32"])
        return tags

    def frames(self, X: Any) -> np.ndarray:
        """The stream's frame sequences (n_clips, steps, last channels), float32, NaN-padded:
        the last feature map averaged over frequency, one frame per ``2 ** (stages - 1)``
        input frames."""
        parts = []
        for values, mask in self._batches_of(X):
            frames, steps = self.network_.frames(values, mask)
            parts.append(frames.masked_fill(~steps.unsqueeze(-1), math.nan).cpu().numpy())
        longest = max(part.shape[1] for part in parts)
        return np.concatenate([np.pad(part, ((0, 0), (0, longest - part.shape[1]), (0, 0)),
                                      constant_values=np.nan) for part in parts]
                              ).astype(np.float32)

    def _batches_of(self, X: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Prediction batches of checked inputs ``X``."""
        X = self._checked(X)
        device = next(self.network_.parameters()).device
        with torch_threads(self.n_jobs):
            yield from self._eval_batches(X, np.arange(X.shape[0]), device)


#: The benchmark's head of the ``e2e`` branch (its only head).
#: Its recipe was checked on ESC-10 and its padding chosen on UrbanSound8K fold 2
#: (benchmarks/notes/e2e.md).
E2E_HEADS: dict[str, HeadSpec] = {"cnn": HeadSpec("cnn", E2EClassifier, seeded=True,
                                                  defaults_chosen_on=("esc10", "urbansound8k"))}
