"""The benchmark's input, checked once and turned into arrays every stage reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from featurekit.benchmark.config import HANDCRAFTED_FAMILIES, BenchmarkConfig
from featurekit.datasets.base import LABEL_SEPARATOR
from featurekit.errors import ConfigError, DatasetError
from featurekit.fusion import Selector, resolve_columns
from featurekit.learn.rows import RowView
from featurekit.learn.splits import stratification_labels
from featurekit.names import E2E_BRANCH, SEQUENCE_HEAD_NAMES
from featurekit.store.layout import KEY_COLUMNS as STORE_KEY_COLUMNS

#: Non-feature columns: a store read's keys, and ``recording`` (optional), each clip's source.
KEY_COLUMNS = (*STORE_KEY_COLUMNS, "recording")
#: Fusions that need one class per clip (a softmax over classes), refused for label sets.
SINGLE_LABEL_FUSIONS = ("calibrated", "blend")


def split_labels(text: str) -> list[str]:
    """The labels of a ``label`` value of a multi-label clip, in their stored order."""
    return [name.strip() for name in str(text).split(LABEL_SEPARATOR) if name.strip()]


def label_matrix(label_sets: Sequence[Sequence[str]],
                 classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Label-indicator matrix of label sets.

    Parameters
    ----------
    label_sets : sequence of sequence of str
        Labels of each clip.
    classes : sequence of str, optional
        Column order; default the sorted union of the labels.

    Returns
    -------
    Y : np.ndarray of int64, shape (n_clips, n_classes)
    classes : list of str

    Raises
    ------
    DatasetError
        A clip without labels, or a label not in ``classes``.
    """
    classes = sorted({name for labels in label_sets for name in labels}) if classes is None \
        else list(classes)
    position = {name: index for index, name in enumerate(classes)}
    Y = np.zeros((len(label_sets), len(classes)), dtype=np.int64)
    for row, labels in enumerate(label_sets):
        if not labels:
            raise DatasetError(f"clip {row} has an empty label set")
        unknown = [name for name in labels if name not in position]
        if unknown:
            raise DatasetError(f"unknown label(s) {', '.join(unknown)}; classes are "
                               f"{', '.join(classes[:10])}{' ...' if len(classes) > 10 else ''}")
        Y[row, [position[name] for name in labels]] = 1
    return Y, classes


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


@dataclass
class BenchmarkData:
    """Arrays of one benchmark, rows sorted by clip id.

    Attributes
    ----------
    X : np.ndarray, float32 (n_clips, n_features)
        Feature columns; infinities are NaN.
    y : np.ndarray of int
        Class index of each clip (``0 .. n_classes - 1``); multi-label: each clip's rarest
        label (:func:`featurekit.learn.splits.stratification_labels`), which stratifies splits.
    folds : np.ndarray of int
        Official fold of each clip.
    groups : np.ndarray of int
        Source recording of each clip (factorised) when the table has a ``recording`` column,
        else its fold: every inner split and every early-stopping split keeps a group whole.
    grouping : {"recordings", "clips", "folds"}
        What a group is: a named source recording (or FSD50K's uploader); a clip (a
        ``recording`` column that names every clip its own, the datasets' fallback where
        sources are unknown, e.g. FSD50K without its clip metadata and the mixture sets:
        groups then hold one clip and split nothing); a fold (no ``recording`` column).
    positions : dict of str to np.ndarray
        Column positions of each branch.
    sequences : dict of str to np.ndarray
        Frame sequences of branches (rows in the caller's order; ``sequence_rows`` maps),
        in memory or memory-mapped (:func:`featurekit.store.sequences.load_sequences`).
    sequence_rows : np.ndarray of int
        Row of ``sequences`` of each sorted clip.
    classes : list of str
    clip_ids : np.ndarray of str
    Y : np.ndarray of int, (n_clips, n_classes), optional
        Multi-label tasks: each clip's label indicators, what heads fit and metrics score.
    corrupted : dict of str to np.ndarray, float32 (n_clips, n_features)
        A robustness run: per corruption, the features of the clips' corrupted copies, in
        ``X``'s rows and columns; a clip without a corrupted copy keeps its clean row there
        and is marked in ``corrupted_rows``. Only test rows are ever read (predicted).
    corrupted_rows : dict of str to np.ndarray of bool
        Per corruption, the clips that have a corrupted copy.
    """

    X: np.ndarray
    y: np.ndarray
    folds: np.ndarray
    groups: np.ndarray
    grouping: str
    positions: dict[str, np.ndarray]
    classes: list[str]
    clip_ids: np.ndarray
    sequences: dict[str, np.ndarray] = field(default_factory=dict)
    sequence_rows: np.ndarray | None = None
    Y: np.ndarray | None = None
    corrupted: dict[str, np.ndarray] = field(default_factory=dict)
    corrupted_rows: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def recordings_known(self) -> bool:
        """Whether the groups are source recordings (intervals resample them, learning curves
        subsample them); else clips stand for themselves."""
        return self.grouping == "recordings"

    @property
    def multilabel(self) -> bool:
        return self.Y is not None

    @property
    def targets(self) -> np.ndarray:
        """What heads fit and metrics score: ``Y`` for multi-label tasks, else ``y``."""
        return self.Y if self.Y is not None else self.y

    @property
    def branches(self) -> list[str]:
        return list(self.positions)

    def columns(self, branches: Sequence[str]) -> np.ndarray:
        """Positions of the concatenated columns of ``branches``."""
        return np.concatenate([self.positions[name] for name in branches])

    def streams(self, branches: Sequence[str], rows: np.ndarray) -> Any:
        """Frame sequences of clips ``rows``: one branch's, or a mapping of several, as
        :class:`~featurekit.learn.rows.RowView` s that heads read batch by batch (the
        sequences may be memory-mapped and larger than memory)."""
        index = self.sequence_rows[rows]
        if len(branches) == 1:
            return RowView(self.sequences[branches[0]], index)
        return {name: RowView(self.sequences[name], index) for name in branches}


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


