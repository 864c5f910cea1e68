"""The :class:`Dataset` object and the helpers every adapter shares.

Adapters turn a directory (or CSV) into a clips table; the helpers here keep their behaviour
identical: metadata read as text with errors naming the file, metadata paths confined to the
data directory, audio matched by file stem when the extension differs, missing audio reported
once, duplicates refused, folds assigned deterministically when none are given.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from featurekit.errors import DatasetError
from featurekit.names import LEAVE_ONE_FOLD_OUT

__all__ = ["AUDIO_EXTENSIONS", "CLIP_COLUMNS", "Dataset", "DatasetWarning", "assign_folds"]

#: Extensions recognised as audio, in order of preference when several files share a stem.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
#: Columns every clips table starts with.
CLIP_COLUMNS = ("clip_id", "path", "label", "label_id", "fold")
#: Separator of a clip's labels in a multi-label ``label`` value (and in a CSV's ``labels``).
LABEL_SEPARATOR = ","
_SHOWN = 5
#: Directory of this package: frames in it are not the caller a warning is attributed to.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class DatasetWarning(UserWarning):
    """A dataset was loaded, but not as the manifest describes it (partial copy, missing
    audio, assigned folds)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled audio dataset with its evaluation folds.

    Attributes
    ----------
    name : str
        ``urbansound8k``, ``esc50``, ``esc10``, or the name of a folder/CSV dataset.
    clips : pandas.DataFrame
        One row per clip present: ``clip_id`` (unique str), ``path`` (absolute path of the
        audio file found), ``label`` (str), ``label_id`` (int index into ``classes``),
        ``fold`` (int), then dataset extras (e.g. ``salience``).
    classes : list of str
        Class names in ``label_id`` order.
    expected_folds : list of int
        All folds of the complete dataset.
    root : Path
        Directory the dataset was read from.
    protocol : str
        Evaluation protocol, ``"leave-one-fold-out"`` over the folds, or
        ``"train-val-eval"`` (folds 1, 2, 3: the official train, validation and eval sets).
    multilabel : bool
        Clips carry label sets: ``label`` holds a clip's labels joined by commas (no class
        name contains one) and ``label_id`` the class of the first.
    """

    name: str
    clips: pd.DataFrame
    classes: list[str]
    expected_folds: list[int]
    root: Path
    protocol: str = LEAVE_ONE_FOLD_OUT
    multilabel: bool = False

    @property
    def folds(self) -> list[int]:
        """Sorted folds present in :attr:`clips`."""
        return sorted(int(fold) for fold in self.clips["fold"].unique())

    @property
    def missing_folds(self) -> list[int]:
        """Expected folds with no clip present."""
        return sorted(set(self.expected_folds) - set(self.folds))

    def __len__(self) -> int:
        return len(self.clips)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, clips={len(self.clips)}, "
                f"classes={len(self.classes)}, folds={self.folds}, root='{self.root}')")


def warn(message: str) -> None:
    """Issue a :class:`DatasetWarning` attributed to the caller of the public loader.

    The frames inside this package are skipped, however deep the adapter issuing the warning
    sits (the registry, an adapter, a shared helper), so the warning names the user's line.
    """
    frame = sys._getframe(1)
    level = 2  # stacklevel 2 is the frame that called warn()
    while frame.f_back is not None and \
            os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _PACKAGE_DIR:
        frame = frame.f_back
        level += 1
    warnings.warn(message, DatasetWarning, stacklevel=level)


def preview(names: Iterable[object], count: int | None = None) -> str:
    """``a, b, c, ... (n in total)`` for messages."""
    names = [str(name) for name in names]
    count = len(names) if count is None else count
    shown = ", ".join(names[:_SHOWN])
    return f"{shown}, ... ({count} in total)" if count > _SHOWN else shown


def read_csv_text(path: Path, required: Sequence[str], *, header: bool = True) -> pd.DataFrame:
    """Read a metadata CSV as text columns, checking that ``required`` columns exist.

    With ``header=False`` the file has no header line and the columns are numbered from 0
    (``required`` then names none).

    Raises
    ------
    DatasetError
        Naming the file and the problem (missing, unreadable, malformed, missing columns,
        no rows).
    """
    if not path.is_file():
        raise DatasetError(f"metadata file {path} not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                            encoding="utf-8", header=0 if header else None)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"metadata file {path} cannot be read: "
                           f"{str(exc).strip() or type(exc).__name__}") from exc
    if header:
        table.columns = [str(column).strip() for column in table.columns]
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DatasetError(f"metadata file {path} lacks column(s) {', '.join(missing)} "
                           f"(found: {', '.join(table.columns)})")
    if table.empty:
        raise DatasetError(f"metadata file {path} has no rows")
    return table


def int_column(values: pd.Series, column: str, source: Path) -> np.ndarray:
    """Parse a text column as integers; errors name the file, the column and bad values."""
    parsed = pd.to_numeric(values.str.strip(), errors="coerce")
    bad = parsed.isna() | (parsed != parsed.round())
    if bad.any():
        raise DatasetError(f"metadata file {source}: column {column!r} must hold integers; "
                           f"bad value(s): {preview(values[bad].map(repr).unique())}")
    return parsed.to_numpy(dtype=np.int64)


def parse_label_sets(values: pd.Series, source: Path, *, first_line: int = 2) -> list[list[str]]:
    """Label sets of comma-separated text values (duplicates dropped, order kept).

    Raises
    ------
    DatasetError
        For a value with no label, naming the file and the line numbers (``first_line`` is
        the line of the first value).
    """
    sets = [list(dict.fromkeys(name.strip() for name in str(text).split(LABEL_SEPARATOR)
                               if name.strip())) for text in values]
    empty = [index + first_line for index, labels in enumerate(sets) if not labels]
    if empty:
        raise DatasetError(f"metadata file {source}: empty label set on line(s) "
                           f"{preview(empty)}")
    return sets


def refuse_duplicates(clip_ids: pd.Series, source: Path) -> None:
    """Raise a DatasetError naming the duplicated clip ids, if any."""
    duplicated = clip_ids[clip_ids.duplicated(keep=False)].unique()
    if len(duplicated):
        raise DatasetError(f"{source}: duplicate clip ids: {preview(sorted(duplicated))}")


def confined_path(root: Path, relative: str, source: Path) -> Path:
    """``root / relative``, normalised; a path that leaves ``root`` is refused.

    The check is lexical (``..`` and absolute paths), so a data directory that is itself a
    symbolic link, or that links its audio elsewhere, keeps working.
    """
    if os.path.isabs(relative) or re.match(r"^[A-Za-z]:[\\/]", relative):
        raise DatasetError(f"{source}: absolute path {relative!r} in metadata; paths must be "
                           "relative to the data directory")
    root_text = os.path.normpath(os.path.abspath(root))
    joined = os.path.normpath(os.path.join(root_text, relative))
    if not (joined == root_text or joined.startswith(root_text.rstrip(os.sep) + os.sep)):
        raise DatasetError(f"{source}: path {relative!r} points outside the data directory "
                           f"{root_text}; refusing to read it")
    return Path(joined)


class AudioFinder:
    """Find the audio file for a metadata path, by exact name or else by file stem.

    Each directory is listed once, so matching thousands of rows costs one ``scandir`` per
    directory. When the exact name is absent, a file with the same stem and an audio
    extension is used (FLAC/OGG copies of a dataset whose metadata says ``.wav``); several
    candidates are resolved by :data:`AUDIO_EXTENSIONS` order.
    """

    def __init__(self) -> None:
        self._listings: dict[Path, tuple[set[str], dict[str, list[str]]]] = {}

    def _listing(self, directory: Path) -> tuple[set[str], dict[str, list[str]]]:
        if directory not in self._listings:
            names: set[str] = set()
            by_stem: dict[str, list[str]] = {}
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if entry.is_file():
                            names.add(entry.name)
                            stem, ext = os.path.splitext(entry.name)
                            if ext.lower() in AUDIO_EXTENSIONS:
                                by_stem.setdefault(stem, []).append(entry.name)
            except (FileNotFoundError, NotADirectoryError):
                pass
            self._listings[directory] = (names, by_stem)
        return self._listings[directory]

    def find(self, path: Path) -> Path | None:
        """The existing file for ``path``, or ``None``."""
        names, by_stem = self._listing(path.parent)
        if path.name in names:
            return path
        candidates = by_stem.get(os.path.splitext(path.name)[0])
        if not candidates:
            return None
        best = min(candidates, key=lambda name: AUDIO_EXTENSIONS.index(
            os.path.splitext(name)[1].lower()))
        return path.parent / best


def drop_missing_audio(found: Sequence[object], names: Sequence[str], *, none_found: str,
                       skipped: Callable[[int], str],
                       folds: Sequence[int] | None = None) -> np.ndarray:
    """Which listed clips to keep: those whose audio file was found.

    Every adapter treats missing audio alike: no audio at all is an error, and the listed
    clips without audio are dropped with one :class:`DatasetWarning` naming them.

    Parameters
    ----------
    found : sequence
        Per listed clip, the audio file found, or ``None`` (or NaN) when there is none.
    names : sequence of str
        Per listed clip, how the warning names it (clip id, or the path the user listed).
    none_found : str
        Message of the error raised when no listed clip has audio.
    skipped : callable
        ``skipped(count)`` starts the warning (the adapter's wording, e.g. ``"esc50: 3
        clip(s) listed in ... have no audio file and are skipped"``); the names follow.
    folds : sequence of int, optional
        Per listed clip, its fold. A clip of a fold with no audio at all is dropped without
        being named: the whole fold is absent, which the adapter reports as a partial copy.

    Returns
    -------
    np.ndarray
        Boolean mask of the clips to keep, one per listed clip.

    Raises
    ------
    DatasetError
        ``none_found``, when no listed clip has an audio file.
    """
    present = np.asarray(pd.notna(np.asarray(found, dtype=object)), dtype=bool)
    if not present.any():
        raise DatasetError(none_found)
    named = ~present
    if folds is not None:
        fold_values = np.asarray(folds)
        named &= np.isin(fold_values, fold_values[present])
    if named.any():
        warn(f"{skipped(int(named.sum()))}: "
             f"{preview(np.asarray(names, dtype=object)[named].tolist())}")
    return present


def audio_check(rows: pd.DataFrame) -> tuple[bool, str]:
    """The ``audio files`` check of a verification report: whether every listed clip has
    its audio file, and the detail line (naming the missing clips).

    Parameters
    ----------
    rows : pandas.DataFrame
        Listed clips: ``clip_id`` and ``path`` (``None`` where the audio is missing).

    Returns
    -------
    (bool, str)
        ``(passed, detail)`` for :meth:`~featurekit.datasets.VerificationReport.add`.
    """
    missing = rows[rows["path"].isna()]
    return missing.empty, (f"{len(rows) - len(missing)} of {len(rows)} listed clips found"
                           + (f"; missing: {preview(missing['clip_id'].tolist())}"
                              if len(missing) else ""))


def assign_folds(keys: Sequence[str], labels: Sequence[str], *, n_folds: int = 5,
                 groups: Sequence[str] | None = None) -> np.ndarray:
    """Deterministic, label-stratified fold assignment for datasets without official folds.

    Clips are dealt in units: each group (a source recording) whole, else each clip. A unit
    belongs to the label most of its clips have (the first in sorted order on a tie). Within
    each label the units are ordered by size, largest first, then by the SHA-1 of their key,
    and each goes to the fold holding the fewest clips of that label so far (the lowest such
    fold on a tie). Without groups this deals each label's clips to folds ``1..n_folds`` in
    turn, so every fold gets an equal share (±1) of each label; with groups the shares are
    as equal as whole recordings allow. The result depends only on the keys, labels and
    groups, not on file-system order, machine or random state.

    Parameters
    ----------
    keys : sequence of str
        Stable identifier per clip (e.g. the path relative to the dataset root).
    labels : sequence of str
        Label per clip, same length.
    n_folds : int, keyword-only
        Number of folds.
    groups : sequence of str, keyword-only, optional
        Source recording per clip, same length: a recording's clips share a fold (clips of
        one recording in training and test would score what the model has heard). Default:
        every clip on its own, in which case clips of one recording may land in different
        folds.

    Returns
    -------
    np.ndarray
        int64 folds in ``1..n_folds``, shape ``(len(keys),)``.
    """
    if len(keys) != len(labels):
        raise ValueError(f"keys and labels differ in length: {len(keys)} != {len(labels)}")
    if groups is not None and len(groups) != len(keys):
        raise ValueError(f"keys and groups differ in length: {len(keys)} != {len(groups)}")
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    members: dict[str, list[int]] = {}
    for index, group in enumerate(keys if groups is None else groups):
        members.setdefault(str(group), []).append(index)
    label_of: dict[str, str] = {}
    for group, indices in members.items():
        counts = Counter(str(labels[i]) for i in indices)
        label_of[group] = min(counts, key=lambda label: (-counts[label], label))
    order = sorted(members, key=lambda group: (
        label_of[group], -len(members[group]),
        hashlib.sha1(group.encode("utf-8")).hexdigest(), group))
    folds = np.zeros(len(keys), dtype=np.int64)
    per_label: dict[str, np.ndarray] = {}
    for group in order:
        counts = per_label.setdefault(label_of[group], np.zeros(n_folds, dtype=np.int64))
        fold = int(np.argmin(counts))  # the first of the least filled folds
        folds[members[group]] = fold + 1
        counts[fold] += len(members[group])
    return folds


def refuse_split_recordings(recordings: Sequence[str], folds: Sequence[int],
                            source: Path) -> None:
    """Raise a DatasetError naming the recordings whose clips lie in more than one fold.

    Clips of one recording share its source, background and microphone: one in a test fold
    and another in training would score what the model has heard, and nothing would say so.

    Parameters
    ----------
    recordings : sequence of str
        Source recording per clip.
    folds : sequence of int
        Fold per clip, same length.
    source : Path
        The file that says so, named in the message.
    """
    spread = pd.DataFrame({"recording": np.asarray(recordings, dtype=str),
                           "fold": np.asarray(folds, dtype=np.int64)}
                          ).groupby("recording", sort=True)["fold"].unique()
    split = spread[spread.map(len) > 1]
    if len(split):
        named = [f"{recording} (folds {', '.join(str(f) for f in sorted(found))})"
                 for recording, found in split.items()]
        raise DatasetError(f"{source}: recording(s) in more than one fold: {preview(named)}; "
                           "a recording's clips must share a fold, or the test fold holds "
                           "clips of recordings the model was trained on")


_UNSAFE_NAME_CHARS = re.compile(r"[^a-z0-9_.-]+")


def dataset_name(explicit: str | None, derived_from: str, reserved: Iterable[str]) -> str:
    """Validated dataset name: ``explicit``, else ``derived_from`` made file-name safe.

    Names become directory names in feature stores, so they are lower-case letters, digits,
    ``_``, ``.`` and ``-``; the official dataset names are reserved.
    """
    if explicit is not None:
        name = explicit
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
            raise DatasetError(f"dataset name {name!r} must be lower-case letters, digits, "
                               "'_', '.' or '-'")
    else:
        name = _UNSAFE_NAME_CHARS.sub("_", derived_from.lower()).strip("_.-") or "dataset"
    if name in set(reserved):
        raise DatasetError(f"dataset name {name!r} is reserved for the official dataset; "
                           "pass another name (dataset_name=...)")
    return name


def clips_frame(clip_ids: Sequence[str], paths: Sequence[str], labels: Sequence[str],
                label_ids: Sequence[int], folds: Sequence[int],
                extras: pd.DataFrame | None = None,
                recordings: Sequence[str] | None = None) -> pd.DataFrame:
    """Assemble a clips table with the standard columns and dtypes, sorted by fold, clip.

    ``recording`` names the source recording of each clip (the clip itself when unknown).
    """
    table = pd.DataFrame({
        "clip_id": pd.Series(clip_ids, dtype=str).to_numpy(),
        "path": pd.Series(paths, dtype=str).to_numpy(),
        "label": pd.Series(labels, dtype=str).to_numpy(),
        "label_id": np.asarray(label_ids, dtype=np.int64),
        "fold": np.asarray(folds, dtype=np.int64),
        "recording": pd.Series(clip_ids if recordings is None else recordings,
                               dtype=str).to_numpy(),
    })
    if extras is not None:
        for column in extras.columns:
            table[column] = extras[column].to_numpy()
    table = table.astype({"clip_id": str, "path": str, "label": str, "recording": str})
    return table.sort_values(["fold", "clip_id"], kind="stable").reset_index(drop=True)
