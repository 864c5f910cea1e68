"""Adapter for the official datasets described by a manifest (UrbanSound8K, ESC-50, ESC-10).

The clips come from the dataset's own metadata file; the manifest says where that file and
the audio are, which columns hold what, and what a complete copy contains.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from featurekit.datasets.base import (
    AudioFinder,
    Dataset,
    clips_frame,
    confined_path,
    drop_missing_audio,
    int_column,
    preview,
    read_csv_text,
    refuse_duplicates,
    warn,
)
from featurekit.datasets.manifest import DatasetManifest
from featurekit.errors import DatasetError

__all__ = ["MetadataScan", "find_root", "load_official", "scan_official"]


def find_root(manifest: DatasetManifest, data_dir: str | os.PathLike[str]) -> Path:
    """The dataset root inside ``data_dir``: the directory holding the metadata file.

    ``data_dir`` may be that directory itself or its parent (e.g. the directory containing
    ``UrbanSound8K/``).

    Raises
    ------
    DatasetError
        Listing the places looked at.
    """
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DatasetError(f"{manifest.name}: data directory {data_dir} does not exist")
    candidates = [data_dir, *(data_dir / name for name in manifest.layout.root_dirs)]
    for candidate in candidates:
        if (candidate / manifest.layout.metadata).is_file():
            return Path(os.path.abspath(candidate))
    looked = ", ".join(str(candidate / manifest.layout.metadata) for candidate in candidates)
    raise DatasetError(f"{manifest.name}: no copy found in {data_dir} (looked for {looked}); "
                       f"run `featurekit datasets download {manifest.name} --data-dir "
                       f"{data_dir}` or point --data-dir at the dataset")


@dataclass(frozen=True)
class MetadataScan:
    """Every metadata row of a dataset, validated, with the audio file found for it.

    Attributes
    ----------
    root : Path
        Dataset root.
    metadata_path : Path
        Metadata file read.
    rows : pandas.DataFrame
        Standard clip columns; ``path`` is ``None`` where no audio file was found;
        ``expected_path`` is the path the metadata names.
    """

    root: Path
    metadata_path: Path
    rows: pd.DataFrame


def _typed(values: pd.Series) -> pd.Series:
    """Metadata extras with their natural type: bool, number, else text."""
    stripped = values.str.strip()
    if stripped.isin(["True", "False"]).all():
        return stripped == "True"
    numbers = pd.to_numeric(stripped, errors="coerce")
    return values if numbers.isna().any() else numbers


def scan_official(manifest: DatasetManifest, data_dir: str | os.PathLike[str]) -> MetadataScan:
    """Read and validate the metadata of an official dataset and match its audio files.

    Raises
    ------
    DatasetError
        For a missing or malformed metadata file, folds or labels that contradict the
        manifest, duplicate clip ids, or paths leaving the data directory.
    """
    layout = manifest.layout
    root = find_root(manifest, data_dir)
    source = root / layout.metadata
    table = read_csv_text(source, layout.columns)
    if manifest.row_filter is not None:
        column, value = manifest.row_filter
        table = table[table[column].str.strip().str.lower() == value.lower()]
        if table.empty:
            raise DatasetError(f"metadata file {source} has no rows with {column} == {value} "
                               f"(the {manifest.name} subset)")
    table = table.reset_index(drop=True)

    folds = int_column(table[layout.fold_column], layout.fold_column, source)
    unknown_folds = sorted(set(folds.tolist()) - set(manifest.folds))
    if unknown_folds:
        raise DatasetError(f"metadata file {source}: fold(s) {unknown_folds} are not official "
                           f"{manifest.name} folds {list(manifest.folds)}")

    labels = table[layout.label_column].str.strip()
    position = {name: index for index, name in enumerate(manifest.classes)}
    unknown_labels = sorted(set(labels) - set(position))
    if unknown_labels:
        raise DatasetError(f"metadata file {source}: unknown {manifest.name} class(es) "
                           f"{preview(unknown_labels)} in column {layout.label_column!r}")
    label_ids = labels.map(position).to_numpy(dtype=np.int64)
    official = int_column(table[layout.label_id_column], layout.label_id_column, source)
    contradicting = official != np.asarray(manifest.official_ids)[label_ids]
    if contradicting.any():
        examples = [f"{table[layout.file_column].iloc[i]} ({labels.iloc[i]} = "
                    f"{official[i]})" for i in np.flatnonzero(contradicting)]
        raise DatasetError(f"metadata file {source}: {layout.label_id_column} contradicts the "
                           f"official id of {layout.label_column} in {preview(examples)}")

    file_names = table[layout.file_column].str.strip()
    clip_ids = file_names.map(lambda name: os.path.splitext(os.path.basename(name))[0])
    refuse_duplicates(clip_ids, source)

    finder = AudioFinder()
    expected: list[str] = []
    found: list[str | None] = []
    for record in table.assign(**{layout.file_column: file_names}).to_dict("records"):
        confined_path(root, record[layout.file_column], source)  # the name alone must be safe
        expected_path = confined_path(root, layout.audio_path.format(**record), source)
        match = finder.find(expected_path)
        expected.append(str(expected_path))
        found.append(None if match is None else str(match))

    extras = pd.DataFrame({column: _typed(table[column]) for column in layout.extra_columns})
    recordings = (None if layout.recording_column is None
                  else table[layout.recording_column].astype(str).str.strip().to_numpy())
    rows = clips_frame(clip_ids, [path or "" for path in found], labels, label_ids, folds,
                       extras.assign(expected_path=expected), recordings=recordings)
    rows["path"] = rows["path"].where(rows["path"] != "", None)
    return MetadataScan(root=root, metadata_path=source, rows=rows)


def load_official(manifest: DatasetManifest, data_dir: str | os.PathLike[str]) -> Dataset:
    """Load an official dataset; a partial copy is accepted with one warning.

    Rows whose fold has no audio at all count as a missing part of a partial copy; rows
    missing audio inside a fold that is present are dropped with one warning naming them.

    Raises
    ------
    DatasetError
        See :func:`scan_official`; also when no audio file at all is found.
    """
    scan = scan_official(manifest, data_dir)
    rows = scan.rows
    keep = drop_missing_audio(
        rows["path"], rows["clip_id"], folds=rows["fold"],
        none_found=f"{manifest.name}: none of the {len(rows)} clips listed in "
                   f"{scan.metadata_path} has an audio file (e.g. "
                   f"{rows['expected_path'].iloc[0]} or the same name with another audio "
                   "extension)",
        skipped=lambda count: f"{manifest.name}: {count} clip(s) listed in "
                              f"{scan.metadata_path} have no audio file and are skipped")
    clips = rows[keep].drop(columns="expected_path").reset_index(drop=True)
    dataset = Dataset(name=manifest.name, clips=clips, classes=list(manifest.classes),
                      expected_folds=list(manifest.folds), root=scan.root,
                      protocol=manifest.protocol)
    if len(clips) != manifest.expected_clips or dataset.missing_folds:
        warn(f"{manifest.name}: partial copy in {scan.root}: {len(clips)} of "
             f"{manifest.expected_clips} clips, folds {dataset.folds} of "
             f"{list(manifest.folds)} present; evaluate on the present folds only")
    return dataset