def _check_branch_sequences(sequences: Mapping[str, np.ndarray], selectors: Mapping[str, Any],
                     n_clips: int, config: BenchmarkConfig) -> None:
    if any(head in SEQUENCE_HEAD_NAMES for head in config.heads) and not sequences:
        raise ConfigError("the sequence head needs frame sequences of the branches (store "
                          "extracted with --frames and embedded with --frames)")
    for name, values in sequences.items():
        if name not in selectors and name != E2E_BRANCH:
            raise ConfigError(f"sequences given for {name!r}, which is not a benchmark branch "
                              f"({', '.join(selectors)})")
        if np.ndim(values) != 3 or len(values) != n_clips:
            raise DatasetError(f"sequences of {name!r} must have shape (clips={n_clips}, "
                               f"frames, dims), got {np.shape(values)}")


def _check_multilabel_config(config: BenchmarkConfig) -> None:
    refused = [name for name in config.fusions if name in SINGLE_LABEL_FUSIONS]
    if refused:
        raise ConfigError(f"fusion(s) {', '.join(refused)} need one class per clip; a "
                          "multi-label benchmark fuses by early, mean, weighted, stacking, "
                          "oof_features or joint")
    if config.tune:
        raise ConfigError("the hyper-parameter search scores accuracy; it is single-label "
                          "only for now (drop --tune)")


