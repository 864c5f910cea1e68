"""The joint fusion: one sequence model trained on several streams at once.

Importing this module imports torch (through :mod:`featurekit.learn.torch.sequence`);
:mod:`featurekit.fusion` loads it only when :class:`JointSequenceClassifier` is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from featurekit.learn.torch.sequence import SequenceClassifier


class JointSequenceClassifier(SequenceClassifier):
    """Several frame-sequence streams fused inside one jointly trained model.

    Each stream has its own encoder (see
    :class:`~featurekit.learn.torch.sequence.SequenceClassifier`);
    all of them are trained together by cross-entropy on a fused embedding:

    * a learned per-clip *gate* -- a softmax over streams computed from the concatenated
      stream embeddings -- weighs each clip's stream embeddings into one, which is classified
      (:meth:`stream_weights` tells how much each clip relies on each stream);
    * an *auxiliary* class layer per stream adds ``aux_weight`` times the mean of the streams'
      own losses, so every encoder learns to classify on its own rather than lean on the
      strongest stream;
    * *stream dropout* (``stream_dropout``) leaves streams out of a training clip's blend at
      random (never all of them), so the gate cannot come to rely on one stream alone;
    * an optional *contrastive alignment* (``contrastive_weight`` > 0) adds a symmetric
      InfoNCE term that pulls each stream's embedding of a clip towards the other streams'
      embeddings of the same clip (the paper's branches "aligned by contrastive learning");
      off by default, as ESC-10 showed no gain beyond fold noise
      (``benchmarks/notes/contrastive.md``).

    This is :class:`~featurekit.learn.torch.sequence.SequenceClassifier` given a mapping of
    streams, as an
    estimator of its own that refuses anything else.

    Parameters
    ----------
    **params
        Those of :class:`~featurekit.learn.torch.sequence.SequenceClassifier` (``encoder``,
        ``width``,
        ``embedding_dim``, ``stream_dropout``, ``aux_weight``, ``contrastive_weight``,
        ``max_epochs``,
        ``random_state``, ...).

    Attributes
    ----------
    classes_ : np.ndarray
    streams_ : list of str
        Stream names in input order.
    n_dims_ : dict of str to int
        Dimensions per frame of each stream.
    network_ : torch.nn.Module
        Encoders, gate and class layers.
    """

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> JointSequenceClassifier:
        """Train the stream encoders, the gate and the class layers together.

        Parameters
        ----------
        X : mapping of str to np.ndarray
            At least two streams: name -> (n_clips, n_frames, n_dims) float array, the same
            clips in the same order, all-NaN frames as padding.
        y : array-like, shape (n_clips,)
        groups : np.ndarray, optional
            Fold of each clip (shapes the early-stopping split).
        """
        if not isinstance(X, Mapping) or len(X) < 2:
            got = (f"a mapping of {len(X)} stream(s)" if isinstance(X, Mapping)
                   else type(X).__name__)
            raise ValueError("JointSequenceClassifier needs a mapping of at least two streams "
                             f"(name -> (n_clips, n_frames, n_dims) array), got {got}; use "
                             "SequenceClassifier for a single stream")
        super().fit(X, y, groups)
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = False  # a mapping of streams, never one array
        return tags


__all__ = ["JointSequenceClassifier"]
