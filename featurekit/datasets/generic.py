"""Adapters for user datasets: a folder with one sub-folder per label, or a CSV manifest.

Without folds, clips are dealt to 5 folds by :func:`~featurekit.datasets.base.assign_folds`
(deterministic and stratified by label; never a random split) with a warning, because
recording-aware folds are better when the user has them. An optional ``recording`` column
names each clip's source recording: assigned folds keep a recording whole, given folds that
split one are refused, and the benchmark's inner splits and intervals treat a recording's
clips as one unit, as they do the official datasets'.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from featurekit.datasets.base import (
    AUDIO_EXTENSIONS,
    LABEL_SEPARATOR,
    AudioFinder,
    Dataset,
    assign_folds,
    clips_frame,
    dataset_name,
    drop_missing_audio,
    int_column,
    parse_label_sets,
    preview,
    read_csv_text,
    refuse_duplicates,
    refuse_split_recordings,
    warn,
)
from featurekit.errors import DatasetError

__all__ = ["ASSIGNED_FOLDS", "FOLDS_FILE", "RECORDING_COLUMN", "find_csv", "load_csv",
           "load_folder"]

#: Number of folds assigned when a folder/CSV dataset gives none.
ASSIGNED_FOLDS = 5
#: Name of the optional folds file read from a folder dataset's root.
FOLDS_FILE = "folds.csv"
#: Optional column of a CSV dataset or a ``folds.csv``: each clip's source recording.
RECORDING_COLUMN = "recording"


def _strip_audio_suffix(relative: str) -> str:
    stem, ext = os.path.splitext(relative)
    return stem if ext.lower() in AUDIO_EXTENSIONS else relative


def _finish(name: str, root: Path, clip_ids: list[str], paths: list[str], labels: list[str],
            folds: np.ndarray | None, source: str, *, multilabel: bool = False,
            recordings: list[str] | None = None) -> Dataset:
    """The Dataset of a user's clips; ``labels`` of a multi-label dataset are comma-joined
    label sets (classes: their union; ``label_id``: the first label's class); ``recordings``
    name each clip's source (default: the clip itself)."""
    firsts = [label.split(LABEL_SEPARATOR)[0] for label in labels] if multilabel else labels
    classes = sorted({part for label in labels for part in label.split(LABEL_SEPARATOR)}
                     if multilabel else set(labels))
    position = {label: index for index, label in enumerate(classes)}
    if folds is None:
        folds = assign_folds(clip_ids, labels, n_folds=ASSIGNED_FOLDS, groups=recordings)
        if recordings is None:
            warn(f"{name}: {source} gives no folds; assigned {ASSIGNED_FOLDS} folds by a hash "
                 "of each clip's path, stratified by label (deterministic). Official or "
                 "recording-aware folds are preferred: clips of one recording should share a "
                 f"fold (add a {RECORDING_COLUMN} column)")
        else:
            warn(f"{name}: {source} gives no folds; assigned {ASSIGNED_FOLDS} folds by "
                 f"{RECORDING_COLUMN}, each recording whole, stratified by label "
                 "(deterministic)")
        expected = list(range(1, ASSIGNED_FOLDS + 1))
    else:
        expected = sorted(set(folds.tolist()))
    clips = clips_frame(clip_ids, paths, labels, [position[label] for label in firsts], folds,
                        recordings=recordings)
    return Dataset(name=name, clips=clips, classes=classes, expected_folds=expected, root=root,
                   multilabel=multilabel)


def _recordings(table: pd.DataFrame, source: Path) -> pd.Series | None:
    """The optional :data:`RECORDING_COLUMN` of a metadata table, stripped.

    Raises
    ------
    DatasetError
        A blank value (naming the CSV line numbers): a clip's recording is left unsaid.
    """
    if RECORDING_COLUMN not in table.columns:
        return None
    values = table[RECORDING_COLUMN].str.strip()
    blank = np.flatnonzero((values == "").to_numpy())
    if len(blank):  # header is line 1
        raise DatasetError(f"metadata file {source}: empty {RECORDING_COLUMN} on line(s) "
                           f"{preview((blank + 2).tolist())}; name the source recording of "
                           "every clip (a clip cut from no longer recording is its own)")
    return values


def _read_folds_file(path: Path, clip_ids: Iterable[str]
                     ) -> tuple[np.ndarray | None, list[str] | None]:
    """Folds and source recordings of ``clip_ids`` from a CSV with columns ``path`` (relative
    to the root) and ``fold`` and/or :data:`RECORDING_COLUMN` (None for a column it lacks).

    Raises
    ------
    DatasetError
        Neither column, a clip not listed, a fold that is not a positive integer, a blank
        recording, or a recording in more than one fold.
    """
    table = read_csv_text(path, ["path"])
    if "fold" not in table.columns and RECORDING_COLUMN not in table.columns:
        raise DatasetError(f"metadata file {path} needs a fold or a {RECORDING_COLUMN} column "
                           f"beside path (found: {', '.join(table.columns)})")
    keys = table["path"].str.strip().str.replace("\\", "/").map(_strip_audio_suffix)
    refuse_duplicates(keys, path)
    listed = pd.DataFrame(index=keys.to_numpy())
    if "fold" in table.columns:
        listed["fold"] = int_column(table["fold"], "fold", path)
    recordings = _recordings(table, path)
    if recordings is not None:
        listed[RECORDING_COLUMN] = recordings.to_numpy()
    clip_ids = list(clip_ids)
    unlisted = [clip_id for clip_id in clip_ids if clip_id not in listed.index]
    if unlisted:
        raise DatasetError(f"{path}: no {listed.columns[0]} for {preview(unlisted)}; list "
                           "every audio file")
    stale = sorted(set(listed.index) - set(clip_ids))
    if stale:
        warn(f"{path}: {len(stale)} listed file(s) not found, ignored: {preview(stale)}")
    rows = listed.loc[clip_ids]
    folds = rows["fold"].to_numpy(dtype=np.int64) if "fold" in rows.columns else None
    if folds is not None and (folds < 1).any():
        raise DatasetError(f"{path}: folds must be positive integers")
    found = (rows[RECORDING_COLUMN].tolist() if RECORDING_COLUMN in rows.columns else None)
    if folds is not None and found is not None:
        refuse_split_recordings(found, folds, path)
    return folds, found


def load_folder(root: str | os.PathLike[str], *, name: str | None = None,
                folds_csv: str | os.PathLike[str] | None = None,
                reserved: Iterable[str] = ()) -> Dataset:
    """A dataset laid out as ``ROOT/<label>/**/<clip>.<audio extension>``.

    Parameters
    ----------
    root : path-like
        Directory with one sub-folder per label (hidden entries are ignored).
    name : str, keyword-only, optional
        Dataset name; defaults to the directory name.
    folds_csv : path-like, keyword-only, optional
        CSV with columns ``path`` (relative to ``root``, extension optional) and ``fold``
        and/or ``recording`` (each clip's source recording; a recording in two folds is
        refused). Defaults to ``ROOT/folds.csv`` when it exists; without folds, folds are
        assigned (see :func:`~featurekit.datasets.base.assign_folds`, each recording whole)
        with a warning.
    reserved : iterable of str, keyword-only
        Names the dataset may not take (the official dataset names).

    Returns
    -------
    Dataset
        ``clip_id`` is the path relative to ``root`` without its extension
        (e.g. ``dog/bark_01``); classes are the sub-folder names, sorted.
    """
    root = Path(os.path.abspath(Path(root).expanduser()))
    if not root.is_dir():
        raise DatasetError(f"folder dataset {root} is not a directory")
    clip_ids: list[str] = []
    paths: list[str] = []
    labels: list[str] = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()
                            and not p.name.startswith(".")):
        for directory, subdirs, files in os.walk(label_dir):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for file_name in sorted(files):
                if file_name.startswith(".") or \
                        os.path.splitext(file_name)[1].lower() not in AUDIO_EXTENSIONS:
                    continue
                path = Path(directory) / file_name
                clip_ids.append(_strip_audio_suffix(path.relative_to(root).as_posix()))
                paths.append(str(path))
                labels.append(label_dir.name)
    if not clip_ids:
        raise DatasetError(f"folder dataset {root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) "
                           "in its sub-folders; expected ROOT/<label>/<clip>.wav")
    refuse_duplicates(pd.Series(clip_ids), root)
    if folds_csv is None and (root / FOLDS_FILE).is_file():
        folds_csv = root / FOLDS_FILE
    folds, recordings = ((None, None) if folds_csv is None
                         else _read_folds_file(Path(folds_csv), clip_ids))
    return _finish(dataset_name(name, root.name, reserved), root, clip_ids, paths, labels,
                   folds, str(root), recordings=recordings)