def prepare_data(data: pd.DataFrame, config: BenchmarkConfig, *,
                 branches: Mapping[str, Selector] | None = None,
                 sequences: Mapping[str, np.ndarray] | None = None,
                 multilabel: bool = False,
                 corrupted: Mapping[str, pd.DataFrame] | None = None) -> BenchmarkData:
    """Check a features table (a store read) and turn it into :class:`BenchmarkData`.

    Parameters
    ----------
    data : pandas.DataFrame
        ``clip_id, fold, label, label_id`` (``recording`` optional) then feature columns.
    config : BenchmarkConfig
    branches : mapping of str to selector, optional
        Benchmark branches and their columns; default :func:`branch_selectors`.
    sequences : mapping of str to np.ndarray, optional
        Branch -> frame sequences (n_clips, n_frames, n_dims) in ``data``'s row order. The
        ``e2e`` stream's log-mel frames make it a branch of its own (with no columns).
    multilabel : bool
        ``label`` holds each clip's label set, joined by :data:`LABEL_SEPARATOR`; classes are
        the labels' sorted union and :attr:`BenchmarkData.Y` their indicators.
    corrupted : mapping of str to pandas.DataFrame, optional
        A robustness run: per corruption, the store read of the clips' corrupted copies
        (``clip_id`` and the same feature columns; any subset of the clips).

    Raises
    ------
    DatasetError
        Missing key columns, no rows, duplicate clip ids, clips without label or fold, no
        branch, sequences of the wrong shape.
    ConfigError
        Sequences of an unknown branch, or the sequence head without sequences; for a
        multi-label task, a fusion, head or option that needs one class per clip.
    """
    _validate_frame(data)
    if multilabel:
        _check_multilabel_config(config)
    # Sequences stay in the caller's row order; sequence_rows maps sorted rows to theirs.
    order = np.argsort(data["clip_id"].to_numpy(dtype=str), kind="stable")
    data = data.iloc[order].reset_index(drop=True)
    feature_columns = [str(c) for c in data.columns if c not in KEY_COLUMNS]
    selectors = dict(branches) if branches is not None else branch_selectors(feature_columns)
    if not selectors:
        raise DatasetError("no benchmark branch found among the feature columns (expected "
                           "pitch./timbre./spectral./neural.<model>. prefixes)")
    positions = {name: resolve_columns(selector, feature_columns, len(feature_columns))
                 for name, selector in selectors.items()}
    sequences = dict(sequences or {})
    _check_branch_sequences(sequences, selectors, len(data), config)
    if E2E_BRANCH in sequences:  # learns from its frames alone: no clip-level columns
        positions[E2E_BRANCH] = np.empty(0, dtype=np.int64)
    X = _feature_matrix(data, feature_columns)
    label_ids, y = np.unique(data["label_id"].to_numpy(dtype=np.int64), return_inverse=True)
    names_by_id = (data.drop_duplicates("label_id").set_index("label_id")["label"]
                   if "label" in data.columns else pd.Series(dtype=str))
    folds = data["fold"].to_numpy(dtype=np.int64)
    if "recording" in data.columns:
        recordings = data["recording"].astype(str)
        groups = pd.factorize(recordings)[0].astype(np.int64)
        grouping = ("recordings" if (recordings != data["clip_id"].astype(str)).any()
                    else "clips")
    else:
        groups, grouping = folds.copy(), "folds"
    classes = [str(names_by_id.get(i, i)) for i in label_ids]
    Y = None
    if multilabel:
        if "label" not in data.columns:
            raise DatasetError("a multi-label features table needs the label column")
        label_sets = [split_labels(text) for text in data["label"]]
        empty = [clip for clip, labels in zip(data["clip_id"], label_sets, strict=True)
                 if not labels]
        if empty:
            raise DatasetError(f"clip(s) without labels: {', '.join(map(str, empty[:5]))}")
        Y, classes = label_matrix(label_sets)
        y = stratification_labels(Y)
    clip_ids = data["clip_id"].to_numpy(dtype=str)
    corrupted_X, corrupted_rows = {}, {}
    for name, table in (corrupted or {}).items():
        corrupted_X[name], corrupted_rows[name] = _corrupted_matrix(
            name, table, X, clip_ids, feature_columns)
    return BenchmarkData(X=X, y=y.astype(np.int64), folds=folds, groups=groups,
                         grouping=grouping, positions=positions,
                         classes=classes, clip_ids=clip_ids,
                         sequences=sequences, sequence_rows=order, Y=Y,
                         corrupted=corrupted_X, corrupted_rows=corrupted_rows)


def _feature_matrix(table: pd.DataFrame, feature_columns: Sequence[str]) -> np.ndarray:
    """``table``'s feature columns as a float32 matrix of its own, an infinite value treated as
    missing (NaN), as a head treats it."""
    X = np.array(table[list(feature_columns)].to_numpy(dtype=np.float32), copy=True)
    X[np.isinf(X)] = np.nan
    return X


def _corrupted_matrix(name: str, table: pd.DataFrame, X: np.ndarray, clip_ids: np.ndarray,
                      feature_columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A corruption's features in ``X``'s rows and columns (clean rows where a clip has no
    corrupted copy) and which rows have one."""
    absent = [column for column in feature_columns if column not in table.columns]
    if absent:
        raise DatasetError(f"the corrupted copy {name!r} lacks feature columns, e.g. "
                           f"{absent[0]!r}: it was computed with other branches or settings")
    rows = pd.Index(clip_ids).get_indexer(table["clip_id"].astype(str))
    if (rows < 0).any():
        raise DatasetError(f"the corrupted copy {name!r} holds clips the benchmark lacks, "
                           f"e.g. {table['clip_id'].iloc[int(np.argmax(rows < 0))]!r}")
    matrix = X.copy()
    matrix[rows] = _feature_matrix(table, feature_columns)
    present = np.zeros(len(clip_ids), dtype=bool)
    present[rows] = True
    return matrix, present
