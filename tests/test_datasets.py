"""Dataset adapters and their validation messages, on generated mini datasets."""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fixtures_audio import (
    ESC10_CLASSES,
    URBANSOUND8K_CLASSES,
    bad_clip_ids,
    make_esc50,
    make_folder_dataset,
    make_urbansound8k,
)

import featurekit
from featurekit.datasets import Dataset, DatasetWarning, assign_folds, list_datasets, load_dataset
from featurekit.errors import DatasetError

US8K_META = Path("UrbanSound8K", "metadata", "UrbanSound8K.csv")
ESC_META = Path("ESC-50-master", "meta", "esc50.csv")


def load_quietly(*args, **kwargs) -> tuple[Dataset, list[str]]:
    """Load a dataset, returning it with the DatasetWarning messages issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(*args, **kwargs)
    return dataset, [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]


def edit_csv(path: Path, edit) -> None:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(table).to_csv(path, index=False)


# --- official layouts ------------------------------------------------------------------------

def test_urbansound8k_clips_table(urbansound8k_dir: Path) -> None:
    dataset, messages = load_quietly("urbansound8k", urbansound8k_dir)
    clips = dataset.clips
    assert dataset.name == "urbansound8k"
    assert list(clips.columns[:5]) == ["clip_id", "path", "label", "label_id", "fold"]
    assert {"salience", "fsID", "start", "end"} <= set(clips.columns)
    assert len(clips) == 18 and clips["clip_id"].is_unique
    assert dataset.folds == [1, 2, 3]
    assert dataset.expected_folds == list(range(1, 11))
    assert dataset.missing_folds == list(range(4, 11))
    assert dataset.protocol == "leave-one-fold-out"
    assert dataset.classes == list(URBANSOUND8K_CLASSES)
    assert all(dataset.classes[i] == label for i, label in zip(clips["label_id"], clips["label"]))
    assert clips["label_id"].dtype == np.int64 and clips["fold"].dtype == np.int64
    for clip_id, path in zip(clips["clip_id"], clips["path"]):
        assert Path(path).is_absolute() and Path(path).is_file()
        assert Path(path).stem == clip_id
    # metadata says .wav; FLAC and OGG copies are matched by stem
    assert {Path(p).suffix for p in clips["path"]} == {".wav", ".flac", ".ogg"}
    # every clip's fold directory is its metadata fold
    assert all(Path(p).parent.name == f"fold{f}" for p, f in zip(clips["path"], clips["fold"]))
    assert len(messages) == 1
    assert "18 of 8732 clips" in messages[0] and "folds [1, 2, 3]" in messages[0]


def test_data_dir_may_be_the_dataset_directory_itself(urbansound8k_dir: Path) -> None:
    outer, _ = load_quietly("urbansound8k", urbansound8k_dir)
    inner, _ = load_quietly("urbansound8k", urbansound8k_dir / "UrbanSound8K")
    pd.testing.assert_frame_equal(outer.clips, inner.clips)
    assert outer.root == inner.root == (urbansound8k_dir / "UrbanSound8K").absolute()


def test_public_name_is_exported() -> None:
    assert featurekit.load_dataset is load_dataset
    assert list_datasets() == ["esc10", "esc50", "urbansound8k"]


def test_esc50_and_esc10_views(esc50_dir: Path) -> None:
    esc50, messages50 = load_quietly("esc50", esc50_dir)
    esc10, messages10 = load_quietly("esc10", esc50_dir / "ESC-50-master")
    assert len(esc50.clips) == 20 and esc50.folds == [1, 2, 3, 4, 5]
    assert esc50.classes[2] == "pig" and len(esc50.classes) == 50
    assert set(esc50.clips["label"]) == {"dog", "rooster", "rain", "pig"}
    assert (esc50.clips["label_id"] == esc50.clips["target"]).all()
    assert {"esc10", "take", "src_file"} <= set(esc50.clips.columns)
    # ESC-10: only esc10 rows, dense label ids, official target kept
    assert esc10.classes == list(ESC10_CLASSES)
    assert len(esc10.clips) == 15 and esc10.clips["esc10"].all()
    assert "pig" not in set(esc10.clips["label"])
    rain = esc10.clips[esc10.clips["label"] == "rain"]
    assert (rain["label_id"] == 2).all() and (rain["target"] == 10).all()
    assert len(messages50) == 1 and "20 of 2000 clips" in messages50[0]
    assert len(messages10) == 1 and "15 of 400 clips" in messages10[0]


def test_esc_layout_without_outer_directory(tmp_path: Path) -> None:
    root = make_esc50(tmp_path / "esc10", root_dir="", classes=("dog", "rain"))
    dataset, _ = load_quietly("esc10", root)
    assert len(dataset.clips) == 20 and dataset.root == root.absolute()


def test_partial_copy_with_full_metadata_warns_once(tmp_path: Path) -> None:
    root = make_urbansound8k(tmp_path, folds=(1, 2), metadata_only_folds=(3, 4))
    dataset, messages = load_quietly("urbansound8k", root)
    assert dataset.folds == [1, 2] and len(dataset.clips) == 12
    assert messages == [messages[0]] and "12 of 8732 clips, folds [1, 2]" in messages[0]


def test_missing_audio_in_present_fold_is_dropped_with_one_warning(tmp_path: Path) -> None:
    root = make_urbansound8k(tmp_path)
    clips, _ = load_quietly("urbansound8k", root)
    gone = clips.clips["path"].iloc[[0, 3, 7]].tolist()
    for path in gone:
        Path(path).unlink()
    dataset, messages = load_quietly("urbansound8k", root)
    assert len(dataset.clips) == len(clips.clips) - 3
    assert not set(dataset.clips["path"]) & set(gone)
    missing_messages = [m for m in messages if "no audio file" in m]
    assert len(missing_messages) == 1 and "3 clip(s)" in missing_messages[0]
    assert all(Path(p).stem in missing_messages[0] for p in gone)


def test_no_audio_at_all_is_an_error(tmp_path: Path) -> None:
    root = make_urbansound8k(tmp_path)
    shutil.rmtree(root / "UrbanSound8K" / "audio")
    with pytest.raises(DatasetError, match=r"none of the 18 clips .* has an audio file"):
        load_dataset("urbansound8k", root)


def test_exact_extension_preferred_over_stem_match(tmp_path: Path) -> None:
    root = make_urbansound8k(tmp_path)
    dataset, _ = load_quietly("urbansound8k", root)
    flac = Path(dataset.clips["path"][dataset.clips["path"].str.endswith(".flac")].iloc[0])
    wav = flac.with_suffix(".wav")
    sf.write(wav, np.zeros(100, dtype=np.float32), 8000)
    again, _ = load_quietly("urbansound8k", root)
    assert str(wav) in set(again.clips["path"]) and str(flac) not in set(again.clips["path"])


def test_bad_files_are_listed_not_judged(tmp_path: Path) -> None:
    # Loading checks layout and metadata; decoding failures belong to the extraction run.
    root = make_urbansound8k(tmp_path, with_bad_files=True)
    dataset, _ = load_quietly("urbansound8k", root)
    bad = bad_clip_ids(root)
    assert set(bad) == {"corrupt", "empty", "silent", "nan"}
    assert set(bad.values()) <= set(dataset.clips["clip_id"])


def test_metadata_path_escaping_the_data_dir_is_rejected(tmp_path: Path) -> None:
    root = make_esc50(tmp_path / "data")
    outside = tmp_path / "secret.wav"
    sf.write(outside, np.zeros(100, dtype=np.float32), 8000)

    def escape(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[0, "filename"] = "../../secret.wav"
        return table

    edit_csv(root / ESC_META, escape)
    with pytest.raises(DatasetError, match=r"'\.\./\.\./secret\.wav' points outside"):
        load_dataset("esc50", root)


def test_absolute_metadata_path_is_rejected(tmp_path: Path) -> None:
    root = make_esc50(tmp_path / "data")
    edit_csv(root / ESC_META, lambda t: t.assign(filename=t["filename"].where(
        t.index != 1, str(tmp_path / "elsewhere.wav"))))
    with pytest.raises(DatasetError, match=r"absolute path .*elsewhere\.wav"):
        load_dataset("esc50", root)


def test_duplicate_clip_ids_are_named(tmp_path: Path) -> None:
    root = make_urbansound8k(tmp_path)
    path = root / US8K_META
    table = pd.read_csv(path, dtype=str)
    pd.concat([table, table.iloc[[2]]]).to_csv(path, index=False)
    duplicate = Path(table["slice_file_name"].iloc[2]).stem
    with pytest.raises(DatasetError, match=f"duplicate clip ids: {duplicate}"):
        load_dataset("urbansound8k", root)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.drop(columns="classID"), r"lacks column\(s\) classID"),
    (lambda t: t.assign(fold=t["fold"].where(t.index != 4, "three")),
     r"column 'fold' must hold integers; bad value\(s\): 'three'"),
    (lambda t: t.assign(fold=t["fold"].where(t.index != 4, "11")),
     r"fold\(s\) \[11\] are not official urbansound8k folds"),
    (lambda t: t.assign(**{"class": t["class"].where(t.index != 0, "tuba")}),
     r"unknown urbansound8k class\(es\) tuba"),
    (lambda t: t.assign(classID=t["classID"].where(t.index != 0, "9")),
     r"classID contradicts the official id"),
    (lambda t: t.iloc[0:0], "has no rows"),
])
def test_malformed_metadata_names_file_and_problem(tmp_path: Path, edit, message) -> None:
    root = make_urbansound8k(tmp_path, clips_per_fold=3)
    edit_csv(root / US8K_META, edit)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset("urbansound8k", root)
    assert str(root / US8K_META) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00binary\x00\xff" * 20])
def test_unreadable_metadata_is_a_dataset_error(tmp_path: Path, content: bytes) -> None:
    root = make_urbansound8k(tmp_path, clips_per_fold=3)
    (root / US8K_META).write_bytes(content)
    with pytest.raises(DatasetError, match=r"UrbanSound8K\.csv"):
        load_dataset("urbansound8k", root)


def test_dataset_not_found_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no copy found .*UrbanSound8K/metadata"):
        load_dataset("urbansound8k", tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("esc50", tmp_path / "nowhere")


def test_unknown_dataset_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'us8k'; known datasets: "
                                           "esc10, esc50, urbansound8k, fsd50k, folder, csv"):
        load_dataset("us8k", tmp_path)


def test_warnings_name_the_line_that_loaded_the_dataset(urbansound8k_dir: Path,
                                                       tmp_path: Path) -> None:
    """However deep inside the package the adapter warns, the warning points at the caller."""
    folder = make_folder_dataset(tmp_path / "set", clips_per_class=2)
    for name, root in (("urbansound8k", urbansound8k_dir), ("folder", folder)):
        with pytest.warns(DatasetWarning) as caught:
            load_dataset(name, root)
        assert {w.filename for w in caught} == {__file__}, name


def test_official_datasets_refuse_generic_options(urbansound8k_dir: Path) -> None:
    with pytest.raises(DatasetError, match="folder/csv datasets only"):
        load_dataset("urbansound8k", urbansound8k_dir, dataset_name="mine")


# --- folder and CSV datasets -----------------------------------------------------------------

def test_folder_dataset_assigns_stratified_deterministic_folds(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "My Sounds", classes=("high", "low"),
                               clips_per_class=10)
    (root / "low" / "notes.txt").write_text("not audio")
    dataset, messages = load_quietly("folder", root)
    clips = dataset.clips
    assert dataset.name == "my_sounds"
    assert dataset.classes == ["high", "low"]
    assert len(clips) == 20 and "low/clip_03" in set(clips["clip_id"])
    assert dataset.folds == dataset.expected_folds == [1, 2, 3, 4, 5]
    per_fold_and_label = clips.groupby(["fold", "label"]).size()
    assert (per_fold_and_label == 2).all() and len(per_fold_and_label) == 10
    assert len(messages) == 1 and "assigned 5 folds" in messages[0]
    again, _ = load_quietly("folder", root)
    pd.testing.assert_frame_equal(clips, again.clips)


def test_folder_dataset_reads_folds_csv(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "set", clips_per_class=3)
    with open(root / "folds.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "fold"])
        for label in ("high", "low"):
            for k in range(3):
                writer.writerow([f"{label}/clip_{k:02d}.wav", k + 1])
    dataset, messages = load_quietly("folder", root, dataset_name="set-a")
    assert messages == []
    assert dataset.name == "set-a" and dataset.folds == [1, 2, 3]
    assert dict(zip(dataset.clips["clip_id"], dataset.clips["fold"]))["low/clip_02"] == 3


def test_folder_dataset_folds_csv_must_cover_every_file(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "set", clips_per_class=2)
    (root / "folds.csv").write_text("path,fold\nhigh/clip_00.wav,1\n")
    with pytest.raises(DatasetError, match=r"no fold for high/clip_01, low/clip_00"):
        load_dataset("folder", root)


def test_folder_dataset_errors(tmp_path: Path) -> None:
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no audio files"):
        load_dataset("folder", tmp_path / "empty")
    with pytest.raises(DatasetError, match="reserved"):
        load_dataset("folder", make_folder_dataset(tmp_path / "x"), dataset_name="esc50")
    with pytest.raises(DatasetError,
                       match="only esc10, esc50, urbansound8k, fsd50k can be downloaded"):
        load_dataset("folder", tmp_path, download=True)


def test_csv_dataset_relative_paths_stem_match_and_folds(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "audio_root", clips_per_class=2)
    (root / "list.csv").write_text("path,label,fold\n"
                                   "high/clip_00.flac,hi,1\n"   # .wav on disk
                                   "high/clip_01.wav,hi,2\n"
                                   "low/clip_00.wav,lo,1\n"
                                   "low/clip_01.wav,lo,2\n"
                                   "low/missing.wav,lo,2\n")
    dataset, messages = load_quietly("csv", root / "list.csv")
    assert dataset.name == "list" and dataset.classes == ["hi", "lo"]
    assert len(dataset.clips) == 4 and dataset.folds == [1, 2]
    first = dataset.clips.set_index("clip_id").loc["high/clip_00"]
    assert first["path"] == str(root / "high" / "clip_00.wav") and first["label_id"] == 0
    assert len(messages) == 1 and "1 listed file(s) not found" in messages[0]
    assert "low/missing.wav" in messages[0]


def test_csv_dataset_without_folds_and_with_clip_ids(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "r", clips_per_class=5)
    rows = [f"{label}/clip_{k:02d}.wav,{label},{label[0]}{k}"
            for label in ("high", "low") for k in range(5)]
    (root / "m.csv").write_text("path,label,clip_id\n" + "\n".join(rows) + "\n")
    dataset, messages = load_quietly("csv", root / "m.csv", dataset_name="mine")
    assert set(dataset.clips["clip_id"]) == {f"{c}{k}" for c in "hl" for k in range(5)}
    assert (dataset.clips.groupby("fold").size() == 2).all()
    assert len(messages) == 1 and "assigned 5 folds" in messages[0]


@pytest.mark.parametrize(("content", "message"), [
    ("path,label\n../outside.wav,a\n", r"none of the 1 listed files exists \(e\.g\. /"),
    ("file,label\nx.wav,a\n", r"lacks column\(s\) path"),
    ("path,label\nhigh/clip_00.wav,\n", r"empty path or label on line\(s\) 2"),
    ("path,label\nnope.wav,a\n", "none of the 1 listed files exists"),
    ("path,label,fold\nhigh/clip_00.wav,a,x\n", "column 'fold' must hold integers"),
    ("path,label\nhigh/clip_00.wav,a\nhigh/clip_00.flac,a\n", "duplicate clip ids: high/clip_00"),
])
def test_csv_dataset_validation(tmp_path: Path, content: str, message: str) -> None:
    make_folder_dataset(tmp_path, clips_per_class=1)
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset("csv", tmp_path / "m.csv")


def test_csv_dataset_absolute_and_outside_paths(tmp_path: Path) -> None:
    """A user's CSV may name files absolutely or relative to its folder, ``..`` included;
    a file inside the CSV's folder has the same clip id either way."""
    root = make_folder_dataset(tmp_path / "lists", clips_per_class=1)
    elsewhere = make_folder_dataset(tmp_path / "elsewhere", clips_per_class=1)
    (root / "m.csv").write_text("path,label\n"
                                f"{root / 'high' / 'clip_00.wav'},hi\n"  # absolute, inside
                                "low/clip_00.wav,lo\n"                    # relative
                                "../elsewhere/high/clip_00.wav,hi\n"      # relative, outside
                                f"{elsewhere / 'low' / 'clip_00.flac'},lo\n")  # absolute, stem
    dataset, _ = load_quietly("csv", root / "m.csv")
    clips = dataset.clips.set_index("clip_id")
    assert clips["path"].to_dict() == {
        "high/clip_00": str(root / "high" / "clip_00.wav"),
        "low/clip_00": str(root / "low" / "clip_00.wav"),
        (elsewhere / "high" / "clip_00").as_posix(): str(elsewhere / "high" / "clip_00.wav"),
        (elsewhere / "low" / "clip_00").as_posix(): str(elsewhere / "low" / "clip_00.wav"),
    }
    assert dataset.classes == ["hi", "lo"]


