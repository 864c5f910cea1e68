"""Train one benchmark system once, save it, and classify new audio with it.

:class:`AudioClassifier` is a scikit-learn classifier over audio clips (file paths or arrays):
it computes the handcrafted descriptors and the pretrained embedding a system needs, with the
extraction configuration and the model weights it was trained with, and feeds them to the
system's heads and fusion. The system is one that ``featurekit benchmark`` evaluates -- a
name such as ``pitch+timbre+spectral+neural.mn04_as/logreg/oof_features`` -- or ``auto``, the
benchmark's own choice: every fused system over all branches is scored by inner
cross-validation on the training clips (the benchmark engine's
:func:`~featurekit.benchmark.plan.make_plan`, :func:`~featurekit.benchmark.execute.execute`
and :func:`~featurekit.benchmark.fuse.fuse_fold`) and the best is picked by
:func:`featurekit.selection.select_by_oof`. The chosen system is fitted with the estimators of
:mod:`featurekit.fusion` on the same rows, groups and seeds as the benchmark's first repeat,
so on a held-out fold it scores what the benchmark reports for that fold, within seed noise.

:func:`train` does this from a dataset and a feature store (``featurekit train``), computing
whatever the store lacks; :meth:`AudioClassifier.save` writes one artifact file and
:func:`load_model` reads it back.

Artifact files
--------------
A magic line ``featurekit-model``, a one-line JSON header (artifact format, featurekit
version, descriptor version, payload length and SHA-256, and the provenance: configuration
hashes, library versions, classes, branches, neural model and weights checksum, the system and
its inner-CV score), then the payload: a pickle of the fitted :class:`AudioClassifier`. Loading
checks the header and the payload's length and checksum before unpickling anything, and refuses
artifacts of another format, featurekit release (major.minor) or descriptor version.

.. warning::
   Artifacts are pickles: unpickling runs code named in the file. The checksum detects
   corruption and truncation, not tampering. Load only artifacts you trust.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from featurekit import __version__
from featurekit.benchmark.config import (
    AUTO,
    HANDCRAFTED_BRANCH,
    HANDCRAFTED_FAMILIES,
    LATE_FUSIONS,
    OOF_FEATURES,
    BenchmarkConfig,
    head_spec,
)
from featurekit.benchmark.data import KEY_COLUMNS, BenchmarkData, prepare_data
from featurekit.benchmark.plan import System, make_plan, oof_feature_target
from featurekit.branch import ClipFailure, ClipResult
from featurekit.config import DESCRIPTOR_VERSION, ExtractionConfig
from featurekit.errors import ArtifactError, AudioError, ConfigError, WeightsError
from featurekit.versions import package_versions

__all__ = ["ARTIFACT_FORMAT", "AudioClassifier", "ClipPrediction", "load_model", "read_header",
           "train"]

#: First line of every artifact file.
ARTIFACT_MAGIC = b"featurekit-model\n"
#: Version of the artifact layout; bumped when the header or payload changes meaning.
ARTIFACT_FORMAT = 1
#: A header longer than this is not a featurekit artifact.
MAX_HEADER_BYTES = 1 << 20
#: Fold label of the single outer split :func:`train` plans over its training clips.
TRAINING_SPLIT = 0
#: Libraries whose versions the artifact records (and warns about when they differ).
RECORDED_PACKAGES = ("featurekit", "numpy", "scipy", "scikit-learn", "xgboost", "torch")


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


def _store_branch(branch: str) -> str:
    """The feature-store branch holding a benchmark branch's columns."""
    return HANDCRAFTED_BRANCH if branch in HANDCRAFTED_FAMILIES else branch


