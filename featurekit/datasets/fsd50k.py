"""Adapter for FSD50K (Fonseca et al., 2022) in its official layout.

::

    ROOT/FSD50K.dev_audio/<fname>.wav
    ROOT/FSD50K.eval_audio/<fname>.wav
    ROOT/FSD50K.ground_truth/dev.csv         fname,labels,mids,split   (split: train | val)
    ROOT/FSD50K.ground_truth/eval.csv        fname,labels,mids
    ROOT/FSD50K.ground_truth/vocabulary.csv  index,label,mid           (no header)
    ROOT/FSD50K.metadata/dev_clips_info_FSD50K.json    {fname: {..., "uploader": NAME}}
    ROOT/FSD50K.metadata/eval_clips_info_FSD50K.json   (both optional)

``labels`` is a clip's comma-separated label set (its leaf labels and their ancestors). The
official protocol is one split: train on ``train``, early stopping and every choice on
``val``, the ``eval`` set scored once; here folds 1, 2 and 3 (see
:func:`featurekit.benchmark.plan.official_split`). A Freesound user's uploads are often takes
of one session or source, so with the clip metadata each clip's ``recording`` (the group the
splits inside a set keep whole and the intervals resample) is its uploader; without it, each
clip stands alone.

:func:`download_fsd50k` fetches the Zenodo record (10.5281/zenodo.4060432): its file list with
each file's MD5 and size comes from the record's API, every part is downloaded with resume and
checked, and the split archives (``.z01``, ``.z02``, ..., ``.zip``) are read in place
(:mod:`featurekit.io.splitzip`) and extracted safely.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from featurekit.datasets.base import (
    LABEL_SEPARATOR,
    AudioFinder,
    Dataset,
    audio_check,
    clips_frame,
    drop_missing_audio,
    parse_label_sets,
    preview,
    read_csv_text,
    refuse_duplicates,
    warn,
)
from featurekit.datasets.verify import VerificationReport, default_data_dir
from featurekit.errors import DatasetError, DownloadError
from featurekit.io.download import download_file, extract_archive
from featurekit.names import FSD50K, TRAIN_VAL_EVAL

__all__ = ["FSD50K_CLIPS", "ZENODO_RECORD", "RemoteFile", "download_fsd50k",
           "find_fsd50k_root", "load_fsd50k", "record_files", "verify_fsd50k"]

#: Clips of the complete release: 40,966 dev (train + val) and 10,231 eval.
FSD50K_CLIPS = {"dev": 40966, "eval": 10231}
GROUND_TRUTH = "FSD50K.ground_truth"
AUDIO_DIRS = {"dev": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}
#: Fold of each official subset (:data:`~featurekit.benchmark.plan.TRAIN_FOLD` ...).
SPLIT_FOLDS = {"train": 1, "val": 2, "eval": 3}
#: Classes of the complete vocabulary.
FSD50K_CLASSES = 200
#: The Zenodo record's API address (its file list carries each file's size and MD5).
ZENODO_RECORD = "https://zenodo.org/api/records/4060432"
#: Each subset's clip metadata (``FSD50K.metadata``, an archive of its own): the uploader.
CLIPS_INFO = {subset: f"FSD50K.metadata/{subset}_clips_info_FSD50K.json"
              for subset in ("dev", "eval")}
#: Archives needed (each ``NAME.zip``, with ``NAME.z01`` ... when split); the record's
#: documentation archive is not.
ARCHIVES = (GROUND_TRUTH, "FSD50K.metadata", AUDIO_DIRS["dev"], AUDIO_DIRS["eval"])
#: Folder of ``data_dir`` the archives are downloaded into.
ARCHIVE_DIR = "FSD50K.archives"


def find_fsd50k_root(data_dir: str | os.PathLike[str]) -> Path:
    """The directory holding ``FSD50K.ground_truth/``: ``data_dir`` or ``data_dir/FSD50K``.

    Raises
    ------
    DatasetError
        Naming the places looked at.
    """
    data_dir = Path(data_dir).expanduser()
    candidates = [data_dir, data_dir / "FSD50K"]
    for candidate in candidates:
        if (candidate / GROUND_TRUTH / "dev.csv").is_file():
            return Path(os.path.abspath(candidate))
    looked = ", ".join(str(candidate / GROUND_TRUTH / "dev.csv") for candidate in candidates)
    raise DatasetError(f"fsd50k: no copy found in {data_dir} (looked for {looked})")


def _vocabulary(path: Path) -> list[str]:
    """Class names in ``index`` order from the header-less ``vocabulary.csv``."""
    table = read_csv_text(path, (), header=False)
    if table.shape[1] != 3:
        raise DatasetError(f"metadata file {path} must have three columns index,label,mid "
                           f"and no header; found {table.shape[1]} column(s)")
    index = pd.to_numeric(table[0].str.strip(), errors="coerce")
    if index.isna().any() or sorted(index.astype(int)) != list(range(len(table))):
        raise DatasetError(f"metadata file {path}: the first column must number the classes "
                           f"0..{len(table) - 1} (a header line is not expected)")
    names = table[1].str.strip().to_numpy()[np.argsort(index.to_numpy())].tolist()
    bad = [name for name in names if not name or LABEL_SEPARATOR in name]
    if bad or len(set(names)) != len(names):
        raise DatasetError(f"metadata file {path}: class names must be distinct, non-empty "
                           f"and free of commas")
    return names


def _uploaders(root: Path, subset: str, clip_ids: pd.Series) -> list[str]:
    """Each clip's group: ``uploader:NAME`` from the subset's clip metadata, else (no metadata
    file, or a clip it does not list) its fname, the clip alone.

    Raises
    ------
    DatasetError
        The metadata file is not a JSON object of clip entries.
    """
    path = root / CLIPS_INFO[subset]
    record: dict = {}
    listed = path.is_file()
    if listed:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"metadata file {path}: not readable JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise DatasetError(f"metadata file {path}: expected an object mapping each fname "
                               f"to its clip info, found {type(record).__name__}")
    groups = []
    for clip in clip_ids:
        info = record.get(clip)
        uploader = info.get("uploader") if isinstance(info, dict) else None
        uploader = uploader.strip() if isinstance(uploader, str) else ""
        groups.append(f"uploader:{uploader}" if uploader else clip)
    if listed:
        alone = sum(not group.startswith("uploader:") for group in groups)
        if alone:
            warn(f"fsd50k: {alone} of {len(groups)} {subset} clip(s) have no uploader in "
                 f"{path}; each is its own group")
    return groups


def _subset(root: Path, subset: str, classes: list[str]) -> pd.DataFrame:
    """Rows of ``dev.csv`` or ``eval.csv``, validated, with their audio found (or None)."""
    source = root / GROUND_TRUTH / f"{subset}.csv"
    columns = ["fname", "labels", "mids"] + (["split"] if subset == "dev" else [])
    table = read_csv_text(source, columns)
    if subset == "dev":
        split = table["split"].str.strip().str.lower()
        unknown = sorted(set(split) - {"train", "val"})
        if unknown:
            raise DatasetError(f"metadata file {source}: column 'split' must be train or val; "
                               f"found {preview(unknown)}")
    else:
        split = pd.Series("eval", index=table.index)
    label_sets = parse_label_sets(table["labels"], source)
    known = set(classes)
    unknown_labels = sorted({name for labels in label_sets for name in labels} - known)
    if unknown_labels:
        raise DatasetError(f"metadata file {source}: label(s) {preview(unknown_labels)} are "
                           f"not in {GROUND_TRUTH}/vocabulary.csv")
    clip_ids = table["fname"].str.strip()
    bad_names = clip_ids[(clip_ids == "") | clip_ids.str.contains(r"[/\\]|^\.\.?$")]
    if len(bad_names):
        raise DatasetError(f"metadata file {source}: bad fname(s) {preview(bad_names)}")
    finder = AudioFinder()
    audio_dir = root / AUDIO_DIRS[subset]
    found = [finder.find(audio_dir / f"{name}.wav") for name in clip_ids]
    return pd.DataFrame({"clip_id": clip_ids.to_numpy(),
                         "path": [None if path is None else str(path) for path in found],
                         "label": [LABEL_SEPARATOR.join(labels) for labels in label_sets],
                         "first": [labels[0] for labels in label_sets],
                         "fold": split.map(SPLIT_FOLDS).to_numpy(dtype=np.int64),
                         "subset": subset,
                         "recording": _uploaders(root, subset, clip_ids)})


def _scan(data_dir: str | os.PathLike[str]) -> tuple[Path, list[str], pd.DataFrame]:
    """Root, classes and every listed clip (``path`` None where the audio is missing)."""
    root = find_fsd50k_root(data_dir)
    classes = _vocabulary(root / GROUND_TRUTH / "vocabulary.csv")
    rows = pd.concat([_subset(root, "dev", classes), _subset(root, "eval", classes)],
                     ignore_index=True)
    refuse_duplicates(rows["clip_id"], root / GROUND_TRUTH)
    return root, classes, rows


def load_fsd50k(data_dir: str | os.PathLike[str]) -> Dataset:
    """Load FSD50K from its official layout; a partial copy is accepted with a warning.

    Parameters
    ----------
    data_dir : path-like
        The directory holding ``FSD50K.ground_truth/`` (or its parent, holding ``FSD50K/``).

    Returns
    -------
    Dataset
        ``multilabel=True``, protocol ``train-val-eval``: fold 1 = ``train``, 2 = ``val``,
        3 = ``eval``; classes in vocabulary order; ``label`` is the clip's label set as
        ``dev.csv``/``eval.csv`` list it; ``subset`` (``dev``/``eval``) is kept;
        ``recording`` is the clip's uploader (``uploader:NAME``) where ``FSD50K.metadata``
        lists one, else the clip's own fname.

    Warns
    -----
    DatasetWarning
        Listed clips without audio (skipped); fewer clips than the complete release; clips
        the clip metadata lists without an uploader.

    Raises
    ------
    DatasetError
        Missing or malformed metadata, a label outside the vocabulary, an empty label set,
        duplicate clip ids, no audio at all.
    """
    root, classes, rows = _scan(data_dir)
    rows = rows[drop_missing_audio(
        rows["path"], rows["clip_id"],
        none_found=f"fsd50k: none of the {len(rows)} listed clips has an audio file in "
                   f"{root / AUDIO_DIRS['dev']} or {root / AUDIO_DIRS['eval']}",
        skipped=lambda count: f"fsd50k: {count} listed clip(s) have no audio file and are "
                              "skipped")]
    position = {name: index for index, name in enumerate(classes)}
    clips = clips_frame(rows["clip_id"].tolist(), rows["path"].tolist(), rows["label"].tolist(),
                        rows["first"].map(position).tolist(), rows["fold"].to_numpy(),
                        extras=rows[["subset"]].reset_index(drop=True),
                        recordings=rows["recording"].tolist())
    complete = sum(FSD50K_CLIPS.values())
    if len(clips) != complete:
        counts = clips["fold"].value_counts().to_dict()
        warn(f"fsd50k: partial copy in {root}: {len(clips)} of {complete} clips (train "
             f"{counts.get(1, 0)}, val {counts.get(2, 0)}, eval {counts.get(3, 0)})")
    return Dataset(name=FSD50K, clips=clips, classes=classes, expected_folds=[1, 2, 3],
                   root=root, protocol=TRAIN_VAL_EVAL, multilabel=True)


def verify_fsd50k(data_dir: str | os.PathLike[str]) -> VerificationReport:
    """Compare a copy of FSD50K with the complete release.

    Checks that the ground truth parses (vocabulary, labels, splits), the number of classes,
    the clips listed in ``dev.csv`` and ``eval.csv``, and that every listed clip has its
    audio file; reports how many clips the clip metadata gives an uploader.

    Returns
    -------
    VerificationReport
        Never raises for a mismatch; see :attr:`VerificationReport.ok`.

    Raises
    ------
    DatasetError
        When no copy is found.
    """
    root = find_fsd50k_root(data_dir)
    report = VerificationReport(name=FSD50K, root=root)
    try:
        _, classes, rows = _scan(root)
    except DatasetError as exc:
        report.add("metadata", False, str(exc))
        return report
    report.add("metadata", True, f"{root / GROUND_TRUTH}: vocabulary, labels and splits parse")
    report.add("classes", len(classes) == FSD50K_CLASSES,
               f"{len(classes)} (expected {FSD50K_CLASSES})")
    for subset, expected in FSD50K_CLIPS.items():
        listed = int((rows["subset"] == subset).sum())
        report.add(f"{subset} clips listed", listed == expected,
                   f"{listed} (expected {expected})")
    report.add("audio files", *audio_check(rows))
    # Not a mismatch when absent (copies made before featurekit fetched it lack it): the
    # benchmark still runs, each clip its own group.
    grouped = int(rows["recording"].str.startswith("uploader:").sum())
    missing = [name for name in CLIPS_INFO.values() if not (root / name).is_file()]
    report.add("uploaders", True,
               f"{grouped} of {len(rows)} listed clips"
               + (f"; {', '.join(missing)} absent (in the record's FSD50K.metadata.zip): those "
                  "clips are each their own group" if missing else ""))
    return report


@dataclass(frozen=True)
class RemoteFile:
    """One file of a Zenodo record: name, download URL, size in bytes and MD5 (hex)."""

    name: str
    url: str
    size: int | None
    md5: str | None


def record_files(record_url: str = ZENODO_RECORD, *, timeout: float = 60) -> dict[str, RemoteFile]:
    """The files of a Zenodo record, by name, from its API (``/api/records/<id>``).

    Raises
    ------
    DownloadError
        When the record cannot be fetched or does not list files with download links.
    """
    try:
        with urllib.request.urlopen(record_url, timeout=timeout) as response:
            record = json.loads(response.read().decode("utf-8"))
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise DownloadError(f"{record_url}: cannot read the record's file list: {exc}") from exc
    files: dict[str, RemoteFile] = {}
    for entry in record.get("files") or []:
        try:
            name, url = str(entry["key"]), str(entry["links"]["self"])
        except (KeyError, TypeError):
            raise DownloadError(f"{record_url}: a file entry lacks its key or link: "
                                f"{entry!r}") from None
        checksum = str(entry.get("checksum") or "")
        files[name] = RemoteFile(name=name, url=url, size=entry.get("size"),
                                 md5=checksum[4:] if checksum.startswith("md5:") else None)
    if not files:
        raise DownloadError(f"{record_url}: the record lists no files")
    return files


def _archive_parts(files: dict[str, RemoteFile], archive: str, record_url: str) -> list[str]:
    """``archive.z01``, ``archive.z02``, ... and ``archive.zip`` among the record's files."""
    numbered = sorted((name for name in files
                       if re.fullmatch(rf"{re.escape(archive)}\.z\d\d+", name)),
                      key=lambda name: int(name.rsplit(".z", 1)[1]))
    if f"{archive}.zip" not in files:
        raise DownloadError(f"{record_url}: the record has no {archive}.zip")
    return [*numbered, f"{archive}.zip"]