def find_csv(path: str | os.PathLike[str]) -> Path:
    """The CSV that ``path`` names: the file itself, or the one CSV in a folder.

    Raises
    ------
    DatasetError
        ``path`` does not exist, or is a folder holding no CSV or several (the message lists
        them).
    """
    path = Path(os.path.abspath(Path(path).expanduser()))
    if path.is_file():
        return path
    expected = ("expected a CSV file with columns path,label[,fold][,clip_id][,recording], or "
                "a folder holding exactly one such CSV")
    if not path.is_dir():
        raise DatasetError(f"{path} does not exist; {expected}")
    found = sorted(entry for entry in path.iterdir() if entry.is_file()
                   and entry.suffix.lower() == ".csv" and not entry.name.startswith("."))
    if len(found) != 1:
        listed = f": {preview([entry.name for entry in found])}" if found else ""
        raise DatasetError(f"folder {path} holds {len(found)} CSV files{listed}; {expected} "
                           "(name the file itself to choose)")
    return found[0]


def _listed_path(root: Path, text: str) -> Path:
    """A CSV row's file: absolute, or relative to the CSV's folder (``~`` expanded).

    The user wrote the list, so it may point anywhere (unlike official metadata, whose paths
    are confined to the download; see :func:`~featurekit.datasets.base.confined_path`).
    """
    return Path(os.path.normpath(os.path.join(root, os.path.expanduser(text))))


