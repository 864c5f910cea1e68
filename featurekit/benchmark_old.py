"""Branch ablation: what each branch is worth alone, together, and when left out.

:func:`run_benchmark` takes a features DataFrame (as :meth:`featurekit.FeatureStore.read`
returns it) and evaluates, by leave-one-fold-out over the folds present:

* every branch alone (``pitch``, ``timbre``, ``spectral`` -- column groups of the store's
  ``handcrafted`` branch -- and ``neural.<model>``) with every head;
* every multi-branch subset of the ablation -- all handcrafted branches, everything, and
  everything but each branch -- with every head and every fusion (early, mean, weighted,
  stacking, calibrated).

The sequence head ``seq`` (:class:`featurekit.sequence.SequenceClassifier`) learns an embedding
from each branch's frame sequence instead of reading its clip-level functionals; it needs the
sequences (``sequences=`` of :func:`run_benchmark`; :func:`benchmark_store` loads them from a
store extracted and embedded with frames). Its branches are late-fused by every late rule; by
``blend``, the "diverse embeddings" method: the frozen 64-d embeddings of the inner out-of-fold
encoders are concatenated and a linear classifier is fitted on them, per inner split
(:func:`featurekit.sequence.blend_probabilities`); and by ``joint``: one model with an encoder
per branch trained together, blended by a learned per-clip gate (the sequence head's feature-
level fusion; its mean gate weights on the test clips are recorded as the fusion's choice).
Early fusion of functionals does not apply to sequences.

``oof_features`` fuses a neural branch with functionals branches differently: the neural
branch's head reads its own features plus the other branches' out-of-fold log-probabilities
(from the same head, ensembled over seeds; out-of-fold on the training clips, from the full
training members on the test clips), so it can learn where the handcrafted evidence helps.

Work is organised so the expensive part is shared: per outer fold, head and branch, one set of
seeded members (and their inner out-of-fold twins) is fitted once and reused by every late
fusion that contains the branch. Every system gets the same budget: the same seeds (their
probabilities averaged), the same inner splits and the same hyper-parameter search (or none),
so a fusion is always compared with an equally tuned and equally ensembled single branch.

The result is a JSON-ready dict (see :func:`run_benchmark`); :func:`benchmark_store` reads the
branches from a feature store first and refuses branches computed with untrained weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from featurekit.errors import ConfigError, DatasetError, StoreError
from featurekit.evaluation import (
    bootstrap_accuracy_difference,
    classification_metrics,
    confusion,
    leave_one_fold_out,
    mean_and_std,
    paired_fold_test,
    per_class_f1,
    seed_spread,
)
from featurekit.fsutil import atomic_write_text
from featurekit.fusion import (
    FUSION_RULES,
    FUSIONS,
    Selector,
    fit_branch,
    make_fusion,
    predict_members,
    resolve_columns,
)
from featurekit.heads import HEADS, HeadSpec, get_head_spec, inner_splits, take_rows
from featurekit.progress import progress_bar
from featurekit.store import KEY_COLUMNS as STORE_KEY_COLUMNS
from featurekit.versions import package_versions

#: Families of the store's ``handcrafted`` branch, each a benchmark branch of its own.
HANDCRAFTED_FAMILIES = ("pitch", "timbre", "spectral")
#: Non-feature columns: a store read's keys, and ``recording`` (optional), each clip's source.
KEY_COLUMNS = (*STORE_KEY_COLUMNS, "recording")
#: Store branch holding the handcrafted families.
HANDCRAFTED_BRANCH = "handcrafted"
#: Heads that learn from frame sequences rather than clip-level features.
SEQUENCE_HEAD_NAMES = ("seq",)
#: Fusions of sequence-head branches only: the blend of frozen learned embeddings, and the
#: jointly trained multi-stream model.
SEQUENCE_FUSIONS = ("blend", "joint")
#: Fusion of a neural branch's features with the other branches' out-of-fold log-probabilities.
OOF_FEATURES = "oof_features"
#: Every fusion a benchmark can run.
BENCHMARK_FUSIONS = (*FUSIONS, OOF_FEATURES, *SEQUENCE_FUSIONS)
#: Probabilities are clipped to this before their logarithm becomes a feature.
MIN_PROBABILITY = 1e-6


@dataclass(frozen=True)
class BenchmarkConfig:
    """What a benchmark runs; everything that changes its numbers (hashed into the results).

    Attributes
    ----------
    heads : tuple of str
        Head names of :data:`featurekit.heads.HEADS`, ``seq`` (the sequence head), or of
        ``head_specs`` given to :func:`run_benchmark`.
    fusions : tuple of str
        Any of ``early``, the late rules of :data:`featurekit.fusion.FUSION_RULES`,
        ``oof_features`` (functionals heads, subsets with one neural branch), ``blend`` and
        ``joint`` (sequence head only).
    n_seeds : int
        Members per seeded head (seeds ``seed .. seed + n_seeds - 1``), probabilities averaged.
    seed : int
        Base seed of heads, inner splits and the bootstrap.
    inner_splits : int
        Inner cross-validation splits (out-of-fold probabilities and the search).
    tune : bool
        Hyper-parameter search of every head inside the training folds (costs
        ``len(grid) * inner_splits`` extra fits per head, branch and fold).
    n_bootstrap : int
        Resamples of the bootstrap interval.
    """

    heads: tuple[str, ...] = ("xgb", "mlp", "logreg")
    fusions: tuple[str, ...] = BENCHMARK_FUSIONS
    n_seeds: int = 2
    seed: int = 0
    inner_splits: int = 3
    tune: bool = False
    n_bootstrap: int = 2000

    def __post_init__(self) -> None:
        if not self.heads:
            raise ConfigError("a benchmark needs at least one head")
        unknown = [name for name in self.fusions if name not in BENCHMARK_FUSIONS]
        if unknown:
            raise ConfigError(f"unknown fusion {unknown[0]!r}; choose from "
                              f"{', '.join(BENCHMARK_FUSIONS)}")
        if self.n_seeds < 1:
            raise ConfigError(f"n_seeds must be at least 1, got {self.n_seeds}")
        if self.inner_splits < 2:
            raise ConfigError(f"inner_splits must be at least 2, got {self.inner_splits}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}

    def config_hash(self, head_specs: Mapping[str, HeadSpec] | None = None) -> str:
        """Stable short hash of :meth:`to_dict` and of the heads' default parameters
        (``head_specs`` first, then the registry)."""
        specs = {name: _head_spec(name, head_specs) for name in self.heads
                 if name in HEADS or name in SEQUENCE_HEAD_NAMES or name in (head_specs or {})}
        heads = {name: [repr(spec.factory().get_params()), repr(spec.param_grid)]
                 for name, spec in specs.items()}
        text = json.dumps({"config": self.to_dict(), "heads": heads}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _head_spec(name: str, head_specs: Mapping[str, HeadSpec] | None) -> HeadSpec:
    """A head by name: ``head_specs`` first, then the sequence head, then the registry."""
    if head_specs and name in head_specs:
        return head_specs[name]
    if name in SEQUENCE_HEAD_NAMES:
        from featurekit.sequence import SEQUENCE_HEADS  # torch: imported only when asked for

        return SEQUENCE_HEADS[name]
    return get_head_spec(name)


def branch_selectors(columns: Sequence[str]) -> dict[str, str]:
    """Benchmark branches found among feature columns, as column prefixes.

    ``pitch``, ``timbre`` and ``spectral`` are the families of the handcrafted columns
    (``family.descriptor.statistic``); each ``neural.<model>`` is one neural branch (its
    ``emb_`` columns when there are any, e.g. not the optional tag probabilities).
    """
    names = [str(c) for c in columns if c not in KEY_COLUMNS]
    selectors = {family: f"{family}." for family in HANDCRAFTED_FAMILIES
                 if any(name.startswith(f"{family}.") for name in names)}
    models = sorted({name.split(".")[1] for name in names
                     if name.startswith("neural.") and name.count(".") >= 2})
    for model in models:
        prefix = f"neural.{model}."
        has_embedding = any(name.startswith(prefix + "emb_") for name in names)
        selectors[f"neural.{model}"] = prefix + "emb_" if has_embedding else prefix
    return selectors


def ablation_subsets(branches: Sequence[str]) -> dict[tuple[str, ...], list[str]]:
    """Branch subsets of the ablation and why each is there.

    Returns
    -------
    dict
        ``subset -> labels``: ``alone:<b>`` for each branch, ``handcrafted`` (all handcrafted
        branches, when two or more), ``all`` (two or more branches) and ``all_but:<b>`` (three
        or more). A subset reached for several reasons carries every label.
    """
    subsets: dict[tuple[str, ...], list[str]] = {}
    for name in branches:
        subsets.setdefault((name,), []).append(f"alone:{name}")
    handcrafted = tuple(name for name in branches if name in HANDCRAFTED_FAMILIES)
    if len(handcrafted) >= 2:
        subsets.setdefault(handcrafted, []).append("handcrafted")
    if len(branches) >= 2:
        subsets.setdefault(tuple(branches), []).append("all")
    if len(branches) >= 3:
        for name in branches:
            rest = tuple(other for other in branches if other != name)
            subsets.setdefault(rest, []).append(f"all_but:{name}")
    return subsets


def system_name(subset: Sequence[str], head: str, fusion: str | None) -> str:
    """``pitch/xgb`` for a single branch, ``pitch+timbre/mlp/stacking`` for a fusion."""
    parts = ["+".join(subset), head] + ([fusion] if fusion else [])
    return "/".join(parts)


# --------------------------------------------------------------------------------------------
# Work units (run in parallel)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Unit:
    fold: int
    head: str
    subset: tuple[str, ...]
    with_oof: bool


def _run_unit(spec: HeadSpec, X: np.ndarray, y: np.ndarray, folds: np.ndarray,
              train: np.ndarray, test: np.ndarray, positions: np.ndarray, n_classes: int,
              seeds: Sequence[int], config: BenchmarkConfig,
              splits: Sequence[tuple[np.ndarray, np.ndarray]] | None) -> dict[str, Any]:
    """Fit one head on one column set of one outer fold's training rows; predict its test rows.

    Only ``train`` rows reach any ``fit``; ``test`` rows are only predicted.
    """
    started = time.perf_counter()
    X_train = X[np.ix_(train, positions)]
    # One BLAS/OpenMP thread per unit: these matrices are small, parallelism comes from
    # running units side by side, and threads competing for two cores cost up to 10x.
    with threadpool_limits(limits=1):
        fitted = fit_branch(spec, X_train, y[train], folds[train], n_classes=n_classes,
                            seeds=seeds, splits=splits, tune=config.tune,
                            tune_splits=config.inner_splits, tune_random_state=config.seed)
        test_proba = predict_members(fitted.members, X[np.ix_(test, positions)], n_classes)
    return {"test": test_proba, "oof": fitted.oof, "params": fitted.params,
            "seconds": time.perf_counter() - started}


def _run_sequence_unit(spec: HeadSpec, sequences: np.ndarray | Mapping[str, np.ndarray],
                       y: np.ndarray, folds: np.ndarray, train: np.ndarray, test: np.ndarray,
                       rows: np.ndarray, n_classes: int, seeds: Sequence[int],
                       config: BenchmarkConfig,
                       splits: Sequence[tuple[np.ndarray, np.ndarray]] | None) -> dict[str, Any]:
    """Fit a sequence head on one branch's sequences (or, jointly, on a mapping of several
    branches' sequences) of an outer fold's training clips.

    ``rows`` maps benchmark rows to rows of ``sequences``. Besides the outputs of
    :func:`_run_unit`, with ``splits`` it returns each out-of-fold twin's embeddings of its own
    validation clips (``oof_embedding``, (n_members, n_train, dim)) and of the test clips
    (``test_embedding``, (n_members, n_splits, n_test, dim)) for the blend; for several
    branches, the members' mean gate weight of each branch on the test clips
    (``stream_weights``). Only ``train`` clips reach any ``fit``.
    """
    started = time.perf_counter()
    X_train, X_test = take_rows(sequences, rows[train]), take_rows(sequences, rows[test])
    with threadpool_limits(limits=1):
        fitted = fit_branch(spec, X_train, y[train], folds[train], n_classes=n_classes,
                            seeds=seeds, splits=splits, tune=config.tune,
                            tune_splits=config.inner_splits, tune_random_state=config.seed,
                            keep_twins=True)
        output = {"test": predict_members(fitted.members, X_test, n_classes),
                  "oof": fitted.oof, "params": fitted.params}
        if isinstance(sequences, Mapping):
            output["stream_weights"] = np.mean([member.stream_weights(X_test).mean(axis=0)
                                                for member in fitted.members], axis=0)
        if splits is not None:
            validation = [val for _, val in splits]
            output["oof_embedding"] = np.stack([
                _scatter([twin.transform(take_rows(X_train, val))
                          for twin, val in zip(twins, validation, strict=True)],
                         validation, len(train)) for twins in fitted.twins])
            output["test_embedding"] = np.stack([[twin.transform(X_test) for twin in twins]
                                                 for twins in fitted.twins])
    output["seconds"] = time.perf_counter() - started
    return output


def _oof_feature_target(subset: Sequence[str]) -> str | None:
    """The neural branch whose head reads the others' log-probabilities under
    ``oof_features``: the subset's only neural branch, beside at least one other branch."""
    neural = [name for name in subset if name.startswith("neural.")]
    return neural[0] if len(neural) == 1 and len(subset) > 1 else None