def _system_estimator(system: System, columns: Mapping[str, np.ndarray],
                      config: BenchmarkConfig) -> BaseEstimator:
    """The :mod:`featurekit.fusion` estimator of a benchmark system, seeded as its first
    repeat (``columns``: each branch's positions in the estimator's input)."""
    from featurekit.fusion import (
        EarlyFusionClassifier,
        LateFusionClassifier,
        OOFFeaturesClassifier,
    )

    head = head_spec(system.head)
    options = {"n_seeds": config.n_seeds, "inner_splits": config.inner_splits,
               "tune": config.tune, "random_state": config.seeds(0)[0]}
    branches = {name: columns[name] for name in system.branches}
    # A single branch is early fusion of one branch: the same seeded members on its columns.
    if system.fusion in (None, "early"):
        return EarlyFusionClassifier(branches, head, **options)
    if system.fusion in LATE_FUSIONS:
        return LateFusionClassifier(branches, head, system.fusion, **options)
    if system.fusion == OOF_FEATURES:
        target, = oof_feature_target(system.branches)  # one branch without the e2e stream
        return OOFFeaturesClassifier(branches, target, head, **options)
    raise ConfigError(f"system {system.name!r}: training {system.fusion!r} systems is not "
                      f"supported (functionals heads with early, late or oof_features "
                      f"fusion are)")


def _clip_sources(X: Any) -> list[Any]:
    """A sequence of clips as a list of paths (str) and 1-D arrays."""
    if isinstance(X, (str, os.PathLike)):
        raise TypeError("X must be a sequence of clips (paths or 1-D arrays), not a single "
                        "path")
    if isinstance(X, np.ndarray) and X.dtype != object:
        X = list(X) if X.ndim == 2 else [X]
    return [os.fspath(clip) if isinstance(clip, (str, os.PathLike)) else np.asarray(clip)
            for clip in X]


