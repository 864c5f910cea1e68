"""A small numpy multi-layer perceptron (ReLU, Adam, float32) as a featurekit head.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from featurekit.learn.heads.base import (
    BaseHead,
    check_stopping_metric,
    softmax_loss_and_error,
    standardising_steps,
    stopping_point,
)
from featurekit.learn.splits import AUTO_VALIDATION, early_stopping_split


class MLPHead(BaseHead):
    """A small multi-layer perceptron (ReLU, softmax, Adam, float32) on median-imputed,
    standardised, clipped inputs, with its number of epochs chosen inside the training rows.

    When the training rows allow a validation split (:func:`validation_split`; whole groups
    when ``groups`` are given and there are enough of them, stratified clips otherwise), a
    first network is trained on the remaining rows, scored on the held-out rows after every
    epoch, and stopped after ``n_iter_no_change`` epochs without a better score; the epoch with
    the best score is taken. With ``refit`` the held-out rows serve only this choice: the final
    network starts again from the same initialisation and is trained on all training rows for
    that many epochs. Without a validation split (or with ``early_stopping=False``) the network
    trains on all rows until the training loss has not improved by ``tol`` for
    ``n_iter_no_change`` epochs, or ``max_iter`` epochs.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Units per hidden layer.
    alpha : float
        L2 penalty on the weights (scaled like scikit-learn's ``MLPClassifier``).
    learning_rate_init : float
        Adam step size.
    batch_size : int
        Mini-batch size (capped at the number of rows).
    max_iter : int
        Maximum epochs.
    early_stopping : bool or "auto"
        Choose the number of epochs on a validation split. ``True`` and ``"auto"`` both fall
        back to training-loss convergence when the rows are too few for a validation set that
        holds every class.
    validation_fraction : float
        Share of the training rows held out to choose the number of epochs.
    validation_kind : {"auto", "groups", "clips", "none"}
        What the validation split holds out: ``"auto"`` the first that the rows allow (as
        above); a kind given is imposed where at all possible
        (:func:`~featurekit.learn.splits.early_stopping_split`), e.g. a benchmark's inner
        out-of-fold twins take their member's ``validation_kind_``.
    n_iter_no_change : int
        Patience in epochs.
    stopping_metric : {"logloss", "error"}
        Validation score that picks the epoch: log-loss, or classification error with ties
        broken by log-loss.
    refit : bool
        Retrain on all training rows for the chosen number of epochs (``True``) or keep the
        first network's weights from the chosen epoch (``False``).
    tol : float
        Minimum training-loss improvement when no validation split is used.
    clip : float
        Standardised inputs are clipped to ``[-clip, clip]``.
    random_state : int, optional
        Seed of weight initialisation, batching and the validation split.

    Attributes
    ----------
    classes_ : np.ndarray
    preprocess_ : sklearn.pipeline.Pipeline
        Imputation, standardisation and clipping fitted on all training rows.
    coefs_, intercepts_ : list of np.ndarray
        Weights and biases of the final network (float32).
    n_iter_ : int
        Epochs of the final network.
    validation_rows_ : np.ndarray or None
        Positions (into the training rows) of the rows held out to choose the epochs; ``None``
        without a validation split.
    validation_curve_ : dict of str to np.ndarray
        ``"logloss"`` and ``"error"`` on the held-out rows after each epoch of the first
        network (empty without a validation split).
    validation_kind_ : {"groups", "clips", "none"}
        What the validation split held out (``"none"``: no validation split).
    """

    def __init__(self, *, hidden_layer_sizes: tuple[int, ...] = (64,), alpha: float = 1e-3,
                 learning_rate_init: float = 3e-3, batch_size: int = 256, max_iter: int = 200,
                 early_stopping: bool | str = "auto", validation_fraction: float = 0.1,
                 validation_kind: str = AUTO_VALIDATION, n_iter_no_change: int = 30,
                 stopping_metric: str = "error", refit: bool = False, tol: float = 1e-4,
                 clip: float = 5.0, random_state: int | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_kind = validation_kind
        self.n_iter_no_change = n_iter_no_change
        self.stopping_metric = stopping_metric
        self.refit = refit
        self.tol = tol
        self.clip = clip
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: np.ndarray | None = None) -> MLPHead:
        """Fit on training rows; ``groups`` (e.g. source recordings) are never split between
        the rows that train the first network and the rows that choose its epochs."""
        check_stopping_metric(self.stopping_metric)
        X, encoded = self._validate_fit_input(X, y)
        seed = 0 if self.random_state is None else int(self.random_state)
        self.preprocess_ = Pipeline(standardising_steps(self.clip))
        Z = self.preprocess_.fit_transform(X).astype(np.float32)
        split, self.validation_kind_ = early_stopping_split(
            encoded, groups, fraction=self.validation_fraction, random_state=seed,
            kind=self.validation_kind if self.early_stopping in ("auto", True) else "none")
        sizes = [Z.shape[1], *self.hidden_layer_sizes, self.classes_.size]
        self.validation_curve_: dict[str, np.ndarray] = {}
        if split is None:
            self.validation_rows_ = None
            network = _Network(sizes, self, seed)
            self.n_iter_ = network.train_to_convergence(Z, encoded)
        else:
            train, val = split
            self.validation_rows_ = np.asarray(val)
            network = _Network(sizes, self, seed)
            losses, errors, best_weights = network.train_with_validation(
                Z[train], encoded[train], Z[val], encoded[val])
            self.validation_curve_ = {"logloss": np.asarray(losses),
                                      "error": np.asarray(errors)}
            self.n_iter_ = 1 + stopping_point(losses, errors, self.stopping_metric)
            if self.refit:
                network = _Network(sizes, self, seed)
                network.train_epochs(Z, encoded, self.n_iter_)
            else:
                network.weights, network.biases = best_weights[self.n_iter_ - 1]
        self.coefs_, self.intercepts_ = network.weights, network.biases
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        check_is_fitted(self, "coefs_")
        Z = self.preprocess_.transform(self._validate_predict_input(X)).astype(np.float32)
        return _forward(self.coefs_, self.intercepts_, Z,
                        sigmoid=self.multilabel_)[-1].astype(np.float64)


def _forward(weights: list[np.ndarray], biases: list[np.ndarray], Z: np.ndarray, *,
             sigmoid: bool = False) -> list[np.ndarray]:
    """Activations of every layer, the input first and the output (softmax; independent
    sigmoids for multi-label targets) last."""
    activations = [Z]
    for layer, (W, b) in enumerate(zip(weights, biases, strict=True)):
        out = activations[-1] @ W + b
        if layer < len(weights) - 1:
            np.maximum(out, 0.0, out=out)
        elif sigmoid:
            out = 0.5 * (1.0 + np.tanh(0.5 * out))  # overflow-free logistic
        else:
            out -= out.max(axis=1, keepdims=True)
            np.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
        activations.append(out)
    return activations


def _sigmoid_loss_and_error(proba: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Mean binary cross-entropy per label and Hamming error at 0.5 of multi-label outputs."""
    clipped = np.clip(proba, 1e-7, 1.0 - 1e-7)
    loss = -np.mean(target * np.log(clipped) + (1 - target) * np.log(1.0 - clipped))
    return float(loss), float(np.mean((proba >= 0.5) != (target > 0)))


class _Network:
    """Weights and Adam state of one :class:`MLPHead` training run."""

    beta1, beta2, epsilon = 0.9, 0.999, 1e-8

    def __init__(self, sizes: list[int], head: MLPHead, seed: int) -> None:
        self.head = head
        self.rng = np.random.default_rng(seed)
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform, as scikit-learn
            self.weights.append(self.rng.uniform(-bound, bound, (fan_in, fan_out))
                                .astype(np.float32))
            self.biases.append(self.rng.uniform(-bound, bound, fan_out).astype(np.float32))
        params = [*self.weights, *self.biases]
        self.first = [np.zeros_like(p) for p in params]
        self.second = [np.zeros_like(p) for p in params]
        self.steps = 0

    def epoch(self, Z: np.ndarray, encoded: np.ndarray) -> float:
        """One pass over shuffled mini-batches of near-equal size; returns the mean training
        loss (per clip; multi-label: binary cross-entropy summed over classes)."""
        n = Z.shape[0]
        n_batches = max(1, round(n / max(1, self.head.batch_size)))
        order = self.rng.permutation(n)
        sigmoid = encoded.ndim == 2
        target = (encoded.astype(np.float32) if sigmoid
                  else np.eye(self.weights[-1].shape[1], dtype=np.float32)[encoded])
        total = 0.0
        for rows in np.array_split(order, n_batches):
            acts = _forward(self.weights, self.biases, Z[rows], sigmoid=sigmoid)
            delta = acts[-1]
            if sigmoid:
                total += rows.size * delta.shape[1] * _sigmoid_loss_and_error(
                    delta, target[rows])[0]
            else:
                total -= float(np.sum(np.log(np.clip(
                    delta[np.arange(rows.size), encoded[rows]], 1e-7, None))))
            # Softmax with cross-entropy and sigmoids with binary cross-entropy share this
            # gradient at the output logits.
            delta -= target[rows]
            delta /= rows.size
            grads: list[np.ndarray] = [np.empty(0)] * (2 * len(self.weights))
            for layer in range(len(self.weights) - 1, -1, -1):
                grad = acts[layer].T @ delta
                grad += (self.head.alpha / rows.size) * self.weights[layer]
                grads[layer] = grad
                grads[len(self.weights) + layer] = delta.sum(axis=0)
                if layer:
                    delta = delta @ self.weights[layer].T
                    delta *= acts[layer] > 0
            self._adam(grads)
        return total / n

    def _adam(self, grads: list[np.ndarray]) -> None:
        self.steps += 1
        rate = (self.head.learning_rate_init * math.sqrt(1 - self.beta2 ** self.steps)
                / (1 - self.beta1 ** self.steps))
        for param, grad, first, second in zip([*self.weights, *self.biases], grads,
                                              self.first, self.second, strict=True):
            first *= self.beta1
            first += (1 - self.beta1) * grad
            second *= self.beta2
            np.square(grad, out=grad)
            grad *= 1 - self.beta2
            second += grad
            np.sqrt(second, out=grad)
            grad += self.epsilon
            np.divide(first, grad, out=grad)
            grad *= rate
            param -= grad

    def train_epochs(self, Z: np.ndarray, encoded: np.ndarray, n_epochs: int) -> None:
        for _ in range(n_epochs):
            self.epoch(Z, encoded)

    def train_to_convergence(self, Z: np.ndarray, encoded: np.ndarray) -> int:
        best, stale = np.inf, 0
        for epoch in range(1, self.head.max_iter + 1):
            loss = self.epoch(Z, encoded)
            stale = 0 if loss < best - self.head.tol else stale + 1
            best = min(best, loss)
            if stale >= self.head.n_iter_no_change:
                return epoch
        return self.head.max_iter

    def train_with_validation(self, Z: np.ndarray, encoded: np.ndarray, Z_val: np.ndarray,
                              encoded_val: np.ndarray,
                              ) -> tuple[list[float], list[float], list[Any]]:
        losses: list[float] = []
        errors: list[float] = []
        snapshots: list[Any] = []
        keep = not self.head.refit
        sigmoid = encoded.ndim == 2
        for _ in range(self.head.max_iter):
            self.epoch(Z, encoded)
            proba = _forward(self.weights, self.biases, Z_val, sigmoid=sigmoid)[-1]
            loss, error = (_sigmoid_loss_and_error(proba, encoded_val) if sigmoid
                           else softmax_loss_and_error(proba, encoded_val))
            losses.append(loss)
            errors.append(error)
            best = stopping_point(losses, errors, self.head.stopping_metric)
            # Only the best snapshot so far is worth keeping.
            snapshots.append(([w.copy() for w in self.weights], [b.copy() for b in self.biases])
                             if keep and best == len(losses) - 1 else None)
            if len(losses) - 1 - best >= self.head.n_iter_no_change:
                break
        return losses, errors, snapshots