def _with_log_probabilities(features: np.ndarray, parts: Sequence[Mapping[str, Any]],
                            train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """``features`` with each part's seed-mean log-probabilities appended: out-of-fold on the
    ``train`` rows, from the full training members on the ``test`` rows."""
    n_classes = parts[0]["test"].shape[2]
    out = np.full((features.shape[0], features.shape[1] + n_classes * len(parts)), np.nan,
                  dtype=np.float32)
    out[:, :features.shape[1]] = features
    for index, part in enumerate(parts):
        columns = slice(features.shape[1] + index * n_classes,
                        features.shape[1] + (index + 1) * n_classes)
        for rows, proba in ((train, part["oof"]), (test, part["test"])):
            out[rows, columns] = np.log(np.clip(proba.mean(axis=0), MIN_PROBABILITY, 1.0))
    return out


def _scatter(blocks: Sequence[np.ndarray], indices: Sequence[np.ndarray],
             n_rows: int) -> np.ndarray:
    """Rows of ``blocks`` placed at ``indices`` of an (n_rows, dim) array."""
    out = np.zeros((n_rows, blocks[0].shape[1]), dtype=np.float32)
    for block, index in zip(blocks, indices, strict=True):
        out[index] = block
    return out


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------

def _validate_frame(data: pd.DataFrame) -> None:
    missing = [key for key in ("clip_id", "fold", "label_id") if key not in data.columns]
    if missing:
        raise DatasetError(f"features table lacks columns {missing}")
    if data.empty:
        raise DatasetError("features table is empty")
    if data["clip_id"].duplicated().any():
        raise DatasetError(f"duplicate clip ids, e.g. "
                           f"{data['clip_id'][data['clip_id'].duplicated()].iloc[0]!r}")
    if data["label_id"].isna().any() or data["fold"].isna().any():
        raise DatasetError("some clips have no label_id or no fold")


def _inner_groups(data: pd.DataFrame) -> np.ndarray:
    """Groups that the inner out-of-fold splits keep together.

    Source recordings when the table names them: official folds keep a recording's clips
    together, and so must the splits whose out-of-fold predictions teach a fusion rule, or
    it trusts a branch that only memorised recordings (with a single training fold, a
    clip-level split is otherwise the only choice). Folds otherwise.

    Heads' own early stopping keeps the folds as groups: measured on UrbanSound8K folds 1-2,
    a recording-grouped early-stopping split stopped XGBoost far too soon (handcrafted
    branch 52.1 % instead of 60.5 %, mn04_as 73.1 % instead of 74.9 %).
    """
    if "recording" in data.columns:
        return pd.factorize(data["recording"].astype(str))[0].astype(np.int64)
    return data["fold"].to_numpy(dtype=np.int64)


def _check_sequences(sequences: Mapping[str, np.ndarray], selectors: Mapping[str, Any],
                     n_clips: int, config: BenchmarkConfig) -> None:
    if any(head in SEQUENCE_HEAD_NAMES for head in config.heads) and not sequences:
        raise ConfigError("the sequence head needs frame sequences of the branches (store "
                          "extracted with --frames and embedded with --frames)")
    for name, values in sequences.items():
        if name not in selectors:
            raise ConfigError(f"sequences given for {name!r}, which is not a benchmark branch "
                              f"({', '.join(selectors)})")
        if np.ndim(values) != 3 or len(values) != n_clips:
            raise DatasetError(f"sequences of {name!r} must have shape (clips={n_clips}, "
                               f"frames, dims), got {np.shape(values)}")


def _blend_members(parts: Sequence[Mapping[str, Any]], y_train: np.ndarray,
                   splits: Sequence[tuple[np.ndarray, np.ndarray]], n_classes: int,
                   seed: int) -> np.ndarray:
    """Blended test probabilities of each seed member, shape (n_members, n_test, n_classes).

    Split k's blender learns from the embeddings of split k's validation clips by the twins
    trained on split k's other clips, and predicts from the same twins' test embeddings.
    """
    from featurekit.sequence import blend_probabilities

    n_members = parts[0]["oof_embedding"].shape[0]
    return np.stack([blend_probabilities(
        [np.hstack([part["oof_embedding"][m][val] for part in parts]) for _, val in splits],
        [y_train[val] for _, val in splits],
        [np.hstack([part["test_embedding"][m][k] for part in parts])
         for k in range(len(splits))],
        n_classes=n_classes, random_state=seed) for m in range(n_members)])


def _check_provenance(provenance: Mapping[str, Mapping[str, Any]]) -> None:
    for branch, facts in provenance.items():
        if facts.get("untrained"):
            raise ConfigError(f"branch {branch!r} was computed with untrained (random) weights; "
                              "the benchmark only runs on pretrained embeddings (re-embed "
                              "with real weights)")


def run_benchmark(data: pd.DataFrame, *, dataset: str,
                  branches: Mapping[str, Selector] | None = None,
                  config: BenchmarkConfig | None = None,
                  head_specs: Mapping[str, HeadSpec] | None = None,
                  provenance: Mapping[str, Mapping[str, Any]] | None = None,
                  expected_folds: Sequence[int] | None = None, n_jobs: int = 1,
                  progress: bool | None = None,
                  sequences: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Run the whole ablation by leave-one-fold-out and return the results.

    Parameters
    ----------
    data : pandas.DataFrame
        ``clip_id, fold, label, label_id`` then feature columns (a store read). NaN features
        are allowed (heads impute or route them); infinities are treated as NaN.
    dataset : str
        Dataset name recorded in the results.
    branches : mapping of str to selector, optional
        Benchmark branches and their columns; default :func:`branch_selectors`.
    config : BenchmarkConfig, optional
        Heads, fusions, seeds, search; default :class:`BenchmarkConfig()`.
    head_specs : mapping of str to HeadSpec, optional
        Extra or replacement heads by name (looked up before :data:`featurekit.heads.HEADS`).
    provenance : mapping of str to dict, optional
        Store branch -> its provenance (``config_hash``, ``versions``, ``untrained``...). A
        branch marked ``untrained`` is refused; the hashes go to ``config_hashes``.
    expected_folds : sequence of int, optional
        The dataset's complete fold list, to report missing folds.
    n_jobs : int
        Parallel work units (joblib processes). Results do not depend on it.
    progress : bool, optional
        Progress bar on stderr (default: on unless ``FEATUREKIT_NO_PROGRESS`` is set).
    sequences : mapping of str to np.ndarray, optional
        Benchmark branch -> its frame sequences (n_clips, n_frames, n_dims), NaN-padded, rows
        in the order of ``data``'s rows (:func:`featurekit.sequence.load_sequences`). The
        sequence head runs on these branches only and is required to have some.

    Returns
    -------
    dict
        ``dataset, folds, protocol, systems, best_single, best_fusion, fusion_gain, versions,
        config_hashes, timings_s`` (the results.json contract) plus ``classes``,
        ``expected_folds``, ``missing_folds``, ``clips_per_fold``, ``branches`` (column counts),
        ``config``, ``comparisons`` (every fusion against the best single branch),
        ``fusion_vs_own_branches`` (every fusion against the best of its own branches with
        the same head),
        ``contributions`` (each branch alone and its marginal value), ``reference_for_gain``
        (the system per-class gains are measured against) and ``provenance``.
    """
    started = time.perf_counter()
    config = config or BenchmarkConfig()
    provenance = dict(provenance or {})
    _check_provenance(provenance)
    _validate_frame(data)
    # Sequences stay in the caller's row order; seq_rows maps sorted rows to theirs.
    seq_rows = np.argsort(data["clip_id"].to_numpy(dtype=str), kind="stable")
    data = data.iloc[seq_rows].reset_index(drop=True)
    feature_columns = [str(c) for c in data.columns if c not in KEY_COLUMNS]
    selectors = dict(branches) if branches is not None else branch_selectors(feature_columns)
    if not selectors:
        raise DatasetError("no benchmark branch found among the feature columns (expected "
                           "pitch./timbre./spectral./neural.<model>. prefixes)")
    positions = {name: resolve_columns(selector, feature_columns, len(feature_columns))
                 for name, selector in selectors.items()}
    specs = {name: _head_spec(name, head_specs) for name in config.heads}
    sequences = dict(sequences or {})
    _check_sequences(sequences, selectors, len(data), config)
    X = np.array(data[feature_columns].to_numpy(dtype=np.float32), copy=True)
    X[~np.isfinite(X) & ~np.isnan(X)] = np.nan
    label_ids, y = np.unique(data["label_id"].to_numpy(dtype=np.int64), return_inverse=True)
    names_by_id = (data.drop_duplicates("label_id").set_index("label_id")["label"]
                   if "label" in data.columns else pd.Series(dtype=str))
    classes = [str(names_by_id.get(label_id, label_id)) for label_id in label_ids]
    n_classes = len(classes)
    folds = data["fold"].to_numpy(dtype=np.int64)
    groups = _inner_groups(data)
    outer = leave_one_fold_out(folds)
    branch_names = list(selectors)
    subsets = ablation_subsets(branch_names)
    multi = [subset for subset in subsets if len(subset) > 1]
    late = [name for name in config.fusions if name in FUSION_RULES]
    seeds = [config.seed + i for i in range(config.n_seeds)]
    sequence_heads = [head for head in config.heads if head in SEQUENCE_HEAD_NAMES]
    blend = "blend" in config.fusions
    joint = "joint" in config.fusions
    oof_features = OOF_FEATURES in config.fusions

    def runs(head: str, subset: Sequence[str]) -> bool:
        """Whether ``head`` applies to every branch of ``subset``."""
        return head not in sequence_heads or all(name in sequences for name in subset)

    fused_subsets = {head: [subset for subset in multi if runs(head, subset)]
                     for head in config.heads}
    oof_feature_subsets = {head: [subset for subset in fused_subsets[head]
                                  if oof_features and head not in sequence_heads
                                  and _oof_feature_target(subset)]
                           for head in config.heads}
    with_oof = {head: bool(fused_subsets[head]
                           and (late or oof_feature_subsets[head]
                                or (blend and head in sequence_heads)))
                for head in config.heads}
    units = [_Unit(fold, head, (name,), with_oof[head])
             for fold, _, _ in outer for head in config.heads for name in branch_names
             if runs(head, (name,))]
    # A multi-branch unit is the early fusion of functionals heads and the joint model of
    # sequence heads.
    units += [_Unit(fold, head, subset, False)
              for fold, _, _ in outer for head in config.heads
              if ("joint" if head in sequence_heads else "early") in config.fusions
              for subset in fused_subsets[head]]
    split_of = {fold: (train, test) for fold, train, test in outer}
    inner = {fold: inner_splits(y[train], groups[train], n_splits=config.inner_splits,
                                random_state=config.seed) for fold, train, _ in outer}

    def unit_columns(unit: _Unit) -> np.ndarray:
        return np.concatenate([positions[name] for name in unit.subset])

    def task(unit: _Unit) -> Any:
        splits = inner[unit.fold] if unit.with_oof else None
        if unit.head in sequence_heads:
            streams = (sequences[unit.subset[0]] if len(unit.subset) == 1
                       else {name: sequences[name] for name in unit.subset})
            return delayed(_run_sequence_unit)(specs[unit.head], streams, y, groups,
                                               *split_of[unit.fold], seq_rows, n_classes,
                                               seeds, config, splits)
        return delayed(_run_unit)(specs[unit.head], X, y, folds, *split_of[unit.fold],
                                  unit_columns(unit), n_classes, seeds, config, splits)

    # Second stage, needing the first's out-of-fold probabilities: oof_features units.
    stacked_units = [(fold, head, subset) for fold, _, _ in outer for head in config.heads
                     for subset in oof_feature_subsets[head]]

    def stacked_task(fold: int, head: str, subset: tuple[str, ...]) -> Any:
        target = _oof_feature_target(subset)
        parts = [outputs[_Unit(fold, head, (name,), True)] for name in subset
                 if name != target]
        features = _with_log_probabilities(X[:, positions[target]], parts, *split_of[fold])
        return delayed(_run_unit)(specs[head], features, y, folds, *split_of[fold],
                                  np.arange(features.shape[1]), n_classes, seeds, config, None)

    outputs: dict[_Unit, dict[str, Any]] = {}
    stacked: dict[tuple[int, str, tuple[str, ...]], dict[str, Any]] = {}
    with progress_bar(total=len(units) + len(stacked_units), desc=f"benchmark {dataset}",
                      unit="fit", disable=None if progress is None else not progress) as bar:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
        for unit, output in zip(units, parallel(task(unit) for unit in units), strict=True):
            outputs[unit] = output
            bar.update(1)
        for key, output in zip(stacked_units, parallel(stacked_task(*key)
                                                       for key in stacked_units), strict=True):
            stacked[key] = output
            bar.update(1)

    fusion_started = time.perf_counter()
    cells: dict[str, dict[str, Any]] = {}

    def record(name: str, subset: tuple[str, ...], head: str, fusion: str | None, fold: int,
               ensemble: np.ndarray, members: np.ndarray, choice: str | None = None) -> None:
        cell = cells.setdefault(name, {"subset": subset, "head": head, "fusion": fusion,
                                       "proba": {}, "members": {}, "choices": {}})
        cell["proba"][fold] = ensemble
        cell["members"][fold] = members
        if choice is not None:
            cell["choices"][fold] = choice

    with threadpool_limits(limits=1):  # small second-level fits: one thread is fastest
        for fold, train, _ in outer:
            for head in config.heads:
                for subset in subsets:
                    if not runs(head, subset):
                        continue
                    if len(subset) == 1:
                        test = outputs[_Unit(fold, head, subset, with_oof[head])]["test"]
                        record(system_name(subset, head, None), subset, head, None, fold,
                               test.mean(axis=0), test)
                        continue
                    if "early" in config.fusions and head not in sequence_heads:
                        test = outputs[_Unit(fold, head, subset, False)]["test"]
                        record(system_name(subset, head, "early"), subset, head, "early", fold,
                               test.mean(axis=0), test)
                    if (fold, head, subset) in stacked:
                        test = stacked[fold, head, subset]["test"]
                        target = _oof_feature_target(subset)
                        record(system_name(subset, head, OOF_FEATURES), subset, head,
                               OOF_FEATURES, fold, test.mean(axis=0), test,
                               f"{target} features + out-of-fold log-probabilities of "
                               f"{', '.join(name for name in subset if name != target)}")
                    if joint and head in sequence_heads:
                        output = outputs[_Unit(fold, head, subset, False)]
                        weights = ", ".join(f"{name} {weight:.2f}" for name, weight in zip(
                            subset, output["stream_weights"], strict=True))
                        record(system_name(subset, head, "joint"), subset, head, "joint", fold,
                               output["test"].mean(axis=0), output["test"],
                               f"mean gate weights on the test clips: {weights}")
                    parts = [outputs[_Unit(fold, head, (name,), True)] for name in subset]
                    for rule_name in late:
                        rule = make_fusion(rule_name).fit([part["oof"].mean(axis=0)
                                                           for part in parts],
                                                          y[train], inner[fold])
                        # The rule learned on the seed ensemble also fuses each seed's members,
                        # so the seed spread reflects the heads, not a re-learned rule.
                        members = np.stack([rule.combine([part["test"][m] for part in parts])
                                            for m in range(parts[0]["test"].shape[0])])
                        ensemble = rule.combine([part["test"].mean(axis=0) for part in parts])
                        choice = rule.choice_
                        for index in reversed(range(len(subset))):  # "branch 10" first
                            choice = choice.replace(f"branch {index}", subset[index])
                        record(system_name(subset, head, rule_name), subset, head, rule_name,
                               fold, ensemble, members, choice)
                    if blend and head in sequence_heads:
                        members = _blend_members(parts, y[train], inner[fold], n_classes,
                                                 config.seed)
                        record(system_name(subset, head, "blend"), subset, head, "blend", fold,
                               members.mean(axis=0), members,
                               f"linear blend of {len(subset)} x "
                               f"{parts[0]['oof_embedding'].shape[2]}-d embeddings, "
                               f"{len(inner[fold])} inner splits")

    fold_ids = [fold for fold, _, _ in outer]
    test_of = {fold: test for fold, _, test in outer}
    systems = []
    correct: dict[str, dict[int, np.ndarray]] = {}
    for name, cell in cells.items():
        per_fold, member_accuracy, predictions = {}, [], np.empty(len(y), dtype=np.int64)
        for fold in fold_ids:
            truth = y[test_of[fold]]
            per_fold[str(fold)] = classification_metrics(truth, cell["proba"][fold])
            predictions[test_of[fold]] = np.argmax(cell["proba"][fold], axis=1)
            member_accuracy.append([float(np.mean(np.argmax(p, axis=1) == truth))
                                    for p in cell["members"][fold]])
        correct[name] = {fold: predictions[test_of[fold]] == y[test_of[fold]]
                         for fold in fold_ids}
        means, stds = mean_and_std(per_fold)
        entry = {"name": name, "branches": list(cell["subset"]), "head": cell["head"],
                 "fusion": cell["fusion"], "per_fold": per_fold, "mean": means, "std": stds,
                 "seed_sd": {"accuracy": seed_spread(member_accuracy)},
                 "n_members_per_branch": len(cell["members"][fold_ids[0]]),
                 "ablation": list(subsets[cell["subset"]]),
                 "per_class_f1": dict(zip(classes, per_class_f1(y, predictions, n_classes)
                                          .round(6).tolist(), strict=True)),
                 "confusion": confusion(y, predictions, n_classes).tolist()}
        if cell["choices"]:
            entry["fusion_choice"] = {str(fold): cell["choices"][fold] for fold in fold_ids}
        systems.append(entry)
    fusion_seconds = time.perf_counter() - fusion_started

    by_name = {system["name"]: system for system in systems}
    singles = [s for s in systems if s["fusion"] is None]
    fused = [s for s in systems if s["fusion"] is not None]
    best_single = max(singles, key=lambda s: s["mean"]["accuracy"])["name"]
    best_fusion = max(fused, key=lambda s: s["mean"]["accuracy"])["name"] if fused else None

    def compare(name: str, reference: str) -> dict[str, Any]:
        a = [by_name[name]["per_fold"][str(f)]["accuracy"] for f in fold_ids]
        b = [by_name[reference]["per_fold"][str(f)]["accuracy"] for f in fold_ids]
        test = paired_fold_test(a, b)
        low, high = bootstrap_accuracy_difference(
            [correct[name][f] for f in fold_ids], [correct[reference][f] for f in fold_ids],
            n_boot=config.n_bootstrap, random_state=config.seed)
        return {"system": name, "reference": reference, "mean_pp": 100.0 * test["mean"],
                "per_fold_pp": {str(f): 100.0 * (x - z) for f, x, z in zip(fold_ids, a, b,
                                                                            strict=True)},
                "ci95_pp": [100.0 * low, 100.0 * high], "n_better": test["n_better"],
                "n_worse": test["n_worse"], "sign_test_p": test["sign_test_p"],
                "wilcoxon_p": test["wilcoxon_p"]}

    comparisons = [compare(s["name"], best_single) for s in fused]
    # Each fusion against the best of its own branches with the same head: what fusing adds
    # to that head (e.g. the joint sequence model against its strongest stream alone).
    fusion_vs_own_branches = []
    for system in fused:
        own = [by_name[system_name((name,), system["head"], None)]
               for name in system["branches"]]
        reference = max(own, key=lambda s: s["mean"]["accuracy"])["name"]
        fusion_vs_own_branches.append(compare(system["name"], reference))
    # Per branch: the learned sequence embedding against the best functionals head.
    sequence_vs_functionals = []
    for head in sequence_heads:
        for name in branch_names:
            learned = by_name.get(system_name((name,), head, None))
            functionals = [s for s in singles if s["branches"] == [name]
                           and s["head"] not in sequence_heads]
            if learned and functionals:
                reference = max(functionals, key=lambda s: s["mean"]["accuracy"])["name"]
                sequence_vs_functionals.append({"branch": name,
                                                **compare(learned["name"], reference)})
    fusion_gain = next((c for c in comparisons if c["system"] == best_fusion), None)
    neural_singles = [s for s in singles if s["branches"][0].startswith("neural.")]
    reference_for_gain = (max(neural_singles, key=lambda s: s["mean"]["accuracy"])["name"]
                          if neural_singles else best_single)

    heads_seconds = {f"fit_{head}": sum(out["seconds"] for unit, out in outputs.items()
                                        if unit.head == head)
                     + sum(out["seconds"] for (_, name, _), out in stacked.items()
                           if name == head) for head in config.heads}
    results = {
        "dataset": dataset, "folds": fold_ids, "protocol": "leave-one-fold-out",
        "systems": systems, "best_single": best_single, "best_fusion": best_fusion,
        "fusion_gain": fusion_gain, "versions": package_versions(
            "featurekit", "numpy", "pandas", "scipy", "scikit-learn", "xgboost", "torch"),
        "config_hashes": {"benchmark": config.config_hash(head_specs),
                          **{branch: facts.get("config_hash")
                             for branch, facts in provenance.items()}},
        "timings_s": {"total": time.perf_counter() - started, **heads_seconds,
                      "late_fusion_and_statistics": fusion_seconds},
        "classes": classes,
        "expected_folds": sorted(int(f) for f in expected_folds) if expected_folds else fold_ids,
        "missing_folds": sorted(set(int(f) for f in expected_folds or ()) - set(fold_ids)),
        "clips_per_fold": {str(fold): len(test_of[fold]) for fold in fold_ids},
        "n_clips": len(y),
        "branches": {name: len(cols) for name, cols in positions.items()},
        "config": config.to_dict(),
        "comparisons": comparisons,
        "fusion_vs_own_branches": fusion_vs_own_branches,
        "sequence_vs_functionals": sequence_vs_functionals,
        "sequence_dims": {name: list(np.shape(values)[1:]) for name, values in sequences.items()},
        "contributions": _contributions(by_name, branch_names, fold_ids,
                                        by_name[best_fusion] if best_fusion else
                                        by_name[best_single]),
        "reference_for_gain": reference_for_gain,
        "provenance": provenance,
    }
    if config.tune:
        results["tuned_params"] = {
            f"{unit.fold}:{system_name(unit.subset, unit.head, None)}": out["params"]
            for unit, out in outputs.items()}
    return results


def _contributions(by_name: Mapping[str, Mapping[str, Any]], branch_names: Sequence[str],
                   fold_ids: Sequence[int], anchor: Mapping[str, Any]) -> dict[str, Any]:
    """Each branch alone and its marginal value (all minus all-but-it), with ``anchor``'s head
    and fusion, per fold and as mean and standard deviation over folds."""
    head, fusion = anchor["head"], anchor["fusion"]

    def lookup(subset: Sequence[str]) -> Mapping[str, Any] | None:
        return by_name.get(system_name(subset, head, fusion if len(subset) > 1 else None))

    def summary(values: Sequence[float]) -> dict[str, Any]:
        array = np.asarray(values)
        return {"per_fold": {str(f): float(v) for f, v in zip(fold_ids, array, strict=True)},
                "mean": float(array.mean()),
                "std": float(array.std(ddof=1)) if array.size > 1 else 0.0}

    def accuracy(system: Mapping[str, Any]) -> list[float]:
        return [100.0 * system["per_fold"][str(f)]["accuracy"] for f in fold_ids]

    everything = lookup(branch_names)
    out: dict[str, Any] = {"head": head, "fusion": fusion, "branches": {}}
    for name in branch_names:
        entry: dict[str, Any] = {"alone_pct": summary(accuracy(by_name[system_name(
            (name,), head, None)]))}
        rest = [other for other in branch_names if other != name]
        without = lookup(rest) if rest else None
        if everything is not None and without is not None:
            entry["marginal_pp"] = summary([a - b for a, b in zip(
                accuracy(everything), accuracy(without), strict=True)])
        out["branches"][name] = entry
    return out


# --------------------------------------------------------------------------------------------
# From a feature store, to files
# --------------------------------------------------------------------------------------------

def benchmark_store(store: Any, dataset: str, *, model: str | None = None,
                    config: BenchmarkConfig | None = None,
                    expected_folds: Sequence[int] | None = None, n_jobs: int = 1,
                    progress: bool | None = None,
                    recordings: Mapping[str, str] | pd.Series | None = None) -> dict[str, Any]:
    """Read ``handcrafted`` (and ``neural.<model>``) from a store and run the benchmark.

    With the sequence head among ``config.heads``, every branch's frame sequences are loaded
    too (:func:`featurekit.sequence.load_sequences`); the store must hold frames.

    Parameters
    ----------
    store : FeatureStore or path-like
    dataset : str
    model : str, optional
        Neural model whose branch ``neural.<model>`` joins the handcrafted families.
    config, expected_folds, n_jobs, progress :
        See :func:`run_benchmark`.
    recordings : mapping of clip_id to recording id, optional
        Source recordings (``Dataset.clips["recording"]``), kept together by inner splits.

    Raises
    ------
    StoreError
        A branch is missing from the store.
        A branch was stored without frames while the sequence head needs them.
    ConfigError
        The neural branch was computed with untrained weights.
    """
    from featurekit.store import FeatureStore

    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    wanted = [HANDCRAFTED_BRANCH] + ([f"neural.{model}"] if model else [])
    present = store.branches(dataset)
    missing = [branch for branch in wanted if branch not in present]
    if missing:
        raise StoreError(f"store {store.path} lacks branch(es) {', '.join(missing)} of "
                         f"dataset {dataset!r}; run featurekit extract / embed first")
    started = time.perf_counter()
    provenance = {branch: store.provenance(dataset, branch) for branch in wanted}
    _check_provenance(provenance)
    data = store.read(dataset, branches=wanted)
    if recordings is not None:
        mapped = data["clip_id"].map(pd.Series(recordings) if isinstance(recordings, Mapping)
                                     else recordings)
        data.insert(4, "recording", mapped.fillna(data["clip_id"]).astype(str))
    sequences = None
    if any(head in SEQUENCE_HEAD_NAMES for head in (config or BenchmarkConfig()).heads):
        from featurekit.sequence import load_sequences

        branch_names = list(branch_selectors([str(c) for c in data.columns]))
        sequences = load_sequences(store, dataset, branch_names, data["clip_id"].tolist())
    read_seconds = time.perf_counter() - started
    results = run_benchmark(data, dataset=dataset, config=config, provenance=provenance,
                            expected_folds=expected_folds, n_jobs=n_jobs, progress=progress,
                            sequences=sequences)
    results["timings_s"]["read_store"] = read_seconds
    results["timings_s"]["total"] += read_seconds
    return results


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def save_results(results: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` into ``out_dir`` atomically and return its path."""
    target = Path(out_dir) / "results.json"
    atomic_write_text(target, json.dumps(_json_ready(results), indent=1) + "\n")
    return target


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``results.json`` written by :func:`save_results`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


__all__ = ["HANDCRAFTED_FAMILIES", "BenchmarkConfig", "ablation_subsets",
           "benchmark_store", "branch_selectors", "load_results",
           "run_benchmark", "save_results", "system_name"]
