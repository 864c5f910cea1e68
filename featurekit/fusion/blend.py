"""The blend of frozen per-stream sequence embeddings (the "diverse embeddings" method).

One :class:`~featurekit.learn.torch.sequence.SequenceClassifier` per stream learns a 64-d embedding
of its
frame sequences; the encoders are then frozen and a linear classifier is fitted on their
concatenated embeddings. Embedding coordinates are specific to the encoder that produced them,
so the blend is fitted *per inner split*: each blender is trained on the out-of-fold
embeddings of one inner split's encoders (clips those encoders never saw) and used with those
same encoders; probabilities are averaged over the splits.

Only :class:`EmbeddingBlendClassifier` needs torch, and imports it when it is fitted or used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from featurekit.learn.fitting import aligned_proba, take_rows
from featurekit.learn.selection import select_by_inner_cv
from featurekit.learn.splits import Split, inner_splits

if TYPE_CHECKING:
    from featurekit.learn.torch.sequence import SequenceClassifier


def _blender(C: float) -> Pipeline:
    return Pipeline([("scale", StandardScaler()),
                     ("logreg", LogisticRegression(C=C, max_iter=500))])


def fit_blender(Z: np.ndarray, y: np.ndarray, *, C_grid: Sequence[float] = (0.01, 0.1, 1.0),
                random_state: int | None = 0) -> Pipeline:
    """A standardised multinomial logistic regression on embeddings, ``C`` by inner CV.

    Parameters
    ----------
    Z : np.ndarray, shape (n_clips, n_dims)
        Concatenated frozen embeddings of clips the encoders were not trained on.
    y : np.ndarray of int, shape (n_clips,)
    C_grid : sequence of float
        Inverse L2 strengths tried by a stratified cross-validation over ``Z``'s rows
        (:func:`featurekit.learn.selection.select_by_inner_cv`); the first is used when the rows are
        too few to split.
    random_state : int, optional
        Seed of that cross-validation's shuffling.
    """
    y = np.asarray(y)
    C = C_grid[0]
    if len(C_grid) > 1 and np.unique(y).size >= 2 and y.size >= 6:
        splits = inner_splits(y, n_splits=3, random_state=random_state)
        C = select_by_inner_cv(list(C_grid), _blender, Z, y, splits).best
    return _blender(C).fit(Z, y)


def blend_probabilities(val_embeddings: Sequence[np.ndarray], val_labels: Sequence[np.ndarray],
                        test_embeddings: Sequence[np.ndarray], *, n_classes: int,
                        C_grid: Sequence[float] = (0.01, 0.1, 1.0),
                        random_state: int | None = 0) -> np.ndarray:
    """Blend per inner split and average: the core of the "diverse embeddings" method.

    Parameters
    ----------
    val_embeddings : sequence of np.ndarray, one per inner split, (n_val_k, n_dims)
        Concatenated embeddings of split k's validation clips by split k's encoders (which
        were trained on the split's other clips only).
    val_labels : sequence of np.ndarray, one per inner split
        Class indices of those clips.
    test_embeddings : sequence of np.ndarray, one per inner split, (n_test, n_dims)
        The same encoders' embeddings of the clips to predict.
    n_classes : int
    C_grid, random_state :
        As in :func:`fit_blender`.

    Returns
    -------
    np.ndarray, shape (n_test, n_classes)
        Mean over splits of each split's blender probabilities.
    """
    classes = np.arange(n_classes)
    probas = []
    for Z, y, Z_test in zip(val_embeddings, val_labels, test_embeddings, strict=True):
        if np.unique(y).size < 2:
            continue  # a validation set of one class cannot train a classifier
        blender = fit_blender(Z, y, C_grid=C_grid, random_state=random_state)
        probas.append(aligned_proba(blender, Z_test, classes))
    if not probas:
        raise ValueError("no inner split has validation clips of two classes or more")
    return np.mean(probas, axis=0)


class EmbeddingBlendClassifier(ClassifierMixin, BaseEstimator):
    """Per-stream sequence encoders, frozen, blended by a linear classifier.

    For each inner split of the training clips (:func:`featurekit.learn.splits.inner_splits`,
    whole folds when ``groups`` allow it), one
    :class:`~featurekit.learn.torch.sequence.SequenceClassifier`
    per stream is trained on the split's training clips; the concatenated embeddings of its
    validation clips train that split's blender (:func:`fit_blender`). Prediction averages the
    splits' blended probabilities.

    Parameters
    ----------
    encoder_params : mapping, optional
        Parameters of every stream's :class:`~featurekit.learn.torch.sequence.SequenceClassifier`
        (``random_state`` is set from this estimator's).
    n_splits : int
        Inner splits.
    C_grid : sequence of float
        Blender regularisation candidates.
    random_state : int, optional

    Attributes
    ----------
    classes_ : np.ndarray
    streams_ : list of str
        Stream names in input order.
    encoders_ : list of dict of str to SequenceClassifier
        Per kept inner split, the encoder of each stream.
    blenders_ : list of Pipeline
        Per kept inner split, its blender.

    Notes
    -----
    ``X`` is a mapping stream name -> sequence array (n_clips, n_frames, n_dims); every stream
    has the same clips in the same order.
    """

    def __init__(self, encoder_params: Mapping[str, Any] | None = None, *, n_splits: int = 3,
                 C_grid: Sequence[float] = (0.01, 0.1, 1.0),
                 random_state: int | None = None) -> None:
        self.encoder_params = encoder_params
        self.n_splits = n_splits
        self.C_grid = C_grid
        self.random_state = random_state

    @staticmethod
    def _embed(encoders: Mapping[str, SequenceClassifier], streams: Mapping[str, np.ndarray],
               rows: np.ndarray | None = None) -> np.ndarray:
        return np.hstack([encoders[name].transform(values if rows is None
                                                   else take_rows(values, rows))
                          for name, values in streams.items()])

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> EmbeddingBlendClassifier:
        """Train the encoders of each inner split and the blenders on their held-out clips."""
        from featurekit.learn.torch.inputs import check_streams
        from featurekit.learn.torch.sequence import SequenceClassifier

        streams = check_streams(X)
        y = np.asarray(y)
        n_clips = next(iter(streams.values())).shape[0]
        if y.shape[0] != n_clips:
            raise ValueError(f"X has {n_clips} clips but y has {y.shape[0]}")
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        self.streams_ = list(streams)
        groups = None if groups is None else np.asarray(groups)
        seed = 0 if self.random_state is None else int(self.random_state)
        splits: list[Split] = inner_splits(encoded, groups, n_splits=self.n_splits,
                                           random_state=seed)
        self.encoders_: list[dict[str, SequenceClassifier]] = []
        self.blenders_: list[Pipeline] = []
        for train, val in splits:
            encoders = {name: SequenceClassifier(**dict(self.encoder_params or {}),
                                                 random_state=seed)
                        .fit(take_rows(values, train), encoded[train],
                             None if groups is None else groups[train])
                        for name, values in streams.items()}
            if np.unique(encoded[val]).size < 2:
                continue
            blender = fit_blender(self._embed(encoders, streams, val), encoded[val],
                                  C_grid=self.C_grid, random_state=seed)
            self.encoders_.append(encoders)
            self.blenders_.append(blender)
        if not self.blenders_:
            raise ValueError("no inner split has validation clips of two classes or more")
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Mean blended probabilities over the inner splits, shape (n_clips, n_classes)."""
        from featurekit.learn.torch.inputs import check_streams  # torch: on use

        check_is_fitted(self, "blenders_")
        streams = check_streams(X)
        if list(streams) != self.streams_:
            raise ValueError(f"expected streams {self.streams_}, got {list(streams)}")
        classes = np.arange(self.classes_.size)
        return np.mean([aligned_proba(blender, self._embed(encoders, streams), classes)
                        for encoders, blender in zip(self.encoders_, self.blenders_,
                                                     strict=True)], axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each clip."""
        proba = self.predict_proba(X)  # first: an unfitted estimator raises NotFittedError
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # A mapping of stream name to NaN-padded 3-D (clips, frames, dims) arrays.
        tags.input_tags.two_d_array = False
        tags.input_tags.dict = True
        tags.input_tags.allow_nan = True
        return tags


__all__ = ["EmbeddingBlendClassifier", "blend_probabilities", "fit_blender"]
