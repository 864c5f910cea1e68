"""Train one benchmark system once, save it, and classify new audio with it.

:class:`AudioClassifier` is a scikit-learn classifier over audio clips (file paths or arrays):
it computes the handcrafted descriptors and the pretrained embeddings a system needs, with the
extraction configuration and the model weights it was trained with (and is given those of
imported models, which it cannot compute), and feeds them to the system's heads and fusion.
The system is one that ``featurekit benchmark`` evaluates -- a name such as
``pitch+timbre+spectral+neural.mn04_as/logreg/oof_features`` -- or ``auto``, the benchmark's
own choice: every fused system over all branches is scored by inner
cross-validation on the training clips (the benchmark engine's
:func:`~featurekit.benchmark.plan.make_plan`, :func:`~featurekit.benchmark.execute.execute`
and :func:`~featurekit.benchmark.fuse.fuse_fold`) and the best is picked by
:func:`featurekit.learn.selection.select_by_oof`. The chosen system is fitted with the estimators of
:mod:`featurekit.fusion` on the same rows, groups and seeds as the benchmark's first repeat,
so on a held-out fold it scores what the benchmark reports for that fold, within seed noise.

:func:`train` does this from a dataset and a feature store (``featurekit train``), computing
whatever the store lacks; :meth:`AudioClassifier.save` writes one artifact file and
:func:`load_model` reads it back.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from featurekit._util.versions import package_versions
from featurekit.benchmark.config import AUTO, BenchmarkConfig, head_spec
from featurekit.benchmark.data import KEY_COLUMNS, BenchmarkData, prepare_data
from featurekit.benchmark.plan import System
from featurekit.config import DESCRIPTOR_VERSION, ExtractionConfig
from featurekit.errors import AudioError
from featurekit.model.artifact import RECORDED_PACKAGES, write_artifact
from featurekit.model.clip_features import (
    clip_computers,
    clip_features,
    clip_sources,
    imported_features,
    imported_tables,
    source_name,
)
from featurekit.model.systems import (
    TRAINING_SPLIT,
    check_system,
    store_branch,
    system_estimator,
    training_plan,
)
from featurekit.names import HANDCRAFTED_BRANCH, NEURAL_PREFIX, neural_branch
from featurekit.pipeline import model_branches, open_doors

__all__ = ["AudioClassifier", "ClipPrediction"]


@dataclass(frozen=True)
class ClipPrediction:
    """What :meth:`AudioClassifier.predict_clips` says about one clip.

    Attributes
    ----------
    source : str
        The file path, or ``<array i>``.
    proba : np.ndarray or None, shape (n_classes,)
        Class probabilities in ``classes_`` order; None when the clip failed.
    label : object or None
        The most probable class.
    error : str or None
        ``ErrorType: message`` when the clip could not be classified.
    """

    source: str
    proba: np.ndarray | None
    label: Any
    error: str | None = None


class AudioClassifier(ClassifierMixin, BaseEstimator):
    """One benchmark system trained on audio: extraction, embedding, heads and fusion.

    Parameters
    ----------
    system : str
        ``"auto"`` (chosen by inner cross-validation on the training clips, as the
        benchmark's ``auto``), or a benchmark system name such as ``timbre/xgb`` or
        ``pitch+timbre+spectral+neural.mn04_as/logreg/weighted``.
    model : str, sequence of str or None
        Pretrained model(s) of the neural branches ``neural.<model>``; None for handcrafted
        branches only. :func:`~featurekit.model.train.train` also accepts embeddings imported
        into its store (``featurekit import-embeddings``), whose new clips' values
        :meth:`predict_clips` is given (``embeddings``); :meth:`fit` computes every model.
    weights : path-like, optional
        Checkpoint of ``model`` (default: resolved as by ``featurekit embed``). Predictions
        refuse weights whose checksum differs from the training weights'.
    extraction : ExtractionConfig, optional
        Handcrafted descriptor configuration (default ``ExtractionConfig()``).
    config : BenchmarkConfig, optional
        Heads and fusions that ``auto`` chooses among, members per head (``n_seeds``), inner
        splits, search, and the base seed; fits use its first repeat's seeds.
    n_jobs : int
        Worker processes for extraction and the ``auto`` fits, torch threads for embedding
        (-1: all cores). Results do not depend on it.

    Attributes
    ----------
    classes_ : np.ndarray
        Class labels, in probability column order.
    system_ : str
        The system fitted.
    estimator_ : estimator
        The fitted :mod:`featurekit.fusion` estimator over ``feature_names_``.
    feature_names_ : list of str
        Feature columns the estimator reads, in order.
    branches_ : list of str
        Feature-store branches those columns come from (``handcrafted``,
        ``neural.<model>``).
    extraction_ : ExtractionConfig
        The handcrafted configuration of the training features.
    weights_sha256_ : dict of str to str or None
        Per neural store branch, the checksum of its training embeddings' weights (None for
        a registered model's own weights, or imported embeddings).
    imported_ : dict of str to int
        Models whose embeddings were imported, among those the estimator reads: name ->
        dimension. Predictions take their values for new clips (``embeddings``).
    inner_accuracy_ : float or None
        ``auto``: the chosen system's inner out-of-fold accuracy on the training clips.
    candidate_scores_ : dict of str to float
        ``auto``: inner out-of-fold accuracy of every candidate system.
    provenance_ : dict
        What the artifact header records (:func:`load_model`).

    Notes
    -----
    ``fit`` and ``predict_proba`` take a sequence of clips: file paths, or 1-D arrays at
    ``sr`` Hz. ``fit`` raises on the first clip that cannot be read;
    :meth:`predict_clips` reports such clips one by one instead.

    Examples
    --------
    >>> clf = AudioClassifier("pitch+timbre+spectral/xgb/early", model=None)  # doctest: +SKIP
    >>> clf.fit(["dog.wav", "siren.wav", ...], ["dog", "siren", ...])         # doctest: +SKIP
    >>> clf.save("model.fk")                                                  # doctest: +SKIP
    >>> featurekit.load_model("model.fk").predict(["new.flac"])              # doctest: +SKIP
    """

    def __init__(self, system: str = AUTO, *, model: str | Sequence[str] | None = "mn04_as",
                 weights: str | os.PathLike[str] | None = None,
                 extraction: ExtractionConfig | None = None,
                 config: BenchmarkConfig | None = None, n_jobs: int = 1) -> None:
        self.system = system
        self.model = model
        self.weights = weights
        self.extraction = extraction
        self.config = config
        self.n_jobs = n_jobs

    # ----------------------------------------------------------------------------------------
    # Fitting
    # ----------------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any, groups: Any = None, *,
            sr: int | None = None) -> AudioClassifier:
        """Compute the features of every clip and fit the system on them.

        Parameters
        ----------
        X : sequence of path-like or np.ndarray
            Clips: audio files, or 1-D arrays at ``sr`` Hz.
        y : array-like, shape (n_clips,)
            Class labels.
        groups : array-like, shape (n_clips,), optional
            Source recording of each clip: inner splits keep a recording whole.
        sr : int, keyword-only, optional
            Sample rate of array clips, Hz.

        Raises
        ------
        AudioError
            A clip cannot be read (the message names it).
        """
        sources = clip_sources(X)
        y = np.asarray(y)
        if y.shape != (len(sources),):
            raise ValueError(f"y must have one label per clip ({len(sources)}), got shape "
                             f"{y.shape}")
        check_system(self.system, self.extraction or ExtractionConfig(), self.model,
                     self.config or BenchmarkConfig())
        open_doors(self.model)
        computers = clip_computers([HANDCRAFTED_BRANCH, *model_branches(self.model)],
                                   self.extraction or ExtractionConfig(),
                                   weights=self.weights, n_jobs=self.n_jobs)
        values, failures = clip_features(computers, sources, sr, n_jobs=self.n_jobs)
        if failures:
            index, failure = next(iter(failures.items()))
            raise AudioError(f"{source_name(sources, index)}: {failure.error_type}: "
                             f"{failure.message}")
        classes, label_ids = np.unique(y, return_inverse=True)
        table = pd.DataFrame({"clip_id": [f"{i:09d}" for i in range(len(sources))],
                              "fold": 0, "label": y.astype(str), "label_id": label_ids})
        if groups is not None:
            table["recording"] = np.asarray(groups).astype(str)
        table = pd.concat([table, values], axis=1)
        provenance = {computer.branch: dict(computer.provenance()) for computer in computers}
        self._fit_table(table, provenance, classes=classes, trained_on={"clips": len(table)})
        return self

    def _fit_table(self, table: pd.DataFrame, branch_provenance: Mapping[str, Mapping[str, Any]],
                   *, trained_on: Mapping[str, Any], classes: np.ndarray | None = None,
                   progress: bool | None = False) -> None:
        """Fit on every row of a features table (a store read, or the features of ``fit``),
        taken in the benchmark's order (by clip id) so that splits and fits are its own.
        ``classes``: the label of each ``label_id`` present (default the table's names)."""
        config = dataclasses.replace(self.config or BenchmarkConfig(), repeats=1)
        data = prepare_data(table, config)
        rows = np.arange(len(data.y))
        plan = training_plan(self.system, data.branches, config, rows)
        systems = {system.name: system for system in plan.systems}
        self.candidate_scores_: dict[str, float] = {}
        self.inner_accuracy_: float | None = None
        chosen = systems[self._select(plan, data, rows, config, progress)
                         if self.system == AUTO else self.system]
        feature_columns = [str(c) for c in table.columns if c not in KEY_COLUMNS]
        positions = data.columns(chosen.branches)
        columns, start = {}, 0
        for name in chosen.branches:
            columns[name] = np.arange(start, start + data.positions[name].size)
            start += data.positions[name].size
        estimator = system_estimator(chosen, columns, config)
        estimator.fit(data.X[np.ix_(rows, positions)], data.y[rows], groups=data.groups[rows])
        self.estimator_ = estimator
        self.classes_ = np.asarray(data.classes if classes is None else classes
                                   )[estimator.classes_]
        self.system_ = chosen.name
        self.feature_names_ = [feature_columns[i] for i in positions]
        self.branches_ = list(dict.fromkeys(store_branch(b) for b in chosen.branches))
        self._record_provenance(chosen, config, branch_provenance, trained_on)

    def _select(self, plan: Any, data: BenchmarkData, rows: np.ndarray,
                config: BenchmarkConfig, progress: bool | None) -> str:
        """The benchmark's ``auto``: the candidate with the best inner out-of-fold accuracy."""
        from featurekit.benchmark.execute import execute
        from featurekit.benchmark.fuse import fuse_fold
        from featurekit.learn.selection import select_by_oof

        specs = {name: head_spec(name) for name in config.heads}
        outputs, splits = execute(plan, data, specs, seeds_of=config.seeds,
                                  inner_splits_count=config.inner_splits, tune=config.tune,
                                  with_embeddings=False, n_jobs=self.n_jobs,
                                  progress=progress, desc="train: auto candidates")
        seed = config.seeds(0)[0]
        y_train = data.y[rows]
        # The single split tests on its own training rows; only the inner out-of-fold
        # probabilities that score the candidates are read.
        predictions = fuse_fold(plan, y_train, y_train, TRAINING_SPLIT, 0, outputs,
                                splits[TRAINING_SPLIT, 0], data.n_classes, seed)
        candidates = plan.auto_candidates
        selection = select_by_oof(candidates, [predictions[name, TRAINING_SPLIT, 0].inner
                                               for name in candidates], y_train)
        self.candidate_scores_ = dict(zip(candidates, selection.scores, strict=True))
        self.inner_accuracy_ = selection.scores[selection.index]
        return selection.best

    def _record_provenance(self, system: System, config: BenchmarkConfig,
                           branch_provenance: Mapping[str, Mapping[str, Any]],
                           trained_on: Mapping[str, Any]) -> None:
        handcrafted = branch_provenance[HANDCRAFTED_BRANCH]
        self.extraction_ = ExtractionConfig.from_dict(handcrafted["config"])
        neural = {branch: facts for branch, facts in branch_provenance.items()
                  if branch.startswith(NEURAL_PREFIX)}
        self.weights_sha256_ = {branch: facts["config"].get("weights_sha256")
                                for branch, facts in neural.items()}
        self.imported_ = {facts["config"]["model"]: sum(
                              name.startswith(f"{branch}.") for name in self.feature_names_)
                          for branch, facts in neural.items()
                          if facts.get("imported") and branch in self.branches_}
        self.provenance_ = {
            "system": system.name, "system_requested": self.system,
            "inner_accuracy": self.inner_accuracy_,
            "candidate_scores": self.candidate_scores_,
            "classes": [str(c) for c in self.classes_],
            "branches": list(system.branches), "store_branches": self.branches_,
            "extraction_config": self.extraction_.to_dict(),
            "extraction_config_hash": self.extraction_.config_hash(),
            "descriptor_version": DESCRIPTOR_VERSION,
            # Every neural branch trained on (store_branches: those the system reads).
            "neural_models": [{"branch": branch, "model": facts["config"]["model"],
                               "imported": bool(facts.get("imported")),
                               "weights_file": facts["config"].get("weights_file"),
                               "weights_sha256": self.weights_sha256_[branch],
                               "source_sha256": facts["config"].get("source_sha256"),
                               "config_hash": facts["config_hash"]}
                              for branch, facts in neural.items()],
            "benchmark_config": config.to_dict(),
            "benchmark_config_hash": config.config_hash(),
            "trained_on": dict(trained_on),
            "versions": package_versions(*RECORDED_PACKAGES),
        }

    # ----------------------------------------------------------------------------------------
    # Prediction
    # ----------------------------------------------------------------------------------------

    def predict_clips(self, X: Any, *, sr: int | None = None,
                      embeddings: Mapping[str, str | os.PathLike[str]] | None = None
                      ) -> list[ClipPrediction]:
        """Class probabilities of each clip, or why it could not be classified.

        Parameters
        ----------
        X : sequence of path-like or np.ndarray
            Audio files, or 1-D arrays at ``sr`` Hz.
        sr : int, keyword-only, optional
            Sample rate of array clips, Hz.
        embeddings : mapping of str to path-like, keyword-only, optional
            For each imported model the estimator reads (``imported_``), a file of the
            clips' embeddings (:func:`~featurekit.model.clip_features.imported_tables`).

        Returns
        -------
        list of ClipPrediction
            One per clip, in order; a missing, unreadable, empty, non-finite or silent clip,
            or one that an embeddings file lacks, has ``error`` set instead of probabilities.

        Raises
        ------
        ConfigError
            An imported model without embeddings, or embeddings of a model that is not one.
        EmbeddingImportError
            An embeddings file that cannot be read, or of another dimension.
        """
        check_is_fitted(self, "estimator_")
        sources = clip_sources(X)
        tables = imported_tables(embeddings, self.imported_, sources)  # before any work
        open_doors(self.model)  # a door (hear:..., hf:...): its branch's model, here too
        given = {neural_branch(name) for name in self.imported_}
        computed = [branch for branch in self.branches_ if branch not in given]
        computers = clip_computers(computed, self.extraction_, weights=self.weights,
                                   n_jobs=self.n_jobs, weights_sha256=self.weights_sha256_)
        values, failures = clip_features(computers, sources, sr, n_jobs=self.n_jobs)
        imported, missing = imported_features(tables, sources)
        values = pd.concat([values, imported], axis=1)
        failures = {**missing, **failures}  # a clip's own failure first
        good = [i for i in range(len(sources)) if i not in failures]
        probas = np.empty((0, self.classes_.size))
        if good:
            matrix = np.array(values.loc[good, self.feature_names_], dtype=np.float32)
            matrix[np.isinf(matrix)] = np.nan  # as the benchmark reads the store
            probas = self.estimator_.predict_proba(matrix)
        by_clip = dict(zip(good, probas, strict=True))
        predictions = []
        for index in range(len(sources)):
            name = source_name(sources, index)
            if index in failures:
                failure = failures[index]
                predictions.append(ClipPrediction(name, None, None,
                                                  f"{failure.error_type}: {failure.message}"))
                continue
            proba = by_clip[index]
            predictions.append(ClipPrediction(name, proba, self.classes_[np.argmax(proba)]))
        return predictions

    def predict_proba(self, X: Any, *, sr: int | None = None,
                      embeddings: Mapping[str, str | os.PathLike[str]] | None = None
                      ) -> np.ndarray:
        """Class probabilities, shape (n_clips, n_classes), columns in ``classes_`` order
        (``sr``, ``embeddings``: see :meth:`predict_clips`).

        Raises
        ------
        AudioError
            A clip cannot be classified (the message names it); see :meth:`predict_clips`.
        """
        predictions = self.predict_clips(X, sr=sr, embeddings=embeddings)
        for prediction in predictions:
            if prediction.error is not None:
                raise AudioError(f"{prediction.source}: {prediction.error}")
        if not predictions:
            return np.empty((0, self.classes_.size))
        return np.stack([prediction.proba for prediction in predictions])

    def predict(self, X: Any, *, sr: int | None = None,
                embeddings: Mapping[str, str | os.PathLike[str]] | None = None) -> np.ndarray:
        """Most probable class of each clip (see :meth:`predict_proba`)."""
        proba = self.predict_proba(X, sr=sr, embeddings=embeddings)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Clips (paths or waveforms), not a matrix of features: a 2-D array is read as one
        # waveform per row.
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    # ----------------------------------------------------------------------------------------
    # Artifact
    # ----------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted classifier as one artifact file (:mod:`featurekit.model.artifact`).

        Returns
        -------
        pathlib.Path
            The file written (atomically: it exists complete or not at all).
        """
        check_is_fitted(self, "estimator_")
        return write_artifact(self, self.provenance_, path)