def _default_clip_id(root: Path, path: Path) -> str:
    """The path without its audio extension: relative to ``root`` when inside it (the same
    id whether the CSV names the file absolutely or not), else absolute, in ``/`` form."""
    try:
        key = path.relative_to(root).as_posix()
    except ValueError:
        key = path.as_posix()
    return _strip_audio_suffix(key)


def load_csv(csv_path: str | os.PathLike[str], *, name: str | None = None,
             reserved: Iterable[str] = ()) -> Dataset:
    """A dataset listed in a CSV with columns ``path,label`` and optional ``fold``, ``clip_id``,
    ``recording``.

    Paths are absolute or relative to the CSV's folder; audio is matched by file stem when
    the extension differs. Rows without an audio file are dropped with one warning. A
    ``labels`` column instead of ``label`` makes a multi-label dataset: each value is the
    clip's comma-separated labels (quoted in the CSV), e.g. ``"dog_bark,siren"``. A
    ``recording`` column names each clip's source recording: a recording in two folds is
    refused, assigned folds keep each recording whole, and the benchmark's inner splits and
    intervals keep a recording's clips together.

    Parameters
    ----------
    csv_path : path-like
        The CSV file, or a folder holding exactly one CSV (see :func:`find_csv`).
    name : str, keyword-only, optional
        Dataset name; defaults to the CSV's file stem.
    reserved : iterable of str, keyword-only
        Names the dataset may not take (the official dataset names).

    Returns
    -------
    Dataset
        ``clip_id`` from the ``clip_id`` column, else the path without extension (relative to
        the CSV's folder when inside it); classes are the labels, sorted; ``recording`` from
        the ``recording`` column, else the clip id. Without a ``fold`` column folds are
        assigned with a warning.

    Raises
    ------
    DatasetError
        Malformed CSV, empty values, duplicate clip ids, no audio at all, or a recording
        in more than one fold (naming them).
    """
    csv_path = find_csv(csv_path)
    table = read_csv_text(csv_path, ["path"])
    multilabel = "labels" in table.columns
    if multilabel == ("label" in table.columns):
        raise DatasetError(f"metadata file {csv_path} needs exactly one of the columns label "
                           "(one class per clip) and labels (comma-separated label sets); "
                           f"found: {', '.join(table.columns)}")
    root = csv_path.parent
    listed = table["path"].str.strip().str.replace("\\", "/")
    labels = (pd.Series([LABEL_SEPARATOR.join(names) for names in
                         parse_label_sets(table["labels"], csv_path)], index=table.index)
              if multilabel else table["label"].str.strip())
    empty = np.flatnonzero((listed == "").to_numpy() | (labels == "").to_numpy())
    if len(empty):  # report CSV line numbers: header is line 1
        raise DatasetError(f"metadata file {csv_path}: empty path or label on line(s) "
                           f"{preview((empty + 2).tolist())}")
    recordings = _recordings(table, csv_path)
    paths = [_listed_path(root, text) for text in listed]
    clip_ids = (table["clip_id"].str.strip() if "clip_id" in table.columns
                else pd.Series([_default_clip_id(root, path) for path in paths]))
    refuse_duplicates(clip_ids, csv_path)
    finder = AudioFinder()
    found = [finder.find(path) for path in paths]
    # the user's own spelling of a missing path says best which line of the CSV to fix
    present = drop_missing_audio(
        found, listed,
        none_found=f"metadata file {csv_path}: none of the {len(table)} listed files exists "
                   f"(e.g. {paths[0]})",
        skipped=lambda count: f"{csv_path}: {count} listed file(s) not found, skipped")
    folds = (int_column(table["fold"], "fold", csv_path)[present]
             if "fold" in table.columns else None)
    if folds is not None and (folds < 1).any():
        raise DatasetError(f"metadata file {csv_path}: folds must be positive integers")
    if recordings is not None:
        recordings = recordings[present]
        if folds is not None:
            refuse_split_recordings(recordings.tolist(), folds, csv_path)
    return _finish(dataset_name(name, csv_path.stem, reserved), root,
                   clip_ids[present].tolist(), [str(p) for p in found if p is not None],
                   labels[present].tolist(), folds, str(csv_path), multilabel=multilabel,
                   recordings=None if recordings is None else recordings.tolist())