def download_fsd50k(data_dir: str | os.PathLike[str] | None = None, *,
                    record_url: str = ZENODO_RECORD, progress: bool = True,
                    keep_archives: bool = True) -> Path:
    """Download, extract and verify FSD50K (about 30 GB of archives).

    Nothing is downloaded when a copy is already in ``data_dir``; either way it is verified.
    Each archive part goes to ``DATA_DIR/FSD50K.archives/`` with resume after an interruption
    and is checked against the size and MD5 the record publishes; a split archive is then read
    in place from its parts and extracted with the checks of
    :func:`featurekit.io.download.extract_archive`.

    Parameters
    ----------
    data_dir : path-like, optional
        Where to put it; default :func:`~featurekit.datasets.default_data_dir`.
    record_url : str, keyword-only
        The record's API address (a mirror serving the same JSON works).
    progress : bool, keyword-only
        Show download progress bars.
    keep_archives : bool, keyword-only
        Keep the archives after extraction.

    Returns
    -------
    Path
        The dataset root (pass it, or ``data_dir``, to :func:`featurekit.load_dataset`).

    Raises
    ------
    DownloadError
        Network failure, a size or checksum mismatch, an unsafe or broken archive.
    DatasetError
        When the result is not a complete, consistent FSD50K.
    """
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    try:
        root = find_fsd50k_root(data_dir)
        downloaded = False
    except DatasetError:
        files = record_files(record_url)
        archive_dir = data_dir / ARCHIVE_DIR
        for archive in ARCHIVES:
            for name in _archive_parts(files, archive, record_url):
                remote = files[name]
                download_file(remote.url, archive_dir / name, md5=remote.md5,
                              expected_size=remote.size, progress=progress)
            extract_archive(archive_dir / f"{archive}.zip", data_dir)
        if not keep_archives:
            shutil.rmtree(archive_dir, ignore_errors=True)
        root = find_fsd50k_root(data_dir)
        downloaded = True
    report = verify_fsd50k(root)
    if not report.ok:
        state = "downloaded to" if downloaded else "an existing copy is at"
        raise DatasetError(f"{FSD50K}: {state} {root}, but it is not the complete release: "
                           f"{'; '.join(report.problems)}")
    return root