class AudioClassifier(ClassifierMixin, BaseEstimator):
    """One benchmark system trained on audio: extraction, embedding, heads and fusion.

    Parameters
    ----------
    system : str
        ``"auto"`` (chosen by inner cross-validation on the training clips, as the
        benchmark's ``auto``), or a benchmark system name such as ``timbre/xgb`` or
        ``pitch+timbre+spectral+neural.mn04_as/logreg/weighted``.
    model : str or None
        Pretrained model of the neural branch ``neural.<model>``; None for handcrafted
        branches only.
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
    weights_sha256_ : str or None
        Checksum of the training embeddings' weights (None without a neural branch).
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

    def __init__(self, system: str = AUTO, *, model: str | None = "mn04_as",
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
        sources = _clip_sources(X)
        y = np.asarray(y)
        if y.shape != (len(sources),):
            raise ValueError(f"y must have one label per clip ({len(sources)}), got shape "
                             f"{y.shape}")
        computers = self._computers([HANDCRAFTED_BRANCH]
                                    + ([f"neural.{self.model}"] if self.model else []),
                                    self.extraction or ExtractionConfig())
        values, failures = self._compute(computers, sources, sr)
        if failures:
            index, failure = next(iter(failures.items()))
            raise AudioError(f"{_source_name(sources, index)}: {failure.error_type}: "
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
        if not isinstance(self.system, str) or not self.system:
            raise ConfigError(f"system must be 'auto' or a system name, got {self.system!r}")
        config = dataclasses.replace(self.config or BenchmarkConfig(), repeats=1)
        data = prepare_data(table, config)
        rows = np.arange(len(data.y))
        plan = make_plan(data.branches, config, data.folds,
                         outer=[(TRAINING_SPLIT, rows, rows)])
        systems = {system.name: system for system in plan.systems}
        self.candidate_scores_: dict[str, float] = {}
        self.inner_accuracy_: float | None = None
        if self.system == AUTO:
            chosen = systems[self._select(plan, data, rows, config, progress)]
        elif self.system in systems:
            chosen = systems[self.system]
        else:
            raise ConfigError(f"unknown system {self.system!r} for branches "
                              f"{', '.join(data.branches)} and heads "
                              f"{', '.join(config.heads)}; e.g. "
                              f"{', '.join(list(systems)[:3])}, or 'auto'")
        feature_columns = [str(c) for c in table.columns if c not in KEY_COLUMNS]
        positions = data.columns(chosen.branches)
        columns, start = {}, 0
        for name in chosen.branches:
            columns[name] = np.arange(start, start + data.positions[name].size)
            start += data.positions[name].size
        estimator = _system_estimator(chosen, columns, config)
        estimator.fit(data.X[np.ix_(rows, positions)], data.y[rows], groups=data.groups[rows])
        self.estimator_ = estimator
        self.classes_ = np.asarray(data.classes if classes is None else classes
                                   )[estimator.classes_]
        self.system_ = chosen.name
        self.feature_names_ = [feature_columns[i] for i in positions]
        self.branches_ = list(dict.fromkeys(_store_branch(b) for b in chosen.branches))
        self._record_provenance(chosen, config, branch_provenance, trained_on)

    def _select(self, plan: Any, data: BenchmarkData, rows: np.ndarray,
                config: BenchmarkConfig, progress: bool | None) -> str:
        """The benchmark's ``auto``: the candidate with the best inner out-of-fold accuracy."""
        from featurekit.benchmark.execute import execute
        from featurekit.benchmark.fuse import fuse_fold
        from featurekit.selection import select_by_oof

        if not plan.auto_candidates:
            raise ConfigError("'auto' chooses among fused systems over every branch, and there "
                              f"is only {', '.join(data.branches)}: name a system instead")
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
        neural = next((dict(facts) for branch, facts in branch_provenance.items()
                       if branch.startswith("neural.")), None)
        self.weights_sha256_ = neural["config"]["weights_sha256"] if neural else None
        self.provenance_ = {
            "system": system.name, "system_requested": self.system,
            "inner_accuracy": self.inner_accuracy_,
            "candidate_scores": self.candidate_scores_,
            "classes": [str(c) for c in self.classes_],
            "branches": list(system.branches), "store_branches": self.branches_,
            "extraction_config": self.extraction_.to_dict(),
            "extraction_config_hash": self.extraction_.config_hash(),
            "descriptor_version": DESCRIPTOR_VERSION,
            "neural_model": (None if neural is None else
                             {"model": neural["config"]["model"],
                              "weights_file": neural["config"]["weights_file"],
                              "weights_sha256": self.weights_sha256_,
                              "config_hash": neural["config_hash"]}),
            "benchmark_config": config.to_dict(),
            "benchmark_config_hash": config.config_hash(),
            "trained_on": dict(trained_on),
            "versions": package_versions(*RECORDED_PACKAGES),
        }

    # ----------------------------------------------------------------------------------------
    # Features of new clips
    # ----------------------------------------------------------------------------------------

    def _computers(self, branches: Sequence[str], extraction: ExtractionConfig, *,
                   weights_sha256: str | None = None) -> list[Any]:
        """Computers of store branches; with ``weights_sha256``, the neural weights must
        have that checksum."""
        from joblib import effective_n_jobs

        from featurekit.handcrafted import HandcraftedBranch

        computers: list[Any] = []
        for branch in branches:
            if branch == HANDCRAFTED_BRANCH:
                computers.append(HandcraftedBranch(extraction))
                continue
            from featurekit.neural.branch import NeuralBranch

            computer = NeuralBranch(branch.removeprefix("neural."), self.weights,
                                    n_threads=effective_n_jobs(self.n_jobs))
            if weights_sha256 is not None and computer.weights_sha256 != weights_sha256:
                raise WeightsError(f"weights {computer.weights_path} of {branch} have sha256 "
                                   f"{computer.weights_sha256}, but the model was trained on "
                                   f"embeddings of weights with sha256 {weights_sha256}: "
                                   f"pass that checkpoint")
            computers.append(computer)
        return computers

    def _compute(self, computers: Sequence[Any], sources: Sequence[Any], sr: int | None,
                 ) -> tuple[pd.DataFrame, dict[int, ClipFailure]]:
        """Feature columns of every computer for each clip (rows of failed clips are NaN),
        and each failed clip's first failure by position."""
        from featurekit.audio import SILENCE_NOTE

        failures: dict[int, ClipFailure] = {}
        parts = []
        for computer in computers:
            todo = [i for i in range(len(sources)) if i not in failures]
            block = np.full((len(sources), len(computer.feature_names)), np.nan,
                            dtype=np.float32)
            outcomes = self._run(computer, [sources[i] for i in todo], sr)
            for index, outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome, ClipFailure):
                    failures[index] = outcome
                elif SILENCE_NOTE in outcome.notes:
                    # Silence carries no evidence of any class: refuse to guess.
                    failures[index] = ClipFailure("SilentAudio", SILENCE_NOTE)
                else:
                    block[index] = outcome.values
            parts.append(pd.DataFrame(block, columns=computer.feature_names))
        return pd.concat(parts, axis=1), dict(sorted(failures.items()))

    def _run(self, computer: Any, sources: Sequence[Any],
             sr: int | None) -> list[ClipResult | ClipFailure]:
        """One computer's outcomes: worker processes for files when it allows them, else in
        this process (torch models use threads)."""
        from joblib import Parallel, delayed, effective_n_jobs, parallel_config

        from featurekit.branch import compute_batch_safely
        from featurekit.runner import default_batch_size

        workers = effective_n_jobs(self.n_jobs) if computer.process_parallel else 1
        if workers == 1 or any(isinstance(source, np.ndarray) for source in sources):
            return [ClipFailure.from_exception(outcome) if isinstance(outcome, BaseException)
                    else outcome for outcome in computer.compute_batch(sources, sr=sr)]
        size = default_batch_size(len(sources), workers)
        batches = [sources[start:start + size] for start in range(0, len(sources), size)]
        with parallel_config(backend="loky", inner_max_num_threads=1):
            done = Parallel(n_jobs=workers)(delayed(compute_batch_safely)(
                computer, index, batch, False, True) for index, batch in enumerate(batches))
        return [outcome for _, outcomes in done for outcome in outcomes]

    # ----------------------------------------------------------------------------------------
    # Prediction
    # ----------------------------------------------------------------------------------------

    def predict_clips(self, X: Any, *, sr: int | None = None) -> list[ClipPrediction]:
        """Class probabilities of each clip, or why it could not be classified.

        Parameters
        ----------
        X : sequence of path-like or np.ndarray
            Audio files, or 1-D arrays at ``sr`` Hz.
        sr : int, keyword-only, optional
            Sample rate of array clips, Hz.

        Returns
        -------
        list of ClipPrediction
            One per clip, in order; a missing, unreadable, empty, non-finite or silent clip
            has ``error`` set instead of probabilities.
        """
        check_is_fitted(self, "estimator_")
        sources = _clip_sources(X)
        computers = self._computers(self.branches_, self.extraction_,
                                    weights_sha256=self.weights_sha256_)
        values, failures = self._compute(computers, sources, sr)
        good = [i for i in range(len(sources)) if i not in failures]
        probas = np.empty((0, self.classes_.size))
        if good:
            matrix = np.array(values.loc[good, self.feature_names_], dtype=np.float32)
            matrix[np.isinf(matrix)] = np.nan  # as the benchmark reads the store
            probas = self.estimator_.predict_proba(matrix)
        by_clip = dict(zip(good, probas, strict=True))
        predictions = []
        for index in range(len(sources)):
            name = _source_name(sources, index)
            if index in failures:
                failure = failures[index]
                predictions.append(ClipPrediction(name, None, None,
                                                  f"{failure.error_type}: {failure.message}"))
                continue
            proba = by_clip[index]
            predictions.append(ClipPrediction(name, proba, self.classes_[np.argmax(proba)]))
        return predictions

    def predict_proba(self, X: Any, *, sr: int | None = None) -> np.ndarray:
        """Class probabilities, shape (n_clips, n_classes), columns in ``classes_`` order.

        Raises
        ------
        AudioError
            A clip cannot be classified (the message names it); see :meth:`predict_clips`.
        """
        predictions = self.predict_clips(X, sr=sr)
        for prediction in predictions:
            if prediction.error is not None:
                raise AudioError(f"{prediction.source}: {prediction.error}")
        if not predictions:
            return np.empty((0, self.classes_.size))
        return np.stack([prediction.proba for prediction in predictions])

    def predict(self, X: Any, *, sr: int | None = None) -> np.ndarray:
        """Most probable class of each clip."""
        proba = self.predict_proba(X, sr=sr)
        return self.classes_[np.argmax(proba, axis=1)]

    # ----------------------------------------------------------------------------------------
    # Artifact
    # ----------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted classifier as one artifact file (see the module docstring).

        Returns
        -------
        pathlib.Path
            The file written (atomically: it exists complete or not at all).
        """
        from featurekit.fsutil import atomic_write_bytes

        check_is_fitted(self, "estimator_")
        payload = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        header = {"format": ARTIFACT_FORMAT, "featurekit": __version__,
                  "descriptor_version": DESCRIPTOR_VERSION, "payload_bytes": len(payload),
                  "payload_sha256": hashlib.sha256(payload).hexdigest(),
                  "provenance": self.provenance_}
        line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        atomic_write_bytes(path, ARTIFACT_MAGIC + line + payload)
        return Path(path)


def _source_name(sources: Sequence[Any], index: int) -> str:
    source = sources[index]
    return source if isinstance(source, str) else f"<array {index}>"


def _release(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], int]:
    """The JSON header of an artifact and the offset of its payload (nothing unpickled).

    Raises
    ------
    ArtifactError
        Not a featurekit artifact, or an unreadable header.
    """
    with open(path, "rb") as handle:
        if handle.read(len(ARTIFACT_MAGIC)) != ARTIFACT_MAGIC:
            raise ArtifactError(f"{path}: not a featurekit model artifact")
        line = handle.readline(MAX_HEADER_BYTES)
    try:
        header = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: corrupt artifact header ({exc})") from exc
    if not isinstance(header, dict) or not line.endswith(b"\n"):
        raise ArtifactError(f"{path}: corrupt artifact header")
    return header, len(ARTIFACT_MAGIC) + len(line)


def load_model(path: str | os.PathLike[str], *,
               weights: str | os.PathLike[str] | None = None,
               n_jobs: int | None = None) -> AudioClassifier:
    """Read a trained :class:`AudioClassifier` from an artifact file.

    The header is checked first (artifact format, featurekit release, descriptor version),
    then the payload's length and SHA-256; only then is it unpickled.

    .. warning::
       The payload is a pickle: load only artifacts you trust.

    Parameters
    ----------
    path : path-like
        Artifact written by :meth:`AudioClassifier.save` (``featurekit train``).
    weights : path-like, keyword-only, optional
        Checkpoint of the neural model, when not where ``featurekit embed`` finds it; its
        checksum must match the training weights'.
    n_jobs : int, keyword-only, optional
        Replaces the saved ``n_jobs`` (parallelism of feature computation).

    Raises
    ------
    ArtifactError
        Not an artifact, truncated or corrupt, or written by an incompatible featurekit.
    """
    header, offset = read_header(path)
    if header.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{path}: artifact format {header.get('format')!r}; this featurekit "
                            f"{__version__} reads format {ARTIFACT_FORMAT}")
    saved = str(header.get("featurekit"))
    if _release(saved) != _release(__version__):
        raise ArtifactError(f"{path}: trained with featurekit {saved}, incompatible with "
                            f"featurekit {__version__}; retrain with `featurekit train`")
    if header.get("descriptor_version") != DESCRIPTOR_VERSION:
        raise ArtifactError(f"{path}: trained on descriptor version "
                            f"{header.get('descriptor_version')}, but this featurekit computes "
                            f"version {DESCRIPTOR_VERSION}; retrain with `featurekit train`")
    payload = Path(path).read_bytes()[offset:]
    if len(payload) != header.get("payload_bytes"):
        raise ArtifactError(f"{path}: truncated or padded artifact (payload of {len(payload)} "
                            f"bytes, header says {header.get('payload_bytes')})")
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ArtifactError(f"{path}: corrupt artifact (payload checksum mismatch)")
    classifier = pickle.loads(payload)
    if not isinstance(classifier, AudioClassifier):
        raise ArtifactError(f"{path}: payload is a {type(classifier).__name__}, not an "
                            f"AudioClassifier")
    recorded = header.get("provenance", {}).get("versions", {})
    current = package_versions(*RECORDED_PACKAGES)
    changed = [f"{name} {recorded[name]} -> {current[name]}" for name in RECORDED_PACKAGES
               if name in recorded and recorded[name] != current[name]]
    if changed:
        warnings.warn(f"{path}: trained with other library versions ({', '.join(changed)}); "
                      "predictions may differ slightly", UserWarning, stacklevel=2)
    if weights is not None:
        classifier.weights = weights
    if n_jobs is not None:
        classifier.n_jobs = n_jobs
    return classifier


def train(dataset: str, data_dir: str | os.PathLike[str], store: str | os.PathLike[str], *,
          system: str = AUTO, model: str | None = "mn04_as",
          weights: str | os.PathLike[str] | None = None, folds: Sequence[int] | None = None,
          config: BenchmarkConfig | None = None, extraction: ExtractionConfig | None = None,
          n_jobs: int = 1, progress: bool | None = None) -> AudioClassifier:
    """Fit one system on a dataset's training folds, from a feature store.

    Computes whatever the store lacks of the training clips (as ``featurekit benchmark``
    does: :func:`featurekit.benchmark.driver.fill_store`), reads the table the benchmark
    reads, and fits :class:`AudioClassifier` on the clips of ``folds``.

    Parameters
    ----------
    dataset : str
        Dataset name (``urbansound8k``, ``esc50``, ``esc10``, ``folder``, ``csv``).
    data_dir : path-like
        Where the dataset lies.
    store : path-like
        Feature store (created if missing).
    system, model, weights, config :
        As in :class:`AudioClassifier`.
    folds : sequence of int, optional
        Training folds (default: every fold present).
    extraction : ExtractionConfig, optional
        Handcrafted configuration; default: the one already stored, else the defaults.
    n_jobs : int
        Worker processes for extraction and fits, torch threads for embedding.
    progress : bool, optional
        Progress bars on stderr.

    Returns
    -------
    AudioClassifier
        Fitted; :meth:`~AudioClassifier.save` it.

    Raises
    ------
    ConfigError
        Unknown system or folds, or a multi-label dataset.
    StoreError
        The store holds another configuration, or computing a branch failed.
    """
    from featurekit.benchmark.config import E2E_BRANCH
    from featurekit.benchmark.driver import fill_store, model_names, read_features
    from featurekit.datasets import load_dataset
    from featurekit.store import FeatureStore

    if n_jobs == 0 or n_jobs < -1:
        raise ConfigError("n_jobs must be a positive count or -1")
    if E2E_BRANCH in model_names(model):
        raise ConfigError("featurekit train fits systems of clip-level features; the e2e "
                          "stream (a CNN trained from scratch) is evaluated by featurekit "
                          "benchmark --model e2e only")
    data = load_dataset(dataset, data_dir)
    if data.multilabel:  # its label column holds label sets; a classifier here has one class
        raise ConfigError(f"{data.name} is multi-label; featurekit train fits single-label "
                          "classifiers (featurekit benchmark evaluates multi-label systems)")
    present = data.folds
    wanted = present if folds is None else sorted(set(int(f) for f in folds))
    unknown = sorted(set(wanted) - set(present))
    if unknown or not wanted:
        raise ConfigError(f"training fold(s) {unknown or wanted} not in {data.name} (folds "
                          f"present: {present})")
    training = dataclasses.replace(data, clips=data.clips[data.clips["fold"].isin(wanted)]
                                   .reset_index(drop=True))
    feature_store = FeatureStore(store)
    fill_store(training, feature_store, model=model, weights=weights, extraction=extraction,
               n_jobs=n_jobs, progress=progress)
    table, provenance = read_features(feature_store, data.name, model=model,
                                      recordings=data.clips.set_index("clip_id")["recording"])
    table = table[table["clip_id"].isin(training.clips["clip_id"])].reset_index(drop=True)
    classifier = AudioClassifier(system, model=model, weights=weights,
                                 extraction=extraction, config=config, n_jobs=n_jobs)
    classifier._fit_table(table, provenance, progress=progress,
                          trained_on={"dataset": data.name, "data_dir": str(data.root),
                                      "folds": list(wanted), "clips": len(table)})
    return classifier