def test_csv_dataset_from_a_folder_with_one_csv(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "data", clips_per_class=1)
    (root / "labels.csv").write_text("path,label\nhigh/clip_00.wav,hi\nlow/clip_00.wav,lo\n")
    (root / ".hidden.csv").write_text("not,read\n")
    dataset, _ = load_quietly("csv", root)
    assert dataset.name == "labels" and len(dataset.clips) == 2


@pytest.mark.parametrize(("csv_names", "message"), [
    ((), r"holds 0 CSV files; expected a CSV file with columns path,label"),
    (("a.csv", "b.CSV"), r"holds 2 CSV files: a\.csv, b\.CSV; expected .* exactly one"),
])
def test_csv_dataset_folder_needs_exactly_one_csv(tmp_path: Path, csv_names: tuple[str, ...],
                                                  message: str) -> None:
    root = make_folder_dataset(tmp_path / "data", clips_per_class=1)
    for name in csv_names:
        (root / name).write_text("path,label\nhigh/clip_00.wav,hi\n")
    with pytest.raises(DatasetError, match=message):
        load_dataset("csv", root)
    with pytest.raises(DatasetError, match=r"nowhere does not exist; expected a CSV file"):
        load_dataset("csv", tmp_path / "nowhere")


def test_assign_folds_is_stratified_and_order_independent() -> None:
    keys = [f"{label}/{k}" for label in "abc" for k in range(11)]
    labels = [key[0] for key in keys]
    folds = assign_folds(keys, labels, n_folds=5)
    assert set(folds) == {1, 2, 3, 4, 5}
    for label in "abc":
        counts = np.bincount(folds[np.array(labels) == label], minlength=6)[1:]
        assert counts.max() - counts.min() <= 1
    reordered = assign_folds(keys[::-1], labels[::-1], n_folds=5)
    assert dict(zip(keys, folds)) == dict(zip(keys[::-1], reordered))
